//! `conformance bench`: the four examples and a raw-hyper floor under the same load, one server
//! at a time, each in a release build and started afresh for every scenario.
//!
//! Scenarios: many simultaneous slow streams (on time? how much memory per stream?), a few
//! fast streams (how many lines per second?), many new connections (how many per second, how
//! much memory each?), and start-up (spawn to `listening on`). Each runs over the transports
//! asked for: plain HTTP/1.1, HTTP/1.1 over TLS, h2 over TLS. Every figure is also given as a
//! ratio to the floor measured in the same run, over the same transport.
//!
//! Here: the run (building, starting each server, the source addresses, writing the results).
//! The flags are `options.rs`, the figures `results.rs`, the scenarios `scenarios.rs`, the
//! load client `load.rs`, the readings from `/proc` `system.rs`, the tables `report.rs` and the
//! charts `charts.rs`.

pub mod abuse;
mod baseline;
pub mod charts;
mod load;
pub mod many;
mod options;
mod results;
mod scenarios;
pub mod storm;
mod summary;
mod system;
pub mod targets;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    harness::transports::{Certificates, Serving},
    servers::Spawned,
};
pub use baseline::{BaselineComparison, COMPARED, Comparison, Worse};
use load::Dialer;
pub use options::{FLOOR, Framework, Options};
use options::{refuse_bad_options, source_addresses};
pub use results::{Concurrency, Handshakes, Quantiles, Results, ServerResults, Throughput};
use scenarios::{concurrency, handshakes, latest, throughput};
pub use summary::Figure;
pub use targets::Target;

/// Runs every scenario against the floor and the chosen frameworks; writes bench.json,
/// summary.md and the SVG charts to `options.out`.
pub async fn run(options: &Options) -> Result<Results, String> {
    refuse_bad_options(options)?;
    let baseline = options.baseline.as_deref().map(baseline::Baseline::read).transpose()?;
    let source_addresses = source_addresses(options)?;
    let fd_limit = prepare(options, &source_addresses)?;
    let mut programs = build(&options.frameworks).await?;
    programs.extend(options.servers.iter().cloned());
    let bar = progress_bar(options, &programs);
    let mut servers: Vec<ServerResults> =
        programs.into_iter().map(|(name, program)| fresh(name, program)).collect();
    let tls = match options.transports.iter().any(|t| t.is_tls()) {
        true => Some(Certificates::new("bench")?),
        false => None,
    };
    measure(options, &mut servers, tls.as_ref(), &source_addresses, &bar).await?;
    through_nginx(options, &mut servers, &bar).await?;
    bar.finish_and_clear();
    let mut results = results(options, servers, fd_limit, source_addresses);
    let path = options.baseline.clone().unwrap_or_default();
    results.baseline = baseline.map(|b| BaselineComparison {
        figures: baseline::compare(&results.figures, options.fast_lines, &b),
        date: b.date,
        path,
    });
    write(&results, &options.out)?;
    Ok(results)
}

/// What the machine must allow: enough open files, nginx for the runs through it, the output
/// directory. Says what it found, and warns of a debug build.
fn prepare(options: &Options, source_addresses: &[Ipv4Addr]) -> Result<system::FdLimit, String> {
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
    if (options.storm > 0 || options.many > 0) && crate::harness::proxies::locate("nginx").is_none()
    {
        return Err("--storm and --many run the clients through nginx, which is not installed \
                    (Debian package nginx: apt-get install -y nginx)"
            .into());
    }
    std::fs::create_dir_all(&options.out)
        .map_err(|e| format!("cannot create {}: {e}", options.out.display()))?;
    Ok(fd_limit)
}

