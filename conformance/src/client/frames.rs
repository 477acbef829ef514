//! HTTP/2 frames written and read by hand (RFC 9113), for what an HTTP/2 library will not send:
//! streams opened and reset at once by the thousand (rapid reset, CVE-2023-44487), a header
//! block continued without end (the CONTINUATION flood, CVE-2024-27316), more streams than the
//! server allows. This module only speaks the frames; whoever uses it bounds the attack in
//! frames and in time, and points it at the server under test alone.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Io, Target};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// Settings (RFC 9113 §6.5.2).
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;

/// Error codes (RFC 9113 §7).
pub const NO_ERROR: u32 = 0x0;
pub const CANCEL: u32 = 0x8;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// One frame as read.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().expect("four bytes")))
    }

    /// A GOAWAY's debug data, as text (hyper's h2 says why there: `too_many_resets`, …).
    pub fn debug_data(&self) -> String {
        match self.kind {
            GOAWAY => String::from_utf8_lossy(self.payload.get(8..).unwrap_or_default()).into(),
            _ => String::new(),
        }
    }

    /// A SETTINGS frame's values, as (identifier, value).
    pub fn settings(&self) -> Vec<(u16, u32)> {
        if self.kind != SETTINGS {
            return Vec::new();
        }
        self.payload
            .chunks_exact(6)
            .map(|s| {
                (u16::from_be_bytes([s[0], s[1]]), u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
            })
            .collect()
    }
}

/// An HTTP/2 connection spoken frame by frame. Frames are queued with [`Raw::queue`] and go out
/// together at [`Raw::flush`], so that thousands of them cost a few writes.
pub struct Raw {
    io: Box<dyn Io>,
    read: Vec<u8>,
    write: Vec<u8>,
    scheme: &'static str,
    authority: String,
}

impl Raw {
    /// Connects to `target` (TLS with ALPN `h2` for `https://`, prior knowledge otherwise) and
    /// sends the preface with `settings`. The server's own SETTINGS come in through [`Raw::next`].
    pub async fn open(target: &Target, settings: &[(u16, u32)]) -> Result<Self, String> {
        let io = super::http2::connect(target).await?;
        let scheme = if target.is_tls() { "https" } else { "http" };
        let mut raw = Self {
            io,
            read: Vec::new(),
            write: PREFACE.to_vec(),
            scheme,
            authority: target.host_port().to_owned(),
        };
        let payload: Vec<u8> = settings
            .iter()
            .flat_map(|(id, v)| [&id.to_be_bytes()[..], &v.to_be_bytes()].concat())
            .collect();
        raw.queue(SETTINGS, 0, 0, &payload);
        raw.flush().await?;
        Ok(raw)
    }

    /// Waits for the server's SETTINGS (acknowledging them) and returns their values. Call it
    /// before a header block that spans frames: the acknowledgement must not land inside one.
    pub async fn server_settings(&mut self, within: Duration) -> Result<Vec<(u16, u32)>, String> {
        loop {
            match self.next(within).await? {
                Some(frame) if frame.kind == SETTINGS && frame.flags & ACK == 0 => {
                    return Ok(frame.settings());
                }
                Some(_) => continue,
                None => return Err("the server closed the connection before its SETTINGS".into()),
            }
        }
    }

    /// Adds a frame to what the next [`Raw::flush`] sends.
    pub fn queue(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let length = u32::try_from(payload.len()).expect("a frame under 16 MiB").to_be_bytes();
        self.write.extend_from_slice(&length[1..]);
        self.write.extend_from_slice(&[kind, flags]);
        self.write.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        self.write.extend_from_slice(payload);
    }

    /// Sends every queued frame.
    pub async fn flush(&mut self) -> Result<(), String> {
        let queued = std::mem::take(&mut self.write);
        self.io.write_all(&queued).await.map_err(|e| format!("cannot write frames: {e}"))?;
        self.io.flush().await.map_err(|e| format!("cannot write frames: {e}"))
    }

    /// The header block of `GET path` on this connection: HPACK with literal fields only (no
    /// Huffman coding, nothing added to the dynamic table), so every block is independent.
    pub fn request_block(&self, path: &str) -> Vec<u8> {
        let mut block = vec![0x82, if self.scheme == "https" { 0x87 } else { 0x86 }];
        for (index, value) in [(4, path), (1, self.authority.as_str())] {
            // A literal without indexing, its name from the static table (:path, :authority).
            block.push(index);
            integer(&mut block, value.len(), 7, 0);
            block.extend_from_slice(value.as_bytes());
        }
        block
    }

    /// The next frame, `Ok(None)` once the server has closed the connection, or an error when
    /// none came `within`. PINGs and SETTINGS are acknowledged as they arrive, as a client must
    /// (so read the server's SETTINGS before a header block that spans frames).
    pub async fn next(&mut self, within: Duration) -> Result<Option<Frame>, String> {
        let read = async {
            loop {
                if let Some(frame) = self.take_frame() {
                    return Ok(Some(frame));
                }
                let mut chunk = [0u8; 16 * 1024];
                match self.io.read(&mut chunk).await {
                    Ok(0) => return Ok(None),
                    Ok(n) => self.read.extend_from_slice(&chunk[..n]),
                    // A reset after the server's GOAWAY is how many servers close.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(None),
                    Err(e) => return Err(format!("cannot read frames: {e}")),
                }
            }
        };
        let frame = tokio::time::timeout(within, read)
            .await
            .map_err(|_| format!("no frame within {} ms", within.as_millis()))??;
        let ack = match &frame {
            Some(f) if f.kind == SETTINGS && f.flags & ACK == 0 => Some((SETTINGS, Vec::new())),
            Some(f) if f.kind == PING && f.flags & ACK == 0 => Some((PING, f.payload.clone())),
            _ => None,
        };
        if let Some((kind, payload)) = ack {
            self.queue(kind, ACK, 0, &payload);
            // An acknowledgement that cannot be written means the connection is gone, which
            // the next read says.
            let _ = self.flush().await;
        }
        Ok(frame)
    }

    fn take_frame(&mut self) -> Option<Frame> {
        let head = self.read.get(..9)?;
        let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        if self.read.len() < 9 + length {
            return None;
        }
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let payload = self.read[9..9 + length].to_vec();
        self.read.drain(..9 + length);
        Some(Frame { kind, flags, stream, payload })
    }
}

/// An HPACK integer (RFC 7541 §5.1) with an `n`-bit prefix, the first byte's other bits `high`.
fn integer(out: &mut Vec<u8>, value: usize, n: u32, high: u8) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7541 C.1's examples: 10 and 1337 with a 5-bit prefix, 42 with an 8-bit one.
    #[test]
    fn hpack_integers_as_the_rfc_writes_them() {
        let encoded = |value, n| {
            let mut out = Vec::new();
            integer(&mut out, value, n, 0);
            out
        };
        assert_eq!(encoded(10, 5), [0b01010]);
        assert_eq!(encoded(1337, 5), [0b11111, 0b1001_1010, 0b0000_1010]);
        assert_eq!(encoded(42, 8), [42]);
    }
}
