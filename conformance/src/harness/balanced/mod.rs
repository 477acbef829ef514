//! Several instances of one server behind a real load balancer (nginx or HAProxy, with
//! [`Setup::Balanced`]'s config), and what happens to open event streams when instances die or
//! restart.
//!
//! [`Pool`] runs the instances, each on a port of its own that it keeps across restarts (the
//! balancer's config names them). [`failover`] follows `/events` through the balancer with
//! EventSources (the checker's own, [`eventsource::follow`], and Chromium's), disrupts every
//! instance in turn ([`Disruption`]), and [`judge`] says whether each client still got the ids
//! `1..=count` exactly once and in order, and how long each took to resume. [`idle`] is the
//! balancer's read timeout against a quiet stream, with and without keep-alive comments.
//! Failover lives in `failover.rs`.

use std::time::{Duration, Instant};

mod failover;

pub use failover::{
    BROWSER_CLIENTS, CLIENTS, COUNT, ClientRun, Disruption, Failover, INTERVAL, LIMIT,
    RESUME_SLACK_MS, failover, judge, lost_and_duplicated, quantiles,
};

use super::{
    proxies::{Kind, Proxy, Setup},
    real_clients::Browser,
};
use crate::{
    client::{Target, eventsource, ms},
    outcome::Outcome,
    servers::{Launch, Spawned},
};

/// Instances behind the balancer.
pub const INSTANCES: usize = 3;
/// Their `--grace-secs`: a rolling restart ends the streams in flight after 1 s.
pub const GRACE_SECS: u64 = 1;
/// The header the balancer configs name the instance that answered in.
pub const SERVED_BY: &str = "x-upstream";

/// How long an instance may take to print its address, or to exit after SIGTERM beyond its
/// grace.
const START_WAIT: Duration = Duration::from_secs(60);
const EXIT_WAIT: Duration = Duration::from_secs(10);

/// Instances of one server, each with the address it keeps.
pub struct Pool {
    launch: Launch,
    addrs: Vec<String>,
    instances: Vec<Option<Spawned>>,
    /// What the instances logged, those that have exited included.
    logs: Vec<String>,
}

impl Pool {
    /// `n` instances of `launch` with `--grace-secs` [`GRACE_SECS`], each on a free port of
    /// 127.0.0.1.
    pub fn start(launch: &Launch, n: usize) -> Result<Self, String> {
        let mut pool = Self {
            launch: launch.clone(),
            addrs: Vec::new(),
            instances: Vec::new(),
            logs: Vec::new(),
        };
        for i in 0..n {
            let instance = pool.spawn("127.0.0.1:0")?;
            let addr = instance.base.trim_start_matches("http://").to_owned();
            pool.addrs.push(addr);
            pool.instances.push(Some(instance));
            pool.logs.push(format!("--- instance {i} ---\n"));
        }
        Ok(pool)
    }

    fn spawn(&self, addr: &str) -> Result<Spawned, String> {
        let grace = GRACE_SECS.to_string();
        let mut args: Vec<&str> = self.launch.args.iter().map(String::as_str).collect();
        args.extend(["--grace-secs", &grace]);
        let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        Spawned::at(&self.launch.program, addr, &args, &level, START_WAIT)
            .map_err(|e| format!("{} on {addr}: {e}", self.launch.program.display()))
    }

