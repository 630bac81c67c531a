//! A fleet on loopback: real perspectives (in-process, each with its own resolver client) or
//! faulty stand-ins, mutual TLS from freshly generated certificates, and a coordinator.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::routing::any;
use mpic_common::config::Rir;
use mpic_common::devcerts::{DevPki, DevPkiFiles};
use mpic_coordinator::config::{
    CoordinatorConfig, PerspectiveEntry, PerspectiveTls, SecretSource, Timeouts,
};
use mpic_coordinator::policy::{PolicyMode, RulesConfig};
use mpic_coordinator::rules::{Clock, Date};
use mpic_coordinator::{Coordinator, Secrets};
use mpic_perspective::Perspective;
use mpic_perspective::config::{
    CaaConfig, Identity, Limits, PerspectiveConfig, ResolverConfig, TlsConfig,
};
use tokio::net::TcpListener;

/// The API key of the test coordinators.
pub const API_KEY: &str = "test-key-0123456789abcdef";
/// The hash secret of the test coordinators.
pub const SECRET: &str = "test-secret-0123456789";

/// The day whose dated BR rules the test coordinators apply unless a test moves their clock,
/// so that no test changes with the calendar: the minimum is 4 remote perspectives,
/// `ip-address` is retired.
pub const TODAY: Date = Date::from_ymd(2026, 12, 4);

/// The test coordinators' clock: [`TODAY`] until a test sets another day.
#[derive(Debug)]
pub struct TestClock(std::sync::atomic::AtomicI64);

impl TestClock {
    pub fn new(day: Date) -> TestClock {
        TestClock(std::sync::atomic::AtomicI64::new(day.days_since_epoch()))
    }

