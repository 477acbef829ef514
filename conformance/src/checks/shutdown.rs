//! Graceful shutdown: on SIGTERM the server stops accepting at once, lets the streams in flight
//! finish within its grace period, ends the rest cleanly when the grace runs out, and exits 0.
//! These checks start (and signal) instances of their own, so they need to know how to launch
//! the server.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::Config;
use crate::{
    client::{self, Target, ms},
    outcome::Outcome,
    servers::Spawned,
};

/// What one stream saw across the shutdown.
#[derive(Debug, Default)]
struct Seen {
    lines: Vec<String>,
    /// When the body ended cleanly, relative to the signal (negative: before it).
    ended_ms: Option<f64>,
    error: Option<String>,
}

/// Reads `path` to its end; says on `first` when line 1 is in.
async fn read_across(
    target: Target, path: String, first: mpsc::Sender<()>,
    signalled: tokio::sync::watch::Receiver<Option<Instant>>, deadline: Duration,
) -> Seen {
    let mut seen = Seen::default();
    let response = match client::client_for(&target.transport, deadline) {
        Ok(client) => client.get(format!("{}{path}", target.base)).send().await,
        Err(error) => {
            seen.error = Some(error);
            let _ = first.send(()).await;
            return seen;
        }
    };
    let mut response = match response {
        Ok(response) => response,
        Err(e) => {
            seen.error = Some(format!("no response: {e}"));
            let _ = first.send(()).await;
            return seen;
        }
    };
    let mut pending = Vec::new();
    let mut told = false;
    loop {
        match tokio::time::timeout(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                for &b in chunk.iter() {
                    if b == b'\n' {
                        seen.lines.push(String::from_utf8_lossy(&pending).into_owned());
                        pending.clear();
                    } else {
                        pending.push(b);
                    }
                }
                if !told && !seen.lines.is_empty() {
                    told = true;
                    let _ = first.send(()).await;
                }
            }
            Ok(Ok(None)) => {
                let now = Instant::now();
                seen.ended_ms = Some(match *signalled.borrow() {
                    Some(at) if now >= at => ms(now - at),
                    Some(at) => -ms(at - now),
                    None => f64::NEG_INFINITY,
                });
                break;
            }
            Ok(Err(e)) => {
                seen.error = Some(format!("the body broke off: {e}"));
                break;
            }
            Err(_) => {
                seen.error = Some(format!("the body did not end within {deadline:?}"));
                break;
            }
        }
    }
    if !told {
        let _ = first.send(()).await;
    }
    seen
}

/// Polls until the process has exited or `limit` has passed since `since`.
pub(super) async fn exit_after(
    server: &mut Spawned, since: Instant, limit: Duration,
) -> Option<(f64, i32)> {
    let status = server.wait_exit(limit.saturating_sub(since.elapsed())).await?;
    Some((ms(since.elapsed()), status.code().unwrap_or(-1)))
}

