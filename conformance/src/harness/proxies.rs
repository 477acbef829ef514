//! Real reverse proxies in front of a server: nginx and Apache httpd, each started on loopback
//! with its own config, prefix, pid file and logs in a temporary directory.
//!
//! [`Proxy::start`] writes a stock reverse-proxy config, `conformance/proxies/nginx.conf` or
//! `apache.conf` filled in, with the proxy's compression on for `text/plain`, `text/html` and
//! `text/event-stream`, starts the real program on an ephemeral
//! port and waits until it accepts connections; dropping the [`Proxy`] stops it (SIGTERM to its
//! pid) and removes the directory. [`run_behind_nginx`] and [`run_behind_apache`] run the
//! timing and compression checks through it against a server binary.
//!
//! What we measured with nginx 1.22 and Apache 2.4 (5 items 200 ms apart):
//!
//! - **nginx** with `proxy_buffering on` (its default) held the body back until it ended in two
//!   cases: when it asks the upstream over HTTP/1.0 (`proxy_http_version 1.0`, nginx's own
//!   default), and when its own gzip compresses the response (the gzip filter flushes only on
//!   a flush buffer, which buffered proxying never sets). An HTTP/1.1 chunked body that nginx
//!   does not compress went on chunk by chunk even with buffering on (each parsed chunk is a
//!   "recycled" buffer, which nginx's write filter sends at once). `X-Accel-Buffering: no`
//!   switches nginx to unbuffered proxying for that response: every buffer is a flush, through
//!   gzip too. [`Setup::Http10Upstream`] and [`Setup::ProxyCompresses`] are the two cases.
//! - **Apache** (`mod_proxy_http`, `mod_deflate`) needed nothing: `mod_proxy_http` passes a
//!   flush on whenever a read from the backend would block, and `mod_deflate` answers a flush
//!   with a sync flush of the compressor, so each item goes out, compressed, as it comes. It
//!   ignores `X-Accel-Buffering`.

use std::{
    fs,
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use super::certs;
use crate::{CheckId, Config, Level, Outcome, clients, servers::Spawned};

/// Which proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// nginx (`proxy_pass`, `gzip on`).
    Nginx,
    /// Apache httpd (`mod_proxy_http`, `mod_deflate`).
    Apache,
    /// HAProxy, as a load balancer only ([`Setup::Balanced`], [`Setup::BalancedIdle`]).
    Haproxy,
}

impl Kind {
    /// The program, as Debian names it.
    pub fn program(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Apache => "apache2",
            Kind::Haproxy => "haproxy",
        }
    }

    /// The Debian package that provides [`Kind::program`].
    pub fn package(self) -> &'static str {
        self.program()
    }
}

/// How the proxy is set up in front of its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The stock reverse proxy, with compression on for text/plain, text/html and
    /// text/event-stream. The client's `Accept-Encoding` goes to the upstream, so a body the
    /// upstream compresses passes through as it is, and the proxy compresses the rest (in our
    /// examples, `/events`; nginx leaves any body with a `Content-Encoding` alone, `identity`
    /// too, which actix sends on `/events`). nginx talks HTTP/1.1 to the upstream, with
    /// buffering on.
    Stock,
    /// As [`Setup::Stock`], but `Accept-Encoding` is removed from the request to the upstream:
    /// the upstream never compresses, and every compressed byte the client gets is the proxy's
    /// own gzip (the usual set-up for an application without compression of its own).
    ProxyCompresses,
    /// nginx only: as [`Setup::Stock`] without `proxy_http_version 1.1`, i.e. nginx's own
    /// default of HTTP/1.0 to the upstream, which then sends a close-delimited body.
    Http10Upstream,
    /// nginx only: as [`Setup::Stock`] with `proxy_buffering off`.
    BufferingOff,
    /// nginx only: the TLS and HTTP/2 edge (`proxies/nginx-tls.conf`: `listen … ssl http2`,
    /// nginx 1.22's syntax, buffering off) with a certificate made at start-up by a CA of its
    /// own ([`Proxy::ca`]).
    TlsEdge,
    /// nginx and HAProxy: a load balancer in front of several instances
    /// (`proxies/nginx-balanced.conf`, `proxies/haproxy.cfg`): failover to the next instance
    /// on connection errors, upstream keepalive, the timeouts the book recommends.
    Balanced,
    /// As [`Setup::Balanced`] with a 2 s read timeout (nginx's `proxy_read_timeout`,
    /// HAProxy's `timeout server`): a stream quiet for 2 s is cut.
    BalancedIdle,
}

