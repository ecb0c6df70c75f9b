//! The TLS side of a fake region: a fixed self-signed certificate compiled in, served
//! with rustls and its `ring` provider.
//!
//! The certificate is committed (tests/fixtures/tls/, with how it was made) rather than
//! generated at start: generating needs a certificate-building crate (rcgen and its
//! dependencies) in every build of gslbd, for a test helper. Its key is public, which
//! is fine: it only ever protects loopback test traffic.

use std::io;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The self-signed certificate (PEM) that [`FakeRegion::start_tls`] serves: ECDSA P-256,
/// valid 2000–2125, for `127.0.0.1`, `::1` and `localhost`, not a CA. Add it to a test
/// client's root store to connect with full verification.
///
/// [`FakeRegion::start_tls`]: super::FakeRegion::start_tls
pub const CERT_PEM: &str = include_str!("../../tests/fixtures/tls/cert.pem");

/// Its PKCS#8 private key.
const KEY_PEM: &str = include_str!("../../tests/fixtures/tls/key.pem");

/// A server config for [`CERT_PEM`].
pub(super) fn server_config() -> io::Result<Arc<ServerConfig>> {
    server_config_for(CERT_PEM, KEY_PEM)
}

/// A server config for one certificate and its key (PEM). The provider is named
/// explicitly rather than taken from the process default, which may be unset or
/// ambiguous in a user's test binary.
pub(super) fn server_config_for(cert_pem: &str, key_pem: &str) -> io::Result<Arc<ServerConfig>> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(io::Error::other)?;
    Ok(Arc::new(config))
}
