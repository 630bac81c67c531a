//! Request bodies of the three services (`POST /mpic`, a perspective's `POST /caa` and
//! `POST /dcv`) through the strict JSON reader and the validation each service runs next.
//!
//! Invariants: a body accepted is exactly one JSON value (a plain JSON parser accepts it, and
//! the same body with anything appended is refused); an accepted request serialises back to
//! a body that parses to the same request; every refusal is an issue of a known type with a
//! message; a request that validates has a target that parses again to itself.

use mpic_common::api::{
    CaaPerspectiveRequest, DcvPerspectiveRequest, MpicRequest, ValidationIssue,
};
use mpic_common::strict_json;
use mpic_common::target::Target;
use mpic_common::validate::{self, CaaParams, issue};
use mpic_coordinator::policy::{Policy, PolicyMode};
use mpic_coordinator::quorum::Bounds;
use mpic_coordinator::rules;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Tokens of the request grammar.
pub const DICTIONARY: &[&[u8]] = &[
    b"\"check_type\":",
    b"\"caa\"",
    b"\"dcv\"",
    b"\"domain_or_ip_target\":",
    b"\"trace_identifier\":",
    b"\"orchestration_parameters\":",
    b"\"perspective_count\":",
    b"\"quorum_count\":",
    b"\"max_attempts\":",
    b"\"cohort_for_single_attempt\":",
    b"\"caa_check_parameters\":",
    b"\"caa_domains\":",
    b"\"certificate_type\":\"s-mime\"",
    b"\"account_uri\":",
    b"\"validation_method\":",
    b"\"dcv_check_parameters\":",
    b"\"validation_method\":\"acme-dns-01\"",
    b"\"validation_method\":\"website-change\"",
    b"\"validation_method\":\"dns-persistent\"",
    b"\"validation_method\":\"acme-tls-alpn-01\"",
    b"\"key_authorization\":",
    b"\"key_authorization_hash\":",
    b"\"challenge_value\":",
    b"\"match_regex\":",
    b"\"http_headers\":",
    b"\"dns_name_prefix\":",
    b"\"dns_record_type\":\"TXT\"",
    b"\"issuer_domain_names\":",
    b"\"expected_account_uri\":",
    b"\"token\":",
    b"\"url_scheme\":\"https\"",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"1e999",
    b"-9223372036854775809",
];

/// The coordinator's bounds with the example catalogue (coordinator/examples).
const BOUNDS: Bounds = Bounds {
    catalogue_size: 7,
    default_perspective_count: 6,
    max_attempts: 3,
};

/// The target.
pub fn run(data: &[u8]) {
    if let Some(request) = strict::<MpicRequest>(data) {
        coordinator(request);
    }
    if let Some(request) = strict::<CaaPerspectiveRequest>(data) {
        perspective_caa(&request);
    }
    if let Some(request) = strict::<DcvPerspectiveRequest>(data) {
        perspective_dcv(&request);
    }
}

/// The strict reader's verdict on `data` as `T`, checked.
fn strict<T>(data: &[u8]) -> Option<T>
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let request = match strict_json::parse::<T>(data) {
        Ok(request) => request,
        Err(issue) => {
            assert!(
                [issue::INVALID_JSON, issue::INVALID_FIELD].contains(&issue.issue_type.as_str()),
                "{issue:?}"
            );
            check_issue(&issue);
            return None;
        }
    };
    assert!(
        serde_json::from_slice::<serde_json::Value>(data).is_ok(),
        "accepted a body that is not one JSON value: {:?}",
        data.escape_ascii().to_string()
    );
    for trailer in [&b"{}"[..], b"0", b"\"x\"", b"x"] {
        let mut longer = data.to_vec();
        longer.extend_from_slice(trailer);
        assert!(
            strict_json::parse::<T>(&longer).is_err(),
            "accepted trailing {:?}",
            trailer.escape_ascii().to_string()
        );
    }
    let again = serde_json::to_vec(&request).unwrap_or_else(|e| panic!("re-serialising: {e}"));
    assert_eq!(
        strict_json::parse::<T>(&again).as_ref(),
        Ok(&request),
        "the re-serialised body {:?} reads differently",
        String::from_utf8_lossy(&again)
    );
    Some(request)
}

fn coordinator(request: MpicRequest) {
    let text = request.domain_or_ip_target.clone();
    // The rules as on a fixed day (the fuzz run must not change with the calendar).
    let policy = Policy {
        mode: PolicyMode::Enforce,
        allow_retired_methods: Vec::new(),
    };
    let in_force = rules::in_force(rules::Date::from_ymd(2026, 12, 4));
    match mpic_coordinator::service::validate_request(request, &BOUNDS, &policy, &in_force) {
        Ok(valid) => {
            assert_eq!(Target::parse(&text).as_ref(), Ok(&valid.target));
            assert_eq!(Target::parse(&valid.target.to_string()), Ok(valid.target));
        }
        Err(issues) => {
            assert!(!issues.is_empty(), "refused without an issue");
            issues.iter().for_each(check_issue);
        }
    }
}

fn perspective_caa(request: &CaaPerspectiveRequest) {
    check_target(&request.domain_or_ip_target);
    match CaaParams::from_wire(request.caa_check_parameters.as_ref()) {
        Ok(params) => {
            for name in &params.caa_domains {
                assert_eq!(
                    name,
                    &name.to_ascii_lowercase(),
                    "issuer {name:?} not lowercase"
                );
            }
            if let Some(method) = &params.validation_method {
                assert!(validate::is_rfc8657_label(method), "method {method:?}");
                assert_eq!(method, &method.to_ascii_lowercase());
            }
        }
        Err(issues) => {
            assert!(!issues.is_empty(), "refused without an issue");
            issues.iter().for_each(check_issue);
        }
    }
}

fn perspective_dcv(request: &DcvPerspectiveRequest) {
    if let Some(target) = check_target(&request.domain_or_ip_target) {
        validate::dcv_params(&target, &request.dcv_check_parameters)
            .iter()
            .for_each(check_issue);
    }
}

fn check_target(text: &str) -> Option<Target> {
    match validate::target(text) {
        Ok(target) => {
            assert_eq!(Target::parse(&target.to_string()).as_ref(), Ok(&target));
            Some(target)
        }
        Err(issue) => {
            assert_eq!(issue.issue_type, issue::INVALID_TARGET);
            check_issue(&issue);
            None
        }
    }
}

/// An issue names its type (kebab-case) and says something.
fn check_issue(issue: &ValidationIssue) {
    assert!(
        !issue.issue_type.is_empty()
            && issue
                .issue_type
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-'),
        "{issue:?}"
    );
    assert!(!issue.message.is_empty(), "{issue:?}");
}
