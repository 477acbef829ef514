//! Parameters a stream must refuse: each gets `400`, `text/plain`, and a one-line message that
//! names the parameter and what was received, and the server keeps streaming for everyone else.

use std::time::Duration;

use reqwest::Method;

use futures_util::future::join_all;

use super::{Config, judge};
use crate::{
    client,
    outcome::{Evidence, Outcome},
};

/// One bad query: the parameter its message must name, the value it must quote and the upper
/// bound of the allowed range it must give, where these apply.
struct Case {
    path: &'static str,
    query: &'static str,
    parameter: &'static str,
    received: Option<&'static str>,
    bound: Option<&'static str>,
}

/// A value out of `count`'s range 1..=1000000.
const fn count(query: &'static str, received: Option<&'static str>) -> Case {
    Case { path: "/stream", query, parameter: "count", received, bound: Some("1000000") }
}

/// A value out of `interval_ms`'s range 0..=60000.
const fn interval(query: &'static str, received: &'static str) -> Case {
    Case {
        path: "/stream",
        query,
        parameter: "interval_ms",
        received: Some(received),
        bound: Some("60000"),
    }
}

/// A value out of `/stream.html`'s `pad` range 0..=65536.
const fn pad(query: &'static str, received: Option<&'static str>) -> Case {
    Case { path: "/stream.html", query, parameter: "pad", received, bound: Some("65536") }
}

/// A value out of `/events`' `keepalive_ms` range 100..=600000.
const fn keepalive(query: &'static str, received: &'static str) -> Case {
    Case {
        path: "/events",
        query,
        parameter: "keepalive_ms",
        received: Some(received),
        bound: Some("600000"),
    }
}

/// A parameter the endpoint at `path` does not have.
const fn unknown_on(path: &'static str, query: &'static str, parameter: &'static str) -> Case {
    Case { path, query, parameter, received: None, bound: None }
}

/// A parameter `/stream` does not have.
const fn unknown(query: &'static str, parameter: &'static str) -> Case {
    Case { path: "/stream", query, parameter, received: None, bound: None }
}

const CASES: &[Case] = &[
    count("count=abc", Some("abc")),
    count("count=-1", Some("-1")),
    count("count=0", Some("0")),
    count("count=1000001", Some("1000001")),
    count("count=1.5", Some("1.5")),
    count("count=", None),
    count("count=18446744073709551616", Some("18446744073709551616")),
    count("count=2&count=3", None),
    interval("interval_ms=-5", "-5"),
    interval("interval_ms=60001", "60001"),
    interval("interval_ms=1e3", "1e3"),
    interval("interval_ms=fast", "fast"),
    // The typo that must not silently give the default ten-second stream.
    unknown("interval=50", "interval"),
    unknown("foo=bar", "foo"),
    // Each endpoint has its own parameters; another endpoint's are unknown.
    unknown("pad=10", "pad"),
    pad("pad=-1", Some("-1")),
    pad("pad=65537", Some("65537")),
    pad("pad=wide", Some("wide")),
    pad("pad=1&pad=2", None),
    unknown_on("/stream.html", "keepalive_ms=500", "keepalive_ms"),
    keepalive("keepalive_ms=0", "0"),
    keepalive("keepalive_ms=600001", "600001"),
    keepalive("keepalive_ms=soon", "soon"),
    unknown_on("/events", "pad=10", "pad"),
    Case {
        path: "/events",
        query: "count=0",
        parameter: "count",
        received: Some("0"),
        bound: Some("1000000"),
    },
];

/// Each case's answer, fetched concurrently; a hang is cut off after five seconds.
async fn answers(cfg: &Config) -> Vec<(&'static Case, client::Fetched)> {
    let fetches = CASES.iter().map(|case| async move {
        let path = format!("{}?{}", case.path, case.query);
        (case, client::fetch(&cfg.target, Method::GET, &path, Duration::from_secs(5), false).await)
    });
    futures_util::future::join_all(fetches).await
}

