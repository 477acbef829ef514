//! Limits per HTTP/2 connection under abuse, sent as raw frames ([`crate::client::frames`]):
//! the known attacks (rapid reset, the CONTINUATION flood, empty DATA frames) must end in
//! GOAWAY or a close, and one connection must not be able to open streams without limit. Each
//! attack is bounded in frames and seconds, and while it runs a victim stream on a connection of its own must keep
//! its schedule; afterwards a fresh request must be answered. Over HTTP/1.1 they do not apply.

use std::time::Duration;

use super::Config;
use crate::{
    client::{self, Ask, Target, frames::*},
    outcome::{Level, Outcome},
};

/// The most (HEADERS, RST_STREAM) pairs the rapid reset sends before it gives up.
const RESET_PAIRS: u32 = 20_000;
/// The most CONTINUATION frames (1 KiB of header each) the flood sends.
const CONTINUATIONS: u32 = 10_000;
/// The most empty DATA frames the empty-frame flood sends.
const EMPTY_FRAMES: u32 = 100_000;
/// Streams the flood tries to open on one connection with a zero window.
const FLOOD_STREAMS: u32 = 1_000;
/// The contract's limits: concurrent streams one connection may have, and what the flood may
/// make the server hold.
const MAX_STREAMS: u32 = 256;
const MAX_FLOOD_GROWTH_KIB: u64 = 16 * 1024;
/// How long the server has to answer a batch of frames before the next one goes out.
const ANSWER: Duration = Duration::from_millis(50);

fn h2_only(cfg: &Config) -> Option<Outcome> {
    (!cfg.target.speaks_h2()).then(|| {
        Outcome::not_applicable(
            "HTTP/2 only, and this target speaks HTTP/1.1 (ask for h2 with an https:// URL or \
             --http2)",
        )
    })
}

/// What the server said to an attack: its GOAWAY (code and debug data), a close, or nothing
/// within the bound, and how much of the attack went out first.
pub(crate) enum Answer {
    Goaway(u32, String),
    Closed,
    Nothing,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Goaway(code, debug) => write!(f, "GOAWAY (code {code:#x}, {debug:?})"),
            Answer::Closed => f.write_str("a closed connection"),
            Answer::Nothing => f.write_str("neither GOAWAY nor a close"),
        }
    }
}

