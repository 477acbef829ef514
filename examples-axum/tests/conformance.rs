//! The whole conformance catalogue against the real `examples-axum` binary, one test per check:
//! a failure reads like `axum::head_is_prompt`.

conformance::suite!(axum, env!("CARGO_BIN_EXE_examples-axum"));
