//! Web peers for the HTTP and TLS-ALPN methods' component tests, on loopback.
//!
//! - [`WebServer`]: an HTTP/1.1 server (plain, or HTTPS with a self-signed rcgen certificate)
//!   answering from a [`Routes`] table by path: bodies, redirects, and misbehaviour on purpose
//!   (answering late, trickling the body, never answering, an endless body, raw bytes). Every
//!   request is recorded ([`WebServer::requests`]).
//! - [`TlsAlpnServer`]: a TLS server that presents a tls-alpn-01 certificate made by rcgen
//!   ([`ChallengeCert`]) through a `ResolvesServerCert` (rustls's `with_single_cert` refuses
//!   the critical acmeIdentifier extension), with configurable ALPN and TLS versions; it
//!   records the SNI and ALPN protocols each client offered.
//! - [`ChallTestSrv`]: Let's Encrypt's `pebble-challtestsrv` (Debian package `pebble`) on free
//!   loopback ports, configured through its management API: an independent peer, written by
//!   others, for the same methods.
//!
//! The servers stop when dropped (their tasks are aborted, the process is killed).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rcgen::{CertificateParams, CustomExtension, DnType, Issuer, KeyPair, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// The ALPN protocol of tls-alpn-01 (RFC 8737 section 6.2).
pub const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// The OID of id-pe-acmeIdentifier (RFC 8737 section 6.1).
pub const ACME_IDENTIFIER_OID: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 31];

/// Largest request head the [`WebServer`] reads.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Most bytes an [`Reply::Endless`] body sends before giving up (bounds the test's traffic).
const ENDLESS_LIMIT: usize = 64 * 1024 * 1024;

/// SHA-256 of a key authorization: the digest tls-alpn-01 and dns-01 carry (RFC 8737 section
/// 3, RFC 8555 section 8.4).
pub fn key_authorization_digest(key_authorization: &str) -> [u8; 32] {
    sha2::Sha256::digest(key_authorization.as_bytes()).into()
}

/// Lowercase hex, the form `acme-tls-alpn-01`'s `key_authorization_hash` takes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// How the [`WebServer`] answers one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A response with a `Content-Length` body.
    Body {
        /// The status.
        status: u16,
        /// The body.
        body: Vec<u8>,
    },
    /// A redirect; `location: None` sends none.
    Redirect {
        /// The status (any, so that refused codes can be tested).
        status: u16,
        /// The `Location` value.
        location: Option<String>,
    },
    /// Waits, then answers.
    Late {
        /// How long.
        delay: Duration,
        /// The answer.
        then: Box<Reply>,
    },
    /// Sends the head at once, then the body one byte per `every`.
    Trickle {
        /// The status.
        status: u16,
        /// The body.
        body: Vec<u8>,
        /// The pause between bytes.
        every: Duration,
    },
    /// Reads the request and never answers (the connection stays open).
    Silent,
    /// A 200 whose body never ends (no length; `prefix`, then filler until the client goes
    /// away or 64 MiB were sent).
    Endless {
        /// The start of the body.
        prefix: Vec<u8>,
    },
    /// These bytes as the whole response, then close.
    Raw(Vec<u8>),
}

impl Reply {
    /// A 200 with this body.
    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::Body {
            status: 200,
            body: body.into(),
        }
    }

    /// A response with this status and body.
    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Body {
            status,
            body: body.into(),
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: impl Into<String>) -> Reply {
        Reply::Redirect {
            status,
            location: Some(location.into()),
        }
    }
}

/// The answers of a [`WebServer`], by request path (query included); anything else is 404.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    by_path: BTreeMap<String, Reply>,
}

impl Routes {
    /// No routes: every request gets 404.
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Answers `path` with `reply` (a later call for the same path replaces it).
    pub fn route(mut self, path: &str, reply: Reply) -> Routes {
        self.by_path.insert(path.to_owned(), reply);
        self
    }

