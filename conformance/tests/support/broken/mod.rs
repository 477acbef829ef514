//! A deliberately broken counting-stream server: correct with `Fault::None`, and with one fault
//! switched on, wrong in exactly the way one conformance check must catch.
//!
//! It writes HTTP by hand on purpose: the faults (chunked to HTTP/1.0, a body after HEAD, a
//! Content-Length on a stream, …) are things a good HTTP library will not let you do.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use conformance::servers::ServerLog;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::watch,
    time::sleep,
};

mod abuse;
mod encoder;
mod fault;
mod h2;
mod request;
mod stream;

use encoder::Encoder;
pub use fault::Fault;
use h2::{h2_buffered, h2_stream, h2_unpatched};
use request::{Endpoint, Params, Request, parse, read_request, resume_after};
use stream::{Progress, failure, stream};

/// Where the server logs: stderr, and a [`ServerLog`] the tests can read.
#[derive(Clone, Default)]
pub struct Logger(Option<ServerLog>);

impl Logger {
    fn info(&self, line: String) {
        eprintln!("INFO broken: {line}");
        if let Some(log) = &self.0 {
            log.push(format!("INFO broken: {line}"));
        }
    }
}

/// Binds 127.0.0.1:0 and serves with `fault` until the runtime ends.
pub async fn start(fault: Fault) -> SocketAddr {
    start_logged(fault).await.0
}

/// Binds with a listen backlog of 1024, as the examples do: with `TcpListener::bind`'s 128, the
/// load check's 200 connections at once overflowed the accept queue on a busy machine, and the
/// rest waited a 1 s SYN retry.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Like [`start`], with the server's log.
pub async fn start_logged(fault: Fault) -> (SocketAddr, ServerLog) {
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let log = ServerLog::default();
    if fault != Fault::NotListening {
        // The listener is dropped otherwise: connections are refused.
        let logger = Logger(Some(log.clone()));
        let never = std::future::pending();
        tokio::spawn(serve(listener, fault, logger, never, Duration::from_secs(30)));
    }
    (addr, log)
}

/// Serves until `shutdown`; then stops accepting, lets the streams run for `grace`, ends the
/// rest cleanly and returns once none is left.
pub async fn serve(
    listener: TcpListener, fault: Fault, logger: Logger, shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    if fault == Fault::NotListening {
        return;
    }
    let (died_tx, mut died) = tokio::sync::mpsc::channel::<()>(1);
    let (grace_tx, grace_over) = watch::channel(false);
    // Set when shutdown starts: connections that have not sent a request by then are closed.
    let (stopping_tx, stopping) = watch::channel(false);
    let open = Arc::new(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = died.recv() => return, // drops the listener: connections are refused
            _ = &mut shutdown => break,
        };
        let died = died_tx.clone();
        let (logger, grace_over, open) = (logger.clone(), grace_over.clone(), open.clone());
        let stopping = stopping.clone();
        let connection = async move {
            let _open = open;
            if let Ok(Answer::BadInput) = handle(tcp, fault, &logger, grace_over, stopping).await
                && fault == Fault::DiesAfterBadInput
            {
                let _ = died.send(()).await;
            }
        };
        if fault == Fault::OneAtATime {
            connection.await;
        } else {
            tokio::spawn(connection);
        }
    }
    drop(listener);
    logger.info(format!("shutting down, grace {grace:?}"));
    if fault != Fault::ShutdownWaitsForIdle {
        stopping_tx.send_replace(true);
    }
    if fault == Fault::ShutdownCutsStreams {
        return;
    }
    if fault != Fault::ShutdownIgnoresGrace {
        tokio::spawn(async move {
            sleep(grace).await;
            let _ = grace_tx.send(true);
        });
    }
    while Arc::strong_count(&open) > 1 {
        sleep(Duration::from_millis(10)).await;
    }
}

enum Answer {
    Ok,
    BadInput,
}

/// The examples' page (fetch() + EventSource), so the browser tests have a control too.
const INDEX: &str = include_str!("../../../../examples-axum/src/index.html");

