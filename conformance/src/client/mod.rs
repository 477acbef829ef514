//! The client layer, shared by the catalogue's checks and `diagnose`: send one request and
//! timestamp every item of the answer as the bytes that complete it are decoded. Two ways in:
//! reqwest for ordinary exchanges (`exchange.rs`: HTTP/1.1, HTTP/2 by ALPN or prior knowledge,
//! TLS with rustls), and a raw HTTP/1 exchange (`raw.rs`, over TCP or TLS by [`tls`]) for what
//! an HTTP library hides (an HTTP/1.0 request, bytes after a HEAD response), and HTTP/2 frames
//! by hand (`frames.rs`) for what an HTTP/2 library will not send. Where requests go
//! is `target.rs`; what comes back is a [`Fetched`]. It knows no verdicts and no catalogue.

use std::{sync::Arc, time::Duration};

use reqwest::Method;
use serde::Serialize;
use tokio::sync::Semaphore;

mod decode;
pub mod eventsource;
mod exchange;
pub mod frames;
pub mod http2;
mod raw;
mod split;
mod target;
pub(crate) mod tls;

pub(crate) use decode::Decoder;
pub use exchange::{Exchange, client_for, fetch, send};
pub(crate) use exchange::{describe, install_provider, is_event_stream};
pub use raw::raw;
pub(crate) use raw::{Io, connect_http1};
pub use split::{Framing, SseMessage, replay};
pub use target::{Protocol, Target, Transport, TransportArgs};

use crate::outcome::{Evidence, LineArrival};

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
    /// The HTTP version of the response: `HTTP/1.1`, `h2`, …
    pub version: Option<String>,
    /// Every piece of body the transport handed over (an HTTP/1.1 read or chunk, an HTTP/2
    /// DATA frame), with its size before and after content decoding.
    pub chunks: Vec<Chunk>,
}

/// One piece of body as the transport delivered it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Chunk {
    pub at_ms: f64,
    /// Bytes on the wire (after transfer decoding, before content decoding).
    pub bytes: usize,
    /// Bytes after content decoding.
    pub decoded: usize,
}

/// One request: what to send and how to read the answer.
#[derive(Debug, Clone)]
pub struct Ask {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
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
            body: None,
            deadline,
            head_only: false,
            framing: Framing::Lines,
            opening: None,
        }
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
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

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
