//! Serving the app with Rocket (HTTPS with h2 and http/1.1 by ALPN through its own `tls`
//! feature and `TlsConfig`), the queries and `Last-Event-ID` as request guards, the Host check,
//! 405 for other methods, and a graceful shutdown bounded by `--grace-secs`. What all four
//! examples do alike (the command line, logging, the open-file limit, the signal, the drain) is
//! in `setup.rs`. Nothing here is about streaming; a snippet reader can skip it.

mod setup;

use std::{convert::Infallible, time::Duration};
use std::{io::Cursor, net::SocketAddr, pin::pin, process::ExitCode};

use bytes::Bytes;
use clap::Parser;
use rocket::futures::{Stream, StreamExt, TryStreamExt, stream::BoxStream};
use rocket::response::stream::One;
use rocket::{
    Build, Config, Data, Request, Response, Rocket, Route,
    config::LogLevel,
    error::ErrorKind,
    fairing::{AdHoc, Fairing, Info, Kind},
    http::{ContentType, Header, Method, Status},
    request::{self, FromRequest},
    route,
};
use std::io;
use tokio::time::sleep;
use tokio_util::{io::StreamReader, sync::CancellationToken, task::TaskTracker};

use crate::params::{EventParams, HtmlParams, StreamParams};

/// The address `--addr` defaults to: each example has a port of its own.
const ADDR: &str = "127.0.0.1:3002";

/// Serves `app` until SIGTERM or Ctrl-C, then stops accepting, lets open streams run for
/// `--grace-secs`, cancels the token `app` was given to end those still running, and returns.
pub async fn run(app: fn(CancellationToken) -> Rocket<Build>) -> ExitCode {
    let args = setup::Args::parse();
    setup::init_logging("info");
    setup::raise_open_file_limit();
    let grace_over = CancellationToken::new();
    let (app, grace) = (app(grace_over.clone()), args.grace());
    let config = match args.pem() {
        Ok(pem) => config(&args, pem),
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let signal = match setup::shutdown_signal() {
        Ok(signal) => signal,
        Err(err) => {
            eprintln!("error: cannot listen for SIGTERM and SIGINT: {err}");
            return ExitCode::FAILURE;
        }
    };
    // ANCHOR: serve
    let requests = TaskTracker::new();
    let rocket = app.configure(config).attach(CountRequests(requests.clone())).attach(
        AdHoc::on_liftoff("announce the address", |rocket| {
            let config = rocket.config();
            let scheme = if config.tls_enabled() { "https" } else { "http" };
            println!("listening on {scheme}://{}", SocketAddr::new(config.address, config.port));
            Box::pin(async {})
        }),
    );
    let launched = async {
        let rocket = rocket.ignite().await?;
        let shutdown = rocket.shutdown();
        tokio::spawn(async move {
            signal.await;
            shutdown.notify();
        });
        let mut drained = pin!(drain(rocket.shutdown(), requests, grace_over, grace));
        tokio::select! {
            // Rocket waits out its whole grace if any connection was open at the signal
            // (rocket 0.5.2 server.rs); we are done as soon as the last request has ended.
            () = &mut drained => Ok(()),
            launched = rocket.launch() => match launched {
                Err(err) if !matches!(err.kind(), ErrorKind::Shutdown(..)) => Err(err),
                // Rocket 0.5.2 may also give up ("shutdown failed") the moment shutdown
                // starts, when a new connection races the signal; the streams run on.
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
            eprintln!("error: {err}"); // E.g. the address is in use.
            ExitCode::FAILURE
        }
    }
    // ANCHOR_END: serve
}

fn config(args: &setup::Args, pem: Option<setup::Pem>) -> Config {
    Config {
        address: args.addr.ip(),
        port: args.addr.port(),
        // With its `http2` feature, Rocket's TLS offers h2, then http/1.1, by ALPN.
        tls: pem.map(|pem| rocket::config::TlsConfig::from_bytes(&pem.cert, &pem.key)),
        // Rocket's own logger and launch banner write to stdout, whose first line must be the
        // address; its records, requests included, still reach stderr through `tracing`.
        log_level: LogLevel::Off,
        shutdown: rocket::config::Shutdown {
            // Rocket cuts the connections still open when its grace ends: ours must end first.
            grace: u32::try_from(args.grace_secs).unwrap_or(u32::MAX).saturating_add(1),
            // The signals are the same as the other three examples', SIGTERM and SIGINT alike.
            ctrlc: false,
            signals: Default::default(),
            ..Default::default()
        },
        ..Config::default()
    }
}

/// Counts the requests in flight, each until it is dropped: once Rocket has handed the last of
/// its body to hyper.
struct CountRequests(TaskTracker);

#[rocket::async_trait]
impl Fairing for CountRequests {
    fn info(&self) -> Info {
        Info { name: "count requests in flight", kind: Kind::Request }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        req.local_cache(|| self.0.token());
    }
}

/// After SIGTERM or SIGINT (Rocket has already stopped accepting): the requests in flight run
/// on for `grace`, then the streams among them are ended.
async fn drain(
    shutdown: rocket::Shutdown, requests: TaskTracker, grace_over: CancellationToken,
    grace: Duration,
) {
    shutdown.await;
    setup::drain(requests, grace, grace_over).await;
    // A request ends once Rocket has handed the last of its body to hyper's connection task,
    // which then writes the final chunk; Rocket 0.5.2 has no signal for that (nor any hook on
    // connections), so hyper gets a moment before the process exits.
    sleep(Duration::from_millis(100)).await;
}

/// The endpoints' queries as request guards. Taken as `Result<StreamParams, String>`, a bad,
/// repeated or unknown parameter reaches the handler as the contract's one-line message.
macro_rules! from_query {
    ($($params:ty),*) => {$(
        #[rocket::async_trait]
        impl<'r> FromRequest<'r> for $params {
            type Error = String;

            async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, String> {
                match Self::from_query(req.uri().query().map_or("", |q| q.as_str())) {
                    Ok(params) => request::Outcome::Success(params),
                    Err(message) => request::Outcome::Error((Status::BadRequest, message)),
                }
            }
        }
    )*};
}

from_query!(StreamParams, HtmlParams, EventParams);

/// The `Last-Event-ID` header a reconnecting EventSource sends.
pub struct LastEventId<'r>(pub Option<&'r [u8]>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for LastEventId<'r> {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Infallible> {
        let header = req.headers().get_one("Last-Event-ID");
        request::Outcome::Success(LastEventId(header.map(str::as_bytes)))
    }
}

