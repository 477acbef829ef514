//! Starting a server binary as a child process on an ephemeral port: it is started with
//! `--addr 127.0.0.1:0` and must print `listening on http://IP:PORT` as its first stdout line.
//! Its stderr (the logs) is kept for evidence. The process is killed when this is dropped.

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::Duration,
};

/// A running server and its bound address.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    /// `http://IP:PORT`, as the server printed it.
    pub base: String,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl Spawned {
    /// Starts `program --addr 127.0.0.1:0` and waits (up to `wait`) for its address line.
    pub fn start(program: &Path, wait: Duration) -> Result<Self, String> {
        let mut child = Command::new(program)
            .args(["--addr", "127.0.0.1:0"])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let stderr_reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
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
        let mut server = Self {
            child,
            base: String::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        let line = match first {
            Ok(Some(Ok(line))) => line,
            Ok(_) => return Err(server.died("exited before printing its address")),
            Err(_) => return Err(server.died(&format!("printed no address within {wait:?}"))),
        };
        match line.strip_prefix("listening on ") {
            Some(base) if base.starts_with("http://") => {
                server.base = base.trim_end_matches('/').to_owned();
                Ok(server)
            }
            _ => Err(server.died(&format!(
                "first stdout line is {line:?}, expected \"listening on http://IP:PORT\""
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
        self.stderr.lock().unwrap().clone()
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
        assert!(
            err.contains("--addr") || err.contains("option"),
            "stderr missing: {err}"
        );
    }

    #[test]
    fn a_wrong_first_line_is_named() {
        // `echo --addr 127.0.0.1:0` prints its arguments instead of an address.
        let err = Spawned::start(Path::new("echo"), Duration::from_secs(10)).unwrap_err();
        assert!(
            err.contains("first stdout line is \"--addr 127.0.0.1:0\""),
            "{err}"
        );
    }
}
