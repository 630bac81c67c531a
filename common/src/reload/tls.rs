//! TLS configurations whose certificate, key and CA bundle reload (see [`super`]): each
//! configuration is built once, and what it holds is swapped behind it.
//!
//! - A certificate and its key are one [`CertifiedKey`], built and checked to match before it
//!   is swapped in, and handed out whole by a resolver: a handshake presents the old pair or
//!   the new one, never a mix.
//! - A CA bundle is a verifier, swapped whole; a bundle holding the old and the new CA
//!   accepts either during a rotation.
//! - Session resumption is off on the perspective's mutual-TLS server and on the
//!   coordinator's client: a resumed session skips the certificates, which after a rotation
//!   the new material might refuse. The coordinator holds one connection per perspective, so
//!   full handshakes cost nothing.

use std::path::Path;
use std::sync::Arc;

use rustls::client::VerifierBuilderError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use super::{Built, CertificateInfo, Generation, Material, Reloader, Swap, unix_now};
use crate::config::ConfigError;
use crate::tls::{perspective_codes, perspective_uri};

/// A perspective's server: it presents `cert`/`key` (role `server`) and requires a client
/// certificate issued by a CA of `client_ca` (role `client_ca`); `field` names the
/// configuration in errors.
pub fn mutual_server_config(
    reloader: &mut Reloader,
    field: &'static str,
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<Arc<ServerConfig>, ConfigError> {
    crate::tls::install_crypto_provider();
    let pair = reloader.load(Material::new(
        "server",
        field,
        vec![cert.into(), key.into()],
        key_pair,
    ))?;
    let client_ca = reloader.load(Material::new(
        "client_ca",
        field,
        vec![client_ca.into()],
        client_verifier,
    ))?;
    let mut config = ServerConfig::builder()
        .with_client_cert_verifier(Arc::new(ClientVerifier(client_ca)))
        .with_cert_resolver(Arc::new(Resolver(pair)));
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(with_alpn(config))
}

/// A server without client authentication (the coordinator's API, authenticated by key)
/// presenting `cert`/`key` as `role`.
pub fn server_config(
    reloader: &mut Reloader,
    role: &'static str,
    field: &'static str,
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, ConfigError> {
    crate::tls::install_crypto_provider();
    let pair = reloader.load(Material::new(
        role,
        field,
        vec![cert.into(), key.into()],
        key_pair,
    ))?;
    Ok(with_alpn(
        ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(pair))),
    ))
}

/// The client side of mutual TLS: a certificate and key to present (role `client`) and the
/// CA bundle servers are verified against (role `server_ca`), from which any number of client
/// configurations are made ([`ClientTls::config`]), all following the reloads.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pair: Arc<Swap<CertifiedKey>>,
    server_ca: Arc<Swap<WebPkiServerVerifier>>,
    generation: Generation,
}

impl ClientTls {
    /// Loads `cert`/`key` and the bundle `ca`, and watches them; `field` names the
    /// configuration in errors.
    pub fn load(
        reloader: &mut Reloader,
        field: &'static str,
        cert: &Path,
        key: &Path,
        ca: &Path,
    ) -> Result<ClientTls, ConfigError> {
        crate::tls::install_crypto_provider();
        let generation = Generation::default();
        let moved = generation.clone();
        let pair = reloader.load(
            Material::new("client", field, vec![cert.into(), key.into()], key_pair)
                .on_swap(move || moved.advance()),
        )?;
        let moved = generation.clone();
        let server_ca = reloader.load(
            Material::new("server_ca", field, vec![ca.into()], server_verifier)
                .on_swap(move || moved.advance()),
        )?;
        Ok(ClientTls {
            pair,
            server_ca,
            generation,
        })
    }

    /// A client configuration (ALPN `h2`, `http/1.1`). With `perspective`, the server must
    /// also prove it is that perspective: its certificate carries the URI subjectAltName
    /// [`perspective_uri`] of that code, so that no other perspective's key (nor any
    /// certificate the CA issued for another purpose) can answer in its name.
    pub fn config(&self, perspective: Option<&str>) -> ClientConfig {
        let mut config = ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ServerVerifier {
                ca: self.server_ca.clone(),
                perspective: perspective.map(str::to_owned),
            }))
            .with_client_cert_resolver(Arc::new(Resolver(self.pair.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.resumption = Resumption::disabled();
        config
    }

    /// Moves on each time the certificate, key or bundle is swapped: connections made before
    /// were authenticated with the old material.
    pub fn generation(&self) -> &Generation {
        &self.generation
    }
}

/// A certificate chain (`contents[0]`, PEM, end entity first) and its private key
/// (`contents[1]`, PEM), checked to match and the certificate not to have expired.
pub fn key_pair(contents: &[Vec<u8>]) -> Result<Built<CertifiedKey>, String> {
    let [chain, key] = contents else {
        return Err("a certificate and a key file are needed".to_owned());
    };
    let (chain, certificates) =
        certificates(chain).map_err(|e| format!("the certificate file: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("the private key file: {e}"))?;
    let provider = rustls::crypto::ring::default_provider();
    let pair = CertifiedKey::from_der(chain, key, &provider)
        .and_then(|pair| pair.keys_match().map(|()| pair))
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the certificate".to_owned()
            }
            other => format!("the private key file: {other}"),
        })?;
    // A replacement already expired would fail every handshake: keep the one in use.
    if let Some(leaf) = certificates.first()
        && leaf.not_after <= unix_now()
    {
        return Err(format!("the certificate {} has expired", leaf.describe()));
    }
    Ok(Built {
        value: Arc::new(pair),
        certificates,
    })
}

