//! Many streams the way users run them: more than one process can hold (here the hard
//! open-file limit is 20 000, and every stream is a socket in the client, in the balancer twice
//! and in a server), so nginx in front of [`INSTANCES`] instances of a framework, and the load
//! client spread over processes (this binary's hidden `load` command), each from a loopback
//! address of its own. The figures: completed, errors, lateness, memory per stream of each
//! instance and of nginx, CPU.

use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::Path,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Child,
    task::JoinHandle,
};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use super::{
    Quantiles,
    load::{self, Dialer, Gauge},
    scenarios::lateness_of,
    summary::table,
    system,
};
use crate::{
    harness::{
        balanced::INSTANCES,
        proxies::{Kind, Proxy, Setup},
    },
    servers::{Spawned, rss_kib},
};

/// Streams per load-client process: under its open-file limit, and one source address's ports.
const PER_CLIENT: u32 = 17_000;
/// Lines per stream and their interval: long enough that every stream is open at once.
pub const LINES: u32 = 10;
pub const INTERVAL: Duration = Duration::from_millis(1000);

/// What one load-client process got, as it prints it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClientReport {
    /// Arrival times (ms from the stream's start) of each stream that completed.
    pub arrivals: Vec<Vec<f64>>,
    pub errors: BTreeMap<String, u32>,
}

/// The hidden `load` command: `streams` slow streams to `addr` from `source`, then the report
/// as JSON on stdout.
pub async fn client(addr: &str, streams: u32, source: Ipv4Addr, connecting: u32) -> String {
    let _ = system::raise_fd_limit();
    let report = match addr.parse() {
        Ok(addr) => {
            let dialer = Dialer::plain(addr).with_sources(&[source]);
            let gauge = std::sync::Arc::new(Gauge::default());
            // How many are open, every 100 ms, for the memory sample with the most open.
            let report_open = {
                let gauge = gauge.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_millis(100));
                    loop {
                        tick.tick().await;
                        println!("open {}", gauge.open.load(std::sync::atomic::Ordering::Relaxed));
                    }
                })
            };
            let outcomes =
                load::concurrent(&dialer, streams, LINES, INTERVAL, connecting, streams, gauge)
                    .await;
            report_open.abort();
            let mut report = ClientReport { arrivals: Vec::new(), errors: BTreeMap::new() };
            for outcome in outcomes {
                match outcome {
                    Ok(arrivals) => report.arrivals.push(arrivals),
                    Err(kind) => *report.errors.entry(kind).or_default() += 1,
                }
            }
            report
        }
        Err(e) => ClientReport {
            arrivals: Vec::new(),
            errors: BTreeMap::from([(format!("{addr} is not IP:PORT: {e}"), streams)]),
        },
    };
    serde_json::to_string(&report).expect("the report serializes")
}

/// What the many-streams scenario measured for one framework.
#[derive(Debug, Clone, Serialize)]
pub struct Many {
    pub streams: u32,
    pub instances: usize,
    pub client_processes: u32,
    pub nginx_workers: usize,
    pub completed: u32,
    pub errors: BTreeMap<String, u32>,
    pub lateness_ms: Option<Quantiles>,
    pub first_line_ms: Option<Quantiles>,
    /// Streams open at once when memory was sampled (the sample with the most open).
    pub open_when_sampled: u32,
    /// (RSS when sampled − idle) / streams open then, of the instances together (each serves
    /// a third) and of nginx (master and workers together), KiB.
    pub kib_per_stream_instances: f64,
    pub kib_per_stream_nginx: f64,
    /// CPU over the scenario, ms: the instances together, nginx, the load clients.
    pub instances_cpu_ms: f64,
    pub nginx_cpu_ms: f64,
    pub wall_ms: f64,
}

/// nginx's master and its workers.
fn nginx_pids(master: u32) -> Vec<u32> {
    let children = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
        .unwrap_or_default();
    std::iter::once(master)
        .chain(children.split_whitespace().filter_map(|p| p.parse().ok()))
        .collect()
}

fn rss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| rss_kib(p).ok()).sum()
}

fn cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| system::cpu_ms(&p.to_string())).sum()
}

