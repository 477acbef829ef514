//! Starting a server binary as a child process on an ephemeral port: it is started with
//! `--addr 127.0.0.1:0` and must print `listening on http://IP:PORT` (or `https://`) as its first
//! stdout line.
//! Its stderr (the logs) is kept for evidence. The process is killed when this is dropped.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

/// Resident memory (VmRSS) of process `pid` in KiB, from `/proc`.
pub(crate) fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// User + system CPU time of a process, all its threads, in ms (`pid` "self" is this one).
pub fn cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, may hold spaces and parentheses: count from its end.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten()?;
    Some(ticks as f64 * 1000.0 / per_second as f64)
}

/// A server's log lines, each stamped with when the checker read it.
#[derive(Debug, Clone, Default)]
pub struct ServerLog(Arc<Mutex<Vec<(Instant, String)>>>);

impl ServerLog {
    pub fn push(&self, line: impl Into<String>) {
        self.0.lock().unwrap().push((Instant::now(), line.into()));
    }

    /// Everything logged so far, one line each.
    pub fn text(&self) -> String {
        let lines = self.0.lock().unwrap();
        lines.iter().map(|(_, l)| format!("{l}\n")).collect()
    }

    /// The first line logged at or after `since` that satisfies `matches`, waiting until
    /// `deadline` for it.
    pub async fn wait_for(
        &self, since: Instant, deadline: Instant, matches: impl Fn(&str) -> bool,
    ) -> Option<(Instant, String)> {
        loop {
            let found = self
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|(at, line)| *at >= since && matches(line))
                .cloned();
            if found.is_some() || Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// How to start another instance of a server: the program and its fixed arguments
/// (`--addr 127.0.0.1:0` is added).
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl Launch {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), args: Vec::new() }
    }

    /// Starts an instance with `extra` arguments.
    pub fn spawn(&self, extra: &[&str]) -> Result<Spawned, String> {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend(extra);
        Spawned::with_args(&self.program, &args, Duration::from_secs(60))
    }
}

/// A running server and its bound address.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    /// `http://IP:PORT`, as the server printed it.
    pub base: String,
    /// Its stderr, line by line.
    pub log: ServerLog,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl Spawned {
    /// Starts `program --addr 127.0.0.1:0` and waits (up to `wait`) for its address line.
    pub fn start(program: &Path, wait: Duration) -> Result<Self, String> {
        Self::with_args(program, &[], wait)
    }

    /// Like [`Spawned::start`], with more arguments.
    pub fn with_args(program: &Path, args: &[&str], wait: Duration) -> Result<Self, String> {
        let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        Self::with_log_level(program, args, &log_level, wait)
    }

    /// Like [`Spawned::with_args`], with `RUST_LOG` set to `log_level`.
    pub fn with_log_level(
        program: &Path, args: &[&str], log_level: &str, wait: Duration,
    ) -> Result<Self, String> {
        Self::at(program, "127.0.0.1:0", args, log_level, wait)
    }

    /// Like [`Spawned::with_log_level`], on `addr` instead of an ephemeral port (an instance
    /// restarted where a load balancer expects it).
    pub fn at(
        program: &Path, addr: &str, args: &[&str], log_level: &str, wait: Duration,
    ) -> Result<Self, String> {
        let mut child = Command::new(program)
            .args(["--addr", addr])
            .args(args)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;

        let log = ServerLog::default();
        let pipe = child.stderr.take().expect("stderr is piped");
        let sink = log.clone();
        let stderr_reader = thread::spawn(move || {
            for line in BufReader::new(pipe).split(b'\n').map_while(Result::ok) {
                sink.push(String::from_utf8_lossy(&line).into_owned());
            }
        });

        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });

        let first = rx.recv_timeout(wait);
        let mut server =
            Self { child, base: String::new(), log, stderr_reader: Some(stderr_reader) };
        let line = match first {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(server.died("exited before printing its address")),
            Err(_) => return Err(server.died(&format!("printed no address within {wait:?}"))),
        };
        match line.strip_prefix("listening on ") {
            Some(base) if base.starts_with("http://") || base.starts_with("https://") => {
                server.base = base.trim_end_matches('/').to_owned();
                Ok(server)
            }
            _ => Err(server.died(&format!(
                "first stdout line is {line:?}, expected \"listening on http(s)://IP:PORT\""
            ))),
        }
    }

    fn died(&mut self, what: &str) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipe closes with the process: wait until all it wrote has been read.
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        format!("{what}; stderr:\n{}", self.stderr())
    }

    /// Everything the server has logged so far.
    pub fn stderr(&self) -> String {
        self.log.text()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as `kill` does.
    pub fn terminate(&self) -> Result<(), String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(|e| format!("cannot signal {pid}: {e}"))
    }

    /// Sends SIGKILL: the process dies at once, its connections reset.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for it to exit; how it did.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Has it exited? How, if so.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_dies_is_reported_with_its_log() {
        // `sh --addr …` rejects the option on stderr and exits.
        let err = Spawned::start(Path::new("sh"), Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("exited before printing its address"), "{err}");
        assert!(err.contains("--addr") || err.contains("option"), "stderr missing: {err}");
    }

    #[test]
    fn reads_resident_memory() {
        assert!(rss_kib(std::process::id()).is_ok_and(|kib| kib > 0));
        let err = rss_kib(u32::MAX).unwrap_err();
        assert!(err.contains("cannot read /proc/"), "{err}");
    }

    #[test]
    fn a_wrong_first_line_is_named() {
        // `echo --addr 127.0.0.1:0` prints its arguments instead of an address.
        let err = Spawned::start(Path::new("echo"), Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("first stdout line is \"--addr 127.0.0.1:0\""), "{err}");
    }
}
