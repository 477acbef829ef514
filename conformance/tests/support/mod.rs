pub mod broken;
#[allow(dead_code)] // used by tests/diagnose.rs only
pub mod chat;
#[allow(dead_code)] // used by tests/diagnose.rs and tests/proxies.rs
pub mod cli;
