//! The three streaming endpoints over HTTP/1, written by hand so that each fault can bend
//! exactly one thing: the head, the framing, the schedule, the encoding.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
    time::{Instant, sleep, sleep_until},
};

use super::{Answer, Encoder, Endpoint, Fault, Logger, Request, parse, resume_after, simple};

/// Logs how a stream ended when it is dropped, as the examples do.
pub(super) struct Progress<'a> {
    pub(super) logger: &'a Logger,
    pub(super) produced: u32,
    pub(super) of: u32,
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

pub(super) async fn stream(
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
