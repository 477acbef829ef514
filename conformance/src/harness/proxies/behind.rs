//! The catalogue's timing and compression checks run through a real proxy in front of a
//! server binary: the suites' `clients::nginx` and `clients::apache`.

use std::{fs, path::Path, time::Duration};

use super::{Kind, Proxy, Setup, available};
use crate::{
    checks::{CheckId, Config},
    harness::testing::KnownLimit,
    outcome::{Level, Outcome},
    servers::Spawned,
};

/// The checks run through every proxy that passes the stream on: the timing of all three
/// streaming endpoints, with and without compression, and a failed stream that must still look
/// cut to the client.
pub const CHECKS: &[CheckId] = &[
    crate::checks::ids::first_line_is_prompt,
    crate::checks::ids::gaps_hold_interval,
    crate::checks::ids::no_accumulated_drift,
    crate::checks::ids::html_streams_div_by_div,
    crate::checks::ids::events_stream_event_by_event,
    crate::checks::ids::streams_with_gzip,
    crate::checks::ids::streams_without_accept_encoding,
    crate::checks::ids::failed_stream_is_cut,
    crate::checks::ids::failed_stream_is_cut_compressed,
    crate::checks::ids::events_failure_resumed,
];

/// Through the stock proxy (plain HTTP/1.1), also a pipelining client that does not read: the
/// proxy meets it, and the CPU judged is the server's behind it.
const STOCK_LIMITS: &[CheckId] = &[crate::checks::ids::pipelining_bounded];

/// Through nginx as the TLS and HTTP/2 edge, also the limits per HTTP/2 connection: nginx is
/// then the one that meets the attacks, which is the mitigation for a server without limits of
/// its own (actix, Rocket); the memory judged is the server's behind it. Not the empty-frame
/// flood: nginx 1.22 takes 100 000 empty DATA frames without GOAWAY itself (it passes none on
/// to the server, which sees an ordinary HTTP/1.1 request), so the check would judge nginx.
const TLS_EDGE_LIMITS: &[CheckId] = &[
    crate::checks::ids::h2_rapid_reset_goaway,
    crate::checks::ids::h2_continuation_flood_goaway,
    crate::checks::ids::h2_stream_flood_bounded,
];

/// What runs through each setup of `kind`: [`CHECKS`] and pipelining through the stock proxy;
/// the compression checks through a proxy that does all the compressing itself; and for nginx,
/// [`CHECKS`] and the HTTP/2 limits through it as the TLS edge, and the timing through its
/// HTTP/1.0 default.
fn plan(kind: Kind) -> Vec<(Setup, Vec<CheckId>)> {
    let mut plan = vec![
        (Setup::Stock, [CHECKS, STOCK_LIMITS].concat()),
        (
            Setup::ProxyCompresses,
            vec![
                crate::checks::ids::streams_with_gzip,
                crate::checks::ids::streams_without_accept_encoding,
                crate::checks::ids::failed_stream_is_cut_compressed,
            ],
        ),
    ];
    if kind == Kind::Nginx {
        plan.push((Setup::TlsEdge, [CHECKS, TLS_EDGE_LIMITS].concat()));
        plan.push((
            Setup::Http10Upstream,
            vec![
                crate::checks::ids::first_line_is_prompt,
                crate::checks::ids::gaps_hold_interval,
                crate::checks::ids::html_streams_div_by_div,
                crate::checks::ids::events_stream_event_by_event,
                crate::checks::ids::streams_with_gzip,
            ],
        ));
    }
    plan
}

/// The stream shape of the checks through a proxy: 5 items 400 ms apart, ±200 ms. A proxy
/// adds a process and two more hops, and on a loaded 2-core machine a stall of 100 ms now and
/// then is real; a buffering proxy holds everything until the end, far outside either margin.
pub const PROXY_INTERVAL: Duration = Duration::from_millis(400);

/// Runs `check` against `base` once, with [`PROXY_INTERVAL`].
pub fn run_check(base: &str, check: CheckId) -> Outcome {
    run_check_trusting(base, check, None, None)
}

/// [`run_check`], over TLS trusting the PEM certificates `ca`; `pid` is the server behind the
/// proxy, whose memory the checks that measure it read.
fn run_check_trusting(
    base: &str, check: CheckId, ca: Option<Vec<u8>>, pid: Option<u32>,
) -> Outcome {
    let entry = crate::checks::entry(check);
    let mut cfg = Config::with_timing(base, 5, PROXY_INTERVAL);
    cfg.target.transport.cacert = ca;
    cfg.local.pid = pid;
    crate::harness::testing::runtime().block_on(entry.run(&cfg))
}

