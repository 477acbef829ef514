//! The per-framework test suite: `conformance::suite!(actix, env!("CARGO_BIN_EXE_examples-actix"));`
//! in a crate's `tests/` makes one `#[test]` per check, named `actix::<check>`, each starting
//! the real binary on an ephemeral port and running that one check against it.

use std::{path::Path, time::Duration};

use crate::{Config, Level, servers::Spawned};

/// Timing used by the test suite: 5 lines 200 ms apart, ±100 ms.
pub fn test_config(base: &str) -> Config {
    Config::with_timing(base, 5, Duration::from_millis(200))
}

/// Starts `binary`, runs `check` against it and panics with the reason, the evidence and the
/// server's log if it fails. A warning is printed, not failed.
pub fn run_check_against_binary(binary: &str, check: &str) {
    let entry = crate::check(check).unwrap_or_else(|| panic!("no check named {check}"));
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let cfg = test_config(&server.base);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = runtime.block_on(entry.run(&cfg));
    let evidence: String = outcome.evidence.iter().map(|e| e.to_string()).collect();
    match outcome.level {
        Level::Pass => println!("{check}: {}", outcome.reason),
        Level::Warn => eprintln!("WARN {check}: {}\n{evidence}", outcome.reason),
        Level::Fail => panic!(
            "{check} failed against {binary}: {}\n{evidence}--- server log ---\n{}",
            outcome.reason,
            server.stderr()
        ),
    }
}

/// One test per catalogue check against a server binary (see the module docs).
#[macro_export]
macro_rules! suite {
    ($module:ident, $binary:expr) => {
        $crate::__with_catalogue!($crate::__suite_tests; $module, $binary,);
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
                    $crate::testing::run_check_against_binary($binary, stringify!($check));
                }
            )*
        }
    };
}
