//! Serving the app: the command line, logging, the open-file limit, binding, HTTP/1.1 and h2c with
//! a header timeout, HTTPS with h2 and http/1.1 by ALPN (tokio-rustls: warp 0.4 removed its own
//! TLS), the filters for methods, queries, the Host check and Accept-Encoding, and a graceful
//! shutdown bounded by `--grace-secs`. Nothing here is about streaming; a snippet reader can skip
//! it.

mod tls;

use std::{io, io::IsTerminal, net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use clap::Parser;
use hyper::{
    Request,
    body::{Body, Incoming},
    server::conn::http1,
    service::Service,
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    signal::unix::{SignalKind, signal},
    time::{sleep, timeout},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use warp::{
    Filter, Rejection, Reply,
    host::Authority,
    http::{StatusCode, header},
    reject::{self, Reject},
    reply::{self, Response},
};

use crate::params::{EventParams, HtmlParams, StreamParams};

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:3003")]
    addr: SocketAddr,
    /// Seconds that open streams get to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "GRACE_SECS", default_value_t = 30)]
    grace_secs: u64,
    #[command(flatten)]
    tls: tls::TlsArgs,
}

/// Serves `app` until SIGTERM or Ctrl-C, then stops accepting, lets open streams run for
/// `--grace-secs`, cancels the token `app` was given to end those still running, and returns.
pub async fn run<F, R>(app: fn(CancellationToken) -> F) -> io::Result<()>
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let args = Args::parse();
    init_logging();
    raise_open_file_limit();
    let grace_over = CancellationToken::new();
    let (app, grace) =
        (bodiless_head(app(grace_over.clone())), Duration::from_secs(args.grace_secs));
    let tls = args.tls.pem()?.map(|pem| tls_acceptor(&pem)).transpose()?;
    // ANCHOR: serve
    let listener = bind(args.addr)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    // warp 0.4's `serve` gives hyper no timer, so headers that never end hang, and sets no
    // TCP_NODELAY: this is its accept loop with both, serving HTTP/1.1 and h2c.
    let http = Arc::new(Http::new(tls));
    let (connections, stop) = (TaskTracker::new(), CancellationToken::new());
    let mut signal = pin!(shutdown_signal()?);
    loop {
        let tcp = tokio::select! {
            tcp = accept(&listener) => tcp,
            () = &mut signal => break,
        };
        let service = TowerToHyperService::new(warp::service(app.clone()));
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

/// HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on one port, with upgrades, and a timer,
/// without which hyper's 30 s header_read_timeout is off.
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
    /// buffer doubles: an open stream cost 18.2 KiB instead of 12 (docs/src/performance.md).
    /// The preface starts with `P`, which in HTTP/1 only POST, PUT and PATCH do, so every other
    /// request goes to hyper's HTTP/1 directly.
    async fn serve<S, B>(self: Arc<Self>, tcp: TcpStream, service: S, stop: CancellationToken)
    where
        S: Service<Request<Incoming>, Response = hyper::Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
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
/// The next connection, with TCP_NODELAY: small writes go out at once instead of waiting for the
/// previous segment's ACK (Nagle). A failed accept that is the client's own trouble is skipped;
/// anything else (out of file descriptors) is logged and waited out for a second, as
/// warp::serve does.
async fn accept(listener: &TcpListener) -> TcpStream {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::warn!("set_nodelay: {err}");
                }
                return tcp;
            }
            Err(err)
                if matches!(
                    err.kind(),
                    ConnectionAborted | ConnectionRefused | ConnectionReset
                ) => {}
            Err(err) => {
                tracing::error!("accept error: {err}");
                sleep(Duration::from_secs(1)).await;
            }
        }
    }
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

/// Binds with a listen backlog of 1024. `TcpListener::bind` asks for 128 (as std does), and
/// when more clients connect at once, say every EventSource after a restart, the rest wait
/// for a SYN retry: 1 s, then 3 s (docs/src/bench).
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Logs to stderr (stdout's first line is the address), at `RUST_LOG` or else info. It also
/// forwards `log` records, which is what `warp::log` writes.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
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
