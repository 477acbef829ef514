//! The counting stream served by warp (see CONTRACT.md), one item every `interval_ms`, each
//! flushed as it is produced:
//! - `GET /stream` sends `1\n` … `count\n` as text/plain;
//! - `GET /stream.html` sends `<div>1</div>` … as an HTML page, each item padded with spaces;
//! - `GET /events` sends Server-Sent Events `id: k` / `data: k`, resuming after `Last-Event-ID`.
//!
//! `GET /` is a page that shows the streams arriving. Responses are compressed when the client
//! asks (br, gzip or deflate), except the event stream. On SIGTERM or SIGINT it stops accepting,
//! lets open streams run for `--grace-secs`, then ends them cleanly.
//!
//! Run with `cargo run -p examples-warp`, then `curl -N localhost:3003/stream`.
//! Test with `cargo test -p examples-warp`.

mod params;

use std::{convert::Infallible, io::IsTerminal, net::SocketAddr, pin::pin, time::Duration};

use async_stream::stream;
use clap::Parser;
use futures_util::{FutureExt, Stream, StreamExt};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use params::{EventParams, HtmlParams, RETRY, StreamParams};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use warp::{
    Filter, Rejection, Reply,
    compression::{brotli, deflate, gzip},
    host::Authority,
    http::{HeaderMap, StatusCode, header},
    reject::{MethodNotAllowed, Reject},
    reply::{self, Response},
    sse::Event,
};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3003")]
    addr: SocketAddr,
    /// Seconds that open streams get to finish after SIGTERM or SIGINT.
    #[arg(long, env = "GRACE_SECS", default_value_t = 30)]
    grace_secs: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // tracing-subscriber also forwards `log` records, which is what `warp::log` writes.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    // Cancelled when the grace period after a shutdown signal is over: every stream then ends.
    let grace_over = CancellationToken::new();
    let grace = {
        let grace_over = grace_over.clone();
        warp::any().map(move || grace_over.clone())
    };

    // `warp::get()` rejects HEAD, so HEAD is routed explicitly; hyper never polls a HEAD body.
    let get_or_head = || warp::get().or(warp::head()).unify();
    // `query::raw` rejects a request without a query string; that is the all-defaults case.
    let query = || warp::query::raw().or(warp::any().map(String::new)).unify();

    let index = warp::path::end()
        .and(get_or_head())
        .map(|| reply::html(include_str!("index.html")))
        .recover(|err| method_not_allowed(err, "GET, HEAD"));
    let stream = warp::path!("stream")
        .and(get_or_head())
        .and(query())
        .and(grace.clone())
        .map(|query: String, grace_over| stream(&query, grace_over))
        .recover(|err| method_not_allowed(err, "GET, HEAD"));
    let stream_html = warp::path!("stream.html")
        .and(get_or_head())
        .and(query())
        .and(grace.clone())
        .map(|query: String, grace_over| stream_html(&query, grace_over))
        .recover(|err| method_not_allowed(err, "GET, HEAD"));
    let events = warp::path!("events")
        .and(warp::get())
        .and(query())
        // Raw bytes: `header::optional::<String>` would reject a non-ASCII value with its own 400.
        .and(warp::header::headers_cloned())
        .and(grace)
        .map(|query: String, headers: HeaderMap, grace_over| events(&query, &headers, grace_over))
        .recover(|err| method_not_allowed(err, "GET"));

    // warp's compression filters compress whatever they wrap, asked or not: each one gets only
    // the requests that offer its encoding, and the rest are answered uncompressed.
    // The streams stay inside: async-compression >= 0.4.31 flushes whenever the stream pauses.
    let app = index.or(stream).or(stream_html);
    let compressed = (accepts("br").and(app.clone()).with(brotli()))
        .or(accepts("gzip").and(app.clone()).with(gzip()))
        // Raw DEFLATE rather than the zlib wrapping RFC 9110 names; browsers and curl take both.
        .or(accepts("deflate").and(app.clone()).with(deflate()))
        .or(app)
        .with(reply::with::header(header::VARY, "accept-encoding"));
    // `/events` stays outside, as other frameworks' compressors leave text/event-stream alone.
    let routes = host_required()
        .and(events.or(compressed))
        .recover(missing_host)
        .with(warp::log("examples_warp"));

    let listener = bind(args.addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    // Served with hyper, not warp::serve: warp::serve gives hyper no timer, which leaves
    // header_read_timeout (30 s) off so headers that never end hang, and it sets no TCP_NODELAY.
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new());
    let connections = GracefulShutdown::new();
    let mut signal = pin!(shutdown_signal());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(err) => {
                accept_failed(err).await;
                continue;
            }
        };
        // Small writes go out at once instead of waiting for the previous segment's ACK (Nagle).
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!("set_nodelay: {err}");
        }
        let service = TowerToHyperService::new(warp::service(routes.clone()));
        let conn = connections.watch(http.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(conn.map(|result| {
            if let Err(err) = result {
                tracing::debug!("connection closed: {err}");
            }
        }));
    }
    // New connections are refused from here on.
    drop(listener);
    tracing::info!(
        "shutting down: open streams get {}s to finish",
        args.grace_secs
    );

    let mut drained = pin!(connections.shutdown());
    tokio::select! {
        () = &mut drained => return Ok(()),
        () = sleep(Duration::from_secs(args.grace_secs)) => grace_over.cancel(),
    }
    // Streams end at once; a client that stopped reading, or never finished its request, gets 1 s.
    if timeout(Duration::from_secs(1), drained).await.is_err() {
        tracing::warn!("connections still open after the grace period; exiting");
    }
    Ok(())
}

