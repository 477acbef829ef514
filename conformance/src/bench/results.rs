//! What one run measured, per server and scenario: written as bench.json, read by the report
//! and the charts.

use std::{collections::BTreeMap, net::Ipv4Addr, path::PathBuf};

use serde::Serialize;

use super::{
    Figure, Options, Target,
    baseline::BaselineComparison,
    storm,
    system::{FdLimit, Machine, OpenFiles},
};
use crate::harness::transports::Serving;

/// Everything one run measured; written as bench.json.
#[derive(Debug, Serialize)]
pub struct Results {
    pub date: String,
    pub command: String,
    pub machine: Machine,
    /// The load client's open-file limit.
    pub fd_limit: FdLimit,
    /// Where the load client's connections came from, taken in turn.
    pub source_addresses: Vec<Ipv4Addr>,
    pub client_build: &'static str,
    pub note: &'static str,
    pub options: Options,
    pub servers: Vec<ServerResults>,
    /// Every figure of `servers`, flat, with its ratio to the floor.
    pub figures: Vec<Figure>,
    pub targets: Vec<Target>,
    /// This run against `--baseline`, figure by figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineComparison>,
}

#[derive(Debug, Serialize)]
pub struct ServerResults {
    pub name: String,
    pub program: PathBuf,
    /// The open-file limit it ran with (/proc/PID/limits at its first start).
    pub open_files: Option<OpenFiles>,
    /// Spawn to its `listening on` line, once per scenario.
    pub startup_ms: Vec<f64>,
    pub concurrency: Vec<Concurrency>,
    pub throughput: Vec<Throughput>,
    pub handshakes: Vec<Handshakes>,
    /// The reconnect storm (`--storm`), for the frameworks.
    pub storm: Option<storm::Storm>,
    /// `--many`: streams through nginx in front of three instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub many: Option<super::many::Many>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Quantiles {
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Quantiles {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        // The rank ⌈p·n/100⌉, kept from rounding up past an exact product (99.9 × 1000).
        let rank = |p: f64| ((p * sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize).max(1);
        let at = |p: f64| sorted[rank(p) - 1];
        (!sorted.is_empty()).then(|| Self {
            min: sorted[0],
            p50: at(50.0),
            p99: at(99.0),
            p999: at(99.9),
            max: sorted[sorted.len() - 1],
        })
    }
}

#[derive(Debug, Serialize)]
pub struct Concurrency {
    pub transport: Serving,
    /// Connections the streams went over: one each over HTTP/1.1, shared over h2.
    pub connections: u32,
    pub streams: u32,
    pub completed: u32,
    pub errors: BTreeMap<String, u32>,
    /// From starting the connection to the first line, in ms.
    pub first_line_ms: Option<Quantiles>,
    /// Lines 2.. of every completed stream: arrival − due, in ms, where line k is due
    /// (k−1)·interval after the stream's schedule began, and the schedule is anchored at the
    /// stream's most punctual line (line 1 is reported as the first-line time).
    pub lateness_ms: Option<Quantiles>,
    pub rss_idle_kib: u64,
    /// The sample with the most streams open (first line received, not ended).
    pub rss_sampled_kib: u64,
    pub open_when_sampled: usize,
    pub kib_per_stream: Option<f64>,
    pub rss_peak_kib: u64,
    pub server_cpu_ms: f64,
    pub client_cpu_ms: f64,
    pub wall_ms: f64,
    /// The arrivals (ms since its connection started) of the stream with the latest line.
    pub latest_stream_ms: Vec<f64>,
    #[serde(skip)]
    pub lateness_samples: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct Throughput {
    pub transport: Serving,
    pub streams: u32,
    pub completed: u32,
    pub errors: BTreeMap<String, u32>,
    pub lines: u64,
    pub bytes: u64,
    pub wall_ms: f64,
    pub lines_per_s: f64,
    pub mb_per_s: f64,
    pub server_cpu_ms: f64,
    pub client_cpu_ms: f64,
}

/// New connections, each answering `GET /stream?count=1&interval_ms=0` and then held open.
#[derive(Debug, Serialize)]
pub struct Handshakes {
    pub transport: Serving,
    pub connections: u32,
    pub completed: u32,
    pub errors: BTreeMap<String, u32>,
    /// From connecting (TLS handshake included) to the end of the answer.
    pub answer_ms: Option<Quantiles>,
    /// Completed connections per second of wall time, all being answered.
    pub per_s: f64,
    pub rss_idle_kib: u64,
    /// With every answered connection held open.
    pub rss_held_kib: u64,
    pub kib_per_connection: Option<f64>,
    pub server_cpu_ms: f64,
    pub client_cpu_ms: f64,
    pub wall_ms: f64,
}
