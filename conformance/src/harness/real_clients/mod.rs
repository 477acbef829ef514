//! Real clients against a server: `curl -N`, the reqwest client example (`read_stream`), a relay
//! that cuts connections, and headless Chromium (`chromium.rs`, through ChromeDriver and the
//! `fantoccini` WebDriver client). These need programs from the system; [`require`] skips a
//! test loudly when one is missing, or fails it when `STREAMING_REQUIRE_EXTERNAL=1` (as CI sets
//! after installing them).

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::Command,
    sync::watch,
};

use crate::{
    checks::judge::spacing_outcome,
    client::ms,
    outcome::{LineArrival, Outcome},
};

mod chromium;

pub use chromium::{
    Browser, EVENT_SOURCES, browser_eventsources, browser_page_resumes_events,
    browser_renders_html_early, browser_shows_first_line_early,
};

/// Set to `1` to turn a missing program into a failure instead of a skip.
pub const REQUIRE_EXTERNAL: &str = "STREAMING_REQUIRE_EXTERNAL";

/// Is `program` on the PATH? If not, says which Debian `package` provides it and returns
/// false, or panics when [`REQUIRE_EXTERNAL`] is `1`.
pub fn require(program: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    found
        || skip(&format!(
            "`{program}` is not installed (Debian package `{package}`: apt-get install -y {package})"
        ))
}

/// Skips the test loudly with `message` (what is missing, and how to get it) and returns false,
/// or panics when [`REQUIRE_EXTERNAL`] is `1`.
pub fn skip(message: &str) -> bool {
    if std::env::var(REQUIRE_EXTERNAL).as_deref() == Ok("1") {
        panic!("{message}, and {REQUIRE_EXTERNAL}=1 requires it");
    }
    eprintln!("\n!!! SKIPPED: {message}. Set {REQUIRE_EXTERNAL}=1 to fail instead.\n");
    false
}

/// Runs `curl -sS -N [ARGS] url` (`--compressed`, `--cacert FILE`, …) and stamps each line of
/// curl's own output as it arrives; returns the lines and the response headers curl saw.
pub async fn curl_lines(
    url: &str, args: &[&str], deadline: Duration,
) -> Result<(Vec<LineArrival>, String), String> {
    let mut command = Command::new("curl");
    command.args(["-sS", "-N", "--dump-header", "/dev/stderr"]).args(args);
    let sent = Instant::now();
    let mut child = command
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut stderr = child.stderr.take().expect("piped");
    let mut lines = Vec::new();
    let read = async {
        while let Some(text) = stdout.next_line().await.map_err(|e| e.to_string())? {
            lines.push(LineArrival { text, at_ms: ms(sent.elapsed()) });
        }
        Ok::<_, String>(())
    };
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| format!("curl still running after {deadline:?}"))??;
    let mut headers = String::new();
    let _ = stderr.read_to_string(&mut headers).await;
    let status = child.wait().await.map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("curl exited with {status}: {headers}"));
    }
    Ok((lines, headers))
}

/// curl on a stream meant to fail: the lines it printed, its exit code (18 for an HTTP/1.1 body
/// cut without its last chunk, 92 for an HTTP/2 stream reset, 0 when nothing showed the cut)
/// and its error message.
pub async fn curl_exit(
    url: &str, args: &[&str], deadline: Duration,
) -> Result<(Vec<String>, i32, String), String> {
    let mut command = Command::new("curl");
    command.args(["-sS", "-N"]).args(args).arg(url).kill_on_drop(true);
    let output = tokio::time::timeout(deadline, command.output())
        .await
        .map_err(|_| format!("curl still running after {deadline:?}"))?
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let lines = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    let code = output.status.code().unwrap_or(-1);
    Ok((lines, code, String::from_utf8_lossy(&output.stderr).trim().to_owned()))
}