async fn handle(
    mut tcp: TcpStream, fault: Fault, logger: &Logger, grace_over: watch::Receiver<bool>,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<Answer> {
    tcp.set_nodelay(true)?;
    // HTTP/2 with prior knowledge starts with its preface, `PRI * HTTP/2.0`.
    // A connection that sends nothing is closed after 10 s, or at once when shutting down.
    let mut preface = [0u8; 3];
    let peek = async {
        match fault {
            Fault::NoHeaderTimeout => Some(tcp.peek(&mut preface).await),
            _ => tokio::time::timeout(Duration::from_secs(10), tcp.peek(&mut preface)).await.ok(),
        }
    };
    let peeked = tokio::select! {
        peeked = peek => match peeked {
            Some(peeked) => peeked?,
            None => return Ok(Answer::Ok),
        },
        _ = stopping.wait_for(|stopping| *stopping) => return Ok(Answer::Ok),
    };
    if peeked == 3 && &preface == b"PRI" {
        return match fault {
            Fault::Http2Buffered => h2_buffered(tcp).await,
            Fault::H2EmptyFramesUnbounded => h2_unpatched(tcp).await,
            fault => h2_stream(tcp, fault, logger.clone(), stopping).await,
        };
    }
    match fault {
        Fault::SpinsOnUnreadClient => return abuse::spin(tcp).await,
        Fault::SmugglesBody => return abuse::by_first_length(tcp).await,
        _ => {}
    }
    let read = async {
        if fault == Fault::NoHeaderTimeout {
            return Some(read_request(&mut tcp).await);
        }
        tokio::time::timeout(Duration::from_secs(10), read_request(&mut tcp)).await.ok()
    };
    let req = tokio::select! {
        read = read => match read {
            Some(req) => req?,
            None => return Ok(Answer::Ok), // closes the connection
        },
        // Shutting down, and no request came: nothing to finish.
        _ = stopping.wait_for(|stopping| *stopping) => return Ok(Answer::Ok),
    };
    if req.conflicting_lengths {
        let message = "conflicting Content-Length headers\n";
        simple(&mut tcp, &req, fault, "400 Bad Request", &[], message).await?;
        return Ok(Answer::BadInput);
    }
    if !req.http10 && !req.host && fault != Fault::AcceptsNoHost {
        let message = "HTTP/1.1 requests need a Host header\n";
        simple(&mut tcp, &req, fault, "400 Bad Request", &[], message).await?;
        return Ok(Answer::BadInput);
    }
    let endpoint = match req.path.as_str() {
        "/stream" => Some(Endpoint::Stream),
        "/stream.html" => Some(Endpoint::Html),
        "/events" => Some(Endpoint::Events),
        _ if fault == Fault::NoNotFound => Some(Endpoint::Stream),
        _ => None,
    };
    match (req.path.as_str(), req.method.as_str(), endpoint) {
        ("/", "GET", _) if fault != Fault::NoIndex => {
            let html = &["content-type: text/html; charset=utf-8"];
            simple(&mut tcp, &req, fault, "200 OK", html, INDEX).await?;
        }
        ("/moved", _, None) => {
            simple(&mut tcp, &req, fault, "302 Found", &["location: /stream"], "").await?;
        }
        ("/fail", _, None) => {
            simple(&mut tcp, &req, fault, "500 Internal Server Error", &[], "it broke\n").await?;
        }
        (_, _, None) => simple(&mut tcp, &req, fault, "404 Not Found", &[], "not found\n").await?,
        (_, "GET" | "HEAD", Some(endpoint)) => {
            return stream(&mut tcp, &req, endpoint, fault, logger, grace_over).await;
        }
        _ => {
            let allow: &[&str] = if fault == Fault::NoAllow { &[] } else { &["allow: GET, HEAD"] };
            simple(&mut tcp, &req, fault, "405 Method Not Allowed", allow, "method not allowed\n")
                .await?;
        }
    }
    Ok(Answer::Ok)
}

/// A complete response, compressed when the client asks; `extra` may replace the
/// content-type.
async fn simple(
    tcp: &mut TcpStream, req: &Request, fault: Fault, status: &str, extra: &[&str], body: &str,
) -> std::io::Result<()> {
    let (encoder, encoding) = Encoder::negotiate(req, fault);
    let body = encoder.all(body.as_bytes());
    let mut head =
        format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
    if !extra.iter().any(|h| h.starts_with("content-type")) {
        head.push_str("content-type: text/plain; charset=utf-8\r\n");
    }
    if let Some(encoding) = encoding {
        head.push_str(&format!("content-encoding: {encoding}\r\n"));
    }
    for header in extra {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(&body).await
}
