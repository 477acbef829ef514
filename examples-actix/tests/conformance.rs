//! The whole conformance catalogue against the real `examples-actix` binary, one test per check:
//! a failure reads like `actix::head_is_prompt`.

conformance::suite!(
    actix,
    env!("CARGO_BIN_EXE_examples-actix"),
    known_limits: [
        // actix-http 3.20 drains HTTP/1 connections on graceful shutdown (its h1 dispatcher
        // polls the shutdown signal) but its h2 dispatcher never looks at it: no GOAWAY, and an
        // open connection keeps taking new streams until the shutdown timeout closes it.
        (conformance::ids::h2_shutdown_goaway, "got no GOAWAY"),
        // actix-http 3.20 builds its h2 connections with only the window sizes set
        // (`handshake_with_timeout`, src/h2/mod.rs), and actix-web offers no other h2 setting:
        // no MAX_CONCURRENT_STREAMS is advertised, and one connection starts every stream it
        // opens (1 000 with a zero window: about +9 MiB).
        (conformance::ids::h2_stream_flood_bounded, "advertises no MAX_CONCURRENT_STREAMS"),
        // actix-http 3.20 serves HTTP/2 with h2 0.3.27, which takes empty DATA frames without
        // limit (RUSTSEC-2026-0258, GHSA-q83h-524g-xf6h; patched only in h2 0.4.16, and
        // actix-http has no release on h2 0.4): no GOAWAY after 100 000 of them.
        (conformance::ids::h2_empty_frames_goaway, "no GOAWAY and no close after 100000"),
        // actix-http 3.20's h1 dispatcher reads pipelined requests until 128 KiB wait in its
        // buffer, then wakes itself at once on every poll (`read_available`,
        // src/h1/dispatcher.rs) while its writes wait for a client that does not read: a core
        // busy for as long as the client holds the connection (docs/src/actix.md has the
        // reproduction).
        (conformance::ids::pipelining_bounded, "polls the connection instead of waiting for it"),
    ]
);