fn summary(answers: &[(&'static Case, client::Fetched)]) -> Evidence {
    let notes = answers
        .iter()
        .map(|(case, got)| {
            let answer = match got.unanswered() {
                Some(error) => error,
                None => format!(
                    "{} {:?} {:?}",
                    got.status().unwrap_or_default(),
                    got.header("content-type").unwrap_or(""),
                    String::from_utf8_lossy(&got.body)
                ),
            };
            format!("{}?{} -> {answer}", case.path, case.query)
        })
        .collect();
    Evidence {
        request: format!("GET /stream?…, /stream.html?…, /events?… ({} bad queries)", CASES.len()),
        notes,
        ..Evidence::default()
    }
}

pub async fn bad_input_rejected(cfg: &Config) -> Outcome {
    let answers = answers(cfg).await;
    let wrong: Vec<String> = answers
        .iter()
        .filter(|(_, got)| got.status() != Some(400))
        .map(|(case, got)| match got.status() {
            Some(status) => format!("{}?{} got {status}", case.path, case.query),
            None => format!("{}?{} got no answer", case.path, case.query),
        })
        .collect();
    Outcome::judge(
        wrong.is_empty(),
        format!("all {} bad queries got 400", CASES.len()),
        format!("expected 400: {}", wrong.join(", ")),
    )
    .with(summary(&answers))
}

/// What is wrong with a 400's message for `case`, if anything.
fn message_problem(case: &Case, got: &client::Fetched) -> Option<String> {
    let content_type = got.header("content-type").unwrap_or("").to_ascii_lowercase();
    if !content_type.starts_with("text/plain") {
        return Some(format!("content-type {content_type:?}, expected text/plain"));
    }
    let body = String::from_utf8_lossy(&got.body);
    let message = body.trim_end();
    if message.is_empty() {
        return Some("empty message".into());
    }
    if message.contains('\n') {
        return Some("message is more than one line".into());
    }
    if !message.contains(case.parameter) {
        return Some(format!("message {message:?} does not name {:?}", case.parameter));
    }
    if let Some(value) = case.received.filter(|v| !message.contains(v)) {
        return Some(format!("message {message:?} does not quote the received {value:?}"));
    }
    case.bound
        .filter(|b| !message.contains(b))
        .map(|bound| format!("message {message:?} does not give the allowed range (up to {bound})"))
}

pub async fn bad_input_explained(cfg: &Config) -> Outcome {
    let answers = answers(cfg).await;
    let problems: Vec<String> = answers
        .iter()
        .filter(|(_, got)| got.status() == Some(400))
        .filter_map(|(case, got)| {
            message_problem(case, got).map(|p| format!("{}?{}: {p}", case.path, case.query))
        })
        .collect();
    let rejected = answers.iter().filter(|(_, got)| got.status() == Some(400)).count();
    let outcome = if rejected == 0 {
        Outcome::fail("no bad query got a 400, so there is no message to judge")
    } else {
        Outcome::judge(
            problems.is_empty(),
            format!("{rejected} messages name the parameter, the value received and the range"),
            problems.join("; "),
        )
    };
    outcome.with(summary(&answers))
}

/// After the whole table, a normal stream still arrives whole and on time.
pub async fn streams_after_bad_input(cfg: &Config) -> Outcome {
    let answers = answers(cfg).await;
    let got = match judge::fetch_stream(cfg).await {
        Ok(got) => got,
        Err(outcome) => {
            return Outcome::fail(format!("after the bad queries: {}", outcome.reason))
                .with(summary(&answers));
        }
    };
    let gaps = judge::gaps_outcome(got.lines(), cfg.interval, cfg.tolerance);
    let outcome = Outcome::judge(
        gaps.level != crate::outcome::Level::Fail,
        format!("still streams after {} bad queries ({})", CASES.len(), gaps.reason),
        format!("after the bad queries: {}", gaps.reason),
    );
    outcome.with(got.evidence).with(summary(&answers))
}

/// A malformed request, sent as raw bytes.
struct RawCase {
    name: &'static str,
    request: Vec<u8>,
}

const HTTP3_CASE: &str = "HTTP/3.0 in the request line";

/// How long a server may keep a request whose headers never finish (CONTRACT.md).
pub(crate) const HEADER_BOUND: Duration = Duration::from_secs(40);

fn raw_cases(cfg: &Config) -> Vec<RawCase> {
    let host = cfg.target.host_port();
    let target = |path: &str| cfg.target.path(path);
    let get = |path: &str, extra: &str| {
        format!("GET {} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n", target(path))
            .into_bytes()
    };
    let mut invalid_utf8 = format!("GET {}?count=", target("/stream")).into_bytes();
    invalid_utf8.extend_from_slice(b"\xff\xfe HTTP/1.1\r\nHost: ");
    invalid_utf8.extend_from_slice(format!("{host}\r\nConnection: close\r\n\r\n").as_bytes());
    let many_headers: String = (0..10_000).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        RawCase { name: "garbage request line", request: b"HELLO\r\n\r\n".to_vec() },
        RawCase { name: "invalid UTF-8 in the query", request: invalid_utf8 },
        RawCase {
            name: "64 KiB query string",
            request: get(&format!("/stream?count=1&x={}", "A".repeat(64 * 1024)), ""),
        },
        RawCase { name: "10 000 headers", request: get("/stream?count=1", &many_headers) },
        // Beyond every framework's head limit (actix's is 128 KiB, hyper's about 400 KiB).
        RawCase {
            name: "a 1 MiB header value",
            request: get("/stream?count=1", &format!("X-Big: {}\r\n", "b".repeat(1024 * 1024))),
        },
        RawCase {
            name: "HTTP/1.1 without Host",
            request: format!(
                "GET {} HTTP/1.1\r\nConnection: close\r\n\r\n",
                target("/stream?count=1&interval_ms=0")
            )
            .into_bytes(),
        },
        RawCase {
            name: "unknown method BREW",
            request: format!("BREW {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", target("/stream"))
                .into_bytes(),
        },
        RawCase {
            name: HTTP3_CASE,
            request: format!("GET {} HTTP/3.0\r\nHost: {host}\r\n\r\n", target("/stream")).into_bytes(),
        },
        RawCase {
            name: "NUL in the path",
            request: format!("GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", target("/str\0eam"))
                .into_bytes(),
        },
        RawCase {
            name: "Content-Length and Transfer-Encoding together",
            request: format!(
                "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
                target("/stream")
            )
            .into_bytes(),
        },
        RawCase {
            name: "a header line without a colon",
            request: get("/stream?count=1", "NoColonHere\r\n"),
        },
        RawCase {
            name: "headers that never finish",
            request: format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", target("/stream")).into_bytes(),
        },
    ]
}

/// Malformed requests over raw TCP, all at once, while a normal stream runs: each gets a 4xx
/// or a closed connection (never a 2xx, a 5xx or a hang), and the stream keeps its timing.
pub async fn malformed_requests_refused(cfg: &Config) -> Outcome {
    let why = "its cases are malformed HTTP/1 request lines and headers; HTTP/2's framing \
               is the h2 library's to police";
    if let Some(outcome) = judge::http1_only(cfg, why) {
        return outcome;
    }
    let cases = raw_cases(cfg);
    let deadline = HEADER_BOUND + Duration::from_secs(5);
    let probes =
        join_all(cases.iter().map(|case| client::raw(&cfg.target, &case.request, deadline)));
    let (answers, stream) = tokio::join!(probes, judge::fetch_stream(cfg));
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    for (case, got) in cases.iter().zip(&answers) {
        let verdict = match (got.status(), &got.error) {
            // 505 HTTP Version Not Supported is the answer RFC 9110 gives for it (nginx's).
            (Some(505), _) if case.name == HTTP3_CASE => {
                Ok("505 HTTP Version Not Supported".into())
            }
            (Some(status), _) if (400..500).contains(&status) => {
                let body = String::from_utf8_lossy(&got.body);
                Ok(format!("{status} {:?}", body.lines().next().unwrap_or_default()))
            }
            (Some(status), _) => Err(format!("{status}, expected a 4xx or a closed connection")),
            (None, Some(error)) if error.starts_with("connection still open") => Err(format!(
                "no answer and still open after {} s: the server hangs on to it",
                deadline.as_secs()
            )),
            (None, Some(error)) => Ok(format!("closed ({error})")),
            (None, None) => Ok("closed".into()),
        };
        let answered = got.evidence.end_ms.or(got.evidence.head_ms).unwrap_or(0.0);
        match verdict {
            Ok(what) => notes.push(format!("{}: {what} after {answered:.0} ms", case.name)),
            Err(problem) => problems.push(format!("{}: {problem}", case.name)),
        }
    }
    let evidence = Evidence {
        request: format!("{} malformed requests over raw TCP", cases.len()),
        notes,
        ..Evidence::default()
    };
    let stream = match stream {
        Ok(got) => judge::schedule_outcome(got.lines(), cfg.interval, cfg.tolerance),
        Err(outcome) => outcome,
    };
    let outcome = if !problems.is_empty() {
        Outcome::fail(problems.join("; "))
    } else if stream.level == crate::outcome::Level::Fail {
        Outcome::fail(format!("a stream running meanwhile: {}", stream.reason))
    } else {
        Outcome::pass(format!(
            "{} malformed requests refused; a concurrent stream: {}",
            cases.len(),
            stream.reason
        ))
    };
    outcome.with(evidence)
}
