//! Golden JSON: the shapes of api.md pinned with documents written from it, including the
//! reference quirks of its section 4.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use crate::api::*;

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    crate::validate::parse_json::<T>(v.to_string().as_bytes()).map_err(|i| i.message)
}

#[test]
fn check_type_defaults_to_caa() {
    // api.md section 4: `check_type` "required" in the spec, defaulted by the reference.
    for body in [
        json!({"domain_or_ip_target": "example.com"}),
        json!({"domain_or_ip_target": "example.com", "check_type": null}),
    ] {
        let r: MpicRequest = parse(body).unwrap();
        assert_eq!(r.check_type, CheckType::Caa);
    }
}

#[test]
fn full_caa_request() {
    let r: MpicRequest = parse(json!({
        "check_type": "caa",
        "domain_or_ip_target": "example.com",
        "trace_identifier": "t-1",
        "orchestration_parameters": {"perspective_count": 6, "quorum_count": 4, "max_attempts": 2},
        "caa_check_parameters": {
            "certificate_type": "s-mime",
            "caa_domains": ["ca.example"],
            "allow_lookup_failure": true,
            "account_uri": "https://ca.example/acct/1",
            "validation_method": "dns-01"
        }
    }))
    .unwrap();
    let o = r.orchestration_parameters.unwrap();
    assert_eq!(
        (
            o.perspective_count,
            o.quorum_count,
            o.max_attempts,
            o.cohort_for_single_attempt
        ),
        (Some(6), Some(4), Some(2), None)
    );
    let c = r.caa_check_parameters.unwrap();
    assert_eq!(c.certificate_type, CertificateType::SMime);
    assert!(c.allow_lookup_failure);
    assert_eq!(c.validation_method.as_deref(), Some("dns-01"));
}

#[test]
fn caa_parameters_echo_every_key_with_defaults() {
    let c: CaaCheckParameters = parse(json!({"caa_domains": null})).unwrap();
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({
            "certificate_type": "tls-server",
            "caa_domains": null,
            "allow_lookup_failure": false,
            "account_uri": null,
            "validation_method": null
        })
    );
}

