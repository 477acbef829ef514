//! Turning arrivals into a verdict: the body's content, and the schedule of its lines (line 1
//! due at once, line k at t1 + (k-1)·interval). The checks of every concern judge with these.

use std::time::Duration;

use reqwest::Method;

use super::Config;
use crate::{
    client::{self, Fetched, ms},
    outcome::{Level, LineArrival, Outcome},
};

/// Fetches the configured stream and makes sure it holds the right lines before its timing is
/// judged; otherwise the timing checks fail with the content problem.
pub(crate) async fn fetch_stream(cfg: &Config) -> Result<Fetched, Outcome> {
    let got =
        client::fetch(&cfg.target, Method::GET, &cfg.stream_path(), cfg.deadline(), false).await;
    expect_lines(got, cfg.count)
}

/// The body must be exactly `1\n` … `count\n`.
/// For the checks of HTTP/1's own framing (chunked encoding, HTTP/1.0, request-line syntax):
/// over HTTP/2 they do not apply, and say so with `why`.
pub(crate) fn http1_only(cfg: &Config, why: &str) -> Option<Outcome> {
    cfg.target.speaks_h2().then(|| {
        Outcome::not_applicable(format!("HTTP/1 only, and this target speaks HTTP/2: {why}"))
    })
}

pub(crate) fn expect_lines(got: Fetched, count: u32) -> Result<Fetched, Outcome> {
    if let Some(error) = got.unanswered() {
        return Err(Outcome::fail(format!("no response: {error}")).with(got.evidence));
    }
    let status = got.status().unwrap_or_default();
    if status != 200 {
        return Err(Outcome::fail(format!("status {status}, expected 200")).with(got.evidence));
    }
    if let Some(problem) = content_problem(&got.body, count) {
        let problem = match &got.error {
            Some(error) => format!("{problem} ({error})"),
            None => problem,
        };
        return Err(Outcome::fail(problem).with(got.evidence));
    }
    Ok(got)
}

/// What is wrong with `body` as the counting stream up to `count`, if anything.
pub(crate) fn content_problem(body: &[u8], count: u32) -> Option<String> {
    let expected: String = (1..=count).map(|k| format!("{k}\n")).collect();
    if body == expected.as_bytes() {
        return None;
    }
    let text = String::from_utf8_lossy(body);
    let got: Vec<&str> = text.split_inclusive('\n').collect();
    let want: Vec<&str> = expected.split_inclusive('\n').collect();
    let at = got.iter().zip(&want).position(|(g, w)| g != w);
    Some(match at {
        Some(i) => format!("line {} is {:?}, expected {:?}", i + 1, got[i], want[i]),
        None if got.len() < want.len() => {
            format!("body ends after {} of {count} lines", got.len())
        }
        None => format!("body continues after line {count}: {:?}", got[want.len()..].concat()),
    })
}

/// Arrival of line `k` (1-based) relative to line 1's, and when it was due.
pub(crate) fn offsets(
    lines: &[LineArrival], interval: Duration,
) -> impl Iterator<Item = (usize, f64, f64)> {
    let t1 = lines.first().map_or(0.0, |l| l.at_ms);
    let step = ms(interval);
    lines.iter().enumerate().map(move |(i, l)| (i + 1, l.at_ms - t1, step * i as f64))
}

pub(crate) fn first_line_outcome(lines: &[LineArrival], tolerance: Duration) -> Outcome {
    let first = lines.first().map_or(f64::INFINITY, |l| l.at_ms);
    let tol = ms(tolerance);
    Outcome::judge(
        first <= tol,
        format!("first line after {first:.1} ms"),
        format!("first line arrived {first:.0} ms after the request; expected within {tol:.0} ms"),
    )
}

pub(crate) fn gaps_outcome(
    lines: &[LineArrival], interval: Duration, tolerance: Duration,
) -> Outcome {
    let min = ms(interval.saturating_sub(tolerance));
    let gaps = lines.windows(2).enumerate().map(|(i, w)| (i + 2, w[1].at_ms - w[0].at_ms));
    let smallest = gaps.min_by(|a, b| a.1.total_cmp(&b.1));
    match smallest {
        Some((k, gap)) if gap < min => Outcome::fail(format!(
            "lines {} and {k} arrived {gap:.1} ms apart, expected at least {min:.0} ms \
             (interval {} ms − tolerance {} ms): the stream is batched",
            k - 1,
            interval.as_millis(),
            tolerance.as_millis()
        )),
        Some((k, gap)) => Outcome::pass(format!("smallest gap {gap:.1} ms (before line {k})")),
        None => Outcome::warn("fewer than two lines: no gap to judge"),
    }
}

