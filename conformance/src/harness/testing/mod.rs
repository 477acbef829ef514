//! The per-framework test suite: `conformance::suite!(actix, env!("CARGO_BIN_EXE_examples-actix"));`
//! in a crate's `tests/` makes one `#[test]` per check, named `actix::<check>`, each starting
//! the real binary on an ephemeral port and running that one check against it.

use std::{
    path::Path,
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Duration,
};

use crate::{
    checks::{Config, Local},
    harness::transports::{Certificates, Serving},
    outcome::Level,
    servers::{Launch, Spawned},
};

mod clients;

pub use clients::{
    run_balanced, run_chromium, run_curl, run_curl_failure, run_diagnose, run_https,
    run_read_stream,
};

/// Timing used by the test suite: 5 lines 200 ms apart, ±100 ms.
pub fn test_config(base: &str) -> Config {
    Config::with_timing(base, 5, Duration::from_millis(200))
}

/// Chromium's start-up and page loads take both cores of a 2-core machine for up to a second.
/// In CI, timed tests that ran beside it saw a line 140 ms late in curl's output, and the
/// browser's own first line came 390 ms late with the second on time. So the browser tests
/// take the machine for themselves ([`take_machine`]) while Chromium starts and while they
/// judge its timing, and every other timed test shares it
/// ([`share_machine`]); within one test binary they never overlap. (A test that panics
/// poisons the lock; the next one carries on.)
static MACHINE: RwLock<()> = RwLock::new(());

/// Held by a timed test: it may run beside other timed tests, never beside a browser test.
pub fn share_machine() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Held by a browser test: nothing else in this test binary runs meanwhile.
pub fn take_machine() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One 200-stream load at a time in a test binary, whether a test of its own or a catalogue's:
/// in CI, with three catalogues side by side, Rocket over h2c served one of its 200 first lines
/// 135 ms late (2026-12-07).
static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The load check's timing in the tests: 400 ms apart, ±200 ms. Beside seven other tests, a
/// debug-build client's 200 connections waited up to 184 ms for a first line (2026-12-07),
/// which ±100 ms calls batching; the rule is the same, on a wider grid.
fn load_timing(cfg: &Config) -> Config {
    let interval = Duration::from_millis(400);
    Config { interval, tolerance: interval / 2, ..cfg.clone() }
}

/// The whole catalogue as the tests run it: the load check after the rest, alone (see
/// [`LOAD`]) and with [`load_timing`].
pub async fn run_catalogue(cfg: &Config) -> crate::checks::report::Report {
    let load = crate::checks::ids::load_200_streams.to_string();
    let rest: Vec<String> = crate::checks::catalogue()
        .iter()
        .map(|check| check.name.to_owned())
        .filter(|name| *name != load)
        .collect();
    let mut report = crate::checks::run(cfg, &rest).await;
    let _load = LOAD.lock().await;
    let loaded = crate::checks::run(&load_timing(cfg), std::slice::from_ref(&load)).await;
    report.results.extend(loaded.results);
    report
}

