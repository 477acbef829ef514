//! A deliberately broken counting-stream server: correct with `Fault::None`, and with one fault
//! switched on, wrong in exactly the way one conformance check must catch.
//!
//! It writes HTTP by hand on purpose: the faults (chunked to HTTP/1.0, a body after HEAD, a
//! Content-Length on a stream, …) are things a good HTTP library will not let you do.

use std::{future::Future, io::Write, net::SocketAddr, sync::Arc, time::Duration};

use conformance::servers::ServerLog;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::{Instant, sleep, sleep_until},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Follows the contract.
    None,
    /// Nothing listens on the address.
    NotListening,
    /// Collects the whole body, then sends it.
    Buffered,
    /// Sets Content-Length (and streams the bytes without chunking).
    ContentLength,
    Etag,
    LastModified,
    NoCacheControl,
    NoAccelBuffering,
    NoNosniff,
    WrongContentType,
    /// Close-delimited instead of chunked on HTTP/1.1.
    NotChunked,
    /// Counts from 0.
    WrongContent,
    /// Starts the whole schedule one interval late.
    FirstLineLate,
    /// Lines come 0.6 intervals apart.
    FastSchedule,
    /// Every even line is held back and sent with the next one.
    Pairs,
    /// Sleeps interval + a third after each line instead of until a deadline.
    Drift,
    /// Keeps the body open one interval after the last line.
    Linger,
    /// Sends the body on HEAD too.
    HeadBody,
    /// Runs the generator for HEAD and answers when it is done.
    HeadRunsGenerator,
    /// HEAD leaves out the caching headers.
    HeadMissingHeaders,
    /// Sends chunked encoding to HTTP/1.0 clients.
    ChunkedToHttp10,
    /// Sends chunked encoding to HTTP/1.0 clients when it compresses (actix's Compress does
    /// this unless told otherwise).
    ChunkedToCompressedHttp10,
    /// Buffers the body for HTTP/1.0 clients.
    BufferedForHttp10,
    /// Ignores bad parameters and streams the defaults.
    AcceptsBadInput,
    /// Answers 400 with an empty body.
    SilentBadInput,
    /// Answers 400 naming the parameter and value, but not the allowed range.
    VagueBadInput,
    /// Stops accepting connections after the first bad request.
    DiesAfterBadInput,
    /// Serves the stream on every path.
    NoNotFound,
    /// 405 without an Allow header.
    NoAllow,
    /// 404 on `/`.
    NoIndex,
    /// Defaults to 3 lines.
    WrongDefaults,
    /// Compresses with the client's encoding but flushes only at the end of the body.
    NeverFlushes,
    /// Gzips everything, asked or not (what warp's compression filters do).
    CompressesUnasked,
    /// Never compresses (allowed, but warned about).
    NoCompression,
    /// `/stream.html` is served as text/plain.
    HtmlWrongContentType,
    /// `/stream.html` ignores `pad` and always pads 1024 spaces.
    HtmlIgnoresPad,
    /// `/stream.html` is collected, then sent.
    HtmlBuffered,
    /// `/events` is served as text/plain.
    EventsWrongContentType,
    /// Events carry no `id:`.
    EventsNoIds,
    /// No `retry:` hint.
    EventsNoRetry,
    /// `/events` is collected, then sent.
    EventsBuffered,
    /// `Last-Event-ID` is ignored: a reconnecting client starts again at 1.
    EventsIgnoreLastEventId,
    /// A bad `Last-Event-ID` is taken as 0.
    EventsAcceptBadLastEventId,
    /// No keep-alive comments.
    EventsNoKeepalive,
    /// Ignores write errors: a stream whose client has gone runs its schedule to the end.
    KeepsGenerating,
    /// Produces the whole body up front and queues it, however slowly the client reads.
    BuffersAhead,
    /// Serves one connection at a time.
    OneAtATime,
    /// Answers an HTTP/1.1 request without Host.
    AcceptsNoHost,
    /// Waits forever for headers that never finish.
    NoHeaderTimeout,
    /// Exits at once on SIGTERM, cutting the streams in flight.
    ShutdownCutsStreams,
    /// On SIGTERM, waits for the streams however long they take.
    ShutdownIgnoresGrace,
    /// On SIGTERM, keeps waiting for connections that have not sent a request yet.
    ShutdownWaitsForIdle,
    /// Collects the whole body, then sends the head with a Content-Length and the body (what
    /// a middleware that needs the length does).
    CollectedBody,
    /// The first item is held back and sent with the second.
    FirstLineHeld,
    /// Streams, with the headers of a CDN in front (`cf-ray`) and no `no-transform`.
    CdnHeaders,
    /// A cache in front replays a stored answer: every item at once, with `Age` and
    /// `X-Cache: HIT`. A request with `Cache-Control: no-cache` reaches the origin, which
    /// streams (`X-Cache: MISS`).
    Cached,
    /// Over HTTP/2 (h2c with prior knowledge), collects the body and sends it at the end;
    /// HTTP/1.1 streams.
    Http2Buffered,
    /// Over HTTP/2, holds the response head until the first item, one interval late.
    H2HeadersLate,
    /// Over HTTP/2, holds every odd item and sends it with the next in one DATA frame.
    H2Coalesced,
    /// Over HTTP/2, allows 10 concurrent streams per connection.
    H2FewStreams,
    /// Over HTTP/2, shuts down without GOAWAY: open connections keep taking new streams.
    H2NoGoaway,
}

