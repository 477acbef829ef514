//! HTTP/2's own ways to break a stream, on one connection held by hand
//! ([`crate::client::http2`]): a response head held back, items coalesced into fewer DATA
//! frames, a limit on concurrent streams that makes a page's streams wait, a reset stream
//! whose generator runs on or whose siblings suffer, and a shutdown without GOAWAY. Over
//! HTTP/1 they do not apply.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::{
    Config,
    endpoint::Endpoint,
    failure::{AFTER, failing_path},
    shutdown::exit_after,
    {
        judge::{content_problem, first_line_outcome, schedule_outcome, spacing_outcome},
        stream_path,
    },
};
use crate::{
    client::{
        Target,
        http2::{Connection, Frame, Read},
        ms,
    },
    outcome::{Level, Outcome},
};

/// The streams [`h2_100_streams_one_connection`] opens on one connection.
const STREAMS: usize = 100;
/// Items of the stream [`h2_reset_stops_only_its_stream`] resets; an unusual number, so no
/// other check's stream is mistaken for it in the log.
const RESET_OF: u32 = 41;

fn h2_only(cfg: &Config) -> Option<Outcome> {
    (!cfg.target.speaks_h2()).then(|| {
        Outcome::not_applicable(
            "HTTP/2 only, and this target speaks HTTP/1.1 (ask for h2 with an https:// URL or \
             --http2)",
        )
    })
}

async fn open(cfg: &Config) -> Result<Connection, Outcome> {
    Connection::open(&cfg.target).await.map_err(|e| Outcome::fail(format!("HTTP/2: {e}")))
}

/// What is wrong with what the stream carried as the counting stream up to `count`.
fn content(read: &Read, count: u32) -> Option<String> {
    match &read.got.error {
        Some(error) => Some(error.clone()),
        None => content_problem(&read.got.body, count),
    }
}

/// How many items (lines) a DATA frame carries.
fn items(frame: &Frame) -> usize {
    frame.data.iter().filter(|&&b| b == b'\n').count()
}

/// GET the configured stream on a connection of its own, read to its end.
async fn one_stream(cfg: &Config) -> Result<Read, Outcome> {
    let connection = open(cfg).await?;
    let path = cfg.stream_path();
    let mut stream = connection
        .get(&cfg.target, &path, cfg.deadline())
        .await
        .map_err(|e| Outcome::fail(format!("GET {path} over h2: {e}")))?;
    let read = stream.read(cfg.deadline()).await;
    if stream.status != 200 {
        let outcome = Outcome::fail(format!("GET {path} over h2 answered {}", stream.status));
        return Err(outcome.with(read.got.evidence));
    }
    match content(&read, cfg.count) {
        Some(problem) => {
            Err(Outcome::fail(format!("GET {path} over h2: {problem}")).with(read.got.evidence))
        }
        None => Ok(read),
    }
}

/// The response head (a HEADERS frame) comes at once, before the first item is due, not held
/// until the generator has produced something.
pub async fn h2_headers_first(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let read = match one_stream(cfg).await {
        Ok(read) => read,
        Err(outcome) => return outcome,
    };
    let head_ms = read.got.evidence.head_ms.unwrap_or(f64::NAN);
    let tol = ms(cfg.tolerance);
    let first = read.frames.first().map_or(f64::NAN, |f| f.at_ms);
    Outcome::judge(
        head_ms <= tol,
        format!("HEADERS after {head_ms:.1} ms, first DATA frame after {first:.1} ms"),
        format!(
            "the response head (HEADERS) came after {head_ms:.0} ms, expected within {tol:.0} ms: \
             the server holds the head until its first item, so a client cannot even tell \
             that the stream has started"
        ),
    )
    .with(read.got.evidence)
}

/// Each item arrives in DATA frames of its own, at its due time: HTTP/2 has no chunks, and
/// a server that coalesces items into fewer frames has held some of them.
pub async fn h2_item_per_data_frame(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let read = match one_stream(cfg).await {
        Ok(read) => read,
        Err(outcome) => return outcome,
    };
    let shared = read.frames.iter().find(|frame| items(frame) > 1);
    let outcome = match shared {
        Some(frame) => Outcome::fail(format!(
            "one DATA frame at {:.0} ms carried {} items: the server coalesced items it \
             should have sent as each was produced",
            frame.at_ms,
            items(frame)
        )),
        None => {
            let lines = read.got.lines();
            let timing = schedule_outcome(lines, cfg.interval, cfg.tolerance);
            match timing.level {
                Level::Pass => Outcome::pass(format!(
                    "{} items in {} DATA frames, {}",
                    lines.len(),
                    read.frames.len(),
                    timing.reason
                )),
                _ => timing,
            }
        }
    };
    outcome.with(read.got.evidence)
}

