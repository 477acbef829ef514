//! The transports the catalogue runs over, for the test suite and `matrix`: how to start a
//! server for each, and how the checker reaches it.

use std::path::{Path, PathBuf};

use super::certs;
use crate::{
    checks::{Config, Local},
    client::{Protocol, Transport},
    servers::{Launch, Spawned},
};

/// One way to serve the same app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Serving {
    /// Plain HTTP/1.1.
    Http1,
    /// HTTP/1.1 over TLS (ALPN `http/1.1`).
    Https,
    /// HTTP/2 over TLS (ALPN `h2`).
    H2,
    /// HTTP/2 with prior knowledge on plain TCP.
    H2c,
}

impl Serving {
    pub const ALL: [Serving; 4] = [Serving::Http1, Serving::Https, Serving::H2, Serving::H2c];

    pub fn name(self) -> &'static str {
        match self {
            Serving::Http1 => "http1",
            Serving::Https => "https",
            Serving::H2 => "h2",
            Serving::H2c => "h2c",
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Serving::Https | Serving::H2)
    }

    /// The server's arguments for this transport, with the certificates in `tls` (made by
    /// [`Certificates::new`]).
    pub fn args(self, tls: &Certificates) -> Vec<String> {
        match self.is_tls() {
            true => vec![
                "--tls-cert".into(),
                tls.cert().display().to_string(),
                "--tls-key".into(),
                tls.key().display().to_string(),
            ],
            false => Vec::new(),
        }
    }

    /// How the checker reaches the server: the HTTP version to ask for and the CA to trust.
    pub fn transport(self, tls: &Certificates) -> Transport {
        let protocol = match self {
            Serving::Http1 | Serving::Https => Protocol::Http1,
            Serving::H2 | Serving::H2c => Protocol::Http2,
        };
        let cacert = self.is_tls().then(|| tls.ca_pem.clone());
        Transport { protocol, cacert, insecure: false }
    }

    /// Starts `program` for this transport and returns it with a config for the checks (the
    /// test timing, what is known about the server, how to launch more instances of it).
    pub fn start(
        self, program: &Path, tls: &Certificates, timing: impl Fn(&str) -> Config,
    ) -> Result<(Spawned, Config), String> {
        let args = self.args(tls);
        let launch = Launch { program: program.to_owned(), args: args.clone() };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = Spawned::with_args(program, &args, std::time::Duration::from_secs(60))?;
        let mut cfg = timing(&server.base);
        cfg.target.transport = self.transport(tls);
        cfg.local = Local::of(&server, Some(launch));
        Ok((server, cfg))
    }
}

/// A test CA and a certificate for `localhost` and `127.0.0.1` in a directory of their own,
/// removed on drop.
#[derive(Debug)]
pub struct Certificates {
    dir: PathBuf,
    /// The CA certificate, to trust.
    pub ca_pem: Vec<u8>,
}

impl Certificates {
    /// Makes them in a fresh directory under the system's temporary directory, one of its own
    /// for every call (tests running at once each get theirs).
    pub fn new(label: &str) -> Result<Self, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("streaming-tls-{}-{n}-{label}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        certs::write(&dir)?;
        let ca_pem = std::fs::read(dir.join(certs::CA))
            .map_err(|e| format!("cannot read the test CA back: {e}"))?;
        Ok(Self { dir, ca_pem })
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join(certs::CA)
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join(certs::CERT)
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join(certs::KEY)
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