/// Where the server logs: stderr, and a [`ServerLog`] the tests can read.
#[derive(Clone, Default)]
pub struct Logger(Option<ServerLog>);

impl Logger {
    fn info(&self, line: String) {
        eprintln!("INFO broken: {line}");
        if let Some(log) = &self.0 {
            log.push(format!("INFO broken: {line}"));
        }
    }
}

/// Binds 127.0.0.1:0 and serves with `fault` until the runtime ends.
pub async fn start(fault: Fault) -> SocketAddr {
    start_logged(fault).await.0
}

/// Binds with a listen backlog of 1024, as the examples do: with `TcpListener::bind`'s 128, the
/// load check's 200 connections at once overflowed the accept queue on a busy machine, and the
/// rest waited a 1 s SYN retry.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Like [`start`], with the server's log.
pub async fn start_logged(fault: Fault) -> (SocketAddr, ServerLog) {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let log = ServerLog::default();
    if fault != Fault::NotListening {
        // The listener is dropped otherwise: connections are refused.
        let logger = Logger(Some(log.clone()));
        let never = std::future::pending();
        tokio::spawn(serve(listener, fault, logger, never, Duration::from_secs(30)));
    }
    (addr, log)
}

/// Serves until `shutdown`; then stops accepting, lets the streams run for `grace`, ends the
/// rest cleanly and returns once none is left.
pub async fn serve(
    listener: TcpListener, fault: Fault, logger: Logger, shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    if fault == Fault::NotListening {
        return;
    }
    let (died_tx, mut died) = tokio::sync::mpsc::channel::<()>(1);
    let (grace_tx, grace_over) = watch::channel(false);
    // Set when shutdown starts: connections that have not sent a request by then are closed.
    let (stopping_tx, stopping) = watch::channel(false);
    let open = Arc::new(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = died.recv() => return, // drops the listener: connections are refused
            _ = &mut shutdown => break,
        };
        let died = died_tx.clone();
        let (logger, grace_over, open) = (logger.clone(), grace_over.clone(), open.clone());
        let stopping = stopping.clone();
        let connection = async move {
            let _open = open;
            if let Ok(Answer::BadInput) = handle(tcp, fault, &logger, grace_over, stopping).await
                && fault == Fault::DiesAfterBadInput
            {
                let _ = died.send(()).await;
            }
        };
        if fault == Fault::OneAtATime {
            connection.await;
        } else {
            tokio::spawn(connection);
        }
    }
    drop(listener);
    logger.info(format!("shutting down, grace {grace:?}"));
    if fault != Fault::ShutdownWaitsForIdle {
        stopping_tx.send_replace(true);
    }
    if fault == Fault::ShutdownCutsStreams {
        return;
    }
    if fault != Fault::ShutdownIgnoresGrace {
        tokio::spawn(async move {
            sleep(grace).await;
            let _ = grace_tx.send(true);
        });
    }
    while Arc::strong_count(&open) > 1 {
        sleep(Duration::from_millis(10)).await;
    }
}