impl Setup {
    /// Does this setup take several upstreams?
    pub fn balances(self) -> bool {
        matches!(self, Setup::Balanced | Setup::BalancedIdle)
    }
}

/// A running proxy with its own directory (config, pid file, logs, temp paths). Stopped and
/// removed when dropped.
#[derive(Debug)]
pub struct Proxy {
    pub kind: Kind,
    pub setup: Setup,
    /// `http://127.0.0.1:PORT`, where the proxy listens.
    pub base: String,
    dir: PathBuf,
    child: Child,
}

/// Where `program` is: on the PATH, or in an `sbin` directory (nginx and apache2 live in
/// `/usr/sbin`, which is not on every PATH).
pub fn locate(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Is the proxy installed? If not, the test is skipped loudly (or fails with
/// `STREAMING_REQUIRE_EXTERNAL=1`), as [`clients::require`] does for the other programs.
pub fn available(kind: Kind) -> bool {
    locate(kind.program()).is_some() || clients::require(kind.program(), kind.package())
}

/// Apache's shared modules, wherever the distribution keeps them.
fn apache_modules() -> Option<PathBuf> {
    [
        "/usr/lib/apache2/modules",
        "/usr/lib64/httpd/modules",
        "/usr/lib/httpd/modules",
        "/usr/local/apache2/modules",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|dir| dir.join("mod_proxy_http.so").is_file())
}

const NGINX_CONF: &str = "nginx.conf";
const APACHE_CONF: &str = "httpd.conf";
const HAPROXY_CONF: &str = "haproxy.cfg";
const PID_FILE: &str = "proxy.pid";
const ERROR_LOG: &str = "error.log";
const ACCESS_LOG: &str = "access.log";
/// The proxy's own stdout and stderr (what it says before its error log is open).
const OUTPUT: &str = "output.log";

/// The configs the tests run, with `@DIR@`, `@PORT@`, `@UPSTREAM@` (and Apache's `@MODULES@`)
/// to fill in. The book includes these same files.
const NGINX_TEMPLATE: &str = include_str!("../../proxies/nginx.conf");
const NGINX_TLS_TEMPLATE: &str = include_str!("../../proxies/nginx-tls.conf");
const APACHE_TEMPLATE: &str = include_str!("../../proxies/apache.conf");
const NGINX_BALANCED_TEMPLATE: &str = include_str!("../../proxies/nginx-balanced.conf");
const HAPROXY_TEMPLATE: &str = include_str!("../../proxies/haproxy.cfg");

/// A config for `kind` in `dir`, listening on 127.0.0.1:`port`, in front of `upstreams`
/// (`host:port` each; a setup that does not balance uses the first).
pub fn config(kind: Kind, setup: Setup, dir: &Path, port: u16, upstreams: &[&str]) -> String {
    let template = match kind {
        Kind::Nginx => nginx_template(setup),
        Kind::Apache => apache_template(setup),
        Kind::Haproxy => haproxy_template(setup),
    };
    let servers: Vec<String> = upstreams
        .iter()
        .enumerate()
        .map(|(i, upstream)| match kind {
            Kind::Haproxy => {
                format!("    server s{} {upstream} check inter 500ms fall 1 rise 1", i + 1)
            }
            _ => format!("        server {upstream} max_fails=1 fail_timeout=2s;"),
        })
        .collect();
    let filled = template
        .replace("@DIR@", &dir.display().to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@UPSTREAM@", upstreams.first().copied().unwrap_or_default())
        // The line that is only the placeholder (the comments name it too).
        .replace("\n@SERVERS@\n", &format!("\n{}\n", servers.join("\n")));
    format!("# {setup:?}, written by conformance::proxies.\n{filled}")
}

/// `template` with its one line `line` replaced by `with` (the setups are small edits of the
/// stock config, so the file the book shows is the one the tests run).
fn edit(template: &str, line: &str, with: &str) -> String {
    assert_eq!(template.matches(line).count(), 1, "the proxy template has one {line:?}");
    template.replacen(line, with, 1)
}

fn nginx_template(setup: Setup) -> String {
    const HTTP11: &str = "            proxy_http_version 1.1;\n";
    match setup {
        Setup::Stock => NGINX_TEMPLATE.to_owned(),
        Setup::Http10Upstream => edit(NGINX_TEMPLATE, HTTP11, ""),
        Setup::ProxyCompresses => edit(
            NGINX_TEMPLATE,
            HTTP11,
            &format!("{HTTP11}            proxy_set_header Accept-Encoding \"\";\n"),
        ),
        Setup::BufferingOff => {
            edit(NGINX_TEMPLATE, HTTP11, &format!("{HTTP11}            proxy_buffering off;\n"))
        }
        Setup::TlsEdge => NGINX_TLS_TEMPLATE.to_owned(),
        Setup::Balanced => NGINX_BALANCED_TEMPLATE.to_owned(),
        Setup::BalancedIdle => edit(
            NGINX_BALANCED_TEMPLATE,
            "            proxy_read_timeout 60s;\n",
            "            proxy_read_timeout 2s;\n",
        ),
    }
}

fn haproxy_template(setup: Setup) -> String {
    match setup {
        Setup::BalancedIdle => {
            edit(HAPROXY_TEMPLATE, "    timeout server 60s\n", "    timeout server 2s\n")
        }
        _ => HAPROXY_TEMPLATE.to_owned(),
    }
}

fn apache_template(setup: Setup) -> String {
    const PROXY_PASS: &str = "ProxyPass / http://@UPSTREAM@/\n";
    let mut template = match setup {
        // `RequestHeader unset` also hides the client's Accept-Encoding from mod_deflate, which
        // reads the same request headers: `force-gzip`, set from it first, tells mod_deflate to
        // compress anyway.
        Setup::ProxyCompresses => edit(
            APACHE_TEMPLATE,
            PROXY_PASS,
            &format!(
                "SetEnvIf Accept-Encoding \"\\bgzip\\b\" force-gzip\n\
                 RequestHeader unset Accept-Encoding\n{PROXY_PASS}"
            ),
        ),
        _ => APACHE_TEMPLATE.to_owned(),
    };
    let modules = apache_modules().unwrap_or_else(|| "/usr/lib/apache2/modules".into());
    template = template.replace("@MODULES@", &modules.display().to_string());
    // As root, the workers switch to `User`; its default (#-1) is no user at all.
    if running_as_root() {
        let group = if fs::read_to_string("/etc/group")
            .is_ok_and(|groups| groups.lines().any(|l| l.starts_with("nogroup:")))
        {
            "nogroup"
        } else {
            "nobody"
        };
        template.push_str(&format!(
            "\n# Started as root: the workers run as\nUser nobody\nGroup {group}\n"
        ));
    }
    template
}

fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1)) // effective uid
            == Some("0")
    })
}

