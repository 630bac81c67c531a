//! The DNS-based DCV methods' real code, through the perspective's router, against the test
//! kit's DNS server standing in for the resolver. Expected outcomes come from api.md (matching
//! rules, details, error types), requirements.md and BR 3.2.2.4 / 3.2.2.5.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::future::join_all;
use hickory_proto::rr::RecordType;
use mpic_common::api::{CheckDetails, CheckResponse, DnsDetails, ValidationMethod, error_type};
use mpic_tests::dns::{Behaviour, DnsServer, Zone};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::support::{plain_config, router};

/// base64url(SHA-256("abc")): a key authorization digest in RFC 8555's form.
const HASH: &str = "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0";
/// requirements.md's dns-account-01 example and its label.
const ACCOUNT: &str = "https://example.com/acme/acct/ExampleAccount";
const ACCOUNT_LABEL: &str = "_ujmmovf2vn55tgye";
/// The persistent-record account.
const PERSIST_ACCOUNT: &str = "https://ca.example/acct/1";
/// The persistent record at `_validation-persist.example.com`.
const PERSIST: &str = "ca.example; accounturi=https://ca.example/acct/1";

/// `POST /dcv` through `app`; the reply must be a 200 with a `CheckResponse`.
pub async fn post_dcv(app: &axum::Router, target: &str, params: Value) -> CheckResponse {
    let (status, body) = post_dcv_raw(app, target, params.clone()).await;
    assert_eq!(status, StatusCode::OK, "{target} {params}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `POST /dcv` through `app`: the status and the body.
pub async fn post_dcv_raw(app: &axum::Router, target: &str, params: Value) -> (StatusCode, String) {
    let body = json!({
        "domain_or_ip_target": target,
        "trace_identifier": "dcv-dns-test",
        "dcv_check_parameters": params,
    });
    let response = app
        .clone()
        .oneshot(
            Request::post("/dcv")
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// The DNS details of a response.
pub fn details(r: &CheckResponse) -> &DnsDetails {
    match &r.details {
        CheckDetails::Dns(d) => d,
        other => panic!("not DNS details: {other:?}"),
    }
}

/// `(error_type, error_message)` pairs of a response.
pub fn errors(r: &CheckResponse) -> Vec<(String, String)> {
    r.errors
        .iter()
        .map(|e| (e.error_type.clone(), e.error_message.clone()))
        .collect()
}

/// The world of the component tests: every method's records at `example.com` and below.
fn zone() -> Zone {
    Zone::new()
        // acme-dns-01: a stale record next to the right one.
        .txt("_acme-challenge.example.com", &[b"stale-digest"])
        .txt("_acme-challenge.example.com", &[HASH.as_bytes()])
        .txt(
            "_acme-challenge.split.example.com",
            &[&HASH.as_bytes()[..20], &HASH.as_bytes()[20..]],
        )
        .txt(
            "_acme-challenge.upper.example.com",
            &[HASH.to_uppercase().as_bytes()],
        )
        .txt(
            "_acme-challenge.space.example.com",
            &[format!(" {HASH}").as_bytes()],
        )
        .cname(
            "_acme-challenge.delegated.example.com",
            "token.validation.example.net",
        )
        .cname(
            "token.validation.example.net",
            "final.validation.example.org",
        )
        .txt("final.validation.example.org", &[HASH.as_bytes()])
        .a("nodata.example.com", "192.0.2.99".parse().unwrap())
        .txt("_acme-challenge.insecure.example.com", &[HASH.as_bytes()])
        .authentic_data(true)
        .authentic_data_at("_acme-challenge.insecure.example.com", false)
        // dns-account-01.
        .txt(
            &format!("{ACCOUNT_LABEL}._acme-challenge.example.com"),
            &[HASH.as_bytes()],
        )
        // dns-change.
        .txt("_dc.example.com", &[b"prefix Token-123 suffix"])
        .txt("nul.example.com", &[b"x\0y"])
        .txt("bin.example.com", &[b"\xffToken-123"])
        .cname("cname.example.com", "Token-123.dcv.example.net")
        .caa("caa.example.com", 0, "issue", "token-123.ca.example")
        // dns-persistent.
        .txt(
            "_validation-persist.example.com",
            &[b"ca.example; accounturi=https://ca.example/acct/1"],
        )
        .txt(
            "_validation-persist.example.com",
            &[b"not a persist record \xff"],
        )
        .txt(
            "_validation-persist.wild.example.com",
            &[b"CA.example; accounturi=https://ca.example/acct/1; policy=wildcard"],
        )
        .txt(
            "_validation-persist.expired.example.com",
            &[b"ca.example; accounturi=https://ca.example/acct/1; persistUntil=1000"],
        )
        .txt(
            "_validation-persist.fqdn.example.com",
            &[b"LETSENCRYPT.ORG.; accounturi=https://ca.example/acct/1"],
        )
        // contact-*-txt.
        .txt(
            "_validation-contactemail.example.com",
            &[b"Admin@Example.com"],
        )
        .txt("_validation-contactphone.example.com", &[b"+1 555 0100"])
        // contact-*-caa: example.com holds the contacts; stop.example.com has CAA without
        // them, so the climb stops there; alias.example.com is a CNAME to a CAA set elsewhere.
        .caa("example.com", 0, "issue", "ca.example")
        .caa("example.com", 0, "contactemail", "admin@example.com")
        .caa("example.com", 0, "ContactPhone", "+1 555 0100")
        .caa("stop.example.com", 0, "issue", "ca.example")
        .a("a.b.stop.example.com", "192.0.2.7".parse().unwrap())
        .cname("alias.example.com", "contacts.example.net")
        .caa(
            "contacts.example.net",
            0,
            "contactemail",
            "other@example.net",
        )
        // ip-address.
        .a("host.example.com", "192.0.2.1".parse().unwrap())
        .a("host.example.com", "192.0.2.2".parse().unwrap())
        .aaaa("host.example.com", "1::".parse().unwrap())
        .a("_ip.host.example.com", "198.51.100.1".parse().unwrap())
        // reverse-address-lookup.
        .ptr("1.2.0.192.in-addr.arpa", "Host.Example.com")
        .ptr(
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
            "v6.example.com",
        )
}

/// An expected outcome.
struct Want {
    completed: bool,
    passed: bool,
    /// The one error type expected, if any.
    error: Option<&'static str>,
    found_at: &'static str,
    records_seen: &'static [&'static str],
    cname_chain: &'static [&'static str],
    response_code: u16,
    ad_flag: bool,
}

/// Completed with records: passed or not, no error.
fn seen(passed: bool, found_at: &'static str, records_seen: &'static [&'static str]) -> Want {
    Want {
        completed: true,
        passed,
        error: None,
        found_at,
        records_seen,
        cname_chain: &[],
        response_code: 0,
        ad_flag: true,
    }
}

/// Completed without records: not passed, a lookup error.
fn nothing(found_at: &'static str, response_code: u16) -> Want {
    Want {
        completed: true,
        passed: false,
        error: Some(error_type::DCV_LOOKUP),
        found_at,
        records_seen: &[],
        cname_chain: &[],
        response_code,
        ad_flag: true,
    }
}

struct Case {
    name: &'static str,
    target: &'static str,
    params: Value,
    want: Want,
}

/// Runs every case against one server with the component zone, concurrently.
async fn run(method: ValidationMethod, cases: Vec<Case>) {
    let server = DnsServer::start(zone()).await.unwrap();
    let app = router(&plain_config("p1", server.addr()));
    let results = join_all(
        cases
            .iter()
            .map(|c| post_dcv(&app, c.target, c.params.clone())),
    )
    .await;
    for (c, r) in cases.iter().zip(results) {
        let w = &c.want;
        assert_eq!(
            (r.check_completed, r.check_passed),
            (w.completed, w.passed),
            "case {:?}: {r:?}",
            c.name
        );
        let got_errors: Vec<String> = errors(&r).into_iter().map(|(t, _)| t).collect();
        assert_eq!(
            got_errors,
            w.error.into_iter().collect::<Vec<_>>(),
            "case {:?}",
            c.name
        );
        let want_details = DnsDetails {
            validation_method: method,
            records_seen: Some(w.records_seen.iter().map(|s| (*s).to_owned()).collect()),
            response_code: Some(w.response_code),
            ad_flag: Some(w.ad_flag),
            found_at: Some(w.found_at.to_owned()),
            cname_chain: Some(w.cname_chain.iter().map(|s| (*s).to_owned()).collect()),
        };
        assert_eq!(details(&r), &want_details, "case {:?}", c.name);
    }
}

#[tokio::test]
async fn acme_dns01() {
    let p =
        |hash: &str| json!({"validation_method": "acme-dns-01", "key_authorization_hash": hash});
    let cases = vec![
        Case {
            name: "one of two records matches",
            target: "example.com",
            params: p(HASH),
            want: seen(true, "_acme-challenge.example.com", &["stale-digest", HASH]),
        },
        Case {
            name: "wildcard uses the base name",
            target: "*.example.com",
            params: p(HASH),
            want: seen(true, "_acme-challenge.example.com", &["stale-digest", HASH]),
        },
        Case {
            name: "character-strings are concatenated",
            target: "split.example.com",
            params: p(HASH),
            want: seen(true, "_acme-challenge.split.example.com", &[HASH]),
        },
        Case {
            name: "case-sensitive",
            target: "upper.example.com",
            params: p(HASH),
            want: seen(
                false,
                "_acme-challenge.upper.example.com",
                &["UNGWV48BZ-PBQUDEXA4II7ADYAOWF3QCTBD_YFIAFA0"],
            ),
        },
        Case {
            name: "whitespace is not trimmed",
            target: "space.example.com",
            params: p(HASH),
            want: seen(
                false,
                "_acme-challenge.space.example.com",
                &[" ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"],
            ),
        },
        Case {
            name: "another digest",
            target: "example.com",
            params: p("stale"),
            want: seen(
                false,
                "_acme-challenge.example.com",
                &["stale-digest", HASH],
            ),
        },
        Case {
            name: "CNAME chain followed and reported",
            target: "delegated.example.com",
            params: p(HASH),
            want: Want {
                cname_chain: &[
                    "token.validation.example.net.",
                    "final.validation.example.org.",
                ],
                ..seen(true, "_acme-challenge.delegated.example.com", &[HASH])
            },
        },
        Case {
            name: "AD flag reported as the resolver set it",
            target: "insecure.example.com",
            params: p(HASH),
            want: Want {
                ad_flag: false,
                ..seen(true, "_acme-challenge.insecure.example.com", &[HASH])
            },
        },
        Case {
            name: "NXDOMAIN",
            target: "nx.example.com",
            params: p(HASH),
            want: nothing("_acme-challenge.nx.example.com", 3),
        },
    ];
    run(ValidationMethod::AcmeDns01, cases).await;
}

#[tokio::test]
async fn wildcard_and_prefix_queries_use_the_base_name() {
    let server = DnsServer::start(zone()).await.unwrap();
    let app = router(&plain_config("p1", server.addr()));
    let cases = [
        (
            "*.example.com",
            json!({"validation_method": "acme-dns-01", "key_authorization_hash": HASH}),
            "_acme-challenge.example.com",
            RecordType::TXT,
        ),
        (
            "*.Example.COM",
            json!({"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "CNAME", "dns_name_prefix": "_Dc"}),
            "_dc.example.com",
            RecordType::CNAME,
        ),
        (
            "*.example.com",
            json!({"validation_method": "dns-account-01", "account_uri": ACCOUNT, "key_authorization_hash": HASH}),
            "_ujmmovf2vn55tgye._acme-challenge.example.com",
            RecordType::TXT,
        ),
        (
            "192.0.2.1",
            json!({"validation_method": "reverse-address-lookup", "challenge_value": "h.example.com."}),
            "1.2.0.192.in-addr.arpa",
            RecordType::PTR,
        ),
    ];
    for (target, params, name, rtype) in cases {
        server.clear_queries();
        let _ = post_dcv(&app, target, params).await;
        let asked: Vec<(String, RecordType)> = server
            .queries()
            .into_iter()
            .map(|q| (q.name, q.record_type))
            .collect();
        assert_eq!(asked, [(name.to_owned(), rtype)], "{target}");
    }
}

#[tokio::test]
async fn dns_account01() {
    let p = |account: &str| json!({"validation_method": "dns-account-01", "account_uri": account, "key_authorization_hash": HASH});
    let cases = vec![
        Case {
            name: "requirements.md label example",
            target: "example.com",
            params: p(ACCOUNT),
            want: seen(
                true,
                "_ujmmovf2vn55tgye._acme-challenge.example.com",
                &[HASH],
            ),
        },
        Case {
            name: "wildcard",
            target: "*.example.com",
            params: p(ACCOUNT),
            want: seen(
                true,
                "_ujmmovf2vn55tgye._acme-challenge.example.com",
                &[HASH],
            ),
        },
        Case {
            name: "another account has another label",
            target: "example.com",
            params: p("https://example.com/acme/acct/Other"),
            want: nothing("_dnq5s6zdtuxfgngs._acme-challenge.example.com", 3),
        },
    ];
    run(ValidationMethod::DnsAccount01, cases).await;
}

#[tokio::test]
async fn dns_change() {
    let p = |value: &str, rtype: &str, prefix: Option<&str>, exact: bool, case: bool| {
        json!({"validation_method": "dns-change", "challenge_value": value, "dns_record_type": rtype,
               "dns_name_prefix": prefix, "require_exact_match": exact, "require_exact_case": case})
    };
    let cases = vec![
        Case {
            name: "TXT substring by default",
            target: "example.com",
            params: p("Token-123", "TXT", Some("_dc"), false, true),
            want: seen(true, "_dc.example.com", &["prefix Token-123 suffix"]),
        },
        Case {
            name: "TXT case-sensitive by default",
            target: "example.com",
            params: p("token-123", "TXT", Some("_dc"), false, true),
            want: seen(false, "_dc.example.com", &["prefix Token-123 suffix"]),
        },
        Case {
            name: "TXT case-insensitive on request",
            target: "example.com",
            params: p("TOKEN-123", "TXT", Some("_dc"), false, false),
            want: seen(true, "_dc.example.com", &["prefix Token-123 suffix"]),
        },
        Case {
            name: "TXT exact refuses a substring",
            target: "example.com",
            params: p("Token-123", "TXT", Some("_dc"), true, true),
            want: seen(false, "_dc.example.com", &["prefix Token-123 suffix"]),
        },
        Case {
            name: "TXT with a NUL byte, compared as bytes",
            target: "nul.example.com",
            params: p("x\u{0}y", "TXT", None, true, true),
            want: seen(true, "nul.example.com", &["x\\u{0}y"]),
        },
        Case {
            name: "TXT with invalid UTF-8: shown safely, matched as bytes",
            target: "bin.example.com",
            params: p("Token-123", "TXT", None, false, true),
            want: seen(true, "bin.example.com", &["\u{fffd}Token-123"]),
        },
        Case {
            name: "U+FFFD does not match an invalid byte",
            target: "bin.example.com",
            params: p("\u{fffd}Token-123", "TXT", None, true, true),
            want: seen(false, "bin.example.com", &["\u{fffd}Token-123"]),
        },
        Case {
            name: "CNAME: trailing dot kept, case-insensitive although exact case is asked",
            target: "cname.example.com",
            params: p("token-123.dcv.example.net.", "CNAME", None, true, true),
            want: seen(true, "cname.example.com", &["Token-123.dcv.example.net."]),
        },
        Case {
            name: "CNAME exact without the trailing dot fails",
            target: "cname.example.com",
            params: p("token-123.dcv.example.net", "CNAME", None, true, true),
            want: seen(false, "cname.example.com", &["Token-123.dcv.example.net."]),
        },
        Case {
            name: "CAA value, case-insensitive",
            target: "caa.example.com",
            params: p("TOKEN-123", "CAA", None, false, true),
            want: seen(true, "caa.example.com", &["token-123.ca.example"]),
        },
        Case {
            name: "wildcard target",
            target: "*.example.com",
            params: p("Token-123", "TXT", Some("_dc"), false, true),
            want: seen(true, "_dc.example.com", &["prefix Token-123 suffix"]),
        },
        Case {
            name: "empty prefix is no prefix",
            target: "nul.example.com",
            params: p("x", "TXT", Some(""), false, true),
            want: seen(true, "nul.example.com", &["x\\u{0}y"]),
        },
        Case {
            name: "NOERROR without the type",
            target: "nodata.example.com",
            params: p("x", "TXT", None, false, true),
            want: nothing("nodata.example.com", 0),
        },
    ];
    run(ValidationMethod::DnsChange, cases).await;
}

#[tokio::test]
async fn dns_persistent() {
    let p = |issuers: Value| {
        json!({"validation_method": "dns-persistent", "issuer_domain_names": issuers,
               "expected_account_uri": PERSIST_ACCOUNT})
    };
    let cases = vec![
        Case {
            name: "authorised, the malformed record beside it skipped",
            target: "example.com",
            params: p(json!(["other.example", "CA.Example"])),
            want: seen(
                true,
                "_validation-persist.example.com",
                &[PERSIST, "not a persist record \u{fffd}"],
            ),
        },
        Case {
            name: "another CA",
            target: "example.com",
            params: p(json!(["other.example"])),
            want: seen(
                false,
                "_validation-persist.example.com",
                &[PERSIST, "not a persist record \u{fffd}"],
            ),
        },
        Case {
            name: "wildcard without policy=wildcard",
            target: "*.example.com",
            params: p(json!(["ca.example"])),
            want: seen(
                false,
                "_validation-persist.example.com",
                &[PERSIST, "not a persist record \u{fffd}"],
            ),
        },
        Case {
            name: "wildcard with policy=wildcard",
            target: "*.wild.example.com",
            params: p(json!(["ca.example"])),
            want: seen(
                true,
                "_validation-persist.wild.example.com",
                &["CA.example; accounturi=https://ca.example/acct/1; policy=wildcard"],
            ),
        },
        Case {
            name: "persistUntil passed",
            target: "expired.example.com",
            params: p(json!(["ca.example"])),
            want: seen(
                false,
                "_validation-persist.expired.example.com",
                &["ca.example; accounturi=https://ca.example/acct/1; persistUntil=1000"],
            ),
        },
    ];
    // Issuer domain names compare as domain names, on both sides: case-insensitively, a
    // trailing root dot ignored (draft-ietf-acme-dns-persist, Boulder).
    let fqdn = &["LETSENCRYPT.ORG.; accounturi=https://ca.example/acct/1"];
    let cases = [
        (
            "record fully qualified and upper case",
            json!(["letsencrypt.org"]),
            true,
        ),
        (
            "request fully qualified too",
            json!(["LetsEncrypt.org."]),
            true,
        ),
        ("another name", json!(["letsencrypt.com"]), false),
    ]
    .into_iter()
    .map(|(name, issuers, passed)| Case {
        name,
        target: "fqdn.example.com",
        params: p(issuers),
        want: seen(passed, "_validation-persist.fqdn.example.com", fqdn),
    })
    .chain(cases)
    .collect();
    run(ValidationMethod::DnsPersistent, cases).await;
}

#[tokio::test]
async fn contact_txt() {
    let email = |v: &str| json!({"validation_method": "contact-email-txt", "challenge_value": v});
    let phone = |v: &str| json!({"validation_method": "contact-phone-txt", "challenge_value": v});
    run(
        ValidationMethod::ContactEmailTxt,
        vec![
            Case {
                name: "email, case-insensitive",
                target: "example.com",
                params: email("admin@EXAMPLE.com"),
                want: seen(
                    true,
                    "_validation-contactemail.example.com",
                    &["Admin@Example.com"],
                ),
            },
            Case {
                name: "email, exact: no substring",
                target: "example.com",
                params: email("admin@example"),
                want: seen(
                    false,
                    "_validation-contactemail.example.com",
                    &["Admin@Example.com"],
                ),
            },
            Case {
                name: "email, wildcard uses the base name",
                target: "*.example.com",
                params: email("admin@example.com"),
                want: seen(
                    true,
                    "_validation-contactemail.example.com",
                    &["Admin@Example.com"],
                ),
            },
        ],
    )
    .await;
    run(
        ValidationMethod::ContactPhoneTxt,
        vec![
            Case {
                name: "phone",
                target: "example.com",
                params: phone("+1 555 0100"),
                want: seen(
                    true,
                    "_validation-contactphone.example.com",
                    &["+1 555 0100"],
                ),
            },
            Case {
                name: "phone, another number",
                target: "example.com",
                params: phone("+1 555 0199"),
                want: seen(
                    false,
                    "_validation-contactphone.example.com",
                    &["+1 555 0100"],
                ),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn contact_caa_climbs_like_caa() {
    let email = |v: &str, prefix: Option<&str>| json!({"validation_method": "contact-email-caa", "challenge_value": v, "dns_name_prefix": prefix});
    let phone = |v: &str| json!({"validation_method": "contact-phone-caa", "challenge_value": v});
    run(
        ValidationMethod::ContactEmailCaa,
        vec![
            Case {
                name: "at the name",
                target: "example.com",
                params: email("Admin@Example.com", None),
                want: seen(true, "example.com", &["admin@example.com"]),
            },
            Case {
                name: "climbs from a name that does not exist",
                target: "a.b.nx.example.com",
                params: email("admin@example.com", None),
                want: seen(true, "example.com", &["admin@example.com"]),
            },
            Case {
                name: "climbs from the prefixed name",
                target: "example.com",
                params: email("admin@example.com", Some("_sub")),
                want: seen(true, "example.com", &["admin@example.com"]),
            },
            Case {
                name: "stops at the first name with any CAA set",
                target: "a.b.stop.example.com",
                params: email("admin@example.com", None),
                want: seen(false, "stop.example.com", &[]),
            },
            Case {
                name: "CNAME at the first level",
                target: "alias.example.com",
                params: email("other@example.net", None),
                want: Want {
                    cname_chain: &["contacts.example.net."],
                    ..seen(true, "alias.example.com", &["other@example.net"])
                },
            },
            Case {
                name: "wildcard uses the base name",
                target: "*.example.com",
                params: email("admin@example.com", None),
                want: seen(true, "example.com", &["admin@example.com"]),
            },
            Case {
                name: "another address",
                target: "example.com",
                params: email("root@example.com", None),
                want: seen(false, "example.com", &["admin@example.com"]),
            },
        ],
    )
    .await;
    run(
        ValidationMethod::ContactPhoneCaa,
        vec![
            Case {
                name: "phone tag compared case-insensitively",
                target: "x.example.com",
                params: phone("+1 555 0100"),
                want: seen(true, "example.com", &["+1 555 0100"]),
            },
            Case {
                name: "no contactphone at the relevant set",
                target: "stop.example.com",
                params: phone("+1 555 0100"),
                want: seen(false, "stop.example.com", &[]),
            },
        ],
    )
    .await;
}

#[tokio::test]
async fn contact_caa_with_no_caa_anywhere() {
    let server = DnsServer::start(Zone::new().a("www.example.org", "192.0.2.1".parse().unwrap()))
        .await
        .unwrap();
    let app = router(&plain_config("p1", server.addr()));
    let r = post_dcv(
        &app,
        "www.example.org",
        json!({"validation_method": "contact-email-caa", "challenge_value": "a@example.org"}),
    )
    .await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(errors(&r)[0].0, error_type::DCV_LOOKUP);
    assert_eq!(details(&r).found_at.as_deref(), Some("www.example.org"));
    assert_eq!(details(&r).records_seen.as_deref(), Some(&[][..]));
}

#[tokio::test]
async fn ip_address() {
    let p = |v: &str, t: &str, prefix: Option<&str>| json!({"validation_method": "ip-address", "challenge_value": v, "dns_record_type": t, "dns_name_prefix": prefix});
    let cases = vec![
        Case {
            name: "one of two A records",
            target: "host.example.com",
            params: p("192.0.2.2", "A", None),
            want: seen(true, "host.example.com", &["192.0.2.1", "192.0.2.2"]),
        },
        Case {
            name: "A mismatch",
            target: "host.example.com",
            params: p("192.0.2.3", "A", None),
            want: seen(false, "host.example.com", &["192.0.2.1", "192.0.2.2"]),
        },
        Case {
            name: "AAAA compared as addresses",
            target: "host.example.com",
            params: p("1:0:00:000:0000::", "AAAA", None),
            want: seen(true, "host.example.com", &["1::"]),
        },
        Case {
            name: "with a prefix",
            target: "host.example.com",
            params: p("198.51.100.1", "A", Some("_ip")),
            want: seen(true, "_ip.host.example.com", &["198.51.100.1"]),
        },
        Case {
            name: "wildcard uses the base name",
            target: "*.host.example.com",
            params: p("192.0.2.1", "A", None),
            want: seen(true, "host.example.com", &["192.0.2.1", "192.0.2.2"]),
        },
        // Open MPIC's compliance suite: a value that is not an address of the record type's
        // family is no 400; the check runs and fails (api.md).
        Case {
            name: "an IPv4 value for AAAA",
            target: "host.example.com",
            params: p("192.0.2.1", "AAAA", None),
            want: seen(false, "host.example.com", &["1::"]),
        },
        Case {
            name: "a malformed IPv6 value",
            target: "host.example.com",
            params: p("1:0:0:0:0:0:0:0:0", "AAAA", None),
            want: seen(false, "host.example.com", &["1::"]),
        },
    ];
    run(ValidationMethod::IpAddress, cases).await;
}

#[tokio::test]
async fn reverse_address_lookup() {
    let p = |v: &str| json!({"validation_method": "reverse-address-lookup", "challenge_value": v});
    let cases = vec![
        Case {
            name: "IPv4 target turned into its reverse name, case-insensitive",
            target: "192.0.2.1",
            params: p("host.example.COM."),
            want: seen(true, "1.2.0.192.in-addr.arpa", &["Host.Example.com."]),
        },
        Case {
            name: "the reverse name given as the target",
            target: "1.2.0.192.in-addr.arpa",
            params: p("host.example.com."),
            want: seen(true, "1.2.0.192.in-addr.arpa", &["Host.Example.com."]),
        },
        Case {
            name: "the trailing dot is part of the value",
            target: "192.0.2.1",
            params: p("host.example.com"),
            want: seen(false, "1.2.0.192.in-addr.arpa", &["Host.Example.com."]),
        },
        Case {
            name: "IPv6",
            target: "[2001:db8::1]",
            params: p("v6.example.com."),
            want: seen(
                true,
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                &["v6.example.com."],
            ),
        },
        Case {
            name: "no PTR",
            target: "192.0.2.2",
            params: p("host.example.com."),
            want: nothing("2.2.0.192.in-addr.arpa", 3),
        },
    ];
    run(ValidationMethod::ReverseAddressLookup, cases).await;
}

/// Every DNS method against every failure class: NXDOMAIN and "no answer" complete without a
/// pass; SERVFAIL, REFUSED, silence and DNSSEC failures do not complete and say why; all in
/// bounded time.
#[tokio::test]
async fn every_failure_class_for_every_method() {
    struct Class {
        label: &'static str,
        behaviour: Option<Behaviour>,
        completed: bool,
        error_type: &'static str,
        message_has: &'static str,
        response_code: Option<u16>,
    }
    let classes = [
        Class {
            label: "nx",
            behaviour: None,
            completed: true,
            error_type: error_type::DCV_LOOKUP,
            message_has: "NXDOMAIN (rcode 3)",
            response_code: Some(3),
        },
        Class {
            label: "servfail",
            behaviour: Some(Behaviour::ServFail),
            completed: false,
            error_type: error_type::DCV_LOOKUP,
            message_has: "SERVFAIL (rcode 2)",
            response_code: Some(2),
        },
        Class {
            label: "refused",
            behaviour: Some(Behaviour::Refused),
            completed: false,
            error_type: error_type::DCV_LOOKUP,
            message_has: "REFUSED (rcode 5)",
            response_code: Some(5),
        },
        Class {
            label: "silent",
            behaviour: Some(Behaviour::Drop),
            completed: false,
            error_type: error_type::DCV_LOOKUP,
            message_has: "within 400 ms",
            response_code: None,
        },
        Class {
            label: "bogus",
            behaviour: Some(Behaviour::ServFailWithEde {
                code: 6,
                text: "signature crypto failed".into(),
            }),
            completed: false,
            error_type: error_type::DCV_DNSSEC,
            message_has: "EDE 6 (DNSSEC Bogus): signature crypto failed",
            response_code: Some(2),
        },
    ];
    // (method, parameters, owner name prefix the method queries at `<label>.example.com`)
    let methods: Vec<(ValidationMethod, Value, &str)> = vec![
        (
            ValidationMethod::AcmeDns01,
            json!({"validation_method": "acme-dns-01", "key_authorization_hash": HASH}),
            "_acme-challenge.",
        ),
        (
            ValidationMethod::DnsAccount01,
            json!({"validation_method": "dns-account-01", "account_uri": ACCOUNT, "key_authorization_hash": HASH}),
            "_ujmmovf2vn55tgye._acme-challenge.",
        ),
        (
            ValidationMethod::DnsChange,
            json!({"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "TXT"}),
            "",
        ),
        (
            ValidationMethod::DnsPersistent,
            json!({"validation_method": "dns-persistent", "issuer_domain_names": ["ca.example"], "expected_account_uri": PERSIST_ACCOUNT}),
            "_validation-persist.",
        ),
        (
            ValidationMethod::ContactEmailTxt,
            json!({"validation_method": "contact-email-txt", "challenge_value": "a@example.com"}),
            "_validation-contactemail.",
        ),
        (
            ValidationMethod::ContactPhoneTxt,
            json!({"validation_method": "contact-phone-txt", "challenge_value": "+1 555"}),
            "_validation-contactphone.",
        ),
        (
            ValidationMethod::ContactEmailCaa,
            json!({"validation_method": "contact-email-caa", "challenge_value": "a@example.com"}),
            "",
        ),
        (
            ValidationMethod::ContactPhoneCaa,
            json!({"validation_method": "contact-phone-caa", "challenge_value": "+1 555"}),
            "",
        ),
        (
            ValidationMethod::IpAddress,
            json!({"validation_method": "ip-address", "challenge_value": "192.0.2.1", "dns_record_type": "A"}),
            "",
        ),
        (
            ValidationMethod::ReverseAddressLookup,
            json!({"validation_method": "reverse-address-lookup", "challenge_value": "h.example.com."}),
            "",
        ),
    ];
    // `example.com` exists (so the contact-CAA climb finds `com` to be an empty non-terminal,
    // not a TLD that does not exist) and holds no CAA.
    let mut zone = Zone::new().a("example.com", "192.0.2.1".parse().unwrap());
    for class in &classes {
        if let Some(behaviour) = &class.behaviour {
            for (_, _, prefix) in &methods {
                zone = zone.behave(
                    &format!("{prefix}{}.example.com", class.label),
                    behaviour.clone(),
                );
            }
        }
    }
    let server = DnsServer::start(zone).await.unwrap();
    let app = router(&plain_config("p1", server.addr()));
    let app = &app;

    let runs = classes.iter().flat_map(|class| {
        methods
            .iter()
            .map(move |(method, params, prefix)| async move {
                let target = format!("{}.example.com", class.label);
                let started = Instant::now();
                let r = post_dcv(app, &target, params.clone()).await;
                (
                    class,
                    *method,
                    format!("{prefix}{target}"),
                    started.elapsed(),
                    r,
                )
            })
    });
    let results = join_all(runs).await;
    assert_eq!(results.len(), 50);
    for (class, method, owner, elapsed, r) in results {
        let case = format!("{} / {}", class.label, method.as_str());
        // Bounded: one lookup deadline (400 ms), or two for the climb's retry.
        assert!(
            elapsed < Duration::from_millis(2_500),
            "{case}: took {elapsed:?}"
        );
        assert!(!r.check_passed, "{case}: {r:?}");
        assert_eq!(r.check_completed, class.completed, "{case}: {r:?}");
        let errors = errors(&r);
        assert_eq!(errors.len(), 1, "{case}: {r:?}");
        assert_eq!(errors[0].0, class.error_type, "{case}");
        assert!(
            errors[0].1.contains(class.message_has) && errors[0].1.contains(&owner),
            "{case}: {}",
            errors[0].1
        );
        let d = details(&r);
        assert_eq!(d.validation_method, method, "{case}");
        assert_eq!(d.found_at.as_deref(), Some(owner.as_str()), "{case}");
        assert_eq!(d.response_code, class.response_code, "{case}");
        if class.response_code.is_some() {
            assert_eq!(d.ad_flag, Some(false), "{case}");
            assert_eq!(d.cname_chain.as_deref(), Some(&[][..]), "{case}");
        } else {
            assert_eq!(
                (d.ad_flag, &d.cname_chain, &d.records_seen),
                (None, &None, &None),
                "{case}"
            );
        }
    }
}

/// The combinations the API forbids are refused before any lookup, naming the field.
#[tokio::test]
async fn forbidden_combinations_are_refused_naming_the_field() {
    let server = DnsServer::start(zone()).await.unwrap();
    let app = router(&plain_config("p1", server.addr()));
    let long = format!("{}.example.com", vec!["a".repeat(59); 4].join("."));
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "IP target for a name method",
            "192.0.2.1".into(),
            json!({"validation_method": "contact-email-txt", "challenge_value": "a@b.example"}),
            "domain_or_ip_target",
        ),
        (
            "wildcard for reverse lookup",
            "*.example.com".into(),
            json!({"validation_method": "reverse-address-lookup", "challenge_value": "h.example."}),
            "domain_or_ip_target",
        ),
        (
            "fixed prefix differs",
            "example.com".into(),
            json!({"validation_method": "contact-email-txt", "challenge_value": "a@b.example", "dns_name_prefix": "_other"}),
            "dns_name_prefix",
        ),
        (
            "record type outside the method's",
            "example.com".into(),
            json!({"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "A"}),
            "dns_record_type",
        ),
        (
            "empty challenge value",
            "example.com".into(),
            json!({"validation_method": "contact-phone-caa", "challenge_value": ""}),
            "dcv_check_parameters.challenge_value",
        ),
        (
            "the name to query would be too long",
            long,
            json!({"validation_method": "acme-dns-01", "key_authorization_hash": HASH}),
            "domain_or_ip_target",
        ),
        (
            "a prefix that makes the name too long",
            format!("{}.example.com", vec!["a".repeat(59); 4].join(".")),
            json!({"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "TXT", "dns_name_prefix": "_p"}),
            "dcv_check_parameters.dns_name_prefix",
        ),
    ];
    for (name, target, params, field) in cases {
        let (status, body) = post_dcv_raw(&app, &target, params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert!(body.contains(field), "{name}: {body}");
    }
    assert!(server.queries().is_empty(), "{:?}", server.queries());
}
