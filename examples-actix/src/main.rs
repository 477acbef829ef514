//! The counting stream served by actix-web: `GET /stream` sends `1\n` … `count\n`, one line
//! every `interval_ms`, each line flushed as it is produced (see CONTRACT.md).
//!
//! Run with `cargo run -p examples-actix`, then `curl -N localhost:3001/stream`.
//! Test with `cargo test -p examples-actix`.

mod params;

use std::{convert::Infallible, io::IsTerminal, net::SocketAddr};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    http::{
        ConnectionType, Version,
        header::{self, CacheControl, CacheDirective},
    },
    web::{self, Bytes},
};
use async_stream::stream;
use clap::Parser;
use futures_util::{Stream, StreamExt, stream};
use params::StreamParams;
use tokio::time::{Instant, sleep_until};

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();

    let server = HttpServer::new(|| {
        App::new().route("/", web::get().to(index)).service(
            // actix's `web::get()` does not match HEAD, so HEAD gets a route of its own;
            // any other method gets 405 with `Allow: GET, HEAD`.
            web::resource("/stream").get(stream).head(stream_head),
        )
    })
    // Small writes go out at once instead of waiting for the previous segment's ACK (Nagle).
    .tcp_nodelay(true)
    .bind(args.addr)?;
    println!("listening on http://{}", server.addrs()[0]);
    // actix handles SIGINT and SIGTERM itself.
    server.run().await
}

async fn stream(req: HttpRequest) -> HttpResponse {
    match StreamParams::from_query(req.query_string()) {
        Ok(params) => streaming(&req, counting(params)),
        Err(message) => HttpResponse::BadRequest()
            .content_type(TEXT_PLAIN)
            .body(message),
    }
}

/// actix would poll a HEAD response's stream to the end and throw it away, so HEAD gets the
/// same headers over an empty stream: the generator never starts.
async fn stream_head(req: HttpRequest) -> HttpResponse {
    match StreamParams::from_query(req.query_string()) {
        Ok(_) => streaming(&req, stream::empty()),
        Err(_) => HttpResponse::BadRequest().content_type(TEXT_PLAIN).finish(),
    }
}

fn streaming(req: &HttpRequest, lines: impl Stream<Item = Bytes> + 'static) -> HttpResponse {
    let mut response = HttpResponse::Ok()
        .content_type(TEXT_PLAIN)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        // Tells nginx not to buffer this response.
        .insert_header(("x-accel-buffering", "no"))
        // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .streaming(lines.map(Ok::<_, Infallible>));
    // actix-http chunk-encodes streams even for HTTP/1.0 clients, which cannot decode that:
    // they get the raw lines, the end marked by closing the connection.
    if req.version() == Version::HTTP_10 {
        response.head_mut().no_chunking(true);
        response
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    response
}

/// Line k is due at start + (k-1)·interval: sleeping until a deadline, not for a duration,
/// keeps lateness from piling up.
fn counting(params: StreamParams) -> impl Stream<Item = Bytes> {
    stream! {
        let start = Instant::now();
        for k in 1..=params.count {
            sleep_until(start + params.interval * (k - 1)).await;
            yield Bytes::from(format!("{k}\n"));
        }
    }
}

async fn index() -> &'static str {
    "Counting stream (actix-web)\n\
     GET /stream?count=10&interval_ms=1000  one line per interval, text/plain\n\
     Try: curl -N 'http://localhost:3001/stream?count=5&interval_ms=500'\n"
}
