//! The load client: one HTTP/1.1 connection per stream (hyper's client connection, no pool, no
//! retries), every line stamped with the time its bytes arrived.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Semaphore, task::JoinSet};

/// Live counters, read by the progress bar and the memory sampler while a scenario runs.
#[derive(Debug, Default)]
pub struct Gauge {
    /// Streams that have received their first line and not ended.
    pub open: AtomicUsize,
    /// Streams that have ended, however.
    pub done: AtomicUsize,
    /// Lines received so far, all streams together.
    pub lines: AtomicU64,
}

/// Errors by kind ("connect: ConnectionRefused", "status 503", …) and how often each happened.
pub type Errors = BTreeMap<String, u32>;

/// Sends `GET path` on a new connection and hands each piece of a 200's body to `on_data` as
/// it arrives. The connection is driven in this task: one task per stream, no hand-over
/// between tasks for each piece.
async fn stream(
    addr: SocketAddr, path: &str, mut on_data: impl FnMut(Bytes),
) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, connection) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let request = Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::new())
        .map_err(|e| format!("request: {e}"))?;
    let reading = async move {
        let response = sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
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
    };
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

fn body_error(e: hyper::Error) -> String {
    match std::error::Error::source(&e) {
        Some(cause) => format!("body: {e}: {cause}"),
        None => format!("body: {e}"),
    }
}

/// Reads a whole stream, e.g. to warm a server up.
pub async fn fetch(addr: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    stream(addr, path, |data| body.extend_from_slice(&data)).await?;
    Ok(body)
}

/// The concurrency scenario: `streams` simultaneous `GET /stream?count=&interval_ms=`, with at
/// most `connecting` connections being set up at once (a stream stops counting as connecting
/// when its first line arrives). Per stream: the arrival of each line in ms since its connection
/// was started, or what went wrong.
pub async fn concurrent(
    addr: SocketAddr, streams: u32, count: u32, interval: Duration, connecting: u32,
    gauge: Arc<Gauge>,
) -> Vec<Result<Vec<f64>, String>> {
    let path: Arc<str> =
        format!("/stream?count={count}&interval_ms={}", interval.as_millis()).into();
    let expected: Arc<[u8]> =
        (1..=count).map(|k| format!("{k}\n")).collect::<String>().into_bytes().into();
    // Generous: a stream that is this late is reported, not waited for.
    let limit = interval * count + Duration::from_secs(60);
    let gate = Arc::new(Semaphore::new(connecting as usize));
    let mut tasks = JoinSet::new();
    for _ in 0..streams {
        let (path, expected, gate, gauge) =
            (path.clone(), expected.clone(), gate.clone(), gauge.clone());
        tasks.spawn(async move {
            let permit = gate.acquire_owned().await.expect("the gate is never closed");
            let started = Instant::now();
            let mut opened = OpenGuard(&gauge, false);
            let outcome = tokio::time::timeout(limit, async {
                let mut permit = Some(permit);
                let (mut arrivals, mut text) = (Vec::with_capacity(count as usize), Vec::new());
                stream(addr, &path, |data| {
                    let at = started.elapsed().as_secs_f64() * 1e3;
                    let lines = data.iter().filter(|b| **b == b'\n').count();
                    arrivals.extend(std::iter::repeat_n(at, lines));
                    text.extend_from_slice(&data);
                    gauge.lines.fetch_add(lines as u64, Ordering::Relaxed);
                    if lines > 0 && permit.take().is_some() {
                        opened.open();
                    }
                })
                .await?;
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
pub async fn fast(addr: SocketAddr, streams: u32, count: u32, gauge: Arc<Gauge>) -> Delivered {
    let path: Arc<str> = format!("/stream?count={count}&interval_ms=0").into();
    let ending: Arc<[u8]> = format!("\n{count}\n").into_bytes().into();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..streams {
        let (path, ending, gauge) = (path.clone(), ending.clone(), gauge.clone());
        tasks.spawn(async move {
            let (mut lines, mut bytes) = (0u64, 0u64);
            // The last few bytes seen, to check the final line.
            let mut tail = Vec::with_capacity(32);
            stream(addr, &path, |data| {
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
