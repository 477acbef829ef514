//! Every check can fail: each one, run against the broken server with the one fault it exists to
//! catch, fails with the expected reason. The same server without a fault passes the whole
//! catalogue, so each failure is the fault's doing, not the fixture's.

#[path = "../support/mod.rs"]
mod support;
// The controls of the real clients (Chromium, curl, the reqwest client).
mod clients;

use std::process::Command;

use clap::ValueEnum;
use conformance::{
    CheckId, Config, Level, Outcome,
    checks::Local,
    client::Protocol,
    harness::testing::{run_catalogue, runtime, share_machine, take_machine, test_config},
    servers::Launch,
};
use support::broken::{self, Fault};

/// The broken server as a program (cargo builds the examples for `cargo test`), for the
/// checks that start and signal instances of their own.
fn broken_program(fault: Fault) -> Launch {
    let deps = std::env::current_exe().expect("the test's path");
    let program = deps
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug")
        .join("examples/broken_server");
    let name = fault.to_possible_value().expect("a fault name").get_name().to_owned();
    Launch { program, args: vec!["--fault".into(), name] }
}

/// The broken server with `fault`, in this process, with what the checker may know about it.
async fn broken_config(fault: Fault) -> Config {
    let (addr, log) = broken::start_logged(fault).await;
    let mut cfg = test_config(&format!("http://{addr}"));
    cfg.local = Local {
        pid: Some(std::process::id()),
        log: Some(log),
        launch: Some(broken_program(fault)),
    };
    cfg
}

/// Runs `check` against the broken server with `fault`: the HTTP/2 checks over h2c.
fn run_check(fault: Fault, check: CheckId) -> Outcome {
    let entry = conformance::checks::entry(check);
    let protocol =
        if entry.concern.starts_with("http2") { Protocol::Http2 } else { Protocol::Auto };
    run_check_over(fault, check, protocol)
}

fn run_check_over(fault: Fault, check: CheckId, protocol: Protocol) -> Outcome {
    // As in the suites: malformed requests are judged by what comes back, not when, and the
    // 45 s wait for headers that never end must not hold back a browser test.
    let _machine = (check != conformance::ids::malformed_requests_refused).then(share_machine);
    runtime().block_on(async {
        let mut cfg = broken_config(fault).await;
        cfg.target.transport.protocol = protocol;
        conformance::checks::entry(check).run(&cfg).await
    })
}

fn expect_fail(check: CheckId, fault: Fault, reason: &str) {
    let outcome = run_check(fault, check);
    let evidence: String = outcome.evidence.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        outcome.level,
        Level::Fail,
        "{check} should fail on {fault:?} but says {}: {}\n{evidence}",
        outcome.level,
        outcome.reason
    );
    assert!(
        outcome.reason.contains(reason),
        "{check} failed on {fault:?} for another reason: {:?} (expected it to mention {reason:?})\n{evidence}",
        outcome.reason
    );
}

macro_rules! controls {
    ($($check:ident: $fault:ident => $reason:literal;)*) => {
        $(
            #[test]
            fn $check() {
                expect_fail(conformance::ids::$check, Fault::$fault, $reason);
            }
        )*
        const CONTROLLED: &[CheckId] = &[$(conformance::ids::$check),*];
    };
}

