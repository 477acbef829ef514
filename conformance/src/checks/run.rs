//! Running the catalogue against one server: reachability first, then the checks a few at a
//! time, into a [`Report`].

use futures_util::StreamExt;
use reqwest::Method;

use super::{
    Check, Config, catalogue, reachability,
    report::{CheckResult, Report},
};
use crate::{
    client::{self, Protocol},
    outcome::{Level, Outcome},
};

/// How many checks run at once. Each opens several connections; many more at once and the
/// checker's own load shows up in the timings it judges.
const CONCURRENT_CHECKS: usize = 4;

/// What [`run_observed`] reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// How many checks will run.
    Selected(usize),
    Started(&'a Check),
    Finished(&'a Check, Level),
}

/// Runs the checks (all, or those named in `only`): reachability first, and if the server
/// cannot be reached the rest are reported as not run; then the others, a few at a time.
pub async fn run(cfg: &Config, only: &[String]) -> Report {
    run_observed(cfg, only, &|_| {}).await
}

/// [`run`], telling `observe` as each check starts and finishes (the CLI's progress bar).
pub async fn run_observed(
    cfg: &Config, only: &[String], observe: &(dyn Fn(Progress<'_>) + Sync),
) -> Report {
    let selected: Vec<Check> = catalogue()
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|n| n == c.name))
        .collect();
    observe(Progress::Selected(selected.len()));
    let cfg = &resolved(cfg).await;
    let reachable = reachability::reachable(cfg).await;
    if reachable.level == Level::Fail {
        let results = selected
            .iter()
            .map(|c| {
                let outcome = if c.name == "reachable" {
                    reachable.clone()
                } else {
                    Outcome::fail(format!("not run: {}", reachable.reason))
                };
                observe(Progress::Finished(c, outcome.level));
                CheckResult::new(c, outcome)
            })
            .collect();
        return Report::new(&cfg.target.base, results);
    }
    // Unordered: a check that waits 30 s (a server's header timeout) must not hold back the
    // start of the rest until it is done.
    let reachable = &reachable;
    let mut outcomes: Vec<(usize, Outcome)> =
        futures_util::stream::iter(selected.iter().enumerate().map(|(i, c)| async move {
            observe(Progress::Started(c));
            let outcome = if c.name == "reachable" { reachable.clone() } else { c.run(cfg).await };
            observe(Progress::Finished(c, outcome.level));
            (i, outcome)
        }))
        .buffer_unordered(CONCURRENT_CHECKS)
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    let results = selected.iter().zip(outcomes).map(|(c, (_, o))| CheckResult::new(c, o)).collect();
    Report::new(&cfg.target.base, results)
}

/// Over TLS with no protocol asked for, ALPN decides: the checks are told what it chose, so the
/// HTTP/1-only ones know whether they apply.
async fn resolved(cfg: &Config) -> Config {
    let mut cfg = cfg.clone();
    if cfg.target.transport.protocol == Protocol::Auto && cfg.target.is_tls() {
        let got = client::fetch(&cfg.target, Method::GET, "/", cfg.deadline(), true).await;
        cfg.target.transport.protocol = match got.version.as_deref() {
            Some("h2") => Protocol::Http2,
            _ => Protocol::Http1,
        };
    }
    cfg
}
