//! The counting stream served by axum: `GET /stream` sends `1\n` … `count\n`, one line every
//! `interval_ms`, each line flushed as it is produced (see CONTRACT.md).
//!
//! Run with `cargo run -p examples-axum`, then `curl -N localhost:3000/stream`.
//! Test with `cargo test -p examples-axum`.

mod params;

use std::{convert::Infallible, io::IsTerminal, net::SocketAddr};

use async_stream::stream;
use axum::{
    Router,
    body::Body,
    extract::RawQuery,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
    serve::ListenerExt,
};
use clap::Parser;
use futures_util::{Stream, StreamExt};
use params::StreamParams;
use tokio::time::{Instant, sleep_until};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
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

    // A GET route also answers HEAD: axum drops the body before it is ever polled.
    let app = Router::new()
        .route("/", get(index))
        .route("/stream", get(stream));

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // Small writes go out at once instead of waiting for the previous segment's ACK (Nagle).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!("set_nodelay: {err}");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn stream(RawQuery(query): RawQuery) -> Response {
    let params = match StreamParams::from_query(query.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
        // Tells nginx not to buffer this response.
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
        // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    let body = Body::from_stream(counting(params).map(Ok::<_, Infallible>));
    (headers, body).into_response()
}

/// Line k is due at start + (k-1)·interval: sleeping until a deadline, not for a duration,
/// keeps lateness from piling up.
fn counting(params: StreamParams) -> impl Stream<Item = String> {
    stream! {
        let start = Instant::now();
        for k in 1..=params.count {
            sleep_until(start + params.interval * (k - 1)).await;
            yield format!("{k}\n");
        }
    }
}

async fn index() -> &'static str {
    "Counting stream (axum)\n\
     GET /stream?count=10&interval_ms=1000  one line per interval, text/plain\n\
     Try: curl -N 'http://localhost:3000/stream?count=5&interval_ms=500'\n"
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
