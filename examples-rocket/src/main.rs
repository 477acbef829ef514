//! The counting stream served by Rocket, one item every `interval_ms`, each flushed as it is
//! produced (see CONTRACT.md):
//! - `GET /stream`: `1\n` … `count\n` as `text/plain`;
//! - `GET /stream.html`: `<div>k</div>` per item, padded, as one growing HTML page;
//! - `GET /events`: Server-Sent Events with `id` and `data` k, resuming after `Last-Event-ID`.
//!
//! `GET /` is a page that shows all three live. Compression is on app-wide, as in a real app.
//!
//! Run with `cargo run -p examples-rocket`, then `curl -N localhost:3002/stream`.
//! Test with `cargo test -p examples-rocket`.

mod params;

use std::{convert::Infallible, io::IsTerminal, net::SocketAddr, process::ExitCode};

use clap::Parser;
use params::{EventParams, HtmlParams, RETRY, StreamParams};
use rocket::{
    Config, Data, Request, Responder, Route,
    config::LogLevel,
    fairing::AdHoc,
    futures::Stream,
    get,
    http::{Header, Method, uri::Origin},
    request::{self, FromRequest},
    response::{
        content::RawHtml,
        status::{BadRequest, NoContent},
        stream::{Event, EventStream, TextStream},
    },
    route, routes,
};
use rocket_async_compression::Compression;
use tokio::time::{Instant, sleep_until};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3002")]
    addr: SocketAddr,
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
fn stream(uri: &Origin<'_>) -> Result<Unbuffered<TextStream![String]>, BadRequest<String>> {
    let params = StreamParams::from_query(query(uri)).map_err(BadRequest)?;
    Ok(Unbuffered::new(TextStream! {
        for await k in ticks(1, params) {
            yield format!("{k}\n");
        }
    }))
}

#[get("/stream.html")]
fn stream_html(
    uri: &Origin<'_>,
) -> Result<Unbuffered<RawHtml<TextStream![String]>>, BadRequest<String>> {
    let HtmlParams { stream, pad } = HtmlParams::from_query(query(uri)).map_err(BadRequest)?;
    let pad = " ".repeat(pad);
    Ok(Unbuffered::new(RawHtml(TextStream! {
        yield "<!doctype html><html><body>".to_string();
        for await k in ticks(1, stream) {
            yield format!("<div>{k}</div>{pad}");
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
) -> Result<Events<impl Stream<Item = Event>>, BadRequest<String>> {
    let params = EventParams::from_query(query(uri)).map_err(BadRequest)?;
    let count = params.stream.count;
    let after = params::last_event_id(last.0.map(str::as_bytes), count).map_err(BadRequest)?;
    if after == count {
        return Ok(Events::Done(NoContent));
    }
    let stream = EventStream! {
        yield Event::retry(RETRY);
        for await k in ticks(after + 1, params.stream) {
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
fn ticks(first: u32, params: StreamParams) -> impl Stream<Item = u32> {
    async_stream::stream! {
        let start = Instant::now();
        for k in first..=params.count {
            sleep_until(start + params.interval * (k - first)).await;
            yield k;
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
        ..Config::default()
    };
    let not_allowed = ["/stream", "/stream.html", "/events"]
        .into_iter()
        .flat_map(|path| {
            [Method::Post, Method::Put, Method::Delete, Method::Patch]
                .map(|method| Route::new(method, path, method_not_allowed))
        });
    let launched = rocket::custom(config)
        .mount("/", routes![index, stream, stream_html, events])
        .mount("/", not_allowed.collect::<Vec<_>>())
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
        }))
        .launch()
        .await;
    match launched {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            // E.g. the address is in use.
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
