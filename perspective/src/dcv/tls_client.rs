//! TLS client configurations of the HTTP and TLS-ALPN methods (ring is the only provider).
//!
//! Neither method validates a certificate chain unless configured to: RFC 8737 section 3 says
//! the tls-alpn-01 client "MUST NOT" (the certificate is self-signed by design), and the BR do
//! not require it for website change or http-01 over HTTPS. The handshake itself is still
//! verified: the server must prove possession of the key in the certificate it sent.
//!
//! rustls's stock signature helpers parse the certificate with webpki, which refuses the
//! critical acmeIdentifier extension every tls-alpn-01 certificate carries
//! (`UnsupportedCriticalExtension`); so [`NoChainValidation`] takes the public key from
//! x509-parser and verifies the handshake signature against the raw key
//! (ecosystem-notes.md 1.5).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// The ALPN protocol of RFC 8737 section 6.2.
pub const ACME_TLS_ALPN_PROTOCOL: &[u8] = b"acme-tls/1";

/// The provider every configuration here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The tls-alpn-01 client (RFC 8737 section 3): TLS 1.2 or 1.3, ALPN offering only
/// `acme-tls/1`, no chain validation.
pub fn tls_alpn_config() -> Arc<ClientConfig> {
    let mut config = base_config(Arc::new(NoChainValidation::new()));
    config.alpn_protocols = vec![ACME_TLS_ALPN_PROTOCOL.to_vec()];
    Arc::new(config)
}

/// The HTTPS client of website change and of http-01 redirected to HTTPS: certificates are
/// validated against `roots` when given (`web.https_ca_file`), otherwise not at all.
pub fn https_config(roots: Option<Arc<RootCertStore>>) -> Result<Arc<ClientConfig>, rustls::Error> {
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        Some(roots) => WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?,
        None => Arc::new(NoChainValidation::new()),
    };
    Ok(Arc::new(base_config(verifier)))
}

/// An HTTPS client that refuses every server: what HTTPS falls back to when the configured
/// roots cannot be loaded, so that a broken configuration fails closed instead of silently
/// skipping the validation it asked for.
pub fn https_refusing_all() -> Arc<ClientConfig> {
    Arc::new(base_config(Arc::new(RefuseAll(NoChainValidation::new()))))
}

/// Refuses every certificate (see [`https_refusing_all`]).
#[derive(Debug)]
struct RefuseAll(NoChainValidation);

impl ServerCertVerifier for RefuseAll {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate, but still verifies the handshake signature with the key of the
/// certificate presented (so the peer holds that key).
#[derive(Debug)]
pub struct NoChainValidation {
    provider: Arc<CryptoProvider>,
}

impl NoChainValidation {
    /// With the ring provider's signature algorithms.
    pub fn new() -> NoChainValidation {
        NoChainValidation {
            provider: provider(),
        }
    }
}

impl Default for NoChainValidation {
    fn default() -> Self {
        NoChainValidation::new()
    }
}

impl ServerCertVerifier for NoChainValidation {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The certificate must at least parse: its key is needed for the signature checks and
        // its extensions by the tls-alpn-01 check.
        X509Certificate::from_der(end_entity.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let (_, x509) = X509Certificate::from_der(cert.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        let key = &x509.public_key().subject_public_key.data;
        // TLS 1.2 does not bind a scheme to one algorithm (an ECDSA scheme names no curve):
        // try each candidate, as rustls's own helper does.
        let mut candidates = self
            .provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .filter(|(scheme, _)| *scheme == dss.scheme)
            .flat_map(|(_, algorithms)| algorithms.iter());
        if candidates.any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok()) {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature,
            ))
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let (_, x509) = X509Certificate::from_der(cert.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(x509.public_key().raw),
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn base_config(verifier: Arc<dyn ServerCertVerifier>) -> ClientConfig {
    // `with_safe_default_protocol_versions` is TLS 1.2 and 1.3: RFC 8737 section 3 requires
    // at least TLS 1.2. It only fails for a provider without cipher suites, which ring is not.
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}
