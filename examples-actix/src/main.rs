//! The counting stream served by actix-web (CONTRACT.md): `/stream` as text, `/stream.html` as a
//! growing page, `/events` as Server-Sent Events, and `/` a page that shows them live. This
//! file is the snippet; `serve.rs` binds, hardens and shuts down.
//!
//! Run with `cargo run -p examples-actix`, then `curl -N localhost:3001/stream`.
//! Test with `cargo test -p examples-actix`.

mod params;
mod serve;

use actix_web::{
    App, HttpRequest, HttpResponse, Responder,
    error::ErrorBadRequest,
    http::header::{CacheControl, CacheDirective},
    middleware::{Compress, from_fn},
    web::{self, Bytes, ThinData},
};
use actix_web_lab::sse;
use async_stream::stream;
use futures_util::{Stream, StreamExt, TryStreamExt, stream};
use params::{EventParams, HtmlParams, RETRY, StreamParams};
use std::io;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    // ANCHOR: app
    serve::run(|grace_over| {
        App::new()
            .app_data(ThinData(grace_over))
            // Compresses streams too, flushing each pause (actix-http >= 3.18.12); SSE opts out.
            .wrap(Compress::default())
            .wrap(from_fn(serve::head_without_body))
            .wrap(from_fn(serve::http10_close_delimited))
            .wrap(serve::request_log())
            .route("/", web::get().to(|| async { web::Html::new(include_str!("index.html")) }))
            // `web::get()` does not match HEAD, so HEAD is routed too; other methods get 405.
            .service(web::resource("/stream").get(stream).head(stream))
            .service(web::resource("/stream.html").get(stream_html).head(stream_html))
            .service(web::resource("/events").get(events))
    })
    .await
    // ANCHOR_END: app
}

// ANCHOR: stream
// Parsed by the extractor in serve.rs: `web::Query<T>` would answer serde's 400s, not ours.
async fn stream(
    ThinData(grace_over): ThinData<CancellationToken>, params: StreamParams,
) -> HttpResponse {
    let lines = ticks(1, params, grace_over).map_ok(|k| format!("{k}\n"));
    streaming("text/plain; charset=utf-8", lines)
}

/// A chunked response that sends each item as soon as the stream yields it. An error cuts it:
/// actix closes an HTTP/1.1 connection without the last chunk, and resets an HTTP/2 stream.
fn streaming(
    content_type: &str, items: impl Stream<Item = io::Result<String>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        // Tells nginx not to buffer the response.
        .insert_header(("x-accel-buffering", "no"))
        // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
        .insert_header(("x-content-type-options", "nosniff"))
        .streaming(items.map_ok(Bytes::from))
}
// ANCHOR_END: stream

// ANCHOR: stream_html
async fn stream_html(
    ThinData(grace_over): ThinData<CancellationToken>, params: HtmlParams,
) -> HttpResponse {
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
    ThinData(grace_over): ThinData<CancellationToken>, params: EventParams, req: HttpRequest,
) -> HttpResponse {
    let last_id = req.headers().get("last-event-id").map(|id| id.as_bytes());
    let after = match params::last_event_id(last_id, params.stream.count) {
        // Nothing left: 204 tells EventSource to stop reconnecting.
        Ok(after) if after == params.stream.count => return HttpResponse::NoContent().finish(),
        Ok(after) => after,
        Err(message) => return HttpResponse::from_error(ErrorBadRequest(message)),
    };
    let events = ticks(after + 1, params.stream, grace_over)
        .map_ok(|k| sse::Event::Data(sse::Data::new(k.to_string()).id(k.to_string())));
    sse::Sse::from_stream(events)
        .with_keep_alive(params.keepalive)
        // The first message tells the browser how long to wait before it reconnects.
        .with_retry_duration(RETRY)
        .customize()
        .insert_header(("x-accel-buffering", "no"))
        .respond_to(&req)
        .map_into_boxed_body()
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
