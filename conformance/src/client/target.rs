//! Where requests go and over what: the base URL, the HTTP version to ask for, and whom to
//! trust over TLS (curl's flags).

use serde::Serialize;

/// Where requests go, and over what.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port` or `https://host:port`, maybe with a path prefix; no trailing slash.
    pub base: String,
    pub transport: Transport,
}

/// How to reach the server: the HTTP version to ask for and whom to trust over TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    pub protocol: Protocol,
    /// PEM certificates to trust instead of the system's roots (curl's `--cacert`).
    pub cacert: Option<Vec<u8>>,
    /// Accept any certificate (curl's `--insecure`).
    pub insecure: bool,
}

/// Which HTTP version to ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// What a browser does: HTTP/1.1 on `http://`; over TLS, ALPN offers `h2` and `http/1.1`.
    #[default]
    Auto,
    /// HTTP/1.1 only (ALPN `http/1.1`).
    Http1,
    /// HTTP/2 only: ALPN `h2` over TLS, prior knowledge (h2c) on `http://`.
    Http2,
}

/// The transport flags, named as curl's; `diagnose` and the catalogue's `--url` take them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TransportArgs {
    /// HTTP/1.1 only.
    #[arg(long = "http1.1", conflicts_with = "http2")]
    pub http1: bool,
    /// HTTP/2 only: ALPN h2 over TLS, h2c with prior knowledge on http://.
    #[arg(long = "http2")]
    pub http2: bool,
    /// Trust the PEM certificates in FILE instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Accept any TLS certificate.
    #[arg(short = 'k', long)]
    pub insecure: bool,
}

impl TransportArgs {
    /// The transport these flags ask for; fails on a `--cacert` file that cannot be read.
    pub fn transport(&self) -> Result<Transport, String> {
        let protocol = match (self.http1, self.http2) {
            (true, _) => Protocol::Http1,
            (_, true) => Protocol::Http2,
            _ => Protocol::Auto,
        };
        let cacert = match &self.cacert {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("--cacert {}: cannot read it: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Transport { protocol, cacert, insecure: self.insecure })
    }
}

impl Target {
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), transport: Transport::default() }
    }

    /// `host:port` of the base URL as written in it (the port may be left out), for the
    /// `Host` header of raw exchanges.
    pub fn host_port(&self) -> &str {
        let rest = self.base.split_once("://").map_or(&*self.base, |(_, r)| r);
        rest.split('/').next().unwrap_or(rest)
    }

    /// Whether the base URL is `https://`.
    pub fn is_tls(&self) -> bool {
        self.base.starts_with("https://")
    }

    /// The host (as written: a name, an address, `[v6]`) and the address to connect to, with
    /// the scheme's port when the URL gives none.
    pub fn host_and_address(&self) -> (&str, String) {
        let authority = self.host_port();
        let port_at = authority.rfind(':').filter(|&i| !authority[i..].contains(']'));
        match port_at {
            Some(i) => (&authority[..i], authority.to_owned()),
            None => (authority, format!("{authority}:{}", if self.is_tls() { 443 } else { 80 })),
        }
    }

    /// Whether requests to this target speak HTTP/2: asked for, or (the default over TLS)
    /// what ALPN is expected to choose. [`crate::checks::run`] replaces the default by what the server
    /// chose.
    pub fn speaks_h2(&self) -> bool {
        match self.transport.protocol {
            Protocol::Http2 => true,
            Protocol::Http1 => false,
            Protocol::Auto => self.is_tls(),
        }
    }

    /// The request target for `path` on a raw connection: the base URL's own path (a proxy
    /// may serve the stream under a prefix) followed by `path`.
    pub fn path(&self, path: &str) -> String {
        let rest = self.base.split_once("://").map_or(&*self.base, |(_, r)| r);
        let prefix = rest.find('/').map_or("", |i| &rest[i..]);
        format!("{prefix}{path}")
    }
}
