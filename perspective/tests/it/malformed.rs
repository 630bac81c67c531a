//! Malformed requests through the router: each is a 4xx naming the problem, none a 5xx, none a
//! pass (issue: "Bad input never panics the service and never yields check_passed: true").

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mpic_tests::dns::{DnsServer, Zone};
use tower::ServiceExt as _;

use crate::support::{plain_config, router};

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    /// Text the response body must contain (the field or the problem named).
    names: &'static str,
}

fn json(name: &'static str, path: &'static str, body: &str, names: &'static str) -> Case {
    Case {
        name,
        path,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        status: StatusCode::BAD_REQUEST,
        names,
    }
}

#[tokio::test]
async fn malformed_requests_are_refused_with_the_field_named() {
    let server = DnsServer::start(Zone::new().caa("example.com", 0, "issue", "ca.example"))
        .await
        .unwrap();
    let app = router(&plain_config("p1", server.addr()));
    let big = format!(
        r#"{{"domain_or_ip_target":"example.com","trace_identifier":"{}"}}"#,
        "x".repeat(70_000)
    );
    let cases = vec![
        json("not json", "/caa", "domain=example.com", "not valid JSON"),
        json("empty body", "/caa", "", "not valid JSON"),
        json(
            "truncated json",
            "/caa",
            r#"{"domain_or_ip_target": "exa"#,
            "not valid JSON",
        ),
        json("array instead of object", "/caa", "[]", "invalid field"),
        json("missing target", "/caa", "{}", "domain_or_ip_target"),
        json(
            "target is a number",
            "/caa",
            r#"{"domain_or_ip_target": 5}"#,
            "domain_or_ip_target",
        ),
        json(
            "target is null",
            "/caa",
            r#"{"domain_or_ip_target": null}"#,
            "domain_or_ip_target",
        ),
        json(
            "empty target",
            "/caa",
            r#"{"domain_or_ip_target": ""}"#,
            "domain_or_ip_target",
        ),
        json(
            "target with space",
            "/caa",
            r#"{"domain_or_ip_target": "exa mple.com"}"#,
            "domain_or_ip_target",
        ),
        json(
            "target with underscore",
            "/caa",
            r#"{"domain_or_ip_target": "_x.example.com"}"#,
            "domain_or_ip_target",
        ),
        json(
            "bad punycode",
            "/caa",
            r#"{"domain_or_ip_target": "xn--a.example.com"}"#,
            "domain_or_ip_target",
        ),
        json(
            "misplaced wildcard",
            "/caa",
            r#"{"domain_or_ip_target": "a.*.example.com"}"#,
            "domain_or_ip_target",
        ),
        json(
            "bad ipv4",
            "/caa",
            r#"{"domain_or_ip_target": "256.1.1.1"}"#,
            "domain_or_ip_target",
        ),
        json(
            "bare TLD",
            "/caa",
            r#"{"domain_or_ip_target": "com"}"#,
            "domain_or_ip_target",
        ),
        json(
            "label too long",
            "/caa",
            &format!(r#"{{"domain_or_ip_target": "{}.com"}}"#, "a".repeat(64)),
            "domain_or_ip_target",
        ),
        json(
            "unknown top-level field",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "colour": "red"}"#,
            "colour",
        ),
        json(
            "unknown certificate type",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "caa_check_parameters": {"certificate_type": "code-signing"}}"#,
            "caa_check_parameters.certificate_type",
        ),
        json(
            "caa_domains not a list",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "caa_check_parameters": {"caa_domains": "ca.example"}}"#,
            "caa_check_parameters.caa_domains",
        ),
        json(
            "bad caa domain",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "caa_check_parameters": {"caa_domains": ["ok.example", "not ok"]}}"#,
            "caa_check_parameters.caa_domains[1]",
        ),
        json(
            "allow_lookup_failure as string",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "caa_check_parameters": {"allow_lookup_failure": "yes"}}"#,
            "caa_check_parameters.allow_lookup_failure",
        ),
        json(
            "unknown caa parameter",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "caa_check_parameters": {"surprise": 1}}"#,
            "surprise",
        ),
        json(
            "bad rfc8657 method",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "caa_check_parameters": {"validation_method": "dns_01"}}"#,
            "caa_check_parameters.validation_method",
        ),
        json(
            "bad account uri",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "caa_check_parameters": {"account_uri": "not a uri"}}"#,
            "caa_check_parameters.account_uri",
        ),
        json(
            "trace identifier not a string",
            "/caa",
            r#"{"domain_or_ip_target": "example.com", "trace_identifier": 7}"#,
            "trace_identifier",
        ),
        json(
            "dcv without parameters",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com"}"#,
            "dcv_check_parameters",
        ),
        json(
            "dcv unknown method",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "fax"}}"#,
            "fax",
        ),
        json(
            "dcv missing method",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"challenge_value": "x"}}"#,
            "validation_method",
        ),
        json(
            "dcv missing field",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "acme-http-01", "token": "t"}}"#,
            "key_authorization",
        ),
        json(
            "dcv wrong fixed type",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "acme-dns-01", "key_authorization_hash": "h", "dns_record_type": "CNAME"}}"#,
            "TXT",
        ),
        json(
            "dcv bad record type",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "MX"}}"#,
            "dns_record_type",
        ),
        json(
            "dcv empty challenge",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "website-change", "http_token_path": "p", "challenge_value": ""}}"#,
            "empty-challenge-value",
        ),
        json(
            "dcv bad prefix",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "TXT", "dns_name_prefix": "a..b"}}"#,
            "dns_name_prefix",
        ),
        json(
            "dcv ip for dns method",
            "/dcv",
            r#"{"domain_or_ip_target": "192.0.2.1", "dcv_check_parameters": {"validation_method": "acme-dns-01", "key_authorization_hash": "h"}}"#,
            "domain_or_ip_target",
        ),
        json(
            "dcv wildcard for http",
            "/dcv",
            r#"{"domain_or_ip_target": "*.example.com", "dcv_check_parameters": {"validation_method": "acme-http-01", "token": "t", "key_authorization": "t.k"}}"#,
            "domain_or_ip_target",
        ),
        json(
            "dcv bad tls-alpn digest",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "acme-tls-alpn-01", "key_authorization_hash": "zz"}}"#,
            "key_authorization_hash",
        ),
        json(
            "dcv ip-address with an empty value",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "ip-address", "challenge_value": "", "dns_record_type": "A"}}"#,
            "challenge_value",
        ),
        json(
            "dcv persistent empty issuers",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "dns-persistent", "issuer_domain_names": [], "expected_account_uri": "https://ca.example/a/1"}}"#,
            "issuer_domain_names",
        ),
        json(
            "dcv http-01 case-insensitive",
            "/dcv",
            r#"{"domain_or_ip_target": "example.com", "dcv_check_parameters": {"validation_method": "acme-http-01", "token": "t", "key_authorization": "k", "require_exact_case": false}}"#,
            "require_exact_case",
        ),
        Case {
            name: "wrong content type",
            path: "/caa",
            content_type: Some("text/plain"),
            body: br#"{"domain_or_ip_target":"example.com"}"#.to_vec(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            names: "unsupported-media-type",
        },
        Case {
            name: "oversized body",
            path: "/caa",
            content_type: Some("application/json"),
            body: big.into_bytes(),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            names: "payload-too-large",
        },
        Case {
            name: "invalid utf-8",
            path: "/caa",
            content_type: Some("application/json"),
            body: vec![b'{', 0xff, b'}'],
            status: StatusCode::BAD_REQUEST,
            names: "not valid JSON",
        },
        Case {
            name: "unknown path",
            path: "/mpic",
            content_type: Some("application/json"),
            body: b"{}".to_vec(),
            status: StatusCode::NOT_FOUND,
            names: "not-found",
        },
    ];
    assert!(cases.len() >= 30);
    for c in cases {
        let mut request = Request::post(c.path);
        if let Some(ct) = c.content_type {
            request = request.header("content-type", ct);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::from(c.body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            response.headers().get("x-mpic-perspective").unwrap(),
            "p1",
            "{}",
            c.name
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, c.status, "{}: {text}", c.name);
        assert!(text.contains(c.names), "{}: {text}", c.name);
        assert!(!text.contains("check_passed"), "{}: {text}", c.name);
        if status == StatusCode::BAD_REQUEST {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"], "request-validation-failed", "{}", c.name);
            assert!(
                !v["validation_issues"].as_array().unwrap().is_empty(),
                "{}",
                c.name
            );
        }
    }
    assert!(
        server.queries().is_empty(),
        "no malformed request reached DNS"
    );
}