/// `streams` slow streams through nginx in front of [`INSTANCES`] instances of `program`.
pub async fn many(
    program: &Path, streams: u32, connecting: u32, bar: &ProgressBar, name: &str,
) -> Result<Many, String> {
    let instances = start_instances(program).await?;
    let bases: Vec<String> = instances.iter().map(|s| s.base.clone()).collect();
    let proxy = Proxy::balance(Kind::Nginx, Setup::Many, &bases)?;
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    let server_pids: Vec<u32> = instances.iter().map(Spawned::pid).collect();
    let nginx = nginx_pids(proxy.pid());
    let (idle_servers, idle_nginx) = (rss(&server_pids), rss(&nginx));
    let (cpu_servers, cpu_nginx) = (cpu(&server_pids), cpu(&nginx));
    let processes = streams.div_ceil(PER_CLIENT);
    let started = Instant::now();
    let mut clients = load_clients(&addr, streams, processes, connecting)?;
    let (open, readers) = read_clients(&mut clients);
    let mut done =
        std::pin::pin!(futures_util::future::join_all(clients.iter_mut().map(|c| c.wait())));
    let mut sampled = (0, idle_servers, idle_nginx);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let statuses = loop {
        tokio::select! {
            statuses = &mut done => break statuses,
            _ = tick.tick() => {
                let now: u32 = open.iter().map(|n| n.load(Ordering::Relaxed)).sum();
                if now >= sampled.0 {
                    sampled = (now, rss(&server_pids), rss(&nginx_pids(proxy.pid())));
                }
                bar.set_message(format!(
                    "{name}: {streams} streams through nginx, {now} open, {:.0} s",
                    started.elapsed().as_secs_f64()
                ));
            }
        }
    };
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let (instances_cpu_ms, nginx_cpu_ms) =
        (cpu(&server_pids) - cpu_servers, cpu(&nginx_pids(proxy.pid())) - cpu_nginx);
    let nginx_workers = nginx_pids(proxy.pid()).len() - 1;
    drop(proxy);
    for instance in instances {
        super::stop(instance).await;
    }
    let (first_lines, lateness, errors) = reports(statuses, readers).await?;
    let (open_when_sampled, at_servers, at_nginx) = sampled;
    let per_stream =
        |at: u64, idle: u64| at.saturating_sub(idle) as f64 / f64::from(open_when_sampled.max(1));
    Ok(Many {
        streams,
        instances: INSTANCES,
        client_processes: processes,
        nginx_workers,
        completed: first_lines.len() as u32,
        errors,
        lateness_ms: Quantiles::of(&lateness),
        first_line_ms: Quantiles::of(&first_lines),
        open_when_sampled,
        kib_per_stream_instances: per_stream(at_servers, idle_servers),
        kib_per_stream_nginx: per_stream(at_nginx, idle_nginx),
        instances_cpu_ms,
        nginx_cpu_ms,
        wall_ms,
    })
}

/// [`INSTANCES`] instances of `program`, their logs at warn.
async fn start_instances(program: &Path) -> Result<Vec<Spawned>, String> {
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        let program = program.to_owned();
        let spawned = tokio::task::spawn_blocking(move || {
            Spawned::with_log_level(&program, &[], "warn", Duration::from_secs(60))
        })
        .await
        .map_err(|e| format!("cannot start an instance: {e}"))??;
        instances.push(spawned);
    }
    Ok(instances)
}

/// `processes` load clients (this program's `load` command) sharing `streams` between them.
fn load_clients(
    addr: &str, streams: u32, processes: u32, connecting: u32,
) -> Result<Vec<Child>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut clients = Vec::new();
    for i in 0..processes {
        let n = streams / processes + u32::from(i < streams % processes);
        // 127.0.0.2, 127.0.0.3, …: each process its own address, and so its own ports.
        let source = Ipv4Addr::new(127, 0, 0, 2 + i as u8);
        let child = tokio::process::Command::new(&exe)
            .args(["load", addr, &n.to_string(), &source.to_string()])
            .arg(connecting.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start a load client: {e}"))?;
        clients.push(child);
    }
    Ok(clients)
}

