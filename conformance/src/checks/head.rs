//! `HEAD /stream` and `HEAD /stream.html`: the same status and headers as GET, no body, answered at once. A server that
//! runs the generator for HEAD (and throws the lines away) answers only when the stream would
//! have ended.

use reqwest::Method;

use super::{
    Config,
    endpoint::{self, Endpoint},
};
use crate::{
    client::{self, Fetched},
    outcome::{Level, Outcome},
};

/// HEAD over a raw connection, so any body bytes the server sends anyway are seen; over
/// HTTP/2, a HEAD read to its end (DATA frames after the head would be body bytes).
async fn head(cfg: &Config, endpoint: Endpoint) -> Result<Fetched, Outcome> {
    if cfg.target.speaks_h2() {
        let mut ask = endpoint.ask(cfg);
        ask.method = Method::HEAD;
        let got = client::send(&cfg.target, ask).await;
        return match got.unanswered() {
            Some(error) => {
                Err(Outcome::fail(format!("no response to HEAD: {error}")).with(got.evidence))
            }
            None => Ok(got),
        };
    }
    let request = format!(
        "HEAD {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        cfg.target.path(&endpoint.path(cfg.count, cfg.interval)),
        cfg.target.host_port()
    );
    let got = client::raw(&cfg.target, &request, cfg.deadline()).await;
    match got.unanswered() {
        Some(error) => {
            Err(Outcome::fail(format!("no response to HEAD: {error}")).with(got.evidence))
        }
        None => Ok(got),
    }
}

/// Runs `check` for `/stream` and `/stream.html`: the first failure, or both passes.
async fn for_documents<'a, F>(cfg: &'a Config, check: impl Fn(&'a Config, Endpoint) -> F) -> Outcome
where
    F: std::future::Future<Output = Outcome>,
{
    let outcomes =
        futures_util::future::join_all(endpoint::DOCUMENTS.map(|endpoint| check(cfg, endpoint)))
            .await;
    let mut evidence = Vec::new();
    let mut reasons = Vec::new();
    let mut failed = None;
    for (endpoint, outcome) in endpoint::DOCUMENTS.iter().zip(outcomes) {
        let reason = format!("{}: {}", endpoint.base(), outcome.reason);
        if outcome.level == Level::Fail && failed.is_none() {
            failed = Some(reason.clone());
        }
        reasons.push(reason);
        evidence.extend(outcome.evidence);
    }
    let mut outcome = match failed {
        Some(reason) => Outcome::fail(reason),
        None => Outcome::pass(reasons.join("; ")),
    };
    outcome.evidence = evidence;
    outcome
}

/// The headers a stream's GET carries that HEAD must carry too.
const SAME_AS_GET: [&str; 4] =
    ["content-type", "cache-control", "x-accel-buffering", "x-content-type-options"];

pub async fn head_matches_get_headers(cfg: &Config) -> Outcome {
    for_documents(cfg, head_matches_get).await
}

async fn head_matches_get(cfg: &Config, endpoint: Endpoint) -> Outcome {
    let got = match head(cfg, endpoint).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let get = client::send(&cfg.target, endpoint.ask(cfg).head_only()).await;
    let mut problems = Vec::new();
    if got.status() != get.status() {
        problems.push(format!("status {:?} (GET: {:?})", got.status(), get.status()));
    }
    for name in SAME_AS_GET {
        if got.header(name) != get.header(name) {
            problems.push(format!("{name} {:?} (GET: {:?})", got.header(name), get.header(name)));
        }
    }
    for name in ["content-length", "etag", "last-modified"] {
        if let Some(value) = got.header(name) {
            problems.push(format!("{name}: {value} (a stream has none)"));
        }
    }
    let outcome = if problems.is_empty() {
        Outcome::pass(format!("status and {} headers as for GET", SAME_AS_GET.len()))
    } else {
        Outcome::fail(format!("HEAD differs from GET: {}", problems.join("; ")))
    };
    outcome.with(got.evidence).with(get.evidence)
}

pub async fn head_has_no_body(cfg: &Config) -> Outcome {
    for_documents(cfg, has_no_body).await
}

async fn has_no_body(cfg: &Config, endpoint: Endpoint) -> Outcome {
    let got = match head(cfg, endpoint).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    // Over h2 a client refuses DATA frames on a HEAD response (a stream error), so the body
    // may show as the error rather than as bytes.
    let outcome = match &got.error {
        Some(error) => Outcome::fail(format!(
            "HEAD response carries {} body bytes, then failed: {error}",
            got.body.len()
        )),
        None => Outcome::judge(
            got.body.is_empty(),
            "no body",
            format!("HEAD response carries {} body bytes", got.body.len()),
        ),
    };
    outcome.with(got.evidence)
}

pub async fn head_is_prompt(cfg: &Config) -> Outcome {
    for_documents(cfg, is_prompt).await
}

async fn is_prompt(cfg: &Config, endpoint: Endpoint) -> Outcome {
    let got = match head(cfg, endpoint).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let at = got.evidence.head_ms.unwrap_or(f64::INFINITY);
    let tol = client::ms(cfg.tolerance);
    Outcome::judge(
        at <= tol,
        format!("answered after {at:.1} ms"),
        format!(
            "HEAD answered after {at:.0} ms, expected within {tol:.0} ms: \
             the generator seems to run for HEAD"
        ),
    )
    .with(got.evidence)
}
