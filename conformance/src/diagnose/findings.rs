//! From the verdicts of the requests made and the headers they carried, to the layer that
//! holds the stream: a fixed set of causes, each finding with its evidence and its fix.

use serde::Serialize;

pub use super::fingerprints::{Intermediary, cache_hit, intermediaries};
use super::{
    RequestResult, Run, Variant,
    fingerprints::{name_list, proxy_fix},
    verdict::Verdict,
};
use crate::client::Fetched;

/// Every cause `diagnose` can name; the JSON uses these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The app or a middleware collected the whole body before sending it (Content-Length,
    /// ETag, or a head that waited for the body).
    CollectedBody,
    /// A compression layer holds what it has not yet flushed.
    Compression,
    /// A reverse proxy or load balancer buffers the response.
    ProxyBuffering,
    /// A browser holds back the first bytes of `text/plain` (or untyped) content to sniff it.
    BrowserSniffing,
    /// A CDN may transform (compress, minify, buffer) a response not marked `no-transform`.
    CdnTransform,
    /// One HTTP version streams and the other does not.
    Protocol,
    /// The first items wait for more, then the rest stream.
    StartHeld,
    /// Every request is held the same way and nothing names a layer in between: the app.
    AppBuffering,
    /// The answer came from a cache, which replays a stored body at once: its timing says
    /// nothing about the origin.
    Cached,
    /// The body broke off before its end (no last chunk, a reset HTTP/2 stream, a compressed
    /// stream without its end): whatever the timing, the client got part of it.
    Truncated,
}

impl Cause {
    pub const ALL: [Cause; 10] = [
        Cause::CollectedBody,
        Cause::Compression,
        Cause::ProxyBuffering,
        Cause::BrowserSniffing,
        Cause::CdnTransform,
        Cause::Protocol,
        Cause::StartHeld,
        Cause::AppBuffering,
        Cause::Cached,
        Cause::Truncated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::CollectedBody => "collected_body",
            Cause::Compression => "compression",
            Cause::ProxyBuffering => "proxy_buffering",
            Cause::BrowserSniffing => "browser_sniffing",
            Cause::CdnTransform => "cdn_transform",
            Cause::Protocol => "protocol",
            Cause::StartHeld => "start_held",
            Cause::AppBuffering => "app_buffering",
            Cause::Cached => "cached",
            Cause::Truncated => "truncated",
        }
    }

    /// Where the docs explain it: its section of the CLI chapter, which links on to the
    /// chapter on that layer.
    pub fn docs(self) -> &'static str {
        match self {
            Cause::CollectedBody => "docs/src/cli.md#collected_body",
            Cause::Compression => "docs/src/cli.md#compression",
            Cause::ProxyBuffering => "docs/src/cli.md#proxy_buffering",
            Cause::BrowserSniffing => "docs/src/cli.md#browser_sniffing",
            Cause::CdnTransform => "docs/src/cli.md#cdn_transform",
            Cause::Protocol => "docs/src/cli.md#protocol",
            Cause::StartHeld => "docs/src/cli.md#start_held",
            Cause::AppBuffering => "docs/src/cli.md#app_buffering",
            Cause::Cached => "docs/src/cli.md#cached",
            Cause::Truncated => "docs/src/cli.md#truncated",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a finding explains the verdict, is a risk for a response that streams here, or is
/// a fault seen whatever the verdict (a body that broke off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Cause,
    Risk,
    Fault,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub cause: Cause,
    pub role: Role,
    pub evidence: String,
    pub fix: String,
    pub docs: &'static str,
}

impl Finding {
    fn new(cause: Cause, role: Role, evidence: String, fix: impl Into<String>) -> Self {
        Self { cause, role, evidence, fix: fix.into(), docs: cause.docs() }
    }
}

/// The findings for a run: a body that broke off, whatever the verdict; causes when the main
/// response is held; risks either way.
pub fn findings(run: &Run) -> Vec<Finding> {
    let seen = Seen::new(run);
    let truncated = truncated(&seen);
    let hits = cache_hit(seen.got);
    let mut out = if !hits.is_empty() {
        vec![cached(run, &hits)]
    } else if seen.main.judgement.verdict.held() {
        causes(&seen)
    } else {
        Vec::new()
    };
    let risks = risks(&seen, &out);
    out.extend(risks);
    out.splice(0..0, truncated);
    out
}