/// Each client's latest count of open streams, read from its `open N` lines, and a task per
/// client that returns the rest of its output: its report.
fn read_clients(clients: &mut [Child]) -> (Arc<Vec<AtomicU32>>, Vec<JoinHandle<String>>) {
    let open: Arc<Vec<AtomicU32>> = Arc::new(clients.iter().map(|_| AtomicU32::new(0)).collect());
    let mut readers = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let stdout = client.stdout.take().expect("stdout is piped");
        let open = open.clone();
        readers.push(tokio::spawn(async move {
            let (mut lines, mut report) = (BufReader::new(stdout).lines(), String::new());
            while let Ok(Some(line)) = lines.next_line().await {
                match line.strip_prefix("open ").and_then(|n| n.parse().ok()) {
                    Some(n) => open[i].store(n, Ordering::Relaxed),
                    None => report = line,
                }
            }
            report
        }));
    }
    (open, readers)
}

/// The clients' reports, together: every stream's first line and lateness, and the errors.
async fn reports(
    statuses: Vec<std::io::Result<std::process::ExitStatus>>, readers: Vec<JoinHandle<String>>,
) -> Result<(Vec<f64>, Vec<f64>, BTreeMap<String, u32>), String> {
    let (mut first_lines, mut lateness, mut errors) = (Vec::new(), Vec::new(), BTreeMap::new());
    let interval_ms = INTERVAL.as_secs_f64() * 1e3;
    for (status, reader) in statuses.into_iter().zip(readers) {
        let status = status.map_err(|e| format!("a load client failed: {e}"))?;
        let output = reader.await.map_err(|e| format!("a load client's output: {e}"))?;
        let report: ClientReport = serde_json::from_str(&output)
            .map_err(|e| format!("a load client's report is unreadable ({e}): {status}"))?;
        for arrivals in &report.arrivals {
            first_lines.push(arrivals[0]);
            lateness.extend(lateness_of(arrivals, interval_ms));
        }
        for (kind, n) in report.errors {
            *errors.entry(kind).or_default() += n;
        }
    }
    Ok((first_lines, lateness, errors))
}

/// The many-streams table, one row per framework.
pub fn markdown(runs: &[(&str, &Many)]) -> String {
    let Some((_, first)) = runs.first() else { return String::new() };
    let mut out = format!(
        "**{} slow streams through nginx** ({} workers) in front of {} instances each, the \
         load client in {} processes; memory per stream at the sample with the most open \
         ({})\n\n",
        first.streams,
        first.nginx_workers,
        first.instances,
        first.client_processes,
        runs.iter()
            .map(|(n, m)| format!("{n} {}", m.open_when_sampled))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let header = [
        "server",
        "completed",
        "errors",
        "first line p99 (ms)",
        "lateness p99 (ms)",
        "lateness max (ms)",
        "memory per stream, instances (KiB)",
        "memory per stream, nginx (KiB)",
        "CPU instances / nginx (s)",
    ]
    .map(String::from);
    let q = |q: Option<Quantiles>, f: fn(&Quantiles) -> f64| {
        q.map_or("-".into(), |q| format!("{:.1}", f(&q)))
    };
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|(name, m)| {
            vec![
                name.to_string(),
                m.completed.to_string(),
                m.errors.values().sum::<u32>().to_string(),
                q(m.first_line_ms, |q| q.p99),
                q(m.lateness_ms, |q| q.p99),
                q(m.lateness_ms, |q| q.max),
                format!("{:.1}", m.kib_per_stream_instances),
                format!("{:.1}", m.kib_per_stream_nginx),
                format!("{:.1} / {:.1}", m.instances_cpu_ms / 1e3, m.nginx_cpu_ms / 1e3),
            ]
        })
        .collect();
    table(&mut out, &header, &rows);
    let errors: BTreeMap<&str, u32> = runs
        .iter()
        .flat_map(|(_, m)| m.errors.iter().map(|(k, n)| (k.as_str(), *n)))
        .fold(BTreeMap::new(), |mut all, (k, n)| {
            *all.entry(k).or_default() += n;
            all
        });
    for (kind, n) in errors {
        out += &format!("- {n} × {kind}\n");
    }
    out
}
