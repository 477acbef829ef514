//! The whole conformance catalogue against the real `examples-actix` binary, one test per check:
//! a failure reads like `actix::head_is_prompt`.

conformance::suite!(actix, env!("CARGO_BIN_EXE_examples-actix"));