controls! {
    reachable: NotListening => "cannot reach";
    content_type_is_text_plain_utf8: WrongContentType => "content-type is \"application/octet-stream\"";
    cache_control_no_cache: NoCacheControl => "no cache-control header";
    x_accel_buffering_no: NoAccelBuffering => "no x-accel-buffering header";
    nosniff: NoNosniff => "no x-content-type-options header";
    no_content_length: ContentLength => "content-length: 10 is set";
    no_etag: Etag => "etag: \"abc\" is set";
    no_last_modified: LastModified => "last-modified: ";
    chunked_on_http11: NotChunked => "no transfer-encoding header";
    body_counts_lines: WrongContent => r#"line 1 is "0\n", expected "1\n""#;
    classic_defaults: WrongDefaults => "body ends after 3 of 10 lines";
    first_line_is_prompt: FirstLineLate => "first line arrived";
    no_line_early: FastSchedule => "before its due time";
    gaps_hold_interval: Pairs => "lines 2 and 3 arrived";
    no_accumulated_drift: Drift => "after its due time";
    ends_after_last_line: Linger => "body ended";
    head_matches_get_headers: HeadMissingHeaders => "HEAD differs from GET: cache-control";
    head_has_no_body: HeadBody => "HEAD response carries 40 body bytes";
    head_is_prompt: HeadRunsGenerator => "the generator seems to run for HEAD";
    http10_close_delimited: ChunkedToHttp10 => "Transfer-Encoding: chunked";
    http10_streams: BufferedForHttp10 => "batched";
    http10_compressed_close_delimited: ChunkedToCompressedHttp10 => "Content-Encoding gzip and Transfer-Encoding: chunked";
    h2_headers_first: H2HeadersLate => "the response head (HEADERS) came after";
    h2_item_per_data_frame: H2Coalesced => "carried 2 items";
    h2_100_streams_one_connection: H2FewStreams => "allows 10 concurrent streams";
    h2_reset_stops_only_its_stream: KeepsGenerating => "the generator kept running";
    h2_shutdown_goaway: H2NoGoaway => "got no GOAWAY";
    bad_input_rejected: AcceptsBadInput => "?count=abc got 200";
    bad_input_explained: SilentBadInput => "empty message";
    streams_after_bad_input: DiesAfterBadInput => "after the bad queries";
    index_names_endpoints: NoIndex => "GET / answered 404";
    unknown_path_404: NoNotFound => "expected 404";
    other_methods_405_with_allow: NoAllow => "405 with Allow None";
    html_content_type: HtmlWrongContentType => "expected text/html; charset=utf-8";
    html_body_and_padding: HtmlIgnoresPad => "followed by 1024 spaces, expected pad = 0";
    html_streams_div_by_div: HtmlBuffered => "first line arrived";
    events_content_type: EventsWrongContentType => "expected text/event-stream";
    events_ids_and_data: EventsNoIds => "has id None";
    events_retry_hint: EventsNoRetry => "no retry: hint";
    events_stream_event_by_event: EventsBuffered => "first line arrived";
    events_resume_after_last_event_id: EventsIgnoreLastEventId => "does not resume";
    events_bad_last_event_id: EventsAcceptBadLastEventId => "Last-Event-ID: abc got Some(200), expected 400";
    events_keepalive: EventsNoKeepalive => "no comment line";
    streams_with_gzip: NeverFlushes => "/stream gzip: first line arrived";
    streams_with_br: NeverFlushes => "/stream br: first line arrived";
    streams_with_zstd: NeverFlushes => "/stream zstd: first line arrived";
    streams_with_deflate: NeverFlushes => "/stream deflate: first line arrived";
    streams_with_identity: CompressesUnasked => "Content-Encoding: gzip, which the request did not offer";
    streams_without_accept_encoding: CompressesUnasked => "Content-Encoding: gzip, which the request did not offer";
    ordinary_responses_negotiated: CompressesUnasked => "GET / without Accept-Encoding came back with Content-Encoding: gzip";
    malformed_requests_refused: AcceptsNoHost => "HTTP/1.1 without Host: 200";
    disconnect_stops_generator: KeepsGenerating => "the generator kept running";
    backpressure_bounded: BuffersAhead => "the server buffers ahead of a slow client";
    load_200_streams: OneAtATime => "of 200 concurrent streams failed";
    shutdown_drains_streams: ShutdownCutsStreams => "streams were cut short";
    shutdown_bounded_by_grace: ShutdownIgnoresGrace => "expected when the 1 s grace ran out";
    failed_stream_is_cut: FailureEndsCleanly => "items 1–3, then the body ended cleanly";
    failed_stream_is_cut_compressed: FailureFinishesCompression => "/stream with gzip: items 1–3, then the body ended cleanly";
    events_failure_resumed: FailureEndsCleanly => "the event stream ended cleanly instead of being cut";
    http10_failed_stream_closes: FailureHangs => "the connection stayed open after the failure";
    h2_failed_stream_spares_others: H2FailureEndsStream => "items 1–3, then END_STREAM";
    h2_rapid_reset_goaway: H2NoResetLimit => "no GOAWAY and no close after 20000";
    h2_continuation_flood_goaway: H2NoHeaderLimit => "no GOAWAY and no close after 10000";
    h2_stream_flood_bounded: H2NoStreamLimit => "advertises no MAX_CONCURRENT_STREAMS";
    h2_empty_frames_goaway: H2EmptyFramesUnbounded => "no GOAWAY and no close after 100000 empty DATA frames";
    pipelining_bounded: SpinsOnUnreadClient => "so the server polls the connection instead of waiting for it";
    request_smuggling_refused: SmugglesBody => "Content-Length with Transfer-Encoding: chunked: a second response (\"HTTP/1.1 404 Not Found\")";
}

/// A connection that has sent nothing (a browser's preconnected socket, say) must not hold a
/// shutdown whose streams have all ended.
#[test]
fn idle_connections_must_not_hold_shutdown() {
    expect_fail(
        conformance::ids::shutdown_drains_streams,
        Fault::ShutdownWaitsForIdle,
        "had sent nothing",
    );
}