#[tokio::test]
async fn a_well_formed_request_passes_and_says_who_answered() {
    let server = DnsServer::start(Zone::new().caa("example.com", 0, "issue", "ca.example"))
        .await
        .unwrap();
    let app = router(&plain_config("p1", server.addr()));
    let response = app
        .clone()
        .oneshot(
            Request::post("/caa")
                .body(Body::from(r#"{"domain_or_ip_target":"example.com","trace_identifier":"t1","caa_check_parameters":null}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("x-mpic-perspective").unwrap(), "p1");
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let r: mpic_common::api::CheckResponse = serde_json::from_slice(&body).unwrap();
    assert!(r.check_passed && r.check_completed);

    for path in ["/healthz", "/readyz"] {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            response.headers().get("x-mpic-perspective").unwrap(),
            "p1",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_dcv_target_that_does_not_resolve_never_passes() {
    let server = DnsServer::start(Zone::new()).await.unwrap();
    let app = router(&plain_config("p1", server.addr()));
    let body = r#"{"domain_or_ip_target":"example.com","dcv_check_parameters":{"validation_method":"acme-http-01","token":"tok","key_authorization":"tok.k"}}"#;
    let response = app
        .oneshot(Request::post("/dcv").body(Body::from(body)).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let r: mpic_common::api::CheckResponse = serde_json::from_slice(&body).unwrap();
    assert!(!r.check_passed, "{r:?}");
    assert!(!r.errors.is_empty(), "{r:?}");
}

#[tokio::test]
async fn readyz_fails_without_a_resolver() {
    // A UDP port nobody answers on.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let app = router(&plain_config("p1", silent.local_addr().unwrap()));
    let response = app
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_and_configz() {
    let server = DnsServer::start(
        Zone::new()
            .caa("example.com", 0, "issue", "ca.example")
            .caa("deny.example.com", 0, "issue", "other.example")
            .a("com", "192.0.2.9".parse().unwrap())
            .behave("broken.example.com", mpic_tests::dns::Behaviour::ServFail),
    )
    .await
    .unwrap();
    let app = router(&plain_config("p1", server.addr()));
    for target in [
        "example.com",
        "example.com",
        "deny.example.com",
        "broken.example.com",
    ] {
        let body = format!(r#"{{"domain_or_ip_target":"{target}"}}"#);
        let r = app
            .clone()
            .oneshot(Request::post("/caa").body(Body::from(body)).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = app
        .clone()
        .oneshot(Request::post("/caa").body(Body::from("{}")).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let value = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
    };
    assert_eq!(
        value(r#"mpic_checks_total{check_type="caa",method="",result="passed"}"#),
        2.0
    );
    assert_eq!(
        value(r#"mpic_checks_total{check_type="caa",method="",result="not_passed"}"#),
        1.0
    );
    assert_eq!(
        value(r#"mpic_checks_total{check_type="caa",method="",result="error"}"#),
        1.0
    );
    assert_eq!(
        value(r#"mpic_check_duration_seconds_count{check_type="caa",method=""}"#),
        4.0
    );
    // broken.example.com: a SERVFAIL and its retry.
    assert_eq!(
        value(r#"mpic_dns_lookups_total{record_type="CAA",outcome="SERVFAIL"}"#),
        2.0
    );
    assert!(value(r#"mpic_dns_lookups_total{record_type="CAA",outcome="NOERROR"}"#) >= 4.0);
    assert!(value("mpic_dns_lookup_duration_seconds_count") >= 6.0);
    assert_eq!(value("mpic_checks_in_flight"), 0.0);
    assert!(!text.contains("example.com"), "no domain names in labels");

    let r = app
        .oneshot(Request::get("/configz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap())
            .unwrap();
    assert_eq!(v["service"], "mpic-perspective");
    assert_eq!(v["config"]["perspective"]["code"], "p1");
    assert_eq!(
        v["config"]["resolver"]["address"],
        server.addr().to_string()
    );
}

/// The shared table of hostile requests (the test kit's `hostile`), over a real socket:
/// each answered with the status the contract demands, naming what is wrong; none a 5xx,
/// none a pass.
#[tokio::test]
async fn hostile_requests_over_the_wire() {
    let server = DnsServer::start(Zone::new().caa("example.com", 0, "issue", "ca.example"))
        .await
        .unwrap();
    let perspective = mpic_perspective::Perspective::bind(&plain_config("p1", server.addr()))
        .await
        .unwrap();
    let addr = perspective.local_addr().unwrap();
    tokio::spawn(perspective.serve(std::future::pending()));
    let cases = mpic_tests::hostile::cases(mpic_tests::hostile::Service::Perspective, "");
    assert!(cases.len() >= 100, "{} cases", cases.len());
    mpic_tests::hostile::run(addr, &cases).await;
}
