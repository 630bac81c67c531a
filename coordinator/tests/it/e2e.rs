//! End to end: the real `mpic-coordinator` and `mpic-perspective` binaries over mutual TLS,
//! each perspective resolving through its own real `unbound` (never shared), which validates a
//! zone signed with `ldns-signzone` and served by `nsd`.

use std::path::Path;
use std::time::Duration;

use mpic_common::devcerts::DevPkiFiles;
use mpic_tests::fixtures::{DnsWorld, WorldSpec, free_port};
use mpic_tests::process::{Server, mpic_test_zone, reverse_zone, test_tld_zone, workspace_bin};
use serde_json::{Value, json};

use crate::support::{API_KEY, PLACES, SECRET, TempDir, pki};

/// Six perspectives and a coordinator, as processes.
pub struct ProcessFleet {
    pub url: String,
    /// The perspectives, then the coordinator (last).
    pub servers: Vec<Server>,
    _world: DnsWorld,
    _dir: TempDir,
}

pub async fn process_fleet(n: usize) -> ProcessFleet {
    process_fleet_with(n, &[], "").await
}

/// [`process_fleet`] with extra environment variables for every process.
pub async fn process_fleet_with_env(n: usize, env: &[(&str, &str)]) -> ProcessFleet {
    process_fleet_with(n, env, "").await
}

/// [`process_fleet`] with extra environment variables for every process and extra YAML lines
/// in every perspective's configuration.
pub async fn process_fleet_with(
    n: usize,
    env: &[(&str, &str)],
    perspective_yaml: &str,
) -> ProcessFleet {
    mpic_common::tls::install_crypto_provider();
    let world = DnsWorld::start(WorldSpec {
        zones: vec![test_tld_zone(), mpic_test_zone(), reverse_zone()],
        resolvers: n,
    })
    .await
    .unwrap();
    let dir = TempDir::new();
    let files = pki(&dir.0.join("pki"));
    let perspective_bin = workspace_bin("mpic-perspective");
    let mut servers = Vec::new();
    let mut catalogue = String::new();
    for (i, (code, rir, lat, lon)) in PLACES.iter().take(n).enumerate() {
        let (_, cert, key) = files.perspectives.iter().find(|(c, ..)| c == code).unwrap();
        let port = free_port();
        let config = dir.0.join(format!("{code}.yaml"));
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\nperspective: {{code: {code}, rir: {rir}}}\nresolver: {{address: \"{}\"}}\ncaa: {{default_issuer_domains: [ca.example]}}\ntls: {{certificate: {}, private_key: {}, client_ca: {}}}\n{perspective_yaml}",
                world.resolver_addrs()[i],
                cert.display(),
                key.display(),
                files.ca.display()
            ),
        )
        .unwrap();
        let server = Server::start(
            &perspective_bin,
            &["--config", config.to_str().unwrap()],
            env,
            &dir.0.join(format!("{code}.log")),
        );
        server
            .wait_healthy(
                &mtls_client(&files),
                &format!("https://127.0.0.1:{port}/healthz"),
            )
            .await;
        servers.push(server);
        catalogue.push_str(&format!(
            "  - {{code: {code}, name: {code}, rir: {rir}, latitude: {lat}, longitude: {lon}, url: \"https://127.0.0.1:{port}\"}}\n"
        ));
    }
    let keys = dir.0.join("api-keys");
    std::fs::write(&keys, format!("{API_KEY}\n")).unwrap();
    let port = free_port();
    let config = dir.0.join("coordinator.yaml");
    // The binary follows the wall clock: a fleet smaller than the BR minimum of the day
    // (5 from 2026-12-15) is served with warnings rather than refused, so that the calendar
    // cannot fail these tests.
    let policy = if n >= 5 { "enforce" } else { "warn" };
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\napi_keys: {{file: {}}}\nhash_secret: {{env: MPIC_HASH_SECRET}}\ndefault_perspective_count: {n}\npolicy: {policy}\ntimeouts: {{perspective_call_ms: 4000, request_ms: 10000, straggler_grace_ms: 200}}\nperspective_tls: {{certificate: {}, private_key: {}, ca: {}}}\nperspectives:\n{catalogue}",
            keys.display(),
            files.coordinator_cert.display(),
            files.coordinator_key.display(),
            files.ca.display()
        ),
    )
    .unwrap();
    let coordinator = Server::start(
        Path::new(env!("CARGO_BIN_EXE_mpic-coordinator")),
        &["--config", config.to_str().unwrap()],
        &[env, &[("MPIC_HASH_SECRET", SECRET)]].concat(),
        &dir.0.join("coordinator.log"),
    );
    let base = format!("http://127.0.0.1:{port}");
    coordinator
        .wait_healthy(&reqwest::Client::new(), &format!("{base}/readyz"))
        .await;
    servers.push(coordinator);
    ProcessFleet {
        url: format!("{base}/mpic"),
        servers,
        _world: world,
        _dir: dir,
    }
}

