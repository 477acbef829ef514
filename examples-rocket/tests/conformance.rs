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
        // Rocket 0.5.2 pumps a body into hyper through a channel, and when the body's reader
        // fails it drops the channel's sender (`?` in `_send_response`, src/server.rs) instead
        // of sending the error on: hyper ends the body cleanly, with the last chunk over
        // HTTP/1.1 and END_STREAM over HTTP/2. A compressed body still stops short of its
        // encoder's end, which a decoder notices (`failed_stream_is_cut_compressed` passes).
        (conformance::ids::failed_stream_is_cut, "then the body ended cleanly"),
        (conformance::ids::events_failure_resumed, "ended cleanly instead of being cut"),
        (conformance::ids::h2_failed_stream_spares_others, "then END_STREAM"),
        // Rocket 0.5.2 builds its HTTP/2 server with `max_concurrent_streams(None)` and has no
        // setting for it (`serve` in src/server.rs): one connection starts every stream it
        // opens.
        (conformance::ids::h2_stream_flood_bounded, "advertises no MAX_CONCURRENT_STREAMS"),
    ]
);