/// Reads what came back to a batch of an attack, for at most [`ANSWER`] after the last frame.
async fn answered(raw: &mut Raw) -> Option<Answer> {
    loop {
        match raw.next(ANSWER).await {
            Ok(Some(frame)) if frame.kind == GOAWAY => {
                return Some(Answer::Goaway(frame.error_code().unwrap_or(0), frame.debug_data()));
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Some(Answer::Closed),
            Err(_) => return None,
        }
    }
}

/// Runs `attack` (which reports what the server answered and after how many units) beside a
/// victim stream, then asks for a fresh one: the verdict on all three.
async fn beside_victim(
    cfg: &Config, attack: impl Future<Output = Result<(Answer, u32), String>>, unit: &str,
    bound: u32,
) -> Outcome {
    let victim = client::send(&cfg.target, Ask::get(cfg.stream_path(), cfg.deadline()));
    let (attacked, victim) = tokio::join!(attack, victim);
    let fresh =
        client::send(&cfg.target, Ask::get(super::stream_path(1, Duration::ZERO), cfg.deadline()))
            .await;
    let mut outcome = match attacked {
        Err(error) => Outcome::fail(format!("the attack could not run: {error}")),
        Ok((Answer::Nothing, sent)) => Outcome::fail(format!(
            "no GOAWAY and no close after {sent} {unit} (the bound): the server takes the \
             attack without end"
        )),
        Ok((answer, sent)) => super::judge::after_attack(
            cfg,
            &victim,
            &fresh,
            format!("{answer} after {sent} of at most {bound} {unit}"),
        ),
    };
    outcome.evidence = vec![victim.evidence, fresh.evidence];
    outcome
}

/// Rapid reset (CVE-2023-44487): streams opened and reset at once, in batches of 1 000 pairs,
/// until the server says GOAWAY or closes, at most [`RESET_PAIRS`].
pub async fn h2_rapid_reset_goaway(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let path = cfg.stream_path();
    let attack = rapid_reset(&cfg.target, &path, RESET_PAIRS);
    beside_victim(cfg, attack, "(HEADERS, RST_STREAM) pairs", RESET_PAIRS).await
}

/// The CONTINUATION flood (CVE-2024-27316): a HEADERS frame without END_HEADERS, then
/// CONTINUATION frames of 1 KiB of header each, in batches of 100, at most [`CONTINUATIONS`].
pub async fn h2_continuation_flood_goaway(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let path = cfg.stream_path();
    let attack = continuation_flood(&cfg.target, &path, CONTINUATIONS);
    beside_victim(cfg, attack, "CONTINUATION frames", CONTINUATIONS).await
}

/// The empty-frame flood ([`empty_frame_flood`]) on a request that stays open (a long stream):
/// GOAWAY or a close within [`EMPTY_FRAMES`] frames.
pub async fn h2_empty_frames_goaway(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let path = super::stream_path(1_000_000, Duration::from_secs(1));
    let attack = empty_frame_flood(&cfg.target, &path, EMPTY_FRAMES);
    beside_victim(cfg, attack, "empty DATA frames", EMPTY_FRAMES).await
}

/// Opens and at once resets streams of `path`, 1 000 pairs at a time, until the server says
/// GOAWAY or closes, at most `pairs`: what it answered, after how many pairs.
pub(crate) async fn rapid_reset(
    target: &Target, path: &str, pairs: u32,
) -> Result<(Answer, u32), String> {
    let mut raw = Raw::open(target, &[]).await?;
    let block = raw.request_block(path);
    Ok(in_batches(&mut raw, 1_000, pairs, |raw, first| {
        for i in first..first + 1_000 {
            raw.queue(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, &block);
            raw.queue(RST_STREAM, 0, 2 * i + 1, &CANCEL.to_be_bytes());
        }
    })
    .await)
}

/// A HEADERS frame for `path` without END_HEADERS, then CONTINUATION frames of 1 KiB of header
/// each, 100 at a time, at most `frames`: what the server answered, after how many frames.
pub(crate) async fn continuation_flood(
    target: &Target, path: &str, frames: u32,
) -> Result<(Answer, u32), String> {
    let mut raw = Raw::open(target, &[]).await?;
    // Nothing may come between the frames of a header block, the SETTINGS ACK included.
    raw.server_settings(Duration::from_secs(5)).await?;
    let block = raw.request_block(path);
    raw.queue(HEADERS, 0, 1, &block);
    // `x-flood: aaa…` (1000 bytes), a literal without indexing with a new name.
    let mut field = b"\x00\x07x-flood\x7f\xe9\x06".to_vec();
    field.extend(std::iter::repeat_n(b'a', 1000));
    Ok(in_batches(&mut raw, 100, frames, |raw, _| {
        for _ in 0..100 {
            raw.queue(CONTINUATION, 0, 1, &field);
        }
    })
    .await)
}

/// Empty DATA frames without END_STREAM on one open request (CVE-2019-9518, RUSTSEC-2026-0258):
/// each costs the server a frame's work and changes nothing, 1 000 at a time, at most `frames`.
pub(crate) async fn empty_frame_flood(
    target: &Target, path: &str, frames: u32,
) -> Result<(Answer, u32), String> {
    let mut raw = Raw::open(target, &[]).await?;
    raw.queue(HEADERS, END_HEADERS, 1, &raw.request_block(path));
    Ok(in_batches(&mut raw, 1_000, frames, |raw, _| {
        for _ in 0..1_000 {
            raw.queue(DATA, 0, 1, &[]);
        }
    })
    .await)
}

/// Sends an attack in batches of `batch` units, each queued by `queue(raw, units sent so far)`,
/// reading what the server answers after each, until it says GOAWAY or closes, at most `bound`
/// units: what it answered, after how many units.
async fn in_batches(
    raw: &mut Raw, batch: u32, bound: u32, mut queue: impl FnMut(&mut Raw, u32),
) -> (Answer, u32) {
    let mut sent = 0;
    while sent < bound {
        queue(raw, sent);
        if raw.flush().await.is_err() {
            return (Answer::Closed, sent);
        }
        sent += batch;
        if let Some(answer) = answered(raw).await {
            return (answer, sent);
        }
    }
    (Answer::Nothing, sent)
}

/// What the stream flood saw: the limit the server advertised, the streams it answered and
/// refused, how the connection ended, and the server's memory growth (when its pid is known).
pub(crate) struct Flooded {
    pub(crate) limit: Option<u32>,
    pub(crate) heads: u32,
    pub(crate) refused: u32,
    pub(crate) ended: Option<Answer>,
    pub(crate) grown_kib: Option<u64>,
}

/// With a zero flow-control window (so no body can be sent), opens `streams` streams of a long
/// stream on one connection to `target`, 100 at a time, reading what comes back between
/// batches; the memory growth is the process `pid`'s.
pub(crate) async fn flood(
    target: &Target, pid: Option<u32>, streams: u32,
) -> Result<Flooded, String> {
    let before = pid.and_then(|pid| crate::servers::rss_kib(pid).ok());
    let mut raw = Raw::open(target, &[(INITIAL_WINDOW_SIZE, 0)]).await?;
    let block = raw.request_block("/stream?count=1000000&interval_ms=0");
    let mut seen = Flooded { limit: None, heads: 0, refused: 0, ended: None, grown_kib: None };
    'batches: for batch in 0..streams.div_ceil(100) {
        for i in 0..100 {
            raw.queue(HEADERS, END_HEADERS | END_STREAM, 2 * (batch * 100 + i) + 1, &block);
        }
        if raw.flush().await.is_err() {
            seen.ended = Some(Answer::Closed);
            break;
        }
        loop {
            match raw.next(ANSWER * 4).await {
                Ok(Some(f)) if f.kind == SETTINGS => {
                    let max =
                        f.settings().into_iter().find(|(id, _)| *id == MAX_CONCURRENT_STREAMS);
                    seen.limit = seen.limit.or(max.map(|(_, v)| v));
                }
                Ok(Some(f)) if f.kind == HEADERS => seen.heads += 1,
                Ok(Some(f)) if f.kind == RST_STREAM => seen.refused += 1,
                Ok(Some(f)) if f.kind == GOAWAY => {
                    let code = f.error_code().unwrap_or(0);
                    seen.ended = Some(Answer::Goaway(code, f.debug_data()));
                    break 'batches;
                }
                Ok(Some(_)) => continue,
                Ok(None) => {
                    seen.ended = Some(Answer::Closed);
                    break 'batches;
                }
                Err(_) => break,
            }
        }
    }
    if let (Some(pid), Some(before)) = (pid, before) {
        seen.grown_kib = crate::servers::rss_kib(pid).ok().map(|kib| kib.saturating_sub(before));
    }
    Ok(seen)
}