/// Whether a request for `/` through the proxy gets an answer: ready means serving, through to
/// the upstream, not only accepting. In CI the first check behind a just-started Apache waited
/// 249 ms for its head and failed (tolerance 200 ms); what a first request costs is not the
/// checks' to measure.
pub(crate) fn answers(mut tcp: TcpStream) -> bool {
    use std::io::{Read, Write};
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut start = [0u8; 5];
    tcp.write_all(request).is_ok() && tcp.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

/// A free port on 127.0.0.1 just now: bound, read and released.
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    listener.local_addr().map(|addr| addr.port()).map_err(|e| format!("no local address: {e}"))
}

fn fresh_dir(kind: Kind) -> Result<PathBuf, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let dir = std::env::temp_dir().join(format!(
            "streaming-{}-{}-{}",
            kind.program(),
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

fn conf_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Nginx => NGINX_CONF,
        Kind::Apache => APACHE_CONF,
        Kind::Haproxy => HAPROXY_CONF,
    }
}

/// How long a proxy may take to start on a loaded machine.
const START_WAIT: Duration = Duration::from_secs(30);
/// How often the port picked is tried again when someone else took it meanwhile.
const PORT_ATTEMPTS: usize = 5;

impl Proxy {
    /// `kind` as a load balancer ([`Setup::Balanced`] or [`Setup::BalancedIdle`]) in front of
    /// `upstream_bases` (`http://host:port` each).
    pub fn balance(kind: Kind, setup: Setup, upstream_bases: &[String]) -> Result<Self, String> {
        if kind == Kind::Apache || !setup.balances() {
            return Err(format!("{kind:?} with Setup::{setup:?} is not a load balancer here"));
        }
        Self::start_over(kind, setup, upstream_bases)
    }

