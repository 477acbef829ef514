//! When the lines arrive. Line 1 is due at once; line k at t1 + (k-1)·interval, where t1 is
//! line 1's arrival. Each check looks at one way a stream goes wrong: held back at the start,
//! sent too fast, batched (as nginx's 4 KiB buffers do), drifting, or kept open after the end.

use super::{
    Config,
    judge::{fetch_stream, first_line_outcome, gaps_outcome, lateness_outcome, offsets},
};
use crate::{client::ms, outcome::Outcome};

pub async fn first_line_is_prompt(cfg: &Config) -> Outcome {
    match fetch_stream(cfg).await {
        Ok(got) => first_line_outcome(got.lines(), cfg.tolerance).with(got.evidence),
        Err(outcome) => outcome,
    }
}

pub async fn no_line_early(cfg: &Config) -> Outcome {
    let got = match fetch_stream(cfg).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let tol = ms(cfg.tolerance);
    let earliest = offsets(got.lines(), cfg.interval)
        .map(|(k, at, due)| (k, due - at))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let outcome = match earliest {
        Some((k, early)) if early > tol => Outcome::fail(format!(
            "line {k} arrived {early:.0} ms before its due time (tolerance {tol:.0} ms): \
             lines come faster than the interval, or were held back and sent together"
        )),
        Some((k, early)) => {
            Outcome::pass(format!("earliest line {early:.1} ms before due (line {k})"))
        }
        None => Outcome::fail("no lines"),
    };
    outcome.with(got.evidence)
}

pub async fn gaps_hold_interval(cfg: &Config) -> Outcome {
    match fetch_stream(cfg).await {
        Ok(got) => gaps_outcome(got.lines(), cfg.interval, cfg.tolerance).with(got.evidence),
        Err(outcome) => outcome,
    }
}

pub async fn no_accumulated_drift(cfg: &Config) -> Outcome {
    match fetch_stream(cfg).await {
        Ok(got) => lateness_outcome(got.lines(), cfg.interval, cfg.tolerance).with(got.evidence),
        Err(outcome) => outcome,
    }
}

pub async fn ends_after_last_line(cfg: &Config) -> Outcome {
    let got = match fetch_stream(cfg).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let last = got.lines().last().map_or(0.0, |l| l.at_ms);
    let tol = ms(cfg.tolerance);
    let outcome = match got.evidence.end_ms {
        Some(end) => Outcome::judge(
            end - last <= tol,
            format!("body ended {:.1} ms after the last line", end - last),
            format!(
                "body ended {:.0} ms after the last line, expected within {tol:.0} ms",
                end - last
            ),
        ),
        None => Outcome::fail("body did not end"),
    };
    outcome.with(got.evidence)
}
