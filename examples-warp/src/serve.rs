//! Serving the app with hyper: HTTP/1.1 and h2c with a header timeout, HTTPS with h2 and
//! http/1.1 by ALPN (tokio-rustls: warp 0.4 removed its own TLS), the filters for methods,
//! queries, the Host check and Accept-Encoding, and a graceful shutdown bounded by
//! `--grace-secs`. What all four examples do alike (the command line, logging, the open-file
//! limit, the signal, the drain) is in `setup.rs`. Nothing here is about streaming; a snippet
//! reader can skip it.

mod connection;
mod setup;
mod tls;

use std::{io, pin::pin, sync::Arc};

use warp::compression::{brotli, deflate, gzip};

use clap::Parser;
use hyper_util::service::TowerToHyperService;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use warp::{
    Filter, Rejection, Reply,
    host::Authority,
    http::{StatusCode, header},
    reject::{self, Reject},
    reply::{self, Response},
};

use crate::params::{EventParams, HtmlParams, StreamParams};
use connection::Http;

/// The address `--addr` defaults to: each example has a port of its own.
const ADDR: &str = "127.0.0.1:3003";

/// Serves `app` until SIGTERM or Ctrl-C, then stops accepting, lets open streams run for
/// `--grace-secs`, cancels the token `app` was given to end those still running, and returns.
pub async fn run<F, R>(app: fn(CancellationToken) -> F) -> io::Result<()>
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let args = setup::Args::parse();
    setup::init_logging("info");
    setup::raise_open_file_limit();
    let grace_over = CancellationToken::new();
    let (app, grace) = (bodiless_head(app(grace_over.clone())), args.grace());
    let tls = args.pem()?.map(|pem| tls::server_config(&pem)).transpose()?;
    // ANCHOR: serve
    let listener = connection::bind(args.addr)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    // warp 0.4's `serve` gives hyper no timer, so headers that never end hang, and sets no
    // TCP_NODELAY: this is its accept loop with both, serving HTTP/1.1 and h2c.
    let http = Arc::new(Http::new(tls));
    // One service for all connections: in each, the filter took 0.8 KiB of every open stream.
    let service = Arc::new(TowerToHyperService::new(warp::service(app)));
    let (connections, stop) = (TaskTracker::new(), CancellationToken::new());
    let mut signal = pin!(setup::shutdown_signal()?);
    loop {
        let tcp = tokio::select! {
            tcp = connection::accept(&listener) => tcp,
            () = &mut signal => break,
        };
        http.spawn(&connections, tcp, Arc::clone(&service), stop.clone());
    }
    drop(listener); // New connections are refused from here on.
    stop.cancel(); // Each connection closes once its responses are complete.
    setup::drain(connections, grace, grace_over).await;
    Ok(())
    // ANCHOR_END: serve
}

/// HEAD answered with the head alone. hyper leaves a HEAD response's body out over HTTP/1.1,
/// but over HTTP/2 it sends it as DATA frames, which clients refuse as a protocol error (curl:
/// "PROTOCOL_ERROR"; measured with warp 0.4.3 and hyper 1.12).
fn bodiless_head<F, R>(app: F) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    warp::method().and(app).map(|method: warp::http::Method, reply: R| {
        let mut response = reply.into_response();
        if method == warp::http::Method::HEAD {
            drop(std::mem::take(response.body_mut()));
        }
        response
    })
}

/// GET or HEAD, else a 405 naming both: `warp::get()` rejects HEAD, and warp's own 405 has no
/// `Allow`. The body of a HEAD response is dropped by [`bodiless_head`].
pub fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    let not_allowed = |_| async { Err::<(), _>(reject::custom(NotAllowed("GET, HEAD"))) };
    warp::get().or(warp::head()).unify().or_else(not_allowed)
}

/// GET, else a 405 with `Allow: GET`.
pub fn get() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    let not_allowed = |_| async { Err::<(), _>(reject::custom(NotAllowed("GET"))) };
    warp::get().or_else(not_allowed)
}