    /// The stock reverse proxy of `kind` in front of `upstream_base` (`http://host:port`).
    pub fn start(kind: Kind, upstream_base: &str) -> Result<Self, String> {
        Self::start_with(kind, Setup::Stock, upstream_base)
    }

    pub fn nginx(upstream_base: &str) -> Result<Self, String> {
        Self::start(Kind::Nginx, upstream_base)
    }

    pub fn apache(upstream_base: &str) -> Result<Self, String> {
        Self::start(Kind::Apache, upstream_base)
    }

    /// `kind` set up as `setup` in front of `upstream_base`, on an ephemeral port; returns once
    /// it accepts connections. The error carries the proxy's logs.
    pub fn start_with(kind: Kind, setup: Setup, upstream_base: &str) -> Result<Self, String> {
        if kind == Kind::Apache && !matches!(setup, Setup::Stock | Setup::ProxyCompresses) {
            return Err(format!("Setup::{setup:?} is an nginx setting"));
        }
        if kind == Kind::Haproxy || setup.balances() {
            return Err(format!("{kind:?} with Setup::{setup:?} balances: use Proxy::balance"));
        }
        Self::start_over(kind, setup, &[upstream_base.to_owned()])
    }

    fn start_over(kind: Kind, setup: Setup, upstream_bases: &[String]) -> Result<Self, String> {
        let program = locate(kind.program())
            .ok_or_else(|| format!("`{}` is not installed", kind.program()))?;
        let upstreams: Vec<&str> = upstream_bases
            .iter()
            .map(|base| base.trim_start_matches("http://").trim_end_matches('/'))
            .collect();
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = fresh_dir(kind)?;
            let port = free_port()?;
            match Self::launch(kind, setup, &program, &dir, &upstreams, port) {
                Ok(proxy) => return Ok(proxy),
                Err((error, port_taken)) => {
                    let _ = fs::remove_dir_all(&dir);
                    if !port_taken {
                        return Err(error);
                    }
                    last_error = error;
                }
            }
        }
        Err(format!(
            "{} found its port taken {PORT_ATTEMPTS} times; last: {last_error}",
            kind.program()
        ))
    }

    /// One attempt on `port`. `Err((message, port_taken))`.
    fn launch(
        kind: Kind, setup: Setup, program: &Path, dir: &Path, upstreams: &[&str], port: u16,
    ) -> Result<Self, (String, bool)> {
        let conf_name = conf_name(kind);
        let conf = dir.join(conf_name);
        if setup == Setup::TlsEdge {
            certs::write(dir).map_err(|e| (e, false))?;
        }
        fs::write(&conf, config(kind, setup, dir, port, upstreams))
            .map_err(|e| (format!("cannot write {}: {e}", conf.display()), false))?;
        let output = fs::File::create(dir.join(OUTPUT))
            .and_then(|out| Ok((out.try_clone()?, out)))
            .map_err(|e| (format!("cannot create {OUTPUT}: {e}"), false))?;
        let mut command = Command::new(program);
        match kind {
            Kind::Nginx => command
                .arg("-p")
                .arg(dir)
                .arg("-c")
                .arg(&conf)
                // The error log from the start, before the config is read.
                .arg("-e")
                .arg(dir.join(ERROR_LOG))
                .args(["-g", "daemon off;"]),
            Kind::Apache => command.arg("-f").arg(&conf).arg("-DFOREGROUND"),
            // In the foreground (`-db`) HAProxy writes no pid file and logs to stdout.
            Kind::Haproxy => command.arg("-f").arg(&conf).arg("-db"),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(output.0)
            .stderr(output.1)
            .spawn()
            .map_err(|e| (format!("cannot start {}: {e}", program.display()), false))?;
        let mut proxy = Self {
            kind,
            setup,
            base: format!(
                "{}://127.0.0.1:{port}",
                if setup == Setup::TlsEdge { "https" } else { "http" }
            ),
            dir: dir.to_owned(),
            child,
        };
        match proxy.wait_until_ready(port) {
            Ok(()) => Ok(proxy),
            Err(problem) => {
                proxy.stop();
                let logs = proxy.logs();
                let taken =
                    logs.contains("Address already in use") || logs.contains("cannot bind socket");
                let error = format!(
                    "{} ({setup:?}) in front of {}: {problem}\n{logs}",
                    kind.program(),
                    upstreams.join(", ")
                );
                Err((error, taken))
            }
        }
    }

    /// Until the proxy has written its pid file (both write it after binding their port) and
    /// answers a request on `port` (over TLS: accepts a connection), or exits, or
    /// [`START_WAIT`] passes.
    fn wait_until_ready(&mut self, port: u16) -> Result<(), String> {
        let start = Instant::now();
        let pid = self.child.id().to_string();
        while start.elapsed() < START_WAIT {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status} while starting"));
            }
            let written = self.kind == Kind::Haproxy
                || fs::read_to_string(self.dir.join(PID_FILE))
                    .is_ok_and(|content| content.trim() == pid);
            if written
                && let Ok(tcp) = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                && (self.setup == Setup::TlsEdge || answers(tcp))
            {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err(format!("did not accept connections within {START_WAIT:?}"))
    }

    /// The CA certificate (PEM) that [`Setup::TlsEdge`]'s certificate is signed by.
    pub fn ca(&self) -> PathBuf {
        self.dir.join(certs::CA)
    }

    /// The config file it runs with.
    pub fn config(&self) -> String {
        fs::read_to_string(self.dir.join(conf_name(self.kind))).unwrap_or_default()
    }

    /// Its error log, access log and output so far.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        for (what, file) in
            [("error log", ERROR_LOG), ("access log", ACCESS_LOG), ("output", OUTPUT)]
        {
            let text = fs::read_to_string(self.dir.join(file)).unwrap_or_default();
            if !text.trim().is_empty() {
                logs.push_str(&format!(
                    "--- {} {what} ---\n{}\n",
                    self.kind.program(),
                    text.trim_end()
                ));
            }
        }
        logs
    }

    /// SIGTERM (nginx: fast shutdown; Apache: stop), then SIGKILL if it is still there after a
    /// while. The workspace forbids unsafe code, so the signal goes through `kill(1)`.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let termed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if termed {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The checks run through a proxy: the timing of all three streaming endpoints, with and
