//! The request as the broken server reads it: its line and the few headers it looks at, the
//! endpoint, and its parameters (validated unless a fault says not to).

use std::time::Duration;

use tokio::{io::AsyncReadExt, net::TcpStream};

use super::Fault;

pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: String,
    pub(super) http10: bool,
    pub(super) host: bool,
    pub(super) accept_encoding: Option<String>,
    pub(super) last_event_id: Option<String>,
    /// `Cache-Control: no-cache` was asked for.
    pub(super) no_cache: bool,
    /// Content-Length headers with different values: RFC 9112 §6.3 requires a 400.
    pub(super) conflicting_lengths: bool,
}

pub(super) async fn read_request(tcp: &mut TcpStream) -> std::io::Result<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    req.parse(&buf).map_err(std::io::Error::other)?;
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    Ok(Request {
        method: req.method.unwrap_or("GET").to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        http10: req.version == Some(0),
        host: header("host").is_some(),
        accept_encoding: header("accept-encoding"),
        last_event_id: header("last-event-id"),
        no_cache: header("cache-control").is_some_and(|v| v.contains("no-cache")),
        conflicting_lengths: {
            let mut lengths =
                req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length"));
            let first = lengths.next().map(|h| h.value);
            lengths.any(|h| Some(h.value) != first)
        },
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Stream,
    Html,
    Events,
}

pub(super) struct Params {
    pub(super) count: u32,
    pub(super) interval: Duration,
    pub(super) pad: usize,
    pub(super) keepalive: Duration,
    /// The generator fails when item `fail_after + 1` is due.
    pub(super) fail_after: Option<u32>,
}

pub(super) fn parse(query: &str, endpoint: Endpoint, fault: Fault) -> Result<Params, String> {
    let default_count = if fault == Fault::WrongDefaults { 3 } else { 10 };
    let (mut count, mut interval, mut pad, mut keepalive) = (None, None, None, None);
    let mut fail_after = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (slot, min, max) = match (&*name, endpoint) {
            ("count", _) => (&mut count, 1, 1_000_000),
            ("interval_ms", _) => (&mut interval, 0, 60_000),
            ("pad", Endpoint::Html) => (&mut pad, 0, 65_536),
            ("keepalive_ms", Endpoint::Events) => (&mut keepalive, 100, 600_000),
            ("fail_after", _) => (&mut fail_after, 1, 999_999),
            _ => return Err(format!("unknown parameter {name:?}")),
        };
        if slot.replace(value.parse::<u32>().unwrap_or(u32::MAX)).is_some() {
            return Err(format!("{name} given twice: give it once, {min}..={max}"));
        }
        if !(min..=max).contains(&slot.unwrap_or_default()) {
            return Err(if fault == Fault::VagueBadInput {
                format!("bad {name}: {value:?}")
            } else {
                format!("invalid {name}: expected {min}..={max}, got {value:?}")
            });
        }
    }
    let pad = match pad {
        Some(pad) if fault != Fault::HtmlIgnoresPad => pad,
        _ => 1024,
    };
    let count = count.unwrap_or(default_count);
    if fail_after.is_some_and(|n| n >= count) {
        return Err(format!("invalid fail_after: expected 1..{count}, below count"));
    }
    Ok(Params {
        count,
        interval: Duration::from_millis(interval.unwrap_or(1000).into()),
        pad: pad as usize,
        keepalive: Duration::from_millis(keepalive.unwrap_or(15_000).into()),
        fail_after,
    })
}

/// The events still to send after `Last-Event-ID`; `Err` is the 400 message.
pub(super) fn resume_after(req: &Request, count: u32, fault: Fault) -> Result<u32, String> {
    let raw = match &req.last_event_id {
        Some(raw) if !raw.is_empty() && fault != Fault::EventsIgnoreLastEventId => raw,
        _ => return Ok(0),
    };
    match raw.parse::<u32>() {
        Ok(id) if id <= count => Ok(id),
        _ if fault == Fault::EventsAcceptBadLastEventId => Ok(0),
        _ => Err(format!("invalid Last-Event-ID: expected 0..={count}, got {raw:?}")),
    }
}
