//! The reconnect storm: thousands of EventSources through nginx in front of three instances of
//! a server, and every instance restarted in turn (SIGTERM, its 1 s grace, started again on
//! its port). The clients of each stopped instance are cut at the same moment and all come
//! back one `retry` later. Every client must still get each id once, in order; the figures
//! are the burst: how long clients took to resume, and what the kernel counted meanwhile
//! (listen-queue overflows and drops, SYN retransmissions: `nstat`'s TcpExt counters).

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use indicatif::ProgressBar;
use serde::Serialize;
use tokio::{sync::Semaphore, task::JoinSet};

use super::Quantiles;
use crate::{
    client::{
        Target,
        eventsource::{self, Closed, Session},
    },
    harness::{
        balanced::{Disruption, INSTANCES, Pool, SERVED_BY, lost_and_duplicated},
        proxies::{Kind, Proxy, Setup},
    },
    servers::Launch,
};

/// The stream each client follows: 40 events 500 ms apart (20 s, more than three restarts
/// take with every client resumed after each).
pub const COUNT: u32 = 40;
pub const INTERVAL: Duration = Duration::from_millis(500);

/// What one storm measured.
#[derive(Debug, Clone, Serialize)]
pub struct Storm {
    pub balancer: &'static str,
    pub clients: u32,
    pub count: u32,
    pub interval_ms: u64,
    /// Clients that got `1..=count` exactly once, in order, and were closed by the final 204.
    pub completed: u32,
    pub lost_ids: u64,
    pub duplicated_ids: u64,
    /// Clients that ended otherwise, by how.
    pub failures: BTreeMap<String, u32>,
    pub resumes: u64,
    /// ms from each cut to the first event after it.
    pub resume_ms: Option<Quantiles>,
    /// Resumes served by another instance than the one that cut the client.
    pub resumed_elsewhere: u64,
    /// The kernel's counters over the restarts (system-wide: the machine runs nothing else).
    pub kernel: Kernel,
    /// Per instance: ms from SIGTERM until it exited, and until it listened again.
    pub steps_ms: Vec<(f64, f64)>,
    /// The balancer's error-log messages, by how often each came (what a 502 was).
    pub balancer_errors: BTreeMap<String, u32>,
    /// The `retry:` the clients were told, ms.
    pub retry_ms: Option<u64>,
    pub wall_ms: f64,
}

/// TcpExt counters of /proc/net/netstat, as `nstat` names them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Kernel {
    /// A SYN arrived at a full accept queue.
    pub listen_overflows: u64,
    pub listen_drops: u64,
    /// SYNs sent again because no SYN-ACK came (the connecting side's 1 s retry).
    pub syn_retransmits: u64,
}

impl Kernel {
    pub fn read() -> Self {
        let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
        let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return Self::default();
        };
        let pairs: BTreeMap<&str, u64> = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .filter_map(|(n, v)| Some((n, v.parse().ok()?)))
            .collect();
        let get = |name: &str| pairs.get(name).copied().unwrap_or(0);
        Self {
            listen_overflows: get("ListenOverflows"),
            listen_drops: get("ListenDrops"),
            syn_retransmits: get("TCPSynRetrans"),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            listen_overflows: self.listen_overflows.saturating_sub(before.listen_overflows),
            listen_drops: self.listen_drops.saturating_sub(before.listen_drops),
            syn_retransmits: self.syn_retransmits.saturating_sub(before.syn_retransmits),
        }
    }
}

/// How many clients connect at once at the start (not when they reconnect).
const CONNECTING: usize = 256;

