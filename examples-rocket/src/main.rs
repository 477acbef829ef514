//! The counting stream served by Rocket, one item every `interval_ms`, each flushed as it is
//! produced (see CONTRACT.md):
//! - `GET /stream`: `1\n` … `count\n` as `text/plain`;
//! - `GET /stream.html`: `<div>k</div>` per item, padded, as one growing HTML page;
//! - `GET /events`: Server-Sent Events with `id` and `data` k, resuming after `Last-Event-ID`.
//!
//! `GET /` is a page that shows all three live. Compression is on app-wide, as in a real app.
//! Each stream logs how it ended. On SIGTERM or SIGINT the server stops accepting, lets open
//! streams run on for `--grace-secs`, then ends them cleanly and exits.
//!
//! Run with `cargo run -p examples-rocket`, then `curl -N localhost:3002/stream`.
//! Test with `cargo test -p examples-rocket`.

mod params;

use std::{
    convert::Infallible,
    io::{Cursor, IsTerminal},
    net::SocketAddr,
    pin::pin,
    process::ExitCode,
    time::Duration,
};

use clap::Parser;
use params::{EventParams, HtmlParams, RETRY, StreamParams};
use rocket::{
    Config, Data, Request, Responder, Route, State,
    config::LogLevel,
    error::ErrorKind,
    fairing::AdHoc,
    futures::{Stream, StreamExt},
    get,
    http::{ContentType, Header, Method, Status, uri::Origin},
    request::{self, FromRequest},
    response::{
        content::RawHtml,
        status::{BadRequest, NoContent},
        stream::{Event, EventStream, TextStream},
    },
    route, routes,
};
use rocket_async_compression::Compression;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::{
    sync::CancellationToken,
    task::{TaskTracker, task_tracker::TaskTrackerToken},
};
use tracing::info;

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3002")]
    addr: SocketAddr,
    /// Seconds that open streams may run on after SIGTERM or SIGINT before they are ended.
    #[arg(long, env = "GRACE_SECS", default_value_t = 30)]
    grace_secs: u32,
}

/// The streams in flight, and the signal that ends them when shutdown's grace period is over.
#[derive(Clone, Default)]
struct Streams {
    open: TaskTracker,
    grace_over: CancellationToken,
}

/// A streamed body with the headers that keep intermediaries from buffering it.
/// (Rocket's default Shield adds `X-Content-Type-Options: nosniff`, which stops browsers
/// holding back 1 KiB to sniff.)
#[derive(Responder)]
struct Unbuffered<T> {
    inner: T,
    cache_control: Header<'static>,
    accel_buffering: Header<'static>,
}

impl<T> Unbuffered<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            cache_control: Header::new("Cache-Control", "no-cache"),
            // Tells nginx not to buffer this response.
            accel_buffering: Header::new("X-Accel-Buffering", "no"),
        }
    }
}

/// Also answers HEAD: Rocket re-dispatches HEAD as GET and drops the body unpolled.
#[get("/stream")]
fn stream(
    uri: &Origin<'_>,
    streams: &State<Streams>,
) -> Result<Unbuffered<TextStream![String]>, BadRequest<String>> {
    let params = StreamParams::from_query(query(uri)).map_err(BadRequest)?;
    // Rocket hands each item to hyper on its own (a task switch and a write each), so the
    // lines already due go out together: a fast stream does ten times the lines per second.
    let due = ticks(1, params, streams).ready_chunks(64);
    Ok(Unbuffered::new(TextStream! {
        for await lines in due {
            yield lines.iter().map(|k| format!("{k}\n")).collect::<String>();
        }
    }))
}

#[get("/stream.html")]
fn stream_html(
    uri: &Origin<'_>,
    streams: &State<Streams>,
) -> Result<Unbuffered<RawHtml<TextStream![String]>>, BadRequest<String>> {
    let HtmlParams { stream, pad } = HtmlParams::from_query(query(uri)).map_err(BadRequest)?;
    let pad = " ".repeat(pad);
    let due = ticks(1, stream, streams).ready_chunks(64);
    Ok(Unbuffered::new(RawHtml(TextStream! {
        yield "<!doctype html><html><body>".to_string();
        for await lines in due {
            yield lines.iter().map(|k| format!("<div>{k}</div>{pad}")).collect::<String>();
        }
        yield "</body></html>".to_string();
    })))
}

/// The `Last-Event-ID` header a reconnecting EventSource sends.
struct LastEventId<'r>(Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LastEventId<'r> {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Infallible> {
        request::Outcome::Success(LastEventId(req.headers().get_one("Last-Event-ID")))
    }
}

#[derive(Responder)]
enum Events<S> {
    Stream(Unbuffered<EventStream<S>>),
    /// Nothing is left after `Last-Event-ID`: 204 tells EventSource to stop reconnecting.
    Done(NoContent),
}

#[get("/events")]
fn events(
    uri: &Origin<'_>,
    last: LastEventId<'_>,
    streams: &State<Streams>,
) -> Result<Events<impl Stream<Item = Event>>, BadRequest<String>> {
    let params = EventParams::from_query(query(uri)).map_err(BadRequest)?;
    let count = params.stream.count;
    let after = params::last_event_id(last.0.map(str::as_bytes), count).map_err(BadRequest)?;
    if after == count {
        return Ok(Events::Done(NoContent));
    }
    let ticks = ticks(after + 1, params.stream, streams);
    let stream = EventStream! {
        yield Event::retry(RETRY);
        for await k in ticks {
            let id = k.to_string();
            yield Event::data(id.clone()).id(id);
        }
    };
    // Rocket's heartbeat sends a `:` comment line every `keepalive`, on a fixed timer.
    Ok(Events::Stream(Unbuffered::new(
        stream.heartbeat(params.keepalive),
    )))
}

