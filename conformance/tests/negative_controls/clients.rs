//! The real clients see the broken servers fail as the checks do: Chromium holds back text
//! without `nosniff` and its page needs `Last-Event-ID`, curl gets a buffered stream at once,
//! the reqwest client sees buffering and an ignored `Last-Event-ID`.

use super::*;

/// Chromium, started once and holding the machine once: it holds back `text/plain` to sniff
/// its type unless `nosniff` says not to (the same stream shows its first line at once with the
/// header, and only at the end without it), and the page's EventSource continues after a cut
/// connection only if the server honours Last-Event-ID (one that restarts at 1 shows duplicate
/// ids).
#[test]
fn chromium_needs_nosniff_and_last_event_id() {
    use conformance::harness::real_clients;
    if !real_clients::require("chromium", "chromium")
        || !real_clients::require("chromedriver", "chromium-driver")
    {
        return;
    }
    let _machine = take_machine();
    runtime().block_on(async {
        let browser = real_clients::Browser::start().await.unwrap_or_else(|e| panic!("{e}"));
        let good = format!("http://{}", broken::start(Fault::None).await);
        let sniffed = format!("http://{}", broken::start(Fault::NoNosniff).await);
        let restarts = format!("http://{}", broken::start(Fault::EventsIgnoreLastEventId).await);
        let with = real_clients::browser_shows_first_line_early(&browser, &good).await;
        let without = real_clients::browser_shows_first_line_early(&browser, &sniffed).await;
        let resumes = real_clients::browser_page_resumes_events(&browser, &good, None).await;
        let restarted = real_clients::browser_page_resumes_events(&browser, &restarts, None).await;
        browser.close().await;
        println!("with nosniff: {}\nwithout: {}", with.reason, without.reason);
        println!("resumes: {}\nrestarts: {}", resumes.reason, restarted.reason);
        assert_eq!(with.level, Level::Pass, "{}", with.reason);
        assert_eq!(without.level, Level::Fail, "{}", without.reason);
        assert!(without.reason.contains("held back"), "{}", without.reason);
        assert_eq!(resumes.level, Level::Pass, "{}", resumes.reason);
        assert_eq!(restarted.level, Level::Fail, "{}", restarted.reason);
        assert!(restarted.reason.contains("not restarting"), "{}", restarted.reason);
    });
}

/// curl sees a collected body arrive at once; the same server streaming, line by line.
#[test]
fn curl_sees_a_buffered_stream_arrive_at_once() {
    let _machine = share_machine();
    use conformance::harness::real_clients;
    if !real_clients::require("curl", "curl") {
        return;
    }
    let interval = std::time::Duration::from_millis(200);
    runtime().block_on(async {
        for (fault, level) in [(Fault::None, Level::Pass), (Fault::Buffered, Level::Fail)] {
            let addr = broken::start(fault).await;
            let url = format!("http://{addr}/stream?count=5&interval_ms=200");
            let outcome = real_clients::curl_streams(&url, false, 5, interval).await;
            assert_eq!(outcome.level, level, "{fault:?}: {}", outcome.reason);
            if level == Level::Fail {
                assert!(outcome.reason.contains("batched"), "{}", outcome.reason);
            }
        }
    });
}

/// The reqwest client example (`examples/read_stream.rs`) sees what curl and the browser see:
/// a collected body arrives at once, and a server that ignores Last-Event-ID repeats events.
#[test]
fn read_stream_sees_buffering_and_ignored_last_event_id() {
    let _machine = share_machine();
    use conformance::harness::real_clients;
    let program = broken_program(Fault::None).program.with_file_name("read_stream");
    let interval = std::time::Duration::from_millis(200);
    let expect = |what: &str, fault: Fault, outcome: conformance::Outcome, fails: Option<&str>| {
        println!("{what} {fault:?}: {} {}", outcome.level, outcome.reason);
        match fails {
            None => assert_eq!(outcome.level, Level::Pass, "{what} {fault:?}: {}", outcome.reason),
            Some(reason) => assert!(
                outcome.level == Level::Fail && outcome.reason.contains(reason),
                "{what} {fault:?}: expected a failure mentioning {reason:?}, got {} {}",
                outcome.level,
                outcome.reason
            ),
        }
    };
    runtime().block_on(async {
        for (fault, fails) in [(Fault::None, None), (Fault::Buffered, Some("batched"))] {
            let base = format!("http://{}", broken::start(fault).await);
            let lines = real_clients::read_stream_prints_lines(&program, &base, 5, interval).await;
            expect("/stream", fault, lines, fails);
        }
        for (fault, fails) in
            [(Fault::None, None), (Fault::EventsIgnoreLastEventId, Some("ignored Last-Event-ID"))]
        {
            let base = format!("http://{}", broken::start(fault).await);
            let events =
                real_clients::read_stream_resumes_events(&program, &base, 4, interval).await;
            expect("/events", fault, events, fails);
        }
    });
}
