//! The suite's tests with real clients against the binary: curl, the reqwest client example,
//! `diagnose` (over HTTP and HTTPS), Chromium, and three instances behind a load balancer.

use std::{path::Path, time::Duration};

use super::{expect_pass, runtime, share_machine, take_machine, test_config};
use crate::{
    client::ms,
    harness::{
        real_clients,
        transports::{Certificates, Serving},
    },
    outcome::Level,
    servers::{Launch, Spawned},
};

/// `curl -N` (plain, or `--compressed`) against `path` of the binary: the count arrives line by
/// line, as curl itself prints it. Skipped without curl (see [`real_clients::require`]).
pub fn run_curl(binary: &str, endpoint: &str, compressed: bool) {
    if !real_clients::require("curl", "curl") {
        return;
    }
    let _machine = share_machine();
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let (count, interval) = (5, Duration::from_millis(200));
    let url =
        format!("{}{endpoint}?count={count}&interval_ms={}", server.base, interval.as_millis());
    let outcome = runtime().block_on(real_clients::curl_streams(&url, compressed, count, interval));
    expect_pass(&format!("curl {endpoint}"), &outcome, &server);
}

/// Real curl on a stream that fails after item 3 of 6, over HTTP/1.1 and h2c, plain and
/// `--compressed`: it prints 1, 2 and 3 and exits non-zero, so a script can tell. Where
/// `failed_stream_is_cut` is a known limit of the binary, curl must still exit 0, so that the
/// day the framework ends the stream honestly this test says so.
pub fn run_curl_failure(binary: &str, known: &[super::KnownLimit]) {
    if !real_clients::require("curl", "curl") {
        return;
    }
    let _machine = share_machine();
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let hidden = known.iter().any(|(id, _)| *id == crate::checks::ids::failed_stream_is_cut);
    let url = format!("{}/stream?count=6&interval_ms=200&fail_after=3", server.base);
    let (mut seen, mut problems) = (Vec::new(), Vec::new());
    runtime().block_on(async {
        for protocol in ["--http1.1", "--http2-prior-knowledge"] {
            for compressed in [None, Some("--compressed")] {
                let args: Vec<&str> = [Some(protocol), compressed].into_iter().flatten().collect();
                let what = format!("curl -sN {} '{url}'", args.join(" "));
                match real_clients::curl_exit(&url, &args, Duration::from_secs(10)).await {
                    Err(error) => problems.push(format!("{what}: {error}")),
                    Ok((lines, code, error))
                        if lines != ["1", "2", "3"] || hidden != (code == 0) =>
                    {
                        let expected = match hidden {
                            true => "exit 0, as the known limit hides the failure",
                            false => "a non-zero exit",
                        };
                        problems.push(format!(
                            "{what}: printed {lines:?} and exited {code} ({error}); expected \
                             1, 2, 3 and {expected}"
                        ));
                    }
                    Ok((_, code, error)) => {
                        seen.push(format!("{what}: 1 2 3, exit {code} {error}"))
                    }
                }
            }
        }
    });
    assert!(
        problems.is_empty(),
        "{}\n--- server log ---\n{}",
        problems.join("\n"),
        server.stderr()
    );
    println!("{}", seen.join("\n"));
}