/// A check a framework cannot pass, with the reason it must fail for. Its test asserts the
/// failure, so the day the framework can do it, the test says so.
pub type KnownLimit = (crate::checks::CheckId, &'static str);

/// Starts `binary`, runs `check` against it and panics with the reason, the evidence and the
/// server's log if it does not pass (a warning included), or, for a check in `known`, if it
/// does not fail for the stated reason.
pub fn run_check_against_binary(binary: &str, check: crate::checks::CheckId, known: &[KnownLimit]) {
    // Malformed requests are judged by what comes back, not when: no timing to disturb, and
    // its 30 s wait for a header timeout does not hold back a browser test.
    let _machine = (check != crate::checks::ids::malformed_requests_refused).then(share_machine);
    let _load = (check == crate::checks::ids::load_200_streams).then(|| LOAD.blocking_lock());
    let entry = crate::checks::entry(check);
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let mut cfg = test_config(&server.base);
    if check == crate::checks::ids::load_200_streams {
        cfg = load_timing(&cfg);
    }
    cfg.local = Local::of(&server, Some(Launch::new(binary)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = runtime.block_on(entry.run(&cfg));
    let evidence: String = outcome.evidence.iter().map(|e| e.to_string()).collect();
    let known = known.iter().find(|(name, _)| *name == check);
    // A limit of HTTP/2 does not show over plain HTTP/1.1 (`transports` asserts it).
    if known.is_some()
        && outcome.level == Level::NotApplicable
        && entry.concern.starts_with("http2")
    {
        println!("{check}: {} (a known limit over HTTP/2)", outcome.reason);
        return;
    }
    if let Some((_, reason)) = known {
        assert!(
            outcome.level == Level::Fail && outcome.reason.contains(reason),
            "{check} is a known limit of {binary} (expected to fail with {reason:?}), but it \
             says {} {}: update the suite and the book (docs/src)",
            outcome.level,
            outcome.reason
        );
        println!("{check}: fails as known: {}", outcome.reason);
        return;
    }
    // Our examples pass cleanly: a warning (e.g. `/` no longer compressed) is a regression.
    // Over plain HTTP/1.1 only the HTTP/2 checks may not apply (`transports` runs them).
    match outcome.level {
        Level::Pass => println!("{check}: {}", outcome.reason),
        Level::NotApplicable if entry.concern.starts_with("http2") => {
            println!("{check}: {}", outcome.reason)
        }
        Level::NotApplicable | Level::Warn | Level::Fail => panic!(
            "{check}: {} against {binary}: {}\n{evidence}--- server log ---\n{}",
            outcome.level,
            outcome.reason,
            server.stderr()
        ),
    }
}

/// The runtime the tests drive checks and clients with: two workers, like the machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn expect_pass(what: &str, outcome: &crate::outcome::Outcome, server: &Spawned) {
    let evidence: String = outcome.evidence.iter().map(|e| e.to_string()).collect();
    match outcome.level {
        Level::Pass => println!("{what}: {}", outcome.reason),
        _ => panic!(
            "{what}: {} {}\n{evidence}--- server log ---\n{}",
            outcome.level,
            outcome.reason,
            server.stderr()
        ),
    }
}

/// The whole catalogue against one instance of `binary` served over `serving`, as `matrix` runs
/// it: every check passes, or (over HTTP/2 only) says it does not apply, or is a known limit
/// failing for its stated reason. Panics with the table and the evidence otherwise.
pub fn run_catalogue_over(binary: &str, serving: Serving, known: &[KnownLimit]) {
    let _machine = share_machine();
    let name = Path::new(binary).file_name().and_then(|n| n.to_str()).unwrap_or("server");
    let tls =
        Certificates::new(&format!("{name}-{}", serving.name())).unwrap_or_else(|e| panic!("{e}"));
    let (server, cfg) = serving
        .start(Path::new(binary), &tls, test_config)
        .unwrap_or_else(|e| panic!("{binary} over {}: {e}", serving.name()));
    let report = runtime().block_on(run_catalogue(&cfg));
    let h2 = cfg.target.speaks_h2();
    let mut problems = Vec::new();
    for result in &report.results {
        let outcome = &result.outcome;
        let limit = known.iter().find(|(id, _)| id.name() == result.check);
        let fine = match (outcome.level, limit) {
            // The HTTP/1-only checks over h2, the h2 checks over HTTP/1.1.
            (Level::NotApplicable, _) => h2 != (result.concern.starts_with("http2")),
            (Level::Pass, None) => true,
            (Level::Fail, Some((_, reason))) => outcome.reason.contains(reason),
            _ => false,
        };
        if !fine {
            let expected = match limit {
                Some((_, reason)) => format!("a known limit, expected to fail with {reason:?}"),
                None => "expected PASS, or N/A for checks of the other HTTP version".into(),
            };
            problems.push(format!("{} says {} ({expected})", result.check, outcome.level));
        }
    }
    if !problems.is_empty() {
        panic!(
            "{binary} over {}: {}\n{}--- server log ---\n{}",
            serving.name(),
            problems.join("; "),
            report.table(),
            server.stderr()
        );
    }
    print!("{}", report.table());
}

/// One test per catalogue check against a server binary (see the module docs), plus the real
/// clients: curl on `/stream` and `/events` (plain and compressed), nginx and Apache in front
/// of it, and Chromium.
#[macro_export]
macro_rules! suite {
    ($module:ident, $binary:expr) => {
        $crate::suite!($module, $binary, known_limits: []);
    };
    ($module:ident, $binary:expr, known_limits: [$($known:expr),* $(,)?]) => {
        const KNOWN_LIMITS: &[$crate::harness::testing::KnownLimit] = &[$($known),*];
        $crate::__with_catalogue!($crate::__suite_tests; $module, $binary,);

        /// The whole catalogue again over TLS (HTTP/1.1 and h2) and h2c.
        mod transports {
            #[test]
            fn https() {
                $crate::harness::testing::run_catalogue_over(
                    $binary,
                    $crate::harness::transports::Serving::Https,
                    super::KNOWN_LIMITS,
                );
            }
            #[test]
            fn h2() {
                $crate::harness::testing::run_catalogue_over(
                    $binary,
                    $crate::harness::transports::Serving::H2,
                    super::KNOWN_LIMITS,
                );
            }
            #[test]
            fn h2c() {
                $crate::harness::testing::run_catalogue_over(
                    $binary,
                    $crate::harness::transports::Serving::H2c,
                    super::KNOWN_LIMITS,
                );
            }
        }

        mod clients {
            #[test]
            fn curl_stream() {
                $crate::harness::testing::run_curl($binary, "/stream", false);
            }
            #[test]
            fn curl_stream_compressed() {
                $crate::harness::testing::run_curl($binary, "/stream", true);
            }
            #[test]
            fn curl_events() {
                $crate::harness::testing::run_curl($binary, "/events", false);
            }
            #[test]
            fn curl_failed_stream() {
                $crate::harness::testing::run_curl_failure($binary, super::KNOWN_LIMITS);
            }
            #[test]
            fn curl_events_compressed() {
                $crate::harness::testing::run_curl($binary, "/events", true);
            }
            #[test]
            fn read_stream() {
                $crate::harness::testing::run_read_stream($binary, super::KNOWN_LIMITS);
            }
            #[test]
            fn diagnose() {
                $crate::harness::testing::run_diagnose($binary);
            }
            #[test]
            fn https() {
                $crate::harness::testing::run_https($binary);
            }
            #[test]
            fn nginx() {
                $crate::harness::proxies::run_behind_nginx($binary, super::KNOWN_LIMITS);
            }
            #[test]
            fn apache() {
                $crate::harness::proxies::run_behind_apache($binary, super::KNOWN_LIMITS);
            }
            #[test]
            fn balanced_nginx() {
                $crate::harness::testing::run_balanced($binary, $crate::harness::proxies::Kind::Nginx);
            }
            #[test]
            fn balanced_haproxy() {
                $crate::harness::testing::run_balanced($binary, $crate::harness::proxies::Kind::Haproxy);
            }
            #[test]
            fn chromium() {
                let shot = ::std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                    .join(concat!(stringify!($module), "-index.png"));
                $crate::harness::testing::run_chromium($binary, &shot);
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __suite_tests {
    ($module:ident, $binary:expr, [$($concern:ident :: $check:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $check() {
                    $crate::harness::testing::run_check_against_binary(
                        $binary,
                        $crate::checks::ids::$check,
                        super::KNOWN_LIMITS,
                    );
                }
            )*
        }
    };
}
