conformance::suite!(
    rocket,
    env!("CARGO_BIN_EXE_examples-rocket"),
    known_limits: [
        // Rocket 0.5.2 sets hyper's header_read_timeout to None and offers no setting or
        // custom listener to change it (rwf2/Rocket#1405): a request whose headers never end
        // keeps its connection open.
        (
            conformance::ids::malformed_requests_refused,
            "headers that never finish: no answer and still open",
        ),
    ]
);