/// The reqwest client example (`conformance/examples/read_stream.rs`) against the binary: lines
/// of `/stream` on schedule, `/events` resumed with `Last-Event-ID` after a cut connection, and
/// a stream that fails after 3 items reported as an error that says so (exit 1), where the
/// binary cuts it (see [`run_curl_failure`] for the known limit).
/// `cargo test --workspace` builds the example; `cargo test -p examples-…` alone does not, and
/// then this is skipped loudly (or fails with `STREAMING_REQUIRE_EXTERNAL=1`).
pub fn run_read_stream(binary: &str, known: &[super::KnownLimit]) {
    let _machine = share_machine();
    let Some(program) = read_stream_program() else {
        return;
    };
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let (count, interval) = (5, Duration::from_millis(200));
    runtime().block_on(async {
        let lines = real_clients::read_stream_prints_lines(&program, &server.base, count, interval);
        expect_pass("read_stream /stream", &lines.await, &server);
        let events = real_clients::read_stream_resumes_events(&program, &server.base, 4, interval);
        expect_pass("read_stream /events", &events.await, &server);
    });
    let hidden = known.iter().any(|(id, _)| *id == crate::checks::ids::failed_stream_is_cut);
    let url = format!("{}/stream?count=6&interval_ms=200&fail_after=3", server.base);
    let out = std::process::Command::new(&program).arg(&url).output().expect("read_stream runs");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    let reported = out.status.code() == Some(1)
        && stderr.contains("the stream broke off after 3 lines, which are not all of it");
    assert!(
        lines == ["1", "2", "3"] && reported != hidden,
        "read_stream {url}: exit {:?}, printed {lines:?}, said {stderr:?}; expected 1, 2, 3 and {}",
        out.status.code(),
        if hidden { "exit 0 (the known limit)" } else { "an error naming the 3 lines" }
    );
    println!("read_stream {url}: {}", stderr.trim());
}

/// `diagnose` against every streaming endpoint of the binary: each `streams`, with no finding
/// but the risk of a compressed event stream; and the same stream asked for with `interval_ms=0` is `inconclusive` (too quick to
/// tell), neither `streams` nor `buffered`.
pub fn run_diagnose(binary: &str) {
    let _machine = share_machine();
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let run = |path: &str| {
        let options = crate::diagnose::Options::for_url(&format!("{}{path}", server.base));
        diagnosed(&options)
            .unwrap_or_else(|e| panic!("{path}: {e}\n--- server log ---\n{}", server.stderr()))
    };
    for path in [
        "/stream?count=5&interval_ms=200",
        "/stream.html?count=5&interval_ms=200",
        "/events?count=5&interval_ms=200",
    ] {
        let diagnosis = run(path);
        let report = crate::diagnose::text(&diagnosis);
        // The one risk allowed: an event stream that the example compresses (flushing each
        // event) is said to be compressed.
        let allowed = |f: &crate::diagnose::Finding| {
            f.role == crate::diagnose::Role::Risk
                && f.cause == crate::diagnose::Cause::Compression
                && path.starts_with("/events")
        };
        assert!(
            diagnosis.verdict() == crate::diagnose::Verdict::Streams
                && diagnosis.findings.iter().all(allowed),
            "diagnose {path}: {report}\n--- server log ---\n{}",
            server.stderr()
        );
        println!("diagnose {path}: streams ({})", diagnosis.run.main.judgement.reason);
    }
    let fast = run("/stream?count=5&interval_ms=0");
    assert_eq!(
        fast.verdict(),
        crate::diagnose::Verdict::Inconclusive,
        "{}",
        crate::diagnose::text(&fast)
    );
}