/// A bar with a step per server, run, transport and scenario, and one per run through nginx.
fn progress_bar(options: &Options, programs: &[(String, PathBuf)]) -> ProgressBar {
    let scenarios = options.concurrency.len()
        + options.fast_streams.len()
        + usize::from(options.handshakes > 0);
    let frameworks = programs.iter().filter(|(name, _)| name != FLOOR).count();
    let storms = frameworks * (usize::from(options.storm > 0) + usize::from(options.many > 0));
    let steps =
        programs.len() * options.runs as usize * options.transports.len() * scenarios + storms;
    let bar = ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("the template is valid"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn fresh(name: String, program: PathBuf) -> ServerResults {
    ServerResults {
        name,
        program,
        open_files: None,
        startup_ms: Vec::new(),
        concurrency: Vec::new(),
        throughput: Vec::new(),
        handshakes: Vec::new(),
        storm: None,
        many: None,
    }
}

/// Every scenario over every transport, each server started afresh for each. Runs go round
/// the servers, so a disturbance on the machine does not land on one server.
async fn measure(
    options: &Options, servers: &mut [ServerResults], tls: Option<&Certificates>,
    source_addresses: &[Ipv4Addr], bar: &ProgressBar,
) -> Result<(), String> {
    for &transport in &options.transports {
        let on = |s: &Spawned| dialer(s, transport, tls, source_addresses);
        let over = transport.name();
        let scenarios = (options.concurrency.iter().map(|&n| Scenario::Slow(n)))
            .chain(options.fast_streams.iter().map(|&n| Scenario::Fast(n)))
            .chain((options.handshakes > 0).then_some(Scenario::Handshakes));
        for scenario in scenarios {
            for run in 1..=options.runs {
                for server in servers.iter_mut() {
                    let (spawned, took) = start(&server.program, transport, tls).await?;
                    server.startup_ms.push(took);
                    server.open_files =
                        server.open_files.or_else(|| system::open_files(spawned.pid()));
                    let label = format!("{} over {over} (run {run})", server.name);
                    let dialer = on(&spawned)?;
                    let (s, d) = (&spawned, &dialer);
                    match scenario {
                        Scenario::Slow(n) => server
                            .concurrency
                            .push(concurrency(s, d, transport, n, options, bar, &label).await?),
                        Scenario::Fast(n) => server
                            .throughput
                            .push(throughput(s, d, transport, n, options, bar, &label).await?),
                        Scenario::Handshakes => server
                            .handshakes
                            .push(handshakes(s, d, transport, options, bar, &label).await?),
                    }
                    stop(spawned).await;
                    bar.inc(1);
                }
            }
        }
    }
    Ok(())
}

/// The reconnect storm and the many-streams run, through nginx, for each framework.
async fn through_nginx(
    options: &Options, servers: &mut [ServerResults], bar: &ProgressBar,
) -> Result<(), String> {
    for server in servers.iter_mut().filter(|s| s.name != FLOOR) {
        if options.storm > 0 {
            let label = format!("{} storm", server.name);
            let kind = crate::harness::proxies::Kind::Nginx;
            server.storm =
                Some(storm::storm(&server.program, kind, options.storm, bar, &label).await?);
            bar.inc(1);
        }
    }
    for server in servers.iter_mut().filter(|s| s.name != FLOOR) {
        if options.many > 0 {
            let label = format!("{} many", server.name);
            let (program, n) = (&server.program, options.many);
            server.many = Some(many::many(program, n, options.connecting, bar, &label).await?);
            bar.inc(1);
        }
    }
    Ok(())
}

/// The run's results: the figures, the targets judged, and what the run was made on.
fn results(
    options: &Options, servers: Vec<ServerResults>, fd_limit: system::FdLimit,
    source_addresses: Vec<Ipv4Addr>,
) -> Results {
    let figures = summary::figures(&servers);
    let targets = targets::targets(&figures);
    Results {
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
        baseline: None,
    }
}

/// Memory per open stream of each program, one at a time in one run: `streams` slow plain
/// HTTP/1.1 streams, measured as the slow-stream scenario measures it (KiB). Memory is a count,
/// not a time, so a test can hold a server to the floor with it (conformance/tests/memory.rs).
pub async fn memory_per_stream(
    programs: &[(String, PathBuf)], streams: u32,
) -> Result<Vec<(String, f64)>, String> {
    #[derive(clap::Parser)]
    struct Only {
        #[command(flatten)]
        options: Options,
    }
    let streams_arg = streams.to_string();
    // Four lines a second apart: every stream is still open when the last one has connected.
    let args =
        ["bench", "--lines", "4", "--line-interval-ms", "1000", "--concurrency", &streams_arg];
    let options = <Only as clap::Parser>::try_parse_from(args).map_err(|e| e.to_string())?.options;
    system::raise_fd_limit()?;
    let mut measured = Vec::new();
    for (name, program) in programs {
        let (spawned, _) = start(program, Serving::Http1, None).await?;
        let dialer = dialer(&spawned, Serving::Http1, None, &[Ipv4Addr::LOCALHOST])?;
        let bar = ProgressBar::hidden();
        let run = concurrency(&spawned, &dialer, Serving::Http1, streams, &options, &bar, name);
        let run = run.await;
        stop(spawned).await;
        let run = run?;
        if run.completed != streams {
            return Err(format!("{name}: {} of {streams} streams completed", run.completed));
        }
        let kib = run.kib_per_stream.ok_or_else(|| format!("{name}: no memory sample"))?;
        measured.push((name.clone(), kib));
    }
    Ok(measured)
}

/// The summary: the run's tables and targets, and how it compares with `--baseline`.
pub fn summary(results: &Results) -> String {
    let mut out = summary::markdown(results);
    let many: Vec<(&str, &many::Many)> =
        results.servers.iter().filter_map(|s| Some((s.name.as_str(), s.many.as_ref()?))).collect();
    out.push_str(&many::markdown(&many));
    if let Some(comparison) = &results.baseline {
        out.push_str(&baseline::markdown(comparison));
    }
    out
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
pub(crate) async fn build(frameworks: &[Framework]) -> Result<Vec<(String, PathBuf)>, String> {
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
pub(crate) async fn start(
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

/// Ends a server with SIGTERM, as a user would, so that it can write what it writes at exit (a
/// profiler's output, say); killed if it has not exited after 10 s.
pub(crate) async fn stop(mut spawned: Spawned) {
    if spawned.terminate().is_ok() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while spawned.exited().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// bench.json, summary.md and the charts.
fn write(results: &Results, out: &Path) -> Result<(), String> {
    let put = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    put("bench.json", serde_json::to_string_pretty(results).expect("results serialize") + "\n")?;
    put("summary.md", summary(results))?;
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
                format!(
                    ", {}",
                    summary::transport_label(transport, results.options.h2_connections)
                ),
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
