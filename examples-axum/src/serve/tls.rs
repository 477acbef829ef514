//! A rustls server config for the PEM files of `--tls-cert` and `--tls-key` (or the certificate
//! of `--tls-self-signed`). The same file in the axum, actix and warp examples (a test keeps them
//! identical); Rocket takes the PEM itself. Nothing here is about streaming.

use std::{io, sync::Arc};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::setup::Pem;

/// A rustls server config for `pem` (ring, as named in the workspace's Cargo.toml).
pub fn server_config(pem: &Pem) -> io::Result<rustls::ServerConfig> {
    let invalid = |what: &str, e: rustls::pki_types::pem::Error| {
        io::Error::new(io::ErrorKind::InvalidData, format!("the TLS {what}: {e}"))
    };
    let certs = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate", e))?;
    let key = PrivateKeyDer::from_pem_slice(&pem.key).map_err(|e| invalid("key", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("the TLS key: {e}")))
}
