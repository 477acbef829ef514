//! Serving the app: the command line, logging, the open-file limit, binding, HTTP/1.1 and h2c with
//! a header timeout, HTTPS with h2 and http/1.1 by ALPN (tokio-rustls, as axum's `low-level-rustls`
//! example), the Host check, and a graceful shutdown bounded by `--grace-secs`. Nothing here is
//! about streaming; a snippet reader can skip it.

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
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
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
        connections.spawn(Arc::clone(&http).serve(tcp, service, stop.clone()));
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

/// HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on one port, with upgrades, as `axum::serve`
/// serves; unlike it, with a timer, without which hyper's 30 s header_read_timeout is off and
/// headers that never end hang (tokio-rs/axum#2741).
struct Http {
    http1: http1::Builder,
    auto: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
}

impl Http {
    fn new(tls: Option<TlsAcceptor>) -> Self {
        let mut http1 = http1::Builder::new();
        http1.timer(TokioTimer::new());
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1().timer(TokioTimer::new());
        auto.http2().timer(TokioTimer::new());
        Self { http1, auto, tls }
    }

    /// Serves one connection until it ends, or until `stop`: then it finishes the requests in
    /// flight and closes.
    ///
    /// hyper-util's auto builder tells HTTP/2's preface from HTTP/1 by reading the first bytes
    /// itself and handing them to hyper as a first, short read, after which hyper's 8 KiB read
    /// buffer doubles: an open stream cost 19.0 KiB instead of 12.0 (docs/src/performance.md).
    /// The preface starts with `P`, which in HTTP/1 only POST, PUT and PATCH do, so every other
    /// request goes to hyper's HTTP/1 directly.
    async fn serve(self: Arc<Self>, tcp: TcpStream, service: Service, stop: CancellationToken) {
        if let Some(tls) = &self.tls {
            let handshake = tokio::select! {
                biased;
                handshake = timeout(HEADER_READ_TIMEOUT, tls.accept(tcp)) => handshake,
                () = stop.cancelled() => return,
            };
            // ALPN chose h2 or http/1.1; the auto builder reads which from the first bytes.
            if let Ok(Ok(tls)) = handshake {
                let conn = self.auto.serve_connection_with_upgrades(TokioIo::new(tls), service);
                until_stopped!(conn, stop);
            }
            return;
        }
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            biased; // A request that came before the signal is served.
            peeked = timeout(HEADER_READ_TIMEOUT, tcp.peek(&mut first)) => peeked,
            // Shutting down, and no request has come: nothing to finish.
            () = stop.cancelled() => return,
        };
        match peeked {
            Ok(Ok(1)) if first[0] != b'P' => {
                let conn = self.http1.serve_connection(TokioIo::new(tcp), service).with_upgrades();
                until_stopped!(conn, stop);
            }
            // Boxed: the rare path's larger state stays out of every connection's task.
            Ok(Ok(1)) => {
                Box::pin(async {
                    let conn = self.auto.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    until_stopped!(conn, stop);
                })
                .await
            }
            _ => {} // Closed, failed, or silent for 30 s: nothing to serve.
        }
    }
}

/// A TLS acceptor for `pem` that offers h2, then http/1.1, by ALPN.
fn tls_acceptor(pem: &tls::Pem) -> io::Result<TlsAcceptor> {
    let mut config = tls::server_config(pem)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// hyper's default; a client silent for longer before its first byte is dropped too.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

type Service = TowerToHyperService<Router>;

/// Drives a connection to its end; when `stop` fires, tells it to finish the requests in flight
/// and close.
macro_rules! until_stopped {
    ($conn:expr, $stop:expr) => {{
        let mut conn = pin!($conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            () = $stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }};
}
use until_stopped;

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
