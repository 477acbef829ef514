//! The counting stream served by actix-web (see CONTRACT.md), with compression on app-wide:
//! - `GET /stream` sends `1\n` … `count\n` as text/plain, one line every `interval_ms`;
//! - `GET /stream.html` sends the same items as `<div>k</div>` in an HTML page;
//! - `GET /events` sends them as Server-Sent Events and resumes after `Last-Event-ID`.
//!
//! Every stream logs how it ended. On SIGTERM or SIGINT the server stops accepting, lets streams
//! run on for `--grace-secs`, then ends those still open cleanly and exits.
//!
//! Run with `cargo run -p examples-actix`, then `curl -N localhost:3001/stream` or open
//! <http://localhost:3001/>. Test with `cargo test -p examples-actix`.

mod params;

use std::{convert::Infallible, io::IsTerminal, net::SocketAddr, time::Duration};

use actix_web::{
    App, Error, HttpRequest, HttpResponse, HttpServer, Responder,
    body::{BodySize, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        ConnectionType, Method, Version,
        header::{self, CacheControl, CacheDirective},
    },
    middleware::{Compress, Logger, Next, from_fn},
    web::{self, Bytes, ThinData},
};
use actix_web_lab::sse;
use async_stream::stream;
use clap::Parser;
use futures_util::{Stream, StreamExt, stream};
use params::{EventParams, HtmlParams, RETRY, StreamParams};
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, sleep, sleep_until},
};
use tokio_util::sync::CancellationToken;
use tracing::info;

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const TEXT_HTML: &str = "text/html; charset=utf-8";

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3001")]
    addr: SocketAddr,
    /// Seconds streams may run on after SIGTERM or SIGINT before they are ended.
    #[arg(long, env = "GRACE_SECS", default_value_t = 30)]
    grace_secs: u64,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    // Also installs a `log` bridge, which is where actix's Logger writes.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    // Fired `grace_secs` after the signal: the streams still open end then.
    let grace_over = CancellationToken::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let server = HttpServer::new({
        let grace_over = grace_over.clone();
        move || {
            App::new()
                .app_data(ThinData(grace_over.clone()))
                // Compresses streams too, flushing at each pause (actix-http >= 3.18.12);
                // SSE opts out.
                .wrap(Compress::default())
                .wrap(from_fn(http10_close_delimited))
                .wrap(Logger::default())
                .route("/", web::get().to(index))
                // actix's `web::get()` does not match HEAD, so HEAD is routed too; any other
                // method gets 405 with `Allow` listing the methods routed here.
                .service(web::resource("/stream").get(stream).head(stream))
                .service(
                    web::resource("/stream.html")
                        .get(stream_html)
                        .head(stream_html),
                )
                .service(web::resource("/events").get(events))
        }
    })
    // Small writes go out at once instead of waiting for the previous segment's ACK (Nagle).
    .tcp_nodelay(true)
    // Stops a stream as soon as its client closes the connection, not one or two writes later.
    // As with hyper, a client that half-closes after sending its request loses the response.
    .h1_allow_half_closed(false)
    // actix stops gracefully on SIGTERM but forcibly on SIGINT; we want graceful for both.
    .disable_signals()
    // actix would drop connections 30 s after the signal, whatever our grace.
    .shutdown_timeout(args.grace_secs + 1)
    .bind(args.addr)?;
    println!("listening on http://{}", server.addrs()[0]);

    let server = server.run();
    let handle = server.handle();
    let shutdown = async {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        info!(
            "shutting down: streams still open in {} s will be ended",
            args.grace_secs
        );
        // Closes the listener now and lets open connections finish; `server` resolves when
        // they have. The command is sent at once.
        drop(handle.stop(true));
        sleep(Duration::from_secs(args.grace_secs)).await;
        grace_over.cancel();
        // The streams end now, cleanly. actix counts open connections only once a second:
        // give them a moment to flush, then drop `server`, which closes whatever is left.
        sleep(Duration::from_millis(500)).await;
    };
    tokio::select! {
        result = server => result,
        () = shutdown => Ok(()),
    }
}

async fn stream(
    req: HttpRequest,
    ThinData(grace_over): ThinData<CancellationToken>,
) -> HttpResponse {
    match StreamParams::from_query(req.query_string()) {
        Ok(params) => {
            let lines = ticks(1, params, grace_over).map(|k| format!("{k}\n"));
            streaming(&req, TEXT_PLAIN, lines)
        }
        Err(message) => bad_request(message),
    }
}

