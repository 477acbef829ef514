//! `conformance diagnose` run as a user runs it (the CLI, `--json`, its exit code) against the
//! broken server's faults, an app-shaped server (POST SSE, NDJSON) and bad input. The real
//! proxies are in `tests/proxies.rs`, our four examples in their own suites
//! (`clients::diagnose`).

mod support;

use std::{net::SocketAddr, process::Command};

use conformance::{diagnose::Cause, harness::testing::runtime};
use support::{
    broken::{self, Fault},
    chat,
    cli::{diagnose, expect},
};

/// The broken server with `fault`, on a runtime that lives as long as the test.
fn broken_server(fault: Fault) -> (tokio::runtime::Runtime, SocketAddr) {
    let rt = runtime();
    let addr = rt.block_on(broken::start(fault));
    (rt, addr)
}

const STREAM: &str = "/stream?count=5&interval_ms=300";

macro_rules! faults {
    ($($name:ident: $fault:ident $(, $flag:literal)* => $verdict:literal, [$($cause:ident),*], [$($risk:ident),*];)*) => {
        $(
            #[test]
            fn $name() {
                let (_rt, addr) = broken_server(Fault::$fault);
                let url = format!("http://{addr}{STREAM}");
                let said = diagnose(&[$($flag,)* &url]);
                expect(&said, $verdict, &[$(Cause::$cause),*], &[$(Cause::$risk),*]);
            }
        )*
        /// The causes the broken server produces.
        const PRODUCED: &[Cause] = &[$($(Cause::$cause,)* $(Cause::$risk,)*)*];
    };
}

faults! {
    collected_body_with_content_length: CollectedBody => "buffered", [CollectedBody], [];
    compression_that_never_flushes: NeverFlushes => "buffered", [Compression], [];
    lines_in_pairs: Pairs => "batched", [AppBuffering], [];
    first_line_held: FirstLineHeld => "buffered", [StartHeld], [];
    text_plain_without_nosniff: NoNosniff => "streams", [], [BrowserSniffing];
    a_cdn_without_no_transform: CdnHeaders => "streams", [], [CdnTransform];
    http2_that_buffers: Http2Buffered, "--http2" => "buffered", [Protocol], [];
    a_server_that_streams: None => "streams", [], [];
    a_cached_answer: Cached => "inconclusive", [Cached], [];
}

/// The cached answer is named, with what the request that bypassed the cache got.
#[test]
fn a_cached_answer_says_what_the_origin_does() {
    let (_rt, addr) = broken_server(Fault::Cached);
    let said = diagnose(&[&format!("http://{addr}{STREAM}")]);
    expect(&said, "inconclusive", &[Cause::Cached], &[]);
    let evidence = said.json["findings"][0]["evidence"].as_str().unwrap_or_default();
    assert!(evidence.contains("`age: 42`") && evidence.contains("`x-cache: HIT`"), "{evidence}");
    assert!(evidence.contains("it came from the origin, and streams"), "{evidence}");
    let bypass =
        said.json["requests"].as_array().and_then(|r| r.iter().find(|r| r["name"] == "no-cache"));
    assert_eq!(bypass.map(|r| &r["verdict"]), Some(&serde_json::json!("streams")), "{}", said.json);
}

/// Each cause has a server that produces it here, or behind a real proxy in
/// `tests/proxies.rs` (proxy_buffering); `a_server_that_streams` and our examples' suites
/// produce none of them.
#[test]
fn every_cause_is_produced_by_some_server() {
    for cause in Cause::ALL {
        assert!(
            PRODUCED.contains(&cause)
                || cause == Cause::ProxyBuffering
                || cause == Cause::Truncated, // a_cut_body_is_a_fault
            "no server in the tests produces {cause}"
        );
    }
}

