//! The dated BR rules through `POST /mpic`, `/configz` and `/metrics`, on coordinators whose
//! clock the tests set: each retired method refused under `policy: enforce` from its day and
//! served the day before, served with a warning under `warn` or an exception, served silently
//! under `off`; the minimum of perspectives from its day; the next change as the operator
//! sees it.

use axum::http::StatusCode;
use serde_json::{Value, json};

use mpic_common::api::ValidationMethod;
use mpic_coordinator::policy::{PolicyMode, RulesConfig};
use mpic_coordinator::rules::Date;

use crate::observability::{assert_valid, parse_metrics};
use crate::support::{Fleet, FleetSpec, all_real, dns, fleet, get_text};

/// A retired method, a request for it, its BR section and the day it is retired.
struct Retired {
    method: &'static str,
    request: Value,
    br_section: &'static str,
    day: &'static str,
}

fn dcv(target: &str, params: Value) -> Value {
    json!({"check_type": "dcv", "domain_or_ip_target": target, "dcv_check_parameters": params})
}

/// Every method the table retires (rules-research.md; BR 1.2.2).
fn retired() -> Vec<Retired> {
    vec![
        Retired {
            method: "ip-address",
            request: dcv(
                "example.com",
                json!({"validation_method": "ip-address", "challenge_value": "192.0.2.9", "dns_record_type": "A"}),
            ),
            br_section: "3.2.2.4.8",
            day: "2026-03-15",
        },
        Retired {
            method: "contact-phone-txt",
            request: dcv(
                "example.com",
                json!({"validation_method": "contact-phone-txt", "challenge_value": "+1 555 0100"}),
            ),
            br_section: "3.2.2.4.16",
            day: "2027-03-15",
        },
        Retired {
            method: "contact-phone-caa",
            request: dcv(
                "example.com",
                json!({"validation_method": "contact-phone-caa", "challenge_value": "+1 555 0100"}),
            ),
            br_section: "3.2.2.4.17",
            day: "2027-03-15",
        },
        Retired {
            method: "reverse-address-lookup",
            request: dcv(
                "192.0.2.9",
                json!({"validation_method": "reverse-address-lookup", "challenge_value": "host.example.com."}),
            ),
            br_section: "3.2.2.5.3",
            day: "2027-03-15",
        },
        Retired {
            method: "contact-email-caa",
            request: dcv(
                "example.com",
                json!({"validation_method": "contact-email-caa", "challenge_value": "admin@example.com"}),
            ),
            br_section: "3.2.2.4.13",
            day: "2028-03-15",
        },
        Retired {
            method: "contact-email-txt",
            request: dcv(
                "example.com",
                json!({"validation_method": "contact-email-txt", "challenge_value": "admin@example.com"}),
            ),
            br_section: "3.2.2.4.14",
            day: "2028-03-15",
        },
    ]
}

fn day(s: &str) -> Date {
    s.parse().unwrap()
}

async fn fleet_with(policy: PolicyMode, allow: Vec<ValidationMethod>) -> (Fleet, impl Drop) {
    let dns = dns().await;
    let f = fleet(FleetSpec {
        policy,
        rules: RulesConfig {
            allow_retired_methods: allow,
        },
        ..FleetSpec::new(all_real(6), dns.addr())
    })
    .await;
    (f, dns)
}

async fn metrics(f: &Fleet) -> std::collections::BTreeMap<String, f64> {
    parse_metrics(&get_text(&f.client, &format!("{}/metrics", f.ops)).await)
}

async fn configz_rules(f: &Fleet) -> Value {
    let text = get_text(&f.client, &format!("{}/configz", f.ops)).await;
    serde_json::from_str::<Value>(&text).unwrap()["rules"].clone()
}