/// `clients` EventSources through `kind` in front of [`INSTANCES`] instances of `program`,
/// then a rolling restart of every instance, each once every client has had two events since
/// the one before.
pub async fn storm(
    program: &Path, kind: Kind, clients: u32, bar: &ProgressBar, name: &str,
) -> Result<Storm, String> {
    let mut pool = Pool::start(&Launch::new(program), INSTANCES)?;
    let proxy = Proxy::balance(kind, Setup::Balanced, &pool.bases())?;
    let started = Instant::now();
    let (counters, sessions) = open_sessions(&proxy.base, clients);
    let mut since = vec![0; counters.len()];
    let (mut steps, mut before) = (Vec::new(), Kernel::default());
    let wait = Duration::from_secs(60);
    for i in 0..=pool.len() {
        let next = match i == pool.len() {
            true => "the end".to_owned(),
            false => format!("restarting instance {}", i + 1),
        };
        let say = |behind| {
            bar.set_message(format!(
                "{name}: {clients} EventSources through {}; {behind} to go before {next}",
                kind.program(),
            ))
        };
        since = two_more_each(&counters, &since, wait, say).await.map_err(|behind| {
            let after = match i {
                0 => "they started".to_owned(),
                _ => format!("instance {i} was restarted"),
            };
            let tail = |logs: String| logs.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            format!(
                "{name}: {behind} of {clients} clients had not had 2 more events {wait:?} after \
                 {after}\n{}{}",
                tail(proxy.logs()),
                tail(pool.logs()),
            )
        })?;
        if i == pool.len() {
            break;
        }
        if i == 0 {
            before = Kernel::read();
        }
        steps.push(pool.disrupt(i, Disruption::RollingRestart).await?);
    }
    // From the first SIGTERM until every client had resumed after the last restart.
    let kernel = Kernel::read().since(before);
    let mut storm = Storm {
        balancer: kind.program(),
        clients,
        count: COUNT,
        interval_ms: INTERVAL.as_millis() as u64,
        completed: 0,
        lost_ids: 0,
        duplicated_ids: 0,
        failures: BTreeMap::new(),
        resumes: 0,
        resume_ms: None,
        resumed_elsewhere: 0,
        kernel,
        steps_ms: steps,
        retry_ms: None,
        wall_ms: 0.0,
        balancer_errors: balancer_errors(&proxy.logs()),
    };
    tally(sessions, &mut storm, name).await?;
    storm.wall_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(storm)
}

/// `clients` EventSources on `/events` through `base`, [`CONNECTING`] connecting at once; each
/// with the count of events it has had.
fn open_sessions(base: &str, clients: u32) -> (Vec<Arc<AtomicUsize>>, JoinSet<Session>) {
    let target = Target::new(base);
    let path = format!("/events?count={COUNT}&interval_ms={}", INTERVAL.as_millis());
    let limit = INTERVAL * COUNT + Duration::from_secs(120);
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let mut counters: Vec<Arc<AtomicUsize>> = Vec::new();
    let mut sessions = JoinSet::new();
    for _ in 0..clients {
        let mut options = eventsource::Options::new(limit);
        options.served_by = Some(SERVED_BY.into());
        options.opening = Some(gate.clone());
        counters.push(options.received.clone());
        let (target, path) = (target.clone(), path.clone());
        sessions.spawn(async move { eventsource::follow(&target, &path, &options).await });
    }
    (counters, sessions)
}

