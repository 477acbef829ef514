//! The query of each streaming endpoint, validated as CONTRACT.md says: every parameter is
//! checked and a typo is an error, so `?interval=50` cannot silently become a ten-second stream.

use std::time::Duration;

/// What one stream will produce: `count` items, `interval` apart; with `fail_after`, the
/// generator fails when item `fail_after + 1` is due, as an app's source can (a dropped database
/// connection, an upstream error).
#[derive(Debug, Clone, Copy)]
pub struct StreamParams {
    pub count: u32,
    pub interval: Duration,
    pub fail_after: Option<u32>,
}

/// `/stream.html`: the stream, and how many spaces follow each `<div>`.
#[derive(Debug, Clone, Copy)]
pub struct HtmlParams {
    pub stream: StreamParams,
    pub pad: usize,
}

/// `/events`: the stream, and how long it may stay quiet before a keep-alive comment.
#[derive(Debug, Clone, Copy)]
pub struct EventParams {
    pub stream: StreamParams,
    pub keepalive: Duration,
}

/// The `retry:` hint sent at the start of every event stream: how long a browser waits before
/// it reconnects.
pub const RETRY: Duration = Duration::from_millis(1000);

/// A parameter's name, allowed range and default.
type Spec = (&'static str, u32, u32, u32);

const COUNT: Spec = ("count", 1, 1_000_000, 10);
const INTERVAL_MS: Spec = ("interval_ms", 0, 60_000, 1000);
const PAD: Spec = ("pad", 0, 65_536, 1024);
const KEEPALIVE_MS: Spec = ("keepalive_ms", 100, 600_000, 15_000);
/// Below `count` too, checked in `StreamParams::new`; the default 0 means it never fails.
const FAIL_AFTER: Spec = ("fail_after", 1, 999_999, 0);

impl StreamParams {
    /// Parses `/stream`'s raw (still percent-encoded) query; the error is the one-line
    /// message for the 400 response.
    pub fn from_query(query: &str) -> Result<Self, String> {
        let [count, interval_ms, fail_after] = parse(query, [COUNT, INTERVAL_MS, FAIL_AFTER])?;
        Self::new(count, interval_ms, fail_after)
    }

    fn new(count: u32, interval_ms: u32, fail_after: u32) -> Result<Self, String> {
        if fail_after >= count {
            return Err(format!(
                "invalid fail_after: expected an integer in 1..{count} (below count), got \"{fail_after}\""
            ));
        }
        let interval = Duration::from_millis(interval_ms.into());
        Ok(Self { count, interval, fail_after: (fail_after > 0).then_some(fail_after) })
    }
}

impl StreamParams {
    /// Stands for the app's source (a database, an upstream API), which can fail midway: item
    /// `k` of a response that starts at `first`, or the error `fail_after` asks for, only in
    /// the response that sent item `fail_after`, so that a client resuming after it gets the rest.
    pub fn source(&self, first: u32, k: u32) -> std::io::Result<u32> {
        match self.fail_after {
            Some(n) if k == n + 1 && k > first => {
                Err(std::io::Error::other(format!("source failed (fail_after={n})")))
            }
            _ => Ok(k),
        }
    }
}

impl HtmlParams {
    pub fn from_query(query: &str) -> Result<Self, String> {
        let [count, interval_ms, fail_after, pad] =
            parse(query, [COUNT, INTERVAL_MS, FAIL_AFTER, PAD])?;
        Ok(Self { stream: StreamParams::new(count, interval_ms, fail_after)?, pad: pad as usize })
    }
}

impl EventParams {
    pub fn from_query(query: &str) -> Result<Self, String> {
        let [count, interval_ms, fail_after, keepalive_ms] =
            parse(query, [COUNT, INTERVAL_MS, FAIL_AFTER, KEEPALIVE_MS])?;
        Ok(Self {
            stream: StreamParams::new(count, interval_ms, fail_after)?,
            keepalive: Duration::from_millis(keepalive_ms.into()),
        })
    }
}

/// The id a reconnecting EventSource sends in `Last-Event-ID`: the stream resumes after it.
/// No header (or an empty one, which EventSource never sends) means from the start.
pub fn last_event_id(header: Option<&[u8]>, count: u32) -> Result<u32, String> {
    let Some(raw) = header.filter(|raw| !raw.is_empty()) else {
        return Ok(0);
    };
    let text = String::from_utf8_lossy(raw);
    match text.parse::<u32>() {
        Ok(id) if id <= count => Ok(id),
        _ => {
            Err(format!("invalid Last-Event-ID: expected an event id in 0..={count}, got {text:?}"))
        }
    }
}

fn parse<const N: usize>(query: &str, specs: [Spec; N]) -> Result<[u32; N], String> {
    let mut values = [None; N];
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let Some(i) = specs.iter().position(|spec| spec.0 == name) else {
            let allowed: Vec<String> =
                specs.iter().map(|(name, min, max, _)| format!("{name} ({min}..={max})")).collect();
            return Err(format!("unknown parameter {name:?}: allowed are {}", allowed.join(", ")));
        };
        let (_, min, max, _) = specs[i];
        if values[i].is_some() {
            return Err(format!(
                "parameter {name} given more than once: give it once, an integer in {min}..={max}"
            ));
        }
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => values[i] = Some(n),
            _ => {
                return Err(format!(
                    "invalid {name}: expected an integer in {min}..={max}, got {value:?}"
                ));
            }
        }
    }
    Ok(std::array::from_fn(|i| values[i].unwrap_or(specs[i].3)))
}
