//! The counting stream served by warp (CONTRACT.md): `/stream` as text, `/stream.html` as a
//! growing page, `/events` as Server-Sent Events, and `/` a page that shows them live. This
//! file is the snippet; `serve.rs` binds, hardens and shuts down.
//!
//! Run with `cargo run -p examples-warp`, then `curl -N localhost:3003/stream`.
//! Test with `cargo test -p examples-warp`.

mod params;
mod serve;

use async_stream::stream;
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use params::{EventParams, HtmlParams, RETRY, StreamParams};
use std::io;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::{self, Response};
use warp::{Filter, Rejection, Reply, sse::Event};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    serve::run(app).await
}

// ANCHOR: app
fn app(
    grace_over: CancellationToken,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let grace_over = warp::any().map(move || grace_over.clone());
    // `serve::get_or_head`: `warp::get()` rejects HEAD.
    let index =
        warp::path::end().and(serve::get_or_head()).map(|| reply::html(include_str!("index.html")));
    let stream = warp::path!("stream")
        .and(serve::get_or_head())
        .and(grace_over.clone())
        .and(serve::query())
        .map(stream);
    let stream_html = warp::path!("stream.html")
        .and(serve::get_or_head())
        .and(grace_over.clone())
        .and(serve::query())
        .map(stream_html);
    let events = warp::path!("events")
        .and(serve::get())
        .and(grace_over)
        .and(serve::query())
        // Raw bytes: `header::optional::<String>` would reject a non-ASCII value with its own 400.
        .and(warp::header::headers_cloned())
        .map(events);
    // Each encoding only as asked (serve.rs); async-compression >= 0.4.31 flushes each pause.
    let compressed = serve::compressed(index.or(stream).or(stream_html).recover(serve::rejected));
    // `/events` stays outside, as other frameworks' compressors leave text/event-stream alone.
    serve::host_required()
        .and(events.recover(serve::rejected).or(compressed))
        .recover(serve::rejected)
        .with(warp::log("examples_warp"))
}
// ANCHOR_END: app

// ANCHOR: stream
// Parsed by the filter in serve.rs: `warp::query::<T>()` would answer serde's 400s, not ours.
fn stream(grace_over: CancellationToken, params: StreamParams) -> Response {
    let lines = ticks(1, params, grace_over).map_ok(|k| format!("{k}\n"));
    streaming("text/plain; charset=utf-8", lines)
}

/// A chunked response that sends each item as soon as the stream yields it. An error cuts it:
/// hyper closes an HTTP/1.1 connection without the last chunk, and resets an HTTP/2 stream.
fn streaming(
    content_type: &str, items: impl Stream<Item = io::Result<String>> + Send + Sync + 'static,
) -> Response {
    let body = reply::stream(items);
    let body = reply::with_header(body, header::CONTENT_TYPE, content_type);
    let body = reply::with_header(body, header::CACHE_CONTROL, "no-cache");
    // Tells nginx not to buffer the response.
    let body = reply::with_header(body, "x-accel-buffering", "no");
    // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
    reply::with_header(body, header::X_CONTENT_TYPE_OPTIONS, "nosniff").into_response()
}
// ANCHOR_END: stream

// ANCHOR: stream_html
fn stream_html(grace_over: CancellationToken, params: HtmlParams) -> Response {
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
fn events(grace_over: CancellationToken, params: EventParams, headers: HeaderMap) -> Response {
    let last_id = headers.get("last-event-id").map(|value| value.as_bytes());
    let after = match params::last_event_id(last_id, params.stream.count) {
        // Nothing left: 204 tells EventSource to stop reconnecting.
        Ok(after) if after == params.stream.count => return StatusCode::NO_CONTENT.into_response(),
        Ok(after) => after,
        Err(message) => {
            return reply::with_status(message, StatusCode::BAD_REQUEST).into_response();
        }
    };
    let events = ticks(after + 1, params.stream, grace_over).map_ok(move |k| {
        let event = Event::default().id(k.to_string()).data(k.to_string());
        // The first message tells the browser how long to wait before it reconnects.
        if k == after + 1 { event.retry(RETRY) } else { event }
    });
    let events = warp::sse::keep_alive().interval(params.keepalive).stream(events);
    // `sse::reply` sets `Cache-Control: no-cache` itself.
    reply::with_header(warp::sse::reply(events), "x-accel-buffering", "no").into_response()
}
// ANCHOR_END: events

// ANCHOR: ticks
/// Items `first..=count`, item k due at start + (k-first)·interval: a deadline, so lateness does
/// not pile up. Ends early, with a complete body, when `grace_over` fires; yields the error, and
/// ends, when the app's source fails.
fn ticks(
    first: u32, params: StreamParams, grace_over: CancellationToken,
) -> impl Stream<Item = io::Result<u32>> + Send + Sync + 'static {
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
