//! Serving the app: the command line, logging, binding, HTTP/1.1 and h2c with a header timeout,
//! the filters for methods, queries, the Host check and Accept-Encoding, and a graceful shutdown
//! bounded by `--grace-secs`. Nothing here is about streaming; a snippet reader can skip it.
//! TLS and HTTP/2 over TLS will be served from here.

use std::{io, io::IsTerminal, net::SocketAddr, pin::pin, time::Duration};

use clap::Parser;
use futures_util::FutureExt;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    signal::unix::{SignalKind, signal},
    time::{sleep, timeout},
};
use tokio_util::sync::CancellationToken;
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
}

/// Serves `app` until SIGTERM or Ctrl-C, then stops accepting, lets open streams run for
/// `--grace-secs`, cancels the token `app` was given to end those still running, and returns.
pub async fn run<F>(app: fn(CancellationToken) -> F) -> io::Result<()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let args = Args::parse();
    init_logging();
    let grace_over = CancellationToken::new();
    let (app, grace) = (app(grace_over.clone()), Duration::from_secs(args.grace_secs));
    // ANCHOR: serve
    let listener = bind(args.addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    // warp 0.4's `serve` gives hyper no timer, so headers that never end hang, and sets no
    // TCP_NODELAY: this is its accept loop with both, serving HTTP/1.1 and h2c.
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new());
    http.http2().timer(TokioTimer::new());
    let connections = GracefulShutdown::new();
    let mut signal = pin!(shutdown_signal()?);
    loop {
        let tcp = tokio::select! {
            tcp = accept(&listener) => tcp,
            () = &mut signal => break,
        };
        let service = TowerToHyperService::new(warp::service(app.clone()));
        let conn = http.serve_connection_with_upgrades(TokioIo::new(tcp), service);
        tokio::spawn(connections.watch(conn.into_owned()).map(drop));
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

/// GET or HEAD, else a 405 naming both: `warp::get()` rejects HEAD, and warp's own 405 has no
/// `Allow`. hyper never polls the body of a HEAD response.
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
