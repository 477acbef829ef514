//! The scenarios, each against one running server: many slow streams (lateness, memory per
//! stream), a few fast ones (lines per second), new connections (handshakes per second,
//! memory each), with the server's and the client's CPU time around each.

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use indicatif::ProgressBar;

use super::{
    load::{self, Dialer, Gauge},
    options::Options,
    results::{Concurrency, Handshakes, Quantiles, Throughput},
    system,
};
use crate::{harness::transports::Serving, servers::Spawned};

/// CPU time of the server and of this client, before and after.
struct Cpu {
    pid: String,
    server: f64,
    client: f64,
}

impl Cpu {
    fn start(spawned: &Spawned) -> Result<Self, String> {
        let pid = spawned.pid().to_string();
        Ok(Self {
            server: system::cpu_ms(&pid).ok_or("cannot read the server's CPU time")?,
            client: system::cpu_ms("self").unwrap_or(0.0),
            pid,
        })
    }

    /// (server, client) ms spent since `start`.
    fn spent(&self) -> (f64, f64) {
        (
            system::cpu_ms(&self.pid).unwrap_or(f64::NAN) - self.server,
            system::cpu_ms("self").unwrap_or(f64::NAN) - self.client,
        )
    }
}

pub(super) async fn concurrency(
    spawned: &Spawned, dialer: &Dialer, transport: Serving, streams: u32, options: &Options,
    bar: &ProgressBar, name: &str,
) -> Result<Concurrency, String> {
    let interval = Duration::from_millis(options.line_interval_ms);
    let connections = match dialer.is_h2() {
        true => options.h2_connections.min(streams),
        false => streams,
    };
    load::fetch(dialer, "/stream?count=2&interval_ms=0")
        .await
        .map_err(|e| format!("{name}: the warm-up request failed: {e}"))?;
    let pid = spawned.pid();
    let rss_idle_kib = crate::servers::rss_kib(pid)?;
    let cpu = Cpu::start(spawned)?;
    let gauge = Arc::new(Gauge::default());
    let started = Instant::now();
    let mut run = tokio::spawn({
        let (dialer, gauge, lines, connecting) =
            (dialer.clone(), gauge.clone(), options.lines, options.connecting);
        async move {
            load::concurrent(&dialer, streams, lines, interval, connecting, connections, gauge)
                .await
        }
    });
    let (mut sampled, mut peak) = ((0, rss_idle_kib), rss_idle_kib);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let outcomes = loop {
        tokio::select! {
            outcomes = &mut run => break outcomes.map_err(|e| format!("the load client failed: {e}"))?,
            _ = tick.tick() => {
                let open = gauge.open.load(Ordering::Relaxed);
                if let Ok(rss) = crate::servers::rss_kib(pid) {
                    peak = peak.max(rss);
                    if open >= sampled.0 {
                        sampled = (open, rss);
                    }
                }
                bar.set_message(format!(
                    "{name}: {streams} streams of {} lines; {open} open, {} ended",
                    options.lines,
                    gauge.done.load(Ordering::Relaxed)
                ));
            }
        }
    };
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let (server_cpu_ms, client_cpu_ms) = cpu.spent();
    let arrived = Arrived::of(outcomes, interval.as_secs_f64() * 1e3);
    let (first_lines, lateness) = (arrived.first_lines, arrived.lateness);
    let (open_when_sampled, rss_sampled_kib) = sampled;
    Ok(Concurrency {
        transport,
        connections,
        streams,
        completed: first_lines.len() as u32,
        errors: arrived.errors,
        first_line_ms: Quantiles::of(&first_lines),
        lateness_ms: Quantiles::of(&lateness),
        rss_idle_kib,
        rss_sampled_kib,
        open_when_sampled,
        kib_per_stream: (open_when_sampled > 0).then(|| {
            rss_sampled_kib.saturating_sub(rss_idle_kib) as f64 / open_when_sampled as f64
        }),
        rss_peak_kib: peak,
        server_cpu_ms,
        client_cpu_ms,
        wall_ms,
        latest_stream_ms: arrived.latest_stream_ms,
        lateness_samples: lateness,
    })
}

/// What the streams of a slow-stream run saw: each one's first line and every line's
/// lateness, the arrivals of the stream with the latest line, and the errors by kind.
struct Arrived {
    first_lines: Vec<f64>,
    lateness: Vec<f64>,
    latest_stream_ms: Vec<f64>,
    errors: BTreeMap<String, u32>,
}

impl Arrived {
    fn of(outcomes: Vec<Result<Vec<f64>, String>>, interval_ms: f64) -> Self {
        let mut arrived = Self {
            first_lines: Vec::new(),
            lateness: Vec::new(),
            latest_stream_ms: Vec::new(),
            errors: BTreeMap::new(),
        };
        let mut latest = f64::NEG_INFINITY;
        for outcome in outcomes {
            match outcome {
                Ok(arrivals) => {
                    arrived.first_lines.push(arrivals[0]);
                    for late in lateness_of(&arrivals, interval_ms) {
                        arrived.lateness.push(late);
                        if late > latest {
                            latest = late;
                            arrived.latest_stream_ms.clone_from(&arrivals);
                        }
                    }
                }
                Err(kind) => *arrived.errors.entry(kind).or_default() += 1,
            }
        }
        arrived
    }
}

