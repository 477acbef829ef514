//! Real reverse proxies (nginx, Apache httpd) in front of the broken server: the negative
//! controls show that a proxy's buffering is what the checks catch, and that
//! `X-Accel-Buffering: no` is what lifts nginx's. Our four examples run through both proxies
//! in their own suites (`clients::nginx`, `clients::apache`).

mod support;

use conformance::{
    Level, Outcome,
    diagnose::Cause,
    harness::proxies::{self, Kind, Proxy, Setup},
    harness::testing::runtime,
    harness::transcripts::shape,
};
use support::{
    broken::{self, Fault},
    cli::{diagnose, expect},
};

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

/// A stream that fails midway is cut by the server; whether the client sees the cut depends on
/// how nginx talks to it. Over HTTP/1.0 (nginx's default `proxy_http_version`) the upstream's
/// body is close-delimited and its cut looks like its end: nginx ends the client's response
/// cleanly and the failure is lost. Over HTTP/1.1 (the book's setting) the missing last chunk
/// tells nginx, and it cuts the client's response too. A server that ends the failed stream
/// cleanly is not cut by nginx either.
#[test]
fn nginx_passes_a_failure_on_only_over_http11() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let check = conformance::ids::failed_stream_is_cut;
    let clean = "then the body ended cleanly";
    behind(Kind::Nginx, Setup::Http10Upstream, Fault::None, &[(check, Expect::Fail(clean))]);
    behind(Kind::Nginx, Setup::Stock, Fault::None, &[(check, Expect::Pass)]);
    behind(Kind::Nginx, Setup::Stock, Fault::FailureEndsCleanly, &[(check, Expect::Fail(clean))]);
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

/// `diagnose` through a real proxy: the broken server with `fault` behind `kind` as `setup`,
/// `path` asked for with `flags` (the proxy's CA is trusted over TLS); with `compare`, the
/// origin is given as `--compare`.
fn diagnose_behind(
    kind: Kind, setup: Setup, fault: Fault, path: &str, compare: bool,
) -> support::cli::Said {
    let rt = runtime();
    let addr = rt.block_on(broken::start(fault));
    let proxy =
        Proxy::start_with(kind, setup, &format!("http://{addr}")).unwrap_or_else(|e| panic!("{e}"));
    let url = format!("{}{path}", proxy.base);
    let origin = format!("http://{addr}{path}");
    let ca = proxy.ca();
    let mut args = vec![url.as_str()];
    if setup == Setup::TlsEdge {
        args.extend(["--cacert", ca.to_str().expect("a UTF-8 path")]);
    }
    if compare {
        args.extend(["--compare", &origin]);
    }
    let said = diagnose(&args);
    println!("{} ({setup:?}) {fault:?} {path}: {}", kind.program(), said.json["reason"]);
    said
}

/// nginx 400 ms apart, as the proxy checks ask.
const SLOW: &str = "/stream?count=5&interval_ms=400";

/// The classic: nginx with its stock proxy settings (HTTP/1.0 to the upstream, buffering on)
/// in front of a handler that does not send `X-Accel-Buffering`. (With `proxy_http_version
/// 1.1` and a chunked upstream, nginx passes each chunk on even with buffering on: see
/// `diagnose_nginx_gzip_with_buffering` and `diagnose_nginx_with_buffering_off`.)
#[test]
fn diagnose_stock_nginx_buffering() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let stock = Setup::Http10Upstream;
    let said = diagnose_behind(Kind::Nginx, stock, Fault::NoAccelBuffering, SLOW, false);
    expect(&said, "buffered", &[Cause::ProxyBuffering], &[]);
    let finding = &said.json["findings"][0];
    assert!(finding["evidence"].as_str().unwrap().contains("nginx"), "{finding}");
    assert!(finding["fix"].as_str().unwrap().contains("X-Accel-Buffering: no"), "{finding}");

    // With the origin to compare: the hop between them is named.
    let said = diagnose_behind(Kind::Nginx, stock, Fault::NoAccelBuffering, SLOW, true);
    expect(&said, "buffered", &[Cause::ProxyBuffering], &[]);
    let evidence = said.json["findings"][0]["evidence"].as_str().unwrap().to_owned();
    assert!(evidence.contains("the hop between them buffers"), "{evidence}");
    assert!(evidence.contains("does not send `X-Accel-Buffering: no`"), "{evidence}");
}

