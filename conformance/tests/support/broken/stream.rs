//! The three streaming endpoints over HTTP/1, written by hand so that each fault can bend
//! exactly one thing: the head, the framing, the schedule, the encoding. `stream` reads as the
//! steps of an answer; each step asks the fault what to bend.

use std::{collections::VecDeque, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
    time::{Instant, sleep, sleep_until},
};

use super::{
    Answer, Encoder, Endpoint, Fault, Logger, Params, Request, parse, resume_after, simple,
};

/// Logs how a stream ended when it is dropped, as the examples do.
pub(super) struct Progress<'a> {
    pub(super) logger: &'a Logger,
    pub(super) produced: u32,
    pub(super) of: u32,
    /// The generator's error, when it failed.
    pub(super) failed: Option<String>,
}

impl<'a> Progress<'a> {
    pub(super) fn new(logger: &'a Logger, of: u32) -> Self {
        Self { logger, produced: 0, of, failed: None }
    }
}

impl Drop for Progress<'_> {
    fn drop(&mut self) {
        let (k, n) = (self.produced, self.of);
        self.logger.info(match &self.failed {
            Some(error) => format!("stream failed after {k} of {n} items: {error}"),
            None if k == n => format!("stream completed: {n} of {n} items"),
            None => format!("stream cancelled after {k} of {n} items"),
        });
    }
}

/// The generator's failure that `fail_after` asks for, when item `k` of a body starting at
/// `first` is due: only in the response that sent item `fail_after`.
pub(super) fn failure(params: &Params, first: u32, k: u32) -> Option<String> {
    (params.fail_after == Some(k - 1) && k > first)
        .then(|| format!("source failed (fail_after={})", k - 1))
}

pub(super) async fn stream(
    tcp: &mut TcpStream, req: &Request, endpoint: Endpoint, fault: Fault, logger: &Logger,
    grace_over: watch::Receiver<bool>,
) -> std::io::Result<Answer> {
    let (params, first) = match accepted(tcp, req, endpoint, fault).await? {
        Ok(accepted) => accepted,
        Err(answer) => return Ok(answer),
    };
    let body = Body::new(req, endpoint, fault, &params, first);
    let (encoder, encoding) = Encoder::negotiate(req, fault);
    let chunked = match fault {
        Fault::ContentLength | Fault::NotChunked | Fault::CollectedBody => false,
        Fault::ChunkedToHttp10 => true,
        Fault::ChunkedToCompressedHttp10 if encoding.is_some() => true,
        _ => !req.http10,
    };
    let head = head(req, &body, encoding, chunked);
    let start = Instant::now();
    let last_due = start + params.interval * body.n().saturating_sub(1);
    let head_request = req.method == "HEAD";
    if head_request && fault == Fault::HeadRunsGenerator {
        sleep_until(last_due).await;
    }
    if fault == Fault::CollectedBody {
        // The length is known once the body is done: the head waits for it.
        sleep_until(last_due).await;
        return collected(tcp, head, &body, encoder, head_request, logger).await;
    }
    tcp.write_all(head.as_bytes()).await?;
    if head_request && fault != Fault::HeadBody {
        return Ok(Answer::Ok);
    }
    let writer = Writer { chunked, keeps_generating: fault == Fault::KeepsGenerating, gone: false };
    let sending = Sending { body, params, start, encoder, writer };
    sending.run(tcp, logger, grace_over).await
}

