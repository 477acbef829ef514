//! The benchmark's floor: `GET /stream?count=&interval_ms=` served by hyper alone, with nothing
//! a framework adds (no router, no middleware, no compression), so each framework's figures can
//! be read as a ratio to what the same machine does with the bare HTTP library underneath.
//!
//! It keeps the contract's streaming behaviour (each line flushed as it is due, deadlines not
//! sleeps, TCP_NODELAY, the headers that keep proxies and browsers from buffering) and the
//! parameter validation, and nothing else: `cargo run -p conformance --example floor`.
//!
//! With `--tls-cert` and `--tls-key` it serves HTTPS (tokio-rustls, ALPN h2 and http/1.1, then
//! hyper's HTTP/1 or HTTP/2 as ALPN chose), so the bench measures TLS and HTTP/2 against a floor too.

use std::{convert::Infallible, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use async_stream::stream;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::Frame,
    server::conn::{http1, http2},
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::{
    net::TcpStream,
    time::{Instant, sleep_until},
};
use tokio_rustls::TlsAcceptor;

#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:3009")]
    addr: SocketAddr,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

type Body = BoxBody<Bytes, Infallible>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // As the examples do: at the usual soft limit of 1024, it would stop accepting at about a
    // thousand open connections.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(acceptor(cert, key)?),
        _ => None,
    };
    let listener = bind(args.addr)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("listening on {scheme}://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors, say: the connections already open go on.
            Err(_) => continue,
        };
        let _ = tcp.set_nodelay(true);
        // Each transport in a task of its own: a task is as large as the largest state its
        // future can be in, so TLS's and h2's must not ride along with every plain connection
        // (docs/src/performance.md).
        match &tls {
            None => tokio::spawn(cleartext(tcp)),
            Some(tls) => tokio::spawn(secure(tls.clone(), tcp)),
        };
    }
}

/// Plain HTTP/1.1: hyper's HTTP/1 and nothing else.
async fn cleartext(tcp: TcpStream) {
    let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service_fn(handle)).await;
}

/// TLS, then the protocol ALPN chose, served in a task of its own: hyper's connection is a
/// future, and the task holds it and nothing else. Awaited here, this task would also keep the
/// TLS stream it was handed (1.2 KiB) for as long as the connection is open.
async fn secure(tls: TlsAcceptor, tcp: TcpStream) {
    let Ok(tls) = tls.accept(tcp).await else { return };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    if h2 {
        tokio::spawn(
            http2::Builder::new(TokioExecutor::new()).serve_connection(io, service_fn(handle)),
        );
    } else {
        tokio::spawn(http1::Builder::new().serve_connection(io, service_fn(handle)));
    }
}

/// rustls with the certificate chain and key in `cert` and `key`, offering h2 and http/1.1.
fn acceptor(cert: &PathBuf, key: &PathBuf) -> std::io::Result<TlsAcceptor> {
    let bad = |what: &PathBuf, e: rustls::pki_types::pem::Error| {
        std::io::Error::other(format!("{}: {e}", what.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listen backlog of 1024, as the examples have: `TcpListener::bind` asks for 128.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    if req.uri().path() != "/stream" {
        return Ok(plain(StatusCode::NOT_FOUND, "not found\n".into()));
    }
    let (count, interval) = match params(req.uri().query().unwrap_or("")) {
        Ok(params) => params,
        Err(message) => return Ok(plain(StatusCode::BAD_REQUEST, message)),
    };
    let lines = stream! {
        let start = Instant::now();
        for k in 1..=count {
            sleep_until(start + interval * (k - 1)).await;
            yield Ok(Frame::data(Bytes::from(format!("{k}\n"))));
        }
    };
    let response = Response::builder()
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-cache")
        .header("x-accel-buffering", "no")
        .header("x-content-type-options", "nosniff")
        .body(BodyExt::boxed(StreamBody::new(lines)))
        .expect("static headers are valid");
    Ok(response)
}

fn plain(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed(Full::new(Bytes::from(message))));
    *response.status_mut() = status;
    response
}

/// `count` (1..=1000000, default 10) and `interval_ms` (0..=60000, default 1000), as the
/// contract has them; anything else is a 400 with a one-line message.
fn params(query: &str) -> Result<(u32, Duration), String> {
    let (mut count, mut interval_ms) = (None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (slot, max, min) = match name {
            "count" => (&mut count, 1_000_000, 1),
            "interval_ms" => (&mut interval_ms, 60_000, 0),
            _ => return Err(format!("unknown parameter {name:?}\n")),
        };
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) && slot.is_none() => *slot = Some(n),
            _ => {
                return Err(format!("invalid {name}: expected {min}..={max}, got {value:?}\n"));
            }
        }
    }
    Ok((count.unwrap_or(10), Duration::from_millis(interval_ms.unwrap_or(1000).into())))
}
