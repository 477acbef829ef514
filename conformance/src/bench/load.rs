//! The load client: hyper's client connections (no pool, no retries), every line stamped with
//! the time its bytes arrived. Over HTTP/1.1 (plain or TLS) each stream has a connection of its
//! own; over h2 (the `h2` crate, which hyper's HTTP/2 is built on) the streams share a given
//! number of TLS connections.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Response, body::Incoming, client::conn::http1};
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::Semaphore,
    task::JoinSet,
};
use tokio_rustls::TlsConnector;

use crate::client::{Io, Transport, tls};

/// Live counters, read by the progress bar and the memory sampler while a scenario runs.
#[derive(Debug, Default)]
pub struct Gauge {
    /// Streams that have received their first line and not ended; in the handshake scenario,
    /// connections answered and held open.
    pub open: AtomicUsize,
    /// Streams that have ended, however.
    pub done: AtomicUsize,
    /// Lines received so far, all streams together.
    pub lines: AtomicU64,
}

/// Errors by kind ("connect: ConnectionRefused", "status 503", …) and how often each happened.
pub type Errors = BTreeMap<String, u32>;

/// How the load client reaches the server: the address, where from, TLS or not, and the HTTP
/// version.
#[derive(Clone)]
pub struct Dialer {
    addr: SocketAddr,
    /// Source addresses, taken in turn by the connections (clones share the turn); none: the
    /// kernel's choice.
    sources: Arc<[Ipv4Addr]>,
    turn: Arc<AtomicUsize>,
    tls: Option<TlsConnector>,
    h2: bool,
}

type Sender2 = h2::client::SendRequest<Bytes>;

impl Dialer {
    /// Plain HTTP/1.1.
    pub fn plain(addr: SocketAddr) -> Self {
        Self { addr, sources: Arc::new([]), turn: Arc::default(), tls: None, h2: false }
    }

    /// TLS trusting `ca_pem`, with ALPN `h2` or `http/1.1`. Every handshake is a full one
    /// (no session resumption), as a browser's first visit is.
    pub fn tls(addr: SocketAddr, ca_pem: &[u8], h2: bool) -> Result<Self, String> {
        let transport = Transport { cacert: Some(ca_pem.to_vec()), ..Default::default() };
        let mut config = tls::config(&transport)?;
        config.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
        config.resumption = Resumption::disabled();
        let tls = Some(TlsConnector::from(Arc::new(config)));
        Ok(Self { tls, h2, ..Self::plain(addr) })
    }

    /// Connections from `sources` in turn: one address has only so many ephemeral ports for
    /// one server's address and port.
    pub fn with_sources(self, sources: &[Ipv4Addr]) -> Self {
        Self { sources: sources.into(), ..self }
    }

    pub fn is_h2(&self) -> bool {
        self.h2
    }

    /// A TCP connection, from the next source address if there are any.
    async fn tcp(&self) -> Result<TcpStream, String> {
        let connect = |e: std::io::Error| format!("connect: {}", e.kind());
        if self.sources.is_empty() {
            return TcpStream::connect(self.addr).await.map_err(connect);
        }
        let source = self.sources[self.turn.fetch_add(1, Ordering::Relaxed) % self.sources.len()];
        let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {}", e.kind()))?;
        // The port is then chosen at connect() for the whole 4-tuple, as it is without bind();
        // bind() would take a port of the address for this socket alone.
        #[cfg(target_os = "linux")]
        let _ = nix::sys::socket::setsockopt(
            &socket,
            nix::sys::socket::sockopt::IpBindAddressNoPort,
            &true,
        );
        socket
            .bind(SocketAddr::new(source.into(), 0))
            .map_err(|e| format!("bind {source}: {}", e.kind()))?;
        socket.connect(self.addr).await.map_err(connect)
    }

