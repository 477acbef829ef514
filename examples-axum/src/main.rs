//! The counting stream served by axum (CONTRACT.md): `/stream` as text, `/stream.html` as a
//! growing page, `/events` as Server-Sent Events, and `/` a page that shows them live. This
//! file is the snippet; `serve.rs` binds, hardens and shuts down.
//!
//! Run with `cargo run -p examples-axum`, then `curl -N localhost:3000/stream`.
//! Test with `cargo test -p examples-axum`.

mod params;
mod serve;

use async_stream::stream;
use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    middleware,
    response::{
        Html, IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::get,
};
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use params::{EventParams, HtmlParams, RETRY, StreamParams};
use std::io;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tower_http::{compression::CompressionLayer, trace::TraceLayer};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    serve::run(app).await
}

// ANCHOR: app
fn app(grace_over: CancellationToken) -> Router {
    // A GET route also answers HEAD: axum drops the body before it is ever polled.
    Router::new()
        .route("/", get(|| async { Html(include_str!("index.html")) }))
        .route("/stream", get(stream))
        .route("/stream.html", get(stream_html))
        .route("/events", get(events))
        .layer(middleware::from_fn(serve::require_host))
        // Streams stay compressed: async-compression >= 0.4.31 flushes each pause; SSE is exempt.
        // gzip, zstd and deflate, not br: see tower-http in the workspace Cargo.toml.
        .layer(CompressionLayer::new())
        // Logs every request and response at debug level, which `serve` turns on for tower_http.
        .layer(TraceLayer::new_for_http())
        .with_state(grace_over)
}
// ANCHOR_END: app

// ANCHOR: stream
// Parsed by the extractor in serve.rs: `Query<T>` would answer serde's 400s, not the contract's.
async fn stream(State(grace_over): State<CancellationToken>, params: StreamParams) -> Response {
    let lines = ticks(1, params, grace_over).map_ok(|k| format!("{k}\n"));
    streaming("text/plain; charset=utf-8", lines)
}

/// A chunked response that sends each item as soon as the stream yields it. An error cuts it:
/// hyper closes an HTTP/1.1 connection without the last chunk, and resets an HTTP/2 stream.
fn streaming(
    content_type: &str, items: impl Stream<Item = io::Result<String>> + Send + 'static,
) -> Response {
    let headers = [
        ("content-type", content_type),
        ("cache-control", "no-cache"),
        // Tells nginx not to buffer the response.
        ("x-accel-buffering", "no"),
        // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
        ("x-content-type-options", "nosniff"),
    ];
    (headers, Body::from_stream(items)).into_response()
}
// ANCHOR_END: stream

// ANCHOR: stream_html
async fn stream_html(State(grace_over): State<CancellationToken>, params: HtmlParams) -> Response {
    // The padding is what once made browsers start rendering before the page was complete.
    let padding = " ".repeat(params.pad);
    let items =
        ticks(1, params.stream, grace_over).map_ok(move |k| format!("<div>{k}</div>{padding}"));
    let page = stream::once(async { Ok("<!doctype html><html><body>".to_owned()) })
        .chain(items)
        .chain(stream::once(async { Ok("</body></html>".to_owned()) }));
    streaming("text/html; charset=utf-8", page)
}
// ANCHOR_END: stream_html

// ANCHOR: events
async fn events(
    State(grace_over): State<CancellationToken>, params: EventParams, headers: HeaderMap,
) -> Response {
    let last_id = headers.get("last-event-id").map(|value| value.as_bytes());
    let after = match params::last_event_id(last_id, params.stream.count) {
        // Nothing left: 204 tells EventSource to stop reconnecting.
        Ok(after) if after == params.stream.count => return StatusCode::NO_CONTENT.into_response(),
        Ok(after) => after,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    // The first message tells the browser how long to wait before it reconnects.
    let retry = stream::once(async { Ok(Event::default().retry(RETRY)) });
    let events = ticks(after + 1, params.stream, grace_over)
        .map_ok(|k| Event::default().id(k.to_string()).data(k.to_string()));
    let sse = Sse::new(retry.chain(events)).keep_alive(KeepAlive::new().interval(params.keepalive));
    ([("x-accel-buffering", "no")], sse).into_response()
}
// ANCHOR_END: events

// ANCHOR: ticks
/// Items `first..=count`, item k due at start + (k-first)·interval: a deadline, so lateness does
/// not pile up. Ends early, with a complete body, when `grace_over` fires; yields the error, and
/// ends, when the app's source fails.
fn ticks(
    first: u32, params: StreamParams, grace_over: CancellationToken,
) -> impl Stream<Item = io::Result<u32>> {
    stream! {
        // Logs how the stream ended when the generator is dropped, however that happens; made
        // at the first poll, so a HEAD response (never polled) logs nothing.
        let total = params.count - first + 1;
        let mut end = scopeguard::guard((0, None), move |(sent, failed)| match failed {
            Some(error) => tracing::error!("stream failed after {sent} of {total} items: {error}"),
            None if sent == total => tracing::info!("stream completed: {total} of {total} items"),
            None => tracing::info!("stream cancelled after {sent} of {total} items"),
        });
        let start = Instant::now();
        for k in first..=params.count {
            let due = sleep_until(start + params.interval * (k - first));
            if grace_over.run_until_cancelled(due).await.is_none() {
                break;
            }
            if let Err(error) = params.source(first, k) {
                end.1 = Some(error.to_string());
                yield Err(error);
                break;
            }
            end.0 += 1;
            yield Ok(k);
        }
    }
}
// ANCHOR_END: ticks
