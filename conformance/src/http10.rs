//! An HTTP/1.0 client cannot decode chunked encoding: it must get the same lines, with the same
//! timing, delimited by the server closing the connection.

use crate::{
    Config, Level, Outcome,
    probe::{self, Fetched},
    timing::{expect_lines, first_line_outcome, gaps_outcome},
};

async fn get_http10(cfg: &Config) -> Fetched {
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\n\r\n",
        cfg.target(&cfg.stream_path()),
        cfg.host_port()
    );
    probe::raw(cfg, &request, cfg.deadline()).await
}

pub async fn http10_close_delimited(cfg: &Config) -> Outcome {
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