/// Every certificate of a PEM file, with what the expiry metric needs of each; at least one.
pub fn certificates(
    pem: &[u8],
) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateInfo>), String> {
    let ders = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if ders.is_empty() {
        return Err("no certificate in the file".to_owned());
    }
    let infos = ders
        .iter()
        .enumerate()
        .map(|(i, der)| {
            CertificateInfo::parse(der).map_err(|e| format!("certificate {}: {e}", i + 1))
        })
        .collect::<Result<_, _>>()?;
    Ok((ders, infos))
}

/// The CA bundle of `contents[0]` as a root store.
fn roots(contents: &[Vec<u8>]) -> Result<(Arc<RootCertStore>, Vec<CertificateInfo>), String> {
    let [bundle] = contents else {
        return Err("one CA bundle file is needed".to_owned());
    };
    let (ders, infos) = certificates(bundle).map_err(|e| format!("the CA bundle: {e}"))?;
    let mut roots = RootCertStore::empty();
    for (der, info) in ders.into_iter().zip(&infos) {
        roots
            .add(der)
            .map_err(|e| format!("the CA bundle: {}: {e}", info.subject))?;
    }
    Ok((Arc::new(roots), infos))
}

fn client_verifier(contents: &[Vec<u8>]) -> Result<Built<dyn ClientCertVerifier>, String> {
    verifier(contents, |roots| {
        WebPkiClientVerifier::builder(roots).build()
    })
}

fn server_verifier(contents: &[Vec<u8>]) -> Result<Built<WebPkiServerVerifier>, String> {
    verifier(contents, |roots| {
        WebPkiServerVerifier::builder(roots).build()
    })
}

/// A verifier `build` makes from the CA bundle of `contents[0]`.
fn verifier<V: ?Sized>(
    contents: &[Vec<u8>],
    build: impl FnOnce(Arc<RootCertStore>) -> Result<Arc<V>, VerifierBuilderError>,
) -> Result<Built<V>, String> {
    let (roots, certificates) = roots(contents)?;
    let verifier = build(roots).map_err(|e| format!("the CA bundle: {e}"))?;
    Ok(Built {
        value: verifier,
        certificates,
    })
}

fn with_alpn(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Hands out the pair in use, whole, to each handshake (either side).
#[derive(Debug)]
struct Resolver(Arc<Swap<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get())
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Verifies a client's certificate with the bundle in use.
#[derive(Debug)]
struct ClientVerifier(Arc<Swap<dyn ClientCertVerifier>>);

impl ClientCertVerifier for ClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// None: the names would borrow from a bundle that may be swapped meanwhile. An empty list
    /// tells the client to send the certificate it has (RFC 8446 4.2.4), which the
    /// coordinator, holding one, does anyway.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.get().supported_verify_schemes()
    }
}

/// Verifies a server's certificate as WebPKI does with the bundle in use (chain to a CA, the
/// URL's host, validity), then, towards a perspective, that it names that perspective.
#[derive(Debug)]
struct ServerVerifier {
    ca: Arc<Swap<WebPkiServerVerifier>>,
    perspective: Option<String>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.ca.get().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let Some(code) = &self.perspective else {
            return Ok(verified);
        };
        let named = perspective_codes(end_entity);
        if named.contains(code) {
            Ok(verified)
        } else {
            Err(rustls::Error::General(format!(
                "the certificate does not name perspective {code} ({}; it names {})",
                perspective_uri(code),
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ca.get().supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tls::tests::pki;

    /// The verifier towards `a` accepts a's certificate and refuses b's, though both chain to
    /// the same CA and name the same host.
    #[test]
    fn only_the_expected_perspective_passes_verification() {
        crate::tls::install_crypto_provider();
        let (files, dir) = pki();
        let bundle = std::fs::read(&files.ca).unwrap();
        let verifier = ServerVerifier {
            ca: Arc::new(Swap::new(server_verifier(&[bundle]).unwrap().value)),
            perspective: Some("a".to_owned()),
        };
        let host = ServerName::try_from("localhost").unwrap();
        let cert = |code: &str| {
            let (_, path, _) = files.perspectives.iter().find(|(c, ..)| c == code).unwrap();
            crate::tls::load_certs("c", path).unwrap().remove(0)
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
