//! HTTPS for viewers: certificates from PEM files, chosen by SNI, reloaded on SIGHUP, offering
//! HTTP/2 and HTTP/1.1 by ALPN.
//!
//! The first pair (`tls_cert`, `tls_key`) is the default; `tls_certificates` adds more. A
//! handshake gets the first certificate valid for the name the client asked for (SNI), else
//! the default. [`Certificates::reload`] reads every file again and swaps the whole set in
//! only if every pair loads and matches: a bad new certificate is refused with a message naming
//! its file, and the old set stays. Connections already up keep the certificate they got.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why HTTPS could not be set up: the file at fault and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("tls_cert {path}: {problem}; give a PEM file with the certificate chain")]
    Cert { path: String, problem: String },
    #[error("tls_key {path}: {problem}; give a PEM file with the private key")]
    Key { path: String, problem: String },
    #[error("tls_cert {path} and its key: {error}; check that the key belongs to the certificate")]
    Pair { path: String, error: rustls::Error },
    #[error("TLS setup: {0}; the TLS library refused its own defaults (a bug: report it)")]
    Setup(rustls::Error),
}

/// One certificate chain and its key, as files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The certificates a listener offers, swapped whole by [`Certificates::reload`].
#[derive(Debug)]
pub struct Certificates {
    files: Vec<CertFiles>,
    provider: Arc<CryptoProvider>,
    loaded: RwLock<Arc<Vec<Arc<CertifiedKey>>>>,
}

impl Certificates {
    /// Loads every pair of `files` (the first is the default). Errors name the file.
    pub fn load(files: Vec<CertFiles>) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load_all(&files, &provider)?;
        Ok(Self {
            files,
            provider,
            loaded: RwLock::new(Arc::new(loaded)),
        })
    }

    /// Reads every file again; the new set replaces the old only if all of it loads. Returns
    /// how many certificates are offered now.
    pub fn reload(&self) -> Result<usize, TlsError> {
        let loaded = load_all(&self.files, &self.provider)?;
        let n = loaded.len();
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        Ok(n)
    }

    fn current(&self) -> Arc<Vec<Arc<CertifiedKey>>> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.current();
        let name = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n.to_owned()).ok());
        if let Some(name) = name {
            let valid_for = |key: &CertifiedKey| {
                key.end_entity_cert()
                    .ok()
                    .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                    .is_some_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            };
            if let Some(key) = loaded.iter().find(|k| valid_for(k)) {
                return Some(key.clone());
            }
        }
        loaded.first().cloned()
    }
}

fn load_all(
    files: &[CertFiles],
    provider: &CryptoProvider,
) -> Result<Vec<Arc<CertifiedKey>>, TlsError> {
    files
        .iter()
        .map(|f| load_pair(&f.cert, &f.key, provider).map(Arc::new))
        .collect()
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
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
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        problem: e.to_string(),
    })?;
    CertifiedKey::from_der(certs, key_der, provider).map_err(|error| TlsError::Pair {
        path: cert.display().to_string(),
        error,
    })
}

/// The acceptor for `certificates`.
pub fn acceptor(certificates: Arc<Certificates>) -> Result<TlsAcceptor, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(certificates.provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
