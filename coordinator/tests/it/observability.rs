//! What an operator sees: the OpenAPI document against real responses, `/metrics` after a mix
//! of requests, and `/configz`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::{Value, json};

use mpic_coordinator::policy::PolicyMode;

use crate::support::{API_KEY, Fleet, FleetSpec, Kind, all_real, dns, fleet, get_text};

/// A validator for `#/components/schemas/<name>` of the served OpenAPI document.
pub fn validator(name: &str) -> jsonschema::Validator {
    let doc: Value = serde_json::from_str(mpic_coordinator::service::OPENAPI).unwrap();
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    jsonschema::validator_for(&root).unwrap()
}

pub fn assert_valid(schema: &str, value: &Value) {
    let v = validator(schema);
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema}: {errors:?}\n{value}");
}

#[tokio::test]
async fn real_responses_match_the_openapi_document() {
    let dns = mpic_tests::dns::DnsServer::start(
        mpic_tests::dns::Zone::new()
            .caa("example.com", 0, "issue", "ca.example")
            .caa("deny.example.com", 0, "issue", "other.example")
            .txt("_dc.example.com", &[b"dc-value"])
            .a("com", "192.0.2.9".parse().unwrap()),
    )
    .await
    .unwrap();
    let f = fleet(FleetSpec::new(all_real(6), dns.addr())).await;
    let served: Value = f
        .client
        .get(f.url.replace("/mpic", "/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        served,
        serde_json::from_str::<Value>(mpic_coordinator::service::OPENAPI).unwrap()
    );
    assert_eq!(served["openapi"], "3.1.0");

    let requests = [
        (
            json!({"check_type": "caa", "domain_or_ip_target": "example.com", "trace_identifier": "t"}),
            200,
        ),
        (
            json!({"domain_or_ip_target": "deny.example.com", "caa_check_parameters": {"caa_domains": ["ca.example"], "certificate_type": "s-mime"}}),
            200,
        ),
        (
            json!({"check_type": "dcv", "domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "dns-change", "challenge_value": "dc-value", "dns_record_type": "TXT", "dns_name_prefix": "_dc"}}),
            200,
        ),
        (
            json!({"check_type": "dcv", "domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "acme-http-01", "token": "tok", "key_authorization": "tok.k"}}),
            200,
        ),
        (
            json!({"check_type": "dcv", "domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "acme-tls-alpn-01", "key_authorization_hash": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}),
            200,
        ),
        (
            json!({"check_type": "dcv", "domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "acme-dns-01", "key_authorization_hash": "h", "dns_name_prefix": "_ACME-challenge"}}),
            200,
        ),
        (
            json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"quorum_count": 1}}),
            400,
        ),
        (
            json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"cohort_for_single_attempt": 99}}),
            500,
        ),
    ];
    for (body, want) in requests {
        assert_valid("MpicRequest", &body);
        let (status, answer) = f.post(body.clone()).await;
        assert_eq!(status.as_u16(), want, "{body}: {answer}");
        let schema = match want {
            200 => "MpicResponse",
            400 => "ValidationFailure",
            _ => "ErrorBody",
        };
        assert_valid(schema, &answer);
    }
    // What the document refuses, the service refuses.
    let unknown = json!({"domain_or_ip_target": "example.com", "colour": "red"});
    assert!(!validator("MpicRequest").is_valid(&unknown));
    assert_eq!(f.post(unknown).await.0, StatusCode::BAD_REQUEST);
    let unauthorized: Value = f
        .client
        .post(&f.url)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_valid("ErrorBody", &unauthorized);
}

/// `name{labels} value` lines of the Prometheus text format.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The operations listener's `/metrics`: the text and its samples.
async fn scrape(f: &Fleet) -> (String, BTreeMap<String, f64>) {
    let text = get_text(&f.client, &format!("{}/metrics", f.ops)).await;
    let samples = parse_metrics(&text);
    (text, samples)
}

#[tokio::test]
async fn metrics_move_with_valid_invalid_and_failed_requests() {
    let dns = dns().await;
    let mut kinds = all_real(6);
    kinds[2] = Kind::Fails500;
    let f = fleet(FleetSpec::new(kinds, dns.addr())).await;
    for _ in 0..2 {
        let (status, body) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
        assert_eq!(
            (status, body["is_valid"].clone()),
            (StatusCode::OK, json!(true)),
            "{body}"
        );
    }
    let (_, body) = f
        .post(json!({"domain_or_ip_target": "deny.example.com"}))
        .await;
    assert_eq!(body["is_valid"], false);
    let (status, _) = f.post(json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"quorum_count": 0}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let r = f
        .client
        .post(&f.url)
        .json(&json!({"domain_or_ip_target": "example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let response = f
        .client
        .get(format!("{}/metrics", f.ops))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = response.text().await.unwrap();
    let m = parse_metrics(&text);
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing in\n{text}"));
    assert_eq!(
        get(r#"mpic_requests_total{check_type="caa",method="",verdict="valid",status="200"}"#),
        2.0
    );
    assert_eq!(
        get(r#"mpic_requests_total{check_type="caa",method="",verdict="invalid",status="200"}"#),
        1.0
    );
    assert_eq!(
        get(r#"mpic_requests_total{check_type="caa",method="",verdict="none",status="400"}"#),
        1.0
    );
    assert_eq!(
        get(r#"mpic_requests_total{check_type="",method="",verdict="none",status="401"}"#),
        1.0
    );
    assert_eq!(
        get(r#"mpic_request_duration_seconds_count{check_type="caa"}"#),
        3.0
    );
    assert_eq!(get(r#"mpic_cohort_attempts_total{check_type="caa"}"#), 3.0);
    // The failing perspective (ap-tokyo) answered 500 three times; the others passed or not.
    assert_eq!(
        get(r#"mpic_perspective_calls_total{perspective="ap-tokyo",outcome="failed"}"#),
        3.0
    );
    assert_eq!(
        get(r#"mpic_perspective_calls_total{perspective="us-east",outcome="passed"}"#),
        2.0
    );
    assert_eq!(
        get(r#"mpic_perspective_calls_total{perspective="us-east",outcome="not_passed"}"#),
        1.0
    );
    assert_eq!(
        get(r#"mpic_perspective_call_duration_seconds_count{perspective="eu-west"}"#),
        3.0
    );
    assert_eq!(
        get(r#"mpic_perspective_not_completed_total{perspective="ap-tokyo",reason="exchange"}"#),
        3.0
    );
    assert!(
        !text.contains(r#"mpic_perspective_not_completed_total{perspective="us-east""#),
        "only calls that did not complete are counted"
    );
    assert_eq!(get("mpic_load_shed_total"), 0.0);
    assert_eq!(get("mpic_requests_in_flight"), 0.0);
    assert_eq!(
        get(r#"mpic_quorum_failures_total{check_type="caa"}"#),
        0.0,
        "one failing perspective of six leaves every request decidable"
    );
    assert_eq!(get(r#"mpic_quorum_failures_total{check_type="dcv"}"#), 0.0);
    assert_eq!(get("mpic_shutting_down"), 0.0);
    assert!(get("mpic_start_time_seconds") > 1.7e9);
    assert!(!text.contains("example.com"), "no domain names in labels");
}

/// Under `policy: warn`, a request below the BR minimum is served and counted as a rule
/// warning (the configuration's warning is logged once at start, not per request).
#[tokio::test]
async fn requests_below_the_br_minimum_are_counted_under_warn() {
    let dns = dns().await;
    let mut spec = FleetSpec::new(all_real(2), dns.addr());
    spec.policy = mpic_coordinator::policy::PolicyMode::Warn;
    let f = fleet(spec).await;
    for _ in 0..3 {
        let (status, body) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (text, m) = scrape(&f).await;
    assert_eq!(
        m.get(r#"mpic_rule_warnings_total{rule="minimum-perspectives",method=""}"#),
        Some(&3.0),
        "{text}"
    );
}

/// A request answered with `mpic_completed: false` (too many perspectives did not complete)
/// is counted as a quorum failure.
#[tokio::test]
async fn a_request_without_enough_perspectives_is_a_quorum_failure() {
    let dns = dns().await;
    let mut spec = FleetSpec::new(vec![Kind::Real, Kind::Refuses, Kind::Refuses], dns.addr());
    spec.policy = mpic_coordinator::policy::PolicyMode::Warn;
    let f = fleet(spec).await;
    let (status, body) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mpic_completed"], false, "{body}");
    let (text, m) = scrape(&f).await;
    assert_eq!(
        m.get(r#"mpic_quorum_failures_total{check_type="caa"}"#),
        Some(&1.0),
        "{text}"
    );
    assert_eq!(
        m.get(
            r#"mpic_perspective_not_completed_total{perspective="eu-west",reason="unreachable"}"#
        ),
        Some(&1.0),
        "{text}"
    );
}

#[tokio::test]
async fn configz_shows_the_effective_configuration_without_secrets() {
    let dns = dns().await;
    let f = fleet(FleetSpec::new(all_real(6), dns.addr())).await;
    let text = get_text(&f.client, &format!("{}/configz", f.ops)).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["service"], "mpic-coordinator");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["config"]["default_perspective_count"], 6);
    assert_eq!(v["config"]["perspectives"].as_array().unwrap().len(), 6);
    assert_eq!(v["config"]["perspectives"][0]["rir"], "ARIN");
    assert!(
        !text.contains(API_KEY) && !text.contains(crate::support::SECRET),
        "{text}"
    );
    // Nothing of the deployment's layout: no certificate or key files, no variable names,
    // no perspective addresses.
    for leak in [".crt", ".key", ".pem", "UNUSED", "https://"] {
        assert!(!text.contains(leak), "{leak}: {text}");
    }
    for p in v["config"]["perspectives"].as_array().unwrap() {
        assert!(p.get("url").is_none(), "{p}");
    }
    assert_eq!(v["config"]["perspective_tls"], true);
    assert_eq!(v["config"]["api_keys"], "configured");
}

/// `/metrics` and `/configz` are not public: on the API port they need the API key; on the
/// operations listener they need none; `/readyz` answers from the background probe.
#[tokio::test]
async fn operational_endpoints_need_the_key_on_the_api_port() {
    let dns = dns().await;
    let f = fleet(FleetSpec {
        policy: PolicyMode::Warn,
        ..FleetSpec::new(all_real(3), dns.addr())
    })
    .await;
    let api = f.url.trim_end_matches("/mpic").to_owned();
    for path in ["/metrics", "/configz"] {
        let anonymous = f.client.get(format!("{api}{path}")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path} without a key");
        let keyed = f
            .client
            .get(format!("{api}{path}"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(keyed.status(), 200, "{path} with the key");
        let ops = f
            .client
            .get(format!("{}{path}", f.ops))
            .send()
            .await
            .unwrap();
        assert_eq!(ops.status(), 200, "{path} on the operations listener");
    }
    for base in [&api, &f.ops] {
        let health = f
            .client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{base}/healthz");
    }
    // The first background probe runs at start; readiness follows it.
    for base in [&api, &f.ops] {
        assert_eq!(
            f.readiness(base).await,
            (
                StatusCode::OK,
                json!({"status": "ready", "healthy_perspectives": 3})
            )
        );
    }
    let mpic = f
        .client
        .get(format!("{}/mpic", f.ops))
        .send()
        .await
        .unwrap();
    assert_eq!(mpic.status(), 404, "no checks on the operations listener");
}
