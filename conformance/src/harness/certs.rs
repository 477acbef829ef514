//! TLS material for the tests: a CA of their own and a certificate it signed, made with rcgen
//! (ring) in a directory, for nginx's TLS edge and the examples' HTTPS.

use std::{fs, path::Path};

/// The CA certificate, to trust (`--cacert`).
pub const CA: &str = "ca.pem";
/// The certificate for `localhost` and `127.0.0.1`, and its key, to serve with.
pub const CERT: &str = "cert.pem";
/// The key of [`CERT`].
pub const KEY: &str = "key.pem";

/// Writes [`CA`], [`CERT`] and [`KEY`] into `dir`.
pub fn write(dir: &Path) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let fail = |e: rcgen::Error| format!("cannot make a test certificate: {e}");
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "streaming test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(fail)?).map_err(fail)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let key = KeyPair::generate().map_err(fail)?;
    let cert = CertificateParams::new(names).map_err(fail)?.signed_by(&key, &ca).map_err(fail)?;
    for (name, pem) in [(CA, ca.pem()), (CERT, cert.pem()), (KEY, key.serialize_pem())] {
        fs::write(dir.join(name), pem).map_err(|e| format!("cannot write {name}: {e}"))?;
    }
    Ok(())
}
