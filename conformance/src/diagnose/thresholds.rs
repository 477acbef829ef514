//! The figures of the rule that judges a response (`verdict.rs`), in one place: what counts as
//! arriving together, and what is too little to judge.

/// Items whose bytes arrive within this long of the previous ones arrived together: one read,
/// or one flushed buffer.
pub const TOGETHER_MS: f64 = 10.0;
/// Fewer items than this give no spread to judge.
pub const MIN_ITEMS: usize = 3;
/// A response shorter than this is too quick to tell streaming from buffering.
pub const MIN_DURATION_MS: f64 = 500.0;
/// Bursts whose items keep coming, less than [`TOGETHER_MS`] apart, for longer than this are a
/// fast stream, not a released buffer.
pub const FLOW_MS: f64 = 100.0;
