//! Compression middleware is the usual way a working stream gets buffered in a real app: a
//! compressor that only emits output when its buffer fills or the body ends. Each check sends
//! one `Accept-Encoding`, decodes whatever comes back as it arrives, and times the decoded items
//! of all three streaming endpoints.

use std::time::Duration;

use futures_util::future::join_all;

use super::{
    Config,
    endpoint::{self, Endpoint, fetch_items},
    judge::schedule_outcome,
};
use crate::{
    client::{self, Ask},
    outcome::{Level, Outcome},
};

/// Is `encoding` among those `accept` (an `Accept-Encoding` value) offers with q > 0?
pub(crate) fn offered(accept: Option<&str>, encoding: &str) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0)
            });
            (name.eq_ignore_ascii_case(encoding) || name == "*") && !refused
        })
    })
}

/// The Content-Encoding of an answer, `None` for none or `identity`.
fn encoding(got: &client::Fetched) -> Option<String> {
    got.header("content-encoding")
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| e != "identity")
}

/// All three endpoints with `accept` (or no Accept-Encoding), each judged on its own.
async fn streams_with(cfg: &Config, accept: Option<&str>) -> Outcome {
    let outcomes = join_all(endpoint::ALL.into_iter().map(|endpoint| async move {
        let mut ask = endpoint.ask(cfg);
        if let Some(accept) = accept {
            ask = ask.header("accept-encoding", accept);
        }
        judge(cfg, endpoint, ask, accept).await
    }))
    .await;
    let asked = accept.map_or("no Accept-Encoding".into(), |a| format!("Accept-Encoding: {a}"));
    let failed = outcomes.iter().find(|o| o.level == Level::Fail);
    let mut outcome = match failed {
        Some(failed) => Outcome::fail(format!("{asked}: {}", failed.reason)),
        None => {
            Outcome::pass(outcomes.iter().map(|o| o.reason.as_str()).collect::<Vec<_>>().join("; "))
        }
    };
    outcome.evidence = outcomes.into_iter().flat_map(|o| o.evidence).collect();
    outcome
}

async fn judge(cfg: &Config, endpoint: Endpoint, ask: Ask, accept: Option<&str>) -> Outcome {
    let got = match fetch_items(cfg, endpoint, ask, cfg.count).await {
        Ok(got) => got,
        Err(outcome) => return outcome,
    };
    let path = endpoint.base();
    let used = encoding(&got);
    if let Some(used) = &used
        && !offered(accept, used)
    {
        return Outcome::fail(format!(
            "{path} came back with Content-Encoding: {used}, which the request did not offer"
        ))
        .with(got.evidence);
    }
    let label = used.as_deref().unwrap_or("uncompressed");
    let timing = schedule_outcome(got.lines(), cfg.interval, cfg.tolerance);
    let reason = format!("{path} {label}: {}", timing.reason);
    let outcome = match timing.level {
        Level::Pass => Outcome::pass(reason),
        _ if used.is_some() => {
            Outcome::fail(format!("{reason} (the compressor does not flush each item)"))
        }
        _ => Outcome::fail(reason),
    };
    outcome.with(got.evidence)
}

pub async fn streams_with_gzip(cfg: &Config) -> Outcome {
    streams_with(cfg, Some("gzip")).await
}

pub async fn streams_with_br(cfg: &Config) -> Outcome {
    streams_with(cfg, Some("br")).await
}

pub async fn streams_with_zstd(cfg: &Config) -> Outcome {
    streams_with(cfg, Some("zstd")).await
}

pub async fn streams_with_deflate(cfg: &Config) -> Outcome {
    streams_with(cfg, Some("deflate")).await
}

pub async fn streams_with_identity(cfg: &Config) -> Outcome {
    streams_with(cfg, Some("identity")).await
}

pub async fn streams_without_accept_encoding(cfg: &Config) -> Outcome {
    streams_with(cfg, None).await
}

/// `/` and an error answer: compressed only with an encoding the client offered, never without
/// `Accept-Encoding` or with `identity`, and decoding to what an uncompressed request gets.
/// Not compressing at all is a warning: such a server cannot break its streams this way.
pub async fn ordinary_responses_negotiated(cfg: &Config) -> Outcome {
    const QUICK: Duration = Duration::from_secs(5);
    const ACCEPT: &str = "gzip, deflate, br, zstd";
    let mut problems = Vec::new();
    let mut uncompressed = Vec::new();
    let mut evidence = Vec::new();
    for path in ["/", "/stream?count=abc"] {
        let asks = [None, Some("identity"), Some(ACCEPT)].map(|accept| {
            let ask = Ask::get(path, QUICK);
            match accept {
                Some(accept) => ask.header("accept-encoding", accept),
                None => ask,
            }
        });
        let [plain, identity, compressed] =
            join_all(asks.map(|ask| client::send(&cfg.target, ask)))
                .await
                .try_into()
                .expect("three answers");
        for (got, asked) in
            [(&plain, "without Accept-Encoding"), (&identity, "with Accept-Encoding: identity")]
        {
            if let Some(error) = got.unanswered().or(got.error.clone()) {
                problems.push(format!("GET {path} {asked}: {error}"));
            } else if let Some(used) = encoding(got) {
                problems
                    .push(format!("GET {path} {asked} came back with Content-Encoding: {used}"));
            }
        }
        match (encoding(&compressed), compressed.error.clone()) {
            (_, Some(error)) => problems.push(format!("GET {path} with {ACCEPT}: {error}")),
            (Some(used), None) if !offered(Some(ACCEPT), &used) => problems.push(format!(
                "GET {path} came back with Content-Encoding: {used}, which was not offered"
            )),
            (Some(_), None) if compressed.body != plain.body => problems.push(format!(
                "GET {path}: the compressed answer decodes to {} bytes that differ from the \
                 uncompressed {} bytes",
                compressed.body.len(),
                plain.body.len()
            )),
            (Some(_), None) => {}
            (None, None) => uncompressed.push(path),
        }
        evidence.extend([plain.evidence, identity.evidence, compressed.evidence]);
    }
    let mut outcome = if !problems.is_empty() {
        Outcome::fail(problems.join("; "))
    } else if !uncompressed.is_empty() {
        Outcome::warn(format!(
            "{} not compressed although the client accepts {ACCEPT} (fine if the server runs \
             no compression; the examples do)",
            uncompressed.join(" and ")
        ))
    } else {
        Outcome::pass("compressed only when asked, with an offered encoding")
    };
    outcome.evidence = evidence;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(offered(Some("gzip, br"), "br"));
        assert!(offered(Some("gzip;q=0.5"), "gzip"));
        assert!(!offered(Some("gzip;q=0"), "gzip"));
        assert!(!offered(Some("identity"), "gzip"));
        assert!(offered(Some("*"), "zstd"));
        assert!(!offered(None, "gzip"));
    }
}
