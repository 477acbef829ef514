//! What a response's headers say about the layers it passed: the proxies and CDNs whose
//! fingerprints are in them, and whether a cache answered.

use crate::client::Fetched;

/// A layer the response's headers name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intermediary {
    pub name: &'static str,
    pub cdn: bool,
    /// The header that names it.
    pub header: String,
}

/// The intermediaries whose fingerprints are in the headers.
pub fn intermediaries(got: &Fetched) -> Vec<Intermediary> {
    let mut found = Vec::new();
    let mut add = |name: &'static str, cdn: bool, header: &str| {
        if !found.iter().any(|i: &Intermediary| i.name == name) {
            let value = got.header(header).unwrap_or_default();
            found.push(Intermediary { name, cdn, header: format!("{header}: {value}") });
        }
    };
    let server = got.header("server").unwrap_or_default().to_ascii_lowercase();
    for (needle, name, cdn) in [
        ("nginx", "nginx", false),
        ("openresty", "nginx", false),
        ("apache", "Apache httpd", false),
        ("envoy", "Envoy", false),
        ("caddy", "Caddy", false),
        ("lighttpd", "lighttpd", false),
        ("squid", "Squid", false),
        ("cloudflare", "Cloudflare", true),
        ("vercel", "Vercel", true),
        ("cloudfront", "CloudFront", true),
        ("akamai", "Akamai", true),
    ] {
        if server.contains(needle) {
            add(name, cdn, "server");
        }
    }
    for (header, name, cdn) in [
        ("cf-ray", "Cloudflare", true),
        ("x-vercel-id", "Vercel", true),
        ("x-vercel-cache", "Vercel", true),
        ("x-amz-cf-id", "CloudFront", true),
        ("x-served-by", "Fastly", true),
        ("x-fastly-request-id", "Fastly", true),
        ("akamai-grn", "Akamai", true),
        ("x-azure-ref", "Azure Front Door", true),
        ("fly-request-id", "Fly.io proxy", false),
        ("x-varnish", "Varnish", false),
        ("x-envoy-upstream-service-time", "Envoy", false),
        ("via", "a proxy (Via)", false),
    ] {
        if got.header(header).is_some() {
            add(name, cdn, header);
        }
    }
    found
}

/// The headers that say the answer came from a cache: a hit, or a stored answer's `Age`.
pub fn cache_hit(got: &Fetched) -> Vec<String> {
    let mut found = Vec::new();
    for (name, value) in &got.evidence.headers {
        let lower = value.to_ascii_lowercase();
        let hit = match name.to_ascii_lowercase().as_str() {
            "age" => value.trim().parse::<u64>().is_ok_and(|age| age > 0),
            // Varnish: the request's id, then the id of the request that stored the object.
            "x-varnish" => value.split_whitespace().count() >= 2,
            // Squid, Fastly, CloudFront ("Hit from cloudfront"), Akamai ("TCP_MEM_HIT"), and
            // the `$upstream_cache_status` that nginx set-ups send.
            "x-cache" | "x-cache-status" | "x-proxy-cache" => {
                lower.contains("hit") || lower.contains("stale")
            }
            "cf-cache-status" | "x-vercel-cache" => {
                ["hit", "stale", "updating", "revalidated", "prerender"]
                    .iter()
                    .any(|s| lower.trim() == *s)
            }
            // RFC 9211: `Cache-Status: ExampleCache; hit`.
            "cache-status" => lower.split(';').skip(1).any(|p| p.trim() == "hit"),
            _ => false,
        };
        if hit {
            found.push(format!("`{name}: {value}`"));
        }
    }
    found
}

/// The fix for a buffering proxy, as specific as its fingerprint allows.
pub(super) fn proxy_fix(proxies: &[Intermediary]) -> String {
    match proxies.first().map(|p| p.name) {
        Some("nginx") => "send `X-Accel-Buffering: no` from the app, or set `proxy_buffering off` \
                          for this location"
            .into(),
        Some("Apache httpd") => "add `flushpackets=on` to the ProxyPass of this path, and keep \
                                 mod_deflate off it (`SetEnv no-gzip 1`)"
            .into(),
        Some("Envoy") => "Envoy streams by default: look for a buffer filter on this route".into(),
        Some("lighttpd") => "lighttpd collects a backend's whole response by default: set \
                             `server.stream-response-body = 2` (or 1)"
            .into(),
        Some(name) => format!(
            "turn response buffering off in {name} for this path; send `Cache-Control: \
             no-cache, no-transform` and `X-Accel-Buffering: no` from the app"
        ),
        None => "turn response buffering off in the proxy in front of the app for this path \
                 (nginx: `proxy_buffering off`; Apache: `flushpackets=on`)"
            .into(),
    }
}

pub(super) fn name_list(proxies: &[Intermediary]) -> String {
    proxies.iter().map(|p| format!("{} (`{}`)", p.name, p.header)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(headers: &[(&str, &str)]) -> bool {
        let mut got = Fetched::default();
        got.evidence.headers =
            headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        !cache_hit(&got).is_empty()
    }

    #[test]
    fn cache_hits_are_recognised_by_their_headers() {
        for headers in [
            &[("age", "2")][..],
            &[("x-varnish", "32770 6")],
            &[("x-cache", "Hit from cloudfront")],
            &[("x-cache", "TCP_MEM_HIT")],
            &[("cf-cache-status", "HIT")],
            &[("x-vercel-cache", "STALE")],
            &[("x-cache-status", "HIT")],
            &[("cache-status", "\"Netlify Edge\"; hit")],
        ] {
            assert!(hit(headers), "{headers:?} is a hit");
        }
        for headers in [
            &[("age", "0")][..],
            &[("x-varnish", "32770")],
            &[("x-cache", "MISS")],
            &[("cf-cache-status", "DYNAMIC")],
            &[("cache-status", "ExampleCache; fwd=uri-miss")],
            &[("cache-control", "no-cache")],
        ] {
            assert!(!hit(headers), "{headers:?} is no hit");
        }
    }
}
