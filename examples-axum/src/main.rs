//! The counting stream served by axum, one item every `interval_ms`, each flushed as it is
//! produced (see CONTRACT.md):
//! - `GET /stream`: `1\n` … `count\n` as `text/plain`;
//! - `GET /stream.html`: `<div>k</div>` per item, padded, as one growing HTML page;
//! - `GET /events`: Server-Sent Events `id: k`/`data: k`, resuming after `Last-Event-ID`.
//!
//! `GET /` is a page that shows all three live. Compression is on app-wide, as in a real app.
//! Every stream logs how it ended. On SIGTERM or Ctrl-C the server stops accepting, lets open
//! streams run for `--grace-secs`, then ends those still running cleanly and exits.
//!
//! Run with `cargo run -p examples-axum`, then `curl -N localhost:3000/stream`.
//! Test with `cargo test -p examples-axum`.

mod params;

use std::{convert::Infallible, io::IsTerminal, net::SocketAddr, pin::pin, time::Duration};

use async_stream::stream;
use axum::{
    Router,
    body::Body,
    extract::{RawQuery, Request, State},
    http::{HeaderMap, HeaderName, StatusCode, Version, header},
    middleware::{self, Next},
    response::{
        Html, IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
    serve::{Listener, ListenerExt},
};
use clap::Parser;
use futures_util::{Stream, StreamExt, stream};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use params::{EventParams, HtmlParams, StreamParams};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tower_http::{
    compression::CompressionLayer,
    trace::{DefaultMakeSpan, DefaultOnRequest, DefaultOnResponse, TraceLayer},
};
use tracing::Level;

/// Tells nginx not to buffer the response.
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Seconds that open streams get to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "GRACE_SECS", default_value_t = 30)]
    grace_secs: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let grace = Duration::from_secs(args.grace_secs);
    // Fired when shutdown's grace period is over: every stream still running ends there.
    let grace_over = CancellationToken::new();

    // A GET route also answers HEAD: axum drops the body before it is ever polled.
    let app = Router::new()
        .route("/", get(index))
        .route("/stream", get(stream))
        .route("/stream.html", get(stream_html))
        .route("/events", get(events))
        .layer(middleware::from_fn(require_host))
        // Streams stay compressed: async-compression >= 0.4.31 flushes each pause; SSE is exempt.
        // gzip, zstd and deflate, not br: see tower-http in the workspace Cargo.toml.
        .layer(CompressionLayer::new())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_request(DefaultOnRequest::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .with_state(grace_over.clone());

    let listener = bind(args.addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    // Small writes go out at once instead of waiting for the previous segment's ACK (Nagle).
    let mut listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!("set_nodelay: {err}");
        }
    });
    // Served with hyper, not axum::serve: axum::serve takes no configuration and gives hyper no
    // timer, which leaves header_read_timeout (30 s) off, so headers that never end hang forever.
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new());
    let connections = GracefulShutdown::new();
    let mut signal = pin!(shutdown_signal());
    loop {
        let (io, _) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut signal => break,
        };
        let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app.clone()));
        tokio::spawn(connections.watch(conn));
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
        () = sleep(grace) => grace_over.cancel(),
    }
    // Streams end at once; a client that stopped reading, or never finished its request, gets 1 s.
    if timeout(Duration::from_secs(1), drained).await.is_err() {
        tracing::warn!("closing connections that are still open");
    }
    Ok(())
}

/// RFC 9112 §3.2: an HTTP/1.1 request without Host gets a 400; hyper leaves that check to us.
async fn require_host(request: Request, next: Next) -> Response {
    if request.version() == Version::HTTP_11 && !request.headers().contains_key(header::HOST) {
        let message = "missing Host header: HTTP/1.1 requires one";
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    next.run(request).await
}

async fn stream(
    State(grace_over): State<CancellationToken>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match StreamParams::from_query(query.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let lines = ticks(1, params, grace_over).map(|k| format!("{k}\n"));
    streaming("text/plain; charset=utf-8", lines)
}

async fn stream_html(
    State(grace_over): State<CancellationToken>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match HtmlParams::from_query(query.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    // The padding is what once made browsers start rendering before the page was complete.
    let padding = " ".repeat(params.pad);
    let items =
        ticks(1, params.stream, grace_over).map(move |k| format!("<div>{k}</div>{padding}"));
    let page = stream::once(async { "<!doctype html><html><body>".to_owned() })
        .chain(items)
        .chain(stream::once(async { "</body></html>".to_owned() }));
    streaming("text/html; charset=utf-8", page)
}

/// A chunked response that sends each item as soon as the stream yields it.
fn streaming(
    content_type: &'static str,
    items: impl Stream<Item = String> + Send + 'static,
) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (X_ACCEL_BUFFERING, "no"),
        // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (headers, Body::from_stream(items.map(Ok::<_, Infallible>))).into_response()
}

async fn events(
    State(grace_over): State<CancellationToken>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match EventParams::from_query(query.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let count = params.stream.count;
    let last_id = headers.get("last-event-id").map(|value| value.as_bytes());
    let after = match params::last_event_id(last_id, count) {
        Ok(after) => after,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    if after == count {
        // Nothing left: 204 tells EventSource to stop reconnecting.
        return StatusCode::NO_CONTENT.into_response();
    }
    // The first message tells the browser how long to wait before it reconnects.
    let retry = stream::once(async { Event::default().retry(params::RETRY) });
    let events = ticks(after + 1, params.stream, grace_over)
        .map(|k| Event::default().id(k.to_string()).data(k.to_string()));
    let sse = Sse::new(retry.chain(events).map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::new().interval(params.keepalive));
    ([(X_ACCEL_BUFFERING, "no")], sse).into_response()
}

/// Items `first..=count`, the first at once and item k at start + (k-first)·interval: sleeping
/// until a deadline, not for a duration, keeps lateness from piling up. Ends early, with a
/// complete body, when `grace_over` fires; hyper drops it when the client goes away.
fn ticks(
    first: u32,
    params: StreamParams,
    grace_over: CancellationToken,
) -> impl Stream<Item = u32> {
    stream! {
        let mut log = EndLog { produced: 0, total: params.count - first + 1 };
        let start = Instant::now();
        for k in first..=params.count {
            tokio::select! {
                () = sleep_until(start + params.interval * (k - first)) => {}
                () = grace_over.cancelled() => break,
            }
            log.produced += 1;
            yield k;
        }
    }
}

/// Logs how a stream ended when its generator is dropped, however that happens.
struct EndLog {
    produced: u32,
    total: u32,
}

impl Drop for EndLog {
    fn drop(&mut self) {
        let Self { produced, total } = *self;
        if produced == total {
            tracing::info!("stream completed: {total} of {total} items");
        } else {
            tracing::info!("stream cancelled after {produced} of {total} items");
        }
    }
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

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
