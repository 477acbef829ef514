//! TLS for the connections the client makes by hand (raw HTTP/1 exchanges, the HTTP/2
//! connections the h2 checks hold open): the same trust as reqwest's, from the [`Transport`].

use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use rustls_platform_verifier::ConfigVerifierExt;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::Transport;

/// A TLS connection over `tcp` to `host`, offering `alpn` (`b"http/1.1"`, `b"h2"`).
pub(crate) async fn connect(
    transport: &Transport, host: &str, tcp: TcpStream, alpn: &[&[u8]],
) -> Result<TlsStream<TcpStream>, String> {
    let mut config = config(transport)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // `host` as in the URL: a name, an IPv4 address or a bracketed IPv6 address.
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(name.to_owned())
        .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

/// As curl: `--cacert` replaces the system's roots, `--insecure` trusts any certificate, and
/// otherwise the platform's verifier decides (as reqwest's does).
pub(crate) fn config(transport: &Transport) -> Result<ClientConfig, String> {
    super::install_provider();
    if transport.insecure {
        let provider = CryptoProvider::get_default().cloned().expect("installed above");
        return Ok(ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth());
    }
    match &transport.cacert {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("the CA file holds a bad certificate: {e}"))?;
                roots.add(cert).map_err(|e| format!("the CA file holds a bad certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the CA file holds no PEM certificate".into());
            }
            Ok(ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
        }
        None => ClientConfig::with_platform_verifier()
            .map_err(|e| format!("cannot load the platform's certificate verifier: {e}")),
    }
}

/// `--insecure`: any certificate, any name; the handshake's signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
