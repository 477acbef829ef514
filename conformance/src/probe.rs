//! The client side of every check: send one request and timestamp every line of the answer as
//! its last byte arrives. Two ways in: reqwest for ordinary HTTP/1.1 exchanges, and a raw TCP
//! exchange for what an HTTP library hides (an HTTP/1.0 request, bytes after a HEAD response).

use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{Config, Evidence, LineArrival};

/// What came back, with the timings; `error` says why reading stopped early, if it did.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub evidence: Evidence,
    /// The whole body as received (for raw exchanges: everything after the head, undecoded).
    pub body: Vec<u8>,
    pub error: Option<String>,
}

impl Fetched {
    pub fn status(&self) -> Option<u16> {
        self.evidence.status
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.evidence.header(name)
    }
    pub fn lines(&self) -> &[LineArrival] {
        &self.evidence.lines
    }
    /// Describes the failure to get an answer at all, if there was one.
    pub fn unanswered(&self) -> Option<String> {
        match (&self.evidence.status, &self.error) {
            (None, Some(error)) => Some(error.clone()),
            (None, None) => Some("no response".into()),
            _ => None,
        }
    }
}

/// Splits a body into lines as bytes arrive, stamping each line with the arrival of its `\n`.
#[derive(Debug)]
struct LineSplitter {
    sent: Instant,
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8], into: &mut Vec<LineArrival>) {
        let at_ms = ms(self.sent.elapsed());
        for &byte in bytes {
            if byte == b'\n' {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                into.push(LineArrival { text, at_ms });
                self.pending.clear();
            } else {
                self.pending.push(byte);
            }
        }
    }
    /// A last line without `\n` is kept (it is wrong, and the content check should see it).
    fn finish(&mut self, into: &mut Vec<LineArrival>, notes: &mut Vec<String>) {
        if !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            notes.push(format!("body ends without a newline after {text:?}"));
            into.push(LineArrival {
                text,
                at_ms: ms(self.sent.elapsed()),
            });
            self.pending.clear();
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        // Environment proxy settings would apply even to 127.0.0.1.
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(timeout)
        // Every check gets a fresh connection of its own.
        .pool_max_idle_per_host(0)
        .build()
        .expect("a reqwest client without TLS builds")
}

/// `method path` over HTTP/1.1, reading the body until it ends or `deadline` passes.
/// With `head_only`, stops (and hangs up) as soon as the response head is in.
pub async fn fetch(
    cfg: &Config,
    method: Method,
    path: &str,
    deadline: Duration,
    head_only: bool,
) -> Fetched {
    let mut out = Fetched::default();
    out.evidence.request = format!("{method} {path} HTTP/1.1");
    let url = format!("{}{path}", cfg.base);
    let sent = Instant::now();
    let response = tokio::time::timeout(deadline, client(deadline).request(method, &url).send());
    let mut response = match response.await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            out.error = Some(describe(&err));
            return out;
        }
        Err(_) => {
            out.error = Some(format!(
                "no response head within {} ms",
                deadline.as_millis()
            ));
            return out;
        }
    };
    let evidence = &mut out.evidence;
    evidence.head_ms = Some(ms(sent.elapsed()));
    evidence.status = Some(response.status().as_u16());
    evidence.headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect();
    if head_only {
        return out;
    }
    let mut splitter = LineSplitter {
        sent,
        pending: Vec::new(),
    };
    let end = sent + deadline;
    loop {
        match tokio::time::timeout_at(end.into(), response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                out.body.extend_from_slice(&chunk);
                splitter.push(&chunk, &mut out.evidence.lines);
            }
            Ok(Ok(None)) => {
                out.evidence.end_ms = Some(ms(sent.elapsed()));
                break;
            }
            Ok(Err(err)) => {
                out.error = Some(format!("body broke off: {}", describe(&err)));
                break;
            }
            Err(_) => {
                out.error = Some(format!(
                    "body did not end within {} ms",
                    deadline.as_millis()
                ));
                break;
            }
        }
    }
    splitter.finish(&mut out.evidence.lines, &mut out.evidence.notes);
    out
}

/// The error and its causes on one line: reqwest's top-level message alone is rarely enough.
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends `request` (a complete HTTP request head) over a fresh TCP connection and reads until
/// the server closes it or `deadline` passes. The body is everything after the response head,
/// not decoded: this is for close-delimited answers, where the raw bytes are the body.
pub async fn raw(cfg: &Config, request: &str, deadline: Duration) -> Fetched {
    let mut out = Fetched::default();
    out.evidence.request = request.lines().next().unwrap_or_default().to_owned();
    let sent = Instant::now();
    let end = sent + deadline;
    let connect = tokio::time::timeout_at(end.into(), TcpStream::connect(cfg.host_port()));
    let mut tcp = match connect.await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(err)) => {
            out.error = Some(format!("cannot connect to {}: {err}", cfg.host_port()));
            return out;
        }
        Err(_) => {
            out.error = Some("connect timed out".into());
            return out;
        }
    };
    if let Err(err) = tcp.write_all(request.as_bytes()).await {
        out.error = Some(format!("cannot send the request: {err}"));
        return out;
    }
    let mut head = Vec::new();
    let mut splitter = LineSplitter {
        sent,
        pending: Vec::new(),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout_at(end.into(), tcp.read(&mut buf)).await {
            Ok(Ok(0)) => {
                if out.evidence.status.is_some() {
                    out.evidence.end_ms = Some(ms(sent.elapsed()));
                } else {
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
            splitter.push(bytes, &mut out.evidence.lines);
            continue;
        }
        head.extend_from_slice(bytes);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                out.evidence.head_ms = Some(ms(sent.elapsed()));
                out.evidence.status = response.code;
                out.evidence.headers = response
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into(),
                        )
                    })
                    .collect();
                let rest = head[len..].to_vec();
                out.body.extend_from_slice(&rest);
                splitter.push(&rest, &mut out.evidence.lines);
            }
            Ok(httparse::Status::Partial) => {}
            Err(err) => {
                out.error = Some(format!("malformed response head: {err}"));
                break;
            }
        }
    }
    splitter.finish(&mut out.evidence.lines, &mut out.evidence.notes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_stamped_when_their_newline_arrives() {
        let mut splitter = LineSplitter {
            sent: Instant::now(),
            pending: Vec::new(),
        };
        let mut lines = Vec::new();
        let mut notes = Vec::new();
        splitter.push(b"1\n2", &mut lines);
        splitter.push(b"\n3\n4", &mut lines);
        splitter.finish(&mut lines, &mut notes);
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["1", "2", "3", "4"]);
        assert_eq!(notes.len(), 1, "a last line without newline is noted");
    }
}
