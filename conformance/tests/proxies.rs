//! Real reverse proxies (nginx, Apache httpd) in front of the broken server: the negative
//! controls show that a proxy's buffering is what the checks catch, and that
//! `X-Accel-Buffering: no` is what lifts nginx's. Our four examples run through both proxies
//! in their own suites (`clients::nginx`, `clients::apache`).

mod support;

use conformance::{
    Level, Outcome,
    proxies::{self, Kind, Proxy, Setup},
    testing::runtime,
};
use support::broken::{self, Fault};

/// What a check should say through the proxy.
#[derive(Clone, Copy)]
enum Expect {
    /// Fails, with this in its reason.
    Fail(&'static str),
    /// Passes.
    Pass,
}

/// The broken server with `fault` behind `kind` set up as `setup`; each check must come out
/// as expected.
fn behind(kind: Kind, setup: Setup, fault: Fault, checks: &[(conformance::CheckId, Expect)]) {
    let rt = runtime();
    let addr = rt.block_on(broken::start(fault));
    let proxy =
        Proxy::start_with(kind, setup, &format!("http://{addr}")).unwrap_or_else(|e| panic!("{e}"));
    let what = format!("behind {} ({setup:?}), {fault:?}", kind.program());
    for &(check, expect) in checks {
        let outcome = proxies::run_check(&proxy.base, check);
        println!("{check} {what}: {} {}", outcome.level, outcome.reason);
        let (level, reason) = match expect {
            Expect::Fail(reason) => (Level::Fail, reason),
            Expect::Pass => (Level::Pass, ""),
        };
        assert!(
            outcome.level == level && outcome.reason.contains(reason),
            "{check} {what}: expected {level} mentioning {reason:?}, got {} {}\n{}\
             --- config ---\n{}\n{}",
            outcome.level,
            outcome.reason,
            evidence(&outcome),
            proxy.config(),
            proxy.logs()
        );
    }
}

fn evidence(outcome: &Outcome) -> String {
    outcome.evidence.iter().map(|e| e.to_string()).collect()
}

/// nginx asks the upstream over HTTP/1.0 unless told otherwise, and buffers what comes back:
/// without `X-Accel-Buffering: no`, five 2-byte lines arrive together at the end. The same
/// nginx in front of the same server with the header streams them.
#[test]
fn nginx_buffers_a_stream_without_x_accel_buffering() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let setup = Setup::Http10Upstream;
    behind(
        Kind::Nginx,
        setup,
        Fault::NoAccelBuffering,
        &[
            (conformance::ids::first_line_is_prompt, Expect::Fail("first line arrived")),
            (conformance::ids::gaps_hold_interval, Expect::Fail("the stream is batched")),
            (conformance::ids::events_stream_event_by_event, Expect::Fail("first line arrived")),
        ],
    );
    behind(
        Kind::Nginx,
        setup,
        Fault::None,
        &[
            (conformance::ids::first_line_is_prompt, Expect::Pass),
            (conformance::ids::gaps_hold_interval, Expect::Pass),
            (conformance::ids::events_stream_event_by_event, Expect::Pass),
        ],
    );
}

/// nginx's own gzip holds a buffered response until it ends: the upstream is not asked to
/// compress, nginx does, and without `X-Accel-Buffering: no` each endpoint comes at the end
/// (over HTTP/1.1, which nginx otherwise passes on chunk by chunk).
#[test]
fn nginx_gzip_buffers_a_stream_without_x_accel_buffering() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let setup = Setup::ProxyCompresses;
    behind(
        Kind::Nginx,
        setup,
        Fault::NoAccelBuffering,
        &[(conformance::ids::streams_with_gzip, Expect::Fail("/stream gzip: first line arrived"))],
    );
    behind(Kind::Nginx, setup, Fault::None, &[(conformance::ids::streams_with_gzip, Expect::Pass)]);
}

/// Apache ignores `X-Accel-Buffering`, and needs it not: `mod_proxy_http` flushes whenever the
/// upstream pauses, and `mod_deflate` compresses each flush on its own, so a server without
/// the header streams through it, compressed by Apache too.
#[test]
fn apache_streams_without_x_accel_buffering() {
    if !proxies::available(Kind::Apache) {
        return;
    }
    behind(
        Kind::Apache,
        Setup::ProxyCompresses,
        Fault::NoAccelBuffering,
        &[
            (conformance::ids::gaps_hold_interval, Expect::Pass),
            (conformance::ids::streams_with_gzip, Expect::Pass),
        ],
    );
}

/// A collected body stays collected through Apache: the checks still see it.
#[test]
fn apache_passes_a_buffered_stream_on_as_it_is() {
    if !proxies::available(Kind::Apache) {
        return;
    }
    behind(
        Kind::Apache,
        Setup::Stock,
        Fault::Buffered,
        &[(conformance::ids::gaps_hold_interval, Expect::Fail("the stream is batched"))],
    );
}