/// One document per method of the api.md table, with the echo (defaults and fixed fields
/// filled in) that the response carries.
#[test]
fn every_dcv_method_round_trips_with_fixed_fields_filled() {
    struct Case {
        name: &'static str,
        input: Value,
        echo: Value,
    }
    let cases = [
        Case {
            name: "website-change",
            input: json!({"validation_method": "website-change", "http_token_path": "t", "challenge_value": "v", "url_scheme": null}),
            echo: json!({"validation_method": "website-change", "http_token_path": "t", "challenge_value": "v", "url_scheme": "http", "match_regex": null, "http_headers": null, "require_exact_case": true}),
        },
        Case {
            name: "acme-http-01",
            input: json!({"validation_method": "acme-http-01", "token": "tok", "key_authorization": "tok.thumb"}),
            echo: json!({"validation_method": "acme-http-01", "token": "tok", "key_authorization": "tok.thumb", "http_headers": null, "require_exact_case": true}),
        },
        Case {
            name: "acme-dns-01",
            input: json!({"validation_method": "acme-dns-01", "key_authorization_hash": "h", "dns_record_type": "TXT", "dns_name_prefix": "_acme-challenge"}),
            echo: json!({"validation_method": "acme-dns-01", "key_authorization_hash": "h", "dns_record_type": "TXT", "dns_name_prefix": "_acme-challenge"}),
        },
        Case {
            name: "acme-tls-alpn-01",
            input: json!({"validation_method": "acme-tls-alpn-01", "key_authorization_hash": "ab"}),
            echo: json!({"validation_method": "acme-tls-alpn-01", "key_authorization_hash": "ab"}),
        },
        Case {
            name: "dns-change",
            input: json!({"validation_method": "dns-change", "challenge_value": "v", "dns_record_type": "CNAME"}),
            echo: json!({"validation_method": "dns-change", "challenge_value": "v", "dns_record_type": "CNAME", "dns_name_prefix": null, "require_exact_match": false, "require_exact_case": true}),
        },
        Case {
            name: "dns-persistent (missing from the spec's enum, accepted)",
            input: json!({"validation_method": "dns-persistent", "issuer_domain_names": ["ca.example"], "expected_account_uri": "https://ca.example/acct/1"}),
            echo: json!({"validation_method": "dns-persistent", "issuer_domain_names": ["ca.example"], "expected_account_uri": "https://ca.example/acct/1", "dns_record_type": "TXT", "dns_name_prefix": "_validation-persist"}),
        },
        Case {
            name: "dns-account-01",
            input: json!({"validation_method": "dns-account-01", "account_uri": "https://ca.example/acct/1", "key_authorization_hash": "h"}),
            echo: json!({"validation_method": "dns-account-01", "account_uri": "https://ca.example/acct/1", "key_authorization_hash": "h", "dns_record_type": "TXT"}),
        },
        Case {
            name: "contact-email-txt",
            input: json!({"validation_method": "contact-email-txt", "challenge_value": "a@b.example"}),
            echo: json!({"validation_method": "contact-email-txt", "challenge_value": "a@b.example", "dns_record_type": "TXT", "dns_name_prefix": "_validation-contactemail"}),
        },
        Case {
            name: "contact-phone-txt",
            input: json!({"validation_method": "contact-phone-txt", "challenge_value": "+1 555", "dns_name_prefix": "_VALIDATION-contactphone"}),
            echo: json!({"validation_method": "contact-phone-txt", "challenge_value": "+1 555", "dns_record_type": "TXT", "dns_name_prefix": "_validation-contactphone"}),
        },
        Case {
            name: "contact-email-caa",
            input: json!({"validation_method": "contact-email-caa", "challenge_value": "a@b.example"}),
            echo: json!({"validation_method": "contact-email-caa", "challenge_value": "a@b.example", "dns_name_prefix": null, "dns_record_type": "CAA"}),
        },
        Case {
            name: "contact-phone-caa",
            input: json!({"validation_method": "contact-phone-caa", "challenge_value": "+1 555", "dns_name_prefix": "x"}),
            echo: json!({"validation_method": "contact-phone-caa", "challenge_value": "+1 555", "dns_name_prefix": "x", "dns_record_type": "CAA"}),
        },
        Case {
            name: "ip-address",
            input: json!({"validation_method": "ip-address", "challenge_value": "192.0.2.1", "dns_record_type": "A"}),
            echo: json!({"validation_method": "ip-address", "challenge_value": "192.0.2.1", "dns_record_type": "A", "dns_name_prefix": null}),
        },
        Case {
            name: "reverse-address-lookup",
            input: json!({"validation_method": "reverse-address-lookup", "challenge_value": "host.example."}),
            echo: json!({"validation_method": "reverse-address-lookup", "challenge_value": "host.example.", "dns_name_prefix": null, "dns_record_type": "PTR"}),
        },
    ];
    assert_eq!(
        cases.len(),
        13,
        "12 methods of the reference plus dns-account-01"
    );
    for c in cases {
        let parsed: DcvCheckParameters =
            parse(c.input).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), c.echo, "{}", c.name);
        assert_eq!(
            parsed.method().as_str(),
            c.echo["validation_method"],
            "{}",
            c.name
        );
        let again: DcvCheckParameters = serde_json::from_value(c.echo.clone()).unwrap();
        assert_eq!(
            again, parsed,
            "{}: echo parses back to the same value",
            c.name
        );
    }
}