    fn reply(&self, path: &str) -> Reply {
        self.by_path
            .get(path)
            .cloned()
            .unwrap_or_else(|| Reply::status(404, "not found"))
    }
}

/// A request the [`WebServer`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// The headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Where it came from.
    pub peer: SocketAddr,
}

impl SeenRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server on loopback answering from [`Routes`].
#[derive(Debug)]
pub struct WebServer {
    addr: SocketAddr,
    routes: Arc<RwLock<Routes>>,
    requests: Arc<Mutex<Vec<SeenRequest>>>,
    task: JoinHandle<()>,
}

impl WebServer {
    /// Serves plain HTTP on `bind` (e.g. `127.0.0.1:0` or `[::1]:0`).
    pub async fn start(bind: SocketAddr, routes: Routes) -> Result<WebServer> {
        WebServer::start_inner(bind, routes, None).await
    }

    /// Serves HTTPS on `bind` with a self-signed certificate for `names`.
    pub async fn start_tls(bind: SocketAddr, routes: Routes, names: &[&str]) -> Result<WebServer> {
        let key = KeyPair::generate()?;
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        let cert = params.self_signed(&key)?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )?;
        WebServer::start_inner(bind, routes, Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_inner(
        bind: SocketAddr,
        routes: Routes,
        tls: Option<TlsAcceptor>,
    ) -> Result<WebServer> {
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the web server to {bind}"))?;
        let addr = listener.local_addr()?;
        let routes = Arc::new(RwLock::new(routes));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve_http(
            listener,
            tls,
            Arc::clone(&routes),
            Arc::clone(&requests),
        ));
        Ok(WebServer {
            addr,
            routes,
            requests,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the routes.
    pub fn set_routes(&self, routes: Routes) {
        *self.routes.write().unwrap_or_else(PoisonError::into_inner) = routes;
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_http(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: Arc<RwLock<Routes>>,
    requests: Arc<Mutex<Vec<SeenRequest>>>,
) {
    // Connection tasks live in this set, so aborting the server aborts them too.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let routes = Arc::clone(&routes);
        let requests = Arc::clone(&requests);
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                None => answer(stream, peer, &routes, &requests).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        answer(stream, peer, &routes, &requests).await;
                    }
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    routes: &RwLock<Routes>,
    requests: &Mutex<Vec<SeenRequest>>,
) {
    let Some(request) = read_request(&mut stream, peer).await else {
        return;
    };
    let reply = routes
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .reply(&request.path);
    requests
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request);
    let _ = write_reply(&mut stream, reply).await;
    let _ = stream.shutdown().await;
}

async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Option<SeenRequest> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() > MAX_REQUEST_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(SeenRequest {
        method,
        path,
        headers,
        peer,
    })
}

async fn write_reply<S: AsyncWrite + Unpin>(stream: &mut S, reply: Reply) -> std::io::Result<()> {
    let mut reply = reply;
    loop {
        match reply {
            Reply::Late { delay, then } => {
                tokio::time::sleep(delay).await;
                reply = *then;
            }
            Reply::Body { status, body } => {
                let head = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                return stream.write_all(&body).await;
            }
            Reply::Redirect { status, location } => {
                let location = location
                    .map(|l| format!("Location: {l}\r\n"))
                    .unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 {status} Redirect\r\n{location}Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                return stream.write_all(head.as_bytes()).await;
            }
            Reply::Trickle {
                status,
                body,
                every,
            } => {
                let head = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.flush().await?;
                for byte in body {
                    tokio::time::sleep(every).await;
                    stream.write_all(&[byte]).await?;
                    stream.flush().await?;
                }
                return Ok(());
            }
            Reply::Silent => {
                std::future::pending::<()>().await;
            }
            Reply::Endless { prefix } => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                    .await?;
                stream.write_all(&prefix).await?;
                let filler = vec![b'x'; 16 * 1024];
                let mut sent = prefix.len();
                while sent < ENDLESS_LIMIT {
                    stream.write_all(&filler).await?;
                    sent += filler.len();
                }
                return Ok(());
            }
            Reply::Raw(bytes) => return stream.write_all(&bytes).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TLS-ALPN

/// A subjectAltName entry of a [`ChallengeCert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// A dNSName.
    Dns(String),
    /// An iPAddress.
    Ip(IpAddr),
    /// An rfc822Name (a SAN of the wrong type).
    Email(String),
}

/// The acmeIdentifier extension of a [`ChallengeCert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcmeExtension {
    /// Absent.
    Absent,
    /// As RFC 8737 requires: critical, DER OCTET STRING of the digest.
    Critical([u8; 32]),
    /// The right value, but not marked critical.
    NonCritical([u8; 32]),
    /// Any DER value, critical.
    RawCritical(Vec<u8>),
}

/// Who signs a [`ChallengeCert`]. RFC 8737 section 3 has the client construct a self-signed
/// certificate; the other two each break one half of that.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Signer {
    /// Self-signed: the issuer is the subject, and the certificate's own key signs.
    #[default]
    SelfSigned,
    /// The certificate's own key signs, but the issuer is another name (this common name).
    OtherIssuer(String),
    /// The issuer is the subject, but another key signs.
    OtherKey,
}

/// A tls-alpn-01 certificate to present, made by rcgen (self-signed, unless
/// [`ChallengeCert::certified_key_signed`] says otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeCert {
    /// The subjectAltName entries (none: no subjectAltName extension).
    pub sans: Vec<San>,
    /// The acmeIdentifier extension.
    pub acme: AcmeExtension,
    /// The subject common name.
    pub common_name: Option<String>,
}

