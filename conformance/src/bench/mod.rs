//! `conformance bench`: the four examples and a raw-hyper floor under the same load, one server
//! at a time, each in a release build and started afresh for every scenario.
//!
//! Scenarios: many simultaneous slow streams (on time? how much memory per stream?), a few
//! fast streams (how many lines per second?), many new connections (how many per second, how
//! much memory each?), and start-up (spawn to `listening on`). Each runs over the transports
//! asked for: plain HTTP/1.1, HTTP/1.1 over TLS, h2 over TLS. Every figure is also given as a
//! ratio to the floor measured in the same run, over the same transport.

pub mod charts;
mod load;
mod report;
pub mod storm;
mod system;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::{
    servers::Spawned,
    transports::{Certificates, Serving},
};
use load::{Dialer, Gauge};
pub use report::{Figure, Target, markdown as summary};
use system::{FdLimit, Machine, OpenFiles};

/// The servers besides the floor, and the packages whose binaries they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Axum,
    Actix,
    Rocket,
    Warp,
}

impl Framework {
    fn name(self) -> &'static str {
        match self {
            Self::Axum => "axum",
            Self::Actix => "actix",
            Self::Rocket => "rocket",
            Self::Warp => "warp",
        }
    }

    fn package(self) -> String {
        format!("examples-{}", self.name())
    }
}

/// The floor's name in every table.
pub const FLOOR: &str = "floor";

#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct Options {
    /// Frameworks to measure; the floor always runs.
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["axum", "actix", "rocket", "warp"])]
    pub frameworks: Vec<Framework>,
    /// Simultaneous slow streams, one scenario per number. 50000 and more (e.g.
    /// `--concurrency 50000`) is the many-streams scenario, with targets of its own; past one
    /// address's ephemeral ports the client spreads over 127.0.0.2, 127.0.0.3, … (see
    /// --source-addresses).
    #[arg(long, value_delimiter = ',', default_values = ["1000", "10000"],
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: Vec<u32>,
    /// Lines per slow stream.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub lines: u32,
    /// Interval between the lines of a slow stream, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub line_interval_ms: u64,
    /// Connections being set up at once in the slow-stream scenarios. Beyond a server's listen
    /// backlog, some wait for a SYN retry (1 s).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connecting: u32,
    /// Lines per fast stream (`interval_ms=0`).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub fast_lines: u32,
    /// Simultaneous fast streams, one scenario per number.
    #[arg(long, value_delimiter = ',', default_values = ["1", "16"],
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub fast_streams: Vec<u32>,
    /// New connections in the handshake scenario, each answering one short request and then
    /// held open (0 leaves the scenario out).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=50_000))]
    pub handshakes: u32,
    /// Transports to run every scenario over: http1 (plain HTTP/1.1), https (HTTP/1.1 over TLS,
    /// a connection per stream), h2 (HTTP/2 over TLS).
    #[arg(long, value_enum, value_delimiter = ',', default_values = ["http1"])]
    pub transports: Vec<Serving>,
    /// TLS connections that the slow streams share over h2.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub h2_connections: u32,
    /// The reconnect storm: this many EventSources through nginx in front of three instances
    /// of each framework, every instance restarted in turn (0 leaves it out; it needs nginx).
    /// Once per framework, after the other scenarios.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8000))]
    pub storm: u32,
    /// Source addresses of the load client's connections, taken in turn: IPv4 loopback
    /// addresses such as 127.0.0.2,127.0.0.3. By default 127.0.0.1, and as many of 127.0.0.2,
    /// 127.0.0.3, … as the connections need when one address has too few ephemeral ports
    /// (net.ipv4.ip_local_port_range, less 1000 left to the machine).
    #[arg(long, value_delimiter = ',', value_parser = parse_source_address)]
    pub source_addresses: Vec<Ipv4Addr>,
    /// Also measure your own server (repeatable): PROGRAM must take `--addr 127.0.0.1:0`,
    /// print `listening on http://IP:PORT` first on stdout, and serve the same `/stream`.
    #[arg(long = "server", value_name = "NAME=PROGRAM", value_parser = parse_server)]
    pub servers: Vec<(String, PathBuf)>,
    /// Runs of every scenario; each figure is the median of the runs.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
    /// Where to write bench.json, summary.md and the charts.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
}

