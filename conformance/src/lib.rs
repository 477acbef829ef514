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
//! From the bottom up; each layer uses only the ones below it.
//!
//! | layer | module | what it knows |
//! |---|---|---|
//! | client | [`client`] | one request over raw TCP, HTTP/1.x or HTTP/2, plain or TLS (rustls); incremental decoding (`client/decode.rs`) and framing into lines, `<div>`s and SSE events (`client/split.rs`); every item timestamped |
//! | evidence | `outcome.rs` | what a client saw ([`Evidence`]) and a check's verdict ([`Outcome`]) |
//! | checks | [`checks`] | the catalogue: one module per concern, the judging helpers in `checks/judge.rs`, running them, the report |
//! | diagnose | [`diagnose`] | any URL: its items (the body decides how it is read), the verdict, the extra requests that isolate the layer, findings with their fixes |
//! | harness | [`harness`] | starting servers, proxies, browsers and the zoo of real stacks for the tests and `matrix`; the docs' transcripts |
//! | bench | [`bench`] | load, tables, charts |
//!
//! The CLI's flags are [`cli`]; `main.rs` maps them onto these. From a test of your own,
//! [`assert_streams`] diagnoses a URL and panics with the report unless it streams.

pub mod bench;
pub mod checks;
pub mod cli;
pub mod client;
pub mod diagnose;
pub mod harness;
mod outcome;

pub use checks::report::{CheckResult, Report, matrix};
pub use checks::{
    Check, CheckId, Config, DEFAULT_COUNT, DEFAULT_INTERVAL_MS, Local, Progress, catalogue, check,
    entry, ids, run, run_observed,
};
pub use diagnose::assert_streams;
pub use harness::{balanced, clients, proxies, servers, testing, transports};
pub use outcome::{Evidence, Level, LineArrival, Outcome};