/// curl's view of a stream: `items` are the lines that carry the count (for SSE, the `data:`
/// lines), judged against the schedule.
pub async fn curl_streams(url: &str, compressed: bool, count: u32, interval: Duration) -> Outcome {
    let deadline = crate::checks::deadline_for(count, interval, interval / 2);
    let (lines, headers) =
        match curl_lines(url, if compressed { &["--compressed"] } else { &[] }, deadline).await {
            Ok(got) => got,
            Err(error) => return Outcome::fail(error),
        };
    let items: Vec<LineArrival> = lines
        .iter()
        .filter_map(|l| {
            // An SSE `data:` line may or may not have a space after the colon.
            let text = match l.text.strip_prefix("data:") {
                Some(data) => data.strip_prefix(' ').unwrap_or(data),
                None => &l.text,
            };
            text.parse::<u32>().ok().map(|_| LineArrival { text: text.to_owned(), at_ms: l.at_ms })
        })
        .collect();
    let texts: Vec<&str> = items.iter().map(|l| l.text.as_str()).collect();
    let want: Vec<String> = (1..=count).map(|k| k.to_string()).collect();
    let encoding = headers
        .lines()
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("content-encoding").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "uncompressed".into());
    let evidence = crate::outcome::Evidence {
        request: format!("curl -N{} {url}", if compressed { " --compressed" } else { "" }),
        lines: lines.clone(),
        notes: vec![headers.trim().replace("\r\n", " | ")],
        ..Default::default()
    };
    if texts != want {
        return Outcome::fail(format!("curl printed {texts:?}, expected 1..={count}"))
            .with(evidence);
    }
    // curl's own start-up is part of line 1's arrival: judge the spacing from line 1 on.
    let timing = spacing_outcome(&items, interval, interval / 2);
    let reason = format!("curl ({encoding}): {}", timing.reason);
    Outcome { reason, ..timing }.with(evidence)
}

/// The reqwest client of `conformance/examples/read_stream.rs`, as a program: `cargo test`
/// builds it beside the test binaries. Runs it on `url` and stamps each line it prints as the
/// line arrives; `on_line` sees each one first (the resume test cuts the connection there).
/// Returns the printed lines without the program's own `… ms` prefix, and whether it exited
/// cleanly by `deadline` (if not, why).
pub async fn read_stream_lines(
    program: &std::path::Path, url: &str, deadline: Duration, mut on_line: impl FnMut(&str),
) -> (Vec<LineArrival>, Result<(), String>) {
    let sent = Instant::now();
    let spawned = Command::new(program)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return (Vec::new(), Err(format!("cannot run {}: {e}", program.display())));
        }
    };
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut lines = Vec::new();
    let read = async {
        while let Some(line) = stdout.next_line().await.map_err(|e| e.to_string())? {
            let at_ms = ms(sent.elapsed());
            let text = line.split_once(" ms  ").map_or(line.as_str(), |(_, text)| text);
            on_line(text);
            lines.push(LineArrival { text: text.to_owned(), at_ms });
        }
        Ok::<_, String>(())
    };
    let read = match tokio::time::timeout(deadline, read).await {
        Ok(read) => read,
        Err(_) => Err(format!("read_stream was still running after {deadline:?}")),
    };
    if let Err(error) = read {
        return (lines, Err(error));
    }
    let mut errors = String::new();
    let _ = child.stderr.take().expect("piped").read_to_string(&mut errors).await;
    let exited = match child.wait().await {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("read_stream exited with {status}: {}", errors.trim())),
        Err(e) => Err(e.to_string()),
    };
    (lines, exited)
}

/// `read_stream` on `/stream`: it prints 1..=count, one line per interval.
pub async fn read_stream_prints_lines(
    program: &std::path::Path, base: &str, count: u32, interval: Duration,
) -> Outcome {
    let url = format!("{base}/stream?count={count}&interval_ms={}", interval.as_millis());
    let deadline = crate::checks::deadline_for(count, interval, interval / 2);
    let (lines, exited) = read_stream_lines(program, &url, deadline, |_| {}).await;
    let evidence = crate::outcome::Evidence {
        request: format!("read_stream {url}"),
        lines: lines.clone(),
        ..Default::default()
    };
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let want: Vec<String> = (1..=count).map(|k| k.to_string()).collect();
    if let Err(error) = exited {
        return Outcome::fail(error).with(evidence);
    }
    if texts != want {
        return Outcome::fail(format!("read_stream printed {texts:?}, expected 1..={count}"))
            .with(evidence);
    }
    // The program's own start-up is part of line 1's arrival: judge the spacing from line 1.
    spacing_outcome(&lines, interval, interval / 2).with(evidence)
}

