//! The counting stream served by Rocket (CONTRACT.md): `/stream` as text, `/stream.html` as a
//! growing page, `/events` as Server-Sent Events, and `/` a page that shows them live. This
//! file is the snippet; `serve.rs` binds, hardens and shuts down.
//!
//! Run with `cargo run -p examples-rocket`, then `curl -N localhost:3002/stream`.
//! Test with `cargo test -p examples-rocket`.

mod params;
mod serve;

use params::{EventParams, HtmlParams, RETRY, StreamParams};
use rocket::futures::{Stream, StreamExt, TryStreamExt, future::ready, stream::once};
use rocket::http::{ContentType, Header};
use rocket::response::status::{BadRequest, NoContent};
use rocket::response::stream::{Event, EventStream, ReaderStream};
use rocket::{Build, Responder, Rocket, State, get, routes};
use rocket_async_compression::Compression;
use serve::{Body, LastEventId};
use std::io;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

#[rocket::main]
async fn main() -> std::process::ExitCode {
    serve::run(app).await
}

// ANCHOR: app
fn app(grace_over: CancellationToken) -> Rocket<Build> {
    // A GET route also answers HEAD: Rocket runs it and drops the body before it is polled.
    rocket::build()
        .manage(grace_over)
        .mount("/", routes![serve::index, stream, stream_html, events])
        .mount("/", serve::method_not_allowed(&["/stream", "/stream.html", "/events"]))
        .attach(serve::RequireHost)
        // Streams stay compressed: async-compression >= 0.4.31 flushes each pause; SSE is exempt.
        .attach(Compression::fairing())
}
// ANCHOR_END: app

// ANCHOR: stream
// Parsed by the guard in serve.rs: Rocket's `?<count>` would answer its own 422, not our 400s.
#[get("/stream")]
fn stream(
    grace_over: &State<CancellationToken>, params: Result<StreamParams, String>,
) -> Result<Streaming<Body>, BadRequest<String>> {
    let lines = ticks(1, params.map_err(BadRequest)?, grace_over.inner().clone());
    Ok(streaming(ContentType::Plain, lines.map_ok(|k| format!("{k}\n"))))
}

/// A text stream with the headers that keep proxies from buffering it (Shield adds nosniff).
#[derive(Responder)]
struct Streaming<S: Stream> {
    body: ReaderStream<S>,
    content_type: ContentType,
    cache_control: Header<'static>,
    accel_buffering: Header<'static>, // X-Accel-Buffering: no, or nginx buffers it
}

fn streaming(
    content_type: ContentType, items: impl Stream<Item = io::Result<String>> + Send + 'static,
) -> Streaming<Body> {
    // `TextStream` takes no errors: a reader's error is how a Rocket body fails (serve.rs).
    let body = ReaderStream::one(serve::reader(items));
    let cache_control = Header::new("Cache-Control", "no-cache");
    let accel_buffering = Header::new("X-Accel-Buffering", "no");
    Streaming { body, content_type, cache_control, accel_buffering }
}
// ANCHOR_END: stream

// ANCHOR: stream_html
#[get("/stream.html")]
fn stream_html(
    grace_over: &State<CancellationToken>, params: Result<HtmlParams, String>,
) -> Result<Streaming<Body>, BadRequest<String>> {
    let params = params.map_err(BadRequest)?;
    // The padding is what once made browsers start rendering before the page was complete.
    let padding = " ".repeat(params.pad);
    let items = ticks(1, params.stream, grace_over.inner().clone())
        .map_ok(move |k| format!("<div>{k}</div>{padding}"));
    let page = once(async { Ok("<!doctype html><html><body>".to_owned()) })
        .chain(items)
        .chain(once(async { Ok("</body></html>".to_owned()) }));
    Ok(streaming(ContentType::HTML, page))
}
// ANCHOR_END: stream_html

// ANCHOR: events
#[derive(Responder)]
enum Events<S> {
    Stream(EventStream<S>, Header<'static>),
    /// Nothing left after `Last-Event-ID`: 204 tells EventSource to stop reconnecting.
    Done(NoContent),
}

#[get("/events")]
fn events(
    grace_over: &State<CancellationToken>, params: Result<EventParams, String>,
    last_id: LastEventId<'_>,
) -> Result<Events<impl Stream<Item = Event>>, BadRequest<String>> {
    let params = params.map_err(BadRequest)?;
    let after = params::last_event_id(last_id.0, params.stream.count).map_err(BadRequest)?;
    if after == params.stream.count {
        return Ok(Events::Done(NoContent));
    }
    // The first message tells the browser how long to wait before it reconnects.
    let retry = once(async { Event::retry(RETRY) });
    // `EventStream` takes no errors: the events end at the failure, and Rocket ends cleanly.
    let events = ticks(after + 1, params.stream, grace_over.inner().clone())
        .filter_map(|item| ready(item.ok()))
        .map(|k| Event::data(k.to_string()).id(k.to_string()));
    // Rocket's heartbeat sends a `:` comment every `keepalive`, on a fixed timer.
    let events = EventStream::from(retry.chain(events)).heartbeat(params.keepalive);
    Ok(Events::Stream(events, Header::new("X-Accel-Buffering", "no")))
}
// ANCHOR_END: events

// ANCHOR: ticks
/// Items `first..=count`, item k due at start + (k-first)·interval: a deadline, so lateness does
/// not pile up. Ends early, with a complete body, when `grace_over` fires; yields the error, and
/// ends, when the app's source fails.
fn ticks(
    first: u32, params: StreamParams, grace_over: CancellationToken,
) -> impl Stream<Item = io::Result<u32>> {
    async_stream::stream! {
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