pub(super) async fn throughput(
    spawned: &Spawned, dialer: &Dialer, transport: Serving, streams: u32, options: &Options,
    bar: &ProgressBar, name: &str,
) -> Result<Throughput, String> {
    load::fetch(dialer, "/stream?count=2&interval_ms=0")
        .await
        .map_err(|e| format!("{name}: the warm-up request failed: {e}"))?;
    let cpu = Cpu::start(spawned)?;
    let gauge = Arc::new(Gauge::default());
    let mut run = tokio::spawn({
        let (dialer, gauge, lines) = (dialer.clone(), gauge.clone(), options.fast_lines);
        async move { load::fast(&dialer, streams, lines, gauge).await }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let delivered = loop {
        tokio::select! {
            delivered = &mut run => break delivered.map_err(|e| format!("the load client failed: {e}"))?,
            _ = tick.tick() => bar.set_message(format!(
                "{name}: {streams} × {} fast lines; {} received",
                options.fast_lines,
                gauge.lines.load(Ordering::Relaxed)
            )),
        }
    };
    let (server_cpu_ms, client_cpu_ms) = cpu.spent();
    let seconds = delivered.wall.as_secs_f64();
    Ok(Throughput {
        transport,
        streams,
        completed: delivered.completed,
        errors: delivered.errors,
        lines: delivered.lines,
        bytes: delivered.bytes,
        wall_ms: seconds * 1e3,
        lines_per_s: delivered.lines as f64 / seconds,
        mb_per_s: delivered.bytes as f64 / seconds / 1e6,
        server_cpu_ms,
        client_cpu_ms,
    })
}

pub(super) async fn handshakes(
    spawned: &Spawned, dialer: &Dialer, transport: Serving, options: &Options, bar: &ProgressBar,
    name: &str,
) -> Result<Handshakes, String> {
    let n = options.handshakes;
    load::fetch(dialer, "/stream?count=2&interval_ms=0")
        .await
        .map_err(|e| format!("{name}: the warm-up request failed: {e}"))?;
    let pid = spawned.pid();
    let rss_idle_kib = crate::servers::rss_kib(pid)?;
    let cpu = Cpu::start(spawned)?;
    let gauge = Arc::new(Gauge::default());
    let hold = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Instant::now();
    let run = tokio::spawn({
        let (dialer, gauge, hold, connecting) =
            (dialer.clone(), gauge.clone(), hold.clone(), options.connecting);
        async move { load::handshakes(&dialer, n, connecting, gauge, hold).await }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while gauge.done.load(Ordering::Relaxed) < n as usize && !run.is_finished() {
        tick.tick().await;
        bar.set_message(format!(
            "{name}: {n} new connections; {} answered",
            gauge.open.load(Ordering::Relaxed)
        ));
    }
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let (server_cpu_ms, client_cpu_ms) = cpu.spent();
    let rss_held_kib = crate::servers::rss_kib(pid)?;
    let held = gauge.open.load(Ordering::Relaxed);
    hold.close();
    let outcomes = run.await.map_err(|e| format!("the load client failed: {e}"))?;
    let (mut errors, mut answers) = (BTreeMap::new(), Vec::new());
    for outcome in outcomes {
        match outcome {
            Ok(ms) => answers.push(ms),
            Err(kind) => *errors.entry(kind).or_default() += 1,
        }
    }
    Ok(Handshakes {
        transport,
        connections: n,
        completed: answers.len() as u32,
        errors,
        answer_ms: Quantiles::of(&answers),
        per_s: answers.len() as f64 / (wall_ms / 1e3),
        rss_idle_kib,
        rss_held_kib,
        kib_per_connection: (held > 0)
            .then(|| rss_held_kib.saturating_sub(rss_idle_kib) as f64 / held as f64),
        server_cpu_ms,
        client_cpu_ms,
        wall_ms,
    })
}

/// Lines 2.. of one stream (arrivals in ms): how late each came, in ms. Line k is due
/// (k−1)·interval after the stream's schedule began, and the schedule is anchored at the
/// stream's most punctual line. Anchoring it at line 1 instead would count a slow first line
/// as later lines being early, and a stream that arrives all at once as on time.
pub(super) fn lateness_of(arrivals: &[f64], interval_ms: f64) -> impl Iterator<Item = f64> + '_ {
    let anchor = arrivals
        .iter()
        .enumerate()
        .map(|(k, at)| at - k as f64 * interval_ms)
        .fold(f64::INFINITY, f64::min);
    arrivals.iter().enumerate().skip(1).map(move |(k, at)| at - (anchor + k as f64 * interval_ms))
}

pub(super) fn latest(c: &Concurrency) -> f64 {
    c.lateness_ms.map_or(f64::NEG_INFINITY, |q| q.max)
}

#[cfg(test)]
mod tests {
    use super::lateness_of;

    fn late(arrivals: &[f64]) -> Vec<f64> {
        lateness_of(arrivals, 1000.0).collect()
    }

    #[test]
    fn an_on_time_stream_is_not_late() {
        assert_eq!(late(&[3.0, 1003.0, 2003.0, 3003.0]), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn a_slow_first_line_does_not_make_the_rest_early() {
        // Line 1 waited 400 ms for the connection; the schedule did not.
        assert_eq!(late(&[400.0, 1000.0, 2000.0, 3020.0]), [0.0, 0.0, 20.0]);
    }

    #[test]
    fn a_stream_that_arrives_all_at_once_is_late() {
        // Buffered to the end: every line at 3 s.
        assert_eq!(late(&[3000.0; 4]), [2000.0, 1000.0, 0.0]);
    }
}