/// The parameters and the first item (after `Last-Event-ID`), or the answer already given: a
/// 400 for bad input, a 204 when nothing is left.
async fn accepted(
    tcp: &mut TcpStream, req: &Request, endpoint: Endpoint, fault: Fault,
) -> std::io::Result<Result<(Params, u32), Answer>> {
    let params = match parse(&req.query, endpoint, fault) {
        Ok(params) => params,
        Err(_) if fault == Fault::AcceptsBadInput => parse("", endpoint, fault).expect("defaults"),
        Err(message) => {
            let body = if fault == Fault::SilentBadInput { String::new() } else { message + "\n" };
            simple(tcp, req, fault, "400 Bad Request", &[], &body).await?;
            return Ok(Err(Answer::BadInput));
        }
    };
    if endpoint != Endpoint::Events {
        return Ok(Ok((params, 1)));
    }
    match resume_after(req, params.count, fault) {
        Ok(done) if done == params.count => {
            simple(tcp, req, fault, "204 No Content", &[], "").await?;
            Ok(Err(Answer::Ok))
        }
        Ok(done) => Ok(Ok((params, done + 1))),
        Err(message) => {
            simple(tcp, req, fault, "400 Bad Request", &[], &(message + "\n")).await?;
            Ok(Err(Answer::BadInput))
        }
    }
}

/// What the body holds: items `first..=count` of `endpoint`, between a prefix and a suffix.
struct Body {
    endpoint: Endpoint,
    fault: Fault,
    first: u32,
    count: u32,
    pad: usize,
    prefix: &'static str,
    suffix: &'static str,
    /// A cache in front replays the stored answer (the `Cached` fault without `no-cache`).
    replayed: bool,
    http10: bool,
}

impl Body {
    fn new(req: &Request, endpoint: Endpoint, fault: Fault, params: &Params, first: u32) -> Self {
        let (prefix, suffix) = match endpoint {
            Endpoint::Stream => ("", ""),
            Endpoint::Html => ("<!doctype html><html><body>", "</body></html>"),
            Endpoint::Events if fault == Fault::EventsNoRetry => ("", ""),
            Endpoint::Events => ("retry: 1000\n\n", ""),
        };
        Self {
            endpoint,
            fault,
            first,
            count: params.count,
            pad: params.pad,
            prefix,
            suffix,
            replayed: fault == Fault::Cached && !req.no_cache,
            http10: req.http10,
        }
    }

    fn n(&self) -> u32 {
        self.count + 1 - self.first
    }

    fn item(&self, k: u32) -> String {
        let shown = if self.fault == Fault::WrongContent { k - 1 } else { k };
        match self.endpoint {
            Endpoint::Stream => format!("{shown}\n"),
            Endpoint::Html => format!("<div>{shown}</div>{}", " ".repeat(self.pad)),
            Endpoint::Events if self.fault == Fault::EventsNoIds => format!("data: {k}\n\n"),
            Endpoint::Events => format!("id: {k}\ndata: {k}\n\n"),
        }
    }

    fn len(&self) -> usize {
        let items: usize = (self.first..=self.count).map(|k| self.item(k).len()).sum();
        self.prefix.len() + items + self.suffix.len()
    }

    /// Sent all at once, at the end: the faults that collect the body, and a replayed cache.
    fn buffered(&self) -> bool {
        let fault = self.fault;
        fault == Fault::Buffered
            || (self.http10 && fault == Fault::BufferedForHttp10)
            || (self.endpoint == Endpoint::Html && fault == Fault::HtmlBuffered)
            || (self.endpoint == Endpoint::Events && fault == Fault::EventsBuffered)
            || self.replayed
    }
}