fn parse_server(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, program)) if !name.is_empty() && !program.is_empty() && name != FLOOR => {
            Ok((name.to_owned(), PathBuf::from(program)))
        }
        _ => Err(format!("expected NAME=PROGRAM with a name other than {FLOOR:?}, got {value:?}")),
    }
}

fn parse_source_address(value: &str) -> Result<Ipv4Addr, String> {
    match value.parse::<Ipv4Addr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        Ok(ip) => Err(format!(
            "{ip} is not a loopback address: the servers listen on 127.0.0.1, so the load \
             client connects from 127.0.0.0/8 (127.0.0.2, 127.0.0.3, …)"
        )),
        Err(_) => {
            Err(format!("expected an IPv4 loopback address such as 127.0.0.2, got {value:?}"))
        }
    }
}

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

/// Runs every scenario against the floor and the chosen frameworks; writes bench.json,
/// summary.md and the SVG charts to `options.out`.
pub async fn run(options: &Options) -> Result<Results, String> {
    for (flag, twice) in [
        ("--concurrency", twice(&options.concurrency).map(u32::to_string)),
        ("--fast-streams", twice(&options.fast_streams).map(u32::to_string)),
        ("--transports", twice(&options.transports).map(|t| t.name().to_owned())),
        ("--source-addresses", twice(&options.source_addresses).map(Ipv4Addr::to_string)),
    ] {
        if let Some(twice) = twice {
            return Err(format!("{flag} lists {twice} twice"));
        }
    }
    if options.transports.contains(&Serving::H2c) {
        return Err("--transports: h2c is not benchmarked (the floor serves no h2c); use \
                    http1, https or h2"
            .into());
    }
    let names = options.frameworks.iter().map(|f| f.name());
    let mut names: Vec<&str> =
        names.chain(options.servers.iter().map(|(n, _)| n.as_str())).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("two servers are named {:?}; give --server another name", pair[0]));
    }
    let source_addresses = source_addresses(options)?;
    let fd_limit = system::raise_fd_limit()?;
    eprintln!("open-file limit: {fd_limit}");
    let most = options.concurrency.iter().copied().max().unwrap_or(0).max(options.handshakes);
    if u64::from(most) + 64 > fd_limit.now {
        return Err(format!(
            "--concurrency {most} needs about {} open files in the load client and in each \
             server, and this system allows {fd_limit}: run the bench where the hard limit \
             can be raised (root with CAP_SYS_RESOURCE) or already is (ulimit -Hn, \
             limits.conf), or ask for fewer streams",
            u64::from(most) + 64,
        ));
    }
    if source_addresses.len() > 1 {
        let list: Vec<String> = source_addresses.iter().map(Ipv4Addr::to_string).collect();
        eprintln!("source addresses: {}", list.join(", "));
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this load client is a debug build; its figures are not comparable \
             (run `cargo run -p conformance --release -- bench`)"
        );
    }
    if options.storm > 0 && crate::proxies::locate("nginx").is_none() {
        return Err("--storm runs the clients through nginx, which is not installed \
                    (Debian package nginx: apt-get install -y nginx)"
            .into());
    }
    std::fs::create_dir_all(&options.out)
        .map_err(|e| format!("cannot create {}: {e}", options.out.display()))?;

    let mut programs = build(&options.frameworks).await?;
    programs.extend(options.servers.iter().cloned());
    let scenarios = options.concurrency.len()
        + options.fast_streams.len()
        + usize::from(options.handshakes > 0);
    let storms = match options.storm {
        0 => 0,
        _ => programs.iter().filter(|(name, _)| name != FLOOR).count(),
    };
    let steps =
        programs.len() * options.runs as usize * options.transports.len() * scenarios + storms;
    let tls = match options.transports.iter().any(|t| t.is_tls()) {
        true => Some(Certificates::new("bench")?),
        false => None,
    };
    let bar = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    let mut servers: Vec<ServerResults> = programs
        .into_iter()
        .map(|(name, program)| ServerResults {
            name,
            program,
            open_files: None,
            startup_ms: Vec::new(),
            concurrency: Vec::new(),
            throughput: Vec::new(),
            handshakes: Vec::new(),
            storm: None,
        })
        .collect();
    // Runs go round the servers, so a disturbance on the machine does not land on one server.
    for &transport in &options.transports {
        let on = |s: &Spawned| dialer(s, transport, tls.as_ref(), &source_addresses);
        let over = transport.name();
        let scenarios = (options.concurrency.iter().map(|&n| Scenario::Slow(n)))
            .chain(options.fast_streams.iter().map(|&n| Scenario::Fast(n)))
            .chain((options.handshakes > 0).then_some(Scenario::Handshakes));
        for scenario in scenarios {
            for run in 1..=options.runs {
                for server in &mut servers {
                    let (spawned, took) = start(&server.program, transport, tls.as_ref()).await?;
                    server.startup_ms.push(took);
                    server.open_files =
                        server.open_files.or_else(|| system::open_files(spawned.pid()));
                    let label = format!("{} over {over} (run {run})", server.name);
                    let dialer = on(&spawned)?;
                    let (s, d) = (&spawned, &dialer);
                    match scenario {
                        Scenario::Slow(n) => server
                            .concurrency
                            .push(concurrency(s, d, transport, n, options, &bar, &label).await?),
                        Scenario::Fast(n) => server
                            .throughput
                            .push(throughput(s, d, transport, n, options, &bar, &label).await?),
                        Scenario::Handshakes => server
                            .handshakes
                            .push(handshakes(s, d, transport, options, &bar, &label).await?),
                    }
                    stop(spawned).await;
                    bar.inc(1);
                }
            }
        }
    }
    if options.storm > 0 {
        for server in servers.iter_mut().filter(|s| s.name != FLOOR) {
            let label = format!("{} storm", server.name);
            let kind = crate::proxies::Kind::Nginx;
            server.storm =
                Some(storm::storm(&server.program, kind, options.storm, &bar, &label).await?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let figures = report::figures(&servers);
    let targets = report::targets(&figures);
    let results = Results {
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        command: std::iter::once("cargo run -p conformance --release --".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        machine: system::machine(),
        fd_limit,
        source_addresses,
        client_build: if cfg!(debug_assertions) { "debug" } else { "release" },
        note: "client and servers share the machine; one server runs at a time",
        options: options.clone(),
        servers,
        figures,
        targets,
    };
    write(&results, &options.out)?;
    Ok(results)
}

/// One scenario of a run, for every server in turn.
#[derive(Clone, Copy)]
enum Scenario {
    /// That many simultaneous slow streams.
    Slow(u32),
    /// That many simultaneous fast streams.
    Fast(u32),
    /// `--handshakes` new connections.
    Handshakes,
}

/// Builds the floor and the frameworks' servers in release mode; their executables, floor first.
async fn build(frameworks: &[Framework]) -> Result<Vec<(String, PathBuf)>, String> {
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate sits in the workspace");
    let mut programs = vec![(
        FLOOR.to_owned(),
        cargo_build(root, &["-p", "conformance", "--example", "floor"], "floor").await?,
    )];
    for framework in frameworks {
        let package = framework.package();
        let program = cargo_build(root, &["-p", &package, "--bin", &package], &package).await?;
        programs.push((framework.name().to_owned(), program));
    }
    Ok(programs)
}

async fn cargo_build(root: &Path, args: &[&str], target: &str) -> Result<PathBuf, String> {
    eprintln!("building {target} (release)…");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = tokio::process::Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--message-format=json-render-diagnostics"])
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo build of {target} failed ({})", output.status));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == target)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo built no executable named {target}"))
}

/// Starts a fresh instance for `transport` with request logging off (the floor has none); says
/// how long it took to start.
async fn start(
    program: &Path, transport: Serving, tls: Option<&Certificates>,
) -> Result<(Spawned, f64), String> {
    let program = program.to_owned();
    let args = tls.map(|tls| transport.args(tls)).unwrap_or_default();
    let started = Instant::now();
    let spawned = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Spawned::with_log_level(&program, &args, "warn", Duration::from_secs(60))
    })
    .await
    .map_err(|e| format!("cannot start the server: {e}"))??;
    Ok((spawned, started.elapsed().as_secs_f64() * 1e3))
}

