//! Programs the harness starts that are not ours (proxies, the zoo's stacks): where they are,
//! a port and a directory for each, whether one answers yet, and a [`Daemon`] that runs one in
//! a process group of its own and stops it.

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// Where `program` is: on the PATH, or in an `sbin` directory (nginx and apache2 live in
/// `/usr/sbin`, which is not on every PATH).
pub fn locate(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether a request for `/` through the proxy gets an answer: ready means serving, through to
/// the upstream, not only accepting. In CI the first check behind a just-started Apache waited
/// 249 ms for its head and failed (tolerance 200 ms); what a first request costs is not the
/// checks' to measure.
fn answers(mut tcp: TcpStream) -> bool {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut start = [0u8; 5];
    tcp.write_all(request).is_ok() && tcp.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

/// A free port on 127.0.0.1 just now: bound, read and released.
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    listener.local_addr().map(|addr| addr.port()).map_err(|e| format!("no local address: {e}"))
}

/// A new directory of its own under the system's temporary directory, for `name`'s files.
fn fresh_dir(name: &str) -> Result<PathBuf, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // A path the configs can hold unquoted.
    let name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    loop {
        let dir = std::env::temp_dir().join(format!(
            "streaming-{}-{}-{}",
            name,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
}

/// Whether this process runs as root (its effective uid).
pub(crate) fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1)) // effective uid
            == Some("0")
    })
}

/// What a daemon printed on stdout and stderr, in its directory.
pub const OUTPUT: &str = "output.log";
/// How long a daemon may take to start on a loaded machine.
pub const START_WAIT: Duration = Duration::from_secs(30);
/// How often a port is tried again when someone else took it meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// Held from [`free_port`] until the daemon given that port listens on it. Tests side by side
/// once got the same free port for two daemons: the second could not bind it, and its
/// readiness was answered by the first (an HTTPS client met plain HTTP, 2026-12-07).
static PORTS: Mutex<()> = Mutex::new(());

/// A program the harness started, in a process group of its own (gunicorn's workers, Apache's,
/// Varnish's child go with it), with a directory of its own for its config and logs. The group
/// is stopped and the directory removed when it is dropped.
#[derive(Debug)]
pub struct Daemon {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Daemon {
    /// Runs what `make(dir, port)` gives on a free port and a fresh directory, until `ready`
    /// says so (it is asked every 10 ms, up to [`START_WAIT`]). A port someone took meanwhile
    /// (the program's output says "in use" or "cannot bind") is tried again. The error carries
    /// what the program printed.
    pub fn start(
        name: &str, make: impl Fn(&Path, u16) -> Result<Command, String>,
        ready: impl Fn(&Daemon) -> bool,
    ) -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = fresh_dir(name)?;
            let ports = PORTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let port = free_port()?;
            let command = make(&dir, port).inspect_err(|_| {
                let _ = fs::remove_dir_all(&dir);
            })?;
            let mut daemon = Self::spawn(name, dir, port, command)?;
            let listening = daemon.wait_until(|daemon| daemon.accepts(false));
            drop(ports);
            match listening.and_then(|()| daemon.wait_until(&ready)) {
                Ok(()) => return Ok(daemon),
                Err(problem) => {
                    daemon.stop();
                    let output = daemon.logs(&[]);
                    last = format!("{name} did not start: {problem}\n{output}");
                    if !(output.contains("in use") || output.contains("cannot bind")) {
                        return Err(last);
                    }
                }
            }
        }
        Err(format!("{name} found its port taken {PORT_ATTEMPTS} times; last: {last}"))
    }

    fn spawn(name: &str, dir: PathBuf, port: u16, mut command: Command) -> Result<Self, String> {
        let output = fs::File::create(dir.join(OUTPUT))
            .and_then(|out| Ok((out.try_clone()?, out)))
            .map_err(|e| format!("cannot create {OUTPUT}: {e}"))?;
        command.stdin(Stdio::null()).stdout(output.0).stderr(output.1).process_group(0);
        match command.spawn() {
            Ok(child) => Ok(Self { name: name.to_owned(), port, dir, child }),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(format!("cannot start {name}: {e} ({command:?})"))
            }
        }
    }

    fn wait_until(&mut self, ready: impl Fn(&Daemon) -> bool) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < START_WAIT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status} while starting"));
            }
            if ready(self) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err(format!("not ready on port {} within {START_WAIT:?}", self.port))
    }

    /// Its process id, as it would write it to a pid file.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it accepts a connection on its port (`http`: and answers a request there).
    pub fn accepts(&self, http: bool) -> bool {
        TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok_and(|tcp| !http || answers(tcp))
    }

    /// A file of its directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What it printed ([`OUTPUT`]) and the `logs` of its directory (`(what, file)` each), so
    /// far, each under a heading.
    pub fn logs(&self, logs: &[(&str, &str)]) -> String {
        let mut text = String::new();
        for (what, file) in logs.iter().copied().chain([("output", OUTPUT)]) {
            let content = fs::read_to_string(self.dir.join(file)).unwrap_or_default();
            if !content.trim().is_empty() {
                text.push_str(&format!("--- {} {what} ---\n{}\n", self.name, content.trim_end()));
            }
        }
        text
    }

    /// SIGTERM to the group (nginx: fast shutdown; Apache: stop), SIGKILL to what is left of it
    /// after 10 s or once the leader is gone.
    fn stop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = killpg(group, Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
