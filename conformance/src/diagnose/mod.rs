//! `conformance diagnose URL`: does any endpoint stream, and if not, which layer holds it.
//!
//! One request is made as a browser makes it (`Accept-Encoding: gzip, deflate, br, zstd`), and
//! its items are shown as they arrive. Once its head is in, variants isolate the layer: the same
//! request without `Accept-Encoding` when the response is compressed, over the other HTTP
//! version when both are offered, with `Cache-Control: no-cache` when a cache answered, and
//! against `--compare URL2` (typically the origin behind the proxy). Each body is read into
//! items ([`items`]: the body decides how), each response gets a verdict by
//! [`verdict::RULE`]; the findings ([`findings::Cause`]) come from comparing them and from
//! the headers. The flags and the requests they make are `plan.rs`.

pub mod findings;
mod fingerprints;
pub mod items;
mod output;
mod plan;
mod thresholds;
pub mod verdict;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::client::{self, Ask, Exchange, Fetched, Framing, Protocol, Target};
pub use findings::{Cause, Finding, Role};
pub use output::{Live, json, text};
pub use plan::{Options, Plan, plan};
pub use verdict::{Judgement, Verdict};

/// The exit codes, as documented in the CLI chapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Streams = 0,
    Held = 1,
    Usage = 2,
    Inconclusive = 3,
}

impl Verdict {
    pub fn exit(self) -> Exit {
        match self {
            Verdict::Streams => Exit::Streams,
            Verdict::Buffered | Verdict::Batched => Exit::Held,
            Verdict::Inconclusive => Exit::Inconclusive,
        }
    }
}

/// Why there is no verdict: bad usage, no connection, or not a streaming answer (exit 2).
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub error: String,
}

impl Problem {
    fn new(error: impl Into<String>) -> Self {
        Self { error: error.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)
    }
}

/// One request made, and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct RequestResult {
    pub url: String,
    pub method: String,
    pub protocol_asked: Protocol,
    pub request_headers: Vec<(String, String)>,
    #[serde(skip)]
    pub fetched: Fetched,
    #[serde(flatten)]
    pub judgement: Judgement,
}

impl RequestResult {
    pub fn protocol(&self) -> &str {
        self.fetched.version.as_deref().unwrap_or("?")
    }
}

/// An extra request, and why it was made.
#[derive(Debug, Clone)]
pub struct Variant {
    /// `identity`, `protocol`, `no-cache` or `compare`.
    pub name: &'static str,
    pub description: String,
    /// The response, or why there is none to judge.
    pub result: Result<RequestResult, String>,
}

/// Every request of one diagnosis.
#[derive(Debug, Clone)]
pub struct Run {
    pub main: RequestResult,
    pub variants: Vec<Variant>,
    /// Variants not made, and why.
    pub skipped: Vec<String>,
}

/// The whole answer.
#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub run: Run,
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    pub fn verdict(&self) -> Verdict {
        self.run.main.judgement.verdict
    }
}

