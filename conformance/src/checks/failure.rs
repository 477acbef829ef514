//! A stream whose generator fails midway (`fail_after=N`) must not look complete. Items 1..N
//! arrive; when item N+1 is due the response is cut the only ways a client can tell: HTTP/1.1
//! closes the connection without the last chunk, HTTP/2 resets the stream (RST_STREAM with an
//! error code), and a compressed body stops without its encoder's end. A clean end (the last
//! chunk, END_STREAM, a gzip trailer) would make the half body read as a whole one.

use std::time::Duration;

use futures_util::future::join_all;

use super::{
    Config, deadline_for,
    endpoint::{Endpoint, events_problem, html_problem},
    judge::content_problem,
};
use crate::{
    client::{self, Ask, Fetched, eventsource},
    outcome::Outcome,
};

/// The failing stream: `COUNT` items, failing after `AFTER`.
pub(crate) const COUNT: u32 = 6;
pub(crate) const AFTER: u32 = 3;
/// The encodings a compressor may hide the failure in.
const ENCODINGS: [&str; 4] = ["gzip", "br", "zstd", "deflate"];

/// `endpoint`'s failing stream with the configured interval.
pub(crate) fn failing_path(endpoint: Endpoint, cfg: &Config) -> String {
    format!("{}&fail_after={AFTER}", endpoint.path(COUNT, cfg.interval))
}

fn ask(endpoint: Endpoint, cfg: &Config) -> Ask {
    let deadline = deadline_for(COUNT, cfg.interval, cfg.tolerance);
    Ask::get(failing_path(endpoint, cfg), deadline).framing(endpoint.framing())
}

/// How the answer to a failing stream ended, judged: `Ok` with how it was cut, or the failure.
pub(crate) fn cut(got: &Fetched, endpoint: Endpoint, what: &str) -> Result<String, String> {
    let path = endpoint.base();
    if let Some(error) = got.unanswered() {
        return Err(format!("{path}{what}: no response: {error}"));
    }
    match got.status() {
        Some(200) => {}
        Some(400) => {
            let body = String::from_utf8_lossy(&got.body);
            return Err(format!(
                "{path}{what}: 400 for fail_after={AFTER} ({}): the contract's failing stream is \
                 not served",
                body.trim()
            ));
        }
        status => return Err(format!("{path}{what}: status {status:?}, expected 200")),
    }
    if let Some(problem) = items_problem(got, endpoint) {
        return Err(format!("{path}{what}: {problem}"));
    }
    match &got.error {
        None => Err(format!(
            "{path}{what}: items 1–{AFTER}, then the body ended cleanly (HTTP/1.1: the last \
             chunk; HTTP/2: END_STREAM; compressed: the encoder's end): a client takes the \
             half stream for a whole one. End it with an error instead: propagate the \
             generator's error into the response body"
        )),
        Some(error) if error.contains("did not end within") => Err(format!(
            "{path}{what}: items 1–{AFTER}, then the response neither ended nor broke off: \
             {error}"
        )),
        Some(error) => Ok(format!("{path}{what}: items 1–{AFTER}, then cut ({error})")),
    }
}

/// The decoded items must be exactly 1..=AFTER (with the page's head for `/stream.html`).
fn items_problem(got: &Fetched, endpoint: Endpoint) -> Option<String> {
    let problem = match endpoint {
        Endpoint::Stream => content_problem(&got.body, AFTER),
        Endpoint::Html => {
            // The page's end never comes; compare against a whole page of AFTER items.
            let mut body = got.body.clone();
            body.extend_from_slice(b"</body></html>");
            html_problem(&body, AFTER, super::endpoint::DEFAULT_PAD)
        }
        Endpoint::Events => events_problem(got, 1, AFTER),
    };
    problem.map(|problem| format!("{problem}, expected items 1–{AFTER} and then the cut"))
}