enum Answer {
    Ok,
    BadInput,
}

struct Request {
    method: String,
    path: String,
    query: String,
    http10: bool,
    host: bool,
    accept_encoding: Option<String>,
    last_event_id: Option<String>,
    /// `Cache-Control: no-cache` was asked for.
    no_cache: bool,
}

async fn read_request(tcp: &mut TcpStream) -> std::io::Result<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).map_err(std::io::Error::other)?;
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    Ok(Request {
        method: req.method.unwrap_or("GET").to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        http10: req.version == Some(0),
        host: header("host").is_some(),
        accept_encoding: header("accept-encoding"),
        last_event_id: header("last-event-id"),
        no_cache: header("cache-control").is_some_and(|v| v.contains("no-cache")),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Stream,
    Html,
    Events,
}

struct Params {
    count: u32,
    interval: Duration,
    pad: usize,
    keepalive: Duration,
}

fn parse(query: &str, endpoint: Endpoint, fault: Fault) -> Result<Params, String> {
    let default_count = if fault == Fault::WrongDefaults { 3 } else { 10 };
    let (mut count, mut interval, mut pad, mut keepalive) = (None, None, None, None);
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (slot, min, max) = match (&*name, endpoint) {
            ("count", _) => (&mut count, 1, 1_000_000),
            ("interval_ms", _) => (&mut interval, 0, 60_000),
            ("pad", Endpoint::Html) => (&mut pad, 0, 65_536),
            ("keepalive_ms", Endpoint::Events) => (&mut keepalive, 100, 600_000),
            _ => return Err(format!("unknown parameter {name:?}")),
        };
        if slot.replace(value.parse::<u32>().unwrap_or(u32::MAX)).is_some() {
            return Err(format!("{name} given twice: give it once, {min}..={max}"));
        }
        if !(min..=max).contains(&slot.unwrap_or_default()) {
            return Err(if fault == Fault::VagueBadInput {
                format!("bad {name}: {value:?}")
            } else {
                format!("invalid {name}: expected {min}..={max}, got {value:?}")
            });
        }
    }
    let pad = match pad {
        Some(pad) if fault != Fault::HtmlIgnoresPad => pad,
        _ => 1024,
    };
    Ok(Params {
        count: count.unwrap_or(default_count),
        interval: Duration::from_millis(interval.unwrap_or(1000).into()),
        pad: pad as usize,
        keepalive: Duration::from_millis(keepalive.unwrap_or(15_000).into()),
    })
}

/// The events still to send after `Last-Event-ID`; `Err` is the 400 message.
fn resume_after(req: &Request, count: u32, fault: Fault) -> Result<u32, String> {
    let raw = match &req.last_event_id {
        Some(raw) if !raw.is_empty() && fault != Fault::EventsIgnoreLastEventId => raw,
        _ => return Ok(0),
    };
    match raw.parse::<u32>() {
        Ok(id) if id <= count => Ok(id),
        _ if fault == Fault::EventsAcceptBadLastEventId => Ok(0),
        _ => Err(format!("invalid Last-Event-ID: expected 0..={count}, got {raw:?}")),
    }
}

/// A compressor for one response; flushing after each write is what keeps a stream a stream.
enum Encoder {
    Identity,
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// The first encoding in the client's list that we have (q=0 means refused).
    fn negotiate(req: &Request, fault: Fault) -> (Self, Option<&'static str>) {
        if fault == Fault::CompressesUnasked {
            return (Self::new("gzip"), Some("gzip"));
        }
        if fault == Fault::NoCompression {
            return (Self::Identity, None);
        }
        let accept = req.accept_encoding.as_deref().unwrap_or("");
        for item in accept.split(',') {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default().to_ascii_lowercase();
            if parts.any(|p| p == "q=0") {
                continue;
            }
            if let Some(known) = ["gzip", "br", "zstd", "deflate"].into_iter().find(|k| *k == name)
            {
                return (Self::new(known), Some(known));
            }
        }
        (Self::Identity, None)
    }