#[test]
fn fixed_fields_refuse_other_values_and_unknown_fields_are_named() {
    struct Case {
        name: &'static str,
        input: Value,
        message_has: &'static str,
    }
    let cases = [
        Case {
            name: "acme-dns-01 with CNAME",
            input: json!({"validation_method": "acme-dns-01", "key_authorization_hash": "h", "dns_record_type": "CNAME"}),
            message_has: "must be \"TXT\"",
        },
        Case {
            name: "acme-dns-01 with another prefix",
            input: json!({"validation_method": "acme-dns-01", "key_authorization_hash": "h", "dns_name_prefix": "_other"}),
            message_has: "_acme-challenge",
        },
        Case {
            name: "acme-http-01 case-insensitive",
            input: json!({"validation_method": "acme-http-01", "token": "t", "key_authorization": "k", "require_exact_case": false}),
            message_has: "must be true",
        },
        Case {
            name: "unknown method",
            input: json!({"validation_method": "carrier-pigeon"}),
            message_has: "carrier-pigeon",
        },
        Case {
            name: "missing required field",
            input: json!({"validation_method": "acme-http-01", "token": "t"}),
            message_has: "key_authorization",
        },
        Case {
            name: "unknown field",
            input: json!({"validation_method": "dns-change", "challenge_value": "v", "dns_record_type": "TXT", "colour": 1}),
            message_has: "colour",
        },
        Case {
            name: "dns-change with A",
            input: json!({"validation_method": "dns-change", "challenge_value": "v", "dns_record_type": "A"}),
            message_has: "unknown variant `A`",
        },
    ];
    for c in cases {
        let err = parse::<DcvCheckParameters>(c.input).unwrap_err();
        assert!(err.contains(c.message_has), "{}: {err}", c.name);
    }
}

#[test]
fn caa_check_response_emits_every_key() {
    let r = CheckResponse {
        check_type: CheckType::Caa,
        check_completed: true,
        check_passed: true,
        errors: vec![],
        timestamp_ns: 1_700_000_000_000_000_000,
        details: CheckDetails::Caa(CaaDetails {
            caa_record_present: Some(true),
            found_at: Some("example.com".into()),
            records_seen: Some(vec!["0 issue \"ca.example\"".into()]),
            ad_flag: Some(true),
            reason: Some("issuer-listed".into()),
            lookup_failure: None,
        }),
    };
    let want = json!({
        "check_type": "caa",
        "check_completed": true,
        "check_passed": true,
        // api.md: `[]` when there are none, as the official OpenAPI document types it (a
        // non-nullable array); the reference sends `null`.
        "errors": [],
        "timestamp_ns": 1_700_000_000_000_000_000u64,
        "details": {
            "caa_record_present": true,
            "found_at": "example.com",
            // api.md section 4: an array of strings, not a string.
            "records_seen": ["0 issue \"ca.example\""],
            "ad_flag": true,
            "reason": "issuer-listed",
            "lookup_failure": null
        }
    });
    assert_eq!(serde_json::to_value(&r).unwrap(), want);
    let back: CheckResponse = serde_json::from_value(want).unwrap();
    assert_eq!(back, r);
}

#[test]
fn errors_is_an_array_on_output_and_null_is_still_read() {
    // What the reference (and a perspective of an older version) sends: `errors: null`.
    let reference = json!({
        "check_type": "dcv",
        "check_completed": true,
        "check_passed": true,
        "errors": null,
        "timestamp_ns": 1,
        "details": {"validation_method": "dns-change", "records_seen": [], "response_code": 0, "ad_flag": false, "found_at": "example.com", "cname_chain": []}
    });
    let absent = {
        let mut v = reference.clone();
        v.as_object_mut().unwrap().remove("errors");
        v
    };
    for (name, input) in [("null", reference), ("absent", absent)] {
        let r: CheckResponse = serde_json::from_value(input).unwrap();
        assert!(r.errors.is_empty(), "{name}");
        assert_eq!(
            serde_json::to_value(&r).unwrap()["errors"],
            json!([]),
            "{name}"
        );
    }
    let failed = json!({
        "check_type": "caa", "check_completed": false, "check_passed": false,
        "errors": [{"error_type": "mpic_error:caa_checker:lookup", "error_message": "SERVFAIL"}],
        "timestamp_ns": 1,
        "details": {"caa_record_present": null, "found_at": null, "records_seen": null, "ad_flag": null, "reason": null, "lookup_failure": null}
    });
    let r: CheckResponse = serde_json::from_value(failed.clone()).unwrap();
    assert_eq!(r.errors[0].error_type, "mpic_error:caa_checker:lookup");
    assert_eq!(serde_json::to_value(&r).unwrap(), failed);
}

