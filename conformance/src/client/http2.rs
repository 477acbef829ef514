//! One HTTP/2 connection held by hand with the `h2` crate (hyper's own), for what reqwest
//! hides: many streams on the same connection, each DATA frame as it arrives, a stream reset
//! on purpose (RST_STREAM), the server's limit on concurrent streams, its GOAWAY.

use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::{RecvStream, client::SendRequest};
use hyper::http;
use tokio::net::TcpStream;

use super::{Chunk, Fetched, Framing, Io, Target, ms, split::Splitter, tls};
use crate::outcome::Evidence;

/// An open HTTP/2 connection; the task driving it ends with the connection.
pub struct Connection {
    send: SendRequest<Bytes>,
    /// Set when the connection has ended: how it ended.
    ended: tokio::sync::watch::Receiver<Option<String>>,
}

/// One DATA frame: when it arrived (ms after its stream was opened) and what it carried.
#[derive(Debug, Clone)]
pub struct Frame {
    pub at_ms: f64,
    pub data: Bytes,
}

/// A stream whose response head is in; [`Stream::frame`] reads its body frame by frame, and
/// dropping it before the end resets it (RST_STREAM with CANCEL).
pub struct Stream {
    pub status: u16,
    pub head_ms: f64,
    request: String,
    opened: Instant,
    body: RecvStream,
}

/// A stream read to its end: what came, as the client layer records any response (each line
/// timed when the frame that completes it arrived, one chunk per DATA frame), and the frames.
pub struct Read {
    pub got: Fetched,
    pub frames: Vec<Frame>,
}

impl Connection {
    /// Connects to `target`: TLS with ALPN `h2` for `https://`, prior knowledge (h2c) otherwise.
    pub async fn open(target: &Target) -> Result<Self, String> {
        let io = connect(target).await?;
        // h2's default budget for small DATA frames waiting unread (25 600 bytes of overhead,
        // about a hundred one-line frames) ends the connection with ENHANCE_YOUR_CALM as soon
        // as a reader pauses on a fast stream; allow a whole 64 KiB window of 7-byte frames
        // (9 362 of them, 2.3 MB of overhead), as a browser keeps them.
        let (send, connection) = h2::client::Builder::new()
            .data_frame_budget(4 << 20)
            .handshake(io)
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
        // The connection's own task; it ends when the connection closes.
        let (ended_tx, ended) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let how = match connection.await {
                Ok(()) => "closed cleanly".to_owned(),
                Err(e) => describe(e),
            };
            ended_tx.send_replace(Some(how));
        });
        Ok(Self { send, ended })
    }

    /// Waits at most `limit` for the server's GOAWAY, after which a client opens no new
    /// stream on the connection (h2 refuses them), and says how long it took; `Err` says what
    /// else happened instead.
    pub async fn goaway(&self, limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            // Ready at once while the connection takes new streams; an error once the server
            // has said GOAWAY (or the connection has failed).
            match self.send.clone().ready().await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(e) if e.is_go_away() => return Ok(start.elapsed()),
                Err(e) => return Err(describe(e)),
            }
        }
        Err(format!("no GOAWAY within {} ms", limit.as_millis()))
    }

    /// Waits at most `limit` for the connection to end, and says how it ended.
    pub async fn ended(&self, limit: Duration) -> Option<String> {
        let mut ended = self.ended.clone();
        let wait = ended.wait_for(Option::is_some);
        match tokio::time::timeout(limit, wait).await {
            Ok(Ok(how)) => how.clone(),
            _ => None,
        }
    }

    /// How many streams at once the server allows, as its SETTINGS said.
    pub fn max_streams(&self) -> usize {
        self.send.current_max_send_streams()
    }

    /// Opens a GET stream for `path` (waiting while the server's stream limit is reached) and
    /// waits for its response head, at most `deadline`.
    pub async fn get(
        &self, target: &Target, path: &str, deadline: Duration,
    ) -> Result<Stream, String> {
        let uri = format!("{}{path}", target.base);
        let request = http::Request::get(&uri)
            .body(())
            .map_err(|e| format!("cannot make a request for {uri}: {e}"))?;
        let opened = Instant::now();
        let answer = async {
            let mut send = self.send.clone().ready().await.map_err(describe)?;
            let (response, _) = send.send_request(request, true).map_err(describe)?;
            response.await.map_err(describe)
        };
        let response = tokio::time::timeout(deadline, answer)
            .await
            .map_err(|_| format!("no response head within {} ms", deadline.as_millis()))??;
        let head_ms = ms(opened.elapsed());
        let status = response.status().as_u16();
        let request = format!("GET {path} (h2)");
        Ok(Stream { status, head_ms, request, opened, body: response.into_body() })
    }
}

impl Stream {
    /// The next DATA frame, `None` at the end of the stream; gives its bytes back to the flow
    /// control window at once.
    pub async fn frame(&mut self) -> Option<Result<Frame, String>> {
        let data = self.body.data().await?;
        Some(data.map_err(describe).map(|data| {
            let _ = self.body.flow_control().release_capacity(data.len());
            Frame { at_ms: ms(self.opened.elapsed()), data }
        }))
    }

    /// Reads to the end of the stream, or until `deadline` after it was opened.
    pub async fn read(&mut self, deadline: Duration) -> Read {
        let evidence = Evidence {
            request: self.request.clone(),
            status: Some(self.status),
            head_ms: Some(self.head_ms),
            ..Default::default()
        };
        let mut got = Fetched { evidence, version: Some("h2".into()), ..Default::default() };
        let mut splitter = Splitter::new(self.opened, Framing::Lines);
        let mut frames = Vec::new();
        let end = self.opened + deadline;
        loop {
            match tokio::time::timeout_at(end.into(), self.frame()).await {
                Ok(Some(Ok(frame))) => {
                    splitter.push(&frame.data, &mut got);
                    let bytes = frame.data.len();
                    got.chunks.push(Chunk { at_ms: frame.at_ms, bytes, decoded: bytes });
                    got.body.extend_from_slice(&frame.data);
                    frames.push(frame);
                }
                Ok(Some(Err(error))) => {
                    got.error = Some(error);
                    break;
                }
                Ok(None) => {
                    got.evidence.end_ms = Some(ms(self.opened.elapsed()));
                    break;
                }
                Err(_) => {
                    let error =
                        format!("the stream had not ended after {} ms", deadline.as_millis());
                    got.error = Some(error);
                    break;
                }
            }
        }
        Read { got, frames }
    }
}

/// A connection for HTTP/2 to `target`: TLS with ALPN `h2` for `https://`, plain TCP (h2c with
/// prior knowledge) otherwise.
pub(crate) async fn connect(target: &Target) -> Result<Box<dyn Io>, String> {
    let (host, address) = target.host_and_address();
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if !target.is_tls() {
        return Ok(Box::new(tcp));
    }
    let tls = tls::connect(&target.transport, host, tcp, &[b"h2"]).await?;
    if tls.get_ref().1.alpn_protocol() != Some(&b"h2"[..]) {
        return Err("the server did not choose h2 by ALPN".into());
    }
    Ok(Box::new(tls))
}

fn describe(error: h2::Error) -> String {
    match (error.is_go_away(), error.reason()) {
        (true, Some(reason)) => format!("the server sent GOAWAY ({reason:?})"),
        (false, Some(reason)) => format!("stream reset ({reason:?}): {error}"),
        _ => error.to_string(),
    }
}