/// A failed accept: the client's own trouble is skipped; anything else (out of file descriptors)
/// is logged and waited out for a second, as warp::serve does.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {err}");
    sleep(Duration::from_secs(1)).await;
}

fn stream(query: &str, grace_over: CancellationToken) -> Response {
    let params = match StreamParams::from_query(query) {
        Ok(params) => params,
        Err(message) => return bad_request(message),
    };
    let lines = ticks(1, params, grace_over).map(|k| format!("{k}\n"));
    streaming(lines, "text/plain; charset=utf-8")
}

fn stream_html(query: &str, grace_over: CancellationToken) -> Response {
    let params = match HtmlParams::from_query(query) {
        Ok(params) => params,
        Err(message) => return bad_request(message),
    };
    let padding = " ".repeat(params.pad);
    let page = stream! {
        yield "<!doctype html><html><body>".to_owned();
        for await k in ticks(1, params.stream, grace_over) {
            yield format!("<div>{k}</div>{padding}");
        }
        yield "</body></html>".to_owned();
    };
    streaming(page, "text/html; charset=utf-8")
}

fn streaming(
    body: impl Stream<Item = String> + Send + Sync + 'static,
    content_type: &str,
) -> Response {
    let body = reply::stream(body.map(Ok::<_, Infallible>));
    let body = reply::with_header(body, header::CONTENT_TYPE, content_type);
    let body = reply::with_header(body, header::CACHE_CONTROL, "no-cache");
    // Tells nginx not to buffer this response.
    let body = reply::with_header(body, "x-accel-buffering", "no");
    // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
    reply::with_header(body, header::X_CONTENT_TYPE_OPTIONS, "nosniff").into_response()
}

fn events(query: &str, headers: &HeaderMap, grace_over: CancellationToken) -> Response {
    let params = match EventParams::from_query(query) {
        Ok(params) => params,
        Err(message) => return bad_request(message),
    };
    let count = params.stream.count;
    let last_id = headers.get("last-event-id").map(|value| value.as_bytes());
    let after = match params::last_event_id(last_id, count) {
        // Nothing left: 204 tells EventSource to stop reconnecting.
        Ok(after) if after == count => return StatusCode::NO_CONTENT.into_response(),
        Ok(after) => after,
        Err(message) => return bad_request(message),
    };
    let events = ticks(after + 1, params.stream, grace_over).map(move |k| {
        let event = Event::default().id(k.to_string()).data(k.to_string());
        let event = if k == after + 1 {
            event.retry(RETRY)
        } else {
            event
        };
        Ok::<_, Infallible>(event)
    });
    let events = warp::sse::keep_alive()
        .interval(params.keepalive)
        .stream(events);
    // `sse::reply` sets `Cache-Control: no-cache` itself.
    reply::with_header(warp::sse::reply(events), "x-accel-buffering", "no").into_response()
}