/// How the load client reaches `spawned` over `transport`, from `sources`.
fn dialer(
    spawned: &Spawned, transport: Serving, tls: Option<&Certificates>, sources: &[Ipv4Addr],
) -> Result<Dialer, String> {
    let base = &spawned.base;
    let addr: SocketAddr = base
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .parse()
        .map_err(|e| format!("{base} is not IP:PORT: {e}"))?;
    let dialer = match (transport, tls) {
        (Serving::Http1, _) => Dialer::plain(addr),
        (_, Some(tls)) if transport.is_tls() => {
            Dialer::tls(addr, &tls.ca_pem, transport == Serving::H2)?
        }
        _ => return Err(format!("cannot reach {base} over {}", transport.name())),
    };
    match addr.ip() {
        // The kernel's own choice: a server of one's own on [::1] is reached too.
        _ if sources == [Ipv4Addr::LOCALHOST] => Ok(dialer),
        IpAddr::V4(ip) if ip.is_loopback() => Ok(dialer.with_sources(sources)),
        _ => {
            let list: Vec<String> = sources.iter().map(Ipv4Addr::to_string).collect();
            Err(format!(
                "{base} is not on 127.0.0.0/8, and the load client connects from {}: more \
                 connections than one address has ephemeral ports, or --source-addresses. Ask \
                 for fewer connections, or have the server listen on 127.0.0.1",
                list.join(", ")
            ))
        }
    }
}

