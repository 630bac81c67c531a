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
/// perspectives, the tools probing them).
pub fn mutual_client_config(
    cert: &Path,
    key: &Path,
    server_ca: &Path,
) -> Result<ClientConfig, ConfigError> {
    client_config(cert, key, server_ca, None)
}

/// [`mutual_client_config`] towards the one perspective `code`: the server must also prove it
/// is that perspective, its certificate carrying the URI subjectAltName [`perspective_uri`]
/// of that code, so that no other perspective's key (nor any certificate the CA issued for
/// another purpose) can answer in its name.
pub fn perspective_client_config(
    cert: &Path,
    key: &Path,
    server_ca: &Path,
    code: &str,
) -> Result<ClientConfig, ConfigError> {
    client_config(cert, key, server_ca, Some(code))
}

fn client_config(
    cert: &Path,
    key: &Path,
    server_ca: &Path,
    perspective: Option<&str>,
) -> Result<ClientConfig, ConfigError> {
    install_crypto_provider();
    let roots = Arc::new(load_roots("tls.ca", server_ca)?);
    let chain = load_certs("tls.certificate", cert)?;
    let key = load_key("tls.private_key", key)?;
    let builder = ClientConfig::builder();
    let mut config = match perspective {
        None => builder
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key),
        Some(code) => {
            let inner = rustls::client::WebPkiServerVerifier::builder(roots)
                .build()
                .map_err(|e| ConfigError::field("tls.ca", e))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PerspectiveVerifier {
                    inner,
                    code: code.to_owned(),
                }))
                .with_client_auth_cert(chain, key)
        }
    }
    .map_err(|e| ConfigError::field("tls.private_key", e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
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

/// Verifies a perspective's certificate as WebPKI does (chain to the CA, the URL's host,
/// validity), then that it names the expected perspective.
#[derive(Debug)]
struct PerspectiveVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    code: String,
}

impl rustls::client::danger::ServerCertVerifier for PerspectiveVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let named = perspective_codes(end_entity);
        if named.contains(&self.code) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(format!(
                "the certificate does not name perspective {} ({}; it names {})",
                self.code,
                perspective_uri(&self.code),
                if named.is_empty() {
                    "no perspective".to_owned()
                } else {
                    named.join(", ")
                }
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls::pki_types::{ServerName, UnixTime};

    /// A development PKI with perspectives `a` and `b`, written to a fresh directory.
    fn pki() -> (crate::devcerts::DevPkiFiles, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "mpic-tls-{}-{}",
            std::process::id(),
            crate::api::now_ns()
        ));
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

    /// The verifier towards `a` accepts a's certificate and refuses b's, though both chain to
    /// the same CA and name the same host.
    #[test]
    fn only_the_expected_perspective_passes_verification() {
        install_crypto_provider();
        let (files, dir) = pki();
        let roots = Arc::new(load_roots("ca", &files.ca).unwrap());
        let verifier = PerspectiveVerifier {
            inner: rustls::client::WebPkiServerVerifier::builder(roots)
                .build()
                .unwrap(),
            code: "a".to_owned(),
        };
        let host = ServerName::try_from("localhost").unwrap();
        let cert = |code: &str| {
            let (_, path, _) = files.perspectives.iter().find(|(c, ..)| c == code).unwrap();
            load_certs("c", path).unwrap().remove(0)
        };
        let a = verifier.verify_server_cert(&cert("a"), &[], &host, &[], UnixTime::now());
        assert!(a.is_ok(), "{a:?}");
        let b = verifier.verify_server_cert(&cert("b"), &[], &host, &[], UnixTime::now());
        let message = b.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("does not name perspective a") && message.contains("it names b"),
            "{message}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
