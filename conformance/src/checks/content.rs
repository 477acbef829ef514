//! What the body says: exactly `1\n` … `count\n`, nothing before, between or after.

use std::time::Duration;

use reqwest::Method;

use super::{
    Config,
    judge::{expect_lines, schedule_outcome},
};
use crate::{
    client,
    outcome::{Level, Outcome},
};

/// 100 lines with no pause between them.
pub async fn body_counts_lines(cfg: &Config) -> Outcome {
    let path = crate::checks::stream_path(100, Duration::ZERO);
    let got = client::fetch(&cfg.target, Method::GET, &path, cfg.deadline(), false).await;
    match expect_lines(got, 100) {
        Ok(got) => Outcome::pass("1\\n … 100\\n, nothing else").with(got.evidence),
        Err(outcome) => outcome,
    }
}

/// `GET /stream` with no parameters: the classic 10 lines, one per second, judged with half a
/// second of tolerance. The pass reason carries the measured first-line time and worst lateness.
pub async fn classic_defaults(cfg: &Config) -> Outcome {
    let (count, interval) = (10, Duration::from_secs(1));
    let tolerance = interval / 2;
    let deadline = crate::checks::deadline_for(count, interval, tolerance);
    let got = client::fetch(&cfg.target, Method::GET, "/stream", deadline, false).await;
    let got = match expect_lines(got, count) {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let outcome = match schedule_outcome(got.lines(), interval, tolerance) {
        outcome if outcome.level == Level::Pass => outcome,
        failed => Outcome::fail(failed.reason),
    };
    outcome.with(got.evidence)
}