/// Where the load client's connections come from: --source-addresses, or as many loopback
/// addresses as the scenario with the most connections needs.
fn source_addresses(options: &Options) -> Result<Vec<Ipv4Addr>, String> {
    // Open at once: a connection per slow stream over HTTP/1.1, shared over h2; one for every
    // fast stream and every new connection.
    let slow = options.transports.iter().flat_map(|&t| {
        options.concurrency.iter().map(move |&n| match t {
            Serving::H2 => n.min(options.h2_connections),
            _ => n,
        })
    });
    let connections = slow
        .chain(options.fast_streams.iter().copied())
        .chain([options.handshakes])
        .max()
        .unwrap_or(0);
    let given = &options.source_addresses;
    match system::ephemeral_ports().map(system::ports_per_address) {
        None if given.is_empty() => Ok(vec![Ipv4Addr::LOCALHOST]),
        // No port range to read: the addresses as given, unchecked.
        None => Ok(given.clone()),
        Some(per_address) if given.is_empty() => system::source_addresses(connections, per_address),
        Some(per_address) => {
            system::check_source_addresses(given, connections, per_address)?;
            Ok(given.clone())
        }
    }
}

/// The first value that `values` lists more than once.
fn twice<T: PartialEq>(values: &[T]) -> Option<&T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| v)
}