#[test]
fn dcv_details_shapes_are_told_apart() {
    let http = json!({
        "validation_method": "acme-http-01",
        // api.md section 4: `{status_code, url}` items, `response_url` the original URL.
        "response_history": [{"status_code": 302, "url": "http://b.example/x"}],
        "response_url": "http://a.example/.well-known/acme-challenge/t",
        "response_status_code": 200,
        "response_page": "dG9r",
        "final_url": "http://b.example/x",
        "resolved_ip": "192.0.2.1"
    });
    let dns = json!({
        "validation_method": "dns-change", "records_seen": ["v"], "response_code": 0,
        "ad_flag": false, "found_at": "example.com", "cname_chain": []
    });
    let tls = json!({"validation_method": "acme-tls-alpn-01", "common_name": null, "resolved_ip": "192.0.2.1"});
    let caa = json!({"caa_record_present": null, "found_at": null, "records_seen": null, "ad_flag": null, "reason": null, "lookup_failure": null});
    assert!(matches!(
        serde_json::from_value::<CheckDetails>(http.clone()).unwrap(),
        CheckDetails::Http(_)
    ));
    assert!(matches!(
        serde_json::from_value::<CheckDetails>(dns.clone()).unwrap(),
        CheckDetails::Dns(_)
    ));
    assert!(matches!(
        serde_json::from_value::<CheckDetails>(tls.clone()).unwrap(),
        CheckDetails::TlsAlpn(_)
    ));
    assert!(matches!(
        serde_json::from_value::<CheckDetails>(caa.clone()).unwrap(),
        CheckDetails::Caa(_)
    ));
    for v in [http, dns, tls, caa] {
        let d: CheckDetails = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), v);
    }
    assert!(serde_json::from_value::<CheckDetails>(json!({"surprise": 1})).is_err());
}

#[test]
fn empty_details_match_the_method_family() {
    let d = CheckDetails::empty_for(ValidationMethod::ReverseAddressLookup);
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({"validation_method": "reverse-address-lookup", "records_seen": null, "response_code": null, "ad_flag": null, "found_at": null, "cname_chain": null})
    );
}

#[test]
fn mpic_response_flattens_the_parameter_echo() {
    let r = MpicResponse {
        mpic_completed: true,
        request_orchestration_parameters: None,
        actual_orchestration_parameters: Some(ActualOrchestrationParameters {
            perspective_count: 6,
            quorum_count: 4,
            attempt_count: 1,
        }),
        check_type: CheckType::Caa,
        domain_or_ip_target: "example.com".into(),
        trace_identifier: None,
        is_valid: true,
        parameters: EchoedParameters::Caa(CaaCheckParameters::default()),
        perspectives: vec![],
        previous_attempt_results: None,
        quorum_result: "5/6".into(),
        warnings: vec![RuleWarning {
            warning_type: "retired-validation-method".into(),
            br_section: "3.2.2.4.8".into(),
            effective_date: "2026-03-15".into(),
            message: "m".into(),
        }],
    };
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["caa_check_parameters"]["certificate_type"], "tls-server");
    assert!(v.get("dcv_check_parameters").is_none());
    assert!(v.get("parameters").is_none());
    for key in [
        "mpic_completed",
        "request_orchestration_parameters",
        "actual_orchestration_parameters",
        "check_type",
        "domain_or_ip_target",
        "trace_identifier",
        "is_valid",
        "perspectives",
        "previous_attempt_results",
        "quorum_result",
        "warnings",
    ] {
        assert!(v.get(key).is_some(), "key {key} is emitted");
    }
    assert_eq!(
        v["warnings"],
        json!([{"warning_type": "retired-validation-method", "br_section": "3.2.2.4.8", "effective_date": "2026-03-15", "message": "m"}])
    );
    let back: MpicResponse = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(back, r);
    // A response without the extension (an older coordinator) still reads.
    let mut older = v;
    older.as_object_mut().unwrap().remove("warnings");
    let back: MpicResponse = serde_json::from_value(older).unwrap();
    assert!(back.warnings.is_empty());
}

#[test]
fn validation_failure_body_shape() {
    let body = ValidationFailure {
        error: "request-validation-failed".into(),
        validation_issues: vec![ValidationIssue {
            issue_type: "invalid-quorum-count".into(),
            message: "m".into(),
        }],
    };
    assert_eq!(
        serde_json::to_value(&body).unwrap(),
        json!({"error": "request-validation-failed", "validation_issues": [{"issue_type": "invalid-quorum-count", "message": "m"}]})
    );
}