    /// A TCP connection, and the TLS handshake over it if there is one.
    async fn io(&self) -> Result<Box<dyn Io>, String> {
        let tcp = self.tcp().await?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(connector) => {
                let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
                let tls = connector.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// An HTTP/2 connection, driven by a task of its own.
    async fn h2(&self) -> Result<Sender2, String> {
        let io = self.io().await?;
        // hyper's windows (2 MiB per stream, 5 MiB per connection). h2 ends a connection with
        // ENHANCE_YOUR_CALM (too_many_data_frames) once small DATA frames worth a budget of
        // overhead wait unread, and hyper cannot raise it: hyper's client ended the floor's and
        // axum's 1M-line streams (a frame per line) after ~0.3 s, and with a 64 KiB stream
        // window still one of actix's three. A load client that reads as fast as it can is no
        // attacker, so the budget is off.
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(2 << 20)
            .initial_connection_window_size(5 << 20)
            .data_frame_budget(usize::MAX)
            .handshake(io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// An HTTP/1.1 request for `path`.
    fn request(&self, path: &str) -> Result<Request<Empty<Bytes>>, String> {
        Request::get(path)
            .header("host", self.addr.to_string())
            .body(Empty::new())
            .map_err(|e| format!("request: {e}"))
    }
}

/// Hands each piece of a 200's body to `on_data` as it arrives.
async fn body(
    response: Result<Response<Incoming>, hyper::Error>, on_data: &mut impl FnMut(Bytes),
) -> Result<(), String> {
    let response = response.map_err(|e| format!("request: {e}"))?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status().as_u16()));
    }
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map_err(body_error)?.into_data() {
            on_data(data);
        }
    }
    Ok(())
}

/// Sends `GET path` on a new connection and hands each piece of a 200's body to `on_data` as
/// it arrives. An HTTP/1.1 connection is driven in this task: one task per stream, no
/// hand-over between tasks for each piece.
async fn stream(dialer: &Dialer, path: &str, mut on_data: impl FnMut(Bytes)) -> Result<(), String> {
    if dialer.h2 {
        let sender = dialer.h2().await?;
        return on(&sender, dialer, path, on_data).await;
    }
    let io = dialer.io().await?;
    let (mut sender, connection) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let request = dialer.request(path)?;
    let reading = async move { body(sender.send_request(request).await, &mut on_data).await };
    let (mut connection, mut reading) = (pin!(connection), pin!(reading));
    let mut connected = true;
    loop {
        tokio::select! {
            result = &mut reading => return result,
            // Once the connection ends, the body reports how.
            _ = &mut connection, if connected => connected = false,
        }
    }
}

/// Sends `GET path` as a new stream on an HTTP/2 connection, and hands each DATA frame of a
/// 200's body to `on_data` as it arrives.
async fn on(
    sender: &Sender2, dialer: &Dialer, path: &str, mut on_data: impl FnMut(Bytes),
) -> Result<(), String> {
    let h2 = |e: h2::Error| format!("h2: {e}");
    let scheme = if dialer.tls.is_some() { "https" } else { "http" };
    let request = Request::get(format!("{scheme}://{}{path}", dialer.addr))
        .body(())
        .map_err(|e| format!("request: {e}"))?;
    let mut sender = sender.clone().ready().await.map_err(h2)?;
    let (response, _) = sender.send_request(request, true).map_err(h2)?;
    let response = response.await.map_err(h2)?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status().as_u16()));
    }
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        let data = data.map_err(|e| format!("body: {e}"))?;
        let _ = body.flow_control().release_capacity(data.len());
        on_data(data);
    }
    Ok(())
}

fn body_error(e: hyper::Error) -> String {
    match std::error::Error::source(&e) {
        Some(cause) => format!("body: {e}: {cause}"),
        None => format!("body: {e}"),
    }
}

/// Reads a whole stream, e.g. to warm a server up.
pub async fn fetch(dialer: &Dialer, path: &str) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    stream(dialer, path, |data| body.extend_from_slice(&data)).await?;
    Ok(body)
}

