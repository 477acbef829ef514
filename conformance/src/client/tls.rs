//! TLS for every connection the client makes (reqwest's, the raw HTTP/1 exchanges, the HTTP/2
//! connections the h2 checks hold open): one rustls configuration from the [`Transport`],
//! trusting what curl trusts, and refusals put in words a person can act on.

use std::sync::Arc;

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        verify_server_name,
    },
    crypto::CryptoProvider,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
    server::ParsedCertificate,
};
use rustls_platform_verifier::ConfigVerifierExt;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{Protocol, Transport};

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
    TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| {
        let explained = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match explained {
            Some(error) => format!("TLS handshake failed: {}", explain(error, transport)),
            None => format!("TLS handshake failed: {e}"),
        }
    })
}

/// The configuration reqwest gets (it sets no ALPN of its own on a configuration it is
/// given): ALPN as a browser offers it, or the one protocol asked for.
pub(crate) fn for_reqwest(transport: &Transport) -> Result<ClientConfig, String> {
    let mut config = config(transport)?;
    config.alpn_protocols = match transport.protocol {
        Protocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Protocol::Http1 => vec![b"http/1.1".to_vec()],
        Protocol::Http2 => vec![b"h2".to_vec()],
    };
    Ok(config)
}

/// As curl: `--cacert` replaces the system's roots, `--insecure` trusts any certificate, and
/// otherwise the platform's verifier decides.
pub(crate) fn config(transport: &Transport) -> Result<ClientConfig, String> {
    super::install_provider();
    let provider = CryptoProvider::get_default().cloned().expect("installed above");
    if transport.insecure {
        return Ok(ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth());
    }
    let Some(pem) = &transport.cacert else {
        return ClientConfig::with_platform_verifier()
            .map_err(|e| format!("cannot load the platform's certificate verifier: {e}"));
    };
    let mut listed = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        listed.push(cert.map_err(|e| format!("the CA file holds a bad certificate: {e}"))?);
    }
    if listed.is_empty() {
        return Err("the CA file holds no PEM certificate".into());
    }
    let mut roots = RootCertStore::empty();
    for cert in &listed {
        roots.add(cert.clone()).map_err(|e| format!("the CA file holds a bad certificate: {e}"))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("cannot use the CA file: {e}"))?;
    Ok(ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AsCurl { webpki, listed }))
        .with_no_client_auth())
}

/// `--cacert FILE` as curl with OpenSSL reads it: every certificate in the file is trusted,
/// including the server's own. A self-signed certificate made with `openssl req -x509` is
/// marked `CA:TRUE`, which webpki refuses as a server's certificate (`CaUsedAsEndEntity`)
/// and OpenSSL accepts when it is the trusted certificate itself; and curl turns on
/// OpenSSL's partial chains, so a server certificate listed in the file is trusted without
/// its issuer. Either way the host name is still checked, and webpki has checked the dates
/// before it got to either refusal.
#[derive(Debug)]
struct AsCurl {
    webpki: Arc<WebPkiServerVerifier>,
    listed: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for AsCurl {
    fn verify_server_cert(
        &self, end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>, ocsp: &[u8], now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused =
            match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Ok(verified) => return Ok(verified),
                Err(refused) => refused,
            };
        let rustls::Error::InvalidCertificate(why) = &refused else {
            return Err(refused);
        };
        let listed = self.listed.iter().any(|cert| cert.as_ref() == end_entity.as_ref());
        if !listed || !(*why == CertificateError::UnknownIssuer || ca_as_end_entity(why)) {
            return Err(refused);
        }
        verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// webpki's `CaUsedAsEndEntity`, which rustls passes on as an `Other` error.
fn ca_as_end_entity(error: &CertificateError) -> bool {
    match error {
        CertificateError::Other(other) => {
            matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            )
        }
        _ => false,
    }
}

/// A refused handshake in words a person can act on, naming the flag that would help.
pub(crate) fn explain(error: &rustls::Error, transport: &Transport) -> String {
    let rustls::Error::InvalidCertificate(why) = error else {
        return error.to_string();
    };
    let skip = "or -k to skip the check";
    let untrusted = match &transport.cacert {
        Some(_) => format!(
            "the server's certificate is not signed by any certificate in the --cacert file, \
             and is not one of them: give the CA that signed it (for a self-signed \
             certificate, the certificate itself), {skip}"
        ),
        None => format!(
            "the server's certificate is not signed by a CA this system trusts (self-signed, \
             or from a private CA): give that CA, or the certificate itself, with --cacert \
             FILE, {skip}"
        ),
    };
    match why {
        CertificateError::UnknownIssuer => untrusted,
        CertificateError::NotValidForNameContext { expected, presented } => {
            let expected = expected.to_str();
            // rustls gives each name as its Debug form: `DnsName("a.example")`.
            let names: Vec<&str> = presented
                .iter()
                .map(|n| n.split_once('(').map_or(&**n, |(_, rest)| rest))
                .map(|n| n.trim_end_matches(')').trim_matches('"'))
                .collect();
            let names = match names.as_slice() {
                [] => "no name at all (it has no subjectAltName)".to_owned(),
                names => names.join(", "),
            };
            format!(
                "the server's certificate is for {names}, not for {expected}: use a URL with a \
                 name it is for, or a certificate whose subjectAltName includes {expected} \
                 (`-addext subjectAltName=…` with `openssl req`), {skip}"
            )
        }
        CertificateError::NotValidForName => format!(
            "the server's certificate is not for the host name in the URL: use a URL with a \
             name it is for, or a certificate whose subjectAltName includes it, {skip}"
        ),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the server's certificate expired {} s ago: renew it, {skip}",
            time.as_secs().saturating_sub(not_after.as_secs())
        ),
        CertificateError::Expired => {
            format!("the server's certificate has expired: renew it, {skip}")
        }
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "the server's certificate is not valid for another {} s (check the clocks), {skip}",
            not_before.as_secs().saturating_sub(time.as_secs())
        ),
        why if ca_as_end_entity(why) => format!(
            "the server's certificate is a CA certificate (`CA:TRUE`, as `openssl req -x509` \
             makes them), which is trusted only as itself: give exactly this certificate with \
             --cacert FILE (as curl does), {skip}"
        ),
        other => format!("the server's certificate was refused ({other}), {skip}"),
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
