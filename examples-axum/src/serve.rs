//! Serving the app with hyper: HTTP/1.1 and h2c with a header timeout, HTTPS with h2 and
//! http/1.1 by ALPN (tokio-rustls, as axum's `low-level-rustls` example), the queries as
//! extractors, the Host check, and a graceful shutdown bounded by `--grace-secs`. What all four
//! examples do alike (the command line, logging, the open-file limit, the signal, the drain) is
//! in `setup.rs`. Nothing here is about streaming; a snippet reader can skip it.

mod connection;
mod setup;
mod tls;

use std::{io, pin::pin, sync::Arc};

use crate::params::{EventParams, HtmlParams, StreamParams};
use axum::{
    Router,
    extract::{FromRequestParts, Request},
    http::{StatusCode, Version, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use clap::Parser;
use connection::Http;
use hyper_util::service::TowerToHyperService;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The address `--addr` defaults to: each example has a port of its own.
const ADDR: &str = "127.0.0.1:3000";

/// Serves `app` until SIGTERM or Ctrl-C, then stops accepting, lets open streams run for
/// `--grace-secs`, cancels the token `app` was given to end those still running, and returns.
pub async fn run(app: fn(CancellationToken) -> Router) -> io::Result<()> {
    let args = setup::Args::parse();
    // tower-http's request log is at debug.
    setup::init_logging("info,tower_http=debug");
    setup::raise_open_file_limit();
    let grace_over = CancellationToken::new();
    let (app, grace) = (app(grace_over.clone()), args.grace());
    let tls = args.pem()?.map(|pem| tls::server_config(&pem)).transpose()?;
    // ANCHOR: serve
    let listener = connection::bind(args.addr)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    let http = Arc::new(Http::new(tls));
    let (connections, stop) = (TaskTracker::new(), CancellationToken::new());
    let mut signal = pin!(setup::shutdown_signal()?);
    loop {
        let tcp = tokio::select! {
            tcp = connection::accept(&listener) => tcp,
            () = &mut signal => break,
        };
        let service = TowerToHyperService::new(app.clone());
        http.spawn(&connections, tcp, service, stop.clone());
    }
    drop(listener); // New connections are refused from here on.
    stop.cancel(); // Each connection closes once its responses are complete.
    setup::drain(connections, grace, grace_over).await;
    Ok(())
    // ANCHOR_END: serve
}

/// The endpoints' queries as extractors: a bad, repeated or unknown parameter gets a 400 with
/// the contract's one-line message (see params.rs).
macro_rules! from_query {
    ($($params:ty),*) => {$(
        impl<S: Send + Sync> FromRequestParts<S> for $params {
            type Rejection = (StatusCode, String);

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                let query = parts.uri.query().unwrap_or_default();
                Self::from_query(query).map_err(|message| (StatusCode::BAD_REQUEST, message))
            }
        }
    )*};
}

from_query!(StreamParams, HtmlParams, EventParams);

/// RFC 9112 §3.2: an HTTP/1.1 request without Host gets a 400; hyper leaves that check to us.
pub async fn require_host(request: Request, next: Next) -> Response {
    if request.version() == Version::HTTP_11 && !request.headers().contains_key(header::HOST) {
        let message = "missing Host header: HTTP/1.1 requires one";
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    next.run(request).await
}