/// nginx doing the compressing (`gzip on`), buffering on: held with gzip, streaming without,
/// so it is nginx's gzip that holds it.
#[test]
fn diagnose_nginx_gzip_with_buffering() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let said =
        diagnose_behind(Kind::Nginx, Setup::ProxyCompresses, Fault::NoAccelBuffering, SLOW, true);
    expect(&said, "buffered", &[Cause::Compression], &[]);
    let evidence = said.json["findings"][0]["evidence"].as_str().unwrap().to_owned();
    assert!(evidence.contains("nginx"), "{evidence}");
    assert!(said.json["requests"][0]["headers"].to_string().contains("gzip"), "{}", said.json);
    assert_eq!(said.json["requests"][1]["name"], "identity", "{}", said.json);
}

/// The padded HTML page (1 KiB of padding per item) through stock nginx: held in nginx's
/// buffers and sent a buffer at a time, or all at the end.
#[test]
fn diagnose_padded_html_through_stock_nginx() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let path = "/stream.html?count=12&interval_ms=400";
    let stock = Setup::Http10Upstream;
    let said = diagnose_behind(Kind::Nginx, stock, Fault::NoAccelBuffering, path, false);
    let verdict = said.json["verdict"].as_str().unwrap_or_default().to_owned();
    assert!(verdict == "batched" || verdict == "buffered", "{}", said.json);
    expect(&said, &verdict, &[Cause::ProxyBuffering], &[]);
    let reason = said.json["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("bytes"), "the burst size is given: {reason}");
}

#[test]
fn diagnose_nginx_with_buffering_off() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let said =
        diagnose_behind(Kind::Nginx, Setup::BufferingOff, Fault::NoAccelBuffering, SLOW, true);
    expect(&said, "streams", &[], &[]);
}

/// Apache with mod_proxy and mod_deflate streams, compressed (see the test above).
#[test]
fn diagnose_apache_with_mod_deflate() {
    if !proxies::available(Kind::Apache) {
        return;
    }
    let said =
        diagnose_behind(Kind::Apache, Setup::ProxyCompresses, Fault::NoAccelBuffering, SLOW, true);
    expect(&said, "streams", &[], &[]);
    assert!(said.json["requests"][0]["headers"].to_string().contains("gzip"), "{}", said.json);
}

/// nginx as the TLS + HTTP/2 edge with a certificate made for the test: `protocol` is h2, the
/// HTTP/1.1 variant streams too; without the CA the certificate problem is named.
#[test]
fn diagnose_nginx_tls_http2_edge() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let said = diagnose_behind(Kind::Nginx, Setup::TlsEdge, Fault::NoAccelBuffering, SLOW, false);
    expect(&said, "streams", &[], &[]);
    assert_eq!(said.json["protocol"], "h2", "{}", said.json);
    let protocol = &said.json["requests"][2];
    assert_eq!(protocol["name"], "protocol", "{}", said.json);
    assert_eq!(protocol["protocol"], "HTTP/1.1");
    assert_eq!(protocol["verdict"], "streams");

    let rt = runtime();
    let addr = rt.block_on(broken::start(Fault::None));
    let proxy = Proxy::start_with(Kind::Nginx, Setup::TlsEdge, &format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let said = diagnose(&[&format!("{}{SLOW}", proxy.base)]);
    assert_eq!(said.code, 2);
    let error = said.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("not signed by a CA this system trusts"), "{error}");
    assert!(error.contains("--cacert FILE") && error.contains("-k"), "what to do: {error}");
}

