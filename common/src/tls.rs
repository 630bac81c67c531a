//! TLS set-up shared by both services: ring as the one crypto provider, PEM loading, and the
//! mutual-TLS configurations between coordinator and perspectives (BR 3.2.2.9: that traffic
//! must be authenticated and encrypted).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::ConfigError;
use crate::reload::Reloader;

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

/// A server that requires a client certificate issued by `client_ca` (perspectives), its
/// material fixed as loaded ([`crate::reload::tls::mutual_server_config`] watches it).
pub fn mutual_server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, ConfigError> {
    crate::reload::tls::mutual_server_config(
        &mut Reloader::unwatched(),
        "tls",
        cert,
        key,
        client_ca,
    )
}

/// A server without client authentication (the coordinator's API, authenticated by key), its
/// material fixed as loaded.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ConfigError> {
    crate::reload::tls::server_config(&mut Reloader::unwatched(), "api", "tls", cert, key)
}

/// A client that presents `cert`/`key` and trusts only `server_ca` (the tools probing
/// perspectives), its material fixed as loaded.
pub fn mutual_client_config(
    cert: &Path,
    key: &Path,
    server_ca: &Path,
) -> Result<ClientConfig, ConfigError> {
    Ok(crate::reload::tls::ClientTls::load(
        &mut Reloader::unwatched(),
        "tls",
        cert,
        key,
        server_ca,
    )?
    .config(None))
}

/// The URI subjectAltName that names a perspective in its certificate:
/// `urn:mpic:perspective:<code>`.
pub fn perspective_uri(code: &str) -> String {
    format!("{PERSPECTIVE_URN_PREFIX}{code}")
}

/// The prefix of [`perspective_uri`].
pub const PERSPECTIVE_URN_PREFIX: &str = "urn:mpic:perspective:";

/// The perspective codes a certificate names by [`perspective_uri`] (none when it does not
/// parse).
pub fn perspective_codes(certificate: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(certificate) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => uri.strip_prefix(PERSPECTIVE_URN_PREFIX),
            _ => None,
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A fresh directory's path (not yet created), `tag` in its name.
    pub(crate) fn fresh_dir(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "mpic-{tag}-{}-{}",
            std::process::id(),
            crate::api::now_ns()
        ))
    }

    /// A development PKI with perspectives `a` and `b`, written to a fresh directory.
    pub(crate) fn pki() -> (crate::devcerts::DevPkiFiles, std::path::PathBuf) {
        let dir = fresh_dir("tls");
        let names = vec!["localhost".to_owned()];
        let files = crate::devcerts::DevPki::generate(&[
            ("a".to_owned(), names.clone()),
            ("b".to_owned(), names),
        ])
        .unwrap()
        .write(&dir)
        .unwrap();
        (files, dir)
    }

    #[test]
    fn a_perspective_certificate_names_its_code() {
        let (files, dir) = pki();
        for (code, cert, _) in &files.perspectives {
            let der = load_certs("c", cert).unwrap();
            assert_eq!(perspective_codes(&der[0]), vec![code.clone()]);
        }
        let coordinator = load_certs("c", &files.coordinator_cert).unwrap();
        assert!(perspective_codes(&coordinator[0]).is_empty());
        assert!(perspective_codes(b"not a certificate").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
