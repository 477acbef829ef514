//! The client layer, shared by the catalogue's checks and `diagnose`: send one request and
//! timestamp every item of the answer as the bytes that complete it are decoded. Two ways in:
//! reqwest for ordinary exchanges (HTTP/1.1, HTTP/2 by ALPN or prior knowledge, TLS with
//! rustls), and a raw HTTP/1 exchange (over TCP, or TLS by [`tls`]) for what an HTTP library
//! hides (an HTTP/1.0 request, bytes after a HEAD response). It knows no verdicts and no
//! catalogue.

use std::{
    sync::{Arc, Mutex, Once},
    time::{Duration, Instant},
};

use reqwest::Method;
use serde::Serialize;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};

mod decode;
pub mod eventsource;
pub mod http2;
mod split;
pub(crate) mod tls;

pub(crate) use decode::Decoder;
use split::Splitter;
pub use split::{Framing, SseMessage, replay};

use crate::{Evidence, LineArrival};

/// Where requests go, and over what.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` or `https://host:port`, maybe with a path prefix; no trailing slash.
    pub base: String,
    pub transport: Transport,
}

/// How to reach the server: the HTTP version to ask for and whom to trust over TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    pub protocol: Protocol,
    /// PEM certificates to trust instead of the system's roots (curl's `--cacert`).
    pub cacert: Option<Vec<u8>>,
    /// Accept any certificate (curl's `--insecure`).
    pub insecure: bool,
}

/// Which HTTP version to ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// What a browser does: HTTP/1.1 on `http://`; over TLS, ALPN offers `h2` and `http/1.1`.
    #[default]
    Auto,
    /// HTTP/1.1 only (ALPN `http/1.1`).
    Http1,
    /// HTTP/2 only: ALPN `h2` over TLS, prior knowledge (h2c) on `http://`.
    Http2,
}

/// The transport flags, named as curl's; `diagnose` and the catalogue's `--url` take them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TransportArgs {
    /// HTTP/1.1 only.
    #[arg(long = "http1.1", conflicts_with = "http2")]
    pub http1: bool,
    /// HTTP/2 only: ALPN h2 over TLS, h2c with prior knowledge on http://.
    #[arg(long = "http2")]
    pub http2: bool,
    /// Trust the PEM certificates in FILE instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Accept any TLS certificate.
    #[arg(short = 'k', long)]
    pub insecure: bool,
}