/// The README's and the CLI chapter's example: the classic 10 lines 1 s apart from a handler
/// without `X-Accel-Buffering`, through nginx with its stock proxy settings, the origin given
/// to compare. The recording (`docs/src/diagnose-nginx.txt`) must be what the CLI prints today,
/// but for the figures; `SYNC_DOCS=1` records it anew.
#[test]
fn recorded_diagnose_output_is_current() {
    if !proxies::available(Kind::Nginx) {
        return;
    }
    let rt = runtime();
    let addr = rt.block_on(broken::start(Fault::NoAccelBuffering));
    let proxy = Proxy::start_with(Kind::Nginx, Setup::Http10Upstream, &format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let path = "/stream?count=10&interval_ms=1000";
    let (url, origin) = (format!("{}{path}", proxy.base), format!("http://{addr}{path}"));
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["diagnose", &url, "--compare", &origin])
        .output()
        .expect("the CLI runs");
    println!("diagnose of the classic stream took {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let got = format!(
        "$ conformance diagnose '{url}' --compare '{origin}'\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/diagnose-nginx.txt");
    if std::env::var_os("SYNC_DOCS").is_some() {
        std::fs::write(&file, &got).expect("write the recording");
        return;
    }
    let recorded = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(
        shape(&recorded),
        shape(&got),
        "{} is not what diagnose prints now; record it again with \
         SYNC_DOCS=1 cargo test -p conformance --test proxies recorded_diagnose_output\n{got}",
        file.display()
    );
}

/// `target/<profile>/examples/broken_server`, which `cargo test` builds beside this test: the
/// balancer tests stop and start their instances as processes.
fn broken_server(fault: &str) -> conformance::servers::Launch {
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe.parent().and_then(std::path::Path::parent).expect("target/<profile>");
    let mut launch = conformance::servers::Launch::new(profile_dir.join("examples/broken_server"));
    launch.args = vec!["--fault".into(), fault.into()];
    launch
}

/// A server that ignores `Last-Event-ID` behind each balancer: after the first SIGKILL the
/// clients it had start again at 1, and the failover check says which ids came twice.
#[test]
fn failover_catches_a_server_that_ignores_last_event_id() {
    use conformance::harness::balanced::{self, Disruption, Pool};
    for kind in [Kind::Nginx, Kind::Haproxy] {
        if !proxies::available(kind) {
            continue;
        }
        let launch = broken_server("events-ignore-last-event-id");
        let outcome = runtime().block_on(async {
            let mut pool =
                Pool::start(&launch, balanced::INSTANCES).unwrap_or_else(|e| panic!("{e}"));
            let proxy = Proxy::balance(kind, Setup::Balanced, &pool.bases())
                .unwrap_or_else(|e| panic!("{e}"));
            // It never ends (every reconnect starts again): 20 s are enough to see it.
            let limit = std::time::Duration::from_secs(20);
            let run = balanced::failover(&proxy.base, &mut pool, Disruption::Kill, None, limit);
            balanced::judge(&run.await)
        });
        println!("{}: {} {}", kind.program(), outcome.level, outcome.reason);
        assert!(
            outcome.level == Level::Fail && outcome.reason.contains("twice ("),
            "behind {}: expected a failure naming ids got twice, got {} {}",
            kind.program(),
            outcome.level,
            outcome.reason
        );
    }
}

/// A stream without keep-alive comments behind each balancer's 2 s read timeout: the idle
/// check, asked for comments every second, finds it cut.
#[test]
fn idle_check_catches_a_stream_without_keepalive() {
    use conformance::harness::balanced::{self, Pool};
    for kind in [Kind::Nginx, Kind::Haproxy] {
        if !proxies::available(kind) {
            continue;
        }
        let launch = broken_server("events-no-keepalive");
        let outcome = runtime().block_on(async {
            let pool = Pool::start(&launch, 1).unwrap_or_else(|e| panic!("{e}"));
            let proxy = Proxy::balance(kind, Setup::BalancedIdle, &pool.bases())
                .unwrap_or_else(|e| panic!("{e}"));
            balanced::idle(&proxy.base, std::time::Duration::from_secs(1)).await
        });
        println!("{}: {} {}", kind.program(), outcome.level, outcome.reason);
        assert!(
            outcome.level == Level::Fail && outcome.reason.contains("still cut it"),
            "behind {}: expected the cut, got {} {}",
            kind.program(),
            outcome.level,
            outcome.reason
        );
    }
}
