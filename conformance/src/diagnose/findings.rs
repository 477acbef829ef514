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
}

impl Cause {
    pub const ALL: [Cause; 9] = [
        Cause::CollectedBody,
        Cause::Compression,
        Cause::ProxyBuffering,
        Cause::BrowserSniffing,
        Cause::CdnTransform,
        Cause::Protocol,
        Cause::StartHeld,
        Cause::AppBuffering,
        Cause::Cached,
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
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a finding explains the verdict, or is a risk for a response that streams here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Cause,
    Risk,
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

/// The findings for a run: causes when the main response is held, risks either way.
pub fn findings(run: &Run) -> Vec<Finding> {
    let main = &run.main;
    let got = &main.fetched;
    let verdict = main.judgement.verdict;
    let proxies = intermediaries(got);
    let cdns: Vec<Intermediary> = proxies.iter().filter(|p| p.cdn).cloned().collect();
    let mut out = Vec::new();
    let variant = |which: fn(&Variant) -> bool| run.variants.iter().find(|v| which(v));
    let streams = |v: Option<&Variant>| {
        v.and_then(|v| v.result.as_ref().ok())
            .is_some_and(|r| r.judgement.verdict == Verdict::Streams)
    };

    let hits = cache_hit(got);
    if !hits.is_empty() {
        out.push(cached(run, &hits));
    } else if verdict.held() {
        let held = format!("{verdict} ({})", main.judgement.reason);
        let compare = variant(|v| v.name == "compare");
        let identity = variant(|v| v.name == "identity");
        if let Some(encoding) = got.header("content-encoding")
            && streams(identity)
        {
            let origin = compare.and_then(|v| v.result.as_ref().ok());
            let who = match (proxies.first(), origin) {
                (Some(proxy), Some(origin))
                    if origin.fetched.header("content-encoding").is_none() =>
                {
                    format!("the origin does not compress, so {} does; its compression", proxy.name)
                }
                (Some(proxy), _) => format!("a compression layer (the app's, or {}'s)", proxy.name),
                (None, _) => "the server's compression layer".to_owned(),
            };
            out.push(Finding::new(
                Cause::Compression,
                Role::Cause,
                format!(
                    "with `Accept-Encoding` the response came `{encoding}`-encoded and {held}; \
                     without it, it streams: {who} holds what it has not flushed"
                ),
                "flush the compressor after each item (tower-http, actix Compress and \
                 async-compression do from the versions in our Cargo.toml), or leave this \
                 content type out of compression (nginx: `gzip off` for this location)",
            ));
        }
        if streams(compare) && out.is_empty() {
            let origin = compare.and_then(|v| v.result.as_ref().ok()).expect("it streams");
            let mut evidence = format!(
                "{} streams, but through {} the response is {held}: the hop between them buffers",
                origin.url, main.url
            );
            if !proxies.is_empty() {
                evidence.push_str(&format!("; in between: {}", name_list(&proxies)));
            }
            if proxies.iter().any(|p| p.name == "nginx")
                && origin.fetched.header("x-accel-buffering").is_none()
            {
                evidence.push_str("; the origin does not send `X-Accel-Buffering: no`");
            }
            out.push(Finding::new(
                Cause::ProxyBuffering,
                Role::Cause,
                evidence,
                proxy_fix(&proxies),
            ));
        }
        let protocol = variant(|v| v.name == "protocol");
        if streams(protocol) {
            let other = protocol.and_then(|v| v.result.as_ref().ok()).expect("it streams");
            out.push(Finding::new(
                Cause::Protocol,
                Role::Cause,
                format!(
                    "over {} the response is {held}; over {} it streams: the {} path of the \
                     server or of the edge in front of it buffers",
                    main.protocol(),
                    other.protocol(),
                    main.protocol()
                ),
                "look at the HTTP/2 (or HTTP/1.1) settings of the edge that terminates TLS; \
                 until then, serve this path over the protocol that streams",
            ));
        }
        let mut collected = Vec::new();
        for name in ["content-length", "etag"] {
            if let Some(value) = got.header(name) {
                collected.push(format!("`{name}: {value}`"));
            }
        }
        // A proxy that buffers can hold the head too: then only an origin whose own head
        // waited says that the app collected the body.
        let head_waited = |r: &RequestResult| {
            let head_ms = r.fetched.evidence.head_ms.unwrap_or_default();
            head_ms >= MIN_HEAD_WAIT_MS && head_ms >= 0.8 * r.judgement.duration_ms
        };
        let origin = compare.and_then(|v| v.result.as_ref().ok());
        let head_ms = got.evidence.head_ms.unwrap_or_default();
        if head_waited(main) && (proxies.is_empty() || origin.is_some_and(head_waited)) {
            collected.push(format!(
                "the response head itself waited {head_ms:.0} ms, until the body was done"
            ));
        }
        if !collected.is_empty() && out.is_empty() {
            let mut evidence = format!(
                "the response took {:.0} ms, yet {}: the whole body was known before the head \
                 was sent",
                main.judgement.duration_ms,
                collected.join(", and ")
            );
            if let Some(proxy) = proxies.first().filter(|_| compare.is_none()) {
                evidence.push_str(&format!(
                    "; {} in between may have collected it (`{}`): --compare ORIGIN tells",
                    proxy.name, proxy.header
                ));
            }
            out.push(Finding::new(
                Cause::CollectedBody,
                Role::Cause,
                evidence,
                "return a streaming body (no length known in advance) and keep middleware that \
                 needs the whole body (ETag, Content-Length, caching) off this route",
            ));
        }
        if out.is_empty() && !proxies.is_empty() {
            if !cdns.is_empty() && !has_no_transform(got) {
                out.push(cdn_finding(&cdns, Role::Cause));
            } else {
                out.push(Finding::new(
                    Cause::ProxyBuffering,
                    Role::Cause,
                    format!(
                        "the response is {held}, every variant tried is held too, and it passed \
                         {}; run with `--compare ORIGIN` to confirm that the origin streams",
                        name_list(&proxies)
                    ),
                    proxy_fix(&proxies),
                ));
            }
        }
        if out.is_empty() && main.judgement.reason.contains("the start was held") {
            out.push(Finding::new(
                Cause::StartHeld,
                Role::Cause,
                format!("the response is {held}"),
                "something holds the first bytes until it has enough: a compression threshold, a \
                 content sniffer, a buffer with a low-water mark. Flush after the first item",
            ));
        }
        if out.is_empty() {
            let tried: Vec<&str> = run.variants.iter().map(|v| v.name).collect();
            out.push(Finding::new(
                Cause::AppBuffering,
                Role::Cause,
                format!(
                    "the response is {held}, the same with every variant ({}), and no header \
                     names a layer in between",
                    if tried.is_empty() { "none tried".into() } else { tried.join(", ") }
                ),
                "the app or its framework holds the body: flush after each item, and look for \
                 a middleware that collects it",
            ));
        }
    }

    // Risks, for held and streaming responses alike.
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
    if crate::client::is_event_stream(content_type.as_deref())
        && let Some(encoding) = got.header("content-encoding")
        && !out.iter().any(|f| f.cause == Cause::Compression)
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
    if !cdns.is_empty()
        && !has_no_transform(got)
        && !out.iter().any(|f| f.cause == Cause::CdnTransform)
    {
        out.push(cdn_finding(&cdns, Role::Risk));
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