#[tokio::test]
async fn enforce_refuses_each_retired_method_from_its_day_and_serves_it_the_day_before() {
    let (f, _dns) = fleet_with(PolicyMode::Enforce, vec![]).await;
    assert_eq!(
        retired().len(),
        mpic_coordinator::rules::in_force(day("2099-01-01"))
            .retired
            .len()
    );
    for r in retired() {
        f.clock.set(day(r.day).plus_days(-1));
        let (status, body) = f.post(r.request.clone()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{} the day before: {body}",
            r.method
        );
        assert_eq!(body["warnings"], json!([]), "{}", r.method);
        assert_valid("MpicResponse", &body);

        f.clock.set(day(r.day));
        let (status, body) = f.post(r.request.clone()).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{} on its day: {body}",
            r.method
        );
        assert_valid("ValidationFailure", &body);
        let issues = body["validation_issues"].as_array().unwrap();
        assert_eq!(issues.len(), 1, "{}: {body}", r.method);
        assert_eq!(issues[0]["issue_type"], "retired-validation-method");
        let message = issues[0]["message"].as_str().unwrap();
        for part in [
            "`dcv_check_parameters.validation_method`",
            r.method,
            &format!("BR {}", r.br_section),
            r.day,
        ] {
            assert!(message.contains(part), "{}: {part} in {message}", r.method);
        }
    }
    // The methods never retired are served on any day.
    f.clock.set(day("2030-01-01"));
    let (status, body) = f
        .post(dcv(
            "example.com",
            json!({"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "TXT"}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn enforce_refuses_a_cohort_below_the_minimum_from_its_day() {
    let (f, _dns) = fleet_with(PolicyMode::Enforce, vec![]).await;
    let four = json!({"domain_or_ip_target": "example.com", "orchestration_parameters": {"perspective_count": 4}});
    f.clock.set(day("2026-12-14"));
    let (status, body) = f.post(four.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    f.clock.set(day("2026-12-15"));
    let (status, body) = f.post(four).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["validation_issues"][0]["issue_type"],
        "invalid-perspective-count"
    );
    let message = body["validation_issues"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("minimum of 5 remote perspectives in force since 2026-12-15"),
        "{message}"
    );
}

/// From the day every listed method is retired: `warn` serves each with a warning in the
/// response and counts it; `off` serves each silently (the reference's behaviour).
#[tokio::test]
async fn warn_and_off_serve_each_retired_method() {
    for policy in [PolicyMode::Warn, PolicyMode::Off] {
        let (f, _dns) = fleet_with(policy, vec![]).await;
        f.clock.set(day("2028-03-15"));
        for r in retired() {
            let (status, body) = f.post(r.request.clone()).await;
            assert_eq!(status, StatusCode::OK, "{policy:?} {}: {body}", r.method);
            assert_valid("MpicResponse", &body);
            let want = match policy {
                PolicyMode::Warn => json!([{
                    "warning_type": "retired-validation-method",
                    "br_section": r.br_section,
                    "effective_date": r.day,
                    "message": format!(
                        "field `dcv_check_parameters.validation_method`: {} (BR {}) may not be relied on since {} (BR 1.2.2); served under policy: warn",
                        r.method, r.br_section, r.day
                    ),
                }]),
                _ => json!([]),
            };
            assert_eq!(body["warnings"], want, "{policy:?} {}", r.method);
        }
        let m = metrics(&f).await;
        for r in retired() {
            let key = format!(
                r#"mpic_rule_warnings_total{{rule="retired-validation-method",method="{}"}}"#,
                r.method
            );
            let want = (policy == PolicyMode::Warn).then_some(&1.0);
            assert_eq!(m.get(&key), want, "{policy:?} {key}");
        }
    }
}

#[tokio::test]
async fn an_exception_serves_its_method_with_a_warning_and_only_it() {
    let (f, _dns) = fleet_with(PolicyMode::Enforce, vec![ValidationMethod::IpAddress]).await;
    f.clock.set(day("2027-03-15"));
    let all = retired();
    let (status, body) = f.post(all[0].request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["warnings"][0]["br_section"], "3.2.2.4.8");
    assert!(
        body["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("rules.allow_retired_methods"),
        "{body}"
    );
    let (status, body) = f.post(all[1].request.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn configz_and_metrics_show_the_rules_in_force_and_the_next_change() {
    let dns = dns().await;
    let mut spec = FleetSpec::new(all_real(6), dns.addr());
    spec.default_perspective_count = 4;
    let f = fleet(spec).await;
    // The rules watch sets the gauge when it starts.
    let mut days = None;
    for _ in 0..100 {
        days = metrics(&f)
            .await
            .get("mpic_rules_next_change_days")
            .copied();
        if days == Some(11.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(days, Some(11.0), "2026-12-04 to 2026-12-15");

    let rules = &configz_rules(&f).await;
    assert_eq!(rules["date"], "2026-12-04");
    assert_eq!(rules["policy"], "enforce");
    assert_eq!(rules["next_change"]["date"], "2026-12-15");
    assert_eq!(rules["next_change"]["days_away"], 11);
    assert_eq!(rules["next_change"]["configuration_still_valid"], false);
    let change = &rules["next_change"]["rules"][0];
    assert_eq!(change["rule"], "minimum-perspectives");
    assert!(
        change["for_this_configuration"]
            .as_str()
            .unwrap()
            .contains("your default cohort of 4 will be refused"),
        "{change}"
    );
    let in_force: Vec<&str> = rules["in_force"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["br_section"].as_str().unwrap())
        .collect();
    assert_eq!(in_force, ["3.2.2.4.8", "3.2.2.9"]);

    // A running coordinator follows the day: its default cohort is below the new minimum.
    f.clock.set(day("2026-12-15"));
    let rules = configz_rules(&f).await;
    assert_eq!(rules["date"], "2026-12-15");
    assert_eq!(rules["next_change"]["date"], "2027-03-15");
    let (status, body) = f.post(json!({"domain_or_ip_target": "example.com"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["validation_issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("4 (the configured default) is below"),
        "{body}"
    );
}
