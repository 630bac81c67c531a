//! End to end, with the real binaries: while checks run without pause, every certificate, key
//! and CA bundle of a fleet is rotated to a new CA through bundles that hold both CAs, the API
//! keys are rotated and the hash secret changed, all through directories updated as
//! Kubernetes updates a mounted Secret. No check fails; the old API key is refused once
//! removed; a corrupt certificate is refused and the one in use stays; the notAfter metric
//! follows.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mpic_common::devcerts::{DevPki, DevPkiFiles};
use mpic_tests::dns::{DnsServer, Zone};
use mpic_tests::fixtures::free_port;
use mpic_tests::process::{Server, wait_for_metric, workspace_bin};
use mpic_tests::temp::TempDir;
use mpic_tests::tls_probe::probe;
use mpic_tests::volume::SecretVolume;
use serde_json::json;

use crate::support::PLACES;

const OLD_KEY: &str = "reload-old-key-0123456789";
const NEW_KEY: &str = "reload-new-key-0123456789";
/// 2040-01-01 and 2041-01-01, the notAfter of the old and the new certificates.
const OLD_NOT_AFTER: &str = "2208988800";
const NEW_NOT_AFTER: &str = "2240611200";
/// Two perspectives: the fewest that make a cohort (the BR minimum is not the point here).
const N: usize = 2;

/// One generation of certificates: a CA, the coordinator's client certificate, each
/// perspective's and the API's (named `api`), valid until 1 January of `year`.
struct Generation {
    pki: DevPki,
    files: DevPkiFiles,
}

impl Generation {
    fn new(dir: &Path, year: i32) -> Generation {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let spec: Vec<(String, Vec<String>)> = PLACES[..N]
            .iter()
            .map(|(code, ..)| *code)
            .chain(["api"])
            .map(|code| (code.to_owned(), names.clone()))
            .collect();
        let pki = DevPki::generate_until(&spec, year).unwrap();
        let files = pki.write(dir).unwrap();
        Generation { pki, files }
    }

    /// The certificate and key of `code` (a perspective, or `api`).
    fn pair(&self, code: &str) -> (&[u8], &[u8]) {
        let (_, pair) = self
            .pki
            .perspectives
            .iter()
            .find(|(c, _)| c == code)
            .unwrap();
        (pair.cert_pem.as_bytes(), pair.key_pem.as_bytes())
    }

    /// The coordinator's client certificate and key.
    fn coordinator(&self) -> (&[u8], &[u8]) {
        let pair = &self.pki.coordinator;
        (pair.cert_pem.as_bytes(), pair.key_pem.as_bytes())
    }

    fn der(&self, code: &str) -> Vec<u8> {
        mpic_common::reload::tls::certificates(self.pair(code).0)
            .unwrap()
            .0[0]
            .to_vec()
    }

    /// A client presenting the coordinator's certificate of this generation, trusting `ca`.
    fn coordinator_client(&self, ca: &Path) -> rustls::ClientConfig {
        mpic_common::tls::mutual_client_config(
            &self.files.coordinator_cert,
            &self.files.coordinator_key,
            ca,
        )
        .unwrap()
    }
}

