//! Failover: EventSources (the checker's own, [`eventsource::follow`], and Chromium's)
//! follow `/events` through the balancer while every instance is disrupted in turn
//! ([`Disruption`]); [`judge`] says whether each client still got the ids `1..=count` exactly
//! once and in order, and how long each took to resume.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{Pool, SERVED_BY, events_path};
use crate::{
    client::{
        Target,
        eventsource::{self, Closed, Session},
    },
    harness::real_clients::Browser,
    outcome::Outcome,
};

/// What happens to each instance in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    /// SIGKILL mid-stream: its connections reset; started again at once.
    Kill,
    /// SIGTERM: it stops accepting, ends its streams cleanly after its grace and exits; then
    /// it is started again, and the next one follows.
    RollingRestart,
}

impl Disruption {
    pub fn name(self) -> &'static str {
        match self {
            Disruption::Kill => "SIGKILL of each instance in turn",
            Disruption::RollingRestart => "rolling restart (SIGTERM, grace 1 s)",
        }
    }
}

/// What one client received.
#[derive(Debug, Clone)]
pub struct ClientRun {
    pub name: String,
    pub ids: Vec<String>,
    /// ms from each cut to the first event after it, and whether another instance (per the
    /// balancer's [`SERVED_BY`] header) sent it.
    pub resumes: Vec<(f64, bool)>,
    /// How it ended, in words.
    pub closed: String,
}

/// What a failover run saw.
#[derive(Debug, Clone)]
pub struct Failover {
    pub disruption: Disruption,
    pub count: u32,
    pub retry_ms: f64,
    pub clients: Vec<ClientRun>,
    /// Set when the run could not finish (a browser or an instance failed).
    pub problem: Option<String>,
}

impl Failover {
    /// All resume times, in ms.
    pub fn resume_ms(&self) -> Vec<f64> {
        self.clients.iter().flat_map(|c| c.resumes.iter().map(|r| r.0)).collect()
    }
}

/// The stream the failover clients follow: 100 events 100 ms apart (10 s of events, more than
/// the three disruptions take), plus the resume gaps.
pub const COUNT: u32 = 100;
pub const INTERVAL: Duration = Duration::from_millis(100);
/// The checker's EventSources, and Chromium's (0 leaves the browser out).
pub const CLIENTS: usize = 6;
pub const BROWSER_CLIENTS: usize = 2;
/// How long a failover client follows its stream at most: the stream and a minute.
pub const LIMIT: Duration = Duration::from_secs(70);

/// Follows `/events` through `balancer` with [`CLIENTS`] EventSources of the checker's and
/// `browser`'s [`BROWSER_CLIENTS`], and disrupts each instance of `pool` in turn once every
/// client has its first events, waiting after each until every client has had two more.
/// Each client gives up after `limit` ([`LIMIT`] leaves ample time).
pub async fn failover(
    balancer: &str, pool: &mut Pool, how: Disruption, browser: Option<&Browser>, limit: Duration,
) -> Failover {
    let path = events_path(COUNT, INTERVAL);
    let target = Target::new(balancer);
    let mut run = Failover {
        disruption: how,
        count: COUNT,
        retry_ms: 1000.0,
        clients: Vec::new(),
        problem: None,
    };
    let mut counters = Vec::new();
    let mut sessions = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let mut options = eventsource::Options::new(limit);
        options.served_by = Some(SERVED_BY.into());
        counters.push(options.received.clone());
        let (target, path) = (target.clone(), path.clone());
        sessions.spawn(async move { (i, eventsource::follow(&target, &path, &options).await) });
    }
    let browsing = match browser {
        Some(browser) => match open_in_browser(browser, balancer, &path).await {
            Ok(()) => true,
            Err(e) => {
                run.problem = Some(e);
                false
            }
        },
        None => false,
    };
    let browser = browser.filter(|_| browsing);
    if run.problem.is_none()
        && let Err(e) = disrupt_each(pool, how, &counters, browser).await
    {
        run.problem = Some(e);
    }
    let mut done: Vec<(usize, Session)> = Vec::new();
    while let Some(joined) = sessions.join_next().await {
        match joined {
            Ok(session) => done.push(session),
            Err(e) => run.problem = Some(format!("a client task failed: {e}")),
        }
    }
    done.sort_by_key(|(i, _)| *i);
    for (i, session) in done {
        run.clients.push(ClientRun {
            name: format!("checker EventSource {}", i + 1),
            ids: session.events.iter().map(|e| e.id.clone()).collect(),
            resumes: session.resumes(),
            closed: match &session.closed {
                Closed::NoContent => "204 No Content".into(),
                Closed::Failed(why) => format!("failed: {why}"),
                Closed::GaveUp => format!("still open after {limit:?}"),
            },
        });
        if let Some(retry) = session.retry_ms {
            run.retry_ms = retry as f64;
        }
    }
    if let Some(browser) = browser {
        match browser_runs(browser, limit).await {
            Ok(runs) => run.clients.extend(runs),
            Err(e) => run.problem = Some(e),
        }
    }
    run
}

