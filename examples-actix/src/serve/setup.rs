//! What the four examples do alike before and after serving: the command line, TLS material,
//! logging, the open-file limit, the shutdown signal and the drain. The same file in all four
//! crates (a test keeps them identical); what differs is passed in by `serve.rs`. Nothing here
//! is about streaming.

use std::{fs, io, io::IsTerminal, net::SocketAddr, path::PathBuf, time::Duration};

use tokio::{
    signal::unix::{SignalKind, signal},
    time::timeout,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

#[derive(clap::Parser)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ADDR", default_value = super::ADDR)]
    pub addr: SocketAddr,
    /// Seconds that open streams get to finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "GRACE_SECS", default_value_t = 30)]
    pub grace_secs: u64,
    /// PEM certificate chain: serve HTTPS, with h2 and http/1.1 offered by ALPN.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate made now for localhost and 127.0.0.1.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    tls_self_signed: bool,
}

/// A certificate chain and its key, PEM-encoded.
pub struct Pem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl Args {
    /// How long open streams get to finish after the signal (`--grace-secs`).
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }

    /// The TLS material asked for, if any: the PEM files given with `--tls-cert` and
    /// `--tls-key`, or a certificate made at start-up for `localhost` and `127.0.0.1`
    /// (`--tls-self-signed`), to try HTTPS and HTTP/2 in one command.
    pub fn pem(&self) -> io::Result<Option<Pem>> {
        if self.tls_self_signed {
            let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            let made = rcgen::generate_simple_self_signed(names).map_err(io::Error::other)?;
            eprintln!(
                "serving a self-signed certificate for localhost and 127.0.0.1, made just now: \
                 browsers warn about it, curl needs -k"
            );
            let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
            return Ok(Some(Pem { cert: cert.into_bytes(), key: key.into_bytes() }));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(Pem { cert: read(cert)?, key: read(key)? })),
            _ => Ok(None),
        }
    }
}

fn read(path: &PathBuf) -> io::Result<Vec<u8>> {
    fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Logs to stderr (stdout's first line is the address), at `RUST_LOG` or else `default`. It also
/// installs a `log` bridge, through which actix's and Rocket's own records arrive.
pub fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .init();
}

/// Raises the soft open-file limit to the hard one: at the usual soft limit of 1024, a server
/// started from a shell stops accepting at about a thousand open connections.
pub fn raise_open_file_limit() {
    let was = rlimit::Resource::NOFILE.get().map(|(soft, _)| soft);
    match (was, rlimit::increase_nofile_limit(u64::MAX)) {
        (Ok(was), Ok(now)) if now != was => tracing::info!("open-file limit: {now} (was {was})"),
        (_, Ok(now)) => tracing::info!("open-file limit: {now}"),
        (_, Err(err)) => tracing::warn!("cannot raise the open-file limit: {err}"),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// After the signal: the connections (or requests) `open` tracks get `grace` to finish, then
/// `grace_over` is cancelled, which ends the streams still running, and they get 1 s more (a
/// client that stopped reading, or never sent its request).
pub async fn drain(open: TaskTracker, grace: Duration, grace_over: CancellationToken) {
    tracing::info!("shutting down: open streams get {}s to finish", grace.as_secs());
    open.close();
    if timeout(grace, open.wait()).await.is_err() {
        grace_over.cancel();
        if timeout(Duration::from_secs(1), open.wait()).await.is_err() {
            tracing::warn!("closing connections that are still open");
        }
    }
}
