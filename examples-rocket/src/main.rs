//! The counting stream served by Rocket: `GET /stream` sends `1\n` … `count\n`, one line every
//! `interval_ms`, each line flushed as it is produced (see CONTRACT.md).
//!
//! Run with `cargo run -p examples-rocket`, then `curl -N localhost:3002/stream`.
//! Test with `cargo test -p examples-rocket`.

mod params;

use std::{io::IsTerminal, net::SocketAddr, process::ExitCode};

use clap::Parser;
use params::StreamParams;
use rocket::{
    Config, Data, Request, Responder, Route,
    config::LogLevel,
    fairing::AdHoc,
    get,
    http::{Header, Method, uri::Origin},
    response::{status::BadRequest, stream::TextStream},
    route, routes,
};
use tokio::time::{Instant, sleep_until};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3002")]
    addr: SocketAddr,
}

/// A streamed body with the headers that keep intermediaries from buffering it.
/// (`TextStream` sets `text/plain; charset=utf-8`; Rocket's default Shield adds
/// `X-Content-Type-Options: nosniff`, which stops browsers holding back 1 KiB to sniff.)
#[derive(Responder)]
struct Unbuffered<T> {
    inner: T,
    cache_control: Header<'static>,
    accel_buffering: Header<'static>,
}

/// Also answers HEAD: Rocket re-dispatches HEAD as GET and drops the body unpolled.
#[get("/stream")]
fn stream(uri: &Origin<'_>) -> Result<Unbuffered<TextStream![String]>, BadRequest<String>> {
    let params =
        StreamParams::from_query(uri.query().map_or("", |q| q.as_str())).map_err(BadRequest)?;
    Ok(Unbuffered {
        inner: counting(params),
        cache_control: Header::new("Cache-Control", "no-cache"),
        // Tells nginx not to buffer this response.
        accel_buffering: Header::new("X-Accel-Buffering", "no"),
    })
}

/// Line k is due at start + (k-1)·interval: sleeping until a deadline, not for a duration,
/// keeps lateness from piling up.
fn counting(params: StreamParams) -> TextStream![String] {
    TextStream! {
        let start = Instant::now();
        for k in 1..=params.count {
            sleep_until(start + params.interval * (k - 1)).await;
            yield format!("{k}\n");
        }
    }
}

#[get("/")]
fn index() -> &'static str {
    "Counting stream (Rocket)\n\
     GET /stream?count=10&interval_ms=1000  one line per interval, text/plain\n\
     Try: curl -N 'http://localhost:3002/stream?count=5&interval_ms=500'\n"
}

/// Rocket answers an unrouted method with 404; HTTP wants 405 and the methods that do work.
#[derive(Responder)]
#[response(status = 405)]
struct MethodNotAllowed {
    message: &'static str,
    allow: Header<'static>,
}

fn method_not_allowed<'r>(req: &'r Request<'_>, _: Data<'r>) -> route::BoxFuture<'r> {
    let response = MethodNotAllowed {
        message: "method not allowed: /stream answers GET and HEAD\n",
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
        // be the address; its records still reach the stderr log through `tracing`.
        log_level: LogLevel::Off,
        ..Config::default()
    };
    let not_allowed = [Method::Post, Method::Put, Method::Delete, Method::Patch]
        .map(|method| Route::new(method, "/stream", method_not_allowed));
    let launched = rocket::custom(config)
        .mount("/", routes![index, stream])
        .mount("/", not_allowed.to_vec())
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