/// `/stream` and `/stream.html` with `fail_after`, uncompressed, over the target's transport.
pub async fn failed_stream_is_cut(cfg: &Config) -> Outcome {
    let endpoints = [Endpoint::Stream, Endpoint::Html];
    let answers =
        join_all(endpoints.map(|endpoint| client::send(&cfg.target, ask(endpoint, cfg)))).await;
    let verdicts: Vec<_> =
        endpoints.iter().zip(&answers).map(|(&endpoint, got)| cut(got, endpoint, "")).collect();
    let mut outcome = judge_all(verdicts);
    outcome.evidence = answers.into_iter().map(|got| got.evidence).collect();
    outcome
}

/// `/stream` with `fail_after` and each encoding the server offers: a compressor that writes
/// its end when its source fails makes the cut body decode as a complete one.
pub async fn failed_stream_is_cut_compressed(cfg: &Config) -> Outcome {
    let answers = join_all(ENCODINGS.map(|encoding| {
        client::send(&cfg.target, ask(Endpoint::Stream, cfg).header("accept-encoding", encoding))
    }))
    .await;
    let mut verdicts = Vec::new();
    let mut uncompressed = Vec::new();
    for (encoding, got) in ENCODINGS.iter().zip(&answers) {
        let used = got.header("content-encoding").map(|e| e.trim().to_ascii_lowercase());
        match used.as_deref() {
            None | Some("identity") if got.status() == Some(200) => uncompressed.push(*encoding),
            _ => verdicts.push(cut(got, Endpoint::Stream, &format!(" with {encoding}"))),
        }
    }
    let mut outcome = if verdicts.is_empty() {
        Outcome::pass(format!(
            "no encoding offered ({}) was used: no compressor to hide the cut",
            uncompressed.join(", ")
        ))
    } else {
        let mut outcome = judge_all(verdicts);
        if !uncompressed.is_empty() {
            outcome.reason.push_str(&format!("; not compressed: {}", uncompressed.join(", ")));
        }
        outcome
    };
    outcome.evidence = answers.into_iter().map(|got| got.evidence).collect();
    outcome
}

/// `/events` with `fail_after`, followed as EventSource follows it: the first connection is
/// cut after event N, the client reconnects with `Last-Event-ID: N`, and gets the rest, each
/// id once, then a 204.
pub async fn events_failure_resumed(cfg: &Config) -> Outcome {
    let limit = deadline_for(COUNT, cfg.interval, cfg.tolerance) * 2 + Duration::from_secs(5);
    let path = failing_path(Endpoint::Events, cfg);
    let session = eventsource::follow(&cfg.target, &path, &eventsource::Options::new(limit)).await;
    let ids: Vec<&str> = session.events.iter().map(|e| e.id.as_str()).collect();
    let want: Vec<String> = (1..=COUNT).map(|k| k.to_string()).collect();
    let connections: Vec<String> = session
        .connections
        .iter()
        .map(|c| {
            let sent = c.last_event_id.as_deref().unwrap_or("none");
            format!("[Last-Event-ID {sent}: {:?}, {} events, {}]", c.status, c.events, c.end)
        })
        .collect();
    let seen = format!("ids {ids:?} over {}", connections.join(" "));
    if ids != want {
        return Outcome::fail(format!(
            "{path}: expected ids 1–{COUNT} once each, across the cut and the resumption; \
             got {seen}"
        ));
    }
    let first = &session.connections[0];
    if first.end == "ended" {
        return Outcome::fail(format!(
            "{path}: after event {AFTER} the event stream ended cleanly instead of being cut; \
             EventSource reconnects either way, but other clients (fetch() readers, curl) take \
             it for the whole stream: {seen}"
        ));
    }
    Outcome::pass(format!("cut after event {AFTER}, resumed: {seen}"))
}

/// Pass with every reason joined, or fail with the failures'.
fn judge_all(verdicts: Vec<Result<String, String>>) -> Outcome {
    let failures: Vec<&String> = verdicts.iter().filter_map(|v| v.as_ref().err()).collect();
    if failures.is_empty() {
        let passes: Vec<&String> = verdicts.iter().filter_map(|v| v.as_ref().ok()).collect();
        Outcome::pass(passes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "))
    } else {
        Outcome::fail(failures.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "))
    }
}