/// The main response's body broke off before its end: how, and after how many items.
fn truncated(seen: &Seen) -> Option<Finding> {
    let error = seen.got.error.as_deref()?;
    // Past diagnose's own deadline the body was still coming: not a cut.
    if seen.got.evidence.status.is_none() || error.contains("did not end within") {
        return None;
    }
    let how = if error.contains("stops short of its end") {
        "the compressed stream stops short of its end (the encoder was cut off)"
    } else if error.contains("stream error") || error.contains("stream reset") {
        "the HTTP/2 stream was reset (RST_STREAM)"
    } else if seen.got.version.as_deref() == Some("h2") {
        "the HTTP/2 stream or connection ended without END_STREAM"
    } else {
        "the connection closed before the body's end (over HTTP/1.1 chunked: no last chunk)"
    };
    let items = seen.main.judgement.items.len();
    Some(Finding::new(
        Cause::Truncated,
        Role::Fault,
        format!("the body broke off after {items} items: {how}: {error}"),
        "what came is only part of the response, and a client that checks can tell (curl exits \
         18 or 92, a fetch() reader rejects): look at the server's log for a failed generator \
         or a restart, and at the proxies on the way for a read or send timeout; a server that \
         fails mid-stream should end it this way, not cleanly",
    ))
}

/// What the findings are read from: the main response, its headers and the variants tried.
struct Seen<'a> {
    run: &'a Run,
    main: &'a RequestResult,
    got: &'a Fetched,
    proxies: Vec<Intermediary>,
    cdns: Vec<Intermediary>,
}

impl<'a> Seen<'a> {
    fn new(run: &'a Run) -> Self {
        let proxies = intermediaries(&run.main.fetched);
        let cdns = proxies.iter().filter(|p| p.cdn).cloned().collect();
        Self { run, main: &run.main, got: &run.main.fetched, proxies, cdns }
    }

    /// The variant named `name`, if it was tried.
    fn tried(&self, name: &str) -> Option<&'a Variant> {
        self.run.variants.iter().find(|v| v.name == name)
    }

    /// The response of the variant named `name`, if it was tried and answered.
    fn answered(&self, name: &str) -> Option<&'a RequestResult> {
        self.tried(name).and_then(|v| v.result.as_ref().ok())
    }

    fn streams(&self, name: &str) -> bool {
        self.answered(name).is_some_and(|r| r.judgement.verdict == Verdict::Streams)
    }

    /// How the main response is held, as the evidence says it.
    fn held(&self) -> String {
        format!("{} ({})", self.main.judgement.verdict, self.main.judgement.reason)
    }
}

/// Why a held response is held, in order: what the variants isolate (compression, the hop to
/// the origin, the protocol); else the first of what the headers show (a collected body, a
/// proxy or CDN), a held start, and, failing all, the app.
fn causes(seen: &Seen) -> Vec<Finding> {
    let mut out: Vec<Finding> = compression(seen).into_iter().collect();
    if out.is_empty() {
        out.extend(hop_buffers(seen));
    }
    out.extend(protocol_buffers(seen));
    if out.is_empty() {
        let found = collected_body(seen)
            .or_else(|| between(seen))
            .or_else(|| start_held(seen))
            .unwrap_or_else(|| app_buffers(seen));
        out.push(found);
    }
    out
}

/// Encoded and held, but it streams without `Accept-Encoding`.
fn compression(seen: &Seen) -> Option<Finding> {
    let encoding = seen.got.header("content-encoding")?;
    if !seen.streams("identity") {
        return None;
    }
    let who = match (seen.proxies.first(), seen.answered("compare")) {
        (Some(proxy), Some(origin)) if origin.fetched.header("content-encoding").is_none() => {
            format!("the origin does not compress, so {} does; its compression", proxy.name)
        }
        (Some(proxy), _) => format!("a compression layer (the app's, or {}'s)", proxy.name),
        (None, _) => "the server's compression layer".to_owned(),
    };
    Some(Finding::new(
        Cause::Compression,
        Role::Cause,
        format!(
            "with `Accept-Encoding` the response came `{encoding}`-encoded and {}; without it, \
             it streams: {who} holds what it has not flushed",
            seen.held()
        ),
        "flush the compressor after each item (tower-http, actix Compress and async-compression \
         do from the versions in our Cargo.toml), or leave this content type out of compression \
         (nginx: `gzip off` for this location)",
    ))
}

/// The origin (`--compare`) streams, and the response through the front does not.
fn hop_buffers(seen: &Seen) -> Option<Finding> {
    let origin = seen.answered("compare").filter(|_| seen.streams("compare"))?;
    let mut evidence = format!(
        "{} streams, but through {} the response is {}: the hop between them buffers",
        origin.url,
        seen.main.url,
        seen.held()
    );
    if !seen.proxies.is_empty() {
        evidence.push_str(&format!("; in between: {}", name_list(&seen.proxies)));
    }
    if seen.proxies.iter().any(|p| p.name == "nginx")
        && origin.fetched.header("x-accel-buffering").is_none()
    {
        evidence.push_str("; the origin does not send `X-Accel-Buffering: no`");
    }
    Some(Finding::new(Cause::ProxyBuffering, Role::Cause, evidence, proxy_fix(&seen.proxies)))
}