/// Does connecting to `base` fail with "refused" within `limit`?
async fn refused_within(base: &str, limit: Duration) -> Option<f64> {
    let addr = Target::new(base).host_and_address().1;
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Err(e) = tokio::net::TcpStream::connect(&addr).await
            && e.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some(ms(start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// What [`signal_during`] saw: the server, when it was signalled, each stream, when new
/// connections were refused, and the idle connection it held open (if asked for one).
struct Signalled {
    server: Spawned,
    at: Instant,
    seen: Vec<Seen>,
    refused: Option<f64>,
    _idle: Option<tokio::net::TcpStream>,
}

/// Starts an instance with `args`, opens `streams` copies of `path`, and sends SIGTERM as soon
/// as every one has its first line. With `idle`, a connection that sends nothing is opened
/// first (so the server has accepted it by then) and kept open: a browser's preconnected
/// socket, say.
async fn signal_during(
    cfg: &Config, args: &[&str], streams: usize, path: &str, deadline: Duration, idle: bool,
) -> Result<Signalled, Outcome> {
    let Some(launch) = &cfg.local.launch else {
        return Err(Outcome::warn(
            "needs to start the server itself: run it from the test suite or `matrix`",
        ));
    };
    let server = launch
        .spawn(args)
        .map_err(|e| Outcome::fail(format!("cannot start another instance: {e}")))?;
    let idle = match idle {
        true => Some(
            tokio::net::TcpStream::connect(Target::new(&server.base).host_and_address().1)
                .await
                .map_err(|e| Outcome::fail(format!("cannot open an idle connection: {e}")))?,
        ),
        false => None,
    };
    let (first_tx, mut first_rx) = mpsc::channel(streams);
    let (signal_tx, signal_rx) = tokio::sync::watch::channel(None);
    let readers: Vec<_> = (0..streams)
        .map(|_| {
            tokio::spawn(read_across(
                Target { base: server.base.clone(), transport: cfg.target.transport.clone() },
                path.to_owned(),
                first_tx.clone(),
                signal_rx.clone(),
                deadline,
            ))
        })
        .collect();
    for _ in 0..streams {
        first_rx.recv().await;
    }
    let signalled = Instant::now();
    signal_tx.send_replace(Some(signalled));
    if let Err(e) = server.terminate() {
        return Err(Outcome::fail(e));
    }
    let refused = refused_within(&server.base, Duration::from_secs(1)).await;
    let seen = join_all(readers).await.into_iter().map(|r| r.unwrap_or_default()).collect();
    Ok(Signalled { server, at: signalled, seen, refused, _idle: idle })
}

/// 50 streams of 2 s each, SIGTERM after their first line: all get every line, new connections
/// are refused at once, and the process exits 0 right after the last stream, although a
/// connection that has sent nothing is still open.
pub async fn shutdown_drains_streams(cfg: &Config) -> Outcome {
    let (count, interval, streams) = (5u32, Duration::from_millis(500), 50);
    let path = format!("/stream?count={count}&interval_ms={}", interval.as_millis());
    let deadline = Duration::from_secs(15);
    let Signalled { mut server, at: signalled, seen, refused, _idle } =
        match signal_during(cfg, &[], streams, &path, deadline, true).await {
            Ok(run) => run,
            Err(outcome) => return outcome,
        };
    let want: Vec<String> = (1..=count).map(|k| k.to_string()).collect();
    let broken: Vec<String> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.lines != want || s.ended_ms.is_none())
        .map(|(i, s)| {
            format!(
                "stream {} got {} of {count} lines{}",
                i + 1,
                s.lines.len(),
                s.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            )
        })
        .collect();
    let last_end = seen.iter().filter_map(|s| s.ended_ms).fold(0.0, f64::max);
    let exit = exit_after(&mut server, signalled, Duration::from_secs(32)).await;
    let log = server.stderr();
    let outcome = if !broken.is_empty() {
        Outcome::fail(format!(
            "after SIGTERM, {} of {streams} streams were cut short: {}",
            broken.len(),
            broken.first().cloned().unwrap_or_default()
        ))
    } else if refused.is_none() {
        Outcome::fail("new connections were still accepted 1 s after SIGTERM")
    } else {
        match exit {
            None => Outcome::fail(format!(
                "still running 32 s after SIGTERM, though its last stream ended {last_end:.0} ms \
                 after it"
            )),
            Some((_, code)) if code != 0 => Outcome::fail(format!("exited with status {code}")),
            Some((at, _)) if at > last_end + 1500.0 => Outcome::fail(format!(
                "exited {at:.0} ms after SIGTERM, {:.0} ms after its last stream ended, with a \
                 connection open that had sent nothing: it should exit as soon as no stream is \
                 left",
                at - last_end
            )),
            Some((at, _)) => Outcome::pass(format!(
                "{streams} streams got all {count} lines (the last ended {last_end:.0} ms after \
                 SIGTERM), connections refused after {:.0} ms, exit 0 after {at:.0} ms with an \
                 idle connection open",
                refused.unwrap_or_default()
            )),
        }
    };
    with_log(outcome, &log)
}

/// `--grace-secs 1` and a 10 s stream, SIGTERM after its first line: the stream ends cleanly
/// when the grace runs out, and the process exits 0.
pub async fn shutdown_bounded_by_grace(cfg: &Config) -> Outcome {
    let grace = Duration::from_secs(1);
    let (count, interval) = (100u32, Duration::from_millis(100));
    let path = format!("/stream?count={count}&interval_ms={}", interval.as_millis());
    let secs = grace.as_secs().to_string();
    let Signalled { mut server, at: signalled, seen, .. } = match signal_during(
        cfg,
        &["--grace-secs", &secs],
        1,
        &path,
        Duration::from_secs(15),
        false,
    )
    .await
    {
        Ok(run) => run,
        Err(outcome) => return outcome,
    };
    let exit = exit_after(&mut server, signalled, grace + Duration::from_secs(3)).await;
    let log = server.stderr();
    let seen = &seen[0];
    let slack = 500.0;
    let in_order = seen.lines.iter().enumerate().all(|(i, l)| *l == (i + 1).to_string());
    let outcome = match (seen.ended_ms, &seen.error) {
        (_, Some(error)) => Outcome::fail(format!(
            "the stream did not end cleanly after the grace period: {error} ({} lines)",
            seen.lines.len()
        )),
        (None, None) => Outcome::fail("the stream did not end"),
        (Some(end), None) if end > ms(grace) + slack => Outcome::fail(format!(
            "the stream ended {end:.0} ms after SIGTERM, expected when the {} s grace ran out",
            grace.as_secs()
        )),
        (Some(end), None) if end < ms(grace) - slack => Outcome::fail(format!(
            "the stream ended {end:.0} ms after SIGTERM, before the {} s grace ran out",
            grace.as_secs()
        )),
        (Some(_), None) if !in_order || seen.lines.len() >= count as usize => {
            Outcome::fail(format!("the stream's lines are wrong: {} lines", seen.lines.len()))
        }
        (Some(end), None) => match exit {
            None => Outcome::fail(format!(
                "still running {} s after SIGTERM",
                (grace + Duration::from_secs(3)).as_secs()
            )),
            Some((_, code)) if code != 0 => Outcome::fail(format!("exited with status {code}")),
            Some((at, _)) if at > ms(grace) + 1000.0 => {
                Outcome::fail(format!("exited {at:.0} ms after SIGTERM, more than the grace + 1 s"))
            }
            Some((at, _)) => Outcome::pass(format!(
                "the stream ended cleanly after {} lines, {end:.0} ms after SIGTERM; exit 0 \
                 after {at:.0} ms",
                seen.lines.len()
            )),
        },
    };
    with_log(outcome, &log)
}

fn with_log(outcome: Outcome, log: &str) -> Outcome {
    let evidence = crate::outcome::Evidence {
        request: "SIGTERM during streams".into(),
        notes: log.lines().rev().take(15).map(str::to_owned).collect(),
        ..Default::default()
    };
    outcome.with(evidence)
}
