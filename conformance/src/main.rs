//! The conformance CLI.
//!
//! Diagnose any endpoint: `cargo run -p conformance -- diagnose https://example.com/api/stream`
//! Check any server: `cargo run -p conformance -- --url http://127.0.0.1:3000`
//! Check all four examples: `cargo run -p conformance -- matrix`
//! Benchmark them: `cargo run -p conformance --release -- bench` (and under abuse: `abuse`)
//! Exit code 1 if any check fails; `diagnose` exits 0 streams, 1 buffered or batched,
//! 3 inconclusive, 2 bad usage or no answer.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use conformance::{
    Config, Progress, Report,
    cli::{self, Command, Options},
    diagnose,
    harness::transports::{Certificates, Serving},
};
use indicatif::{ProgressBar, ProgressStyle};

const EXAMPLES: [(&str, &str); 4] = [
    ("axum", "examples-axum"),
    ("actix", "examples-actix"),
    ("rocket", "examples-rocket"),
    ("warp", "examples-warp"),
];

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(cli::Refused::Clap(error)) => error.exit(),
        Err(cli::Refused::Usage(error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.take() {
        Some(Command::List) => list(),
        Some(Command::Diagnose(diagnose)) => run_diagnose(&diagnose, cli.json).await,
        Some(Command::Load { addr, streams, source, connecting }) => {
            println!(
                "{}",
                conformance::bench::many::client(&addr, streams, source, connecting).await
            );
            ExitCode::SUCCESS
        }
        Some(Command::Bench(bench)) => run_bench(&bench, cli.json).await,
        Some(Command::Abuse(abuse)) => match conformance::bench::abuse::run(&abuse).await {
            Ok(tables) => {
                print!("{tables}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Matrix { transports }) => {
            run_matrix(&cli.options, &transports, cli.json).await
        }
        None => run_url(&cli).await,
    }
}

/// `list`: every check, with its concern.
fn list() -> ExitCode {
    for check in conformance::catalogue() {
        println!("{:<14} {}", check.concern, check.name);
    }
    ExitCode::SUCCESS
}

/// `bench`: exit 3 when a figure is worse than the baseline's beyond the spread between runs.
async fn run_bench(bench: &conformance::bench::Options, json: bool) -> ExitCode {
    match conformance::bench::run(bench).await {
        Ok(results) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&results).expect("json"));
            } else {
                print!("{}", conformance::bench::summary(&results));
                eprintln!("written to {}", bench.out.display());
            }
            match results.baseline.as_ref().is_some_and(|b| b.regressed()) {
                true => ExitCode::from(3),
                false => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `matrix`: the four examples over each transport, a table per transport.
async fn run_matrix(options: &Options, transports: &[Serving], json: bool) -> ExitCode {
    let groups = match matrix(options, transports).await {
        Ok(groups) => groups,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let failed = groups.iter().flat_map(|(_, r)| r).any(|(_, r)| r.failed());
    if json {
        let json: serde_json::Map<String, serde_json::Value> = groups
            .iter()
            .map(|(serving, reports)| (serving.name().to_owned(), to_json(reports)))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json).expect("json"));
    } else {
        for (serving, reports) in &groups {
            println!("== over {} ==\n", serving.name());
            print!("{}", conformance::checks::report::matrix(reports));
            println!();
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// `--url`: the catalogue against one server; exit 2 on a bad URL or transport.
async fn run_url(cli: &cli::Cli) -> ExitCode {
    let url = cli.url.as_deref().expect("clap requires --url");
    if !url.starts_with("http://") && !url.starts_with("https://") {
        eprintln!("error: --url must start with http:// or https:// (got {url:?})");
        return ExitCode::from(2);
    }
    let mut cfg = config(url, &cli.options);
    cfg.target.transport = match cli.transport.transport() {
        Ok(transport) => transport,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = conformance::client::client_for(&cfg.target.transport, cfg.deadline()) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    let report = checked(&cfg, &cli.options.checks, url).await;
    let failed = report.failed();
    if cli.json {
        let reports = [(url.to_owned(), report)];
        println!("{}", serde_json::to_string_pretty(&to_json(&reports)).expect("json"));
    } else {
        print!("{}", report.table());
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Runs the checks behind a progress bar on stderr (hidden when stderr is not a terminal):
/// how many are done, and which are running.
async fn checked(cfg: &Config, only: &[String], what: &str) -> Report {
    let bar = ProgressBar::new(conformance::catalogue().len() as u64).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
            .expect("a template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    let running = std::sync::Mutex::new(Vec::<&'static str>::new());
    let observe = |progress: Progress<'_>| {
        let mut running = running.lock().expect("not poisoned");
        match progress {
            Progress::Selected(n) => bar.set_length(n as u64),
            Progress::Started(check) => running.push(check.name),
            Progress::Finished(check, _) => {
                running.retain(|name| *name != check.name);
                bar.inc(1);
            }
        }
        bar.set_message(running.join(", "));
    };
    let report = conformance::run_observed(cfg, only, &observe).await;
    bar.finish_and_clear();
    report
}

fn to_json(reports: &[(String, Report)]) -> serde_json::Value {
    reports
        .iter()
        .map(|(name, r)| (name.clone(), serde_json::to_value(r).expect("reports serialize")))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn run_diagnose(options: &diagnose::Options, json: bool) -> ExitCode {
    let fail = |problem: diagnose::Problem| {
        if json {
            let value = serde_json::json!({ "error": problem.error, "exit_code": 2 });
            println!("{}", serde_json::to_string_pretty(&value).expect("json"));
        } else {
            eprintln!("error: {problem}");
        }
        ExitCode::from(diagnose::Exit::Usage as u8)
    };
    let plan = match diagnose::plan(options) {
        Ok(plan) => plan,
        Err(problem) => return fail(problem),
    };
    let mut live = diagnose::Live::new(!json);
    match diagnose::run(&plan, &mut live).await {
        Ok(diagnosis) => {
            if json {
                let value = diagnose::json(&diagnosis);
                println!("{}", serde_json::to_string_pretty(&value).expect("json"));
            } else {
                print!("{}", diagnose::text(&diagnosis));
            }
            ExitCode::from(diagnosis.verdict().exit() as u8)
        }
        Err(problem) => fail(problem),
    }
}

fn config(url: &str, options: &Options) -> Config {
    let mut cfg =
        Config::with_timing(url, options.count, Duration::from_millis(options.interval_ms));
    if let Some(ms) = options.tolerance_ms {
        cfg.tolerance = Duration::from_millis(ms);
    }
    cfg
}

/// Builds the four examples (same profile as this binary), starts each on an ephemeral port
/// over each transport in turn and checks it; the reports grouped by transport.
async fn matrix(
    options: &Options, transports: &[Serving],
) -> Result<Vec<(Serving, Vec<(String, Report)>)>, String> {
    let dir = std::env::current_exe()
        .map_err(|e| format!("cannot locate this binary: {e}"))?
        .parent()
        .map(PathBuf::from)
        .ok_or("this binary has no directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = tokio::process::Command::new(cargo);
    build.arg("build").arg("--quiet");
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    for (_, package) in EXAMPLES {
        build.args(["-p", package]);
    }
    eprintln!("building the examples…");
    match build.status().await {
        Ok(status) if status.success() => {}
        Ok(status) => eprintln!("warning: cargo build exited with {status}; using what is built"),
        Err(e) => eprintln!("warning: cannot run cargo ({e}); using what is built"),
    }
    let tls = Certificates::new("matrix")?;
    // One server at a time: the others' load would show up in its timings.
    let mut groups = Vec::new();
    for &serving in transports {
        let mut reports = Vec::new();
        for (name, package) in EXAMPLES {
            let program = dir.join(package);
            let (server, cfg) = serving.start(&program, &tls, |base| config(base, options))?;
            eprintln!("checking {name} over {} at {}…", serving.name(), server.base);
            let label = format!("{name} {}", serving.name());
            let report = checked(&cfg, &options.checks, &label).await;
            reports.push((name.to_string(), report));
        }
        groups.push((serving, reports));
    }
    Ok(groups)
}