/// The other HTTP version streams.
fn protocol_buffers(seen: &Seen) -> Option<Finding> {
    let other = seen.answered("protocol").filter(|_| seen.streams("protocol"))?;
    let main = seen.main;
    Some(Finding::new(
        Cause::Protocol,
        Role::Cause,
        format!(
            "over {} the response is {}; over {} it streams: the {} path of the server or of \
             the edge in front of it buffers",
            main.protocol(),
            seen.held(),
            other.protocol(),
            main.protocol()
        ),
        "look at the HTTP/2 (or HTTP/1.1) settings of the edge that terminates TLS; until then, \
         serve this path over the protocol that streams",
    ))
}

/// A length or an ETag known before the body, or a head that waited for the whole body.
fn collected_body(seen: &Seen) -> Option<Finding> {
    let mut collected: Vec<String> = ["content-length", "etag"]
        .into_iter()
        .filter_map(|name| seen.got.header(name).map(|value| format!("`{name}: {value}`")))
        .collect();
    // A proxy that buffers can hold the head too: then only an origin whose own head waited
    // says that the app collected the body.
    let head_waited = |r: &RequestResult| {
        let head_ms = r.fetched.evidence.head_ms.unwrap_or_default();
        head_ms >= MIN_HEAD_WAIT_MS && head_ms >= 0.8 * r.judgement.duration_ms
    };
    let origin = seen.answered("compare");
    if head_waited(seen.main) && (seen.proxies.is_empty() || origin.is_some_and(head_waited)) {
        let head_ms = seen.got.evidence.head_ms.unwrap_or_default();
        collected.push(format!(
            "the response head itself waited {head_ms:.0} ms, until the body was done"
        ));
    }
    if collected.is_empty() {
        return None;
    }
    let mut evidence = format!(
        "the response took {:.0} ms, yet {}: the whole body was known before the head was sent",
        seen.main.judgement.duration_ms,
        collected.join(", and ")
    );
    if let Some(proxy) = seen.proxies.first().filter(|_| seen.tried("compare").is_none()) {
        evidence.push_str(&format!(
            "; {} in between may have collected it (`{}`): --compare ORIGIN tells",
            proxy.name, proxy.header
        ));
    }
    Some(Finding::new(
        Cause::CollectedBody,
        Role::Cause,
        evidence,
        "return a streaming body (no length known in advance) and keep middleware that needs \
         the whole body (ETag, Content-Length, caching) off this route",
    ))
}

/// Nothing isolated the layer, but a CDN or a proxy named itself in the headers.
fn between(seen: &Seen) -> Option<Finding> {
    if seen.proxies.is_empty() {
        return None;
    }
    if !seen.cdns.is_empty() && !has_no_transform(seen.got) {
        return Some(cdn_finding(&seen.cdns, Role::Cause));
    }
    Some(Finding::new(
        Cause::ProxyBuffering,
        Role::Cause,
        format!(
            "the response is {}, every variant tried is held too, and it passed {}; run with \
             `--compare ORIGIN` to confirm that the origin streams",
            seen.held(),
            name_list(&seen.proxies)
        ),
        proxy_fix(&seen.proxies),
    ))
}

/// The first items were held, the rest flowed.
fn start_held(seen: &Seen) -> Option<Finding> {
    seen.main.judgement.reason.contains("the start was held").then(|| {
        Finding::new(
            Cause::StartHeld,
            Role::Cause,
            format!("the response is {}", seen.held()),
            "something holds the first bytes until it has enough: a compression threshold, a \
             content sniffer, a buffer with a low-water mark. Flush after the first item",
        )
    })
}

/// Held the same every way it was asked, with no layer in between named: the app.
fn app_buffers(seen: &Seen) -> Finding {
    let tried: Vec<&str> = seen.run.variants.iter().map(|v| v.name).collect();
    Finding::new(
        Cause::AppBuffering,
        Role::Cause,
        format!(
            "the response is {}, the same with every variant ({}), and no header names a layer \
             in between",
            seen.held(),
            if tried.is_empty() { "none tried".into() } else { tried.join(", ") }
        ),
        "the app or its framework holds the body: flush after each item, and look for a \
         middleware that collects it",
    )
}