    /// `http://host:port` of every instance.
    pub fn bases(&self) -> Vec<String> {
        self.addrs.iter().map(|a| format!("http://{a}")).collect()
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// Disrupts instance `i` as `how`, then starts it again on its address. Returns when the
    /// new instance listens: ms from the disruption until it exited, and until it was back.
    pub async fn disrupt(&mut self, i: usize, how: Disruption) -> Result<(f64, f64), String> {
        let mut old = self.instances[i].take().ok_or_else(|| format!("instance {i} is down"))?;
        let start = Instant::now();
        match how {
            Disruption::Kill => old.kill(),
            Disruption::RollingRestart => {
                old.terminate()?;
                let limit = Duration::from_secs(GRACE_SECS) + EXIT_WAIT;
                match old.wait_exit(limit).await {
                    Some(status) if status.success() => {}
                    Some(status) => {
                        self.keep_log(i, &old);
                        return Err(format!("instance {i} exited with {status} after SIGTERM"));
                    }
                    None => {
                        self.keep_log(i, &old);
                        return Err(format!("instance {i} still running {limit:?} after SIGTERM"));
                    }
                }
            }
        }
        let exited = ms(start.elapsed());
        self.keep_log(i, &old);
        drop(old);
        // The old process has closed its listener; the port is free to bind again (the
        // examples set SO_REUSEADDR, so connections in TIME_WAIT do not stand in the way).
        let addr = self.addrs[i].clone();
        let mut last = String::new();
        for _ in 0..50 {
            match self.spawn(&addr) {
                Ok(new) => {
                    self.instances[i] = Some(new);
                    return Ok((exited, ms(start.elapsed())));
                }
                Err(e) if e.contains("in use") => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(format!("instance {i} could not listen on {addr} again: {last}"))
    }

    fn keep_log(&mut self, i: usize, instance: &Spawned) {
        self.logs[i].push_str(&instance.stderr());
        self.logs[i].push_str("--- (restarted) ---\n");
    }

    /// Everything the instances logged.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for (i, log) in self.logs.iter().enumerate() {
            text.push_str(log);
            if let Some(instance) = &self.instances[i] {
                text.push_str(&instance.stderr());
            }
        }
        text
    }
}

/// A stream whose two events are 5 s apart through `balancer` set up with a 2 s read timeout
/// ([`Setup::BalancedIdle`]): with keep-alive comments every `keepalive` it must arrive on one
/// connection; with none (`keepalive` of 600 s) the balancer must cut it about 2 s after the
/// first event (the client then resumes it with Last-Event-ID).
pub async fn idle(balancer: &str, keepalive: Duration) -> Outcome {
    let (count, interval) = (2u32, Duration::from_secs(5));
    let path = format!("{}&keepalive_ms={}", events_path(count, interval), keepalive.as_millis());
    let mut options = eventsource::Options::new(interval * count + Duration::from_secs(30));
    options.served_by = Some(SERVED_BY.into());
    let session = eventsource::follow(&Target::new(balancer), &path, &options).await;
    let ids: Vec<&str> = session.events.iter().map(|e| e.id.as_str()).collect();
    let first = &session.connections[0];
    let cut_after = session
        .events
        .first()
        .filter(|e| e.connection == 0)
        .map(|e| ms(first.ended.duration_since(e.at)));
    let described = format!(
        "GET {path}: ids {ids:?}; first connection {} ({} events{})",
        first.end,
        first.events,
        cut_after.map(|ms| format!(", ended {ms:.0} ms after event 1")).unwrap_or_default()
    );
    if ids != ["1", "2"] {
        return Outcome::fail(format!("{described}: expected ids 1 and 2"));
    }
    let quiet = keepalive >= interval;
    match (quiet, first.events) {
        (false, 2) => Outcome::pass(format!("kept alive every {keepalive:?}: {described}")),
        (false, _) => Outcome::fail(format!(
            "with keep-alive comments every {keepalive:?} the balancer still cut it: {described}"
        )),
        (true, 1) if cut_after.is_some_and(|ms| (1000.0..=4000.0).contains(&ms)) => {
            Outcome::pass(format!("cut by the 2 s read timeout, as expected: {described}"))
        }
        (true, _) => Outcome::fail(format!(
            "without keep-alive comments a 2 s read timeout should cut it about 2 s after \
             event 1: {described}"
        )),
    }
}

/// Everything for one binary behind `kind`: the failover and rolling restart with the
/// checker's and Chromium's EventSources (Chromium only when `with_browser`), and the idle
/// timeout with and without keep-alive comments. The outcomes, by name; `context` is the
/// configs and logs to show when one fails.
pub async fn run_all(
    kind: Kind, launch: &Launch, browser: Option<&Browser>,
) -> Result<(Vec<(String, Outcome)>, String), String> {
    let mut pool = Pool::start(launch, INSTANCES)?;
    let balancer = Proxy::balance(kind, Setup::Balanced, &pool.bases())?;
    let idle_pool = Pool::start(launch, 1)?;
    let idle_proxy = Proxy::balance(kind, Setup::BalancedIdle, &idle_pool.bases())?;
    // The idle streams are quiet for 5 s: they run beside the failover.
    // So does the malformed-requests check behind nginx: its header timeout (10 s) closes a
    // request whose headers never end, whatever the instance does (Rocket's known limit).
    // HAProxy 2.6 passes a request line of `HTTP/3.0` on as HTTP/1.1, which the instance
    // answers 200: the check fails behind it whatever the framework, so it runs behind nginx.
    let base = idle_proxy.base.clone();
    let idle_runs = tokio::spawn(async move {
        let alive = idle(&base, Duration::from_secs(1));
        let quiet = idle(&base, Duration::from_secs(600));
        let cfg = crate::checks::Config::with_timing(&base, 5, super::proxies::PROXY_INTERVAL);
        let malformed = async {
            let check = crate::checks::entry(crate::checks::ids::malformed_requests_refused);
            match kind {
                Kind::Nginx => Some(check.run(&cfg).await),
                _ => None,
            }
        };
        tokio::join!(alive, quiet, malformed)
    });
    let mut outcomes = Vec::new();
    for how in [Disruption::Kill, Disruption::RollingRestart] {
        let run = failover(&balancer.base, &mut pool, how, browser, LIMIT).await;
        outcomes.push((format!("{how:?}"), judge(&run)));
    }
    let (alive, quiet, malformed) =
        idle_runs.await.map_err(|e| format!("the idle test failed: {e}"))?;
    outcomes.push(("idle, keep-alive every 1 s".into(), alive));
    outcomes.push(("idle, no keep-alive (the cut)".into(), quiet));
    if let Some(malformed) = malformed {
        outcomes.push((
            crate::checks::ids::malformed_requests_refused.to_string(),
            behind_nginx(malformed),
        ));
    }
    let context = format!(
        "--- {} config ---\n{}\n{}--- idle config ---\n{}\n{}--- instances ---\n{}{}",
        kind.program(),
        balancer.config(),
        balancer.logs(),
        idle_proxy.config(),
        idle_proxy.logs(),
        pool.logs(),
        idle_pool.logs()
    );
    Ok((outcomes, context))
}

/// nginx takes a header line without a colon as a header (1.22, with or without
/// `ignore_invalid_headers`) and passes the request on, which the instance answers 200: that
/// case is nginx's to decide, and no setting of it changes it. Behind nginx the
/// malformed-requests check passes when every other case does, the request whose headers never
/// end closed by nginx's `client_header_timeout` (10 s).
fn behind_nginx(outcome: Outcome) -> Outcome {
    const NO_COLON: &str =
        "a header line without a colon: 200, expected a 4xx or a closed connection";
    let closed_by_nginx = outcome
        .evidence
        .iter()
        .flat_map(|e| &e.notes)
        .find(|n| n.starts_with("headers that never finish: closed"));
    let Some(closed) = closed_by_nginx.cloned() else {
        return outcome;
    };
    let rest = outcome.reason.replace(NO_COLON, "");
    let rest = rest.trim_matches(|c: char| c == ';' || c.is_whitespace());
    match outcome.level {
        crate::outcome::Level::Fail if rest.is_empty() => Outcome::pass(format!(
            "every malformed request refused but the header line without a colon, which nginx \
             passes on as a header; {closed}"
        )),
        crate::outcome::Level::Pass => Outcome::pass(format!("{}; {closed}", outcome.reason)),
        _ => outcome,
    }
}

fn events_path(count: u32, interval: Duration) -> String {
    format!("/events?count={count}&interval_ms={}", interval.as_millis())
}