/// An endpoint's query, parsed as params.rs says: a bad, repeated or unknown parameter is
/// rejected with the contract's one-line message, which [`rejected`] answers with a 400.
pub fn query<T: FromQuery>() -> impl Filter<Extract = (T,), Error = Rejection> + Copy {
    // `query::raw` rejects a request without a query string; that is the all-defaults case.
    let raw = warp::query::raw().or(warp::any().map(String::new)).unify();
    raw.and_then(|query: String| async move {
        T::from_query(&query).map_err(|message| reject::custom(BadQuery(message)))
    })
}

/// The three endpoints' parameter types.
pub trait FromQuery: Sized + Send + 'static {
    fn from_query(query: &str) -> Result<Self, String>;
}

macro_rules! from_query {
    ($($params:ty),*) => {$(
        impl FromQuery for $params {
            fn from_query(query: &str) -> Result<Self, String> {
                <$params>::from_query(query)
            }
        }
    )*};
}

from_query!(StreamParams, HtmlParams, EventParams);

#[derive(Debug)]
struct NotAllowed(&'static str);

impl Reject for NotAllowed {}

#[derive(Debug)]
struct BadQuery(String);

impl Reject for BadQuery {}

#[derive(Debug)]
struct MissingHost;

impl Reject for MissingHost {}

/// Answers the rejections of the filters here; any other goes on to warp (404 and the like).
pub async fn rejected(err: Rejection) -> Result<Response, Rejection> {
    if let Some(NotAllowed(allow)) = err.find() {
        let body = reply::with_status("method not allowed\n", StatusCode::METHOD_NOT_ALLOWED);
        return Ok(reply::with_header(body, header::ALLOW, *allow).into_response());
    }
    if let Some(BadQuery(message)) = err.find() {
        return Ok(reply::with_status(message.clone(), StatusCode::BAD_REQUEST).into_response());
    }
    if err.find::<MissingHost>().is_some() {
        return Ok(
            reply::with_status("missing Host header", StatusCode::BAD_REQUEST).into_response()
        );
    }
    Err(err)
}

/// HTTP/1.1 requires a Host header (RFC 9112 §3.2); hyper does not check. No warp filter sees
/// the HTTP version (warp#967), so HTTP/1.0 must name a host too; HTTP/2's `:authority` counts.
pub fn host_required() -> impl Filter<Extract = (), Error = Rejection> + Copy {
    warp::host::optional()
        .and_then(|host: Option<Authority>| async move {
            host.map(drop).ok_or_else(|| reject::custom(MissingHost))
        })
        .untuple_one()
}

/// `app` compressed as the client asks: warp's compression filters compress whatever they wrap,
/// asked or not, so each one gets only the requests that offer its encoding (br, gzip, deflate,
/// in that order); the rest go uncompressed. Every answer says `Vary: accept-encoding`.
pub fn compressed<F, R>(app: F) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    (accepts("br").and(app.clone()).with(brotli()))
        .or(accepts("gzip").and(app.clone()).with(gzip()))
        // Raw DEFLATE rather than the zlib wrapping RFC 9110 names; browsers and curl take both.
        .or(accepts("deflate").and(app.clone()).with(deflate()))
        .or(app)
        .with(reply::with::header(header::VARY, "accept-encoding"))
}

/// Passes only when the request's Accept-Encoding offers `coding` (`q=0` refuses it).
pub fn accepts(coding: &'static str) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("accept-encoding")
        .and_then(move |accept: Option<String>| async move {
            match accept {
                Some(accept) if offers(&accept, coding) => Ok(()),
                _ => Err(reject::not_found()),
            }
        })
        .untuple_one()
}

fn offers(accept: &str, coding: &str) -> bool {
    let mut wildcard = false;
    for item in accept.split(',') {
        let (name, params) = item.split_once(';').unwrap_or((item, ""));
        let refused = params
            .split(';')
            .filter_map(|param| param.trim().strip_prefix("q="))
            .any(|q| q.trim().parse::<f32>() == Ok(0.0));
        let name = name.trim();
        if name.eq_ignore_ascii_case(coding) {
            return !refused;
        }
        if name == "*" {
            wildcard = !refused;
        }
    }
    wildcard
}