    fn new(encoding: &str) -> Self {
        let level = flate2::Compression::fast();
        match encoding {
            "gzip" => Self::Gzip(flate2::write::GzEncoder::new(Vec::new(), level)),
            "deflate" => Self::Deflate(flate2::write::ZlibEncoder::new(Vec::new(), level)),
            "br" => Self::Br(Box::new(brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22))),
            "zstd" => Self::Zstd(zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd")),
            _ => Self::Identity,
        }
    }

    /// Compresses `bytes`; with `flush`, everything so far comes out now.
    fn encode(&mut self, bytes: &[u8], flush: bool) -> Vec<u8> {
        fn run<W: Write>(
            w: &mut W, bytes: &[u8], flush: bool, out: fn(&mut W) -> &mut Vec<u8>,
        ) -> Vec<u8> {
            w.write_all(bytes).expect("compress into memory");
            if flush {
                w.flush().expect("flush into memory");
            }
            std::mem::take(out(w))
        }
        match self {
            Self::Identity => bytes.to_vec(),
            Self::Gzip(e) => run(e, bytes, flush, |e| e.get_mut()),
            Self::Deflate(e) => run(e, bytes, flush, |e| e.get_mut()),
            Self::Br(e) => run(&mut **e, bytes, flush, |e| e.get_mut()),
            Self::Zstd(e) => run(e, bytes, flush, |e| e.get_mut()),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Identity => Vec::new(),
            Self::Gzip(e) => e.finish().expect("finish gzip"),
            Self::Deflate(e) => e.finish().expect("finish deflate"),
            Self::Br(e) => e.into_inner(),
            Self::Zstd(e) => e.finish().expect("finish zstd"),
        }
    }

    /// A whole body at once.
    fn all(mut self, body: &[u8]) -> Vec<u8> {
        let mut out = self.encode(body, false);
        out.extend(self.finish());
        out
    }
}

/// The examples' page (fetch() + EventSource), so the browser tests have a control too.
const INDEX: &str = include_str!("../../../examples-axum/src/index.html");

