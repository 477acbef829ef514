//! `GET /events`: Server-Sent Events as a browser's EventSource reads them: the framing, the
//! ids that let a reconnecting client resume, the `retry:` hint, the timing, and keep-alive
//! comments that keep proxies from cutting a quiet stream.

use std::time::Duration;

use futures_util::future::join_all;

use super::{
    Config,
    endpoint::{Endpoint, events_problem, fetch_items},
    judge::schedule_outcome,
};
use crate::{
    client::{self, Ask, Framing, ms},
    outcome::{Level, Outcome},
};

const QUICK: Duration = Duration::from_secs(5);

pub async fn events_content_type(cfg: &Config) -> Outcome {
    let ask = Ask::get(Endpoint::Events.path(1, Duration::ZERO), QUICK).head_only();
    let got = client::send(&cfg.target, ask).await;
    let content_type = got.header("content-type").unwrap_or_default().to_owned();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let outcome = match got.status() {
        None => Outcome::fail(format!("no response: {}", got.unanswered().unwrap_or_default())),
        Some(200) => Outcome::judge(
            essence.eq_ignore_ascii_case("text/event-stream"),
            format!("content-type: {content_type}"),
            format!("content-type is {content_type:?}, expected text/event-stream"),
        ),
        Some(status) => Outcome::fail(format!("/events answered {status}, expected 200")),
    };
    outcome.with(got.evidence)
}

pub async fn events_ids_and_data(cfg: &Config) -> Outcome {
    let ask = Endpoint::Events.ask(cfg);
    match fetch_items(cfg, Endpoint::Events, ask, cfg.count).await {
        Ok(got) => Outcome::pass(format!("{} events, id: k and data: k each", got.lines().len()))
            .with(got.evidence),
        Err(outcome) => outcome,
    }
}

pub async fn events_retry_hint(cfg: &Config) -> Outcome {
    let ask = Ask::get(Endpoint::Events.path(2, Duration::ZERO), QUICK).framing(Framing::Events);
    let got = client::send(&cfg.target, ask).await;
    if let Some(error) = got.unanswered() {
        return Outcome::fail(format!("no response: {error}")).with(got.evidence);
    }
    // The hint must come before (or with) the first event, or a client that loses the first
    // connection reconnects on its own default schedule.
    let first_event = got.events.iter().position(|m| m.data.is_some());
    let retry = got.events.iter().position(|m| m.retry.is_some());
    let outcome = match (retry, first_event) {
        (Some(at), first) if first.is_none_or(|first| at <= first) => {
            let value = got.events[at].retry.clone().unwrap_or_default();
            match value.parse::<u64>() {
                Ok(_) => Outcome::pass(format!("retry: {value} before the first event")),
                Err(_) => {
                    Outcome::fail(format!("retry: {value:?} is not a number of milliseconds"))
                }
            }
        }
        (Some(_), _) => Outcome::fail("the retry: hint comes only after the first event"),
        (None, _) => Outcome::fail("no retry: hint in the stream"),
    };
    outcome.with(got.evidence)
}

pub async fn events_stream_event_by_event(cfg: &Config) -> Outcome {
    let ask = Endpoint::Events.ask(cfg);
    match fetch_items(cfg, Endpoint::Events, ask, cfg.count).await {
        Ok(got) => schedule_outcome(got.lines(), cfg.interval, cfg.tolerance).with(got.evidence),
        Err(outcome) => outcome,
    }
}