/// Items `first..=count`, the first at once and item k at start + (k-first)·interval: sleeping
/// until a deadline, not for a duration, keeps lateness from piling up. Ends early, cleanly, when
/// `grace_over` is cancelled; hyper drops it when the client goes away.
fn ticks(
    first: u32,
    params: StreamParams,
    grace_over: CancellationToken,
) -> impl Stream<Item = u32> + Send + Sync + 'static {
    stream! {
        // Created on the first poll, so a HEAD response (never polled) logs nothing.
        let mut progress = Progress { produced: 0, total: params.count - first + 1 };
        let start = Instant::now();
        for k in first..=params.count {
            let deadline = sleep_until(start + params.interval * (k - first));
            if grace_over.run_until_cancelled(deadline).await.is_none() {
                break;
            }
            // Counted before the yield: a stream dropped while suspended there produced k.
            progress.produced += 1;
            yield k;
        }
    }
}

/// Logs how a stream ended when the generator is dropped, however that happens.
struct Progress {
    produced: u32,
    total: u32,
}

impl Drop for Progress {
    fn drop(&mut self) {
        let Self { produced, total } = self;
        if produced == total {
            tracing::info!("stream completed: {total} of {total} items");
        } else {
            tracing::info!("stream cancelled after {produced} of {total} items");
        }
    }
}

fn bad_request(message: String) -> Response {
    reply::with_status(message, StatusCode::BAD_REQUEST).into_response()
}

/// HTTP/1.1 requires a Host header (RFC 9112 §3.2); hyper does not check. No warp filter sees
/// the HTTP version (warp#967), so HTTP/1.0 must name a host too; HTTP/2's `:authority` counts.
fn host_required() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    warp::host::optional()
        .and_then(|host: Option<Authority>| async move {
            match host {
                Some(_) => Ok(()),
                None => Err(warp::reject::custom(MissingHost)),
            }
        })
        .untuple_one()
}

#[derive(Debug)]
struct MissingHost;

impl Reject for MissingHost {}

async fn missing_host(err: Rejection) -> Result<Response, Rejection> {
    if err.find::<MissingHost>().is_none() {
        return Err(err);
    }
    Ok(bad_request("missing Host header".to_owned()))
}

/// Passes only when the request's Accept-Encoding offers `coding` (`q=0` refuses it).
fn accepts(coding: &'static str) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("accept-encoding")
        .and_then(move |accept: Option<String>| async move {
            match accept {
                Some(accept) if offers(&accept, coding) => Ok(()),
                _ => Err(warp::reject::not_found()),
            }
        })
        .untuple_one()
}

fn offers(accept: &str, coding: &str) -> bool {
    let mut wildcard = false;
    for item in accept.split(',') {
        let (name, params) = item.split_once(';').unwrap_or((item, ""));
        let refused = params
            .split(';')
            .filter_map(|param| param.trim().strip_prefix("q="))
            .any(|q| q.trim().parse::<f32>() == Ok(0.0));
        let name = name.trim();
        if name.eq_ignore_ascii_case(coding) {
            return !refused;
        }
        if name == "*" {
            wildcard = !refused;
        }
    }
    wildcard
}

/// warp answers a wrong method with a bare 405; HTTP wants the allowed methods named.
async fn method_not_allowed(err: Rejection, allow: &'static str) -> Result<Response, Rejection> {
    if err.find::<MethodNotAllowed>().is_none() {
        return Err(err);
    }
    let body = reply::with_status("method not allowed\n", StatusCode::METHOD_NOT_ALLOWED);
    Ok(reply::with_header(body, header::ALLOW, allow).into_response())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// Binds with a listen backlog of 1024. `TcpListener::bind` asks for 128 (as std does), and
/// when more clients connect at once, say every EventSource after a restart, the rest wait
/// for a SYN retry: 1 s, then 3 s.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