async fn handle(
    mut tcp: TcpStream, fault: Fault, logger: &Logger, grace_over: watch::Receiver<bool>,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<Answer> {
    tcp.set_nodelay(true)?;
    // HTTP/2 with prior knowledge starts with its preface, `PRI * HTTP/2.0`.
    // A connection that sends nothing is closed after 10 s, or at once when shutting down.
    let mut preface = [0u8; 3];
    let peek = async {
        match fault {
            Fault::NoHeaderTimeout => Some(tcp.peek(&mut preface).await),
            _ => tokio::time::timeout(Duration::from_secs(10), tcp.peek(&mut preface)).await.ok(),
        }
    };
    let peeked = tokio::select! {
        peeked = peek => match peeked {
            Some(peeked) => peeked?,
            None => return Ok(Answer::Ok),
        },
        _ = stopping.wait_for(|stopping| *stopping) => return Ok(Answer::Ok),
    };
    if peeked == 3 && &preface == b"PRI" {
        return match fault {
            Fault::Http2Buffered => h2_buffered(tcp).await,
            fault => h2_stream(tcp, fault, logger.clone(), stopping).await,
        };
    }
    let read = async {
        if fault == Fault::NoHeaderTimeout {
            return Some(read_request(&mut tcp).await);
        }
        tokio::time::timeout(Duration::from_secs(10), read_request(&mut tcp)).await.ok()
    };
    let req = tokio::select! {
        read = read => match read {
            Some(req) => req?,
            None => return Ok(Answer::Ok), // closes the connection
        },
        // Shutting down, and no request came: nothing to finish.
        _ = stopping.wait_for(|stopping| *stopping) => return Ok(Answer::Ok),
    };
    if !req.http10 && !req.host && fault != Fault::AcceptsNoHost {
        let message = "HTTP/1.1 requests need a Host header\n";
        simple(&mut tcp, &req, fault, "400 Bad Request", &[], message).await?;
        return Ok(Answer::BadInput);
    }
    let endpoint = match req.path.as_str() {
        "/stream" => Some(Endpoint::Stream),
        "/stream.html" => Some(Endpoint::Html),
        "/events" => Some(Endpoint::Events),
        _ if fault == Fault::NoNotFound => Some(Endpoint::Stream),
        _ => None,
    };
    match (req.path.as_str(), req.method.as_str(), endpoint) {
        ("/", "GET", _) if fault != Fault::NoIndex => {
            let html = &["content-type: text/html; charset=utf-8"];
            simple(&mut tcp, &req, fault, "200 OK", html, INDEX).await?;
        }
        ("/moved", _, None) => {
            simple(&mut tcp, &req, fault, "302 Found", &["location: /stream"], "").await?;
        }
        ("/fail", _, None) => {
            simple(&mut tcp, &req, fault, "500 Internal Server Error", &[], "it broke\n").await?;
        }
        (_, _, None) => simple(&mut tcp, &req, fault, "404 Not Found", &[], "not found\n").await?,
        (_, "GET" | "HEAD", Some(endpoint)) => {
            return stream(&mut tcp, &req, endpoint, fault, logger, grace_over).await;
        }
        _ => {
            let allow: &[&str] = if fault == Fault::NoAllow { &[] } else { &["allow: GET, HEAD"] };
            simple(&mut tcp, &req, fault, "405 Method Not Allowed", allow, "method not allowed\n")
                .await?;
        }
    }
    Ok(Answer::Ok)
}

/// A complete response, compressed when the client asks; `extra` may replace the
/// content-type.
async fn simple(
    tcp: &mut TcpStream, req: &Request, fault: Fault, status: &str, extra: &[&str], body: &str,
) -> std::io::Result<()> {
    let (encoder, encoding) = Encoder::negotiate(req, fault);
    let body = encoder.all(body.as_bytes());
    let mut head =
        format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    if !extra.iter().any(|h| h.starts_with("content-type")) {
        head.push_str("content-type: text/plain; charset=utf-8\r\n");
    }
    if let Some(encoding) = encoding {
        head.push_str(&format!("content-encoding: {encoding}\r\n"));
    }
    for header in extra {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(&body).await
}

/// Logs how a stream ended when it is dropped, as the examples do.
struct Progress<'a> {
    logger: &'a Logger,
    produced: u32,
    of: u32,
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        let (k, n) = (self.produced, self.of);
        self.logger.info(if k == n {
            format!("stream completed: {n} of {n} items")
        } else {
            format!("stream cancelled after {k} of {n} items")
        });
    }
}

