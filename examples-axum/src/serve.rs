//! Serving the app: the command line, logging, the open-file limit, binding, HTTP/1.1 and h2c with
//! a header timeout, HTTPS with h2 and http/1.1 by ALPN (tokio-rustls, as axum's `low-level-rustls`
//! example), the Host check, and a graceful shutdown bounded by `--grace-secs`. Nothing here is
//! about streaming; a snippet reader can skip it.

mod connection;
mod tls;

use std::{io, io::IsTerminal, net::SocketAddr, pin::pin, sync::Arc, time::Duration};

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
use connection::Http;
use hyper_util::service::TowerToHyperService;
use tokio::{
    net::{TcpSocket, TcpStream},
    signal::unix::{SignalKind, signal},
    time::timeout,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Seconds that open streams get to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "GRACE_SECS", default_value_t = 30)]
    grace_secs: u64,
    #[command(flatten)]
    tls: tls::TlsArgs,
}

/// Serves `app` until SIGTERM or Ctrl-C, then stops accepting, lets open streams run for
/// `--grace-secs`, cancels the token `app` was given to end those still running, and returns.
pub async fn run(app: fn(CancellationToken) -> Router) -> io::Result<()> {
    let args = Args::parse();
    init_logging();
    raise_open_file_limit();
    let grace_over = CancellationToken::new();
    let (app, grace) = (app(grace_over.clone()), Duration::from_secs(args.grace_secs));
    let tls = args.tls.pem()?.map(|pem| tls_acceptor(&pem)).transpose()?;
    // ANCHOR: serve
    let mut listener = bind(args.addr)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    let http = Arc::new(Http::new(tls));
    let (connections, stop) = (TaskTracker::new(), CancellationToken::new());
    let mut signal = pin!(shutdown_signal()?);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut signal => break,
        };
        let service = TowerToHyperService::new(app.clone());
        http.spawn(&connections, tcp, service, stop.clone());
    }
    drop(listener); // New connections are refused from here on.
    tracing::info!("shutting down: open streams get {}s to finish", args.grace_secs);
    stop.cancel(); // Each connection closes once its responses are complete.
    connections.close();
    if timeout(grace, connections.wait()).await.is_err() {
        grace_over.cancel();
        // Streams end at once; a client that stopped reading or never sent its request gets 1 s.
        if timeout(Duration::from_secs(1), connections.wait()).await.is_err() {
            tracing::warn!("closing connections that are still open");
        }
    }
    Ok(())
    // ANCHOR_END: serve
}

/// A TLS acceptor for `pem` that offers h2, then http/1.1, by ALPN.
fn tls_acceptor(pem: &tls::Pem) -> io::Result<TlsAcceptor> {
    let mut config = tls::server_config(pem)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
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
fn bind(addr: SocketAddr) -> io::Result<impl Listener<Io = TcpStream, Addr = SocketAddr>> {
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

/// Raises the soft open-file limit to the hard one: at the usual soft limit of 1024, a server
/// started from a shell stops accepting at about a thousand open connections.
fn raise_open_file_limit() {
    let was = rlimit::Resource::NOFILE.get().map(|(soft, _)| soft);
    match (was, rlimit::increase_nofile_limit(u64::MAX)) {
        (Ok(was), Ok(now)) if now != was => tracing::info!("open-file limit: {now} (was {was})"),
        (_, Ok(now)) => tracing::info!("open-file limit: {now}"),
        (_, Err(err)) => tracing::warn!("cannot raise the open-file limit: {err}"),
    }
}
