//! An HTTP/1.0 client cannot decode chunked encoding: it must get the same lines, with the same
//! timing, delimited by the server closing the connection.

use super::{
    Config, deadline_for,
    endpoint::Endpoint,
    failure::{AFTER, COUNT, failing_path},
    judge::{content_problem, expect_lines, first_line_outcome, gaps_outcome, http1_only},
};
use crate::{
    client::{self, Decoder, Fetched},
    outcome::{Level, Outcome},
};

const NOT_OVER_H2: &str =
    "an HTTP/1.0 request has no HTTP/2 form, and HTTP/2 has no close-delimited body";

async fn get_http10(cfg: &Config) -> Fetched {
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\n\r\n",
        cfg.target.path(&cfg.stream_path()),
        cfg.target.host_port()
    );
    client::raw(&cfg.target, &request, cfg.deadline()).await
}

/// Compression middleware may switch chunking back on after the handler turned it off.
pub async fn http10_compressed_close_delimited(cfg: &Config) -> Outcome {
    if let Some(outcome) = http1_only(cfg, NOT_OVER_H2) {
        return outcome;
    }
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\r\n",
        cfg.target.path(&cfg.stream_path()),
        cfg.target.host_port()
    );
    let got = client::raw(&cfg.target, &request, cfg.deadline()).await;
    if let Some(error) = got.unanswered() {
        return Outcome::fail(format!("no response: {error}")).with(got.evidence);
    }
    let encoding = got.header("content-encoding").unwrap_or("identity").to_owned();
    if let Some(te) = got.header("transfer-encoding") {
        return Outcome::fail(format!(
            "answered HTTP/1.0 with Content-Encoding {encoding} and Transfer-Encoding: {te}, \
             which HTTP/1.0 clients cannot decode"
        ))
        .with(got.evidence);
    }
    let decoded = Decoder::new(Some(&encoding)).and_then(|mut decoder| {
        let mut body = decoder.push(&got.body)?;
        body.extend(decoder.finish()?);
        Ok(body)
    });
    let outcome = match decoded {
        Err(error) => Outcome::fail(format!("Content-Encoding {encoding}: {error}")),
        Ok(body) => match crate::checks::judge::content_problem(&body, cfg.count) {
            Some(problem) => Outcome::fail(format!("Content-Encoding {encoding}: {problem}")),
            None if got.evidence.end_ms.is_none() => {
                Outcome::fail("connection not closed after the body")
            }
            None => Outcome::pass(format!(
                "Content-Encoding {encoding}, ended by closing the connection"
            )),
        },
    };
    outcome.with(got.evidence)
}

pub async fn http10_close_delimited(cfg: &Config) -> Outcome {
    if let Some(outcome) = http1_only(cfg, NOT_OVER_H2) {
        return outcome;
    }
    let got = get_http10(cfg).await;
    if let Some(error) = got.unanswered() {
        return Outcome::fail(format!("no response: {error}")).with(got.evidence);
    }
    if let Some(te) = got.header("transfer-encoding") {
        return Outcome::fail(format!(
            "answered HTTP/1.0 with Transfer-Encoding: {te}, which HTTP/1.0 clients cannot decode"
        ))
        .with(got.evidence);
    }
    if let Some(len) = got.header("content-length") {
        return Outcome::fail(format!(
            "Content-Length: {len} on a stream: the body was collected first"
        ))
        .with(got.evidence);
    }
    if got.evidence.end_ms.is_none() {
        let error = got.error.clone().unwrap_or_default();
        return Outcome::fail(format!("connection not closed after the body: {error}"))
            .with(got.evidence);
    }
    match expect_lines(got, cfg.count) {
        Ok(got) => Outcome::pass("same lines, ended by closing the connection").with(got.evidence),
        Err(outcome) => outcome,
    }
}

pub async fn http10_streams(cfg: &Config) -> Outcome {
    if let Some(outcome) = http1_only(cfg, NOT_OVER_H2) {
        return outcome;
    }
    let got = match expect_lines(get_http10(cfg).await, cfg.count) {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let first = first_line_outcome(got.lines(), cfg.tolerance);
    let gaps = gaps_outcome(got.lines(), cfg.interval, cfg.tolerance);
    let outcome = match (first.level, gaps.level) {
        (Level::Pass, Level::Pass) => Outcome::pass(format!("{}, {}", first.reason, gaps.reason)),
        (_, Level::Fail) | (Level::Pass, _) => gaps,
        _ => first,
    };
    outcome.with(got.evidence)
}

/// A stream whose generator fails, asked for over HTTP/1.0: items 1..N, then the connection
/// closes. That is all a close-delimited body can say: an HTTP/1.0 client cannot tell it from
/// the end of the stream (CONTRACT.md), but it must not wait for more.
pub async fn http10_failed_stream_closes(cfg: &Config) -> Outcome {
    if let Some(outcome) = http1_only(cfg, NOT_OVER_H2) {
        return outcome;
    }
    let path = failing_path(Endpoint::Stream, cfg);
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\n\r\n",
        cfg.target.path(&path),
        cfg.target.host_port()
    );
    let deadline = deadline_for(COUNT, cfg.interval, cfg.tolerance);
    let got = client::raw(&cfg.target, &request, deadline).await;
    let outcome = match (got.unanswered(), got.status()) {
        (Some(error), _) => Outcome::fail(format!("no response: {error}")),
        (None, Some(200)) => match content_problem(&got.body, AFTER) {
            Some(problem) => {
                Outcome::fail(format!("{path}: {problem}, expected items 1–{AFTER} and the close"))
            }
            // Over TLS a close without close_notify is how a truncation shows.
            None if got.error.as_deref().is_some_and(|e| e.contains("close_notify")) => {
                Outcome::pass(format!(
                    "{path}: items 1–{AFTER}, then the connection closed without TLS \
                     close_notify: a client that checks for it can tell the cut"
                ))
            }
            None if got.evidence.end_ms.is_none() => Outcome::fail(format!(
                "{path}: items 1–{AFTER}, then the connection stayed open after the failure: {}",
                got.error.clone().unwrap_or_default()
            )),
            None => Outcome::pass(format!(
                "{path}: items 1–{AFTER}, then the connection closed, as at the end of a \
                 stream: an HTTP/1.0 client cannot tell the failure from the end"
            )),
        },
        (None, status) => Outcome::fail(format!("{path}: status {status:?}, expected 200")),
    };
    outcome.with(got.evidence)
}