impl ChallengeCert {
    /// The certificate RFC 8737 section 3 asks for: one dNSName, the critical extension with
    /// SHA-256 of `key_authorization`.
    pub fn valid(name: &str, key_authorization: &str) -> ChallengeCert {
        ChallengeCert {
            sans: vec![San::Dns(name.to_owned())],
            acme: AcmeExtension::Critical(key_authorization_digest(key_authorization)),
            common_name: Some(name.to_owned()),
        }
    }

    /// The same for an IP address (RFC 8738 section 6): one iPAddress SAN.
    pub fn valid_ip(ip: IpAddr, key_authorization: &str) -> ChallengeCert {
        ChallengeCert {
            sans: vec![San::Ip(ip)],
            acme: AcmeExtension::Critical(key_authorization_digest(key_authorization)),
            common_name: None,
        }
    }

    /// `der` presented as the certificate, with a fresh key that matches nothing in it.
    pub fn raw_certified_key(der: Vec<u8>) -> Result<Arc<CertifiedKey>> {
        let key = KeyPair::generate()?;
        let signing = provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            )))?;
        Ok(Arc::new(CertifiedKey::new(vec![der.into()], signing)))
    }

    /// The self-signed certificate and its key, ready for a rustls server.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>> {
        self.certified_key_signed(&Signer::SelfSigned)
    }

    /// The certificate signed as `signer` says, with the certificate's own key for the
    /// server's handshake signature (whoever signed the certificate), ready for a rustls server.
    pub fn certified_key_signed(&self, signer: &Signer) -> Result<Arc<CertifiedKey>> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = &self.common_name {
            params
                .distinguished_name
                .push(DnType::CommonName, cn.as_str());
        }
        params.subject_alt_names = self
            .sans
            .iter()
            .map(|san| {
                Ok(match san {
                    San::Dns(name) => SanType::DnsName(name.as_str().try_into()?),
                    San::Ip(ip) => SanType::IpAddress(*ip),
                    San::Email(e) => SanType::Rfc822Name(e.as_str().try_into()?),
                })
            })
            .collect::<Result<_>>()?;
        match &self.acme {
            AcmeExtension::Absent => {}
            AcmeExtension::Critical(digest) => params
                .custom_extensions
                .push(CustomExtension::new_acme_identifier(digest)),
            AcmeExtension::NonCritical(digest) => {
                let mut value = vec![0x04, 0x20];
                value.extend_from_slice(digest);
                params
                    .custom_extensions
                    .push(CustomExtension::from_oid_content(
                        ACME_IDENTIFIER_OID,
                        value,
                    ));
            }
            AcmeExtension::RawCritical(value) => {
                let mut ext = CustomExtension::from_oid_content(ACME_IDENTIFIER_OID, value.clone());
                ext.set_criticality(true);
                params.custom_extensions.push(ext);
            }
        }
        let cert = match signer {
            Signer::SelfSigned => params.self_signed(&key)?,
            Signer::OtherIssuer(name) => {
                let mut issuer = CertificateParams::default();
                issuer.distinguished_name = rcgen::DistinguishedName::new();
                issuer
                    .distinguished_name
                    .push(DnType::CommonName, name.as_str());
                params.signed_by(&key, &Issuer::new(issuer, &key))?
            }
            Signer::OtherKey => {
                let other = KeyPair::generate()?;
                params.signed_by(&key, &Issuer::from_params(&params, &other))?
            }
        };
        let signing = provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            )))?;
        Ok(Arc::new(CertifiedKey::new(
            vec![cert.der().clone()],
            signing,
        )))
    }
}