async fn stream(
    tcp: &mut TcpStream, req: &Request, endpoint: Endpoint, fault: Fault, logger: &Logger,
    mut grace_over: watch::Receiver<bool>,
) -> std::io::Result<Answer> {
    let params = match parse(&req.query, endpoint, fault) {
        Ok(params) => params,
        Err(_) if fault == Fault::AcceptsBadInput => parse("", endpoint, fault).expect("defaults"),
        Err(message) => {
            let body = if fault == Fault::SilentBadInput { String::new() } else { message + "\n" };
            simple(tcp, req, fault, "400 Bad Request", &[], &body).await?;
            return Ok(Answer::BadInput);
        }
    };
    let (count, interval) = (params.count, params.interval);
    let mut first = 1;
    if endpoint == Endpoint::Events {
        match resume_after(req, count, fault) {
            Ok(done) if done == count => {
                simple(tcp, req, fault, "204 No Content", &[], "").await?;
                return Ok(Answer::Ok);
            }
            Ok(done) => first = done + 1,
            Err(message) => {
                simple(tcp, req, fault, "400 Bad Request", &[], &(message + "\n")).await?;
                return Ok(Answer::BadInput);
            }
        }
    }
    let head_request = req.method == "HEAD";
    let replayed = fault == Fault::Cached && !req.no_cache;
    let shown = |k: u32| {
        if fault == Fault::WrongContent { k - 1 } else { k }
    };
    let item = |k: u32| match endpoint {
        Endpoint::Stream => format!("{}\n", shown(k)),
        Endpoint::Html => format!("<div>{}</div>{}", shown(k), " ".repeat(params.pad)),
        Endpoint::Events if fault == Fault::EventsNoIds => format!("data: {k}\n\n"),
        Endpoint::Events => format!("id: {k}\ndata: {k}\n\n"),
    };
    let n = (count + 1 - first) as usize;
    // Produced as they are due, unless the fault queues them all up front.
    let mut ahead: std::collections::VecDeque<String> = if fault == Fault::BuffersAhead {
        (first..=count).map(item).collect()
    } else {
        Default::default()
    };
    let (prefix, suffix) = match endpoint {
        Endpoint::Stream => ("", ""),
        Endpoint::Html => ("<!doctype html><html><body>", "</body></html>"),
        Endpoint::Events if fault == Fault::EventsNoRetry => ("", ""),
        Endpoint::Events => ("retry: 1000\n\n", ""),
    };

    let chunked = match fault {
        Fault::ContentLength | Fault::NotChunked | Fault::CollectedBody => false,
        Fault::ChunkedToHttp10 => true,
        _ => !req.http10,
    };
    let (mut encoder, encoding) = Encoder::negotiate(req, fault);
    let chunked = chunked || (fault == Fault::ChunkedToCompressedHttp10 && encoding.is_some());
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    let mut header = |h: &str| {
        head.push_str(h);
        head.push_str("\r\n");
    };
    header(match (endpoint, fault) {
        (Endpoint::Stream, Fault::WrongContentType) => "content-type: application/octet-stream",
        (Endpoint::Stream, _) => "content-type: text/plain; charset=utf-8",
        (Endpoint::Html, Fault::HtmlWrongContentType) => "content-type: text/plain",
        (Endpoint::Html, _) => "content-type: text/html; charset=utf-8",
        (Endpoint::Events, Fault::EventsWrongContentType) => "content-type: text/plain",
        (Endpoint::Events, _) => "content-type: text/event-stream",
    });
    let head_faulty = head_request && fault == Fault::HeadMissingHeaders;
    if fault != Fault::NoCacheControl && !head_faulty {
        header("cache-control: no-cache");
    }
    if fault != Fault::NoAccelBuffering && !head_faulty {
        header("x-accel-buffering: no");
    }
    if fault != Fault::NoNosniff {
        header("x-content-type-options: nosniff");
    }
    let total: usize =
        prefix.len() + (first..=count).map(|k| item(k).len()).sum::<usize>() + suffix.len();
    match fault {
        Fault::Etag => header("etag: \"abc\""),
        Fault::LastModified => header("last-modified: Tue, 24 Nov 2026 10:00:00 GMT"),
        Fault::ContentLength => header(&format!("content-length: {total}")),
        Fault::CdnHeaders => header("cf-ray: 8e1f2a3b4c5d6e7f-AMS"),
        Fault::Cached if replayed => header("age: 42\r\nx-cache: HIT"),
        Fault::Cached => header("x-cache: MISS"),
        _ => {}
    }
    if let Some(encoding) = encoding {
        header(&format!("content-encoding: {encoding}"));
    }
    if chunked {
        header("transfer-encoding: chunked");
    }
    header("connection: close");
    head.push_str("\r\n");

    let start = Instant::now();
    let due = |k: usize| start + interval * k as u32;
    if head_request && fault == Fault::HeadRunsGenerator {
        sleep_until(due(n.saturating_sub(1))).await;
    }
    if fault == Fault::CollectedBody {
        // The length is known once the body is done: the head waits for it.
        sleep_until(due(n.saturating_sub(1))).await;
        let mut body = encoder.encode(prefix.as_bytes(), false);
        for k in first..=count {
            body.extend(encoder.encode(item(k).as_bytes(), false));
        }
        body.extend(encoder.encode(suffix.as_bytes(), false));
        body.extend(encoder.finish());
        head = head.replacen("\r\n\r\n", &format!("\r\ncontent-length: {}\r\n\r\n", body.len()), 1);
        tcp.write_all(head.as_bytes()).await?;
        if !head_request {
            tcp.write_all(&body).await?;
        }
        let _progress = Progress { logger, produced: n as u32, of: n as u32 };
        return Ok(Answer::Ok);
    }
    tcp.write_all(head.as_bytes()).await?;
    if head_request && fault != Fault::HeadBody {
        return Ok(Answer::Ok);
    }

    let flush = fault != Fault::NeverFlushes;
    let frame = |bytes: Vec<u8>| {
        if chunked && !bytes.is_empty() {
            let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
            framed.extend(bytes);
            framed.extend(b"\r\n");
            framed
        } else {
            bytes
        }
    };
    // A client that has gone away makes writes fail; that ends the stream, unless the fault
    // says to carry on regardless.
    let mut gone = false;
    let mut write = async |tcp: &mut TcpStream, bytes: &[u8]| -> std::io::Result<()> {
        match tcp.write_all(bytes).await {
            Err(_) if fault == Fault::KeepsGenerating => {
                gone = true;
                Ok(())
            }
            other => other,
        }
    };
    let buffered = fault == Fault::Buffered
        || (req.http10 && fault == Fault::BufferedForHttp10)
        || (endpoint == Endpoint::Html && fault == Fault::HtmlBuffered)
        || (endpoint == Endpoint::Events && fault == Fault::EventsBuffered);
    let keepalive = (endpoint == Endpoint::Events && fault != Fault::EventsNoKeepalive)
        .then_some(params.keepalive);
    let mut progress = Progress { logger, produced: 0, of: n as u32 };
    let mut pending = prefix.to_owned();
    let mut last_write = start;
    for (i, k) in (first..=count).enumerate() {
        let at = match fault {
            Fault::FirstLineLate => due(i + 1),
            Fault::FastSchedule => start + interval * 6 * i as u32 / 10,
            Fault::Drift if i > 0 => Instant::now() + interval + interval / 3,
            Fault::Cached if replayed => start,
            _ => due(i),
        };
        // Keep-alive comments while waiting for the next item.
        while let Some(keepalive) = keepalive.filter(|k| last_write + *k < at) {
            sleep_until(last_write + keepalive).await;
            let comment = encoder.encode(b": keep-alive\n\n", flush);
            write(tcp, &frame(comment)).await?;
            last_write = Instant::now();
        }
        let mut probe = [0u8; 1];
        tokio::select! {
            _ = sleep_until(at) => {}
            // The shutdown's grace is over: end the body cleanly after what was sent.
            _ = grace_over.wait_for(|over| *over) => break,
            // The client hung up (end of file, or an error): stop now, not at the next write.
            read = tcp.read(&mut probe), if fault != Fault::KeepsGenerating => {
                if matches!(read, Ok(0) | Err(_)) {
                    return Ok(Answer::Ok);
                }
            }
        }
        pending.push_str(&ahead.pop_front().unwrap_or_else(|| item(k)));
        progress.produced += 1;
        let hold = buffered
            || replayed
            || (fault == Fault::Pairs && i % 2 == 1 && i + 1 < n)
            || (fault == Fault::FirstLineHeld && i == 0 && n > 1);
        if !hold {
            let bytes = encoder.encode(pending.as_bytes(), flush);
            write(tcp, &frame(bytes)).await?;
            pending.clear();
            last_write = Instant::now();
        }
    }
    pending.push_str(suffix);
    let mut rest = encoder.encode(pending.as_bytes(), false);
    rest.extend(encoder.finish());
    write(tcp, &frame(rest)).await?;
    if fault == Fault::Linger {
        sleep(interval).await;
    }
    if chunked {
        write(tcp, b"0\r\n\r\n").await?;
    }
    if gone {
        // The stream ran to its end for nobody: it was cancelled when the client left.
        progress.produced = progress.produced.min(progress.of - 1);
    }
    drop(progress);
    let _ = tcp.shutdown().await;
    Ok(Answer::Ok)
}

