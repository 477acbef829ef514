//! The client side of every check: send one request and timestamp every line of the answer as
//! its last byte arrives. Two ways in: reqwest for ordinary HTTP/1.1 exchanges, and a raw TCP
//! exchange for what an HTTP library hides (an HTTP/1.0 request, bytes after a HEAD response).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::Method;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};

use crate::{Config, Evidence, LineArrival, decode::Decoder};

/// What came back, with the timings; `error` says why reading stopped early, if it did.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub evidence: Evidence,
    /// The whole body as received (for raw exchanges: everything after the head, undecoded).
    /// Decoded when the response has a Content-Encoding.
    pub body: Vec<u8>,
    pub error: Option<String>,
    /// The Server-Sent Events messages, for [`Framing::Events`].
    pub events: Vec<SseMessage>,
    /// When each SSE comment line (a keep-alive) arrived.
    pub comments_ms: Vec<f64>,
}

/// How a body is cut into the items whose arrival is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One item per `\n`-terminated line.
    Lines,
    /// One item per `<div>…</div>`, arriving with its `</div>`.
    Divs,
    /// One item per Server-Sent Event, arriving with the blank line that ends it.
    Events,
}

/// One dispatched Server-Sent Events message (the fields up to a blank line).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseMessage {
    pub at_ms: f64,
    pub id: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    pub event: Option<String>,
}

/// One request: what to send and how to read the answer.
#[derive(Debug, Clone)]
pub struct Ask {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub deadline: Duration,
    /// Stop (and hang up) as soon as the response head is in.
    pub head_only: bool,
    pub framing: Framing,
    /// Wait for a permit before sending, and hold it until the response head is in: bounds how
    /// many connections are being opened at once. Timings start once the permit is held.
    pub opening: Option<Arc<Semaphore>>,
}

impl Ask {
    pub fn get(path: impl Into<String>, deadline: Duration) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            deadline,
            head_only: false,
            framing: Framing::Lines,
            opening: None,
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }
    pub fn head_only(mut self) -> Self {
        self.head_only = true;
        self
    }
    pub fn opening(mut self, gate: Arc<Semaphore>) -> Self {
        self.opening = Some(gate);
        self
    }
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

/// Cuts a (decoded) body into items as bytes arrive, stamping each item with the arrival of
/// the bytes that complete it.
#[derive(Debug)]
struct Splitter {
    sent: Instant,
    framing: Framing,
    pending: Vec<u8>,
    /// The SSE message being assembled.
    message: SseMessage,
}

impl Splitter {
    fn new(sent: Instant, framing: Framing) -> Self {
        Self { sent, framing, pending: Vec::new(), message: SseMessage::default() }
    }

    fn push(&mut self, bytes: &[u8], out: &mut Fetched) {
        let at_ms = ms(self.sent.elapsed());
        match self.framing {
            Framing::Lines => {
                for &byte in bytes {
                    if byte == b'\n' {
                        let text = String::from_utf8_lossy(&self.pending).into_owned();
                        out.evidence.lines.push(LineArrival { text, at_ms });
                        self.pending.clear();
                    } else {
                        self.pending.push(byte);
                    }
                }
            }
            Framing::Divs => {
                self.pending.extend_from_slice(bytes);
                while let Some(end) = find(&self.pending, b"</div>") {
                    let before = &self.pending[..end];
                    let text = match before.windows(5).rposition(|w| w == b"<div>") {
                        Some(open) => String::from_utf8_lossy(&before[open + 5..]).into_owned(),
                        None => String::from_utf8_lossy(before).into_owned(),
                    };
                    out.evidence.lines.push(LineArrival { text, at_ms });
                    self.pending.drain(..end + 6);
                }
            }
            Framing::Events => {
                for &byte in bytes {
                    if byte != b'\n' {
                        self.pending.push(byte);
                        continue;
                    }
                    let line = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    self.sse_line(line.strip_suffix('\r').unwrap_or(&line), at_ms, out);
                }
            }
        }
    }