/// Risks, for held and streaming responses alike: a browser's sniffing, a compressed event
/// stream, a CDN free to transform (each unless `found` already names it).
fn risks(seen: &Seen, found: &[Finding]) -> Vec<Finding> {
    let mut out = Vec::new();
    let (got, main) = (seen.got, seen.main);
    let content_type = got.header("content-type").map(|t| t.to_ascii_lowercase());
    let sniffable = content_type.as_deref().is_none_or(|t| t.starts_with("text/plain"));
    let first_bytes = main.judgement.bursts.iter().find(|b| b.items > 0).map_or(0, |b| b.decoded);
    if sniffable && !nosniff(got) && first_bytes < 1024 && !main.judgement.items.is_empty() {
        out.push(Finding::new(
            Cause::BrowserSniffing,
            Role::Risk,
            format!(
                "`content-type: {}` without `X-Content-Type-Options: nosniff`, and the first \
                 items are {first_bytes} bytes: a browser showing this as a page holds the \
                 first 1 KiB back to sniff its type (a fetch() reader is not affected)",
                content_type.as_deref().unwrap_or("(none)")
            ),
            "send `X-Content-Type-Options: nosniff` and a charset (`text/plain; charset=utf-8`), \
             or start the body with 1 KiB of padding",
        ));
    }
    let named = |cause: Cause| found.iter().any(|f| f.cause == cause);
    if crate::client::is_event_stream(content_type.as_deref())
        && let Some(encoding) = got.header("content-encoding")
        && !named(Cause::Compression)
    {
        out.push(Finding::new(
            Cause::Compression,
            Role::Risk,
            format!(
                "this event stream is `{encoding}`-encoded: it streams only while every \
                 compressor on the way flushes after each event"
            ),
            "keep text/event-stream out of compression, or make sure each layer flushes",
        ));
    }
    if !seen.cdns.is_empty() && !has_no_transform(got) && !named(Cause::CdnTransform) {
        out.push(cdn_finding(&seen.cdns, Role::Risk));
    }
    out
}

/// The answer came from a cache: what that means, and what the request that asked to bypass
/// it got. A cause unless the answer streams anyway.
fn cached(run: &Run, hits: &[String]) -> Finding {
    let mut evidence = format!(
        "the answer came from a cache ({}): a stored body is replayed as fast as the connection \
         allows, so its timing says nothing about the origin",
        hits.join(", ")
    );
    let bypass = run.variants.iter().find(|v| v.name == "no-cache").map(|v| &v.result);
    match bypass {
        Some(Ok(r)) if !cache_hit(&r.fetched).is_empty() => evidence.push_str(&format!(
            "; asked with `Cache-Control: no-cache`, it came from the cache again ({}): this \
             cache does not let a client bypass it, so give the origin with --compare",
            cache_hit(&r.fetched).join(", ")
        )),
        Some(Ok(r)) => evidence.push_str(&format!(
            "; asked with `Cache-Control: no-cache`, it came from the origin, and {}: {}",
            r.judgement.verdict, r.judgement.reason
        )),
        Some(Err(error)) => {
            evidence.push_str(&format!("; asked with `Cache-Control: no-cache`: {error}"))
        }
        None => {}
    }
    let role =
        if run.main.judgement.verdict == Verdict::Streams { Role::Risk } else { Role::Cause };
    Finding::new(
        Cause::Cached,
        role,
        evidence,
        "send `Cache-Control: no-store` (or `private`) with streams, so that shared caches do not \
         keep them; to see the origin through the cache, bypass it for this path (Varnish: \
         `return (pass)` in `vcl_recv`; nginx: `proxy_cache_bypass`; a CDN: a bypass rule)",
    )
}

/// A head that waits at least this long, and until the body is done, waited for the body.
const MIN_HEAD_WAIT_MS: f64 = 400.0;

fn nosniff(got: &Fetched) -> bool {
    got.header("x-content-type-options").is_some_and(|v| v.trim().eq_ignore_ascii_case("nosniff"))
}

fn has_no_transform(got: &Fetched) -> bool {
    got.header("cache-control").is_some_and(|v| v.to_ascii_lowercase().contains("no-transform"))
}

fn cdn_finding(cdns: &[Intermediary], role: Role) -> Finding {
    Finding::new(
        Cause::CdnTransform,
        role,
        format!(
            "the response passed {} and its Cache-Control has no `no-transform`: the CDN may \
             compress, minify or buffer it",
            name_list(cdns)
        ),
        "send `Cache-Control: no-cache, no-transform` from the app; in the CDN, turn off \
         buffering and optimisations for this path",
    )
}
