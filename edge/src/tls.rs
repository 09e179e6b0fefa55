//! HTTPS for viewers: a rustls server config from PEM files, offering HTTP/2 and HTTP/1.1 by
//! ALPN.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Why HTTPS could not be set up: the file at fault and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("tls_cert {path}: {problem}; give a PEM file with the certificate chain")]
    Cert { path: String, problem: String },
    #[error("tls_key {path}: {problem}; give a PEM file with the private key")]
    Key { path: String, problem: String },
    #[error("tls_cert/tls_key: {0}; check that the key belongs to the certificate")]
    Pair(rustls::Error),
    #[error("TLS setup: {0}; the TLS library refused its own defaults (a bug: report it)")]
    Setup(rustls::Error),
}

/// Loads the certificate chain and key and builds the acceptor. Errors name the file.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_error = |problem: String| TlsError::Cert {
        path: cert.display().to_string(),
        problem,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error("no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        problem: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(TlsError::Setup)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(TlsError::Pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