/// A request whose headers never finish must not hold its connection forever.
#[test]
fn unfinished_headers_must_be_closed() {
    expect_fail(
        conformance::ids::malformed_requests_refused,
        Fault::NoHeaderTimeout,
        "headers that never finish: no answer and still open",
    );
}

/// A compressor that never flushes delivers the right content, all at the end: the content
/// passes and only the timing fails.
#[test]
fn unflushed_compression_fails_on_timing_not_content() {
    let outcome = run_check(Fault::NeverFlushes, conformance::ids::streams_with_gzip);
    assert_eq!(outcome.level, Level::Fail, "{}", outcome.reason);
    assert!(
        outcome.reason.contains("the compressor does not flush each item"),
        "{}",
        outcome.reason
    );
    let identity = run_check(Fault::NeverFlushes, conformance::ids::streams_with_identity);
    assert_eq!(identity.level, Level::Pass, "{}", identity.reason);
}

/// HEAD over h2 is read to its end: DATA frames after the head are a body, as bytes after an
/// HTTP/1.1 HEAD response are.
#[test]
fn head_body_fails_over_h2_too() {
    let check = conformance::ids::head_has_no_body;
    let good = run_check_over(Fault::None, check, Protocol::Http2);
    assert_eq!(good.level, Level::Pass, "{}", good.reason);
    let bad = run_check_over(Fault::HeadBody, check, Protocol::Http2);
    assert_eq!(bad.level, Level::Fail, "{}", bad.reason);
    assert!(bad.reason.contains("HEAD response carries"), "{}", bad.reason);
    println!("over h2c: {}; with a body: {}", good.reason, bad.reason);
}

/// A server with no compression at all cannot break its streams that way: a warning.
#[test]
fn no_compression_is_a_warning() {
    let outcome = run_check(Fault::NoCompression, conformance::ids::ordinary_responses_negotiated);
    assert_eq!(outcome.level, Level::Warn, "{}", outcome.reason);
    assert!(outcome.reason.contains("not compressed"), "{}", outcome.reason);
}

#[test]
fn every_check_has_a_negative_control() {
    let mut catalogue: Vec<&str> = conformance::catalogue().iter().map(|c| c.name).collect();
    let mut controlled: Vec<&str> = CONTROLLED.iter().map(|id| id.name()).collect();
    catalogue.sort_unstable();
    controlled.sort_unstable();
    assert_eq!(catalogue, controlled);
}

/// A message that names the parameter and the value but not what would be accepted.
#[test]
fn message_without_the_range_fails() {
    expect_fail(
        conformance::ids::bad_input_explained,
        Fault::VagueBadInput,
        "does not give the allowed range (up to 1000000)",
    );
}

/// The classic failure: the whole body collected, then sent at the end.
#[test]
fn collected_body_fails_the_timing_checks() {
    expect_fail(conformance::ids::first_line_is_prompt, Fault::Buffered, "first line arrived");
    expect_fail(conformance::ids::gaps_hold_interval, Fault::Buffered, "batched");
}

#[test]
fn fault_free_server_passes_everything() {
    let report = {
        let _machine = share_machine();
        runtime().block_on(async { run_catalogue(&broken_config(Fault::None).await).await })
    };
    assert!(!report.failed(), "{}", report.table());
    let h2 = conformance::catalogue().iter().filter(|c| c.concern.starts_with("http2")).count();
    assert_eq!(report.count(Level::NotApplicable), h2, "{}", report.table());
    assert_eq!(
        report.count(Level::Pass) + h2,
        conformance::catalogue().len(),
        "{}",
        report.table()
    );
    // Over h2c the server serves `/stream` only: the HTTP/2 checks, each of which must pass.
    for check in conformance::catalogue().into_iter().filter(|c| c.concern.starts_with("http2")) {
        let outcome = run_check(Fault::None, check.id);
        assert_eq!(outcome.level, Level::Pass, "{check:?} over h2c: {}", outcome.reason);
        println!("{check:?} over h2c: {}", outcome.reason);
    }
}

/// The CLI pointed at a buffering server exits non-zero and says why; at a good one, zero.
#[test]
fn cli_exit_code_follows_the_verdict() {
    let _machine = share_machine();
    let rt = runtime();
    for (fault, success, says) in [(Fault::Buffered, false, "batched"), (Fault::None, true, "PASS")]
    {
        let addr = rt.block_on(broken::start(fault));
        let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
            .args(["--url", &format!("http://{addr}"), "--interval-ms", "200"])
            .args(["--check", "first_line_is_prompt", "--check", "gaps_hold_interval"])
            .output()
            .expect("run the CLI");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.success(), success, "{fault:?}:\n{stdout}");
        assert!(stdout.contains(says), "{fault:?}: expected {says:?} in\n{stdout}");
    }
}

