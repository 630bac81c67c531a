//! TLS set-up shared by both services: ring as the one crypto provider, PEM loading, and the
//! mutual-TLS configurations between coordinator and perspectives (BR 3.2.2.9: that traffic
//! must be authenticated and encrypted).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::ConfigError;

/// Installs ring as the process-wide rustls provider (once; later calls are no-ops).
pub fn install_crypto_provider() {
    // An Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// All certificates of a PEM file.
pub fn load_certs(field: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigError::field(field, format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::field(field, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::field(
            field,
            format!("{}: no certificate in the file", path.display()),
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn load_key(field: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| ConfigError::field(field, format!("{}: {e}", path.display())))
}

/// A root store holding the certificates of a PEM file.
pub fn load_roots(field: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(field, path)? {
        roots
            .add(cert)
            .map_err(|e| ConfigError::field(field, format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// A server that requires a client certificate issued by `client_ca` (perspectives).
pub fn mutual_server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, ConfigError> {
    install_crypto_provider();
    let roots = Arc::new(load_roots("tls.client_ca", client_ca)?);
    let verifier = WebPkiClientVerifier::builder(roots)
        .build()
        .map_err(|e| ConfigError::field("tls.client_ca", e))?;
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            load_certs("tls.certificate", cert)?,
            load_key("tls.private_key", key)?,
        )
        .map_err(|e| ConfigError::field("tls.private_key", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A server without client authentication (the coordinator's API, authenticated by key).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ConfigError> {
    install_crypto_provider();
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            load_certs("tls.certificate", cert)?,
            load_key("tls.private_key", key)?,
        )
        .map_err(|e| ConfigError::field("tls.private_key", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config.into())
}

/// A client that presents `cert`/`key` and trusts only `server_ca` (the coordinator calling
/// perspectives).
pub fn mutual_client_config(
    cert: &Path,
    key: &Path,
    server_ca: &Path,
) -> Result<ClientConfig, ConfigError> {
    install_crypto_provider();
    let roots = load_roots("tls.ca", server_ca)?;
    let mut config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            load_certs("tls.certificate", cert)?,
            load_key("tls.private_key", key)?,
        )
        .map_err(|e| ConfigError::field("tls.private_key", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