pub fn mtls_client(files: &DevPkiFiles) -> reqwest::Client {
    let tls = mpic_common::tls::mutual_client_config(
        &files.coordinator_cert,
        &files.coordinator_key,
        &files.ca,
    )
    .unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

pub async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .post(url)
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn caa_permit_and_deny_through_the_whole_fleet() {
    let fleet = process_fleet(6).await;
    let (status, body) = post(&fleet.url, json!({"check_type": "caa", "domain_or_ip_target": "mpic.test", "trace_identifier": "e2e-1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_valid"], true, "{body}");
    assert_eq!(body["quorum_result"], "6/6");
    for p in body["perspectives"].as_array().unwrap() {
        assert_eq!(p["check_response"]["details"]["ad_flag"], true, "{p}");
        assert_eq!(
            p["check_response"]["details"]["found_at"], "mpic.test",
            "{p}"
        );
    }
    let (status, body) = post(&fleet.url, json!({"domain_or_ip_target": "deny.mpic.test"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_valid"], false, "{body}");
    assert_eq!(body["quorum_result"], "0/6");
    let (_, body) = post(
        &fleet.url,
        json!({"domain_or_ip_target": "bogus.mpic.test"}),
    )
    .await;
    assert_eq!(body["is_valid"], false, "{body}");
    assert_eq!(
        body["mpic_completed"], false,
        "every perspective failed closed: {body}"
    );
    assert_eq!(
        body["perspectives"][0]["check_response"]["errors"][0]["error_type"],
        "mpic_error:caa_checker:dnssec"
    );
}

/// One case per DNS-based method, through coordinator → perspectives → their own Unbound.
#[tokio::test]
async fn every_dns_method_through_the_whole_fleet() {
    let fleet = process_fleet(4).await;
    let hash = "sYAwVrqDtVOuJZvAHurSAYPoEt5fFV_C4bdSOOW-o5Y";
    assert_eq!(
        mpic_perspective::dcv::dns::acme_dns01::account_label("https://ca.example/acct/1"),
        "_55hp4m7ugx3qoywf",
        "the zone's dns-account-01 label"
    );
    let cases = [
        (
            "mpic.test",
            json!({"validation_method": "dns-change", "challenge_value": "dc-value", "dns_record_type": "TXT", "dns_name_prefix": "_dc"}),
        ),
        (
            "mpic.test",
            json!({"validation_method": "acme-dns-01", "key_authorization_hash": hash}),
        ),
        (
            "*.mpic.test",
            json!({"validation_method": "acme-dns-01", "key_authorization_hash": hash}),
        ),
        (
            "mpic.test",
            json!({"validation_method": "dns-account-01", "account_uri": "https://ca.example/acct/1", "key_authorization_hash": hash}),
        ),
        (
            "mpic.test",
            json!({"validation_method": "dns-persistent", "issuer_domain_names": ["ca.example"], "expected_account_uri": "https://ca.example/acct/1"}),
        ),
        (
            "mpic.test",
            json!({"validation_method": "contact-email-txt", "challenge_value": "admin@mpic.test"}),
        ),
        (
            "mpic.test",
            json!({"validation_method": "contact-phone-txt", "challenge_value": "+1 555 0100"}),
        ),
        (
            "contact.mpic.test",
            json!({"validation_method": "contact-email-caa", "challenge_value": "ADMIN@mpic.test"}),
        ),
        (
            "x.contact.mpic.test",
            json!({"validation_method": "contact-phone-caa", "challenge_value": "+1 555 0100"}),
        ),
        (
            "host.mpic.test",
            json!({"validation_method": "ip-address", "challenge_value": "192.0.2.10", "dns_record_type": "A"}),
        ),
        (
            "192.0.2.10",
            json!({"validation_method": "reverse-address-lookup", "challenge_value": "host.mpic.test."}),
        ),
    ];
    for (target, params) in cases {
        let method = params["validation_method"].clone();
        let (status, body) = post(&fleet.url, json!({"check_type": "dcv", "domain_or_ip_target": target, "dcv_check_parameters": params})).await;
        assert_eq!(status, 200, "{method}: {body}");
        assert_eq!(body["is_valid"], true, "{method} {target}: {body}");
        assert_eq!(body["quorum_result"], "4/4", "{method}");
        // The same record with a wrong expectation is not valid.
        let mut wrong = body["dcv_check_parameters"].clone();
        for field in [
            "challenge_value",
            "key_authorization_hash",
            "expected_account_uri",
        ] {
            if wrong.get(field).is_some() {
                wrong[field] = json!("https://wrong.example/x");
            }
        }
        if method == "ip-address" {
            wrong["challenge_value"] = json!("192.0.2.11");
        }
        let (_, body) = post(&fleet.url, json!({"check_type": "dcv", "domain_or_ip_target": target, "dcv_check_parameters": wrong})).await;
        assert_eq!(
            body["is_valid"], false,
            "{method} with a wrong value: {body}"
        );
    }
}

/// The HTTP and TLS-ALPN methods through coordinator → perspectives (each resolving
/// `web.mpic.test` through its own Unbound) → local web and TLS servers.
#[tokio::test]
async fn http_and_tls_alpn_methods_through_the_whole_fleet() {
    use mpic_tests::web::{ChallengeCert, Reply, Routes, TlsAlpnServer, TlsVersions, WebServer};
    mpic_common::tls::install_crypto_provider();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let web = WebServer::start(
        any,
        Routes::new()
            .route("/.well-known/acme-challenge/tok", Reply::ok("tok.thumb\n"))
            .route(
                "/.well-known/pki-validation/wc.txt",
                Reply::ok(format!("{}website-change-value", "x".repeat(300))),
            ),
    )
    .await
    .unwrap();
    let alpn = TlsAlpnServer::start(
        any,
        &ChallengeCert::valid("web.mpic.test", "tok.thumb"),
        &[b"acme-tls/1"],
        TlsVersions::Both,
    )
    .await
    .unwrap();
    let yaml = format!(
        "web: {{danger_allow_loopback_targets: true, danger_http_port: {}, danger_tls_alpn_port: {}}}\n",
        web.addr().port(),
        alpn.addr().port()
    );
    let fleet = process_fleet_with(4, &[], &yaml).await;
    let digest_hex = mpic_tests::web::hex(&mpic_tests::web::key_authorization_digest("tok.thumb"));
    let cases = [
        (
            "web.mpic.test",
            json!({"validation_method": "acme-http-01", "token": "tok", "key_authorization": "tok.thumb"}),
            true,
        ),
        (
            "web.mpic.test",
            json!({"validation_method": "acme-http-01", "token": "tok", "key_authorization": "tok.other"}),
            false,
        ),
        (
            "127.0.0.1",
            json!({"validation_method": "acme-http-01", "token": "tok", "key_authorization": "tok.thumb"}),
            true,
        ),
        (
            "web.mpic.test",
            json!({"validation_method": "website-change", "http_token_path": "wc.txt", "challenge_value": "website-change-value"}),
            true,
        ),
        (
            "web.mpic.test",
            json!({"validation_method": "website-change", "http_token_path": "missing.txt", "challenge_value": "website-change-value"}),
            false,
        ),
        (
            "web.mpic.test",
            json!({"validation_method": "acme-tls-alpn-01", "key_authorization_hash": digest_hex}),
            true,
        ),
        (
            "web.mpic.test",
            json!({"validation_method": "acme-tls-alpn-01", "key_authorization_hash": "00".repeat(32)}),
            false,
        ),
    ];
    for (target, params, valid) in cases {
        let (status, body) = post(&fleet.url, json!({"check_type": "dcv", "domain_or_ip_target": target, "dcv_check_parameters": params})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["is_valid"], valid, "{target} {params}: {body}");
        if valid {
            assert_eq!(body["quorum_result"], "4/4");
            assert_eq!(
                body["perspectives"][0]["check_response"]["details"]["resolved_ip"], "127.0.0.1",
                "{body}"
            );
        }
    }
}
