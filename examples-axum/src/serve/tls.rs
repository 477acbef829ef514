//! TLS material: the PEM files given with `--tls-cert` and `--tls-key`, or a certificate made
//! at start-up for `localhost` and `127.0.0.1` (`--tls-self-signed`), to try HTTPS and HTTP/2
//! in one command. Nothing here is about streaming.

use std::{fs, io, path::PathBuf};

#[derive(clap::Args)]
pub struct TlsArgs {
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

impl TlsArgs {
    /// The TLS material asked for, if any.
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

/// A rustls server config for `pem` (ring, as named in the workspace's Cargo.toml).
pub fn server_config(pem: &Pem) -> io::Result<rustls::ServerConfig> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let invalid = |what: &str, e: rustls::pki_types::pem::Error| {
        io::Error::new(io::ErrorKind::InvalidData, format!("the TLS {what}: {e}"))
    };
    let certs = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate", e))?;
    let key = PrivateKeyDer::from_pem_slice(&pem.key).map_err(|e| invalid("key", e))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("the TLS key: {e}")))
}