/// `read_stream` on `/events` through a [`Relay`] that cuts the connection after event 2: it
/// prints the events 1..=count once each and in order, reconnects after the server's
/// `retry: 1000` with `Last-Event-ID: 2`, and stops at the 204 that follows the last event.
pub async fn read_stream_resumes_events(
    program: &std::path::Path, base: &str, count: u32, interval: Duration,
) -> Outcome {
    const RETRY_MS: f64 = 1000.0;
    let relay = match Relay::start(base, "/events").await {
        Ok(relay) => relay,
        Err(e) => return Outcome::fail(format!("cannot start the relay: {e}")),
    };
    let url = format!("{}/events?count={count}&interval_ms={}", relay.base, interval.as_millis());
    let deadline =
        crate::checks::deadline_for(count, interval, interval / 2) + Duration::from_secs(5);
    let cut_after_2 = |text: &str| {
        if text.starts_with("id=2 ") {
            relay.cut();
        }
    };
    let (lines, exited) = read_stream_lines(program, &url, deadline, cut_after_2).await;
    let evidence = crate::outcome::Evidence {
        request: format!("read_stream {url}, the connection cut after id 2"),
        lines: lines.clone(),
        ..Default::default()
    };
    let events: Vec<&LineArrival> = lines.iter().filter(|l| l.text.starts_with("id=")).collect();
    let got: Vec<&str> = events.iter().map(|l| l.text.as_str()).collect();
    let want: Vec<String> = (1..=count).map(|k| format!("id={k} data={k}")).collect();
    let repeated = (1..got.len()).any(|i| got[..i].contains(&got[i]));
    let resumed = lines.iter().any(|l| l.text.ends_with("Last-Event-ID: \"2\""));
    let ended = lines.last().is_some_and(|l| l.text.starts_with("204 No Content"));
    let outcome = if repeated {
        Outcome::fail(format!(
            "read_stream printed {got:?}: ids repeat, so the server ignored Last-Event-ID"
        ))
    } else if got != want {
        Outcome::fail(format!("read_stream printed {got:?}, expected {want:?}"))
    } else if let Err(error) = exited {
        Outcome::fail(error)
    } else if !resumed || !ended {
        Outcome::fail("read_stream did not reconnect with Last-Event-ID: 2, or did not stop at 204")
    } else {
        let wait = events[2].at_ms - events[1].at_ms;
        if wait < RETRY_MS - interval.as_secs_f64() * 500.0 {
            Outcome::fail(format!(
                "event 3 came {wait:.0} ms after event 2: the client did not wait the retry: 1000"
            ))
        } else {
            Outcome::pass(format!(
                "events 1..={count} once each; event 3 {wait:.0} ms after the cut (retry: 1000), \
                 then 204"
            ))
        }
    };
    outcome.with(evidence)
}

/// A TCP relay in front of a server that can cut the connections it carries, as a network
/// failure would. Only connections whose request line contains `cut_marker` are cut.
pub struct Relay {
    pub base: String,
    cut: watch::Sender<u64>,
}

impl Relay {
    pub async fn start(upstream: &str, cut_marker: &'static str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let (cut, _) = watch::channel(0u64);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let cuts = cuts.subscribe();
                tokio::spawn(relay(client, upstream, cuts, cut_marker));
            }
        });
        Ok(Self { base, cut })
    }

    /// Drops every marked connection open now; later ones are left alone.
    pub fn cut(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }
}

async fn relay(
    mut client: TcpStream, upstream: String, mut cuts: watch::Receiver<u64>, marker: &str,
) -> std::io::Result<()> {
    let mut first = vec![0u8; 8192];
    let n = client.read(&mut first).await?;
    let request_line =
        String::from_utf8_lossy(&first[..n]).lines().next().unwrap_or_default().to_owned();
    let mut server = TcpStream::connect(&upstream).await?;
    server.write_all(&first[..n]).await?;
    cuts.borrow_and_update();
    let cuttable = request_line.contains(marker);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed(), if cuttable => {}
    }
    Ok(())
}
