//! The response headers of the streams (`/stream`, `/stream.html`, `/events`): the ones that keep proxies and browsers from buffering
//! it, and the ones that would make something buffer it.

use super::{
    Config,
    endpoint::{self, Endpoint},
};
use crate::{
    client::{self, Fetched},
    outcome::Outcome,
};

/// The response heads of `endpoints`' streams, fetched concurrently; only the head is needed,
/// so each connection hangs up as soon as it arrives.
async fn heads(cfg: &Config, endpoints: &[Endpoint]) -> Vec<(Endpoint, Fetched)> {
    let fetches = endpoints.iter().map(|&endpoint| async move {
        (endpoint, client::send(&cfg.target, endpoint.ask(cfg).head_only()).await)
    });
    futures_util::future::join_all(fetches).await
}

/// Judges each endpoint's head with `judge` (which returns a problem, if any).
async fn expect(
    cfg: &Config, endpoints: &[Endpoint], judge: impl Fn(&Fetched) -> Result<String, String>,
) -> Outcome {
    let mut passes = Vec::new();
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    for (endpoint, got) in heads(cfg, endpoints).await {
        let verdict = match got.unanswered() {
            Some(error) => Err(format!("no response: {error}")),
            None => judge(&got),
        };
        match verdict {
            Ok(pass) => passes.push(pass),
            Err(problem) => problems.push(format!("{}: {problem}", endpoint.base())),
        }
        evidence.push(got.evidence);
    }
    let mut outcome = if problems.is_empty() {
        let paths: Vec<&str> = endpoints.iter().map(|e| e.base()).collect();
        passes.dedup();
        Outcome::pass(format!("{} ({})", passes.join(", "), paths.join(", ")))
    } else {
        Outcome::fail(problems.join("; "))
    };
    outcome.evidence = evidence;
    outcome
}

/// `name` must be present and satisfy `ok`; `want` describes the expected value.
async fn expect_header(
    cfg: &Config, endpoints: &[Endpoint], name: &str, want: &str, ok: fn(&str) -> bool,
) -> Outcome {
    expect(cfg, endpoints, |got| match got.header(name) {
        Some(value) if ok(value) => Ok(format!("{name}: {value}")),
        Some(value) => Err(format!("{name} is {value:?}, expected {want}")),
        None => Err(format!("no {name} header, expected {want}")),
    })
    .await
}

/// `name` must be absent; `why` says what it would break.
async fn expect_absent(cfg: &Config, name: &str, why: &str) -> Outcome {
    expect(cfg, &endpoint::ALL, |got| match got.header(name) {
        Some(value) => Err(format!("{name}: {value} is set: {why}")),
        None => Ok(format!("no {name}")),
    })
    .await
}

pub async fn content_type_is_text_plain_utf8(cfg: &Config) -> Outcome {
    expect_header(cfg, &[Endpoint::Stream], "content-type", "text/plain; charset=utf-8", |v| {
        let v = v.to_ascii_lowercase().replace(' ', "");
        v == "text/plain;charset=utf-8" || v == "text/plain;charset=\"utf-8\""
    })
    .await
}

pub async fn cache_control_no_cache(cfg: &Config) -> Outcome {
    expect_header(cfg, &endpoint::ALL, "cache-control", "a value with no-cache", |v| {
        v.split(',').any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
    })
    .await
}

pub async fn x_accel_buffering_no(cfg: &Config) -> Outcome {
    expect_header(
        cfg,
        &endpoint::ALL,
        "x-accel-buffering",
        "no (or nginx buffers the stream)",
        |v| v.trim().eq_ignore_ascii_case("no"),
    )
    .await
}

pub async fn nosniff(cfg: &Config) -> Outcome {
    expect_header(
        cfg,
        &endpoint::DOCUMENTS,
        "x-content-type-options",
        "nosniff (or browsers hold back the first 1 KiB to sniff the type)",
        |v| v.trim().eq_ignore_ascii_case("nosniff"),
    )
    .await
}

pub async fn no_content_length(cfg: &Config) -> Outcome {
    expect_absent(
        cfg,
        "content-length",
        "a stream's length is not known up front, so the body was collected before sending",
    )
    .await
}

pub async fn no_etag(cfg: &Config) -> Outcome {
    expect_absent(cfg, "etag", "an ETag is computed over the whole body, which buffers it").await
}

pub async fn no_last_modified(cfg: &Config) -> Outcome {
    expect_absent(
        cfg,
        "last-modified",
        "a live stream has no modification date; caches may revalidate and replay it",
    )
    .await
}

pub async fn chunked_on_http11(cfg: &Config) -> Outcome {
    let why = "HTTP/2 has no chunked encoding; each piece of body is a DATA frame";
    if let Some(outcome) = super::judge::http1_only(cfg, why) {
        return outcome;
    }
    expect_header(cfg, &endpoint::ALL, "transfer-encoding", "chunked on HTTP/1.1", |v| {
        v.split(',').any(|c| c.trim().eq_ignore_ascii_case("chunked"))
    })
    .await
}