/// HTTP/1.1 requires Host (RFC 9112 §3.2); hyper does not check. Rocket 0.5 does not tell us
/// the HTTP version, so HTTP/1.0 without Host is refused as well.
pub struct RequireHost;

#[rocket::async_trait]
impl Fairing for RequireHost {
    fn info(&self) -> Info {
        Info { name: "require Host", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        if req.host().is_none() {
            let message = "bad request: missing or invalid Host header\n";
            res.set_status(Status::BadRequest);
            res.set_header(ContentType::Plain);
            res.set_sized_body(message.len(), Cursor::new(message));
        }
    }
}

/// The page at `/`, which shows the three streams live.
#[rocket::get("/")]
pub fn index() -> rocket::response::content::RawHtml<&'static str> {
    rocket::response::content::RawHtml(include_str!("index.html"))
}

/// A streaming body that can fail: one reader over the items, for `ReaderStream::one`.
pub type Body = One<StreamReader<BoxStream<'static, io::Result<Bytes>>, Bytes>>;

/// The items as a reader whose read fails where the stream does, the one way a Rocket body can
/// fail; Rocket 0.5.2 still ends the response cleanly on it (a known limit: docs/src/rocket.md).
/// Rocket hands each item to hyper on its own, a task switch and a write each: the items already
/// due go out together, and a fast stream does ten times the lines per second.
pub fn reader(
    items: impl Stream<Item = io::Result<String>> + Send + 'static,
) -> StreamReader<BoxStream<'static, io::Result<Bytes>>, Bytes> {
    let due = items.ready_chunks(64).map(|due| due.into_iter().collect::<io::Result<String>>());
    StreamReader::new(due.map_ok(Bytes::from).boxed())
}

/// Routes that answer POST, PUT, DELETE and PATCH on `paths` with 405 and `Allow`.
pub fn method_not_allowed(paths: &[&str]) -> Vec<Route> {
    let methods = [Method::Post, Method::Put, Method::Delete, Method::Patch];
    let route = |(path, method)| Route::new(method, path, not_allowed);
    paths.iter().flat_map(|path| methods.map(|method| (*path, method))).map(route).collect()
}

/// The handler of [`method_not_allowed`].
fn not_allowed<'r>(req: &'r Request<'_>, _: Data<'r>) -> route::BoxFuture<'r> {
    #[derive(rocket::Responder)]
    #[response(status = 405)]
    struct MethodNotAllowed {
        message: String,
        allow: Header<'static>,
    }
    let message = format!("method not allowed: {} answers GET and HEAD\n", req.uri().path());
    let response = MethodNotAllowed { message, allow: Header::new("Allow", "GET, HEAD") };
    route::Outcome::from(req, response).pin()
}
