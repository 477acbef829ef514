//! Limits per HTTP/1.1 connection under abuse, over raw TCP (or TLS): a client that pipelines
//! requests and never reads must not make the server spin or buffer without end, and a request
//! whose length is framed two ways must not let a second request hide in its body
//! (RFC 9112 §6.3). Over HTTP/2 they do not apply: its framing is the h2 library's.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{Config, judge, measured};
use crate::{
    client::{self, Ask, Fetched, Target},
    outcome::{Evidence, Outcome},
    servers::{cpu_ms, rss_kib},
};

/// What the client asks for, each a 64 KiB answer: the socket is full after a few dozen, so
/// the hold measures a server with nothing left to do. (With answers of a few hundred bytes,
/// a server that waits properly still had writing to do 6 s later, as the kernel let its send
/// buffer grow towards 4 MiB: 90 ms of CPU a second in a debug build.)
const PIPELINED_PATH: &str = "/stream.html?count=1&interval_ms=0&pad=65536";
/// The most requests the pipelining client sends, 1 000 per write.
const PIPELINED: u32 = 20_000;
/// A write of 1 000 requests that has not gone out after this: the server stopped reading.
const STALLED: Duration = Duration::from_secs(1);
/// How long the client then holds the connection open without reading: first for the server
/// to fill the socket with what it answers, then for the measure.
const SETTLE: Duration = Duration::from_secs(1);
const HOLD: Duration = Duration::from_secs(2);
/// The contract's limit: the CPU the server may spend while the client holds, as a share of
/// one core. A server waiting for the socket to drain spends next to none (axum, debug build:
/// 0 ms in 2 s); one that polls it in a loop spends a whole core (actix: 2 000 ms in 2 s).
const MAX_HOLD_CPU: f64 = 0.1;
/// And the memory it may grow by, the slow reader's budget (`backpressure_bounded`).
const MAX_GROWTH_KIB: u64 = 16 * 1024;

/// What the pipelining client saw and the server spent.
pub(crate) struct Pipelined {
    /// Requests written before the server stopped reading (or all of them).
    pub(crate) sent: u32,
    /// How the writing ended: all sent, stalled, or the connection closed.
    pub(crate) ended: String,
    pub(crate) hold_cpu_ms: f64,
    pub(crate) total_cpu_ms: f64,
    pub(crate) grown_kib: u64,
}

/// Writes up to `requests` requests (a multiple of 1 000) for [`PIPELINED_PATH`] on one
/// connection to `target` without reading a byte, then holds it open for [`SETTLE`] and
/// [`HOLD`], reading the CPU time and memory of the server's process `pid`.
pub(crate) async fn pipeline(
    pid: u32, target: &Target, requests: u32,
) -> Result<Pipelined, String> {
    let cpu = || cpu_ms(&pid.to_string()).ok_or("cannot read the server's CPU time");
    let (cpu_before, rss_before) = (cpu()?, rss_kib(pid)?);
    let mut io = client::connect_http1(target).await?;
    let host = target.host_port().to_owned();
    let request = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", target.path(PIPELINED_PATH));
    let batch = request.repeat(1_000);
    let (mut sent, mut ended) = (0, format!("all {requests} written"));
    while sent < requests {
        match tokio::time::timeout(STALLED, io.write_all(batch.as_bytes())).await {
            Ok(Ok(())) => sent += 1_000,
            Ok(Err(error)) => {
                ended = format!("the connection closed ({error})");
                break;
            }
            Err(_) => {
                ended = format!("the server stopped reading (a write waited {STALLED:?})");
                break;
            }
        }
    }
    // The hold is what is being measured, not a synchronisation.
    tokio::time::sleep(SETTLE).await;
    let held = cpu()?;
    tokio::time::sleep(HOLD).await;
    let (cpu_after, rss_after) = (cpu()?, rss_kib(pid)?);
    drop(io);
    Ok(Pipelined {
        sent,
        ended,
        hold_cpu_ms: cpu_after - held,
        total_cpu_ms: cpu_after - cpu_before,
        grown_kib: rss_after.saturating_sub(rss_before),
    })
}

/// A client pipelines [`PIPELINED`] requests on one connection and never reads, while a victim
/// stream runs on a connection of its own; then it holds the connection for [`HOLD`]. Over
/// the hold the server may spend at most [`MAX_HOLD_CPU`] of a core, and its memory may grow
/// by at most the slow reader's budget; the victim keeps its schedule and a fresh request is
/// answered afterwards. The checker measures an instance of its own where it can start one.
pub async fn pipelining_bounded(cfg: &Config) -> Outcome {
    let why = "pipelining is HTTP/1.1's; one HTTP/2 connection's streams are \
               h2_stream_flood_bounded's";
    if let Some(outcome) = judge::http1_only(cfg, why) {
        return outcome;
    }
    let server = match measured(cfg) {
        Ok(server) => server,
        Err(why) => return Outcome::warn(format!("{why}: it reads the server's CPU time")),
    };
    let victim = client::send(&server.target, Ask::get(cfg.stream_path(), cfg.deadline()));
    let (pipelined, victim) = tokio::join!(pipeline(server.pid, &server.target, PIPELINED), victim);
    let fresh = client::send(
        &server.target,
        Ask::get(super::stream_path(1, Duration::ZERO), cfg.deadline()),
    )
    .await;
    let evidence = vec![victim.evidence.clone(), fresh.evidence.clone()];
    let Pipelined { sent, ended, hold_cpu_ms, total_cpu_ms, grown_kib } = match pipelined {
        Ok(pipelined) => pipelined,
        Err(error) => {
            let mut outcome =
                Outcome::fail(format!("the pipelining client could not run: {error}"));
            outcome.evidence = evidence;
            return outcome;
        }
    };
    let share = hold_cpu_ms / HOLD.as_millis() as f64;
    let seen = format!(
        "{sent} requests pipelined without reading, {ended}; over a {} s hold {} s later the \
         server spent {hold_cpu_ms:.0} ms of CPU ({:.0} % of a core; {total_cpu_ms:.0} ms in \
         all) and grew by {:.1} MiB",
        HOLD.as_secs(),
        SETTLE.as_secs(),
        share * 100.0,
        grown_kib as f64 / 1024.0
    );
    let mut outcome = if share > MAX_HOLD_CPU {
        Outcome::fail(format!(
            "{seen}: more than {:.0} % of a core while the client does not read, so the \
             server polls the connection instead of waiting for it",
            MAX_HOLD_CPU * 100.0
        ))
    } else if grown_kib > MAX_GROWTH_KIB {
        Outcome::fail(format!(
            "{seen}: more than the slow reader's {} MiB, so the server reads and answers \
             ahead of a client that does not read",
            MAX_GROWTH_KIB / 1024
        ))
    } else {
        judge::after_attack(cfg, &victim, &fresh, seen)
    };
    outcome.evidence = evidence;
    outcome
}