/// `Last-Event-ID: 2` continues with 3 at once; the last id gets `204` (nothing left, stop
/// reconnecting).
pub async fn events_resume_after_last_event_id(cfg: &Config) -> Outcome {
    let resume_after = cfg.count.saturating_sub(2).max(1);
    let ask = Endpoint::Events.ask(cfg).header("last-event-id", resume_after.to_string());
    let path = ask.path.clone();
    let done = Ask::get(&path, QUICK).header("last-event-id", cfg.count.to_string());
    let (resumed, done) =
        tokio::join!(client::send(&cfg.target, ask), client::send(&cfg.target, done));
    let mut outcome = match resumed.status() {
        None => Outcome::fail(format!("no response: {}", resumed.unanswered().unwrap_or_default())),
        Some(200) => match events_problem(&resumed, resume_after + 1, cfg.count) {
            Some(problem) => Outcome::fail(format!(
                "after Last-Event-ID: {resume_after}, {problem}: the stream does not resume"
            )),
            None => match schedule_outcome(resumed.lines(), cfg.interval, cfg.tolerance) {
                timing if timing.level == Level::Pass => match done.status() {
                    Some(204) => Outcome::pass(format!(
                        "resumed at {}, {}; Last-Event-ID: {} → 204",
                        resume_after + 1,
                        timing.reason,
                        cfg.count
                    )),
                    status => Outcome::fail(format!(
                        "Last-Event-ID: {} (the last id) answered {status:?}, expected 204 No \
                         Content so EventSource stops reconnecting",
                        cfg.count
                    )),
                },
                timing => Outcome::fail(format!("resumed stream: {}", timing.reason)),
            },
        },
        Some(status) => {
            Outcome::fail(format!("Last-Event-ID: {resume_after} answered {status}, expected 200"))
        }
    };
    outcome.evidence = vec![resumed.evidence, done.evidence];
    outcome
}

/// Ids a reconnecting client could not have been sent get a 400 that names the header.
pub async fn events_bad_last_event_id(cfg: &Config) -> Outcome {
    let path = Endpoint::Events.path(3, Duration::ZERO);
    let bad = ["abc", "-1", "4", "1.5", "99999999999999999999"];
    let answers =
        join_all(bad.iter().map(|id| {
            client::send(&cfg.target, Ask::get(&path, QUICK).header("last-event-id", *id))
        }))
        .await;
    let mut problems = Vec::new();
    for (id, got) in bad.iter().zip(&answers) {
        let body = String::from_utf8_lossy(&got.body);
        match got.status() {
            Some(400) if body.to_ascii_lowercase().contains("last-event-id") => {}
            Some(400) => problems.push(format!(
                "Last-Event-ID: {id} got 400 without naming Last-Event-ID: {body:?}"
            )),
            status => problems.push(format!("Last-Event-ID: {id} got {status:?}, expected 400")),
        }
    }
    let mut outcome = Outcome::judge(
        problems.is_empty(),
        format!("{} bad ids: 400 naming Last-Event-ID", bad.len()),
        problems.join("; "),
    );
    outcome.evidence = answers.into_iter().map(|got| got.evidence).collect();
    outcome
}

/// A quiet stream (two events far apart) with a short keep-alive: comments must fill the
/// silence, none of it longer than the keep-alive plus the tolerance.
pub async fn events_keepalive(cfg: &Config) -> Outcome {
    let keepalive = Duration::from_millis(200);
    let quiet = Duration::from_millis(1200);
    let path =
        format!("{}&keepalive_ms={}", Endpoint::Events.path(2, quiet), keepalive.as_millis());
    let deadline = quiet + QUICK;
    let got = client::send(&cfg.target, Ask::get(path, deadline).framing(Framing::Events)).await;
    if let Some(error) = got.unanswered() {
        return Outcome::fail(format!("no response: {error}")).with(got.evidence);
    }
    let mut arrivals: Vec<f64> = got.events.iter().map(|m| m.at_ms).collect();
    arrivals.extend(&got.comments_ms);
    arrivals.sort_by(f64::total_cmp);
    let longest = arrivals.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    let allowed = ms(keepalive + cfg.tolerance);
    let comments = got.comments_ms.len();
    let outcome = if comments == 0 {
        Outcome::fail(format!(
            "no comment line in {} ms of silence with keepalive_ms={}",
            quiet.as_millis(),
            keepalive.as_millis()
        ))
    } else {
        Outcome::judge(
            longest <= allowed,
            format!("{comments} keep-alive comments, longest silence {longest:.0} ms"),
            format!(
                "the stream was silent for {longest:.0} ms with keepalive_ms={} (allowed \
                 {allowed:.0} ms)",
                keepalive.as_millis()
            ),
        )
    };
    outcome.with(got.evidence)
}