/// without compression.
pub const CHECKS: &[CheckId] = &[
    crate::ids::first_line_is_prompt,
    crate::ids::gaps_hold_interval,
    crate::ids::no_accumulated_drift,
    crate::ids::html_streams_div_by_div,
    crate::ids::events_stream_event_by_event,
    crate::ids::streams_with_gzip,
    crate::ids::streams_without_accept_encoding,
];

/// What runs through each setup of `kind`: everything through the stock proxy; the
/// compression checks through a proxy that does all the compressing itself; and for nginx,
/// the timing through its HTTP/1.0 default.
fn plan(kind: Kind) -> Vec<(Setup, &'static [CheckId])> {
    let mut plan = vec![
        (Setup::Stock, CHECKS),
        (
            Setup::ProxyCompresses,
            &[crate::ids::streams_with_gzip, crate::ids::streams_without_accept_encoding][..],
        ),
    ];
    if kind == Kind::Nginx {
        plan.push((Setup::TlsEdge, CHECKS));
        plan.push((
            Setup::Http10Upstream,
            &[
                crate::ids::first_line_is_prompt,
                crate::ids::gaps_hold_interval,
                crate::ids::html_streams_div_by_div,
                crate::ids::events_stream_event_by_event,
                crate::ids::streams_with_gzip,
            ][..],
        ));
    }
    plan
}

