//! Serving the app: the command line, logging, binding, HTTP/1.1 and h2c with a header timeout,
//! the Host check, and a graceful shutdown bounded by `--grace-secs`. Nothing here is about
//! streaming; a snippet reader can skip it. TLS and HTTP/2 over TLS will be served from here.

use std::{io, io::IsTerminal, net::SocketAddr, pin::pin, time::Duration};

use crate::params::{EventParams, HtmlParams, StreamParams};
use axum::{
    Router,
    extract::{FromRequestParts, Request},
    http::{StatusCode, Version, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
    serve::{Listener, ListenerExt},
};
use clap::Parser;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpSocket,
    signal::unix::{SignalKind, signal},
    time::timeout,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Seconds that open streams get to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "GRACE_SECS", default_value_t = 30)]
    grace_secs: u64,
}

/// Serves `app` until SIGTERM or Ctrl-C, then stops accepting, lets open streams run for
/// `--grace-secs`, cancels the token `app` was given to end those still running, and returns.
pub async fn run(app: fn(CancellationToken) -> Router) -> io::Result<()> {
    let args = Args::parse();
    init_logging();
    let grace_over = CancellationToken::new();
    let (app, grace) = (app(grace_over.clone()), Duration::from_secs(args.grace_secs));
    // ANCHOR: serve
    let mut listener = bind(args.addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    // HTTP/1.1 and h2c, as `axum::serve` serves; unlike it, with a timer, without which hyper's
    // 30 s header_read_timeout is off and headers that never end hang (tokio-rs/axum#2741).
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new());
    http.http2().timer(TokioTimer::new());
    let connections = GracefulShutdown::new();
    let mut signal = pin!(shutdown_signal()?);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let conn = http.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::spawn(connections.watch(conn.into_owned()));
    }
    drop(listener); // New connections are refused from here on.
    tracing::info!("shutting down: open streams get {}s to finish", args.grace_secs);
    let mut drained = pin!(connections.shutdown());
    if timeout(grace, &mut drained).await.is_err() {
        grace_over.cancel();
        // Streams end at once; a client that stopped reading or never sent its request gets 1 s.
        if timeout(Duration::from_secs(1), drained).await.is_err() {
            tracing::warn!("closing connections that are still open");
        }
    }
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

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// Binds with a listen backlog of 1024, and TCP_NODELAY on every connection. `TcpListener::bind`
/// asks for a backlog of 128 (as std does), and when more clients connect at once, say every
/// EventSource after a restart, the rest wait for a SYN retry: 1 s, then 3 s (docs/src/bench).
/// Without TCP_NODELAY, small writes wait for the previous segment's ACK (Nagle).
fn bind(addr: SocketAddr) -> io::Result<impl Listener<Addr = SocketAddr>> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket.listen(1024)?.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!("set_nodelay: {err}");
        }
    }))
}

/// Logs to stderr (stdout's first line is the address), at `RUST_LOG` or else info, with
/// tower-http's request log (debug).
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();
}