/// Starts `binary` and runs [`CHECKS`] through the stock nginx in front of it (5 lines 400 ms
/// apart, ±200 ms), with a pipelining client, and through nginx as the TLS and HTTP/2 edge,
/// with the HTTP/2 attacks; then the compression checks through an nginx that does all the
/// compressing, and the timing through nginx's HTTP/1.0 default (see [`plan`]). Panics with the reasons, the evidence, the configs and the proxy's
/// and server's logs if any does not pass (a check in `known` must fail for its reason);
/// prints the pass reasons. Skipped without nginx (see [`available`]).
pub fn run_behind_nginx(binary: &str, known: &[KnownLimit]) {
    run_behind(Kind::Nginx, binary, known);
}

/// As [`run_behind_nginx`], with Apache httpd (`mod_proxy_http`, `mod_deflate`): [`CHECKS`]
/// and the pipelining client through the stock setup, the compression checks with Apache doing
/// all the compressing.
pub fn run_behind_apache(binary: &str, known: &[KnownLimit]) {
    run_behind(Kind::Apache, binary, known);
}

/// The check whose known limit `check` shares behind `setup`: behind a proxy that does the
/// compressing, an upstream that ends a failed stream cleanly gets a clean gzip end from the
/// proxy too, so the compressed check fails as the uncompressed one does upstream.
fn inherited(setup: Setup, check: CheckId) -> CheckId {
    match (setup, check) {
        (Setup::ProxyCompresses, crate::checks::ids::failed_stream_is_cut_compressed) => {
            crate::checks::ids::failed_stream_is_cut
        }
        _ => check,
    }
}

/// Whether a known limit of the server may pass behind `setup`: the limits per HTTP/2
/// connection, behind the proxy that terminates HTTP/2; a pipelining client, behind any proxy
/// (it reads the client's requests and passes them on one at a time).
fn mitigated(setup: Setup, check: CheckId) -> bool {
    match setup {
        Setup::TlsEdge => crate::checks::entry(check).concern.starts_with("http2"),
        _ => check == crate::checks::ids::pipelining_bounded,
    }
}

fn run_behind(kind: Kind, binary: &str, known: &[KnownLimit]) {
    if !available(kind) {
        return;
    }
    let _machine = crate::harness::testing::share_machine();
    let program = kind.program();
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let mut failures = String::new();
    for (setup, checks) in plan(kind) {
        let proxy = Proxy::start_with(kind, setup, &server.base).unwrap_or_else(|e| {
            panic!("{binary} behind {e}\n--- server log ---\n{}", server.stderr())
        });
        let mut failed = false;
        let ca = (setup == Setup::TlsEdge).then(|| fs::read(proxy.ca()).expect("the proxy's CA"));
        for &name in &checks {
            let outcome = run_check_trusting(&proxy.base, name, ca.clone(), Some(server.pid()));
            let what = format!("{name} behind {program} ({setup:?})");
            let limit = known.iter().find(|(id, _)| *id == inherited(setup, name));
            match (outcome.level, limit) {
                (Level::Pass, None) => {
                    println!("{what}: {}", outcome.reason);
                    continue;
                }
                (Level::Fail, Some((_, reason))) if outcome.reason.contains(reason) => {
                    println!("{what}: fails as known: {}", outcome.reason);
                    continue;
                }
                // The proxy meets the attacks itself (nginx as the HTTP/2 edge, any proxy a
                // pipelining client): the server's own limit no longer shows, which is the
                // mitigation the book gives.
                (Level::Pass, Some(_)) if mitigated(setup, name) => {
                    println!("{what}: a known limit of the server, mitigated: {}", outcome.reason);
                    continue;
                }
                _ => {}
            }
            failed = true;
            let evidence: String = outcome.evidence.iter().map(|e| e.to_string()).collect();
            failures
                .push_str(&format!("{what}: {} {}\n{evidence}\n", outcome.level, outcome.reason));
        }
        if failed {
            failures.push_str(&format!(
                "--- {program} config ({setup:?}) ---\n{}\n{}\n",
                proxy.config(),
                proxy.logs()
            ));
        }
    }
    if !failures.is_empty() {
        panic!("{binary} behind {program}:\n{failures}--- server log ---\n{}", server.stderr());
    }
}
