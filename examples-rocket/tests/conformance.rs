//! The whole conformance catalogue against the real `examples-rocket` binary, one test per check:
//! a failure reads like `rocket::head_is_prompt`.

conformance::suite!(rocket, env!("CARGO_BIN_EXE_examples-rocket"));