/// A body that breaks off is a fault, whatever the verdict: cut without its last chunk
/// (HTTP/1.1), reset (h2c), or ended cleanly with its compressed stream short of its end.
#[test]
fn a_cut_body_is_a_fault() {
    let failing = "/stream?count=6&interval_ms=300&fail_after=3";
    for (fault, flags, how) in [
        (Fault::None, &[][..], "the connection closed before the body's end"),
        (Fault::None, &["--http2"][..], "the HTTP/2 stream was reset"),
        (Fault::FailureEndsCleanly, &[][..], "the compressed stream stops short of its end"),
    ] {
        let (_rt, addr) = broken_server(fault);
        let url = format!("http://{addr}{failing}");
        let said = diagnose(&[flags, &[url.as_str()]].concat());
        let show = serde_json::to_string_pretty(&said.json).unwrap_or_default();
        assert_eq!(said.causes("fault"), ["truncated"], "{fault:?} {flags:?}: {show}");
        let evidence = said.json["findings"][0]["evidence"].as_str().unwrap_or_default();
        assert!(evidence.contains("after 3 items") && evidence.contains(how), "{evidence}");
        println!("{fault:?} {flags:?}: {evidence}");
    }
    let (_rt, addr) = broken_server(Fault::FailureFinishesCompression);
    let said = diagnose(&[&format!("http://{addr}{failing}")]);
    assert!(said.causes("fault").is_empty(), "a clean end cannot be told: {}", said.json);
}

#[test]
fn every_endpoint_of_the_contract_streams() {
    let (_rt, addr) = broken_server(Fault::None);
    let said = diagnose(&[&format!("http://{addr}/stream.html?count=5&interval_ms=300")]);
    expect(&said, "streams", &[], &[]);
    // It compresses its event stream (flushing each event): a risk worth saying.
    let said = diagnose(&[&format!("http://{addr}/events?count=5&interval_ms=300")]);
    expect(&said, "streams", &[], &[Cause::Compression]);
    assert_eq!(said.json["requests"][0]["item_kind"], "event");
}

#[test]
fn a_fast_endpoint_is_inconclusive() {
    let (_rt, addr) = broken_server(Fault::None);
    let said = diagnose(&[&format!("http://{addr}/stream?count=5&interval_ms=0")]);
    expect(&said, "inconclusive", &[], &[]);
    assert!(said.json["reason"].as_str().unwrap().contains("too quick"), "{}", said.json);
}

#[test]
fn an_error_status_is_named_not_judged() {
    let (_rt, addr) = broken_server(Fault::None);
    for (path, status) in [("/nowhere", "404 Not Found"), ("/fail", "500 Internal Server Error")] {
        let said = diagnose(&[&format!("http://{addr}{path}")]);
        assert_eq!(said.code, 2, "{}", said.json);
        let error = said.json["error"].as_str().unwrap_or_default();
        assert!(error.contains(status) && error.contains("nothing to diagnose"), "{error}");
        assert!(said.json.get("verdict").is_none(), "{}", said.json);
    }
    // A redirect is reported, not followed (as curl without -L).
    let said = diagnose(&[&format!("http://{addr}/moved")]);
    assert_eq!(said.code, 2, "{}", said.json);
    let error = said.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("302 Found, a redirect to /stream"), "{error}");
}

#[test]
fn a_post_that_streams_sse_from_a_json_body() {
    let rt = runtime();
    let addr = rt.block_on(chat::start());
    let url = format!("http://{addr}/chat");
    let body = r#"{"prompt": "count", "tokens": 4, "interval_ms": 300}"#;
    let said = diagnose(&["-X", "POST", "-H", "Content-Type: application/json", "-d", body, &url]);
    expect(&said, "streams", &[], &[]);
    let main = &said.json["requests"][0];
    assert_eq!(main["method"], "POST");
    assert_eq!(main["item_kind"], "event");
    assert_eq!(main["items"].as_array().map(Vec::len), Some(5), "4 tokens and [DONE]");

    let file = std::env::temp_dir().join(format!("diagnose-body-{}.json", std::process::id()));
    std::fs::write(&file, body).expect("write the body");
    let said = diagnose(&[
        "-H",
        "Content-Type: application/json",
        "--data-file",
        file.to_str().unwrap(),
        &url,
    ]);
    let _ = std::fs::remove_file(&file);
    expect(&said, "streams", &[], &[]);
    assert_eq!(said.json["requests"][0]["method"], "POST", "-d and --data-file imply POST");
}

