//! End to end: the real `mpic-perspective` binary, mutual TLS, resolving through a real
//! `unbound` that validates a locally signed zone served by a real NSD.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mpic_common::api::{CheckDetails, CheckResponse, error_type};
use mpic_common::devcerts::{DevPki, DevPkiFiles};
use mpic_tests::fixtures::{DnsWorld, WorldSpec, free_port};
use mpic_tests::process::{Server, mpic_test_zone, test_tld_zone};
use serde_json::json;

/// A running perspective process; killed on drop.
pub struct RunningPerspective {
    _server: Server,
    pub url: String,
}

/// Starts `mpic-perspective` with mutual TLS from `files`, resolving through `resolver`.
pub async fn start_perspective(
    dir: &Path,
    code: &str,
    resolver: std::net::SocketAddr,
    files: &DevPkiFiles,
) -> RunningPerspective {
    let (_, cert, key) = files
        .perspectives
        .iter()
        .find(|(c, _, _)| c == code)
        .unwrap();
    let port = free_port();
    let config = format!(
        "listen: 127.0.0.1:{port}\nperspective: {{code: {code}, rir: ARIN}}\nresolver: {{address: \"{resolver}\", timeout_ms: 2000}}\ncaa: {{default_issuer_domains: [ca.example]}}\ntls: {{certificate: {}, private_key: {}, client_ca: {}}}\n",
        cert.display(),
        key.display(),
        files.ca.display()
    );
    let path = dir.join(format!("{code}.yaml"));
    std::fs::write(&path, config).unwrap();
    let server = Server::start(
        Path::new(env!("CARGO_BIN_EXE_mpic-perspective")),
        &["--config", path.to_str().unwrap()],
        &[],
        &dir.join(format!("{code}.log")),
    );
    let url = format!("https://127.0.0.1:{port}");
    server
        .wait_healthy(&client(files), &format!("{url}/healthz"))
        .await;
    RunningPerspective {
        _server: server,
        url,
    }
}

/// A client holding the coordinator's certificate.
pub fn client(files: &DevPkiFiles) -> reqwest::Client {
    let tls = mpic_common::tls::mutual_client_config(
        &files.coordinator_cert,
        &files.coordinator_key,
        &files.ca,
    )
    .unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn pki_in(dir: &Path, codes: &[&str]) -> DevPkiFiles {
    let spec: Vec<(String, Vec<String>)> = codes
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            )
        })
        .collect();
    DevPki::generate(&spec).unwrap().write(dir).unwrap()
}

async fn caa(client: &reqwest::Client, url: &str, target: &str) -> CheckResponse {
    let response = client
        .post(format!("{url}/caa"))
        .json(&json!({"domain_or_ip_target": target, "trace_identifier": "e2e"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{target}");
    assert_eq!(response.headers()["x-mpic-perspective"], "p-e2e");
    response.json().await.unwrap()
}

#[tokio::test]
async fn caa_through_a_real_unbound_over_mutual_tls() {
    let world = DnsWorld::start(WorldSpec {
        zones: vec![test_tld_zone(), mpic_test_zone()],
        resolvers: 1,
    })
    .await
    .unwrap();
    let dir: PathBuf = world.dir().to_owned();
    let files = pki_in(&dir.join("pki"), &["p-e2e"]);
    let p = start_perspective(&dir, "p-e2e", world.resolver_addrs()[0], &files).await;
    let client = client(&files);

    struct Case {
        name: &'static str,
        target: &'static str,
        passed: bool,
        found_at: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "permit",
            target: "mpic.test",
            passed: true,
            found_at: Some("mpic.test"),
        },
        Case {
            name: "climb to permit",
            target: "nx.host.mpic.test",
            passed: true,
            found_at: Some("mpic.test"),
        },
        Case {
            name: "deny",
            target: "deny.mpic.test",
            passed: false,
            found_at: Some("deny.mpic.test"),
        },
        Case {
            name: "wildcard denied by issuewild",
            target: "*.wild.mpic.test",
            passed: false,
            found_at: Some("wild.mpic.test"),
        },
        Case {
            name: "non-wildcard allowed by issue",
            target: "wild.mpic.test",
            passed: true,
            found_at: Some("wild.mpic.test"),
        },
        Case {
            name: "CNAME to a permitting name",
            target: "www.mpic.test",
            passed: true,
            found_at: Some("www.mpic.test"),
        },
        Case {
            name: "CNAME to a denying name",
            target: "alias.mpic.test",
            passed: false,
            found_at: Some("alias.mpic.test"),
        },
    ];
    for c in cases {
        let r = caa(&client, &p.url, c.target).await;
        assert!(r.check_completed, "{}: {r:?}", c.name);
        assert_eq!(r.check_passed, c.passed, "{}: {r:?}", c.name);
        let CheckDetails::Caa(d) = &r.details else {
            panic!("{}: {r:?}", c.name)
        };
        assert_eq!(d.found_at.as_deref(), c.found_at, "{}", c.name);
        assert_eq!(
            d.ad_flag,
            Some(true),
            "{}: signed zone answers are validated",
            c.name
        );
    }

    // A broken signature fails closed with a DNSSEC error naming the cause.
    let r = caa(&client, &p.url, "bogus.mpic.test").await;
    assert!(!r.check_completed && !r.check_passed, "{r:?}");
    let errors = r.errors;
    assert_eq!(errors[0].error_type, error_type::CAA_DNSSEC);
    assert!(
        errors[0].error_message.contains("DNSSEC Bogus"),
        "{}",
        errors[0].error_message
    );
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_trusted_certificate() {
    let world = DnsWorld::start(WorldSpec {
        zones: vec![test_tld_zone(), mpic_test_zone()],
        resolvers: 1,
    })
    .await
    .unwrap();
    let dir: PathBuf = world.dir().to_owned();
    let files = pki_in(&dir.join("pki"), &["p-e2e"]);
    let other = pki_in(&dir.join("other-pki"), &["p-e2e"]);
    let p = start_perspective(&dir, "p-e2e", world.resolver_addrs()[0], &files).await;

    // No client certificate: the handshake is refused.
    mpic_common::tls::install_crypto_provider();
    let roots = mpic_common::tls::load_roots("ca", &files.ca).unwrap();
    let anonymous = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let anonymous = reqwest::Client::builder()
        .tls_backend_preconfigured(anonymous)
        .build()
        .unwrap();
    let refused = anonymous
        .post(format!("{}/caa", p.url))
        .json(&json!({"domain_or_ip_target": "mpic.test"}))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // A client certificate from another CA: refused too.
    let mut foreign = other.clone();
    foreign.ca = files.ca.clone();
    let refused = client(&foreign)
        .post(format!("{}/caa", p.url))
        .json(&json!({"domain_or_ip_target": "mpic.test"}))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // The right certificate is served.
    let ok = caa(&client(&files), &p.url, "mpic.test").await;
    assert!(ok.check_passed);
}