/// The benchmark's floor (`examples/floor.rs`, hyper alone) serves `/stream` as the contract
/// says: the stream checks pass against it, so its figures are a fair floor.
#[test]
fn floor_streams_as_the_contract_says() {
    let _machine = share_machine();
    let program = broken_program(Fault::None).program.with_file_name("floor");
    let server = conformance::servers::Spawned::start(&program, std::time::Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cfg = test_config(&server.base);
    cfg.local = Local::of(&server, None);
    let checks = [
        conformance::ids::first_line_is_prompt,
        conformance::ids::no_line_early,
        conformance::ids::gaps_hold_interval,
        conformance::ids::no_accumulated_drift,
        conformance::ids::ends_after_last_line,
        conformance::ids::body_counts_lines,
        conformance::ids::load_200_streams,
    ];
    runtime().block_on(async {
        for name in checks {
            let outcome = conformance::checks::entry(name).run(&cfg).await;
            assert_eq!(outcome.level, Level::Pass, "floor: {name}: {}", outcome.reason);
            println!("floor {name}: {}", outcome.reason);
        }
    });
}

/// The CLI run with `args` exits with `code` and says `says` on stderr.
fn cli_exits_with(args: &[&str], code: i32, says: &str) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_conformance")).args(args).output().expect("run the CLI");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{args:?}:\n{stderr}");
    assert!(stderr.contains(says), "{args:?}: expected {says:?} in\n{stderr}");
}

/// The transport flags of `--url` are refused where they would be ignored, and `--url` refuses
/// what it cannot reach.
#[test]
fn url_transport_flags_are_checked() {
    for (args, says) in [
        (&["--http2", "matrix"][..], "--http2 before `matrix` is for --url"),
        (&["--cacert", "ca.pem", "diagnose", "http://127.0.0.1:1"], "give it after `diagnose`"),
        (&["-k", "bench"], "`bench` does not use it"),
        (&["--url", "ftp://127.0.0.1:1"], "--url must start with http:// or https://"),
        (&["--url", "https://127.0.0.1:1", "--cacert", "/nonexistent.pem"], "cannot read it"),
    ] {
        cli_exits_with(args, 2, says);
    }
}

/// `bench` refuses, before building anything, the checks' options and values it cannot use.
#[test]
fn bench_refuses_options_it_cannot_use() {
    for (args, says) in [
        (&["bench", "--check", "gaps_hold_interval"][..], "--check is for the checks, not bench"),
        (&["bench", "--tolerance-ms", "50"], "--tolerance-ms is for the checks"),
        (&["bench", "--concurrency", "0"], "--concurrency"),
        (&["bench", "--fast-streams", "1,x"], "--fast-streams"),
        (&["bench", "--server", "floor=/bin/true"], "NAME=PROGRAM"),
        (&["bench", "--frameworks", "django"], "--frameworks"),
        (&["bench", "--transports", "quic"], "--transports"),
        (&["bench", "--h2-connections", "0"], "--h2-connections"),
        (&["bench", "--source-addresses", "127.0.0.2,192.0.2.1"], "not a loopback address"),
        (&["bench", "--source-addresses", "localhost"], "expected an IPv4 loopback address"),
    ] {
        cli_exits_with(args, 2, says);
    }
    // Caught by the bench itself, still before it builds anything.
    for (args, says) in [
        (&["bench", "--concurrency", "10,20,10"][..], "--concurrency lists 10 twice"),
        (&["bench", "--server", "axum=/bin/true"], "two servers are named \"axum\""),
        (&["bench", "--transports", "h2c"], "h2c is not benchmarked"),
        (
            &["bench", "--baseline", "/nonexistent/bench.json"],
            "--baseline /nonexistent/bench.json: cannot read it",
        ),
        (&["bench", "--baseline", "Cargo.toml"], "not a bench.json written by `conformance bench`"),
        (&["bench", "--transports", "h2,http1,h2"], "--transports lists h2 twice"),
        (
            &["bench", "--source-addresses", "127.0.0.2,127.0.0.3,127.0.0.2"],
            "--source-addresses lists 127.0.0.2 twice",
        ),
        // One address has at most 64 512 ephemeral ports.
        (
            &["bench", "--concurrency", "100000", "--source-addresses", "127.0.0.2"],
            "--source-addresses gives 1: list more",
        ),
    ] {
        cli_exits_with(args, 1, says);
    }
}
