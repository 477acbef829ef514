//! The streams over HTTP/2 (h2c with prior knowledge), for the h2 faults.

use tokio::{
    net::TcpStream,
    sync::watch,
    time::{Instant, sleep, sleep_until},
};

use super::{Answer, Endpoint, Fault, Logger, Params, Progress, failure, parse};

/// [`Fault::Http2Buffered`] over h2c: the counting stream's `count` lines, `interval_ms`
/// apart, all sent when the last is due.
pub(super) async fn h2_buffered(tcp: TcpStream) -> std::io::Result<Answer> {
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

/// [`Fault::H2EmptyFramesUnbounded`] over h2c: h2 0.3, which takes empty DATA frames without
/// limit (RUSTSEC-2026-0258), serving `/stream`'s lines on schedule to every request.
pub(super) async fn h2_unpatched(tcp: TcpStream) -> std::io::Result<Answer> {
    let mut connection = h2_03::server::handshake(tcp).await.map_err(std::io::Error::other)?;
    while let Some(accepted) = connection.accept().await {
        let (request, mut respond) = accepted.map_err(std::io::Error::other)?;
        let query = request.uri().query().unwrap_or("").to_owned();
        tokio::spawn(async move {
            let Ok(params) = parse(&query, Endpoint::Stream, Fault::None) else { return };
            let head = http_02::Response::builder()
                .header("content-type", "text/plain; charset=utf-8")
                .body(())
                .expect("static headers");
            let Ok(mut send) = respond.send_response(head, false) else { return };
            let start = Instant::now();
            for k in 1..=params.count {
                sleep_until(start + params.interval * (k - 1)).await;
                let line = bytes::Bytes::from(format!("{k}\n"));
                if send.send_data(line, k == params.count).is_err() {
                    return;
                }
            }
        });
    }
    Ok(Answer::Ok)
}

/// Every fault but [`Fault::Http2Buffered`] over h2c: `/stream` as the contract says (through
/// hyper, which makes each body frame a DATA frame), but for the h2 faults,
/// [`Fault::KeepsGenerating`], [`Fault::HeadBody`] and the failures (`fail_after`: the stream
/// is reset, but for [`Fault::H2FailureEndsStream`]); other paths are 404. When shutdown
/// starts it says GOAWAY and finishes the streams it has (but for [`Fault::H2NoGoaway`]).
pub(super) async fn h2_stream(
    tcp: TcpStream, fault: Fault, logger: Logger, mut stopping: watch::Receiver<bool>,
) -> std::io::Result<Answer> {
    use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
    use hyper::body::Frame;
    type Body = BoxBody<bytes::Bytes, std::io::Error>;
    let text = |status: u16, body: String| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(bytes::Bytes::from(body)).map_err(|never| match never {}).boxed())
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
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tokio::spawn(h2_generate(tx, params, fault, logger));
            // An error item makes hyper reset the stream (RST_STREAM, INTERNAL_ERROR).
            let frames = futures_util::stream::unfold(rx, |mut rx| async move {
                let item: std::io::Result<bytes::Bytes> = rx.recv().await?;
                Some((item.map(Frame::data), rx))
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
                true => {
                    response.map(|_| Full::new(bytes::Bytes::new()).map_err(|n| match n {}).boxed())
                }
                false => response,
            })
        }
    });
    let mut builder =
        hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    match fault {
        Fault::H2FewStreams => drop(builder.max_concurrent_streams(10)),
        Fault::H2NoStreamLimit => drop(builder.max_concurrent_streams(None)),
        Fault::H2NoResetLimit => drop(builder.max_pending_accept_reset_streams(usize::MAX)),
        Fault::H2NoHeaderLimit => drop(builder.max_header_list_size(256 << 20)),
        _ => {}
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
/// reset stream (the receiver gone) is cancelled, unless the fault keeps generating. A failure
/// goes in as an error, or (the fault) as the end of the stream.
pub(super) async fn h2_generate(
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>, params: Params, fault: Fault,
    logger: Logger,
) {
    let start = Instant::now();
    let mut progress = Progress::new(&logger, params.count);
    let mut held = String::new();
    let mut gone = false;
    for k in 1..=params.count {
        sleep_until(start + params.interval * (k - 1)).await;
        if let Some(error) = failure(&params, 1, k) {
            progress.failed = Some(error.clone());
            if !matches!(fault, Fault::H2FailureEndsStream | Fault::FailureEndsCleanly) {
                let _ = tx.send(Err(std::io::Error::other(error))).await;
            }
            return;
        }
        progress.produced = k;
        held.push_str(&format!("{k}\n"));
        if fault == Fault::H2Coalesced && k % 2 == 1 && k < params.count {
            continue;
        }
        let item = bytes::Bytes::from(std::mem::take(&mut held));
        if !gone && tx.send(Ok(item)).await.is_err() {
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