/// One request framed two ways, and what RFC 9112 §6.3 lets a server answer.
struct Smuggle {
    name: &'static str,
    headers: String,
    /// What follows the head: a body under one reading, a body and a second request under
    /// the other.
    rest: &'static str,
    /// Whether the RFC allows answering it (with the body read as chunked and the connection
    /// closed) rather than requiring a 400.
    may_answer: bool,
}

/// A second request, inside the first one's body under one of its two framings.
const HIDDEN: &str = "GET /smuggled HTTP/1.1\r\nHost: smuggled\r\n\r\n";

fn smuggles() -> Vec<Smuggle> {
    vec![
        // Read as chunked (as the RFC says), the body ends at `0`, and the rest is a second
        // request unless the server closes; read by Content-Length, the same.
        Smuggle {
            name: "Content-Length with Transfer-Encoding: chunked",
            headers: "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n".into(),
            rest: "0\r\n\r\n",
            may_answer: true,
        },
        // By the first length, the body is empty and the rest a second request; by the last,
        // the second request is the body.
        Smuggle {
            name: "two different Content-Lengths",
            headers: format!("Content-Length: 0\r\nContent-Length: {}\r\n", HIDDEN.len()),
            rest: "",
            may_answer: false,
        },
    ]
}

/// Each request of [`smuggles`], with a second request after it: the server answers 400, or
/// (where the RFC allows) answers the first and closes the connection; never does it answer
/// the hidden request, nor keep the connection open for more.
pub async fn request_smuggling_refused(cfg: &Config) -> Outcome {
    let why = "its requests are HTTP/1.1 framings; HTTP/2 frames its bodies itself";
    if let Some(outcome) = judge::http1_only(cfg, why) {
        return outcome;
    }
    let host = cfg.target.host_port().to_owned();
    let path = cfg.target.path("/stream?count=1&interval_ms=0");
    let cases = smuggles();
    let answers = futures_util::future::join_all(cases.iter().map(|case| {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}\r\n{}{HIDDEN}",
            case.headers, case.rest
        );
        client::raw(&cfg.target, request, Duration::from_secs(5))
    }))
    .await;
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    for (case, got) in cases.iter().zip(&answers) {
        match smuggle_verdict(case, got) {
            Ok(note) => notes.push(format!("{}: {note}", case.name)),
            Err(problem) => problems.push(format!("{}: {problem}", case.name)),
        }
    }
    let evidence = Evidence {
        request: format!("{} requests framed two ways, each followed by {HIDDEN:?}", cases.len()),
        notes,
        ..Evidence::default()
    };
    let outcome = match problems.is_empty() {
        true => Outcome::pass(evidence.notes.join("; ")),
        false => Outcome::fail(problems.join("; ")),
    };
    outcome.with(evidence)
}

fn smuggle_verdict(case: &Smuggle, got: &Fetched) -> Result<String, String> {
    let second = got.body.windows(7).position(|w| w == b"HTTP/1.");
    let open = got.error.as_deref().is_some_and(|e| e.starts_with("connection still open"));
    match (got.status(), second) {
        (_, Some(at)) => {
            let line = got.body[at..].split(|&b| b == b'\r').next().unwrap_or_default();
            Err(format!(
                "a second response ({:?}): the server read a request out of the first one's \
                 body (request smuggling)",
                String::from_utf8_lossy(line)
            ))
        }
        (Some(400), _) => Ok("400".into()),
        (Some(status), _) if open => Err(format!(
            "{status}, then the connection stayed open: RFC 9112 §6.3 requires a close after \
             such a request, or the next request is read from a body's leftovers"
        )),
        (Some(status @ 200..=299), _) if case.may_answer => Ok(format!("{status}, then a close")),
        (Some(status), _) => {
            Err(format!("{status}: RFC 9112 §6.3 requires 400 (Bad Request) and a close"))
        }
        (None, _) if open => Err("no answer, and the connection stayed open".into()),
        (None, _) => Err(format!(
            "closed without an answer ({}): RFC 9112 §6.3 requires a 400",
            got.error.as_deref().unwrap_or("no error")
        )),
    }
}