/// Makes the requests of `plan`, showing the main one live, and judges them.
pub async fn run(plan: &Plan, live: &mut Live) -> Result<Diagnosis, Problem> {
    live.start(plan);
    let compare = plan.compare.clone().map(|(url, target, ask)| {
        tokio::spawn(async move {
            let description = format!("the same request to {url}");
            Variant { name: "compare", description, result: request(&url, &target, ask).await }
        })
    });
    // Every candidate variant starts with the main request, so that the whole run takes about
    // as long as the response; those the main response's head makes pointless are cancelled.
    let candidates: Vec<_> = if plan.once { Vec::new() } else { candidates(plan) }
        .into_iter()
        .map(|(name, target, ask)| {
            let url = plan.url.clone();
            (name, tokio::spawn(async move { request(&url, &target, ask).await }))
        })
        .collect();
    let mut exchange = match Exchange::start(&plan.target, plan.ask.clone()).await {
        Ok(exchange) => exchange,
        Err(got) => {
            live.stop();
            return Err(Problem::new(why_not(&plan.url, &got)));
        }
    };
    live.head(&exchange.out);
    let status = exchange.out.status().unwrap_or_default();
    if !(200..300).contains(&status) {
        exchange.next().await;
        let got = exchange.finish();
        return Err(Problem::new(status_problem(&plan.url, &got)));
    }
    let (mut variants, skipped) = kept(candidates, plan, &exchange.out);
    if !plan.once && !findings::cache_hit(&exchange.out).is_empty() {
        variants.push(no_cache(plan));
    }
    let framing = exchange.framing();
    while exchange.next().await {
        live.progress(&exchange.out, framing);
    }
    let got = exchange.finish();
    live.progress(&got, framing);
    live.done(&got);
    let main = result(&plan.url, &plan.target, &plan.ask, got, framing);
    let mut done = Vec::new();
    variants.extend(compare);
    for variant in variants {
        done.push(variant.await.expect("a variant does not panic"));
    }
    let order = ["identity", "protocol", "no-cache", "compare"];
    done.sort_by_key(|v| order.iter().position(|n| *n == v.name));
    let run = Run { main, variants: done, skipped };
    let findings = findings::findings(&run);
    Ok(Diagnosis { run, findings })
}

/// The candidate variants that the main response's head leaves worth making (the others are
/// cancelled), and what was not tried, with why.
fn kept(
    candidates: Vec<(&'static str, JoinHandle<Result<RequestResult, String>>)>, plan: &Plan,
    head: &Fetched,
) -> (Vec<JoinHandle<Variant>>, Vec<String>) {
    let (mut variants, mut skipped) = (Vec::new(), Vec::new());
    if plan.once {
        skipped.push("variants: not made (--once)".to_owned());
    } else if plan.target.base.starts_with("http://")
        && plan.target.transport.protocol == Protocol::Auto
    {
        skipped.push("HTTP/2: not tried on http:// (--http2 asks for h2c)".into());
    }
    for (name, running) in candidates {
        match keep(name, plan, head) {
            Ok(description) => variants.push(tokio::spawn(async move {
                let result = running.await.unwrap_or_else(|e| Err(format!("did not run: {e}")));
                Variant { name, description, result }
            })),
            Err(why) => {
                running.abort();
                skipped.push(why);
            }
        }
    }
    (variants, skipped)
}

/// The request again, asking caches to go to the origin: the answer came from a cache.
fn no_cache(plan: &Plan) -> JoinHandle<Variant> {
    let (url, target) = (plan.url.clone(), plan.target.clone());
    let mut ask = plan.ask.clone();
    ask.headers.retain(|(n, _)| !["cache-control", "pragma"].contains(&&*n.to_ascii_lowercase()));
    ask.headers.extend(
        [("cache-control", "no-cache"), ("pragma", "no-cache")]
            .map(|(n, v)| (n.to_owned(), v.to_owned())),
    );
    tokio::spawn(async move {
        let description = "with `Cache-Control: no-cache` (the answer came from a cache)";
        let result = request(&url, &target, ask).await;
        Variant { name: "no-cache", description: description.into(), result }
    })
}

/// The whole diagnosis of what `options` ask for, printing nothing.
pub async fn diagnosis(options: &Options) -> Result<Diagnosis, Problem> {
    run(&plan(options)?, &mut Live::new(false)).await
}

/// For a test of your own: diagnoses `url` as `conformance diagnose URL` does with no flags,
/// silently, and panics with the whole report (verdict, reason, findings and their fixes)
/// unless the response streams. Give it a route that takes about a second (a few items some
/// 100 ms apart): a quicker one is `inconclusive`.
pub async fn assert_streams(url: &str) -> Diagnosis {
    match streams(&Options::for_url(url)).await {
        Ok(diagnosis) => diagnosis,
        Err(report) => panic!("{url} does not stream:\n{report}"),
    }
}

/// As [`assert_streams`], with the options of the CLI (`Options::for_url(url)`, then any flag
/// set on it): `Err` holds the report when the response does not stream, or why there was
/// no answer to judge.
pub async fn streams(options: &Options) -> Result<Diagnosis, String> {
    let diagnosis = diagnosis(options).await.map_err(|problem| problem.error)?;
    match diagnosis.verdict() {
        Verdict::Streams => Ok(diagnosis),
        _ => Err(text(&diagnosis)),
    }
}

/// The variants that may help: without `Accept-Encoding`, and over the other HTTP version
/// where there can be one.
fn candidates(plan: &Plan) -> Vec<(&'static str, Target, Ask)> {
    let mut out = Vec::new();
    let mut ask = plan.ask.clone();
    ask.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("accept-encoding"));
    out.push(("identity", plan.target.clone(), ask));
    let tls = plan.target.base.starts_with("https://");
    let other = match (plan.target.transport.protocol, tls) {
        // Over TLS, ALPN decides; if it picks h2, HTTP/1.1 is the other one.
        (Protocol::Auto, true) | (Protocol::Http2, _) => Some(Protocol::Http1),
        (Protocol::Http1, true) => Some(Protocol::Http2),
        _ => None,
    };
    if let Some(protocol) = other {
        let mut target = plan.target.clone();
        target.transport.protocol = protocol;
        out.push(("protocol", target, plan.ask.clone()));
    }
    out
}