/// [`Fault::Http2Buffered`] over h2c: the counting stream's `count` lines, `interval_ms`
/// apart, all sent when the last is due.
async fn h2_buffered(tcp: TcpStream) -> std::io::Result<Answer> {
    use http_body_util::Full;
    let service =
        hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
            let query = req.uri().query().unwrap_or("");
            let params = parse(query, Endpoint::Stream, Fault::Http2Buffered);
            let (status, body) = match params {
                Ok(params) => {
                    sleep(params.interval * params.count.saturating_sub(1)).await;
                    (200, (1..=params.count).map(|k| format!("{k}\n")).collect::<String>())
                }
                Err(message) => (400, message + "\n"),
            };
            hyper::Response::builder()
                .status(status)
                .header("content-type", "text/plain; charset=utf-8")
                .header("x-content-type-options", "nosniff")
                .body(Full::new(bytes::Bytes::from(body)))
        });
    let io = hyper_util::rt::TokioIo::new(tcp);
    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(io, service)
        .await
        .map_err(std::io::Error::other)?;
    Ok(Answer::Ok)
}

/// Every fault but [`Fault::Http2Buffered`] over h2c: `/stream` as the contract says (through
/// hyper, which makes each body frame a DATA frame), but for the h2 faults,
/// [`Fault::KeepsGenerating`] and [`Fault::HeadBody`]; other paths are 404. When shutdown
/// starts it says GOAWAY and finishes the streams it has (but for [`Fault::H2NoGoaway`]).
async fn h2_stream(
    tcp: TcpStream, fault: Fault, logger: Logger, mut stopping: watch::Receiver<bool>,
) -> std::io::Result<Answer> {
    use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
    use hyper::body::Frame;
    type Body = BoxBody<bytes::Bytes, std::convert::Infallible>;
    let text = |status: u16, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(bytes::Bytes::from(body)).boxed())
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let logger = logger.clone();
        // hyper sends whatever body a HEAD response is given; only the fault keeps it.
        let bodiless = req.method() == hyper::Method::HEAD && fault != Fault::HeadBody;
        let answer = async move {
            let query = req.uri().query().unwrap_or("").to_owned();
            if req.uri().path() != "/stream" {
                return text(404, "not found\n".into());
            }
            let params = match parse(&query, Endpoint::Stream, fault) {
                Ok(params) => params,
                Err(message) => return text(400, message + "\n"),
            };
            if fault == Fault::H2HeadersLate {
                sleep(params.interval).await;
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(1);
            tokio::spawn(h2_generate(tx, params, fault, logger));
            let frames = futures_util::stream::unfold(rx, |mut rx| async move {
                let data = rx.recv().await?;
                Some((Ok(Frame::data(data)), rx))
            });
            let body: Body = StreamBody::new(frames).boxed();
            hyper::Response::builder()
                .header("content-type", "text/plain; charset=utf-8")
                .header("cache-control", "no-cache")
                .header("x-accel-buffering", "no")
                .header("x-content-type-options", "nosniff")
                .body(body)
        };
        async move {
            let response = answer.await?;
            Ok::<_, hyper::http::Error>(match bodiless {
                true => response.map(|_| Full::new(bytes::Bytes::new()).boxed()),
                false => response,
            })
        }
    });
    let mut builder =
        hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    if fault == Fault::H2FewStreams {
        builder.max_concurrent_streams(10);
    }
    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
    tokio::pin!(connection);
    let stop = async {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stop, if fault != Fault::H2NoGoaway => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    served.map_err(std::io::Error::other)?;
    Ok(Answer::Ok)
}

/// The counting stream's items into `tx` on schedule, logged as the HTTP/1 path logs them; a
/// reset stream (the receiver gone) is cancelled, unless the fault keeps generating.
async fn h2_generate(
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>, params: Params, fault: Fault, logger: Logger,
) {
    let start = Instant::now();
    let mut progress = Progress { logger: &logger, produced: 0, of: params.count };
    let mut held = String::new();
    let mut gone = false;
    for k in 1..=params.count {
        sleep_until(start + params.interval * (k - 1)).await;
        progress.produced = k;
        held.push_str(&format!("{k}\n"));
        if fault == Fault::H2Coalesced && k % 2 == 1 && k < params.count {
            continue;
        }
        let item = bytes::Bytes::from(std::mem::take(&mut held));
        if !gone && tx.send(item).await.is_err() {
            gone = true;
        }
        if gone && fault != Fault::KeepsGenerating {
            progress.produced = k - 1;
            return;
        }
    }
    if gone {
        // The stream ran to its end for nobody: it was cancelled when the client left.
        progress.produced = progress.produced.min(progress.of - 1);
    }
}