/// Waits until every client has had two events since `since`, telling `say` how many are
/// behind; the counts then, or how many were still behind after `wait`.
async fn two_more_each(
    counters: &[Arc<AtomicUsize>], since: &[usize], wait: Duration, say: impl Fn(usize),
) -> Result<Vec<usize>, usize> {
    let deadline = Instant::now() + wait;
    loop {
        let now: Vec<usize> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let behind = now.iter().zip(since).filter(|(n, s)| **n < **s + 2).count();
        say(behind);
        if behind == 0 {
            return Ok(now);
        }
        if Instant::now() > deadline {
            return Err(behind);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each session's ids, resumes and end, added up into `storm`.
async fn tally(
    mut sessions: JoinSet<Session>, storm: &mut Storm, name: &str,
) -> Result<(), String> {
    let want: Vec<String> = (1..=COUNT).map(|k| k.to_string()).collect();
    let mut resumes = Vec::new();
    while let Some(joined) = sessions.join_next().await {
        let session = joined.map_err(|e| format!("{name}: a client task failed: {e}"))?;
        let ids: Vec<String> = session.events.iter().map(|e| e.id.clone()).collect();
        let (lost, twice) = lost_and_duplicated(&ids, COUNT);
        storm.lost_ids += lost.len() as u64;
        storm.duplicated_ids += twice.len() as u64;
        for (ms, elsewhere) in session.resumes() {
            resumes.push(ms);
            storm.resumed_elsewhere += u64::from(elsewhere);
        }
        storm.retry_ms = storm.retry_ms.or(session.retry_ms);
        let failure = match &session.closed {
            Closed::NoContent if ids == want => {
                storm.completed += 1;
                continue;
            }
            Closed::NoContent => "wrong ids".to_owned(),
            Closed::Failed(why) => why.split(':').next().unwrap_or_default().to_owned(),
            Closed::GaveUp => "gave up".to_owned(),
        };
        *storm.failures.entry(failure).or_default() += 1;
    }
    storm.resumes = resumes.len() as u64;
    storm.resume_ms = Quantiles::of(&resumes);
    Ok(())
}

/// The storms as a markdown table, one row per server.
pub fn markdown(storms: &[(&str, &Storm)]) -> String {
    let mut out = String::new();
    let Some((_, first)) = storms.first() else {
        return out;
    };
    out.push_str(&format!(
        "**Reconnect storm**: {} EventSources (`/events?count={}&interval_ms={}`) through {} in \
         front of {INSTANCES} instances, each restarted in turn (SIGTERM, grace 1 s); `retry: \
         {}`. Kernel counters from the first SIGTERM until every client had resumed after the \
         last restart.\n\n",
        first.clients,
        first.count,
        first.interval_ms,
        first.balancer,
        first.retry_ms.map_or("?".into(), |r| r.to_string()),
    ));
    let header = [
        "server",
        "completed",
        "lost ids",
        "duplicated ids",
        "other endings",
        "resumes (elsewhere)",
        "resume p50 / p99 / max (ms)",
        "ListenOverflows",
        "ListenDrops",
        "TCPSynRetrans",
        "wall (s)",
    ]
    .map(String::from);
    let rows: Vec<Vec<String>> = storms
        .iter()
        .map(|(name, s)| {
            let failures: Vec<String> =
                s.failures.iter().map(|(k, n)| format!("{n} {k}")).collect();
            vec![
                (*name).to_owned(),
                format!("{} of {}", s.completed, s.clients),
                s.lost_ids.to_string(),
                s.duplicated_ids.to_string(),
                if failures.is_empty() { "none".into() } else { failures.join(", ") },
                format!("{} ({})", s.resumes, s.resumed_elsewhere),
                s.resume_ms.map_or("–".into(), |q| {
                    format!("{:.0} / {:.0} / {:.0}", q.p50, q.p99, q.max)
                }),
                s.kernel.listen_overflows.to_string(),
                s.kernel.listen_drops.to_string(),
                s.kernel.syn_retransmits.to_string(),
                format!("{:.1}", s.wall_ms / 1e3),
            ]
        })
        .collect();
    super::summary::table(&mut out, &header, &rows);
    for (name, storm) in storms.iter().filter(|(_, s)| !s.balancer_errors.is_empty()) {
        out.push_str(&format!("\n{} error log during the storm of {name}:\n\n", storm.balancer));
        for (message, n) in &storm.balancer_errors {
            out.push_str(&format!("- {n} × {message}\n"));
        }
    }
    out
}

/// nginx's `[error]` lines without their time, ids and addresses: "upstream prematurely closed
/// connection while reading response header from upstream" and so on.
fn balancer_errors(logs: &str) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for line in logs.lines() {
        let Some((_, rest)) = line.split_once("[error] ") else {
            continue;
        };
        // "1234#1234: *56 connect() failed (111: Connection refused) while connecting to
        // upstream, client: …": the message is between the ids and the first comma.
        let message = rest.split_once(": ").map_or(rest, |(_, m)| m);
        let message = message.trim_start_matches(|c: char| c == '*' || c.is_ascii_digit()).trim();
        let message = message.split(", client:").next().unwrap_or(message);
        *counts.entry(message.to_owned()).or_default() += 1;
    }
    counts
}
