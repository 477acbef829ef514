//! A black-box conformance suite for HTTP streaming endpoints (see CONTRACT.md), and a
//! diagnosis for any endpoint that should stream.
//!
//! Give the catalogue a base URL; it runs its checks over real sockets and returns, per check,
//! pass / warn / fail with a reason and the evidence it saw (status, headers, the arrival time
//! of every line). Give `diagnose` any URL; it says whether the response streams and which
//! layer holds it if it does not. Neither knows anything about any framework.
//!
//! Timing is judged by when each item's bytes arrive, never by how the body was chunked.
//!
//! # Layout
//!
//! From the bottom up; each layer uses only the ones below it, each by its own path (never
//! through the crate root), and `conformance/tests/docs/layers.rs` holds the code to this table.
//!
//! | layer | module | what it knows |
//! |---|---|---|
//! | evidence | `outcome.rs` | what a client saw ([`Evidence`]) and a check's verdict ([`Outcome`]) |
//! | client | [`client`] | one request over raw TCP, HTTP/1.x or HTTP/2, plain or TLS (rustls); incremental decoding (`client/decode.rs`) and framing into lines, `<div>`s and SSE events (`client/split.rs`); every item timestamped into its evidence |
//! | servers | [`servers`] | a server binary as a child process: its address, its log, its memory; what the checks of shutdown and disconnect are given of a local server |
//! | checks | [`checks`] | the catalogue: one module per concern, the judging helpers in `checks/judge.rs`, running them (`checks/run.rs`), the report |
//! | diagnose | [`diagnose`] | any URL: its items (the body decides how it is read), the verdict, the extra requests that isolate the layer, findings with their fixes |
//! | harness | [`harness`] | what the tests and `matrix` run the checks with: proxies, the real clients users have (curl, Chromium, a relay that cuts connections: `harness/real_clients/`), the zoo of real stacks, the per-framework suites, the docs' transcripts |
//! | bench | [`bench`] | load, the figures and the summary, charts |
//! | cli | [`cli`] | the command line's flags; `main.rs` maps them onto the layers above |
//!
//! From a test of your own, [`assert_streams`] diagnoses a URL and panics with the report unless
//! it streams; [`run`] runs the catalogue against a base URL and returns its [`Report`].

pub mod bench;
pub mod checks;
pub mod cli;
pub mod client;
pub mod diagnose;
pub mod harness;
mod outcome;
pub mod servers;

pub use checks::report::{CheckResult, Report};
pub use checks::{Check, CheckId, Config, Progress, catalogue, ids, run, run_observed};
pub use diagnose::assert_streams;
pub use outcome::{Evidence, Level, LineArrival, Outcome};
