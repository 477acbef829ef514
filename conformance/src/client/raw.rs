//! The raw HTTP/1 exchange, for what an HTTP library hides (an HTTP/1.0 request, bytes after a
//! HEAD response): a request head written as it is, over TCP or TLS, and everything read back
//! until the server closes the connection.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

use super::{Fetched, Framing, Target, ms, split::Splitter, tls};

/// A connection that reads and writes: plain TCP, or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection for a raw HTTP/1 exchange: TCP, and over `https://` TLS with ALPN `http/1.1`.
pub(crate) async fn connect_http1(target: &Target) -> Result<Box<dyn Io>, String> {
    let (host, address) = target.host_and_address();
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|err| format!("cannot connect to {address}: {err}"))?;
    if !target.is_tls() {
        return Ok(Box::new(tcp));
    }
    Ok(Box::new(tls::connect(&target.transport, host, tcp, &[b"http/1.1"]).await?))
}

/// Sends `request` (a complete HTTP/1 request head) over a fresh connection (TLS with ALPN
/// `http/1.1` for `https://`) and reads until the server closes it or `deadline` passes. The
/// body is everything after the response head, not decoded: this is for close-delimited
/// answers, where the raw bytes are the body.
pub async fn raw(target: &Target, request: impl AsRef<[u8]>, deadline: Duration) -> Fetched {
    let request = request.as_ref();
    let mut out = Fetched::default();
    out.evidence.request = shown(request);
    let sent = Instant::now();
    let end = sent + deadline;
    let mut tcp = match tokio::time::timeout_at(end.into(), connect_http1(target)).await {
        Ok(Ok(io)) => io,
        Ok(Err(error)) => {
            out.error = Some(error);
            return out;
        }
        Err(_) => {
            out.error = Some("connect timed out".into());
            return out;
        }
    };
    if let Err(err) = tcp.write_all(request).await {
        out.error = Some(format!("cannot send the request: {err}"));
        return out;
    }
    let mut head = Vec::new();
    let mut splitter = Splitter::new(sent, Framing::Lines);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout_at(end.into(), tcp.read(&mut buf)).await {
            Ok(Ok(0)) => {
                out.evidence.end_ms = Some(ms(sent.elapsed()));
                if out.evidence.status.is_none() {
                    out.error = Some("connection closed before a complete response head".into());
                }
                break;
            }
            Ok(Ok(n)) => n,
            Ok(Err(err)) => {
                out.error = Some(format!("read failed: {err}"));
                break;
            }
            Err(_) => {
                out.error = Some(format!(
                    "connection still open {} ms after the request",
                    deadline.as_millis()
                ));
                break;
            }
        };
        let bytes = &buf[..n];
        if out.evidence.status.is_some() {
            out.body.extend_from_slice(bytes);
            splitter.push(bytes, &mut out);
            continue;
        }
        head.extend_from_slice(bytes);
        match parse_head(&head, &mut out) {
            Ok(Some(rest)) => {
                out.evidence.head_ms = Some(ms(sent.elapsed()));
                out.body.extend_from_slice(rest);
                splitter.push(rest, &mut out);
            }
            Ok(None) => {}
            Err(err) => {
                out.error = Some(err);
                break;
            }
        }
    }
    splitter.finish(&mut out);
    out
}

/// The request's first line as evidence, cut at 120 bytes.
fn shown(request: &[u8]) -> String {
    let first_line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut shown = String::from_utf8_lossy(&first_line[..first_line.len().min(120)]).into_owned();
    if first_line.len() > 120 {
        shown.push_str(&format!("… ({} bytes)", first_line.len()));
    }
    shown.trim_end().to_owned()
}

/// The response head in `head`, once complete, into `out`'s status and headers; what came
/// after it, or `None` while the head is incomplete.
fn parse_head<'a>(head: &'a [u8], out: &mut Fetched) -> Result<Option<&'a [u8]>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(len)) => {
            out.evidence.status = response.code;
            out.evidence.headers = response
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into()))
                .collect();
            Ok(Some(&head[len..]))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(err) => Err(format!("malformed response head: {err}")),
    }
}