/// Items `first..=count`, the first at once and item k at start + (k-first)·interval: sleeping
/// until a deadline, not for a duration, keeps lateness from piling up.
fn ticks(first: u32, params: StreamParams, streams: &Streams) -> impl Stream<Item = u32> + use<> {
    let Streams { open, grace_over } = streams.clone();
    async_stream::stream! {
        // Created at the first poll, so a HEAD response (never polled) logs nothing.
        let mut end = StreamEnd { produced: 0, total: params.count - first + 1, _open: open.token() };
        let start = Instant::now();
        for k in first..=params.count {
            tokio::select! {
                () = sleep_until(start + params.interval * (k - first)) => {}
                // Shutdown's grace period is over: the body ends cleanly after the items sent.
                () = grace_over.cancelled() => break,
            }
            end.produced += 1;
            yield k;
        }
    }
}

/// Logs how a stream ended when its generator is dropped. Rocket drops it when a write fails,
/// i.e. at the first item after the client left.
struct StreamEnd {
    produced: u32,
    total: u32,
    _open: TaskTrackerToken,
}

impl Drop for StreamEnd {
    fn drop(&mut self) {
        let (produced, total) = (self.produced, self.total);
        if produced == total {
            info!("stream completed: {total} of {total} items");
        } else {
            info!("stream cancelled after {produced} of {total} items");
        }
    }
}

fn query<'a>(uri: &'a Origin<'_>) -> &'a str {
    uri.query().map_or("", |q| q.as_str())
}

#[get("/")]
fn index() -> RawHtml<&'static str> {
    RawHtml(include_str!("index.html"))
}

/// Rocket answers an unrouted method with 404; HTTP wants 405 and the methods that do work.
#[derive(Responder)]
#[response(status = 405)]
struct MethodNotAllowed {
    message: String,
    allow: Header<'static>,
}

fn method_not_allowed<'r>(req: &'r Request<'_>, _: Data<'r>) -> route::BoxFuture<'r> {
    let response = MethodNotAllowed {
        message: format!(
            "method not allowed: {} answers GET and HEAD\n",
            req.uri().path()
        ),
        allow: Header::new("Allow", "GET, HEAD"),
    };
    route::Outcome::from(req, response).pin()
}

/// After SIGTERM or SIGINT (Rocket has already stopped accepting): streams in flight run on
/// for `grace`, then are ended.
async fn drain(shutdown: rocket::Shutdown, streams: Streams, grace: Duration) {
    shutdown.await;
    info!("shutting down: open streams have {grace:?} to finish");
    streams.open.close();
    if timeout(grace, streams.open.wait()).await.is_err() {
        streams.grace_over.cancel();
        streams.open.wait().await;
    }
    // Rocket drops a finished stream before hyper has written its final chunk: give hyper a
    // moment before the process exits.
    sleep(Duration::from_millis(100)).await;
}

#[rocket::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();

    let config = Config {
        address: args.addr.ip(),
        port: args.addr.port(),
        // Rocket's own logger (and launch banner) writes to stdout, where our first line must
        // be the address; its records, requests included, still reach the stderr log through
        // `tracing`.
        log_level: LogLevel::Off,
        shutdown: rocket::config::Shutdown {
            // Rocket cuts the connections still open when its grace period ends: ours must
            // end the streams first.
            grace: args.grace_secs.saturating_add(1),
            ..Default::default()
        },
        ..Config::default()
    };
    let streams = Streams::default();
    let not_allowed = ["/stream", "/stream.html", "/events"]
        .into_iter()
        .flat_map(|path| {
            [Method::Post, Method::Put, Method::Delete, Method::Patch]
                .map(|method| Route::new(method, path, method_not_allowed))
        });
    let rocket = rocket::custom(config)
        .manage(streams.clone())
        .mount("/", routes![index, stream, stream_html, events])
        .mount("/", not_allowed.collect::<Vec<_>>())
        // HTTP/1.1 requires Host (RFC 9112 §3.2); hyper does not check. Rocket 0.5 does not
        // tell us the HTTP version, so HTTP/1.0 without Host is refused as well.
        .attach(AdHoc::on_response("require Host", |req, res| {
            Box::pin(async move {
                if req.host().is_none() {
                    let message = "bad request: missing or invalid Host header\n";
                    res.set_status(Status::BadRequest);
                    res.set_header(ContentType::Plain);
                    res.set_sized_body(message.len(), Cursor::new(message));
                }
            })
        }))
        // Streams stay compressed: async-compression >= 0.4.31 flushes whenever the body
        // pauses; /events is left alone because the fairing skips text/event-stream.
        .attach(Compression::fairing())
        .attach(AdHoc::on_liftoff("announce address", |rocket| {
            Box::pin(async move {
                let config = rocket.config();
                println!(
                    "listening on http://{}",
                    SocketAddr::new(config.address, config.port)
                );
            })
        }));
    let grace = Duration::from_secs(args.grace_secs.into());
    let launched = async {
        let rocket = rocket.ignite().await?;
        let mut drained = pin!(drain(rocket.shutdown(), streams, grace));
        tokio::select! {
            // Rocket waits out its whole grace period if any connection was open at the
            // signal; we are done as soon as the last stream has ended.
            () = &mut drained => Ok(()),
            launched = rocket.launch() => match launched {
                Err(err) if !matches!(err.kind(), ErrorKind::Shutdown(..)) => Err(err),
                // Rocket 0.5.2 may also give up ("shutdown failed") the moment shutdown starts,
                // when a new connection races the signal; the streams run on regardless.
                _ => {
                    drained.await;
                    Ok(())
                }
            },
        }
    };
    match launched.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // E.g. the address is in use.
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