/// The concurrency scenario: `streams` simultaneous `GET /stream?count=&interval_ms=`, with at
/// most `connecting` streams being set up at once (a stream stops counting as connecting when
/// its first line arrives). Over h2 stream `i` goes on connection `i % connections`, opened by
/// the first stream that needs it. Per stream: the arrival of each line in ms since the stream
/// was started (its connection included, where it opened one), or what went wrong.
pub async fn concurrent(
    dialer: &Dialer, streams: u32, count: u32, interval: Duration, connecting: u32,
    connections: u32, gauge: Arc<Gauge>,
) -> Vec<Result<Vec<f64>, String>> {
    let path: Arc<str> =
        format!("/stream?count={count}&interval_ms={}", interval.as_millis()).into();
    let expected: Arc<[u8]> =
        (1..=count).map(|k| format!("{k}\n")).collect::<String>().into_bytes().into();
    // Generous: a stream that is this late is reported, not waited for.
    let limit = interval * count + Duration::from_secs(60);
    let gate = Arc::new(Semaphore::new(connecting as usize));
    let shared: Arc<[tokio::sync::OnceCell<Result<Sender2, String>>]> =
        (0..connections.max(1)).map(|_| tokio::sync::OnceCell::new()).collect();
    let mut tasks = JoinSet::new();
    for i in 0..streams {
        let (path, expected, gate, gauge) =
            (path.clone(), expected.clone(), gate.clone(), gauge.clone());
        let (dialer, shared) = (dialer.clone(), shared.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.expect("the gate is never closed");
            let started = Instant::now();
            let mut opened = OpenGuard(&gauge, false);
            let outcome = tokio::time::timeout(limit, async {
                let mut permit = Some(permit);
                let (mut arrivals, mut text) = (Vec::with_capacity(count as usize), Vec::new());
                let on_data = |data: Bytes| {
                    let at = started.elapsed().as_secs_f64() * 1e3;
                    let lines = data.iter().filter(|b| **b == b'\n').count();
                    arrivals.extend(std::iter::repeat_n(at, lines));
                    text.extend_from_slice(&data);
                    gauge.lines.fetch_add(lines as u64, Ordering::Relaxed);
                    if lines > 0 && permit.take().is_some() {
                        opened.open();
                    }
                };
                match dialer.h2 {
                    true => {
                        let cell = &shared[i as usize % shared.len()];
                        let sender = cell.get_or_init(|| dialer.h2()).await.clone()?;
                        on(&sender, &dialer, &path, on_data).await?;
                    }
                    false => stream(&dialer, &path, on_data).await?,
                }
                if text != *expected {
                    return Err(format!(
                        "content: {} bytes, not the {} of 1..={count}",
                        text.len(),
                        expected.len()
                    ));
                }
                Ok(arrivals)
            })
            .await
            .unwrap_or_else(|_| Err(format!("timeout: unfinished after {limit:?}")));
            drop(opened);
            gauge.done.fetch_add(1, Ordering::Relaxed);
            outcome
        });
    }
    let mut results = Vec::with_capacity(streams as usize);
    while let Some(result) = tasks.join_next().await {
        results.push(result.unwrap_or_else(|e| Err(format!("client task: {e}"))));
    }
    results
}

/// Counts a stream as open from its first line until it ends.
struct OpenGuard<'a>(&'a Gauge, bool);