/// Which TLS versions a [`TlsAlpnServer`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// 1.2 and 1.3.
    #[default]
    Both,
    /// 1.2 only.
    Tls12,
    /// 1.3 only.
    Tls13,
}

/// What a client offered in its ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenHello {
    /// The SNI, if any.
    pub server_name: Option<String>,
    /// The ALPN protocols offered, if the extension was sent.
    pub alpn: Option<Vec<Vec<u8>>>,
}

/// A TLS server presenting one [`ChallengeCert`].
#[derive(Debug)]
pub struct TlsAlpnServer {
    addr: SocketAddr,
    hellos: Arc<Mutex<Vec<SeenHello>>>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct OneCert {
    key: Arc<CertifiedKey>,
    hellos: Arc<Mutex<Vec<SeenHello>>>,
}

impl ResolvesServerCert for OneCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.hellos
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(SeenHello {
                server_name: hello.server_name().map(str::to_owned),
                alpn: hello
                    .alpn()
                    .map(|protocols| protocols.map(<[u8]>::to_vec).collect()),
            });
        Some(Arc::clone(&self.key))
    }
}

impl TlsAlpnServer {
    /// Serves `cert` on `bind`, negotiating the first of `alpn` the client offers (an empty
    /// list negotiates nothing).
    pub async fn start(
        bind: SocketAddr,
        cert: &ChallengeCert,
        alpn: &[&[u8]],
        versions: TlsVersions,
    ) -> Result<TlsAlpnServer> {
        TlsAlpnServer::start_with_key(bind, cert.certified_key()?, alpn, versions).await
    }

