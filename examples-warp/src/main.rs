//! The counting stream served by warp (see CONTRACT.md), one item every `interval_ms`, each
//! flushed as it is produced:
//! - `GET /stream` sends `1\n` … `count\n` as text/plain;
//! - `GET /stream.html` sends `<div>1</div>` … as an HTML page, each item padded with spaces;
//! - `GET /events` sends Server-Sent Events `id: k` / `data: k`, resuming after `Last-Event-ID`.
//!
//! `GET /` is a page that shows the streams arriving. Responses are compressed when the client
//! asks (br, gzip or deflate), except the event stream.
//!
//! Run with `cargo run -p examples-warp`, then `curl -N localhost:3003/stream`.
//! Test with `cargo test -p examples-warp`.

mod params;

use std::{convert::Infallible, io::IsTerminal, net::SocketAddr};

use async_stream::stream;
use clap::Parser;
use futures_util::{Stream, StreamExt};
use params::{EventParams, HtmlParams, RETRY, StreamParams};
use tokio::time::{Instant, sleep_until};
use warp::{
    Filter, Rejection, Reply,
    compression::{brotli, deflate, gzip},
    http::{HeaderMap, StatusCode, header},
    reject::MethodNotAllowed,
    reply::{self, Response},
    sse::Event,
};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3003")]
    addr: SocketAddr,
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
        .map(|query: String| stream(&query))
        .recover(|err| method_not_allowed(err, "GET, HEAD"));
    let stream_html = warp::path!("stream.html")
        .and(get_or_head())
        .and(query())
        .map(|query: String| stream_html(&query))
        .recover(|err| method_not_allowed(err, "GET, HEAD"));
    let events = warp::path!("events")
        .and(warp::get())
        .and(query())
        // Raw bytes: `header::optional::<String>` would reject a non-ASCII value with its own 400.
        .and(warp::header::headers_cloned())
        .map(|query: String, headers: HeaderMap| events(&query, &headers))
        .recover(|err| method_not_allowed(err, "GET"));

    // warp's compression filters compress whatever they wrap, asked or not: each one gets only
    // the requests that offer its encoding, and the rest are answered uncompressed.
    // The streams stay inside: async-compression >= 0.4.31 flushes whenever the stream pauses.
    let app = index.or(stream).or(stream_html);
    let compressed = (accepts("br").and(app).with(brotli()))
        .or(accepts("gzip").and(app).with(gzip()))
        // Raw DEFLATE rather than the zlib wrapping RFC 9110 names; browsers and curl take both.
        .or(accepts("deflate").and(app).with(deflate()))
        .or(app)
        .with(reply::with::header(header::VARY, "accept-encoding"));
    // `/events` stays outside, as other frameworks' compressors leave text/event-stream alone.
    let routes = events.or(compressed).with(warp::log("examples_warp"));

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
        Err(message) => return bad_request(message),
    };
    let lines = ticks(1, params).map(|k| format!("{k}\n"));
    streaming(lines, "text/plain; charset=utf-8")
}

fn stream_html(query: &str) -> Response {
    let params = match HtmlParams::from_query(query) {
        Ok(params) => params,
        Err(message) => return bad_request(message),
    };
    let page = stream! {
        yield "<!doctype html><html><body>".to_owned();
        for await k in ticks(1, params.stream) {
            yield format!("<div>{k}</div>{}", " ".repeat(params.pad));
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

fn events(query: &str, headers: &HeaderMap) -> Response {
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
    let events = ticks(after + 1, params.stream).map(move |k| {
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
/// until a deadline, not for a duration, keeps lateness from piling up.
fn ticks(first: u32, params: StreamParams) -> impl Stream<Item = u32> + Send + Sync + 'static {
    stream! {
        let start = Instant::now();
        for k in first..=params.count {
            sleep_until(start + params.interval * (k - first)).await;
            yield k;
        }
    }
}

fn bad_request(message: String) -> Response {
    reply::with_status(message, StatusCode::BAD_REQUEST).into_response()
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