/// Whether the variant `name` is worth its answer, given the main response's head: its
/// description if so, why not otherwise.
fn keep(name: &str, plan: &Plan, head: &Fetched) -> Result<String, String> {
    let version = head.version.as_deref().unwrap_or_default();
    match name {
        "identity" => match head.header("content-encoding") {
            Some(encoding) => {
                Ok(format!("without Accept-Encoding (the response came `{encoding}`-encoded)"))
            }
            None => {
                Err("without Accept-Encoding: not needed, the response is not compressed".into())
            }
        },
        _ if version == "h2" => Ok(format!("over HTTP/1.1 instead of {version}")),
        _ if plan.target.transport.protocol == Protocol::Http1 => {
            Ok(format!("over h2 instead of {version}"))
        }
        _ => Err("HTTP/2: not offered (ALPN chose http/1.1)".into()),
    }
}

async fn request(url: &str, target: &Target, ask: Ask) -> Result<RequestResult, String> {
    let mut exchange =
        Exchange::start(target, ask.clone()).await.map_err(|got| why_not(url, &got))?;
    while exchange.next().await {}
    let framing = exchange.framing();
    let got = exchange.finish();
    if !(200..300).contains(&got.status().unwrap_or_default()) {
        return Err(status_problem(url, &got));
    }
    Ok(result(url, target, &ask, got, framing))
}

/// Why an exchange ended before its body: no answer at all, or a body that cannot be decoded.
fn why_not(url: &str, got: &Fetched) -> String {
    let error = got.error.as_deref().unwrap_or("no response");
    match got.status() {
        None => format!("cannot get an answer from {url}: {error}"),
        Some(_) => format!("cannot read the body from {url}: {error}"),
    }
}

fn result(url: &str, target: &Target, ask: &Ask, got: Fetched, framing: Framing) -> RequestResult {
    let judgement = verdict::judge(&got, framing, client::ms(ask.deadline));
    RequestResult {
        url: url.to_owned(),
        method: ask.method.to_string(),
        protocol_asked: target.transport.protocol,
        request_headers: ask.headers.clone(),
        fetched: got,
        judgement,
    }
}

fn status_problem(url: &str, got: &Fetched) -> String {
    let status = got.status().unwrap_or_default();
    let reason =
        reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    let mut text = format!("{url} answered {status} {reason}");
    if (300..400).contains(&status) {
        let location = got.header("location").unwrap_or("nowhere");
        text.push_str(&format!(
            ", a redirect to {location}: diagnose does not follow redirects; give it that URL"
        ));
    } else {
        text.push_str(", not a streaming response: nothing to diagnose");
    }
    let body = String::from_utf8_lossy(&got.body);
    let body = body.trim();
    if !body.is_empty() {
        let shown: String = body.chars().take(200).collect();
        text.push_str(&format!(" (body: {shown:?})"));
    }
    text
}
