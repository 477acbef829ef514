//! The response headers of a stream: the ones that keep proxies and browsers from buffering
//! it, and the ones that would make something buffer it.

use reqwest::Method;

use crate::{
    Config, Outcome,
    probe::{self, Fetched},
};

/// Only the head is needed: hang up as soon as it arrives.
async fn stream_head(cfg: &Config) -> Result<Fetched, Outcome> {
    let got = probe::fetch(cfg, Method::GET, &cfg.stream_path(), cfg.deadline(), true).await;
    match got.unanswered() {
        Some(error) => Err(Outcome::fail(format!("no response: {error}")).with(got.evidence)),
        None => Ok(got),
    }
}

/// `name` must be present and satisfy `ok`; `want` describes the expected value.
async fn expect_header(cfg: &Config, name: &str, want: &str, ok: fn(&str) -> bool) -> Outcome {
    let got = match stream_head(cfg).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let outcome = match got.header(name) {
        Some(value) if ok(value) => Outcome::pass(format!("{name}: {value}")),
        Some(value) => Outcome::fail(format!("{name} is {value:?}, expected {want}")),
        None => Outcome::fail(format!("no {name} header, expected {want}")),
    };
    outcome.with(got.evidence)
}

/// `name` must be absent; `why` says what it would break.
async fn expect_absent(cfg: &Config, name: &str, why: &str) -> Outcome {
    let got = match stream_head(cfg).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let outcome = match got.header(name) {
        Some(value) => Outcome::fail(format!("{name}: {value} is set: {why}")),
        None => Outcome::pass(format!("no {name}")),
    };
    outcome.with(got.evidence)
}

pub async fn content_type_is_text_plain_utf8(cfg: &Config) -> Outcome {
    expect_header(cfg, "content-type", "text/plain; charset=utf-8", |v| {
        let v = v.to_ascii_lowercase().replace(' ', "");
        v == "text/plain;charset=utf-8" || v == "text/plain;charset=\"utf-8\""
    })
    .await
}

pub async fn cache_control_no_cache(cfg: &Config) -> Outcome {
    expect_header(cfg, "cache-control", "a value with no-cache", |v| {
        v.split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
    })
    .await
}

pub async fn x_accel_buffering_no(cfg: &Config) -> Outcome {
    expect_header(
        cfg,
        "x-accel-buffering",
        "no (or nginx buffers the stream)",
        |v| v.trim().eq_ignore_ascii_case("no"),
    )
    .await
}

pub async fn nosniff(cfg: &Config) -> Outcome {
    expect_header(
        cfg,
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
    expect_absent(
        cfg,
        "etag",
        "an ETag is computed over the whole body, which buffers it",
    )
    .await
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
    expect_header(cfg, "transfer-encoding", "chunked on HTTP/1.1", |v| {
        v.split(',')
            .any(|c| c.trim().eq_ignore_ascii_case("chunked"))
    })
    .await
}
