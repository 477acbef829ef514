//! The whole conformance catalogue against the real `examples-axum` binary, one test per check:
//! a failure reads like `axum::head_is_prompt`.

conformance::suite!(axum, env!("CARGO_BIN_EXE_examples-axum"));

/// The README's `curl -N` transcript, and the introduction's copy of it, are what curl prints
/// from this binary (`conformance/tests/docs/commands.rs` leaves the `curl` transcripts to this test).
#[test]
fn readme_transcripts() {
    if !conformance::harness::real_clients::require("curl", "curl") {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = ["README.md", "docs/src/introduction.md"];
    let binary = env!("CARGO_BIN_EXE_examples-axum");
    let ran = conformance::harness::transcripts::run_curl_transcripts(
        binary,
        &root,
        &files,
        "localhost:3000",
    );
    assert_eq!(ran, 1, "one transcript, shown twice");
}
