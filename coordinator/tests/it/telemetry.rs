//! Traces and logs across real processes: an in-process OTLP/HTTP receiver collects the spans
//! of one `POST /mpic` from the coordinator and the perspectives; the coordinator's JSON log
//! carries the BR 5.4.1 audit event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};

use crate::e2e::{post, process_fleet, process_fleet_with_env};

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: BTreeMap<String, String>,
}

type Received = Arc<Mutex<Vec<Span>>>;

async fn receive(State(spans): State<Received>, body: Bytes) -> &'static str {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return "";
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    };
    let mut out = spans.lock().unwrap();
    for rs in request.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(&a.value))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Span {
                    service: service.clone(),
                    name: s.name.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    attributes: s
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(&a.value)))
                        .collect(),
                });
            }
        }
    }
    ""
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_coordinator_and_perspectives() {
    let spans: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/v1/traces", routing::post(receive))
        .with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let fleet = process_fleet_with_env(
        4,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    // The CA backend's own trace.
    let incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming_span = "00f067aa0ba902b7";
    let response = reqwest::Client::new()
        .post(&fleet.url)
        .bearer_auth(crate::support::API_KEY)
        .header(
            "traceparent",
            format!("00-{incoming_trace}-{incoming_span}-01"),
        )
        .json(&json!({"domain_or_ip_target": "mpic.test", "trace_identifier": "trace-test-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["is_valid"], true, "{body}");

    // Wait for the root, four calls, four checks and their DNS lookups.
    let mut ours: Vec<Span> = Vec::new();
    for _ in 0..100 {
        ours = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == incoming_trace)
            .cloned()
            .collect();
        let checks = ours.iter().filter(|s| s.name == "check caa").count();
        let root = ours.iter().any(|s| s.name == "POST /mpic");
        if root && checks == 4 && ours.iter().filter(|s| s.name.starts_with("call ")).count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = spans.lock().unwrap().clone();
    let root = ours
        .iter()
        .find(|s| s.name == "POST /mpic")
        .unwrap_or_else(|| panic!("no root span among {all:#?}"));
    assert_eq!(root.service, "mpic-coordinator");
    assert_eq!(
        root.parent, incoming_span,
        "the CA backend's traceparent is continued"
    );
    assert_eq!(
        root.attributes.get("trace_identifier").map(String::as_str),
        Some("trace-test-1")
    );
    let calls: Vec<&Span> = ours
        .iter()
        .filter(|s| s.name.starts_with("call "))
        .collect();
    assert_eq!(calls.len(), 4, "{ours:#?}");
    for call in &calls {
        assert_eq!(call.service, "mpic-coordinator");
        assert_eq!(call.parent, root.span_id, "{call:?}");
    }
    let checks: Vec<&Span> = ours.iter().filter(|s| s.name == "check caa").collect();
    assert_eq!(checks.len(), 4, "{ours:#?}");
    for check in &checks {
        assert_eq!(check.service, "mpic-perspective");
        let call = calls
            .iter()
            .find(|c| c.span_id == check.parent)
            .unwrap_or_else(|| panic!("{check:?} has no call parent"));
        assert_eq!(
            call.attributes.get("perspective.code"),
            check.attributes.get("perspective.code"),
            "the call and the check are the same perspective"
        );
        let lookups = ours
            .iter()
            .filter(|s| s.parent == check.span_id && s.name == "DNS CAA")
            .count();
        assert!(lookups >= 1, "DNS spans under {check:?}");
    }
    assert!(
        all.iter()
            .all(|s| s.trace_id == incoming_trace || s.name == "DNS NS"),
        "only this request was traced: {all:#?}"
    );
}

#[tokio::test]
async fn the_audit_event_has_what_br_5_4_1_asks() {
    let fleet = process_fleet(4).await;
    let (status, _) = post(&fleet.url, json!({"domain_or_ip_target": "deny.mpic.test", "trace_identifier": "audit-1", "orchestration_parameters": {"max_attempts": 1}})).await;
    assert_eq!(status, 200);
    let (status, body) = post(&fleet.url, json!({"check_type": "dcv", "domain_or_ip_target": "mpic.test", "trace_identifier": "audit-2",
        "dcv_check_parameters": {"validation_method": "acme-dns-01", "key_authorization_hash": "sYAwVrqDtVOuJZvAHurSAYPoEt5fFV_C4bdSOOW-o5Y"}})).await;
    assert_eq!(status, 200, "{body}");
    let coordinator = fleet.servers.last().unwrap();
    let mut events = Vec::new();
    for _ in 0..50 {
        events = coordinator
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == "mpic.audit")
            .collect();
        if events.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(events.len(), 2, "{}", coordinator.log());
    let deny = &events[0];
    assert_eq!(deny["target"], "mpic::audit");
    assert_eq!(deny["target_name"], "deny.mpic.test");
    assert_eq!(deny["check.type"], "caa");
    assert_eq!(deny["check.method"], "");
    assert_eq!(deny["trace_identifier"], "audit-1");
    assert_eq!(deny["is_valid"], false);
    assert_eq!(deny["quorum_result"], "0/4");
    assert_eq!(deny["passing_rirs"], "");
    assert_eq!(deny["attempt_count"], 1);
    // Each perspective as structured data: attempt, code, RIR, result, error type.
    let perspectives = deny["perspectives"].as_array().expect("a JSON array");
    let mut codes: Vec<&str> = perspectives
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["ap-tokyo", "eu-west", "sa-east", "us-east"]);
    for p in perspectives {
        assert_eq!(p["attempt"], 1, "{p}");
        assert_eq!(p["result"], "not_passed", "{p}");
        assert!(p["rir"].is_string(), "{p}");
        assert!(p["latency_ms"].is_u64(), "{p}");
        assert!(p.get("error_type").is_some(), "{p}");
    }
    let us = perspectives
        .iter()
        .find(|p| p["code"] == "us-east")
        .unwrap();
    assert_eq!(us["rir"], "ARIN");
    assert!(deny["duration_ms"].as_u64().is_some());
    let trace_id = deny["spans"][0]["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    assert_ne!(trace_id, "00000000000000000000000000000000");

    let dcv = &events[1];
    assert_eq!(dcv["check.type"], "dcv");
    assert_eq!(dcv["check.method"], "acme-dns-01");
    assert_eq!(dcv["is_valid"], true);
    assert_eq!(dcv["quorum_result"], "4/4");
    assert_eq!(dcv["passing_rirs"], "APNIC,ARIN,LACNIC,RIPE NCC");
    assert!(
        dcv["perspectives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["result"] == "passed" && p["error_type"].is_null()),
        "{dcv}"
    );
    // Every line of the request carries the trace id and trace_identifier (through its span).
    let log = coordinator.log();
    assert!(
        !log.contains("sYAwVrqDtVOuJZvAHurSAYPoEt5fFV_C4bdSOOW-o5Y"),
        "no key authorization digest in logs"
    );
    assert!(!log.contains(crate::support::API_KEY), "no API key in logs");
}