/// A stream flood on one connection ([`flood`]): the server must advertise a limit of at most
/// [`MAX_STREAMS`] concurrent streams and refuse what exceeds it; where the checker can measure
/// it ([`super::measured`]), its memory must grow by at most [`MAX_FLOOD_GROWTH_KIB`]. A fresh
/// request must be answered afterwards.
pub async fn h2_stream_flood_bounded(cfg: &Config) -> Outcome {
    if let Some(outcome) = h2_only(cfg) {
        return outcome;
    }
    let own = super::measured(cfg).ok();
    let (target, pid) = own.as_ref().map_or((&cfg.target, None), |m| (&m.target, Some(m.pid)));
    let Flooded { limit, heads, refused, ended, grown_kib } =
        match flood(target, pid, FLOOD_STREAMS).await {
            Ok(flooded) => flooded,
            Err(error) => return Outcome::fail(format!("the flood could not run: {error}")),
        };
    let ended = ended.map_or(String::new(), |answer| format!(", then {answer}"));
    let memory = grown_kib.map_or("memory not measured (a bare URL)".into(), |kib| {
        format!("memory +{:.1} MiB", kib as f64 / 1024.0)
    });
    let seen = format!(
        "{FLOOD_STREAMS} streams opened on one connection: {heads} answered, {refused} \
         refused{ended}; {memory}"
    );
    let outcome = match limit {
        None => Outcome::fail(format!(
            "advertises no MAX_CONCURRENT_STREAMS: {seen}; one connection can hold as many \
             streams as it opens"
        )),
        Some(limit) if limit > MAX_STREAMS => Outcome::fail(format!(
            "advertises MAX_CONCURRENT_STREAMS {limit}, above the contract's {MAX_STREAMS}: {seen}"
        )),
        Some(limit) if heads > limit => Outcome::fail(format!(
            "advertises MAX_CONCURRENT_STREAMS {limit} but answered {heads} streams: the limit \
             is not enforced; {seen}"
        )),
        Some(_) if grown_kib.is_some_and(|kib| kib > MAX_FLOOD_GROWTH_KIB) => Outcome::fail(
            format!("{seen}: more than the contract's {} MiB", MAX_FLOOD_GROWTH_KIB / 1024),
        ),
        Some(limit) => Outcome::pass(format!("MAX_CONCURRENT_STREAMS {limit}; {seen}")),
    };
    let fresh =
        client::send(target, Ask::get(super::stream_path(1, Duration::ZERO), cfg.deadline())).await;
    match (outcome.level, fresh.status()) {
        (Level::Pass, Some(200)) | (Level::Fail, _) => outcome.with(fresh.evidence),
        (_, status) => {
            Outcome::fail(format!("{}; a fresh request after it got {status:?}", outcome.reason))
                .with(fresh.evidence)
        }
    }
}