pub(crate) fn lateness_outcome(
    lines: &[LineArrival], interval: Duration, tolerance: Duration,
) -> Outcome {
    let tol = ms(tolerance);
    let worst = offsets(lines, interval)
        .map(|(k, at, due)| (k, at - due))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match worst {
        Some((k, late)) if late > tol => Outcome::fail(format!(
            "line {k} arrived {late:.0} ms after its due time (tolerance {tol:.0} ms): \
             the schedule drifts; sleep until each line's deadline, not for an interval"
        )),
        Some((k, late)) => Outcome::pass(format!("worst lateness {late:.1} ms (line {k})")),
        None => Outcome::warn("no lines to judge"),
    }
}

/// First line, gaps and lateness together: the first failure, or all three pass reasons.
pub(crate) fn schedule_outcome(
    lines: &[LineArrival], interval: Duration, tolerance: Duration,
) -> Outcome {
    combined([
        first_line_outcome(lines, tolerance),
        gaps_outcome(lines, interval, tolerance),
        lateness_outcome(lines, interval, tolerance),
    ])
}

/// Gaps and lateness, judged from line 1's arrival on: for clients whose own start-up time
/// (a process, a browser) is part of when line 1 arrives.
pub(crate) fn spacing_outcome(
    lines: &[LineArrival], interval: Duration, tolerance: Duration,
) -> Outcome {
    let first = lines.first().map_or(f64::NAN, |l| l.at_ms);
    let outcome = combined([
        gaps_outcome(lines, interval, tolerance),
        lateness_outcome(lines, interval, tolerance),
    ]);
    Outcome { reason: format!("first line after {first:.1} ms, {}", outcome.reason), ..outcome }
}

fn combined<const N: usize>(verdicts: [Outcome; N]) -> Outcome {
    match verdicts.iter().find(|o| o.level != Level::Pass) {
        Some(worst) => worst.clone(),
        None => {
            Outcome::pass(verdicts.iter().map(|o| o.reason.as_str()).collect::<Vec<_>>().join(", "))
        }
    }
}

/// After an attack (`said`: what it did and what the server answered): the victim stream, on a
/// connection of its own, whole and on schedule, and the fresh request answered 200; or which
/// of them was not.
pub(crate) fn after_attack(
    cfg: &Config, victim: &Fetched, fresh: &Fetched, said: String,
) -> Outcome {
    if let Some(problem) = content_problem(&victim.body, cfg.count) {
        return Outcome::fail(format!(
            "{said}; the victim stream on its own connection: {problem}"
        ));
    }
    let timing = schedule_outcome(victim.lines(), cfg.interval, cfg.tolerance);
    if timing.level != Level::Pass {
        return Outcome::fail(format!("{said}; the victim stream: {}", timing.reason));
    }
    match fresh.status() {
        Some(200) => Outcome::pass(format!(
            "{said}; the victim stream: {}; a fresh request after it: 200",
            timing.reason
        )),
        status => Outcome::fail(format!(
            "{said}; a fresh request after it got {status:?}: the server did not recover"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(at: &[f64]) -> Vec<LineArrival> {
        at.iter()
            .enumerate()
            .map(|(i, &at_ms)| LineArrival { text: (i + 1).to_string(), at_ms })
            .collect()
    }

    #[test]
    fn content_problems_are_named() {
        assert_eq!(content_problem(b"1\n2\n3\n", 3), None);
        assert_eq!(content_problem(b"1\n3\n", 3).unwrap(), r#"line 2 is "3\n", expected "2\n""#);
        assert_eq!(content_problem(b"1\n2\n", 3).unwrap(), "body ends after 2 of 3 lines");
        assert!(content_problem(b"1\n2\n3\n4\n", 3).unwrap().contains("continues"));
    }

    #[test]
    fn judges_the_schedule_not_the_chunks() {
        let ms100 = Duration::from_millis(100);
        let tol = Duration::from_millis(50);
        let on_time = lines(&[5.0, 106.0, 204.0, 307.0]);
        assert_eq!(gaps_outcome(&on_time, ms100, tol).level, crate::outcome::Level::Pass);
        assert_eq!(lateness_outcome(&on_time, ms100, tol).level, crate::outcome::Level::Pass);
        let pairs = lines(&[5.0, 205.0, 205.5, 405.0]);
        assert_eq!(gaps_outcome(&pairs, ms100, tol).level, crate::outcome::Level::Fail);
        let drift = lines(&[5.0, 135.0, 265.0, 395.0]);
        assert_eq!(gaps_outcome(&drift, ms100, tol).level, crate::outcome::Level::Pass);
        assert_eq!(lateness_outcome(&drift, ms100, tol).level, crate::outcome::Level::Fail);
    }
}
