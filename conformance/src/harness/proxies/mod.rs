//! Real reverse proxies in front of a server: nginx and Apache httpd, each started on loopback
//! with its own config, prefix, pid file and logs in a temporary directory.
//!
//! [`Proxy::start`] writes a stock reverse-proxy config, `conformance/proxies/nginx.conf` or
//! `apache.conf` filled in, with the proxy's compression on for `text/plain`, `text/html` and
//! `text/event-stream`, starts the real program on an ephemeral
//! port and waits until it accepts connections; dropping the [`Proxy`] stops it (its
//! [`Daemon`](super::process::Daemon): SIGTERM to its process group)
//! and removes the directory. [`run_behind_nginx`] and [`run_behind_apache`] run the
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
    path::{Path, PathBuf},
    process::Command,
};

mod behind;
mod config;

pub use behind::{CHECKS, PROXY_INTERVAL, run_behind_apache, run_behind_nginx, run_check};
pub use config::config;

pub use super::process::locate;
use super::{certs, process::Daemon};
use crate::harness::real_clients;

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
    /// nginx as [`Setup::Balanced`], sized for 50 000 streams: eight workers (each may open
    /// 20 000 files, two per stream), the listening socket shared by `reuseport`, no access log.
    Many,
}

impl Setup {
    /// Does this setup take several upstreams?
    pub fn balances(self) -> bool {
        matches!(self, Setup::Balanced | Setup::BalancedIdle | Setup::Many)
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
    daemon: Daemon,
}

/// Is the proxy installed? If not, the test is skipped loudly (or fails with
/// `STREAMING_REQUIRE_EXTERNAL=1`), as [`real_clients::require`] does for the other programs.
pub fn available(kind: Kind) -> bool {
    locate(kind.program()).is_some() || real_clients::require(kind.program(), kind.package())
}

const NGINX_CONF: &str = "nginx.conf";
const APACHE_CONF: &str = "httpd.conf";
const HAPROXY_CONF: &str = "haproxy.cfg";
const PID_FILE: &str = "proxy.pid";
const ERROR_LOG: &str = "error.log";
const ACCESS_LOG: &str = "access.log";

fn conf_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Nginx => NGINX_CONF,
        Kind::Apache => APACHE_CONF,
        Kind::Haproxy => HAPROXY_CONF,
    }
}

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
        let tls = setup == Setup::TlsEdge;
        let daemon = Daemon::start(
            kind.program(),
            |dir, port| command(kind, setup, &program, dir, &upstreams, port),
            |daemon| {
                // Both nginx and Apache write their pid file after binding their port.
                let written = kind == Kind::Haproxy
                    || fs::read_to_string(daemon.file(PID_FILE))
                        .is_ok_and(|content| content.trim() == daemon.pid().to_string());
                written && daemon.accepts(!tls)
            },
        )
        .map_err(|e| format!("{e}\n({setup:?} in front of {})", upstreams.join(", ")))?;
        let scheme = if tls { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{}", daemon.port);
        Ok(Self { kind, setup, base, daemon })
    }

    /// The proxy's (main) process.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// The CA certificate (PEM) that [`Setup::TlsEdge`]'s certificate is signed by.
    pub fn ca(&self) -> PathBuf {
        self.daemon.file(certs::CA)
    }

    /// The config file it runs with.
    pub fn config(&self) -> String {
        fs::read_to_string(self.daemon.file(conf_name(self.kind))).unwrap_or_default()
    }

    /// Its error log, access log and output so far.
    pub fn logs(&self) -> String {
        self.daemon.logs(&[("error log", ERROR_LOG), ("access log", ACCESS_LOG)])
    }
}

/// The command that runs `kind` set up as `setup` in `dir`, its config and certificates
/// written there. Each is told to stay in the foreground.
fn command(
    kind: Kind, setup: Setup, program: &Path, dir: &Path, upstreams: &[&str], port: u16,
) -> Result<Command, String> {
    let conf = dir.join(conf_name(kind));
    if setup == Setup::TlsEdge {
        certs::write(dir)?;
    }
    fs::write(&conf, config(kind, setup, dir, port, upstreams))
        .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
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
    Ok(command)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// A port someone else took between our look and the proxy's bind is noticed, and another
    /// tried, with the proxy's own words; nothing is left running.
    #[test]
    fn a_taken_port_is_noticed() {
        let taken = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        for kind in [Kind::Nginx, Kind::Apache] {
            let Some(program) = locate(kind.program()) else {
                continue;
            };
            let upstream = ["127.0.0.1:9"];
            let make = |dir: &Path, _| command(kind, Setup::Stock, &program, dir, &upstream, port);
            let Err(error) = Daemon::start(kind.program(), make, |d| d.accepts(true)) else {
                panic!("{kind:?} started on a taken port");
            };
            assert!(error.contains("found its port taken 5 times"), "{error}");
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
            let proc = PathBuf::from(format!("/proc/{}", proxy.daemon.pid()));
            let dir = proxy.daemon.dir.clone();
            assert!(dir.join(PID_FILE).is_file());
            drop(proxy);
            assert!(!dir.exists(), "{} is still there", dir.display());
            assert!(!proc.exists(), "{kind:?} is still running");
        }
    }
}
