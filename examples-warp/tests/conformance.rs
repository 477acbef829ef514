//! The whole conformance catalogue against the real `examples-warp` binary, one test per check:
//! a failure reads like `warp::head_is_prompt`.

conformance::suite!(warp, env!("CARGO_BIN_EXE_examples-warp"));