/// Ends a server with SIGTERM, as a user would, so that it can write what it writes at exit (a
/// profiler's output, say); killed if it has not exited after 10 s.
async fn stop(mut spawned: Spawned) {
    if spawned.terminate().is_ok() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while spawned.exited().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

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

async fn concurrency(
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

    let interval_ms = interval.as_secs_f64() * 1e3;
    let (mut errors, mut first_lines, mut lateness) = (BTreeMap::new(), Vec::new(), Vec::new());
    let (mut latest_stream_ms, mut latest) = (Vec::new(), f64::NEG_INFINITY);
    for outcome in outcomes {
        match outcome {
            Ok(arrivals) => {
                first_lines.push(arrivals[0]);
                for late in lateness_of(&arrivals, interval_ms) {
                    lateness.push(late);
                    if late > latest {
                        latest = late;
                        latest_stream_ms.clone_from(&arrivals);
                    }
                }
            }
            Err(kind) => *errors.entry(kind).or_default() += 1,
        }
    }
    let (open_when_sampled, rss_sampled_kib) = sampled;
    Ok(Concurrency {
        transport,
        connections,
        streams,
        completed: first_lines.len() as u32,
        errors,
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
        latest_stream_ms,
        lateness_samples: lateness,
    })
}

async fn throughput(
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

async fn handshakes(
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
fn lateness_of(arrivals: &[f64], interval_ms: f64) -> impl Iterator<Item = f64> + '_ {
    let anchor = arrivals
        .iter()
        .enumerate()
        .map(|(k, at)| at - k as f64 * interval_ms)
        .fold(f64::INFINITY, f64::min);
    arrivals.iter().enumerate().skip(1).map(move |(k, at)| at - (anchor + k as f64 * interval_ms))
}

fn latest(c: &Concurrency) -> f64 {
    c.lateness_ms.map_or(f64::NEG_INFINITY, |q| q.max)
}

/// bench.json, summary.md and the charts.
fn write(results: &Results, out: &Path) -> Result<(), String> {
    let put = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    put("bench.json", serde_json::to_string_pretty(results).expect("results serialize") + "\n")?;
    put("summary.md", report::markdown(results))?;
    for (&transport, &streams) in results
        .options
        .transports
        .iter()
        .flat_map(|t| results.options.concurrency.iter().map(move |s| (t, s)))
    {
        let pooled: Vec<(&str, Vec<f64>)> = results
            .servers
            .iter()
            .map(|s| {
                let runs = s
                    .concurrency
                    .iter()
                    .filter(|c| c.streams == streams && c.transport == transport);
                let samples = runs.flat_map(|c| c.lateness_samples.iter().copied());
                (s.name.as_str(), samples.collect())
            })
            .collect();
        let series: Vec<(&str, &[f64])> = pooled.iter().map(|(n, v)| (*n, &v[..])).collect();
        let (file, over) = match transport {
            Serving::Http1 => (format!("lateness-{streams}.svg"), String::new()),
            _ => (
                format!("lateness-{streams}-{}.svg", transport.name()),
                format!(", {}", report::transport_label(transport, results.options.h2_connections)),
            ),
        };
        charts::lateness_chart(
            &out.join(file),
            &format!(
                "Line lateness, {streams} simultaneous streams of {} lines every {} ms{over} ({} \
                 runs)",
                results.options.lines, results.options.line_interval_ms, results.options.runs
            ),
            &series,
        )?;
    }
    if let Some(&streams) = results.options.concurrency.iter().max() {
        let series: Vec<(&str, &[f64])> = results
            .servers
            .iter()
            .filter_map(|s| {
                let latest = s
                    .concurrency
                    .iter()
                    .filter(|c| {
                        c.streams == streams && c.transport == results.options.transports[0]
                    })
                    .max_by(|a, b| latest(a).total_cmp(&latest(b)))?;
                Some((s.name.as_str(), &latest.latest_stream_ms[..]))
            })
            .collect();
        charts::timeline_chart(
            &out.join("timeline.svg"),
            &format!("The stream with the latest line, per server ({streams} simultaneous)"),
            results.options.line_interval_ms as f64,
            &series,
        )?;
    }
    Ok(())
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
