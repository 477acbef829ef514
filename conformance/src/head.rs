//! `HEAD /stream`: the same status and headers as GET, no body, answered at once. A server that
//! runs the generator for HEAD (and throws the lines away) answers only when the stream would
//! have ended.

use crate::{
    Config, Outcome,
    probe::{self, Fetched},
};

/// HEAD over a raw connection, so any body bytes the server sends anyway are seen.
async fn head(cfg: &Config) -> Result<Fetched, Outcome> {
    let request = format!(
        "HEAD {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        cfg.target(&cfg.stream_path()),
        cfg.host_port()
    );
    let got = probe::raw(cfg, &request, cfg.deadline()).await;
    match got.unanswered() {
        Some(error) => {
            Err(Outcome::fail(format!("no response to HEAD: {error}")).with(got.evidence))
        }
        None => Ok(got),
    }
}

/// The headers a stream's GET carries that HEAD must carry too.
const SAME_AS_GET: [&str; 4] = [
    "content-type",
    "cache-control",
    "x-accel-buffering",
    "x-content-type-options",
];

pub async fn head_matches_get_headers(cfg: &Config) -> Outcome {
    let got = match head(cfg).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let get = probe::fetch(
        cfg,
        reqwest::Method::GET,
        &cfg.stream_path(),
        cfg.deadline(),
        true,
    )
    .await;
    let mut problems = Vec::new();
    if got.status() != get.status() {
        problems.push(format!(
            "status {:?} (GET: {:?})",
            got.status(),
            get.status()
        ));
    }
    for name in SAME_AS_GET {
        if got.header(name) != get.header(name) {
            problems.push(format!(
                "{name} {:?} (GET: {:?})",
                got.header(name),
                get.header(name)
            ));
        }
    }
    for name in ["content-length", "etag", "last-modified"] {
        if let Some(value) = got.header(name) {
            problems.push(format!("{name}: {value} (a stream has none)"));
        }
    }
    let outcome = if problems.is_empty() {
        Outcome::pass(format!(
            "status and {} headers as for GET",
            SAME_AS_GET.len()
        ))
    } else {
        Outcome::fail(format!("HEAD differs from GET: {}", problems.join("; ")))
    };
    outcome.with(got.evidence).with(get.evidence)
}

pub async fn head_has_no_body(cfg: &Config) -> Outcome {
    let got = match head(cfg).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let outcome = Outcome::judge(
        got.body.is_empty(),
        "no body",
        format!("HEAD response carries {} body bytes", got.body.len()),
    );
    outcome.with(got.evidence)
}

pub async fn head_is_prompt(cfg: &Config) -> Outcome {
    let got = match head(cfg).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let at = got.evidence.head_ms.unwrap_or(f64::INFINITY);
    let tol = probe::ms(cfg.tolerance);
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