/// 100 streams at once on one connection (the page of a busy app, a dashboard): the server
/// allows them (SETTINGS_MAX_CONCURRENT_STREAMS of at least 100, as RFC 9113 recommends) and
/// every one arrives on schedule.
pub async fn h2_100_streams_one_connection(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let connection = match open(cfg).await {
        Ok(connection) => connection,
        Err(outcome) => return outcome,
    };
    let path = cfg.stream_path();
    let outcomes = join_all((0..STREAMS).map(|_| async {
        let mut stream = connection
            .get(&cfg.target, &path, cfg.deadline())
            .await
            .map_err(|e| Outcome::fail(format!("GET {path} over h2: {e}")))?;
        let read = stream.read(cfg.deadline()).await;
        if let Some(problem) = content(&read, cfg.count) {
            return Err(Outcome::fail(format!("GET {path} over h2: {problem}")));
        }
        let lines = read.got.lines();
        // Opening 100 streams takes the client a moment of its own: line 1 may take up to
        // one interval, as in the load check; the schedule is judged from there.
        let first = first_line_outcome(lines, cfg.interval);
        if first.level != Level::Pass {
            return Err(first);
        }
        let offset = lines[0].at_ms;
        let spacing = spacing_outcome(lines, cfg.interval, cfg.tolerance);
        match spacing.level {
            Level::Pass => Ok(offset),
            _ => Err(spacing),
        }
    }))
    .await;
    // Known once the server's SETTINGS are in, which they are after the first response.
    let limit = connection.max_streams();
    if limit < STREAMS {
        return Outcome::fail(format!(
            "the server allows {limit} concurrent streams per connection \
             (SETTINGS_MAX_CONCURRENT_STREAMS): the streams past that wait for others to end, \
             as a 7th EventSource waits over HTTP/1.1; allow at least 100"
        ));
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    if let Some(first) = failed.first() {
        return Outcome::fail(format!(
            "{} of {STREAMS} streams on one connection failed; the first: {}",
            failed.len(),
            first.reason
        ));
    }
    let slowest = outcomes.iter().filter_map(|o| o.as_ref().ok()).fold(0.0, |a: f64, &b| a.max(b));
    Outcome::pass(format!(
        "{STREAMS} streams on one connection (the server allows {limit}) all on schedule; \
         slowest first line {slowest:.1} ms"
    ))
}

/// Two streams on one connection; the client resets one (RST_STREAM) after two items: its
/// generator stops within one interval + 200 ms, as the disconnect check asks of a closed
/// socket, and the other stream carries on to its end on schedule.
pub async fn h2_reset_stops_only_its_stream(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let Some(log) = &cfg.local.log else {
        return Outcome::warn("needs the server's log: run it from the test suite or `matrix`");
    };
    let connection = match open(cfg).await {
        Ok(connection) => connection,
        Err(outcome) => return outcome,
    };
    let reset_path = stream_path(RESET_OF, cfg.interval);
    let sibling_path = cfg.stream_path();
    let (reset, sibling) = tokio::join!(
        connection.get(&cfg.target, &reset_path, cfg.deadline()),
        connection.get(&cfg.target, &sibling_path, cfg.deadline()),
    );
    let (mut reset, mut sibling) = match (reset, sibling) {
        (Ok(reset), Ok(sibling)) => (reset, sibling),
        (Err(e), _) | (_, Err(e)) => return Outcome::fail(format!("GET over h2: {e}")),
    };
    let sibling = tokio::spawn(async move { sibling.read(Duration::from_secs(60)).await });
    let mut items = 0;
    while items < 2 {
        match reset.frame().await {
            Some(Ok(frame)) => items += self::items(&frame),
            other => {
                let what = other.map_or("the end".into(), |r| r.err().unwrap_or_default());
                return Outcome::fail(format!("GET {reset_path} ended early: {what}"));
            }
        }
    }
    let gone = Instant::now();
    drop(reset);
    let bound = cfg.interval + Duration::from_millis(200);
    let wanted = format!("of {RESET_OF} items");
    let cancelled = log
        .wait_for(gone, gone + bound + Duration::from_secs(5), |line| {
            line.contains("stream cancelled after") && line.contains(&wanted)
        })
        .await;
    let sibling = match sibling.await {
        Ok(read) => read,
        Err(e) => return Outcome::fail(format!("the sibling stream's reader failed: {e}")),
    };
    let after = match cancelled {
        None => {
            return Outcome::fail(format!(
                "no \"stream cancelled after K of {RESET_OF} items\" in the log within {} ms \
                 of the client's RST_STREAM: the generator kept running",
                bound.as_millis() + 5000
            ));
        }
        Some((at, _)) => ms(at - gone),
    };
    if after > ms(bound) {
        return Outcome::fail(format!(
            "the reset stream was cancelled {after:.0} ms after the client's RST_STREAM, \
             expected within {} ms: the generator kept running",
            bound.as_millis()
        ));
    }
    if let Some(problem) = content(&sibling, cfg.count) {
        return Outcome::fail(format!("the other stream on the connection: {problem}"))
            .with(sibling.got.evidence);
    }
    let lines = sibling.got.lines();
    let timing = schedule_outcome(lines, cfg.interval, cfg.tolerance);
    let outcome = match timing.level {
        Level::Pass => Outcome::pass(format!(
            "cancelled {after:.0} ms after RST_STREAM; the other stream on the connection: {}",
            timing.reason
        )),
        _ => Outcome::fail(format!("the other stream on the connection: {}", timing.reason)),
    };
    outcome.with(sibling.got.evidence)
}

/// A connection to `target` with a stream of `path` open on it, its first item read.
async fn first_item(
    target: &Target, path: &str, deadline: Duration,
) -> Result<(Connection, crate::client::http2::Stream), String> {
    let connection = Connection::open(target).await.map_err(|e| format!("HTTP/2: {e}"))?;
    let mut stream = connection
        .get(target, path, deadline)
        .await
        .map_err(|e| format!("GET {path} over h2: {e}"))?;
    if !matches!(stream.frame().await, Some(Ok(_))) {
        return Err(format!("GET {path} over h2 ended before its first item"));
    }
    Ok((connection, stream))
}

/// What a new stream on `connection` gets.
async fn new_stream(connection: &Connection, target: &Target, limit: Duration) -> String {
    match connection.get(target, "/stream?count=1&interval_ms=0", limit).await {
        Ok(probe) => format!("a new stream on it was answered {}", probe.status),
        Err(e) => format!("a new stream on it failed: {e}"),
    }
}

/// SIGTERM while a stream is open on an HTTP/2 connection: within 1 s the server says GOAWAY on
/// it (so a client opens its next streams elsewhere, not on a connection about to close), the
/// open stream still gets every item and ends cleanly, and then the connection closes and the
/// process exits.
pub async fn h2_shutdown_goaway(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let Some(launch) = &cfg.local.launch else {
        return Outcome::warn(
            "needs to start the server itself: run it from the test suite or `matrix`",
        );
    };
    let mut server = match launch.spawn(&[]) {
        Ok(server) => server,
        Err(e) => return Outcome::fail(format!("cannot start another instance: {e}")),
    };
    let target = Target { base: server.base.clone(), transport: cfg.target.transport.clone() };
    let (count, interval) = (5, Duration::from_millis(500));
    let path = stream_path(count, interval);
    let limit = Duration::from_secs(1);
    let (connection, mut stream) = match first_item(&target, &path, cfg.deadline()).await {
        Ok(opened) => opened,
        Err(e) => return Outcome::fail(e),
    };
    let signalled = Instant::now();
    if let Err(e) = server.terminate() {
        return Outcome::fail(e);
    }
    let reader = tokio::spawn(async move {
        let read = stream.read(Duration::from_secs(30)).await;
        (read, Instant::now())
    });
    let goaway = connection.goaway(limit).await;
    // Without GOAWAY a client keeps opening streams on the connection: what happens to one?
    let probe = match goaway {
        Ok(_) => None,
        Err(_) => Some(new_stream(&connection, &target, limit).await),
    };
    let (read, done) = match reader.await {
        Ok(read) => read,
        Err(e) => return Outcome::fail(format!("the stream's reader failed: {e}")),
    };
    let ended = connection.ended(Duration::from_millis(1500)).await;
    let closed_ms = ms(signalled.elapsed());
    let exit = exit_after(&mut server, signalled, Duration::from_secs(5)).await;
    // The stream's first item was read before the signal; the rest of it came after.
    let rest = String::from_utf8_lossy(&read.got.body).into_owned();
    let want: String = (2..=count).map(|k| format!("{k}\n")).collect();
    let outcome = match (goaway, probe) {
        (Err(e), probe) => Outcome::fail(format!(
            "after SIGTERM the open HTTP/2 connection got no GOAWAY ({e}){}: clients keep \
             sending requests on a connection the shutdown will close; the server should send \
             GOAWAY on every connection when it stops accepting",
            probe.map(|p| format!("; {p}")).unwrap_or_default()
        )),
        (Ok(_), _) if read.got.error.is_some() || rest != want => Outcome::fail(format!(
            "after GOAWAY the open stream was cut short: it got {rest:?} after SIGTERM, \
             expected {want:?}{}",
            read.got.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
        )),
        (Ok(_), _) if ended.is_none() => Outcome::fail(format!(
            "the connection was still open 1.5 s after its last stream ended \
             ({closed_ms:.0} ms after SIGTERM)"
        )),
        (Ok(after), _) => match exit {
            None => Outcome::fail("still running 5 s after SIGTERM, its streams all ended"),
            Some((_, code)) if code != 0 => Outcome::fail(format!("exited with status {code}")),
            Some((at, _)) => Outcome::pass(format!(
                "GOAWAY {:.0} ms after SIGTERM; the open stream got its {} remaining items and \
                 ended {:.0} ms after it; the connection {} and the process exited 0 after \
                 {at:.0} ms",
                ms(after),
                count - 1,
                ms(done - signalled),
                ended.unwrap_or_default(),
            )),
        },
    };
    outcome.with(read.got.evidence)
}

/// One stream's failure (`fail_after`) resets that stream with an error code, where
/// END_STREAM would make the half stream look whole, and spares the connection: a sibling
/// stream runs to its end on schedule, and a stream opened after the reset is answered.
pub async fn h2_failed_stream_spares_others(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let connection = match open(cfg).await {
        Ok(connection) => connection,
        Err(outcome) => return outcome,
    };
    let failing_path = failing_path(Endpoint::Stream, cfg);
    let sibling_path = cfg.stream_path();
    let deadline = cfg.deadline();
    let (failing, sibling) = tokio::join!(
        connection.get(&cfg.target, &failing_path, deadline),
        connection.get(&cfg.target, &sibling_path, deadline),
    );
    let (mut failing, mut sibling) = match (failing, sibling) {
        (Ok(failing), Ok(sibling)) => (failing, sibling),
        (Err(e), _) | (_, Err(e)) => return Outcome::fail(format!("GET over h2: {e}")),
    };
    let (failed, sibling) = tokio::join!(failing.read(deadline), sibling.read(deadline));
    let evidence = [failed.got.evidence.clone(), sibling.got.evidence.clone()];
    let cut = match (&failed.got.error, content_problem(&failed.got.body, AFTER)) {
        _ if failing.status != 200 => Err(format!("status {}, expected 200", failing.status)),
        (_, Some(problem)) => Err(format!("{problem}, expected items 1–{AFTER} and the reset")),
        (None, None) => Err(format!(
            "items 1–{AFTER}, then END_STREAM: the stream ended cleanly after the failure, so \
             a client takes the half stream for a whole one; end it with RST_STREAM and an \
             error code (propagate the generator's error into the body)"
        )),
        (Some(error), None) if error.contains("NO_ERROR") || error.contains("had not ended") => {
            Err(format!("items 1–{AFTER}, then {error}"))
        }
        (Some(error), None) => Ok(error.clone()),
    };
    let cut = match cut {
        Ok(cut) => cut,
        Err(problem) => {
            let mut outcome = Outcome::fail(format!("{failing_path}: {problem}"));
            outcome.evidence = evidence.into();
            return outcome;
        }
    };
    let timing = schedule_outcome(sibling.got.lines(), cfg.interval, cfg.tolerance);
    let sibling_problem = match content(&sibling, cfg.count) {
        Some(problem) => Some(problem),
        None if timing.level != Level::Pass => Some(timing.reason.clone()),
        None => None,
    };
    let after = match connection.get(&cfg.target, &stream_path(1, Duration::ZERO), deadline).await {
        Ok(mut stream) if stream.status == 200 => content(&stream.read(deadline).await, 1),
        Ok(stream) => Some(format!("status {}", stream.status)),
        Err(error) => Some(error),
    };
    let mut outcome = match (sibling_problem, after) {
        (Some(problem), _) => {
            Outcome::fail(format!("the other stream on the connection, {sibling_path}: {problem}"))
        }
        (None, Some(problem)) => Outcome::fail(format!(
            "a new stream on the connection after the reset: {problem}: one stream's failure \
             took the connection with it"
        )),
        (None, None) => Outcome::pass(format!(
            "{failing_path}: items 1–{AFTER}, then {cut}; the other stream: {}; a new stream \
             after it: 200",
            timing.reason
        )),
    };
    outcome.evidence = evidence.into();
    outcome
}
