//! `GET /stream.html`, the classic variant: a page that grows by one `<div>` per interval,
//! each followed by `pad` spaces (the padding once needed to make browsers render early).

use std::time::Duration;

use futures_util::future::join_all;

use super::{
    Config,
    endpoint::{DEFAULT_PAD, Endpoint, fetch_items, html_problem},
    judge::schedule_outcome,
};
use crate::{
    client::{self, Ask},
    outcome::Outcome,
};

const QUICK: Duration = Duration::from_secs(5);

pub async fn html_content_type(cfg: &Config) -> Outcome {
    let ask = Ask::get(Endpoint::Html.path(1, Duration::ZERO), QUICK).head_only();
    let got = client::send(&cfg.target, ask).await;
    let content_type = got.header("content-type").unwrap_or_default().to_owned();
    let normalized = content_type.to_ascii_lowercase().replace([' ', '"'], "");
    let outcome = match got.status() {
        None => Outcome::fail(format!("no response: {}", got.unanswered().unwrap_or_default())),
        Some(200) => Outcome::judge(
            normalized == "text/html;charset=utf-8",
            format!("content-type: {content_type}"),
            format!("content-type is {content_type:?}, expected text/html; charset=utf-8"),
        ),
        Some(status) => Outcome::fail(format!("/stream.html answered {status}, expected 200")),
    };
    outcome.with(got.evidence)
}

/// The exact body for no padding, a little, and the default.
pub async fn html_body_and_padding(cfg: &Config) -> Outcome {
    let cases = [(3, Some(0)), (2, Some(5)), (2, None)];
    let answers = join_all(cases.map(|(count, pad)| {
        let mut path = Endpoint::Html.path(count, Duration::ZERO);
        if let Some(pad) = pad {
            path.push_str(&format!("&pad={pad}"));
        }
        client::send(&cfg.target, Ask::get(path, QUICK))
    }))
    .await;
    let mut problems = Vec::new();
    for ((count, pad), got) in cases.iter().zip(&answers) {
        let request = &got.evidence.request;
        match got.status() {
            Some(200) => {
                if let Some(problem) = html_problem(&got.body, *count, pad.unwrap_or(DEFAULT_PAD)) {
                    problems.push(format!("{request}: {problem}"));
                }
            }
            status => problems.push(format!("{request}: status {status:?}, expected 200")),
        }
    }
    let mut outcome = Outcome::judge(
        problems.is_empty(),
        "pad 0, 5 and the default 1024: exact bodies",
        problems.join("; "),
    );
    outcome.evidence = answers.into_iter().map(|got| got.evidence).collect();
    outcome
}

pub async fn html_streams_div_by_div(cfg: &Config) -> Outcome {
    let ask = Endpoint::Html.ask(cfg);
    match fetch_items(cfg, Endpoint::Html, ask, cfg.count).await {
        Ok(got) => schedule_outcome(got.lines(), cfg.interval, cfg.tolerance).with(got.evidence),
        Err(outcome) => outcome,
    }
}