async fn stream_html(
    req: HttpRequest,
    ThinData(grace_over): ThinData<CancellationToken>,
) -> HttpResponse {
    match HtmlParams::from_query(req.query_string()) {
        Ok(HtmlParams { stream, pad }) => {
            let padding = " ".repeat(pad);
            let items =
                ticks(1, stream, grace_over).map(move |k| format!("<div>{k}</div>{padding}"));
            let page = stream::once(async { "<!doctype html><html><body>".to_owned() })
                .chain(items)
                .chain(stream::once(async { "</body></html>".to_owned() }));
            streaming(&req, TEXT_HTML, page)
        }
        Err(message) => bad_request(message),
    }
}

async fn events(
    req: HttpRequest,
    ThinData(grace_over): ThinData<CancellationToken>,
) -> HttpResponse {
    let params = match EventParams::from_query(req.query_string()) {
        Ok(params) => params,
        Err(message) => return bad_request(message),
    };
    let count = params.stream.count;
    let last_id = req.headers().get("last-event-id").map(|id| id.as_bytes());
    let after = match params::last_event_id(last_id, count) {
        // Nothing left to send: 204 tells EventSource to stop reconnecting.
        Ok(after) if after == count => return HttpResponse::NoContent().finish(),
        Ok(after) => after,
        Err(message) => return bad_request(message),
    };
    let events = ticks(after + 1, params.stream, grace_over)
        .map(|k| sse::Event::Data(sse::Data::new(k.to_string()).id(k.to_string())));
    sse::Sse::from_infallible_stream(events)
        .with_keep_alive(params.keepalive)
        .with_retry_duration(RETRY)
        .customize()
        // Tells nginx not to buffer this response.
        .insert_header(("x-accel-buffering", "no"))
        .respond_to(&req)
        .map_into_boxed_body()
}

/// The response both streams share. actix would poll a HEAD response's stream to the end and
/// throw it away, so HEAD gets the same headers over an empty body: the generator never starts.
fn streaming(
    req: &HttpRequest,
    content_type: &'static str,
    body: impl Stream<Item = String> + 'static,
) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        // Tells nginx not to buffer this response.
        .insert_header(("x-accel-buffering", "no"))
        // Without it, browsers hold back the first 1 KiB of text/plain to sniff its type.
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    if req.method() == Method::HEAD {
        response.streaming(stream::empty::<Result<Bytes, Infallible>>())
    } else {
        response.streaming(body.map(|item| Ok::<_, Infallible>(Bytes::from(item))))
    }
}

/// actix-http chunk-encodes a body of unknown size even for HTTP/1.0 clients, which cannot
/// decode that, and Compress turns chunking back on, so this runs outside Compress: HTTP/1.0
/// gets the raw bytes, the end marked by closing the connection.
async fn http10_close_delimited(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let http10 = req.version() == Version::HTTP_10;
    let mut res = next.call(req).await?;
    if http10 && res.response().body().size() == BodySize::Stream {
        let head = res.response_mut().head_mut();
        head.no_chunking(true);
        head.set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

fn bad_request(message: String) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type(TEXT_PLAIN)
        .body(message)
}

/// Items `first..=count`, the first at once and item k at start + (k-first)·interval: sleeping
/// until a deadline, not for a duration, keeps lateness from piling up. Ends early, as a complete
/// response, when `grace_over` fires.
fn ticks(
    first: u32,
    params: StreamParams,
    grace_over: CancellationToken,
) -> impl Stream<Item = u32> {
    stream! {
        let mut progress = Progress { sent: 0, total: params.count - first + 1 };
        let start = Instant::now();
        for k in first..=params.count {
            let due = sleep_until(start + params.interval * (k - first));
            if grace_over.run_until_cancelled(due).await.is_none() {
                break;
            }
            progress.sent += 1;
            yield k;
        }
    }
}

/// Logs how a stream ended when its generator is dropped: after its last item, or early
/// because the client went away (actix drops the body) or shutdown's grace ran out.
struct Progress {
    sent: u32,
    total: u32,
}

impl Drop for Progress {
    fn drop(&mut self) {
        let Self { sent, total } = self;
        if sent == total {
            info!("stream completed: {sent} of {total} items");
        } else {
            info!("stream cancelled after {sent} of {total} items");
        }
    }
}

async fn index() -> web::Html {
    web::Html::new(include_str!("index.html"))
}
