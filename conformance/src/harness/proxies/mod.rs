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
    net::{Ipv4Addr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

mod behind;
mod config;

pub use behind::{CHECKS, PROXY_INTERVAL, run_behind_apache, run_behind_nginx, run_check};
pub use config::config;

pub use super::process::locate;
use super::{
    certs,
    process::{answers, free_port, fresh_dir},
};
use crate::clients;

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

/// Is the proxy installed? If not, the test is skipped loudly (or fails with
/// `STREAMING_REQUIRE_EXTERNAL=1`), as [`clients::require`] does for the other programs.
pub fn available(kind: Kind) -> bool {
    locate(kind.program()).is_some() || clients::require(kind.program(), kind.package())
}

const NGINX_CONF: &str = "nginx.conf";
const APACHE_CONF: &str = "httpd.conf";
const HAPROXY_CONF: &str = "haproxy.cfg";
const PID_FILE: &str = "proxy.pid";
const ERROR_LOG: &str = "error.log";
const ACCESS_LOG: &str = "access.log";
/// The proxy's own stdout and stderr (what it says before its error log is open).
const OUTPUT: &str = "output.log";

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
            let dir = fresh_dir(kind.program())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A port someone else took between our look and the proxy's bind is noticed (so
    /// `start_with` tries another), with the proxy's own words; nothing is left running.
    #[test]
    fn a_taken_port_is_noticed() {
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        for kind in [Kind::Nginx, Kind::Apache] {
            let Some(program) = locate(kind.program()) else {
                continue;
            };
            let dir = fresh_dir(kind.program()).unwrap();
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