/// The stream shape of the checks through a proxy: 5 items 400 ms apart, ±200 ms. A proxy
/// adds a process and two more hops, and on a loaded 2-core machine a stall of 100 ms now and
/// then is real; a buffering proxy holds everything until the end, far outside either margin.
pub const PROXY_INTERVAL: Duration = Duration::from_millis(400);

/// Runs `check` against `base` once, with [`PROXY_INTERVAL`].
pub fn run_check(base: &str, check: CheckId) -> Outcome {
    run_check_trusting(base, check, None)
}

/// [`run_check`], over TLS trusting the PEM certificates `ca`.
fn run_check_trusting(base: &str, check: CheckId, ca: Option<Vec<u8>>) -> Outcome {
    let entry = crate::entry(check);
    let mut cfg = Config::with_timing(base, 5, PROXY_INTERVAL);
    cfg.target.transport.cacert = ca;
    crate::testing::runtime().block_on(entry.run(&cfg))
}

/// Starts `binary` and runs [`CHECKS`] through the stock nginx in front of it (5 lines 400 ms
/// apart, ±200 ms) and through nginx as the TLS and HTTP/2 edge; then the compression checks
/// through an nginx that does all the compressing, and the timing through nginx's HTTP/1.0
/// default (see [`Setup`]). Panics with the reasons, the evidence, the configs and the proxy's
/// and server's logs if any does not pass; prints the pass reasons. Skipped without nginx (see
/// [`available`]).
pub fn run_behind_nginx(binary: &str) {
    run_behind(Kind::Nginx, binary);
}

/// As [`run_behind_nginx`], with Apache httpd (`mod_proxy_http`, `mod_deflate`): [`CHECKS`]
/// through the stock setup, the compression checks with Apache doing all the compressing.
pub fn run_behind_apache(binary: &str) {
    run_behind(Kind::Apache, binary);
}