    /// Like [`TlsAlpnServer::start`], presenting any certificate chain and key (for example
    /// bytes that are not a certificate at all).
    pub async fn start_with_key(
        bind: SocketAddr,
        key: Arc<CertifiedKey>,
        alpn: &[&[u8]],
        versions: TlsVersions,
    ) -> Result<TlsAlpnServer> {
        let hellos = Arc::new(Mutex::new(Vec::new()));
        let resolver = OneCert {
            key,
            hellos: Arc::clone(&hellos),
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider());
        let builder = match versions {
            TlsVersions::Both => builder.with_safe_default_protocol_versions()?,
            TlsVersions::Tls12 => builder.with_protocol_versions(&[&rustls::version::TLS12])?,
            TlsVersions::Tls13 => builder.with_protocol_versions(&[&rustls::version::TLS13])?,
        };
        let mut config = builder
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding the TLS-ALPN server to {bind}"))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        // The client hangs up once it has the certificate.
                        let mut sink = [0u8; 256];
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), tls.read(&mut sink)).await;
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(TlsAlpnServer { addr, hellos, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What each client offered, in order.
    pub fn hellos(&self) -> Vec<SeenHello> {
        self.hellos
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for TlsAlpnServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------------------------
// pebble-challtestsrv

/// A `pebble-challtestsrv` process on free loopback ports (ecosystem-notes.md section 3). Its
/// mock DNS answers every A query with 127.0.0.1 and no AAAA, unless told otherwise.
#[derive(Debug)]
pub struct ChallTestSrv {
    child: Child,
    /// Management API.
    pub management: SocketAddr,
    /// Mock DNS (UDP and TCP).
    pub dns: SocketAddr,
    /// HTTP-01 challenge server.
    pub http01: SocketAddr,
    /// HTTPS HTTP-01 challenge server.
    pub https01: SocketAddr,
    /// TLS-ALPN-01 challenge server.
    pub tlsalpn01: SocketAddr,
}

impl ChallTestSrv {
    /// Starts the binary and waits until every listener accepts connections.
    pub async fn start() -> Result<ChallTestSrv> {
        let binary: PathBuf = crate::fixtures::find_binary("pebble-challtestsrv")
            .context("the Debian package `pebble` provides it")?;
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let [management, dns, http01, https01, tlsalpn01] =
            [(); 5].map(|()| crate::fixtures::try_free_port().map(addr));
        let (management, dns, http01, https01, tlsalpn01) =
            (management?, dns?, http01?, https01?, tlsalpn01?);
        let child = Command::new(&binary)
            .args(["-management", &management.to_string()])
            .args(["-dns01", &dns.to_string()])
            .args(["-http01", &http01.to_string()])
            .args(["-https01", &https01.to_string()])
            .args(["-tlsalpn01", &tlsalpn01.to_string()])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let server = ChallTestSrv {
            child,
            management,
            dns,
            http01,
            https01,
            tlsalpn01,
        };
        let started = Instant::now();
        for listener in [management, dns, http01, https01, tlsalpn01] {
            while TcpStream::connect(listener).await.is_err() {
                if started.elapsed() > Duration::from_secs(10) {
                    bail!("pebble-challtestsrv did not listen on {listener} within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(server)
    }

    /// POSTs `body` to the management endpoint `path` (e.g. `/add-http01`); fails unless it
    /// answers 200.
    pub async fn manage(&self, path: &str, body: &serde_json::Value) -> Result<()> {
        let body = body.to_string();
        let mut stream = TcpStream::connect(self.management).await?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.management,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .context("management API timed out")??;
        let status_line = String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        if !status_line.starts_with("HTTP/1.1 200") {
            bail!("pebble-challtestsrv {path}: {status_line}");
        }
        Ok(())
    }

    /// Serves `content` at `/.well-known/acme-challenge/<token>`.
    pub async fn add_http01(&self, token: &str, content: &str) -> Result<()> {
        self.manage(
            "/add-http01",
            &serde_json::json!({"token": token, "content": content}),
        )
        .await
    }

    /// Redirects requests for `path` to `target_url`.
    pub async fn add_redirect(&self, path: &str, target_url: &str) -> Result<()> {
        self.manage(
            "/add-redirect",
            &serde_json::json!({"path": path, "targetURL": target_url}),
        )
        .await
    }

    /// Presents a tls-alpn-01 certificate for `host` made from `key_authorization`.
    pub async fn add_tlsalpn01(&self, host: &str, key_authorization: &str) -> Result<()> {
        self.manage(
            "/add-tlsalpn01",
            &serde_json::json!({"host": host, "content": key_authorization}),
        )
        .await
    }

    /// Answers A queries for `host` with `addresses`.
    pub async fn add_a(&self, host: &str, addresses: &[&str]) -> Result<()> {
        let host = if host.ends_with('.') {
            host.to_owned()
        } else {
            format!("{host}.")
        };
        self.manage(
            "/add-a",
            &serde_json::json!({"host": host, "addresses": addresses}),
        )
        .await
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