impl OpenGuard<'_> {
    fn open(&mut self) {
        self.0.open.fetch_add(1, Ordering::Relaxed);
        self.1 = true;
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What the fast streams of the throughput scenario delivered.
#[derive(Debug, Default)]
pub struct Delivered {
    pub completed: u32,
    pub lines: u64,
    pub bytes: u64,
    pub errors: Errors,
    pub wall: Duration,
}

/// The throughput scenario: `streams` simultaneous `GET /stream?count=&interval_ms=0`, read as
/// fast as they come. Each must end with line `count` after exactly `count` lines.
pub async fn fast(dialer: &Dialer, streams: u32, count: u32, gauge: Arc<Gauge>) -> Delivered {
    let path: Arc<str> = format!("/stream?count={count}&interval_ms=0").into();
    let ending: Arc<[u8]> = format!("\n{count}\n").into_bytes().into();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..streams {
        let (path, ending, gauge) = (path.clone(), ending.clone(), gauge.clone());
        let dialer = dialer.clone();
        tasks.spawn(async move {
            let (mut lines, mut bytes) = (0u64, 0u64);
            // The last few bytes seen, to check the final line.
            let mut tail = Vec::with_capacity(32);
            stream(&dialer, &path, |data| {
                let n = data.iter().filter(|b| **b == b'\n').count() as u64;
                lines += n;
                bytes += data.len() as u64;
                gauge.lines.fetch_add(n, Ordering::Relaxed);
                tail.extend_from_slice(&data[data.len().saturating_sub(16)..]);
                tail.drain(..tail.len().saturating_sub(16));
            })
            .await?;
            gauge.done.fetch_add(1, Ordering::Relaxed);
            let whole = count == 1 && tail == b"1\n";
            if lines != u64::from(count) || !(tail.ends_with(&ending) || whole) {
                return Err(format!(
                    "content: {lines} lines, ending {:?}, not 1..={count}",
                    String::from_utf8_lossy(&tail)
                ));
            }
            Ok((lines, bytes))
        });
    }
    let mut delivered = Delivered::default();
    while let Some(result) = tasks.join_next().await {
        match result.unwrap_or_else(|e| Err(format!("client task: {e}"))) {
            Ok((lines, bytes)) => {
                delivered.completed += 1;
                delivered.lines += lines;
                delivered.bytes += bytes;
            }
            Err(kind) => *delivered.errors.entry(kind).or_default() += 1,
        }
    }
    delivered.wall = started.elapsed();
    delivered
}

/// The handshake scenario: `n` new connections, at most `connecting` being set up at once; each
/// sends one `GET /stream?count=1&interval_ms=0`, reads the answer and is then held open (idle)
/// until `hold` is closed, so the server's memory per connection can be read. Per connection:
/// ms from connecting to the end of its answer, or what went wrong.
pub async fn handshakes(
    dialer: &Dialer, n: u32, connecting: u32, gauge: Arc<Gauge>, hold: Arc<Semaphore>,
) -> Vec<Result<f64, String>> {
    const PATH: &str = "/stream?count=1&interval_ms=0";
    let gate = Arc::new(Semaphore::new(connecting as usize));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (dialer, gate, hold, gauge) =
            (dialer.clone(), gate.clone(), hold.clone(), gauge.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.expect("the gate is never closed");
            let started = Instant::now();
            let answered = async {
                let mut got = Vec::new();
                let keep: Box<dyn std::any::Any + Send> = match dialer.h2 {
                    true => {
                        let sender = dialer.h2().await?;
                        on(&sender, &dialer, PATH, |d| got.extend_from_slice(&d)).await?;
                        Box::new(sender)
                    }
                    false => {
                        let io = dialer.io().await?;
                        let (mut sender, connection) =
                            http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io))
                                .await
                                .map_err(|e| format!("handshake: {e}"))?;
                        let driver = tokio::spawn(connection);
                        let response = sender.send_request(dialer.request(PATH)?).await;
                        body(response, &mut |d: Bytes| got.extend_from_slice(&d)).await?;
                        Box::new((sender, AbortOnDrop(driver)))
                    }
                };
                if got != b"1\n" {
                    return Err(format!(
                        "content: {:?}, not \"1\\n\"",
                        String::from_utf8_lossy(&got)
                    ));
                }
                Ok((started.elapsed().as_secs_f64() * 1e3, keep))
            };
            let outcome = tokio::time::timeout(Duration::from_secs(60), answered)
                .await
                .unwrap_or_else(|_| Err("timeout: unanswered after 60 s".into()));
            drop(permit);
            gauge.done.fetch_add(1, Ordering::Relaxed);
            match outcome {
                Ok((ms, keep)) => {
                    gauge.open.fetch_add(1, Ordering::Relaxed);
                    let _ = hold.acquire().await;
                    drop(keep);
                    Ok(ms)
                }
                Err(e) => Err(e),
            }
        });
    }
    let mut results = Vec::with_capacity(n as usize);
    while let Some(result) = tasks.join_next().await {
        results.push(result.unwrap_or_else(|e| Err(format!("client task: {e}"))));
    }
    results
}

/// Ends the task driving an HTTP/1.1 connection (and so the connection) when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