#[test]
fn an_ndjson_log_tail() {
    let rt = runtime();
    let addr = rt.block_on(chat::start());
    let said = diagnose(&[&format!("http://{addr}/logs?count=5&interval_ms=300")]);
    expect(&said, "streams", &[], &[]);
    let main = &said.json["requests"][0];
    assert_eq!(main["item_kind"], "record");
    assert_eq!(main["reading"], "`application/x-ndjson`: read as records");
}

/// A JSON array streamed element by element without newlines, as some LLM APIs do: read by
/// its elements, each when its last byte arrives.
#[test]
fn a_json_array_streamed_by_its_elements() {
    let rt = runtime();
    let addr = rt.block_on(chat::start());
    let said = diagnose(&[&format!("http://{addr}/generate?count=5&interval_ms=300")]);
    expect(&said, "streams", &[], &[]);
    let main = &said.json["requests"][0];
    assert_eq!(main["reading"], "`application/json`: read as array elements");
    assert_eq!(main["items"][4]["text"], r#"{"text":"word5 "}"#);
}

/// Every mistake gets exit 2 and a message that names it; nothing hangs or panics.
#[test]
fn bad_input_is_named() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
        // dropped here: nothing listens on it any more
    };
    let refused = format!("http://{refused}/stream");
    let missing = "/nonexistent/streaming-diagnose-test";
    let cases: &[(&[&str], &str)] = &[
        (&["not a url"], "is not a URL"),
        (&["ftp://127.0.0.1/stream"], "the scheme \"ftp\" is not http or https"),
        (&[&refused], "cannot get an answer"),
        (&["-H", "no colon here", "http://127.0.0.1:1/"], "no colon found"),
        (&["--data-file", missing, "http://127.0.0.1:1/"], "--data-file /nonexistent"),
        (&["--cacert", missing, "https://127.0.0.1:1/"], "--cacert /nonexistent"),
        (&["--max-time", "0", "http://127.0.0.1:1/"], "--max-time 0"),
        (&["-X", "NOT A METHOD", "http://127.0.0.1:1/"], "not an HTTP method"),
        (&["http://user:secret@127.0.0.1:1/"], "credentials in the URL"),
    ];
    for (args, message) in cases {
        let said = diagnose(args);
        assert_eq!(said.code, 2, "{args:?}: {}", said.json);
        let error = said.json["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{args:?}: expected {message:?} in {error:?}");
        println!("{args:?}: {error}");
    }
    // The refused connection names the reason.
    let said = diagnose(&[&refused]);
    assert!(said.json["error"].as_str().unwrap_or_default().contains("refused"), "{}", said.json);
}

/// The catalogue's flags are refused, not ignored, as bench refuses them.
#[test]
fn catalogue_flags_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["diagnose", "--count", "3", "http://127.0.0.1:1/"])
        .output()
        .expect("the CLI runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--count is for the checks, not diagnose"), "{stderr}");
}

/// Without --json: the items as they came, the timeline, the verdict and the rule.
#[test]
fn the_text_output_shows_items_timeline_and_rule() {
    let (_rt, addr) = broken_server(Fault::NeverFlushes);
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(["diagnose", &format!("http://{addr}{STREAM}")])
        .output()
        .expect("the CLI runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for part in [
        "head: 200",
        "line \"5\"",
        "timeline",
        "identity",
        "verdict: buffered",
        "[cause] compression",
        "fix:",
        "rule:",
    ] {
        assert!(text.contains(part), "{part:?} missing from\n{text}");
    }
}