/// The binary over HTTPS: started with `--tls-cert` and `--tls-key` (a certificate from a CA
/// made for the test), it must say `listening on https://`, and `diagnose`, trusting that CA,
/// must find each endpoint streaming over h2 (ALPN) and over HTTP/1.1. With
/// `--tls-self-signed` it must serve too (`--insecure`).
pub fn run_https(binary: &str) {
    let _machine = share_machine();
    let name = Path::new(binary).file_name().and_then(|n| n.to_str()).unwrap_or("server");
    let tls = Certificates::new(&format!("{name}-https")).unwrap_or_else(|e| panic!("{e}"));
    let (server, _) = Serving::Https
        .start(Path::new(binary), &tls, test_config)
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    assert!(server.base.starts_with("https://"), "{binary} printed {}", server.base);
    let diagnose = |base: &str, path: &str, trust: Option<std::path::PathBuf>| {
        let mut options = crate::diagnose::Options::for_url(&format!("{base}{path}"));
        options.transport.insecure = trust.is_none();
        options.transport.cacert = trust;
        diagnosed(&options).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    for path in [
        "/stream?count=5&interval_ms=200",
        "/stream.html?count=5&interval_ms=200",
        "/events?count=5&interval_ms=200",
    ] {
        let diagnosis = diagnose(&server.base, path, Some(tls.ca()));
        let report = crate::diagnose::text(&diagnosis);
        let run = &diagnosis.run;
        let over_http1 = run.variants.iter().find(|v| v.name == "protocol");
        let streams = |r: &crate::diagnose::RequestResult| {
            r.judgement.verdict == crate::diagnose::Verdict::Streams
        };
        assert!(
            run.main.protocol() == "h2"
                && streams(&run.main)
                && over_http1.and_then(|v| v.result.as_ref().ok()).is_some_and(streams),
            "https {path}: expected h2 and HTTP/1.1 both streaming\n{report}\n--- server log ---\n{}",
            server.stderr()
        );
        println!("https {path}: h2 and HTTP/1.1 stream ({})", run.main.judgement.reason);
    }
    drop(server);
    drop(tls);

    let server =
        Spawned::with_args(Path::new(binary), &["--tls-self-signed"], Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{binary} --tls-self-signed: {e}"));
    assert!(server.base.starts_with("https://"), "{binary} printed {}", server.base);
    let diagnosis = diagnose(&server.base, "/stream?count=5&interval_ms=200", None);
    assert_eq!(
        diagnosis.verdict(),
        crate::diagnose::Verdict::Streams,
        "{}",
        crate::diagnose::text(&diagnosis)
    );
    assert!(server.stderr().contains("self-signed"), "it says so on stderr: {}", server.stderr());
}

/// `diagnose` with `options`, quietly.
fn diagnosed(
    options: &crate::diagnose::Options,
) -> Result<crate::diagnose::Diagnosis, crate::diagnose::Problem> {
    runtime().block_on(crate::diagnose::diagnosis(options))
}

/// `target/<profile>/examples/read_stream`, beside this test's own directory.
fn read_stream_program() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let program = profile_dir.join("examples/read_stream");
    if program.is_file() {
        return Some(program);
    }
    real_clients::skip(&format!(
        "{} is not built: `cargo test --workspace` builds it, as does \
         `cargo build -p conformance --example read_stream`",
        program.display()
    ));
    None
}

/// Events per EventSource, and their interval, in the 8-EventSource test.
const ES_COUNT: u32 = 5;
const ES_INTERVAL: Duration = Duration::from_millis(400);

/// Headless Chromium against the binary: `/stream` shows its first line early, `/stream.html`
/// lays out `<div>1</div>` early (with `pad=0` and the classic `pad=1024`), and the `/` page's
/// EventSource resumes after a cut connection. Then 8 EventSources at once: over HTTP/1.1 the
/// 7th and 8th wait for one of the first six to end (six connections per origin); over h2 (a
/// second instance serving TLS, its test certificate accepted) all 8 start at once. A
/// screenshot of the page is saved as `screenshot`. Skipped without chromium and chromedriver (see [`real_clients::require`]).
pub fn run_chromium(binary: &str, screenshot: &Path) {
    if !real_clients::require("chromium", "chromium")
        || !real_clients::require("chromedriver", "chromium-driver")
    {
        return;
    }
    let _machine = take_machine();
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let base = server.base.clone();
    let tls = Certificates::new("chromium").unwrap_or_else(|e| panic!("{e}"));
    let (tls_server, _) = Serving::H2
        .start(Path::new(binary), &tls, test_config)
        .unwrap_or_else(|e| panic!("{binary} over TLS: {e}"));
    runtime().block_on(async {
        let browser = real_clients::Browser::start().await.unwrap_or_else(|e| panic!("{e}"));
        let first = real_clients::browser_shows_first_line_early(&browser, &base).await;
        let pad0 = real_clients::browser_renders_html_early(&browser, &base, 0).await;
        let pad1024 = real_clients::browser_renders_html_early(&browser, &base, 1024).await;
        let page = real_clients::browser_page_resumes_events(&browser, &base, Some(screenshot)).await;
        let h1 = real_clients::browser_eventsources(&browser, &base, ES_COUNT, ES_INTERVAL).await;
        let h2 = real_clients::browser_eventsources(&browser, &tls_server.base, ES_COUNT, ES_INTERVAL);
        let h2 = h2.await;
        browser.close().await;
        let h1 = h1.unwrap_or_else(|e| panic!("chromium EventSources over HTTP/1.1: {e}"));
        let h2 = h2.unwrap_or_else(|e| panic!("chromium EventSources over h2: {e}"));
        let shown = |firsts: &[f64]| {
            firsts.iter().map(|ms| format!("{ms:.0}")).collect::<Vec<_>>().join(", ")
        };
        // Over HTTP/1.1, six connections per origin: six streams start at once, and the 7th
        // and 8th wait until one of them has ended (after count - 1 intervals).
        let (prompt, ended) = (ms(ES_INTERVAL), ms(ES_INTERVAL * (ES_COUNT - 1)));
        let mut sorted = h1.clone();
        sorted.sort_by(f64::total_cmp);
        assert!(
            sorted[..6].iter().all(|&at| at <= prompt)
                && sorted[6..].iter().all(|&at| at >= ended - prompt / 2.0),
            "over HTTP/1.1 expected 6 EventSources within {prompt:.0} ms and the other 2 after              about {ended:.0} ms, got their first events at [{}] ms",
            shown(&h1)
        );
        assert!(
            h2.iter().all(|&at| at <= prompt),
            "over h2 expected all {} EventSources within {prompt:.0} ms, got [{}] ms",
            h2.len(),
            shown(&h2)
        );
        println!(
            "chromium {} EventSources: HTTP/1.1 first events at [{}] ms, h2 at [{}] ms",
            h2.len(),
            shown(&h1),
            shown(&h2)
        );
        expect_pass("chromium /stream", &first, &server);
        expect_pass("chromium /stream.html", &pad0, &server);
        expect_pass("chromium /stream.html", &pad1024, &server);
        expect_pass("chromium / page", &page, &server);
    });
}

/// Three instances of the binary behind `kind` (nginx or HAProxy, [`crate::harness::proxies::Setup::Balanced`]):
/// SIGKILL of each instance in turn, then a rolling restart, under six EventSources of the
/// checker's and two of Chromium's, each of which must get every id once, in order, resuming
/// within `retry` + 1 s; and the 2 s idle timeout, survived with keep-alive comments, cut
/// without (see [`crate::harness::balanced`]). Skipped without the balancer, chromium and
/// chromedriver.
pub fn run_balanced(binary: &str, kind: crate::harness::proxies::Kind) {
    if !crate::harness::proxies::available(kind)
        || !real_clients::require("chromium", "chromium")
        || !real_clients::require("chromedriver", "chromium-driver")
    {
        return;
    }
    let program = kind.program();
    let runtime = runtime();
    // Chromium's start-up takes both cores (see `MACHINE`); what follows is light and judged
    // loosely (a resume within the retry + 1 s), so it runs beside the other tests.
    let browser = {
        let _machine = take_machine();
        runtime.block_on(real_clients::Browser::start()).unwrap_or_else(|e| panic!("{e}"))
    };
    runtime.block_on(async {
        let launch = Launch::new(binary);
        let result = crate::harness::balanced::run_all(kind, &launch, Some(&browser)).await;
        browser.close().await;
        let (outcomes, context) =
            result.unwrap_or_else(|e| panic!("{binary} behind {program}: {e}"));
        let mut failed = Vec::new();
        for (what, outcome) in &outcomes {
            match outcome.level {
                Level::Pass => println!("{what} behind {program}: {}", outcome.reason),
                _ => failed.push(format!("{what}: {} {}", outcome.level, outcome.reason)),
            }
        }
        assert!(failed.is_empty(), "{binary} behind {program}:\n{}\n{context}", failed.join("\n"));
    });
}