    pub fn set(&self, day: Date) {
        self.0
            .store(day.days_since_epoch(), std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn today(&self) -> Date {
        Date::from_days(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Far-apart places on every RIR.
pub const PLACES: [(&str, Rir, f64, f64); 8] = [
    ("us-east", Rir::Arin, 38.9, -77.4),
    ("eu-west", Rir::RipeNcc, 53.3, -6.3),
    ("ap-tokyo", Rir::Apnic, 35.7, 139.7),
    ("sa-east", Rir::Lacnic, -23.5, -46.6),
    ("af-south", Rir::Afrinic, -33.9, 18.4),
    ("us-west", Rir::Arin, 45.8, -119.7),
    ("eu-central", Rir::RipeNcc, 50.1, 8.7),
    ("ap-sydney", Rir::Apnic, -33.9, 151.2),
];

/// How a test perspective behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The real perspective.
    Real,
    /// Nothing listens on its port.
    Refuses,
    /// Accepts (TLS included) and never answers.
    Hangs,
    /// Answers 500.
    Fails500,
    /// Answers 200 with a body that is not a CheckResponse.
    Garbage,
    /// A real answer, naming another perspective.
    WrongIdentity,
    /// Starts a reply and cuts the connection.
    CutsMidReply,
    /// The real perspective, with a certificate from another CA.
    ForeignCertificate,
    /// The real perspective, with another perspective's certificate from the same CA (valid
    /// for the same host names): it cannot prove it is the one called.
    OthersCertificate,
    /// The real perspective, configured with another RIR than the catalogue's.
    WrongRir,
}

/// Certificates for all of [`PLACES`] in `dir`.
pub fn pki(dir: &Path) -> DevPkiFiles {
    let spec: Vec<(String, Vec<String>)> = PLACES
        .iter()
        .map(|(c, ..)| {
            (
                (*c).to_owned(),
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            )
        })
        .collect();
    DevPki::generate(&spec).unwrap().write(dir).unwrap()
}

/// The certificate and key of perspective `code` in `files`.
pub fn certificate_of(files: &DevPkiFiles, code: &str) -> (PathBuf, PathBuf) {
    let (_, cert, key) = files
        .perspectives
        .iter()
        .find(|(c, ..)| c == code)
        .unwrap()
        .clone();
    (cert, key)
}

/// A running fleet.
pub struct Fleet {
    pub url: String,
    /// Base URL of the operations listener (`http://127.0.0.1:port`).
    pub ops: String,
    pub client: reqwest::Client,
    pub config: CoordinatorConfig,
    /// The coordinator's clock.
    pub clock: std::sync::Arc<TestClock>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

pub use mpic_tests::temp::TempDir;

/// Options of a fleet.
pub struct FleetSpec {
    /// How many of [`PLACES`], and how each behaves.
    pub kinds: Vec<Kind>,
    /// The resolver of every real perspective (each gets its own client).
    pub resolver: SocketAddr,
    pub default_perspective_count: u32,
    pub timeouts: Timeouts,
    pub policy: PolicyMode,
    pub rules: RulesConfig,
    pub max_concurrent_requests: usize,
}

impl FleetSpec {
    pub fn new(kinds: Vec<Kind>, resolver: SocketAddr) -> FleetSpec {
        FleetSpec {
            default_perspective_count: u32::try_from(kinds.len().min(6)).unwrap(),
            kinds,
            resolver,
            timeouts: Timeouts {
                perspective_call_ms: 3_000,
                request_ms: 8_000,
                straggler_grace_ms: 200,
            },
            policy: PolicyMode::Enforce,
            rules: RulesConfig::default(),
            max_concurrent_requests: 2_048,
        }
    }
}

/// Starts the perspectives as `spec.kinds` says, then a coordinator over them.
pub async fn fleet(spec: FleetSpec) -> Fleet {
    mpic_common::tls::install_crypto_provider();
    let dir = TempDir::new();
    let files = pki(&dir.0.join("pki"));
    let foreign = pki(&dir.0.join("foreign"));
    let mut tasks = Vec::new();
    let mut entries = Vec::new();
    for (i, kind) in spec.kinds.iter().enumerate() {
        let (code, rir, lat, lon) = PLACES[i];
        let (cert, key) = certificate_of(&files, code);
        let addr = match kind {
            Kind::Real
            | Kind::ForeignCertificate
            | Kind::WrongIdentity
            | Kind::OthersCertificate
            | Kind::WrongRir => {
                let (cert, key) = match kind {
                    Kind::ForeignCertificate => certificate_of(&foreign, code),
                    Kind::OthersCertificate => {
                        let (_, c, k) = files
                            .perspectives
                            .iter()
                            .find(|(c, ..)| c != code)
                            .unwrap()
                            .clone();
                        (c, k)
                    }
                    _ => (cert, key),
                };
                let rir = if *kind == Kind::WrongRir {
                    mpic_common::config::Rir::ALL
                        .into_iter()
                        .find(|r| *r != rir)
                        .unwrap()
                } else {
                    rir
                };
                let identity = if *kind == Kind::WrongIdentity {
                    "someone-else"
                } else {
                    code
                };
                let config =
                    perspective_config(identity, rir, (cert, key, files.ca.clone()), spec.resolver);
                let p = Perspective::bind(&config).await.unwrap();
                let addr = p.local_addr().unwrap();
                tasks.push(tokio::spawn(async move {
                    let _ = p.serve(std::future::pending()).await;
                }));
                addr
            }
            Kind::Refuses => {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                l.local_addr().unwrap()
            }
            faulty => {
                let tls = mpic_common::tls::mutual_server_config(&cert, &key, &files.ca).unwrap();
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap();
                let router = faulty_router(*faulty, code, rir);
                tasks.push(tokio::spawn(async move {
                    let _ = mpic_common::serve::serve(
                        l,
                        router,
                        Some(tls),
                        mpic_common::serve::ServeOptions::new(
                            "api",
                            mpic_common::serve::ConnectionLimits::default(),
                            mpic_common::serve::Exposure::Authenticated,
                        ),
                        std::future::pending(),
                    )
                    .await;
                }));
                addr
            }
        };
        entries.push(PerspectiveEntry {
            code: code.to_owned(),
            name: code.to_owned(),
            rir,
            latitude: lat,
            longitude: lon,
            url: format!("https://127.0.0.1:{}", addr.port()),
            too_close_codes: Vec::new(),
            rtt_ms: None,
        });
    }
    let config = coordinator_config(entries, &files, &spec);
    let secrets = secrets();
    let clock = std::sync::Arc::new(TestClock::new(TODAY));
    let coordinator = Coordinator::bind_with_clock(&config, secrets, clock.clone())
        .await
        .unwrap();
    let addr = coordinator.local_addr().unwrap();
    let ops = coordinator.ops_addr().unwrap();
    tasks.push(tokio::spawn(async move {
        let _ = coordinator.serve(std::future::pending()).await;
    }));
    Fleet {
        url: format!("http://{addr}/mpic"),
        ops: format!("http://{ops}"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        config,
        clock,
        _tasks: tasks,
        _dir: dir,
    }
}

/// A real perspective's configuration: `identity` (the code it names itself by) in `rir`, its
/// certificate, key and the client CA in `tls`, resolving through `resolver`.
pub fn perspective_config(
    identity: &str,
    rir: Rir,
    tls: (PathBuf, PathBuf, PathBuf),
    resolver: SocketAddr,
) -> PerspectiveConfig {
    let (certificate, private_key, client_ca) = tls;
    PerspectiveConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ops_listen: None,
        connections: Default::default(),
        perspective: Identity {
            code: identity.to_owned(),
            rir,
        },
        resolver: ResolverConfig {
            address: resolver,
            timeout_ms: 1_000,
            retry_ms: None,
        },
        caa: CaaConfig {
            default_issuer_domains: vec!["ca.example".to_owned()],
        },
        limits: Limits::default(),
        tls: Some(TlsConfig {
            certificate,
            private_key,
            client_ca,
        }),
        web: mpic_perspective::config::WebConfig::default(),
        reload: Default::default(),
        shutdown: Default::default(),
        danger_plain_http: false,
    }
}

/// The configuration of a test coordinator over the catalogue `entries`, its client
/// certificate from `files`, its settings from `spec`.
pub fn coordinator_config(
    entries: Vec<PerspectiveEntry>,
    files: &DevPkiFiles,
    spec: &FleetSpec,
) -> CoordinatorConfig {
    CoordinatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ops_listen: Some("127.0.0.1:0".parse().unwrap()),
        connections: Default::default(),
        api_tls: None,
        api_keys: SecretSource {
            env: Some("UNUSED".into()),
            file: None,
        },
        hash_secret: SecretSource {
            env: Some("UNUSED".into()),
            file: None,
        },
        reload: Default::default(),
        default_perspective_count: spec.default_perspective_count,
        max_attempts: 3,
        timeouts: spec.timeouts.clone(),
        policy: spec.policy,
        rules: spec.rules.clone(),
        limits: mpic_coordinator::config::Limits {
            max_concurrent_requests: spec.max_concurrent_requests,
            ..mpic_coordinator::config::Limits::default()
        },
        perspective_tls: Some(PerspectiveTls {
            certificate: files.coordinator_cert.clone(),
            private_key: files.coordinator_key.clone(),
            ca: files.ca.clone(),
        }),
        shutdown: Default::default(),
        danger_plain_http_perspectives: false,
        perspectives: entries,
    }
}

/// The secrets of the test coordinators.
pub fn secrets() -> Secrets {
    Secrets {
        api_keys: vec![API_KEY.to_owned()],
        hash_secret: SECRET.as_bytes().to_vec(),
    }
}

/// The body of `GET url`, whatever its status.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

impl Fleet {
    /// `GET {base}/readyz` once the background probe has run (before it, readiness says
    /// the perspectives have not been probed yet).
    pub async fn readiness(&self, base: &str) -> (StatusCode, serde_json::Value) {
        for _ in 0..100 {
            let r = self
                .client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap();
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            let body: serde_json::Value = r.json().await.unwrap();
            let probed = !body["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not been probed"));
            if probed {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{base}/readyz: no probe within 5 s");
    }

    /// POSTs `body` with the API key; returns status and JSON.
    pub async fn post(&self, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        let r = self
            .client
            .post(&self.url)
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        (status, r.json().await.unwrap())
    }

    /// The cohorts (codes) the coordinator will use for `target` with size `n`.
    pub fn cohorts(&self, target: &str, n: u32) -> Vec<Vec<String>> {
        let members: Vec<_> = self
            .config
            .perspectives
            .iter()
            .map(PerspectiveEntry::member)
            .collect();
        let t = mpic_common::target::Target::parse(target).unwrap();
        let seed = mpic_coordinator::cohort::seed(SECRET.as_bytes(), &t.to_string());
        mpic_coordinator::cohort::cohorts(&members, n as usize, seed)
            .into_iter()
            .map(|c| c.into_iter().map(|i| members[i].code.clone()).collect())
            .collect()
    }
}

/// A perspective that names itself right (code and RIR) and misbehaves as `kind` says.
fn faulty_router(kind: Kind, code: &'static str, rir: mpic_common::config::Rir) -> Router {
    Router::new().fallback(any(move || async move {
        match kind {
            Kind::Hangs => {
                std::future::pending::<()>().await;
                unreachable!()
            }
            Kind::Fails500 => Response::builder()
                .status(500)
                .header("x-mpic-perspective", code)
                .header("x-mpic-perspective-rir", rir.as_str())
                .body(Body::from("{\"error\":\"boom\"}"))
                .unwrap(),
            Kind::Garbage => Response::builder()
                .status(200)
                .header("x-mpic-perspective", code)
                .header("x-mpic-perspective-rir", rir.as_str())
                .body(Body::from("{\"check_passed\": true, \"surprise\": [}"))
                .unwrap(),
            Kind::CutsMidReply => {
                let chunks: Vec<Result<&'static str, std::io::Error>> = vec![
                    Ok("{\"check_type\":\"caa\",\"check_completed\":true,\"check_passed\":tr"),
                    Err(std::io::Error::other("cut")),
                ];
                Response::builder()
                    .status(200)
                    .header("x-mpic-perspective", code)
                    .header("x-mpic-perspective-rir", rir.as_str())
                    .header("content-length", "400")
                    .body(Body::from_stream(futures_util::stream::iter(chunks)))
                    .unwrap()
            }
            _ => unreachable!("not a faulty kind"),
        }
    }))
}

/// Every perspective real.
pub fn all_real(n: usize) -> Vec<Kind> {
    vec![Kind::Real; n]
}

/// Shared resolver state for a test: a kit DNS server with permit and deny names.
pub async fn dns() -> mpic_tests::dns::DnsServer {
    mpic_tests::dns::DnsServer::start(
        mpic_tests::dns::Zone::new()
            .caa("example.com", 0, "issue", "ca.example")
            .caa("deny.example.com", 0, "issue", "other.example")
            .a("com", "192.0.2.9".parse().unwrap()),
    )
    .await
    .unwrap()
}