impl TransportArgs {
    /// The transport these flags ask for; fails on a `--cacert` file that cannot be read.
    pub fn transport(&self) -> Result<Transport, String> {
        let protocol = match (self.http1, self.http2) {
            (true, _) => Protocol::Http1,
            (_, true) => Protocol::Http2,
            _ => Protocol::Auto,
        };
        let cacert = match &self.cacert {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("--cacert {}: cannot read it: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Transport { protocol, cacert, insecure: self.insecure })
    }
}

impl Target {
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), transport: Transport::default() }
    }

    /// `host:port` of the base URL as written in it (the port may be left out), for the
    /// `Host` header of raw exchanges.
    pub fn host_port(&self) -> &str {
        let rest = self.base.split_once("://").map_or(&*self.base, |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    /// Whether the base URL is `https://`.
    pub fn is_tls(&self) -> bool {
        self.base.starts_with("https://")
    }

    /// The host (as written: a name, an address, `[v6]`) and the address to connect to, with
    /// the scheme's port when the URL gives none.
    pub fn host_and_address(&self) -> (&str, String) {
        let authority = self.host_port();
        let port_at = authority.rfind(':').filter(|&i| !authority[i..].contains(']'));
        match port_at {
            Some(i) => (&authority[..i], authority.to_owned()),
            None => (authority, format!("{authority}:{}", if self.is_tls() { 443 } else { 80 })),
        }
    }

    /// Whether requests to this target speak HTTP/2: asked for, or (the default over TLS)
    /// what ALPN is expected to choose. [`crate::run`] replaces the default by what the server
    /// chose.
    pub fn speaks_h2(&self) -> bool {
        match self.transport.protocol {
            Protocol::Http2 => true,
            Protocol::Http1 => false,
            Protocol::Auto => self.is_tls(),
        }
    }

    /// The request target for `path` on a raw connection: the base URL's own path (a proxy
    /// may serve the stream under a prefix) followed by `path`.
    pub fn path(&self, path: &str) -> String {
        let rest = self.base.split_once("://").map_or(&*self.base, |(_, r)| r);
        let prefix = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{prefix}{path}")
    }
}

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

/// A client for `transport`, made once per transport and timeout: building one loads the
/// system's root certificates, which 200 requests at once (the load check) made a measurable
/// load on the server under test. Fails only on certificates that do not parse.
pub fn client_for(transport: &Transport, timeout: Duration) -> Result<reqwest::Client, String> {
    static CLIENTS: Mutex<Vec<(Transport, Duration, reqwest::Client)>> = Mutex::new(Vec::new());
    let mut clients = CLIENTS.lock().expect("not poisoned");
    if let Some((.., client)) = clients.iter().find(|(t, d, _)| t == transport && *d == timeout) {
        return Ok(client.clone());
    }
    let client = build_client(transport, timeout)?;
    clients.push((transport.clone(), timeout, client.clone()));
    Ok(client)
}

/// ring, as named in Cargo.toml; installed once so reqwest and every rustls config agree.
fn install_provider() {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn build_client(transport: &Transport, timeout: Duration) -> Result<reqwest::Client, String> {
    install_provider();
    let mut builder = reqwest::Client::builder()
        // Environment proxy settings would apply even to 127.0.0.1, and would add a layer.
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(timeout)
        // Every request gets a fresh connection of its own (the client is shared).
        .pool_max_idle_per_host(0)
        // As curl without -L: a redirect is an answer to report, not to follow.
        .redirect(reqwest::redirect::Policy::none());
    builder = match transport.protocol {
        Protocol::Auto => builder,
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_prior_knowledge(),
    };
    // The same trust as the raw and h2 connections: curl's (see `tls`).
    builder = builder.tls_backend_preconfigured(tls::for_reqwest(transport)?);
    builder.build().map_err(|e| format!("cannot set up the client: {}", describe(&e)))
}

/// `method path`, reading the body until it ends or `deadline` passes.
/// With `head_only`, stops (and hangs up) as soon as the response head is in.
pub async fn fetch(
    target: &Target, method: Method, path: &str, deadline: Duration, head_only: bool,
) -> Fetched {
    let mut ask = Ask::get(path, deadline);
    ask.method = method;
    ask.head_only = head_only;
    send(target, ask).await
}

/// Sends `ask` and reads the answer: a body with a Content-Encoding is decoded as it arrives,
/// and the decoded items are timed.
pub async fn send(target: &Target, ask: Ask) -> Fetched {
    match Exchange::start(target, ask).await {
        Ok(mut exchange) => {
            while exchange.next().await {}
            exchange.finish()
        }
        Err(fetched) => fetched,
    }
}

/// A response being read: [`Exchange::next`] takes in one more piece of body, so a caller can
/// show items the moment they arrive.
pub struct Exchange {
    pub out: Fetched,
    sent: Instant,
    end: Instant,
    deadline: Duration,
    response: reqwest::Response,
    decoder: Decoder,
    splitter: Splitter,
}

impl Exchange {
    /// Sends the request and waits for the response head. On failure, what is known so far.
    pub async fn start(target: &Target, ask: Ask) -> Result<Self, Fetched> {
        let mut out = Fetched::default();
        out.evidence.request = format!("{} {}", ask.method, ask.path);
        for (name, value) in &ask.headers {
            out.evidence.request.push_str(&format!(" [{name}: {value}]"));
        }
        let client = match client_for(&target.transport, ask.deadline) {
            Ok(client) => client,
            Err(error) => {
                out.error = Some(error);
                return Err(out);
            }
        };
        let url = format!("{}{}", target.base, ask.path);
        let mut request = client.request(ask.method, &url);
        for (name, value) in &ask.headers {
            request = request.header(name, value);
        }
        if let Some(body) = ask.body {
            request = request.body(body);
        }
        let permit = match ask.opening {
            Some(gate) => Some(gate.acquire_owned().await.expect("the gate is never closed")),
            None => None,
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout(ask.deadline, request.send()).await;
        drop(permit);
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                out.error = Some(match tls_refusal(&err) {
                    Some(refused) => {
                        format!(
                            "TLS handshake failed: {}",
                            tls::explain(refused, &target.transport)
                        )
                    }
                    None => describe(&err),
                });
                return Err(out);
            }
            Err(_) => {
                out.error =
                    Some(format!("no response head within {} ms", ask.deadline.as_millis()));
                return Err(out);
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
        out.version = Some(version_name(response.version()).to_owned());
        if ask.head_only {
            return Err(out);
        }
        let decoder = match Decoder::new(out.header("content-encoding")) {
            Ok(decoder) => decoder,
            Err(error) => {
                out.error = Some(error);
                return Err(out);
            }
        };
        let framing = match ask.framing {
            Framing::Auto if is_event_stream(out.header("content-type")) => Framing::Events,
            Framing::Auto => Framing::Lines,
            framing => framing,
        };
        Ok(Self {
            out,
            sent,
            end: sent + ask.deadline,
            deadline: ask.deadline,
            response,
            decoder,
            splitter: Splitter::new(sent, framing),
        })
    }

    /// When the request was sent: every `at_ms` counts from here.
    pub fn sent(&self) -> Instant {
        self.sent
    }

    /// The framing the body is read with (`Auto` resolved by the content type).
    pub fn framing(&self) -> Framing {
        self.splitter.framing()
    }

    /// Reads one more piece of body. False once the body has ended, broken off or run past
    /// the deadline (then `out.error` says which).
    pub async fn next(&mut self) -> bool {
        let out = &mut self.out;
        let piece = tokio::time::timeout_at(self.end.into(), self.response.chunk()).await;
        let (bytes, decoded) = match piece {
            Ok(Ok(Some(chunk))) => (chunk.len(), self.decoder.push(&chunk)),
            Ok(Ok(None)) => {
                out.evidence.end_ms = Some(ms(self.sent.elapsed()));
                match self.decoder.finish() {
                    Ok(rest) if !rest.is_empty() => {
                        out.chunks.push(Chunk {
                            at_ms: ms(self.sent.elapsed()),
                            bytes: 0,
                            decoded: rest.len(),
                        });
                        out.body.extend_from_slice(&rest);
                        self.splitter.push(&rest, out);
                    }
                    Ok(_) => {}
                    Err(error) => out.error = Some(error),
                }
                return false;
            }
            Ok(Err(err)) => {
                out.error = Some(format!("body broke off: {}", describe(&err)));
                return false;
            }
            Err(_) => {
                out.error =
                    Some(format!("body did not end within {} ms", self.deadline.as_millis()));
                return false;
            }
        };
        match decoded {
            Ok(decoded) => {
                let at_ms = ms(self.sent.elapsed());
                out.chunks.push(Chunk { at_ms, bytes, decoded: decoded.len() });
                out.body.extend_from_slice(&decoded);
                self.splitter.push(&decoded, out);
                true
            }
            Err(error) => {
                out.error = Some(error);
                false
            }
        }
    }

    /// What was read, the last unterminated line included.
    pub fn finish(mut self) -> Fetched {
        self.splitter.finish(&mut self.out);
        self.out
    }
}

pub(crate) fn is_event_stream(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/event-stream"))
}

fn version_name(version: reqwest::Version) -> &'static str {
    match version {
        reqwest::Version::HTTP_09 => "HTTP/0.9",
        reqwest::Version::HTTP_10 => "HTTP/1.0",
        reqwest::Version::HTTP_11 => "HTTP/1.1",
        reqwest::Version::HTTP_2 => "h2",
        reqwest::Version::HTTP_3 => "h3",
        _ => "unknown",
    }
}

/// The error and its causes on one line: reqwest's top-level message alone is rarely enough.
pub(crate) fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The TLS refusal behind a failed request, if that is what it was: reqwest's connector
/// wraps rustls's error in an `io::Error`, within another.
fn tls_refusal(err: &reqwest::Error) -> Option<&rustls::Error> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let mut inner: &(dyn std::error::Error + 'static) = cause;
        while let Some(io) = inner.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            inner = io;
        }
        if let Some(refused) = inner.downcast_ref::<rustls::Error>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// A connection that reads and writes: plain TCP, or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection for a raw HTTP/1 exchange: TCP, and over `https://` TLS with ALPN `http/1.1`.
async fn connect_http1(target: &Target) -> Result<Box<dyn Io>, String> {
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
    let first_line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut shown = String::from_utf8_lossy(&first_line[..first_line.len().min(120)]).into_owned();
    if first_line.len() > 120 {
        shown.push_str(&format!("… ({} bytes)", first_line.len()));
    }
    out.evidence.request = shown.trim_end().to_owned();
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