/// Once every client has begun, disrupts each instance in turn, each once every client has
/// had two events since the one before: so each client's instance is disrupted while it
/// streams. Then waits for two more each.
async fn disrupt_each(
    pool: &mut Pool, how: Disruption, counters: &[Arc<AtomicUsize>], browser: Option<&Browser>,
) -> Result<(), String> {
    let wait = Duration::from_secs(20);
    let browsers = if browser.is_some() { BROWSER_CLIENTS } else { 0 };
    let mut since = vec![0; counters.len() + browsers];
    for i in 0..=pool.len() {
        let deadline = Instant::now() + wait;
        loop {
            let mut now: Vec<usize> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            if let Some(browser) = browser {
                now.extend(browser_counts(browser).await);
            }
            let all = now.len() == since.len() && now.iter().zip(&since).all(|(n, s)| *n >= s + 2);
            if all {
                since = now;
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "before disrupting instance {i}: events received per client {now:?}, \
                     not 2 more each than {since:?} within {wait:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if i < pool.len() {
            pool.disrupt(i, how).await?;
        }
    }
    Ok(())
}

/// Opens [`BROWSER_CLIENTS`] EventSources on `path` from a page of the balancer's origin,
/// recording every message, open and error.
async fn open_in_browser(browser: &Browser, base: &str, path: &str) -> Result<(), String> {
    let page = format!("{base}/stream?count=1&interval_ms=0");
    browser.client.goto(&page).await.map_err(|e| format!("cannot open {page}: {e}"))?;
    let open = format!(
        "if (!document.body || document.body.innerText.trim() !== '1') return false;
         window.runs = [];
         for (let i = 0; i < {BROWSER_CLIENTS}; i++) {{
           const run = {{ ids: [], at: [], opens: [], errors: [], closed: false }};
           window.runs.push(run);
           const es = new EventSource('{path}');
           es.onopen = () => run.opens.push(performance.now());
           es.onmessage = (e) => {{ run.ids.push(e.lastEventId); run.at.push(performance.now()); }};
           es.onerror = () => {{
             run.errors.push(performance.now());
             if (es.readyState === EventSource.CLOSED) run.closed = true;
           }};
         }}
         return true;"
    );
    let start = Instant::now();
    while browser.eval(&open).await.ok() != Some(Value::Bool(true)) {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("{page} never had a body in Chromium"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn browser_counts(browser: &Browser) -> Vec<usize> {
    let value = browser.eval("return window.runs.map(r => r.ids.length);").await;
    value.ok().and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default()
}

#[derive(serde::Deserialize)]
struct BrowserRun {
    ids: Vec<String>,
    at: Vec<f64>,
    errors: Vec<f64>,
    closed: bool,
}

/// Waits until every browser EventSource has closed (after its 204), then reads them.
async fn browser_runs(browser: &Browser, limit: Duration) -> Result<Vec<ClientRun>, String> {
    let start = Instant::now();
    loop {
        let value = browser.eval("return window.runs;").await?;
        let runs: Vec<BrowserRun> =
            serde_json::from_value(value).map_err(|e| format!("the page's record: {e}"))?;
        if runs.iter().all(|r| r.closed) || start.elapsed() > limit {
            return Ok(runs
                .into_iter()
                .enumerate()
                .map(|(i, run)| {
                    // Each error but the last (the 204 that closes it) is a cut; the resume is
                    // the first message after it. The browser does not say who answered.
                    let cuts = &run.errors[..run.errors.len().saturating_sub(1)];
                    let resumes = cuts
                        .iter()
                        .filter_map(|cut| run.at.iter().find(|at| *at > cut).map(|at| at - cut))
                        .map(|ms| (ms, false))
                        .collect();
                    ClientRun {
                        name: format!("Chromium EventSource {}", i + 1),
                        ids: run.ids,
                        resumes,
                        closed: match run.closed {
                            true => "closed (204 No Content)".into(),
                            false => format!("still open after {limit:?}"),
                        },
                    }
                })
                .collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids one client lost and got twice, against `1..=count`.
pub fn lost_and_duplicated(ids: &[String], count: u32) -> (Vec<u32>, Vec<String>) {
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for id in ids {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let lost = (1..=count).filter(|k| !seen.contains_key(k.to_string().as_str())).collect();
    let twice = seen.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id.to_string()).collect();
    (lost, twice)
}

/// A resume waits the `retry` (1000 ms) and then a reconnection: on a loaded 2-core machine,
/// at most this much more.
pub const RESUME_SLACK_MS: f64 = 1000.0;

/// Pass when every client got `1..=count` exactly once, in order, resumed at least once after
/// a cut, within `retry` + [`RESUME_SLACK_MS`] each time, and was closed by the final 204.
pub fn judge(run: &Failover) -> Outcome {
    if let Some(problem) = &run.problem {
        return Outcome::fail(format!("{}: {problem}", run.disruption.name()));
    }
    let want: Vec<String> = (1..=run.count).map(|k| k.to_string()).collect();
    let mut problems = Vec::new();
    for client in &run.clients {
        let (lost, twice) = lost_and_duplicated(&client.ids, run.count);
        if !lost.is_empty() || !twice.is_empty() {
            problems.push(format!(
                "{} lost {} ids ({}) and got {} twice ({})",
                client.name,
                lost.len(),
                shorten(&lost.iter().map(u32::to_string).collect::<Vec<_>>()),
                twice.len(),
                shorten(&twice)
            ));
        } else if client.ids != want {
            problems.push(format!("{} got every id once, out of order", client.name));
        } else if client.resumes.is_empty() {
            problems.push(format!("{} was never cut, so it proves nothing", client.name));
        } else if !client.closed.contains("204") {
            problems.push(format!("{} ended {}", client.name, client.closed));
        }
        let bound = run.retry_ms + RESUME_SLACK_MS;
        if let Some(slow) = client.resumes.iter().find(|r| r.0 > bound) {
            problems.push(format!(
                "{} resumed {:.0} ms after a cut (retry {:.0} ms, bound {bound:.0} ms)",
                client.name, slow.0, run.retry_ms
            ));
        }
    }
    let resumes = run.resume_ms();
    let checker = run.clients.iter().filter(|c| c.name.starts_with("checker"));
    let checker: Vec<(f64, bool)> = checker.flat_map(|c| c.resumes.iter().copied()).collect();
    let elsewhere = checker.iter().filter(|r| r.1).count();
    let summary = format!(
        "{} clients, ids 1..={} each: {} resumes, {} (retry {:.0} ms); {elsewhere} of the \
         checker's {} resumes on another instance",
        run.clients.len(),
        run.count,
        resumes.len(),
        quantiles(&resumes),
        run.retry_ms,
        checker.len()
    );
    match problems.is_empty() {
        true => Outcome::pass(format!(
            "{}: nothing lost, nothing twice; {summary}",
            run.disruption.name()
        )),
        false => {
            Outcome::fail(format!("{}: {}; {summary}", run.disruption.name(), problems.join("; ")))
        }
    }
}

fn shorten(items: &[String]) -> String {
    match items.len() {
        0..=8 => items.join(", "),
        n => format!("{}, … ({n} in all)", items[..8].join(", ")),
    }
}

/// "resume p50 1012 ms, p99 1090 ms, max 1090 ms".
pub fn quantiles(samples: &[f64]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return "no resumes".into();
    }
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    format!(
        "resume p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        at(0.5),
        at(0.99),
        sorted[sorted.len() - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u32]) -> Vec<String> {
        list.iter().map(u32::to_string).collect()
    }

    #[test]
    fn lost_and_twice_are_told_apart() {
        assert_eq!(lost_and_duplicated(&ids(&[1, 2, 3]), 3), (vec![], vec![]));
        assert_eq!(lost_and_duplicated(&ids(&[1, 3]), 3), (vec![2], vec![]));
        assert_eq!(lost_and_duplicated(&ids(&[1, 2, 1, 2, 3]), 3), (vec![], ids(&[1, 2])));
    }

    #[test]
    fn judge_names_what_went_wrong() {
        let client = |name: &str, got: &[u32], resumes: Vec<(f64, bool)>| ClientRun {
            name: name.into(),
            ids: ids(got),
            resumes,
            closed: "204 No Content".into(),
        };
        let run = |clients| Failover {
            disruption: Disruption::Kill,
            count: 3,
            retry_ms: 1000.0,
            clients,
            problem: None,
        };
        let good = judge(&run(vec![client("a", &[1, 2, 3], vec![(1010.0, true)])]));
        assert_eq!(good.level, crate::outcome::Level::Pass, "{}", good.reason);
        let twice = judge(&run(vec![client("a", &[1, 2, 1, 2, 3], vec![(1010.0, true)])]));
        assert!(twice.reason.contains("got 2 twice (1, 2)"), "{}", twice.reason);
        let uncut = judge(&run(vec![client("a", &[1, 2, 3], vec![])]));
        assert!(uncut.reason.contains("never cut"), "{}", uncut.reason);
        let slow = judge(&run(vec![client("a", &[1, 2, 3], vec![(2500.0, true)])]));
        assert!(slow.reason.contains("resumed 2500 ms after a cut"), "{}", slow.reason);
    }
}
