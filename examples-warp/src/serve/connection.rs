//! The listener, and one connection served by hyper with a timer (without one, hyper's 30 s
//! header_read_timeout is off and headers that never end hang: tokio-rs/axum#2741), with
//! upgrades, and drained on shutdown. The same file in examples-axum and examples-warp, which
//! both run hyper themselves (a test keeps them identical). Nothing here is about streaming.

use std::{error::Error, io, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use hyper::{
    Request, Response,
    body::{Body, Incoming},
    server::conn::{http1, http2},
    service::{Service, service_fn},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpSocket, TcpStream},
    time::{sleep, timeout},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

// ANCHOR: http2_limits
/// The limits per HTTP/2 connection that CONTRACT.md names, set here rather than left to
/// defaults (hyper 0.14 had no stream limit; h2 alone allows 16 MiB of headers):
/// - 200 concurrent streams: a client that opens streams and never reads holds at most 200
///   responses (a stream flood: actix and Rocket, which advertise none, started 5 100);
/// - 16 KiB of headers: a CONTINUATION flood (CVE-2024-27316) gets GOAWAY after 100 frames;
/// - 20 streams reset before the server accepted them: rapid reset (CVE-2023-44487) gets GOAWAY;
/// - 1 024 streams the server itself reset for errors: then GOAWAY (MadeYouReset, CVE-2025-8671).
///
/// Over HTTP/1.1 hyper reads one pipelined request at a time and none while a response waits
/// for the client: nothing to set.
macro_rules! http2_limits {
    ($builder:expr) => {
        $builder
            .max_concurrent_streams(200)
            .max_header_list_size(16 * 1024)
            .max_pending_accept_reset_streams(20)
            .max_local_error_reset_streams(1024)
    };
}
// ANCHOR_END: http2_limits

/// HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on one port, or HTTPS with h2 and http/1.1 by
/// ALPN.
pub struct Http {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    auto: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
}

/// Binds with a listen backlog of 1024. `TcpListener::bind` asks for 128 (as std does), and
/// when more clients connect at once, say every EventSource after a restart, the rest wait
/// for a SYN retry: 1 s, then 3 s (docs/src/bench).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The next connection, with TCP_NODELAY: small writes go out at once instead of waiting for the
/// previous segment's ACK (Nagle). A failed accept that is the client's own trouble is skipped;
/// anything else (out of file descriptors) is logged and waited out for a second, as
/// `axum::serve` and `warp::serve` do.
pub async fn accept(listener: &TcpListener) -> TcpStream {
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

impl Http {
    /// Plain, or TLS with `tls`, offering h2, then http/1.1, by ALPN.
    pub fn new(tls: Option<rustls::ServerConfig>) -> Self {
        let mut http1 = http1::Builder::new();
        http1.timer(TokioTimer::new());
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1().timer(TokioTimer::new());
        auto.http2().timer(TokioTimer::new());
        http2_limits!(http2);
        http2_limits!(auto.http2());
        let tls = tls.map(|mut config| {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            TlsAcceptor::from(Arc::new(config))
        });
        Self { http1, http2, auto, tls }
    }

    /// Serves `tcp` in tasks of `connections` until it ends, or until `stop`: then it finishes
    /// the requests in flight and closes.
    ///
    /// A task is as large as the largest state its future can be in, for as long as it runs. So
    /// the first bytes (or the TLS handshake) are awaited in one task, and the protocol they
    /// choose is served in another: in one task, an open plain HTTP/1.1 stream carried TLS's and
    /// h2's state too, and cost 17.4 KiB instead of 12 (docs/src/performance.md).
    pub fn spawn<S: App>(
        self: &Arc<Self>, connections: &TaskTracker, tcp: TcpStream, service: S,
        stop: CancellationToken,
    ) {
        // hyper's HTTP/1 keeps room for one service future in every connection for as long as it
        // is open. Boxed, a request's future takes memory only until its response head is made:
        // the room is 16 bytes instead of 320 (axum) or 728 (warp).
        let service = service_fn(move |request| -> Pin<Box<dyn Future<Output = _> + Send>> {
            Box::pin(service.call(request))
        });
        let (http, tracker) = (Arc::clone(self), connections.clone());
        match &self.tls {
            None => connections.spawn(http.plain(tracker, tcp, service, stop)),
            Some(tls) => connections.spawn(http.secure(tls.clone(), tracker, tcp, service, stop)),
        };
    }

    /// hyper-util's auto builder tells HTTP/2's preface from HTTP/1 by reading the first bytes
    /// itself and handing them to hyper as a first, short read, after which hyper's 8 KiB read
    /// buffer doubles: an open stream cost 19.0 KiB instead of 12.0 (docs/src/performance.md).
    /// The preface starts with `P`, which in HTTP/1 only POST, PUT and PATCH do, so every other
    /// request goes to hyper's HTTP/1 directly.
    async fn plain<S: App>(
        self: Arc<Self>, connections: TaskTracker, tcp: TcpStream, service: S,
        stop: CancellationToken,
    ) {
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            biased; // A request that came before the signal is served.
            peeked = timeout(HEADER_READ_TIMEOUT, tcp.peek(&mut first)) => peeked,
            // Shutting down, and no request has come: nothing to finish.
            () = stop.cancelled() => return,
        };
        let io = TokioIo::new(tcp);
        match peeked {
            Ok(Ok(1)) if first[0] != b'P' => connections.spawn(self.http1(io, service, stop)),
            Ok(Ok(1)) => connections.spawn(self.auto(io, service, stop)),
            _ => return, // Closed, failed, or silent for 30 s: nothing to serve.
        };
    }

    /// The handshake, then the protocol ALPN chose. Without ALPN, the auto builder reads which
    /// from the first bytes.
    async fn secure<S: App>(
        self: Arc<Self>, tls: TlsAcceptor, connections: TaskTracker, tcp: TcpStream, service: S,
        stop: CancellationToken,
    ) {
        let handshake = tokio::select! {
            biased;
            handshake = timeout(HEADER_READ_TIMEOUT, tls.accept(tcp)) => handshake,
            () = stop.cancelled() => return,
        };
        let Ok(Ok(tls)) = handshake else { return };
        let io = TokioIo::new(tls);
        match io.inner().get_ref().1.alpn_protocol() {
            Some(b"http/1.1") => connections.spawn(self.http1(io, service, stop)),
            Some(b"h2") => connections.spawn(self.http2(io, service, stop)),
            _ => connections.spawn(self.auto(io, service, stop)),
        };
    }

    // The connection is boxed, so that the task holds it once: the future of an `async fn` or
    // block keeps what it was given beside what that is moved into, which for a TLS stream is
    // 1.2 KiB per connection (rust-lang/rust#62958).
    fn http1<I: Io, S: App>(
        &self, io: TokioIo<I>, service: S, stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + use<I, S> {
        let conn = Box::pin(self.http1.serve_connection(io, service).with_upgrades());
        async move { until_stopped!(conn, stop) }
    }

    fn http2<I: Io, S: App>(
        &self, io: TokioIo<I>, service: S, stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + use<I, S> {
        let conn = Box::pin(self.http2.serve_connection(io, service));
        async move { until_stopped!(conn, stop) }
    }

    /// The auto builder's connection borrows the builder, so it is made where `self` is kept.
    async fn auto<I: Io, S: App>(
        self: Arc<Self>, io: TokioIo<I>, service: S, stop: CancellationToken,
    ) {
        let conn = Box::pin(self.auto.serve_connection_with_upgrades(io, service));
        until_stopped!(conn, stop);
    }
}

/// A connection's byte stream: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for I {}

/// What hyper needs of a service, named once.
pub trait App:
    Service<
        Request<Incoming>,
        Response = Response<Self::Body>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Send
    + 'static
{
    type Body: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> App for S
where
    S: Service<Request<Incoming>, Response = Response<B>, Error: Into<BoxError>> + Send + 'static,
    S::Future: Send + 'static,
    B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
{
    type Body = B;
}

type BoxError = Box<dyn Error + Send + Sync>;

/// hyper's default; a client silent for longer before its first byte is dropped too.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Drives a pinned connection to its end; when `stop` fires, tells it to finish the requests in flight
/// and close.
macro_rules! until_stopped {
    ($conn:expr, $stop:expr) => {{
        let mut conn = $conn;
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
