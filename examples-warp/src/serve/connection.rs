//! One connection, served by hyper with a timer (without one, hyper's 30 s header_read_timeout
//! is off and headers that never end hang: tokio-rs/axum#2741), with upgrades, and drained on
//! shutdown. The same file in examples-axum and examples-warp, which both run hyper themselves.
//! Nothing here is about streaming.

use std::{error::Error, pin::Pin, pin::pin, sync::Arc, time::Duration};

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
    net::TcpStream,
    time::timeout,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on one port, or HTTPS with h2 and http/1.1 by
/// ALPN.
pub struct Http {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    auto: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
}

impl Http {
    pub fn new(tls: Option<TlsAcceptor>) -> Self {
        let mut http1 = http1::Builder::new();
        http1.timer(TokioTimer::new());
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2.timer(TokioTimer::new());
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1().timer(TokioTimer::new());
        auto.http2().timer(TokioTimer::new());
        Self { http1, http2, auto, tls }
    }

    /// Serves `tcp` in a task of `connections` until it ends, or until `stop`: then it finishes
    /// the requests in flight and closes.
    ///
    /// A task is as large as the largest state its future can be in, for as long as it runs.
    /// Plain and TLS connections run different futures, so that an open plain HTTP/1.1 stream
    /// does not carry TLS's and h2's state: with one future for both, it cost 17.4 KiB instead
    /// of 12 (docs/src/performance.md).
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
        match &self.tls {
            None => connections.spawn(Arc::clone(self).plain(tcp, service, stop)),
            Some(tls) => {
                connections.spawn(Arc::clone(self).secure(tls.clone(), tcp, service, stop))
            }
        };
    }

    /// hyper-util's auto builder tells HTTP/2's preface from HTTP/1 by reading the first bytes
    /// itself and handing them to hyper as a first, short read, after which hyper's 8 KiB read
    /// buffer doubles: an open stream cost 19.0 KiB instead of 12.0 (docs/src/performance.md).
    /// The preface starts with `P`, which in HTTP/1 only POST, PUT and PATCH do, so every other
    /// request goes to hyper's HTTP/1 directly.
    async fn plain<S: App>(self: Arc<Self>, tcp: TcpStream, service: S, stop: CancellationToken) {
        let mut first = [0u8; 1];
        let peeked = tokio::select! {
            biased; // A request that came before the signal is served.
            peeked = timeout(HEADER_READ_TIMEOUT, tcp.peek(&mut first)) => peeked,
            // Shutting down, and no request has come: nothing to finish.
            () = stop.cancelled() => return,
        };
        // Each protocol in an `async fn` of its own: its state then shares memory with the
        // peek's, where inline it would sit beside it (264 bytes more per connection).
        match peeked {
            Ok(Ok(1)) if first[0] != b'P' => self.http1(TokioIo::new(tcp), service, stop).await,
            // Boxed: the rare path's larger state stays out of every connection's task.
            Ok(Ok(1)) => Box::pin(self.auto(TokioIo::new(tcp), service, stop)).await,
            _ => {} // Closed, failed, or silent for 30 s: nothing to serve.
        }
    }

    /// The handshake, then the protocol ALPN chose: HTTP/1.1 in this task, h2 boxed (an h2
    /// connection carries many streams, so its state is paid once for all of them). Without
    /// ALPN, the auto builder reads which from the first bytes.
    async fn secure<S: App>(
        self: Arc<Self>, tls: TlsAcceptor, tcp: TcpStream, service: S, stop: CancellationToken,
    ) {
        let handshake = tokio::select! {
            biased;
            handshake = timeout(HEADER_READ_TIMEOUT, tls.accept(tcp)) => handshake,
            () = stop.cancelled() => return,
        };
        let Ok(Ok(tls)) = handshake else { return };
        let io = TokioIo::new(tls);
        match io.inner().get_ref().1.alpn_protocol() {
            Some(b"http/1.1") => self.http1(io, service, stop).await,
            Some(b"h2") => Box::pin(self.http2(io, service, stop)).await,
            _ => Box::pin(self.auto(io, service, stop)).await,
        }
    }

    async fn http1<I, S: App>(&self, io: TokioIo<I>, service: S, stop: CancellationToken)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        until_stopped!(self.http1.serve_connection(io, service).with_upgrades(), stop);
    }

    async fn http2<I, S: App>(&self, io: TokioIo<I>, service: S, stop: CancellationToken)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        until_stopped!(self.http2.serve_connection(io, service), stop);
    }

    async fn auto<I, S: App>(&self, io: TokioIo<I>, service: S, stop: CancellationToken)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        until_stopped!(self.auto.serve_connection_with_upgrades(io, service), stop);
    }
}

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
