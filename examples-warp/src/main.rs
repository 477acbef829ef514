//! The counting stream served by warp: `GET /stream` sends `1\n` … `count\n`, one line every
//! `interval_ms`, each line flushed as it is produced (see CONTRACT.md).
//!
//! Run with `cargo run -p examples-warp`, then `curl -N localhost:3003/stream`.
//! Test with `cargo test -p examples-warp`.

mod params;

use std::{convert::Infallible, io::IsTerminal, net::SocketAddr};

use async_stream::stream;
use clap::Parser;
use futures_util::{Stream, StreamExt};
use params::StreamParams;
use tokio::time::{Instant, sleep_until};
use warp::{
    Filter, Rejection, Reply,
    http::{StatusCode, header},
    reject::MethodNotAllowed,
    reply::{self, Response},
};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3003")]
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

    let index = warp::path::end().and(warp::get()).map(index);
    // `warp::get()` rejects HEAD, so HEAD is routed explicitly; hyper never polls a HEAD body.
    let stream = warp::path!("stream")
        .and(warp::get().or(warp::head()).unify())
        // `query::raw` rejects a request without a query string; that is the all-defaults case.
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(|query: String| stream(&query));
    let routes = index.or(stream).recover(method_not_allowed);

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown_signal())
        .run()
        .await;
    Ok(())
}

fn stream(query: &str) -> Response {
    let params = match StreamParams::from_query(query) {
        Ok(params) => params,
        Err(message) => {
            return reply::with_status(message, StatusCode::BAD_REQUEST).into_response();
        }
    };
    let body = reply::stream(counting(params).map(Ok::<_, Infallible>));
    let body = reply::with_header(body, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    let body = reply::with_header(body, header::CACHE_CONTROL, "no-cache");
    // Tells nginx not to buffer this response.
    let body = reply::with_header(body, "x-accel-buffering", "no");
    // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
    reply::with_header(body, header::X_CONTENT_TYPE_OPTIONS, "nosniff").into_response()
}

/// Line k is due at start + (k-1)·interval: sleeping until a deadline, not for a duration,
/// keeps lateness from piling up.
fn counting(params: StreamParams) -> impl Stream<Item = String> + Send + Sync + 'static {
    stream! {
        let start = Instant::now();
        for k in 1..=params.count {
            sleep_until(start + params.interval * (k - 1)).await;
            yield format!("{k}\n");
        }
    }
}

fn index() -> &'static str {
    "Counting stream (warp)\n\
     GET /stream?count=10&interval_ms=1000  one line per interval, text/plain\n\
     Try: curl -N 'http://localhost:3003/stream?count=5&interval_ms=500'\n"
}

/// warp answers a wrong method with a bare 405; HTTP wants the allowed methods named.
async fn method_not_allowed(err: Rejection) -> Result<Response, Rejection> {
    if err.find::<MethodNotAllowed>().is_none() {
        return Err(err);
    }
    let body = reply::with_status("method not allowed\n", StatusCode::METHOD_NOT_ALLOWED);
    Ok(reply::with_header(body, header::ALLOW, "GET, HEAD").into_response())
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
