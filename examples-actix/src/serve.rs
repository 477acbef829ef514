//! Serving the app with actix's `HttpServer` (HTTPS with h2 and http/1.1 by ALPN through its own
//! `bind_rustls_0_23`), the queries as extractors, HEAD and HTTP/1.0 plumbing, and a graceful
//! shutdown bounded by `--grace-secs`. What all four examples do alike (the command line,
//! logging, the open-file limit, the signal, the drain) is in `setup.rs`. Nothing here is about
//! streaming; a snippet reader can skip it.

mod setup;
mod tls;

use std::{
    convert::Infallible,
    fmt, io,
    pin::Pin,
    task::{Context, Poll},
};

use actix_http::Request;
use actix_rt::Arbiter;
use actix_service::{IntoServiceFactory, ServiceFactory, ServiceFactoryExt};
use actix_web::{
    Error, FromRequest, HttpRequest, HttpServer,
    body::{BodySize, BodyStream, EitherBody, MessageBody},
    dev::{AppConfig, Payload, Response, Service, ServiceRequest, ServiceResponse},
    error::ErrorBadRequest,
    http::{ConnectionType, Method, Version},
    middleware::{Condition, Logger, Next},
};
use bytes::Bytes;
use clap::Parser;
use futures_util::{
    future::{Ready, ready},
    stream,
};
use tokio_util::{
    sync::CancellationToken,
    task::{TaskTracker, task_tracker::TaskTrackerToken},
};

use crate::params::{EventParams, HtmlParams, StreamParams};

/// The address `--addr` defaults to: each example has a port of its own.
const ADDR: &str = "127.0.0.1:3001";

/// Serves `app` until SIGTERM or Ctrl-C, then stops accepting, lets open streams run for
/// `--grace-secs`, cancels the token `app` was given to end those still running, and returns.
pub async fn run<F, I, S, B>(app: F) -> io::Result<()>
where
    F: Fn(CancellationToken) -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    S::Service: 'static,
    <S::Service as Service<Request>>::Future: 'static,
    B: MessageBody + 'static,
{
    let args = setup::Args::parse();
    // actix's Logger writes through `log`, which the subscriber forwards.
    setup::init_logging("info");
    setup::raise_open_file_limit();
    let (grace_over, streams, grace) = (CancellationToken::new(), TaskTracker::new(), args.grace());
    // `app` as the factory `HttpServer` calls once per worker, each response holding a token
    // of `streams` until its body is done.
    let (open, stop) = (streams.clone(), grace_over.clone());
    let app = move || app(stop.clone()).into_factory().map(tracked(open.clone()));
    let tls = args.pem()?.map(|pem| tls::server_config(&pem)).transpose()?;
    // ANCHOR: serve
    let server = HttpServer::new(app)
        // Small writes go out at once instead of waiting for the previous segment's ACK (Nagle).
        .tcp_nodelay(true)
        // Stops a stream as soon as its client closes, not one or two writes later (as with
        // hyper, a client that half-closes after its request loses the response).
        .h1_allow_half_closed(false)
        // actix stops gracefully on SIGTERM but forcibly on SIGINT; we want graceful for both.
        .disable_signals()
        // actix would cut connections 30 s after the stop, whatever our grace.
        .shutdown_timeout(args.grace_secs + 2);
    let (server, scheme) = match tls {
        // actix offers h2 and http/1.1 by ALPN itself.
        Some(tls) => (server.bind_rustls_0_23(args.addr, tls)?, "https"),
        None => (server.bind_auto_h2c(args.addr)?, "http"),
    };
    println!("listening on {scheme}://{}", server.addrs()[0]);
    let (server, signal) = (server.run(), setup::shutdown_signal()?);
    let handle = server.handle();
    let shutdown = async {
        signal.await;
        // Closes the listener at once; each connection closes when its response is complete
        // (actix-web 4.14.1). What it returns resolves at actix's next once-a-second check.
        drop(handle.stop(true));
        setup::drain(streams, grace, grace_over).await;
    };
    tokio::select! {
        result = server => result,
        () = shutdown => Ok(()),
    }
    // ANCHOR_END: serve
}

/// Gives each response a token of `streams`, held by its body until actix has written the end
/// of it (see [`Deferred`]). A token per connection, in its `Extensions`, cost 0.3 KiB per open
/// stream (12.3 against 12.0 KiB at 10 000 streams, 2026-12-07).
fn tracked<R: Into<Response<B>>, B>(
    streams: TaskTracker,
) -> impl FnMut(R) -> Response<Tracked<B>> + Clone {
    move |res| {
        res.into().map_body(|_, body| Tracked { body, _open: Deferred(Some(streams.token())) })
    }
}

pin_project_lite::pin_project! {
    /// A response body and the token it holds.
    pub struct Tracked<B> {
        #[pin]
        body: B,
        _open: Deferred,
    }
}

impl<B: MessageBody> MessageBody for Tracked<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>, cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let Self { body, _open } = self;
        body.try_into_bytes().map_err(|body| Self { body, _open })
    }
}

/// actix drops a body as soon as it has ended, before it writes the end of the response (the
/// last chunk) in the same turn of its worker: the token is dropped on that worker's next
/// turn, so the process cannot exit between the two.
pub struct Deferred(Option<TaskTrackerToken>);

impl Drop for Deferred {
    fn drop(&mut self) {
        if let (Some(token), Some(worker)) = (self.0.take(), Arbiter::try_current()) {
            worker.spawn(async move { drop(token) });
        }
    }
}

/// The endpoints' queries as extractors: a bad, repeated or unknown parameter gets a 400 with
/// the contract's one-line message (see params.rs).
macro_rules! from_query {
    ($($params:ty),*) => {$(
        impl FromRequest for $params {
            type Error = Error;
            type Future = Ready<Result<Self, Error>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(Self::from_query(req.query_string()).map_err(ErrorBadRequest))
            }
        }
    )*};
}

from_query!(StreamParams, HtmlParams, EventParams);

/// actix polls a HEAD response's stream to its end and throws the items away, so a streamed
/// HEAD response gets an empty stream instead, with the same headers: the generator never starts.
pub async fn head_without_body(
    req: ServiceRequest, next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, impl MessageBody>>, Error> {
    let head = req.method() == Method::HEAD;
    let res = next.call(req).await?;
    Ok(res.map_body(|_, body| {
        if head && body.size() == BodySize::Stream {
            EitherBody::right(BodyStream::new(stream::empty::<Result<Bytes, Infallible>>()))
        } else {
            EitherBody::left(body)
        }
    }))
}

/// actix-http chunk-encodes a body of unknown size even for HTTP/1.0 clients, which cannot
/// decode that, and Compress turns chunking back on, so this runs outside Compress: HTTP/1.0
/// gets the raw bytes, the end marked by closing the connection.
pub async fn http10_close_delimited(
    req: ServiceRequest, next: Next<impl MessageBody>,
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

/// actix's request log, where it would be written: Logger renders its format for every request
/// and keeps it until the response ends, 0.7 KiB per open stream, even when its target is off.
pub fn request_log() -> Condition<Logger> {
    let on = tracing::enabled!(target: "actix_web::middleware::logger", tracing::Level::INFO);
    Condition::new(on, Logger::default())
}