/// The response head, with the headers each fault bends.
fn head(req: &Request, body: &Body, encoding: Option<&str>, chunked: bool) -> String {
    let fault = body.fault;
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    let mut header = |h: &str| {
        head.push_str(h);
        head.push_str("\r\n");
    };
    header(match (body.endpoint, fault) {
        (Endpoint::Stream, Fault::WrongContentType) => "content-type: application/octet-stream",
        (Endpoint::Stream, _) => "content-type: text/plain; charset=utf-8",
        (Endpoint::Html, Fault::HtmlWrongContentType) => "content-type: text/plain",
        (Endpoint::Html, _) => "content-type: text/html; charset=utf-8",
        (Endpoint::Events, Fault::EventsWrongContentType) => "content-type: text/plain",
        (Endpoint::Events, _) => "content-type: text/event-stream",
    });
    let head_faulty = req.method == "HEAD" && fault == Fault::HeadMissingHeaders;
    if fault != Fault::NoCacheControl && !head_faulty {
        header("cache-control: no-cache");
    }
    if fault != Fault::NoAccelBuffering && !head_faulty {
        header("x-accel-buffering: no");
    }
    if fault != Fault::NoNosniff {
        header("x-content-type-options: nosniff");
    }
    match fault {
        Fault::Etag => header("etag: \"abc\""),
        Fault::LastModified => header("last-modified: Tue, 24 Nov 2026 10:00:00 GMT"),
        Fault::ContentLength => header(&format!("content-length: {}", body.len())),
        Fault::CdnHeaders => header("cf-ray: 8e1f2a3b4c5d6e7f-AMS"),
        Fault::Cached if body.replayed => header("age: 42\r\nx-cache: HIT"),
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
    head
}

/// The `CollectedBody` fault: the length is known once the body is done, so the head waits for
/// it, and goes out with a Content-Length and the whole body.
async fn collected(
    tcp: &mut TcpStream, head: String, body: &Body, mut encoder: Encoder, head_request: bool,
    logger: &Logger,
) -> std::io::Result<Answer> {
    let mut bytes = encoder.encode(body.prefix.as_bytes(), false);
    for k in body.first..=body.count {
        bytes.extend(encoder.encode(body.item(k).as_bytes(), false));
    }
    bytes.extend(encoder.encode(body.suffix.as_bytes(), false));
    bytes.extend(encoder.finish());
    let length = format!("\r\ncontent-length: {}\r\n\r\n", bytes.len());
    let head = head.replacen("\r\n\r\n", &length, 1);
    tcp.write_all(head.as_bytes()).await?;
    if !head_request {
        tcp.write_all(&bytes).await?;
    }
    let mut progress = Progress::new(logger, body.n());
    progress.produced = body.n();
    Ok(Answer::Ok)
}

/// Writes the body's bytes, chunk-framed or not. A client that has gone away makes writes
/// fail; that ends the stream, unless the fault says to carry on regardless.
struct Writer {
    chunked: bool,
    keeps_generating: bool,
    /// A write failed and the fault carried on.
    gone: bool,
}

impl Writer {
    async fn write(&mut self, tcp: &mut TcpStream, bytes: Vec<u8>) -> std::io::Result<()> {
        let bytes = if self.chunked && !bytes.is_empty() {
            let mut framed = format!("{:x}\r\n", bytes.len()).into_bytes();
            framed.extend(bytes);
            framed.extend(b"\r\n");
            framed
        } else {
            bytes
        };
        self.raw(tcp, &bytes).await
    }

    async fn raw(&mut self, tcp: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
        match tcp.write_all(bytes).await {
            Err(_) if self.keeps_generating => {
                self.gone = true;
                Ok(())
            }
            other => other,
        }
    }
}

/// The body being sent, item by item as each is due.
struct Sending {
    body: Body,
    params: Params,
    start: Instant,
    encoder: Encoder,
    writer: Writer,
}

impl Sending {
    async fn run(
        mut self, tcp: &mut TcpStream, logger: &Logger, mut grace_over: watch::Receiver<bool>,
    ) -> std::io::Result<Answer> {
        let (fault, n) = (self.body.fault, self.body.n());
        let flush = fault != Fault::NeverFlushes;
        // Produced as they are due, unless the fault queues them all up front.
        let mut ahead: VecDeque<String> = match fault {
            Fault::BuffersAhead => {
                (self.body.first..=self.body.count).map(|k| self.body.item(k)).collect()
            }
            _ => VecDeque::new(),
        };
        let keepalive = (self.body.endpoint == Endpoint::Events
            && fault != Fault::EventsNoKeepalive)
            .then_some(self.params.keepalive);
        let mut progress = Progress::new(logger, n);
        let mut pending = self.body.prefix.to_owned();
        let mut last_write = self.start;
        for (i, k) in (self.body.first..=self.body.count).enumerate() {
            let at = self.due(i);
            if let Some(keepalive) = keepalive {
                last_write = self.keep_alive(tcp, keepalive, last_write, at, flush).await?;
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
            if let Some(error) = failure(&self.params, self.body.first, k) {
                progress.failed = Some(error);
                return self.failed(tcp).await;
            }
            pending.push_str(&ahead.pop_front().unwrap_or_else(|| self.body.item(k)));
            progress.produced += 1;
            if !self.holds(i, n as usize) {
                let bytes = self.encoder.encode(pending.as_bytes(), flush);
                self.writer.write(tcp, bytes).await?;
                pending.clear();
                last_write = Instant::now();
            }
        }
        pending.push_str(self.body.suffix);
        let mut rest = self.encoder.encode(pending.as_bytes(), false);
        rest.extend(self.encoder.finish());
        self.writer.write(tcp, rest).await?;
        if fault == Fault::Linger {
            sleep(self.params.interval).await;
        }
        if self.writer.chunked {
            self.writer.raw(tcp, b"0\r\n\r\n").await?;
        }
        if self.writer.gone {
            // The stream ran to its end for nobody: it was cancelled when the client left.
            progress.produced = progress.produced.min(progress.of - 1);
        }
        drop(progress);
        let _ = tcp.shutdown().await;
        Ok(Answer::Ok)
    }

    /// The generator failed: cut the body (close without the last chunk, the compressor
    /// unfinished), or end it as the fault says.
    async fn failed(mut self, tcp: &mut TcpStream) -> std::io::Result<Answer> {
        let fault = self.body.fault;
        let compressed = !matches!(self.encoder, Encoder::Identity);
        if fault == Fault::FailureHangs {
            std::future::pending::<()>().await;
        }
        let finishes = fault == Fault::FailureFinishesCompression && compressed;
        if finishes {
            let end = self.encoder.finish();
            self.writer.write(tcp, end).await?;
        }
        if (finishes || fault == Fault::FailureEndsCleanly) && self.writer.chunked {
            self.writer.raw(tcp, b"0\r\n\r\n").await?;
        }
        let _ = tcp.shutdown().await;
        Ok(Answer::Ok)
    }

    /// When item `i` (from 0) is sent, as the fault bends the schedule.
    fn due(&self, i: usize) -> Instant {
        let (start, interval) = (self.start, self.params.interval);
        match self.body.fault {
            Fault::FirstLineLate => start + interval * (i as u32 + 1),
            Fault::FastSchedule => start + interval * 6 * i as u32 / 10,
            Fault::Drift if i > 0 => Instant::now() + interval + interval / 3,
            Fault::Cached if self.body.replayed => start,
            _ => start + interval * i as u32,
        }
    }

    /// Whether item `i` of `n` waits to go out with a later one.
    fn holds(&self, i: usize, n: usize) -> bool {
        let fault = self.body.fault;
        self.body.buffered()
            || (fault == Fault::Pairs && i % 2 == 1 && i + 1 < n)
            || (fault == Fault::FirstLineHeld && i == 0 && n > 1)
    }

    /// Keep-alive comments while waiting for an item due `at`; when the last write was.
    async fn keep_alive(
        &mut self, tcp: &mut TcpStream, every: Duration, mut last_write: Instant, at: Instant,
        flush: bool,
    ) -> std::io::Result<Instant> {
        while last_write + every < at {
            sleep_until(last_write + every).await;
            let comment = self.encoder.encode(b": keep-alive\n\n", flush);
            self.writer.write(tcp, comment).await?;
            last_write = Instant::now();
        }
        Ok(last_write)
    }
}
