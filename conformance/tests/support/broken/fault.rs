//! The faults, one for each way a check must catch a server going wrong.

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Follows the contract.
    None,
    /// Nothing listens on the address.
    NotListening,
    /// Collects the whole body, then sends it.
    Buffered,
    /// Sets Content-Length (and streams the bytes without chunking).
    ContentLength,
    Etag,
    LastModified,
    NoCacheControl,
    NoAccelBuffering,
    NoNosniff,
    WrongContentType,
    /// Close-delimited instead of chunked on HTTP/1.1.
    NotChunked,
    /// Counts from 0.
    WrongContent,
    /// Starts the whole schedule one interval late.
    FirstLineLate,
    /// Lines come 0.6 intervals apart.
    FastSchedule,
    /// Every even line is held back and sent with the next one.
    Pairs,
    /// Sleeps interval + a third after each line instead of until a deadline.
    Drift,
    /// Keeps the body open one interval after the last line.
    Linger,
    /// Sends the body on HEAD too.
    HeadBody,
    /// Runs the generator for HEAD and answers when it is done.
    HeadRunsGenerator,
    /// HEAD leaves out the caching headers.
    HeadMissingHeaders,
    /// Sends chunked encoding to HTTP/1.0 clients.
    ChunkedToHttp10,
    /// Sends chunked encoding to HTTP/1.0 clients when it compresses (actix's Compress does
    /// this unless told otherwise).
    ChunkedToCompressedHttp10,
    /// Buffers the body for HTTP/1.0 clients.
    BufferedForHttp10,
    /// Ignores bad parameters and streams the defaults.
    AcceptsBadInput,
    /// Answers 400 with an empty body.
    SilentBadInput,
    /// Answers 400 naming the parameter and value, but not the allowed range.
    VagueBadInput,
    /// Stops accepting connections after the first bad request.
    DiesAfterBadInput,
    /// Serves the stream on every path.
    NoNotFound,
    /// 405 without an Allow header.
    NoAllow,
    /// 404 on `/`.
    NoIndex,
    /// Defaults to 3 lines.
    WrongDefaults,
    /// Compresses with the client's encoding but flushes only at the end of the body.
    NeverFlushes,
    /// Gzips everything, asked or not (what warp's compression filters do).
    CompressesUnasked,
    /// Never compresses (allowed, but warned about).
    NoCompression,
    /// `/stream.html` is served as text/plain.
    HtmlWrongContentType,
    /// `/stream.html` ignores `pad` and always pads 1024 spaces.
    HtmlIgnoresPad,
    /// `/stream.html` is collected, then sent.
    HtmlBuffered,
    /// `/events` is served as text/plain.
    EventsWrongContentType,
    /// Events carry no `id:`.
    EventsNoIds,
    /// No `retry:` hint.
    EventsNoRetry,
    /// `/events` is collected, then sent.
    EventsBuffered,
    /// `Last-Event-ID` is ignored: a reconnecting client starts again at 1.
    EventsIgnoreLastEventId,
    /// A bad `Last-Event-ID` is taken as 0.
    EventsAcceptBadLastEventId,
    /// No keep-alive comments.
    EventsNoKeepalive,
    /// Ignores write errors: a stream whose client has gone runs its schedule to the end.
    KeepsGenerating,
    /// Produces the whole body up front and queues it, however slowly the client reads.
    BuffersAhead,
    /// Serves one connection at a time.
    OneAtATime,
    /// Answers an HTTP/1.1 request without Host.
    AcceptsNoHost,
    /// Waits forever for headers that never finish.
    NoHeaderTimeout,
    /// Exits at once on SIGTERM, cutting the streams in flight.
    ShutdownCutsStreams,
    /// On SIGTERM, waits for the streams however long they take.
    ShutdownIgnoresGrace,
    /// On SIGTERM, keeps waiting for connections that have not sent a request yet.
    ShutdownWaitsForIdle,
    /// Collects the whole body, then sends the head with a Content-Length and the body (what
    /// a middleware that needs the length does).
    CollectedBody,
    /// The first item is held back and sent with the second.
    FirstLineHeld,
    /// Streams, with the headers of a CDN in front (`cf-ray`) and no `no-transform`.
    CdnHeaders,
    /// A cache in front replays a stored answer: every item at once, with `Age` and
    /// `X-Cache: HIT`. A request with `Cache-Control: no-cache` reaches the origin, which
    /// streams (`X-Cache: MISS`).
    Cached,
    /// Over HTTP/2 (h2c with prior knowledge), collects the body and sends it at the end;
    /// HTTP/1.1 streams.
    Http2Buffered,
    /// Over HTTP/2, holds the response head until the first item, one interval late.
    H2HeadersLate,
    /// Over HTTP/2, holds every odd item and sends it with the next in one DATA frame.
    H2Coalesced,
    /// Over HTTP/2, allows 10 concurrent streams per connection.
    H2FewStreams,
    /// Over HTTP/2, shuts down without GOAWAY: open connections keep taking new streams.
    H2NoGoaway,
    /// When the generator fails (`fail_after`), ends the body cleanly: the last chunk over
    /// HTTP/1.1, END_STREAM over HTTP/2; a compressor is left unfinished (Rocket 0.5's way).
    FailureEndsCleanly,
    /// When the generator fails, the compressor writes its end (a gzip trailer, …) and the
    /// body ends cleanly; uncompressed, the failure is a cut as it should be.
    FailureFinishesCompression,
    /// Over HTTP/2, a failed stream ends with END_STREAM; HTTP/1.1 cuts it as it should.
    H2FailureEndsStream,
    /// When the generator fails, the connection stays open with nothing more sent.
    FailureHangs,
    /// Over HTTP/2, advertises no limit on concurrent streams and starts every one.
    H2NoStreamLimit,
    /// Over HTTP/2, takes streams reset before it accepted them without limit: no GOAWAY
    /// under rapid reset.
    H2NoResetLimit,
    /// Over HTTP/2, takes header blocks of any size: no GOAWAY under a CONTINUATION flood.
    H2NoHeaderLimit,
    /// Over HTTP/2, serves with h2 0.3, which takes empty DATA frames without limit: no GOAWAY
    /// under an empty-frame flood (actix-http 3.20's h2, measured).
    H2EmptyFramesUnbounded,
    /// Over HTTP/1.1, answers pipelined requests by polling the socket in a loop: a core busy
    /// while the client does not read (actix-web 4's dispatcher, measured).
    SpinsOnUnreadClient,
    /// Over HTTP/1.1, keeps connections alive and frames each request by its first
    /// Content-Length alone: a request hidden in a body is answered.
    SmugglesBody,
}