fn run_behind(kind: Kind, binary: &str) {
    if !available(kind) {
        return;
    }
    let _machine = crate::testing::share_machine();
    let program = kind.program();
    let server = Spawned::start(Path::new(binary), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let mut failures = String::new();
    for (setup, checks) in plan(kind) {
        let proxy = Proxy::start_with(kind, setup, &server.base).unwrap_or_else(|e| {
            panic!("{binary} behind {e}\n--- server log ---\n{}", server.stderr())
        });
        let mut failed = false;
        let ca = (setup == Setup::TlsEdge).then(|| fs::read(proxy.ca()).expect("the proxy's CA"));
        for &name in checks {
            let outcome = run_check_trusting(&proxy.base, name, ca.clone());
            let what = format!("{name} behind {program} ({setup:?})");
            if outcome.level == Level::Pass {
                println!("{what}: {}", outcome.reason);
                continue;
            }
            failed = true;
            let evidence: String = outcome.evidence.iter().map(|e| e.to_string()).collect();
            failures
                .push_str(&format!("{what}: {} {}\n{evidence}\n", outcome.level, outcome.reason));
        }
        if failed {
            failures.push_str(&format!(
                "--- {program} config ({setup:?}) ---\n{}\n{}\n",
                proxy.config(),
                proxy.logs()
            ));
        }
    }
    if !failures.is_empty() {
        panic!("{binary} behind {program}:\n{failures}--- server log ---\n{}", server.stderr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The config without its comments, which name directives they explain.
    fn directives(kind: Kind, setup: Setup, upstream: &str) -> String {
        let conf = config(kind, setup, Path::new("/tmp/proxy-dir"), 8080, &[upstream]);
        let directives = conf.lines().filter(|l| !l.trim_start().starts_with('#'));
        directives.map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn nginx_config_is_stock_apart_from_the_setup() {
        let stock = directives(Kind::Nginx, Setup::Stock, "127.0.0.1:3000");
        assert!(stock.contains("proxy_pass http://127.0.0.1:3000;"), "{stock}");
        assert!(stock.contains("proxy_http_version 1.1;"), "{stock}");
        assert!(stock.contains("gzip on;"), "{stock}");
        assert!(stock.contains("listen 127.0.0.1:8080;"), "{stock}");
        for off in ["proxy_buffering", "X-Accel", "gzip_proxied", "Accept-Encoding"] {
            assert!(!stock.contains(off), "{off} in\n{stock}");
        }
        let http10 = directives(Kind::Nginx, Setup::Http10Upstream, "u:1");
        assert!(!http10.contains("proxy_http_version"), "{http10}");
        let gzip = directives(Kind::Nginx, Setup::ProxyCompresses, "u:1");
        assert!(gzip.contains("proxy_set_header Accept-Encoding \"\";"), "{gzip}");
    }

    #[test]
    fn apache_config_proxies_and_deflates() {
        let stock = directives(Kind::Apache, Setup::Stock, "127.0.0.1:3000");
        assert!(stock.contains("ProxyPass / http://127.0.0.1:3000/"), "{stock}");
        assert!(
            stock.contains("AddOutputFilterByType DEFLATE text/plain text/html text/event-stream"),
            "{stock}"
        );
        assert!(stock.contains("Listen 127.0.0.1:8080"), "{stock}");
        assert!(!stock.contains("Accept-Encoding"), "{stock}");
        let gzip = directives(Kind::Apache, Setup::ProxyCompresses, "u:1");
        assert!(gzip.contains("RequestHeader unset Accept-Encoding"), "{gzip}");
    }

    /// The files the book shows are the configs the tests run: every placeholder is filled.
    #[test]
    fn every_setup_fills_its_template() {
        for (kind, setup) in [
            (Kind::Nginx, Setup::Stock),
            (Kind::Nginx, Setup::ProxyCompresses),
            (Kind::Nginx, Setup::Http10Upstream),
            (Kind::Apache, Setup::Stock),
            (Kind::Apache, Setup::ProxyCompresses),
        ] {
            let conf = directives(kind, setup, "127.0.0.1:9");
            assert!(!conf.contains('@'), "{kind:?} {setup:?} left a placeholder:\n{conf}");
            assert!(conf.contains("/tmp/proxy-dir/proxy.pid"), "{conf}");
        }
        let upstreams = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
        for kind in [Kind::Nginx, Kind::Haproxy] {
            for setup in [Setup::Balanced, Setup::BalancedIdle] {
                let conf = config(kind, setup, Path::new("/tmp/proxy-dir"), 8080, &upstreams);
                let conf: String =
                    conf.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
                assert!(!conf.contains('@'), "{kind:?} {setup:?} left a placeholder:\n{conf}");
                for upstream in upstreams {
                    assert_eq!(conf.matches(upstream).count(), 1, "{upstream} in\n{conf}");
                }
                let idle =
                    conf.contains("proxy_read_timeout 2s") || conf.contains("timeout server 2s");
                assert_eq!(idle, setup == Setup::BalancedIdle, "{kind:?} {setup:?}:\n{conf}");
            }
        }
    }

    /// A port someone else took between our look and the proxy's bind is noticed (so
    /// `start_with` tries another), with the proxy's own words; nothing is left running.
    #[test]
    fn a_taken_port_is_noticed() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        for kind in [Kind::Nginx, Kind::Apache] {
            let Some(program) = locate(kind.program()) else {
                continue;
            };
            let dir = fresh_dir(kind).unwrap();
            let Err((error, port_taken)) =
                Proxy::launch(kind, Setup::Stock, &program, &dir, &["127.0.0.1:9"], port)
            else {
                panic!("{kind:?} started on a taken port");
            };
            let _ = fs::remove_dir_all(&dir);
            assert!(port_taken, "{error}");
            assert!(error.contains("Address already in use"), "{error}");
        }
    }

    #[test]
    fn a_proxy_starts_and_is_gone_after_drop() {
        for kind in [Kind::Nginx, Kind::Apache] {
            if locate(kind.program()).is_none() {
                continue;
            }
            let proxy = Proxy::start(kind, "http://127.0.0.1:9").unwrap_or_else(|e| panic!("{e}"));
            let proc = PathBuf::from(format!("/proc/{}", proxy.child.id()));
            let dir = proxy.dir.clone();
            assert!(dir.join(PID_FILE).is_file());
            drop(proxy);
            assert!(!dir.exists(), "{} is still there", dir.display());
            assert!(!proc.exists(), "{kind:?} is still running");
        }
    }
}
