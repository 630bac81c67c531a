//! Service tests: `POST /mpic` through a coordinator and real or faulty perspectives on
//! loopback behind mutual TLS. Expected verdicts come from the BR quorum table and api.md
//! section 3.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{API_KEY, Fleet, FleetSpec, Kind, all_real, dns, fleet, get_text};

fn codes(perspectives: &Value) -> Vec<String> {
    perspectives
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["perspective_code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn valid_and_invalid_caa() {
    let dns = dns().await;
    let f = fleet(FleetSpec::new(all_real(6), dns.addr())).await;
    let timed = f
        .client
        .post(&f.url)
        .bearer_auth(API_KEY)
        .json(&json!({"domain_or_ip_target": "example.com"}))
        .send()
        .await
        .unwrap();
    let timing = timed.headers()["server-timing"]
        .to_str()
        .unwrap()
        .to_owned();
    let durations: Vec<f64> = timing
        .split(", ")
        .map(|m| m.split_once(";dur=").unwrap().1.parse().unwrap())
        .collect();
    assert!(
        timing.starts_with("total;dur=") && durations[0] >= durations[1],
        "{timing}"
    );
    let (status, body) = f.post(json!({"check_type": "caa", "domain_or_ip_target": "example.com", "trace_identifier": "t-1"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_valid"], true, "{body}");
    assert_eq!(body["mpic_completed"], true);
    assert_eq!(body["quorum_result"], "6/6");
    assert_eq!(body["trace_identifier"], "t-1");
    assert_eq!(
        body["actual_orchestration_parameters"],
        json!({"perspective_count": 6, "quorum_count": 4, "attempt_count": 1})
    );
    assert_eq!(
        body["caa_check_parameters"]["certificate_type"],
        "tls-server"
    );
    assert_eq!(body["previous_attempt_results"], Value::Null);
    assert_eq!(body["perspectives"].as_array().unwrap().len(), 6);
    // The reference's shape parses as our type.
    let _: mpic_common::api::MpicResponse = serde_json::from_value(body).unwrap();

    let (status, body) = f
        .post(json!({"domain_or_ip_target": "deny.example.com"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["is_valid"], false, "{body}");
    assert_eq!(body["mpic_completed"], true);
    assert_eq!(body["quorum_result"], "0/6");
    assert_eq!(body["check_type"], "caa", "check_type defaults to caa");
}

#[tokio::test]
async fn an_unimplemented_dcv_method_is_never_valid() {
    let dns = dns().await;
    let f = fleet(FleetSpec::new(all_real(6), dns.addr())).await;
    let (status, body) = f
        .post(json!({"check_type": "dcv", "domain_or_ip_target": "example.com",
            "dcv_check_parameters": {"validation_method": "acme-tls-alpn-01", "key_authorization_hash": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["dcv_check_parameters"]["validation_method"],
        "acme-tls-alpn-01"
    );
    if body["is_valid"] == false {
        assert!(body.get("caa_check_parameters").is_none());
    }
}

#[tokio::test]
async fn faulty_perspectives_are_failed_entries_and_quorum_decides() {
    let dns = dns().await;
    // Real perspectives on ARIN, RIPE NCC, APNIC and one more; faults on the rest.
    let kinds = vec![
        Kind::Real,
        Kind::Real,
        Kind::Real,
        Kind::Refuses,
        Kind::Hangs,
        Kind::Real,
        Kind::Fails500,
        Kind::Garbage,
    ];
    let mut spec = FleetSpec::new(kinds, dns.addr());
    spec.default_perspective_count = 8;
    spec.timeouts.perspective_call_ms = 1_500;
    let f = fleet(spec).await;
    let started = Instant::now();
    let (status, body) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
    assert!(
        started.elapsed() < Duration::from_millis(f.config.timeouts.request_ms),
        "bounded by the request deadline"
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    // n = 8 → quorum 6; only 4 real perspectives pass.
    assert_eq!(body["is_valid"], false, "{body}");
    assert_eq!(body["quorum_result"], "4/8");
    assert_eq!(
        body["mpic_completed"], false,
        "4 failures exceed n − quorum = 2"
    );
    for p in body["perspectives"].as_array().unwrap() {
        let code = p["perspective_code"].as_str().unwrap();
        let r = &p["check_response"];
        let faulty = ["sa-east", "af-south", "eu-central", "ap-sydney"].contains(&code);
        assert_eq!(r["check_passed"], !faulty, "{code}: {r}");
        if faulty {
            assert_eq!(r["check_completed"], false, "{code}");
            assert_eq!(
                r["errors"][0]["error_type"], "mpic_error:coordinator:remote_check",
                "{code}"
            );
            assert!(
                !r["errors"][0]["error_message"].as_str().unwrap().is_empty(),
                "{code}: {r}"
            );
        }
    }

    // With quorum reachable (n = 6 of the 4 real + 2 faulty), the verdict follows the quorum.
    let (status, body) = f.post(json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"perspective_count": 6, "max_attempts": 3}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let attempts: Vec<Value> = std::iter::once(body["perspectives"].clone())
        .chain(
            body["previous_attempt_results"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
        .collect();
    for attempt in &attempts {
        assert_eq!(attempt.as_array().unwrap().len(), 6);
    }
    let passed = body["perspectives"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["check_response"]["check_passed"] == true)
        .count();
    assert_eq!(body["is_valid"], passed >= 4, "{body}");
}

#[tokio::test]
async fn each_fault_kind_is_reported() {
    let dns = dns().await;
    for fault in [
        Kind::Refuses,
        Kind::Hangs,
        Kind::Fails500,
        Kind::Garbage,
        Kind::WrongIdentity,
        Kind::CutsMidReply,
        Kind::ForeignCertificate,
        Kind::OthersCertificate,
        Kind::WrongRir,
    ] {
        let mut kinds = all_real(6);
        kinds[0] = fault;
        let mut spec = FleetSpec::new(kinds, dns.addr());
        spec.timeouts.perspective_call_ms = 1_000;
        spec.timeouts.straggler_grace_ms = 100;
        let f = fleet(spec).await;
        let started = Instant::now();
        let (status, body) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
        assert_eq!(status, StatusCode::OK, "{fault:?}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{fault:?}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            body["is_valid"], true,
            "{fault:?}: 5/6 with quorum 4: {body}"
        );
        assert_eq!(body["quorum_result"], "5/6", "{fault:?}");
        let entry = body["perspectives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["perspective_code"] == "us-east")
            .unwrap();
        let r = &entry["check_response"];
        assert_eq!(
            (r["check_completed"].clone(), r["check_passed"].clone()),
            (json!(false), json!(false)),
            "{fault:?}: {r}"
        );
        assert_eq!(
            r["errors"][0]["error_type"], "mpic_error:coordinator:remote_check",
            "{fault:?}"
        );
        let message = r["errors"][0]["error_message"].as_str().unwrap();
        let expect = match fault {
            Kind::Hangs => "cancelled",
            Kind::Fails500 => "HTTP 500",
            Kind::Garbage => "not a CheckResponse",
            Kind::WrongIdentity => "someone-else",
            Kind::Refuses | Kind::ForeignCertificate => "could not connect",
            // Perspective identity (issue: bound to the certificate, and the RIR reported).
            Kind::OthersCertificate => "the certificate does not name perspective us-east",
            Kind::WrongRir => "the catalogue says ARIN",
            Kind::CutsMidReply => "us-east",
            Kind::Real => unreachable!(),
        };
        assert!(message.contains(expect), "{fault:?}: {message}");
    }
}

#[tokio::test]
async fn retry_succeeds_on_the_second_cohort_and_keeps_the_first() {
    let dns = dns().await;
    // Find which perspectives form cohort 1 of "example.com" (n = 4 over 8), then break them.
    let probe = {
        let mut spec = FleetSpec::new(all_real(8), dns.addr());
        spec.default_perspective_count = 4;
        fleet(spec).await
    };
    let cohorts = probe.cohorts("example.com", 4);
    assert!(cohorts.len() >= 2, "{cohorts:?}");
    let first = cohorts[0].clone();
    drop(probe);
    let kinds: Vec<Kind> = crate::support::PLACES
        .iter()
        .map(|(code, ..)| {
            if first.contains(&(*code).to_owned()) {
                Kind::Fails500
            } else {
                Kind::Real
            }
        })
        .collect();
    let mut spec = FleetSpec::new(kinds, dns.addr());
    spec.default_perspective_count = 4;
    let f = fleet(spec).await;
    assert_eq!(
        f.cohorts("example.com", 4),
        cohorts,
        "same catalogue and secret, same cohorts"
    );

    let (status, body) = f.post(json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"max_attempts": 2}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_valid"], true, "{body}");
    assert_eq!(body["actual_orchestration_parameters"]["attempt_count"], 2);
    assert_eq!(codes(&body["perspectives"]), cohorts[1]);
    let previous = body["previous_attempt_results"].as_array().unwrap();
    assert_eq!(previous.len(), 1);
    assert_eq!(codes(&previous[0]), cohorts[0]);
    assert!(
        previous[0]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["check_response"]["check_passed"] == false)
    );

    // One attempt only: the first cohort fails and nothing is retried.
    let (_, body) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
    assert_eq!(body["is_valid"], false);
    assert_eq!(body["previous_attempt_results"], Value::Null);

    // cohort_for_single_attempt picks exactly that cohort, once.
    let (_, body) = f.post(json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"cohort_for_single_attempt": 2, "max_attempts": 3}})).await;
    assert_eq!(body["is_valid"], true, "{body}");
    assert_eq!(codes(&body["perspectives"]), cohorts[1]);
    assert_eq!(body["actual_orchestration_parameters"]["attempt_count"], 1);
    let (status, body) = f.post(json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"cohort_for_single_attempt": 9}})).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cohort_selection"),
        "{body}"
    );
}

#[tokio::test]
async fn requests_are_validated() {
    let dns = dns().await;
    let f = fleet(FleetSpec::new(all_real(6), dns.addr())).await;
    let cases = [
        (
            json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"quorum_count": 1}}),
            "invalid-quorum-count",
        ),
        (
            json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"perspective_count": 7}}),
            "invalid-perspective-count",
        ),
        (
            json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"perspective_count": 3}}),
            "invalid-perspective-count",
        ),
        (
            json!({"domain_or_ip_target": "example..com"}),
            "invalid-target",
        ),
        (
            json!({"check_type": "dcv", "domain_or_ip_target": "example.com"}),
            "invalid-check-parameters",
        ),
        (
            json!({"check_type": "caa", "domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "acme-dns-01", "key_authorization_hash": "x"}}),
            "invalid-check-parameters",
        ),
        (
            json!({"check_type": "dcv", "domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "website-change", "http_token_path": "a", "challenge_value": ""}}),
            "empty-challenge-value",
        ),
        (
            json!({"check_type": "spf", "domain_or_ip_target": "example.com"}),
            "invalid-field",
        ),
    ];
    for (body, issue) in cases {
        let (status, answer) = f.post(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"], "request-validation-failed");
        let issues: Vec<&str> = answer["validation_issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["issue_type"].as_str().unwrap())
            .collect();
        assert!(issues.contains(&issue), "{body}: {answer}");
    }
}

#[tokio::test]
async fn api_keys_are_required() {
    let dns = dns().await;
    let f = fleet(FleetSpec::new(all_real(6), dns.addr())).await;
    let body = json!({"domain_or_ip_target": "example.com"});
    let none = f.client.post(&f.url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.json::<Value>().await.unwrap(),
        json!({"error": "unauthorized"})
    );
    let wrong = f
        .client
        .post(&f.url)
        .bearer_auth("not-the-key-0123456789")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let bearer = f
        .client
        .post(&f.url)
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let header = f
        .client
        .post(&f.url)
        .header("x-api-key", API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(header.status(), 200);
}

#[tokio::test]
async fn readiness_follows_the_perspectives() {
    let dns = dns().await;
    let f = fleet(FleetSpec::new(all_real(6), dns.addr())).await;
    let base = f.url.trim_end_matches("/mpic").to_owned();
    assert_eq!(
        f.client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(f.readiness(&base).await.0, 200);

    let mut kinds = all_real(6);
    kinds[1] = Kind::Refuses;
    let g = fleet(FleetSpec::new(kinds, dns.addr())).await;
    let base = g.url.trim_end_matches("/mpic").to_owned();
    let (status, body) = g.readiness(&base).await;
    assert_eq!(status, 503, "a default cohort of 6 needs all six: {body}");
    assert_eq!(body["healthy_perspectives"], 5);
}

/// A coordinator with one request slot, held by a request to six perspectives that never
/// answer (it completes after `call_ms`), and the 503 a second request got meanwhile.
async fn only_slot_held(
    call_ms: u64,
) -> (
    mpic_tests::dns::DnsServer,
    Fleet,
    tokio::task::JoinHandle<reqwest::StatusCode>,
    reqwest::Response,
) {
    let dns = dns().await;
    let mut spec = FleetSpec::new(vec![Kind::Hangs; 6], dns.addr());
    spec.max_concurrent_requests = 1;
    spec.timeouts.perspective_call_ms = call_ms;
    let f = fleet(spec).await;
    let slow = {
        let client = f.client.clone();
        let url = f.url.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(API_KEY)
                .json(&json!({"domain_or_ip_target": "example.com"}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Let the first request take the only slot.
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = f
            .client
            .post(&f.url)
            .bearer_auth(API_KEY)
            .json(&json!({"domain_or_ip_target": "example.com"}))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            return (dns, f, slow, r);
        }
    }
    panic!("a second request while the first holds the only slot is shed");
}

/// A shed request's body is read before the 503 goes out, so an HTTP/2 stream ends cleanly
/// instead of being reset while the client's DATA is still on its way (h2 closes a connection
/// after 1,024 resets of its own for such late frames, failing the requests it was serving);
/// a body that never comes delays the 503 by at most a second.
#[tokio::test]
async fn a_shed_request_over_http2_waits_for_its_body_then_ends_cleanly() {
    let (_dns, f, slow, _) = only_slot_held(3_000).await;

    let uri: http::Uri = f.url.parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(uri.authority().unwrap().as_str())
        .await
        .unwrap();
    let (mut h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = || {
        http::Request::post(uri.clone())
            .header("authorization", format!("Bearer {API_KEY}"))
            .header("content-type", "application/json")
            .body(())
            .unwrap()
    };

    // The body comes 300 ms after the headers; the 503 waits for it.
    let (mut response, mut body) = h2.send_request(request(), false).unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut response)
            .await
            .is_err(),
        "answered before the body arrived"
    );
    body.send_data(r#"{"domain_or_ip_target": "example.com"}"#.into(), true)
        .unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let mut answer = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = answer.data().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        json!({"error": "overloaded"})
    );

    // A body that never comes: the 503 goes out after the bounded wait.
    let mut h2 = h2.ready().await.unwrap();
    let started = Instant::now();
    let (response, _body) = h2.send_request(request(), false).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("a 503 within the bounded wait")
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    assert_eq!(slow.await.unwrap(), 200, "the request in flight completes");
}

#[tokio::test]
async fn load_beyond_the_limit_is_shed_not_queued() {
    let (_dns, f, slow, shed) = only_slot_held(1_500).await;
    assert_eq!(shed.headers()["retry-after"], "1");
    assert_eq!(
        shed.json::<Value>().await.unwrap(),
        json!({"error": "overloaded"})
    );
    assert_eq!(
        slow.await.unwrap(),
        200,
        "the request in flight still completes"
    );
    let metrics = get_text(&f.client, &format!("{}/metrics", f.ops)).await;
    assert!(
        metrics.lines().any(|l| l == "mpic_load_shed_total 1"),
        "{metrics}"
    );
}

/// A body that does not arrive within the request's deadline (`timeouts.request_ms`) is
/// answered 408 (RFC 9110 section 15.5.9) and gives its request slot back, so a client that
/// trickles its body cannot hold a slot for as long as it likes.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_and_frees_its_slot() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let dns = dns().await;
    let mut spec = FleetSpec::new(all_real(6), dns.addr());
    spec.max_concurrent_requests = 1;
    spec.timeouts.perspective_call_ms = 500;
    spec.timeouts.request_ms = 1_000;
    let f = fleet(spec).await;

    let uri: http::Uri = f.url.parse().unwrap();
    let mut tcp = tokio::net::TcpStream::connect(uri.authority().unwrap().as_str())
        .await
        .unwrap();
    let started = Instant::now();
    // 41 bytes promised, 21 sent, the rest never.
    tcp.write_all(
        format!(
            "POST /mpic HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {API_KEY}\r\n\
             content-type: application/json\r\ncontent-length: 41\r\n\r\n{{\"domain_or_ip_target",
            uri.authority().unwrap()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // Meanwhile the only slot is held: another request is shed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .expect("answered, and the connection closed")
        .unwrap();
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.ends_with(r#"{"error":"request-timeout"}"#),
        "{answer}"
    );
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "at the deadline: {took:?}"
    );

    // The slot is free again.
    let (status, body) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