/// A client without a certificate trusting the CAs of `pem`.
fn anonymous_client(pem: &str) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in mpic_common::reload::tls::certificates(pem.as_bytes())
        .unwrap()
        .0
    {
        roots.add(cert).unwrap();
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A running fleet whose every secret is a Kubernetes-style volume.
struct Fleet {
    api: SocketAddr,
    coordinator_metrics: String,
    perspectives: Vec<(SocketAddr, String)>,
    perspective_volumes: Vec<SecretVolume>,
    client_volume: SecretVolume,
    api_volume: SecretVolume,
    keys_volume: SecretVolume,
    servers: Vec<Server>,
}

impl Fleet {
    async fn start(dir: &Path, old: &Generation, resolver: SocketAddr) -> Fleet {
        let ca = old.pki.ca_pem.as_bytes();
        let perspective_bin = workspace_bin("mpic-perspective");
        let mut servers = Vec::new();
        let mut perspectives = Vec::new();
        let mut perspective_volumes = Vec::new();
        let mut catalogue = String::new();
        for (code, rir, lat, lon) in &PLACES[..N] {
            let (cert, key) = old.pair(code);
            let volume = SecretVolume::create(
                &dir.join(code),
                &[("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)],
            )
            .unwrap();
            let (port, ops) = (free_port(), free_port());
            let config = dir.join(format!("{code}.yaml"));
            std::fs::write(
                &config,
                format!(
                    "listen: 127.0.0.1:{port}\nops_listen: 127.0.0.1:{ops}\nperspective: {{code: {code}, rir: {rir}}}\nresolver: {{address: \"{resolver}\"}}\ncaa: {{default_issuer_domains: [ca.example]}}\ntls: {{certificate: {}, private_key: {}, client_ca: {}}}\nreload: {{interval_ms: 100}}\n",
                    volume.path("tls.crt").display(),
                    volume.path("tls.key").display(),
                    volume.path("ca.crt").display(),
                ),
            )
            .unwrap();
            let server = Server::start(
                &perspective_bin,
                &["--config", config.to_str().unwrap()],
                &[],
                &dir.join(format!("{code}.log")),
            );
            server
                .wait_healthy(
                    &reqwest::Client::new(),
                    &format!("http://127.0.0.1:{ops}/healthz"),
                )
                .await;
            servers.push(server);
            perspectives.push((
                SocketAddr::from(([127, 0, 0, 1], port)),
                format!("http://127.0.0.1:{ops}/metrics"),
            ));
            perspective_volumes.push(volume);
            catalogue.push_str(&format!(
                "  - {{code: {code}, name: {code}, rir: {rir}, latitude: {lat}, longitude: {lon}, url: \"https://127.0.0.1:{port}\"}}\n"
            ));
        }
        let client_volume = SecretVolume::create(
            &dir.join("coordinator"),
            &[
                ("tls.crt", old.pki.coordinator.cert_pem.as_bytes()),
                ("tls.key", old.pki.coordinator.key_pem.as_bytes()),
                ("ca.crt", ca),
            ],
        )
        .unwrap();
        let (cert, key) = old.pair("api");
        let api_volume =
            SecretVolume::create(&dir.join("api"), &[("tls.crt", cert), ("tls.key", key)]).unwrap();
        let keys_volume = SecretVolume::create(
            &dir.join("keys"),
            &[
                ("api-keys", OLD_KEY.as_bytes()),
                ("hash-secret", b"first-hash-secret-0123456789"),
            ],
        )
        .unwrap();
        let (port, ops) = (free_port(), free_port());
        let config = dir.join("coordinator.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nops_listen: 127.0.0.1:{ops}\napi_tls: {{certificate: {}, private_key: {}}}\napi_keys: {{file: {}}}\nhash_secret: {{file: {}}}\nreload: {{interval_ms: 100}}\ndefault_perspective_count: {N}\npolicy: warn\ntimeouts: {{perspective_call_ms: 4000, request_ms: 10000, straggler_grace_ms: 200}}\nperspective_tls: {{certificate: {}, private_key: {}, ca: {}}}\nperspectives:\n{catalogue}",
                api_volume.path("tls.crt").display(),
                api_volume.path("tls.key").display(),
                keys_volume.path("api-keys").display(),
                keys_volume.path("hash-secret").display(),
                client_volume.path("tls.crt").display(),
                client_volume.path("tls.key").display(),
                client_volume.path("ca.crt").display(),
            ),
        )
        .unwrap();
        let coordinator = Server::start(
            Path::new(env!("CARGO_BIN_EXE_mpic-coordinator")),
            &["--config", config.to_str().unwrap()],
            &[],
            &dir.join("coordinator.log"),
        );
        coordinator
            .wait_healthy(
                &reqwest::Client::new(),
                &format!("http://127.0.0.1:{ops}/readyz"),
            )
            .await;
        servers.push(coordinator);
        Fleet {
            api: SocketAddr::from(([127, 0, 0, 1], port)),
            coordinator_metrics: format!("http://127.0.0.1:{ops}/metrics"),
            perspectives,
            perspective_volumes,
            client_volume,
            api_volume,
            keys_volume,
            servers,
        }
    }

    /// Waits until the coordinator's reload counter (`applied` or `refused`) of `role` reads
    /// `value`; returns its metrics.
    async fn wait_coordinator(&self, counter: &str, role: &str, value: u64) -> String {
        let series = format!("mpic_tls_reload_{counter}_total{{role=\"{role}\"}}");
        wait_for_metric(&self.coordinator_metrics, &series, value).await
    }

    /// [`Fleet::wait_coordinator`] for every perspective.
    async fn wait_perspectives(&self, counter: &str, role: &str, value: u64) {
        let series = format!("mpic_tls_reload_{counter}_total{{role=\"{role}\"}}");
        for (_, metrics) in &self.perspectives {
            wait_for_metric(metrics, &series, value).await;
        }
    }

    fn coordinator_log(&self) -> String {
        self.servers.last().unwrap().log()
    }
}

/// Checks run in a loop until `stop`; each must be valid with every perspective passing.
struct Load {
    stop: Arc<AtomicBool>,
    /// Whether the checks present the new API key.
    new_key: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(api: SocketAddr, trust: &str) -> Load {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(anonymous_client(trust))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let new_key = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let workers = (0..2)
            .map(|_| {
                let (client, stop, new_key) = (client.clone(), stop.clone(), new_key.clone());
                let (done, failures) = (done.clone(), failures.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let key = if new_key.load(Ordering::Relaxed) {
                            NEW_KEY
                        } else {
                            OLD_KEY
                        };
                        let outcome = check(&client, api, key).await;
                        match outcome {
                            Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                failures.lock().unwrap().push(e);
                                0
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            new_key,
            done,
            failures,
            workers,
        }
    }

    /// Stops the checks; how many succeeded, and what failed.
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.done.load(Ordering::Relaxed), failures)
    }
}

/// One CAA check through the API: valid, with both perspectives passing.
async fn check(client: &reqwest::Client, api: SocketAddr, key: &str) -> Result<(), String> {
    let response = client
        .post(format!("https://{api}/mpic"))
        .bearer_auth(key)
        .json(&json!({"check_type": "caa", "domain_or_ip_target": "example.com"}))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if status == 200 && body["is_valid"] == true && body["quorum_result"] == "2/2" {
        Ok(())
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// `tls.crt`, `tls.key` and `ca.crt` of a perspective or the coordinator's client.
fn secret<'a>(pair: (&'a [u8], &'a [u8]), ca: &'a str) -> [(&'a str, &'a [u8]); 3] {
    [
        ("tls.crt", pair.0),
        ("tls.key", pair.1),
        ("ca.crt", ca.as_bytes()),
    ]
}

#[tokio::test]
async fn every_certificate_key_ca_and_api_key_rotates_while_checks_run() {
    mpic_common::tls::install_crypto_provider();
    let dir = TempDir::new();
    let old = Generation::new(&dir.0.join("old"), 2040);
    let new = Generation::new(&dir.0.join("new"), 2041);
    let both = format!("{}{}", old.pki.ca_pem, new.pki.ca_pem);
    let resolver = DnsServer::start(Zone::new().caa("example.com", 0, "issue", "ca.example"))
        .await
        .unwrap();
    let mut fleet = Fleet::start(&dir.0.join("secrets"), &old, resolver.addr()).await;
    let load = Load::start(fleet.api, &both);

    // 1. Every CA bundle holds both CAs.
    for (volume, (code, ..)) in fleet.perspective_volumes.iter_mut().zip(&PLACES) {
        volume.update(&secret(old.pair(code), &both)).unwrap();
    }
    fleet
        .client_volume
        .update(&secret(old.coordinator(), &both))
        .unwrap();
    fleet.wait_perspectives("applied", "client_ca", 1).await;
    fleet.wait_coordinator("applied", "server_ca", 1).await;

    // 2. Every certificate and key from the new CA; the new API key beside the old one; a new
    //    hash secret.
    for (volume, (code, ..)) in fleet.perspective_volumes.iter_mut().zip(&PLACES) {
        volume.update(&secret(new.pair(code), &both)).unwrap();
    }
    fleet
        .client_volume
        .update(&secret(new.coordinator(), &both))
        .unwrap();
    let (cert, key) = new.pair("api");
    fleet
        .api_volume
        .update(&[("tls.crt", cert), ("tls.key", key)])
        .unwrap();
    let keys = format!("{OLD_KEY}\n{NEW_KEY}\n");
    fleet
        .keys_volume
        .update(&[
            ("api-keys", keys.as_bytes()),
            ("hash-secret", b"second-hash-secret-0123456789"),
        ])
        .unwrap();
    fleet.wait_perspectives("applied", "server", 1).await;
    for role in ["client", "api", "api_keys", "hash_secret"] {
        fleet.wait_coordinator("applied", role, 1).await;
    }
    load.new_key.store(true, Ordering::Relaxed);

    // 3. The old CA leaves every bundle, the old key the key file.
    for (volume, (code, ..)) in fleet.perspective_volumes.iter_mut().zip(&PLACES) {
        volume
            .update(&secret(new.pair(code), &new.pki.ca_pem))
            .unwrap();
    }
    fleet
        .client_volume
        .update(&secret(new.coordinator(), &new.pki.ca_pem))
        .unwrap();
    fleet
        .keys_volume
        .update(&[
            ("api-keys", NEW_KEY.as_bytes()),
            ("hash-secret", b"second-hash-secret-0123456789"),
        ])
        .unwrap();
    fleet.wait_perspectives("applied", "client_ca", 2).await;
    fleet.wait_coordinator("applied", "server_ca", 2).await;
    fleet.wait_coordinator("applied", "api_keys", 2).await;
    // Checks on connections dialled with the new material only.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (done, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {} checks failed: {failures:#?}",
        failures.len(),
        done + failures.len()
    );
    assert!(done >= 10, "only {done} checks ran");

    // The old API key is refused, the new one accepted.
    let api_client = reqwest::Client::builder()
        .tls_backend_preconfigured(anonymous_client(&new.pki.ca_pem))
        .build()
        .unwrap();
    let api = fleet.api;
    let status = |key: &'static str| {
        let api_client = api_client.clone();
        async move {
            api_client
                .post(format!("https://{api}/mpic"))
                .bearer_auth(key)
                .json(&json!({"domain_or_ip_target": "example.com"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(OLD_KEY).await, 401);
    assert_eq!(status(NEW_KEY).await, 200);

    // Every server presents its new certificate; the old CA's clients are refused.
    let api = probe(fleet.api, anonymous_client(&new.pki.ca_pem), "/healthz").await;
    assert_eq!(api.map(|p| p.certificate), Ok(new.der("api")));
    for ((addr, _), (code, ..)) in fleet.perspectives.iter().zip(&PLACES) {
        let probed = probe(*addr, new.coordinator_client(&new.files.ca), "/healthz").await;
        assert_eq!(probed.map(|p| p.certificate), Ok(new.der(code)), "{code}");
        let old_client = probe(*addr, old.coordinator_client(&new.files.ca), "/healthz").await;
        assert!(old_client.is_err(), "{code}: {old_client:?}");
    }
    let log = fleet.coordinator_log();
    assert!(
        log.contains("retiring a connection to a perspective"),
        "connections dialled with the old material are retired: {log}"
    );
    assert!(log.contains("the hash secret changed"), "{log}");

    // The notAfter metric follows: the new certificates' only.
    let metrics = fleet.wait_coordinator("refused", "client", 0).await;
    for role in ["client", "api", "server_ca"] {
        let series: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!(
                    "mpic_tls_certificate_not_after_seconds{{role=\"{role}\""
                ))
            })
            .collect();
        assert!(
            !series.is_empty() && series.iter().all(|l| l.ends_with(NEW_NOT_AFTER)),
            "{role}: {series:?}"
        );
    }
    assert!(!metrics.contains(OLD_NOT_AFTER), "{metrics}");

    // A corrupt certificate is refused; the one in use stays, and checks still pass.
    let corrupt = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let (_, key) = new.pair(PLACES[0].0);
    fleet.perspective_volumes[0]
        .update(&secret((corrupt, key), &new.pki.ca_pem))
        .unwrap();
    wait_for_metric(
        &fleet.perspectives[0].1,
        r#"mpic_tls_reload_refused_total{role="server"}"#,
        1,
    )
    .await;
    let probed = probe(
        fleet.perspectives[0].0,
        new.coordinator_client(&new.files.ca),
        "/healthz",
    )
    .await;
    assert_eq!(probed.map(|p| p.certificate), Ok(new.der(PLACES[0].0)));
    let log = fleet.servers[0].log();
    assert!(log.contains("reload refused"), "{log}");
    assert_eq!(check(&api_client, fleet.api, NEW_KEY).await, Ok(()));
}
