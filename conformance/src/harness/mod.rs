//! What the tests and `matrix` run the checks against: the servers they start, the proxies in
//! front of them, load balancers in front of several instances (`balanced`), the real clients (curl, Chromium, the Rust client example) and the
//! per-framework test suite.

pub mod balanced;
pub mod certs;
pub mod process;
pub mod proxies;
pub mod real_clients;
pub mod testing;
pub mod transcripts;
pub mod transports;
pub mod zoo;