    /// One SSE line, as the EventSource parser reads it.
    fn sse_line(&mut self, line: &str, at_ms: f64, out: &mut Fetched) {
        if line.is_empty() {
            let message = std::mem::take(&mut self.message);
            if message != SseMessage::default() {
                if let Some(data) = &message.data {
                    out.evidence.lines.push(LineArrival { text: data.clone(), at_ms });
                }
                out.events.push(SseMessage { at_ms, ..message });
            }
            return;
        }
        if line.starts_with(':') {
            out.comments_ms.push(at_ms);
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        let message = &mut self.message;
        match field {
            "id" => message.id = Some(value),
            "data" => match &mut message.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(&value);
                }
                None => message.data = Some(value),
            },
            "retry" => message.retry = Some(value),
            "event" => message.event = Some(value),
            _ => out.evidence.notes.push(format!("unknown SSE field {field:?}")),
        }
    }

    /// Whatever is left: a last line without `\n` is kept (it is wrong, and the content check
    /// should see it).
    fn finish(&mut self, out: &mut Fetched) {
        if self.pending.is_empty() || self.framing != Framing::Lines {
            return;
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        out.evidence.notes.push(format!("body ends without a newline after {text:?}"));
        out.evidence.lines.push(LineArrival { text, at_ms: ms(self.sent.elapsed()) });
        self.pending.clear();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn client(timeout: Duration) -> reqwest::Client {
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
    cfg: &Config, method: Method, path: &str, deadline: Duration, head_only: bool,
) -> Fetched {
    let mut ask = Ask::get(path, deadline);
    ask.method = method;
    ask.head_only = head_only;
    send(cfg, ask).await
}

/// Sends `ask` over HTTP/1.1 and reads the answer: a body with a Content-Encoding is decoded
/// as it arrives, and the decoded items are timed.
pub async fn send(cfg: &Config, ask: Ask) -> Fetched {
    let mut out = Fetched::default();
    out.evidence.request = format!("{} {} HTTP/1.1", ask.method, ask.path);
    for (name, value) in &ask.headers {
        out.evidence.request.push_str(&format!(" [{name}: {value}]"));
    }
    let url = format!("{}{}", cfg.base, ask.path);
    let mut request = client(ask.deadline).request(ask.method, &url);
    for (name, value) in &ask.headers {
        request = request.header(*name, value);
    }
    let permit = match ask.opening {
        Some(gate) => Some(gate.acquire_owned().await.expect("the gate is never closed")),
        None => None,
    };
    let sent = Instant::now();
    let answer = tokio::time::timeout(ask.deadline, request.send()).await;
    drop(permit);
    let mut response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            out.error = Some(describe(&err));
            return out;
        }
        Err(_) => {
            out.error = Some(format!("no response head within {} ms", ask.deadline.as_millis()));
            return out;
        }
    };
    let evidence = &mut out.evidence;
    evidence.head_ms = Some(ms(sent.elapsed()));
    evidence.status = Some(response.status().as_u16());
    evidence.headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    if ask.head_only {
        return out;
    }
    let mut decoder = match Decoder::new(out.header("content-encoding")) {
        Ok(decoder) => decoder,
        Err(error) => {
            out.error = Some(error);
            return out;
        }
    };
    let mut splitter = Splitter::new(sent, ask.framing);
    let end = sent + ask.deadline;
    loop {
        let chunk = match tokio::time::timeout_at(end.into(), response.chunk()).await {
            Ok(Ok(Some(chunk))) => decoder.push(&chunk),
            Ok(Ok(None)) => {
                out.evidence.end_ms = Some(ms(sent.elapsed()));
                match decoder.finish() {
                    Ok(rest) => {
                        out.body.extend_from_slice(&rest);
                        splitter.push(&rest, &mut out);
                    }
                    Err(error) => out.error = Some(error),
                }
                break;
            }
            Ok(Err(err)) => {
                out.error = Some(format!("body broke off: {}", describe(&err)));
                break;
            }
            Err(_) => {
                out.error =
                    Some(format!("body did not end within {} ms", ask.deadline.as_millis()));
                break;
            }
        };
        match chunk {
            Ok(bytes) => {
                out.body.extend_from_slice(&bytes);
                splitter.push(&bytes, &mut out);
            }
            Err(error) => {
                out.error = Some(error);
                break;
            }
        }
    }
    splitter.finish(&mut out);
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
pub async fn raw(cfg: &Config, request: impl AsRef<[u8]>, deadline: Duration) -> Fetched {
    let request = request.as_ref();
    let mut out = Fetched::default();
    let first_line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut shown = String::from_utf8_lossy(&first_line[..first_line.len().min(120)]).into_owned();
    if first_line.len() > 120 {
        shown.push_str(&format!("… ({} bytes)", first_line.len()));
    }
    out.evidence.request = shown.trim_end().to_owned();
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
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&head) {
            Ok(httparse::Status::Complete(len)) => {
                out.evidence.head_ms = Some(ms(sent.elapsed()));
                out.evidence.status = response.code;
                out.evidence.headers = response
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into()))
                    .collect();
                let rest = head[len..].to_vec();
                out.body.extend_from_slice(&rest);
                splitter.push(&rest, &mut out);
            }
            Ok(httparse::Status::Partial) => {}
            Err(err) => {
                out.error = Some(format!("malformed response head: {err}"));
                break;
            }
        }
    }
    splitter.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(framing: Framing, parts: &[&[u8]]) -> Fetched {
        let mut splitter = Splitter::new(Instant::now(), framing);
        let mut out = Fetched::default();
        for part in parts {
            splitter.push(part, &mut out);
        }
        splitter.finish(&mut out);
        out
    }

    fn texts(out: &Fetched) -> Vec<&str> {
        out.lines().iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn lines_are_stamped_when_their_newline_arrives() {
        let out = split(Framing::Lines, &[b"1\n2", b"\n3\n4"]);
        assert_eq!(texts(&out), ["1", "2", "3", "4"]);
        assert_eq!(out.evidence.notes.len(), 1, "a last line without newline is noted");
    }

    #[test]
    fn divs_arrive_with_their_closing_tag() {
        let out = split(
            Framing::Divs,
            &[b"<!doctype html><html><body><div>1</d", b"iv>  <div>2</div>", b"</body>"],
        );
        assert_eq!(texts(&out), ["1", "2"]);
    }

    #[test]
    fn events_are_parsed_as_eventsource_does() {
        let out = split(
            Framing::Events,
            &[b"retry: 1000\nid: 1\ndata: 1\n\n:\n\nid:2\r\ndata: 2\r\n", b"\r\n"],
        );
        assert_eq!(texts(&out), ["1", "2"]);
        assert_eq!(out.events[0].retry.as_deref(), Some("1000"));
        assert_eq!(out.events[1].id.as_deref(), Some("2"));
        assert_eq!(out.comments_ms.len(), 1);
    }
}
