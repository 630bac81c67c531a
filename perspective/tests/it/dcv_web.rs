//! website-change and acme-http-01 (api.md, requirements.md "HTTP methods") against the test
//! kit's web servers on loopback, resolving through the test kit's DNS server, and against
//! Let's Encrypt's pebble-challtestsrv as an independent peer.
//!
//! The perspective dials loopback only because these tests turn on
//! `danger_allow_loopback_targets` and point the http/https ports at the test servers; the
//! special-purpose addresses used below (10.0.0.1, 203.0.113.5, ...) are refused before any
//! socket is opened, so no traffic leaves the machine.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use mpic_common::api::{
    CheckDetails, CheckResponse, DcvCheckParameters, HttpDetails, RedirectResponse,
};
use mpic_perspective::config::WebConfig;
use mpic_perspective::dcv::http_fetch::WebSettings;
use mpic_perspective::dcv::{self, DcvContext};
use mpic_perspective::resolver::DnsClient;
use mpic_tests::dns::{DnsServer, Zone};
use mpic_tests::web::{ChallTestSrv, Reply, Routes, WebServer};
use serde_json::json;

use crate::support::{DNS_TIMEOUT, target};

/// The whole-check deadline of these tests; the fetch deadline is nine tenths of it.
const CHECK_TIMEOUT: Duration = Duration::from_millis(2_000);
/// What the fetch deadline comes to.
const FETCH_DEADLINE_MS: u64 = 1_800;

const TOKEN: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";
const KEY_AUTHORIZATION: &str =
    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
const CHALLENGE_PATH: &str =
    "/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

fn zone() -> Zone {
    Zone::new()
        .a("example.com", "127.0.0.1".parse().unwrap())
        .a("other.example.com", "127.0.0.1".parse().unwrap())
        .aaaa("v6only.example.com", "::1".parse().unwrap())
        .aaaa("dual.example.com", "::1".parse().unwrap())
        .a("dual.example.com", "127.0.0.1".parse().unwrap())
        .a("internal.example.com", "10.0.0.1".parse().unwrap())
        .txt("noaddress.example.com", &[b"no addresses here"])
}

/// The `web:` settings of a perspective whose http (and https) URLs go to these ports.
fn web_config(http: u16, https: Option<u16>) -> WebConfig {
    WebConfig {
        connect_timeout_ms: 1_000,
        danger_allow_loopback_targets: true,
        danger_http_port: Some(http),
        danger_https_port: https,
        ..WebConfig::default()
    }
}

fn context(resolver: SocketAddr, web: &WebConfig) -> DcvContext {
    DcvContext {
        dns: DnsClient::new(resolver, DNS_TIMEOUT),
        web: WebSettings::from_config(web, "p1", CHECK_TIMEOUT),
    }
}

/// A DNS server with [`zone`], an HTTP server with `routes`, and a context pointing at both.
struct World {
    _dns: DnsServer,
    web: WebServer,
    ctx: DcvContext,
}

async fn world(routes: Routes) -> World {
    let dns = DnsServer::start(zone()).await.unwrap();
    let web = WebServer::start("127.0.0.1:0".parse().unwrap(), routes)
        .await
        .unwrap();
    let ctx = context(dns.addr(), &web_config(web.addr().port(), None));
    World {
        _dns: dns,
        web,
        ctx,
    }
}

fn http01(token: &str, key_authorization: &str) -> DcvCheckParameters {
    serde_json::from_value(json!({
        "validation_method": "acme-http-01",
        "token": token,
        "key_authorization": key_authorization,
        "http_headers": {"X-Probe": "mpic"},
    }))
    .unwrap()
}

fn website(extra: serde_json::Value) -> DcvCheckParameters {
    let mut p = json!({
        "validation_method": "website-change",
        "http_token_path": "token.txt",
        "challenge_value": "site-verification=abc123",
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    serde_json::from_value(p).unwrap()
}

async fn run(ctx: &DcvContext, t: &str, params: &DcvCheckParameters) -> CheckResponse {
    dcv::check(ctx, &target(t), params).await
}

fn details(r: &CheckResponse) -> &HttpDetails {
    match &r.details {
        CheckDetails::Http(d) => d,
        other => panic!("not HTTP details: {other:?}"),
    }
}

fn errors(r: &CheckResponse) -> Vec<(String, String)> {
    r.errors
        .iter()
        .map(|e| (e.error_type.clone(), e.error_message.clone()))
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn http01_passes_and_reports_what_it_saw() {
    let body = format!("{KEY_AUTHORIZATION}\r\n");
    let w = world(Routes::new().route(CHALLENGE_PATH, Reply::ok(body.clone()))).await;
    let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert!(r.check_completed && r.check_passed, "{r:?}");
    assert_eq!(r.errors, []);
    let url = format!("http://example.com{CHALLENGE_PATH}");
    assert_eq!(
        details(&r),
        &HttpDetails {
            validation_method: mpic_common::api::ValidationMethod::AcmeHttp01,
            response_history: None,
            response_url: Some(url.clone()),
            response_status_code: Some(200),
            response_page: Some(b64(body.as_bytes())),
            final_url: Some(url),
            resolved_ip: Some("127.0.0.1".to_owned()),
        }
    );
    let seen = w.web.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, CHALLENGE_PATH);
    assert_eq!(seen[0].header("host"), Some("example.com"));
    assert_eq!(seen[0].header("x-probe"), Some("mpic"));
    assert_eq!(
        seen[0].header("user-agent"),
        Some(
            format!(
                "mpic-perspective/{} (perspective p1)",
                env!("CARGO_PKG_VERSION")
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn http01_failures_of_the_answer() {
    struct Case {
        name: &'static str,
        reply: Reply,
        want_error: &'static str,
    }
    let cases = [
        Case {
            name: "404",
            reply: Reply::status(404, "not found"),
            want_error: "status 404, 200 is required",
        },
        Case {
            name: "500",
            reply: Reply::status(500, KEY_AUTHORIZATION),
            want_error: "status 500, 200 is required",
        },
        Case {
            name: "204 is 2xx but not 200",
            reply: Reply::status(204, ""),
            want_error: "status 204, 200 is required",
        },
        Case {
            name: "wrong body",
            reply: Reply::ok(format!("{TOKEN}.wrongthumbprint")),
            want_error: "the body is not the key authorization",
        },
        Case {
            name: "key authorization inside a page",
            reply: Reply::ok(format!("<html>{KEY_AUTHORIZATION}</html>")),
            want_error: "the body is not the key authorization",
        },
        Case {
            name: "case differs",
            reply: Reply::ok(KEY_AUTHORIZATION.to_uppercase()),
            want_error: "the body is not the key authorization",
        },
    ];
    let w = world(Routes::new()).await;
    for c in cases {
        w.web
            .set_routes(Routes::new().route(CHALLENGE_PATH, c.reply));
        let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
        // The server answered: the check completed, and failed (reference behaviour).
        assert!(
            r.check_completed && !r.check_passed,
            "case {:?}: {r:?}",
            c.name
        );
        let errs = errors(&r);
        assert_eq!(errs.len(), 1, "case {:?}", c.name);
        assert_eq!(errs[0].0, "mpic_error:http", "case {:?}", c.name);
        assert_eq!(
            errs[0].1,
            format!("http://example.com{CHALLENGE_PATH}: {}", c.want_error),
            "case {:?}",
            c.name
        );
        assert!(
            details(&r).response_status_code.is_some(),
            "case {:?}",
            c.name
        );
    }
}

#[tokio::test]
async fn website_change_finds_the_value_beyond_the_first_100_bytes() {
    let filler = "<html><head><title>A page with a long head</title></head><body>".repeat(8);
    let body = format!("{filler}site-verification=abc123</body></html>");
    assert!(body.len() > 500);
    let w = world(Routes::new().route(
        "/.well-known/pki-validation/token.txt",
        Reply::ok(body.clone()),
    ))
    .await;
    let r = run(&w.ctx, "example.com", &website(json!({}))).await;
    // The reference reads only max(100, len(challenge)) bytes and would miss it.
    assert!(r.check_completed && r.check_passed, "{r:?}");
    let d = details(&r);
    assert_eq!(
        d.response_page.as_deref(),
        Some(b64(&body.as_bytes()[..100]).as_str()),
        "the echo stays short"
    );
    assert_eq!(
        d.response_url.as_deref(),
        Some("http://example.com/.well-known/pki-validation/token.txt")
    );
}

#[tokio::test]
async fn website_change_matching_rules() {
    struct Case {
        name: &'static str,
        body: &'static str,
        status: u16,
        params: serde_json::Value,
        want_passed: bool,
    }
    let cases = [
        Case {
            name: "exact case found",
            body: "x site-verification=abc123 y",
            status: 200,
            params: json!({}),
            want_passed: true,
        },
        Case {
            name: "other case, exact required",
            body: "SITE-VERIFICATION=ABC123",
            status: 200,
            params: json!({}),
            want_passed: false,
        },
        Case {
            name: "other case, case-insensitive",
            body: "SITE-VERIFICATION=ABC123",
            status: 200,
            params: json!({"require_exact_case": false}),
            want_passed: true,
        },
        Case {
            name: "any 2xx",
            body: "site-verification=abc123",
            status: 203,
            params: json!({}),
            want_passed: true,
        },
        Case {
            name: "404 with the value",
            body: "site-verification=abc123",
            status: 404,
            params: json!({}),
            want_passed: false,
        },
        Case {
            name: "regex matches",
            body: "site-verification=abc123\nexpires=2030-01-01",
            status: 200,
            params: json!({"match_regex": "expires=20[0-9]{2}-[0-9]{2}-[0-9]{2}$"}),
            want_passed: true,
        },
        Case {
            name: "regex does not match",
            body: "site-verification=abc123\nexpires=never",
            status: 200,
            params: json!({"match_regex": "expires=20[0-9]{2}-[0-9]{2}-[0-9]{2}$"}),
            want_passed: false,
        },
        Case {
            name: "regex alone",
            body: "token: 7f3a9c",
            status: 200,
            params: json!({"challenge_value": "", "match_regex": "token: [0-9a-f]{6}"}),
            want_passed: true,
        },
        Case {
            name: "regex alone, no match",
            body: "token: zzz",
            status: 200,
            params: json!({"challenge_value": "", "match_regex": "token: [0-9a-f]{6}"}),
            want_passed: false,
        },
        Case {
            name: "value missing though regex matches",
            body: "expires=2030-01-01",
            status: 200,
            params: json!({"match_regex": "expires"}),
            want_passed: false,
        },
    ];
    let w = world(Routes::new()).await;
    for c in cases {
        w.web.set_routes(Routes::new().route(
            "/.well-known/pki-validation/token.txt",
            Reply::status(c.status, c.body),
        ));
        let r = run(&w.ctx, "example.com", &website(c.params)).await;
        assert!(r.check_completed, "case {:?}: {r:?}", c.name);
        assert_eq!(r.check_passed, c.want_passed, "case {:?}: {r:?}", c.name);
        assert_eq!(
            r.errors.is_empty(),
            c.want_passed,
            "case {:?}: {r:?}",
            c.name
        );
        assert_eq!(
            details(&r).response_status_code,
            Some(c.status),
            "case {:?}",
            c.name
        );
    }
}

#[tokio::test]
async fn each_allowed_redirect_is_followed_and_reported() {
    let w = world(Routes::new()).await;
    for status in [301, 302, 307, 308] {
        w.web.set_routes(
            Routes::new()
                .route(
                    CHALLENGE_PATH,
                    Reply::redirect(status, "http://other.example.com/moved?x=1"),
                )
                .route("/moved?x=1", Reply::ok(KEY_AUTHORIZATION)),
        );
        let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
        assert!(r.check_completed && r.check_passed, "{status}: {r:?}");
        let d = details(&r);
        assert_eq!(
            d.response_history,
            Some(vec![RedirectResponse {
                status_code: status,
                url: "http://other.example.com/moved?x=1".to_owned()
            }]),
            "{status}"
        );
        assert_eq!(
            d.response_url.as_deref(),
            Some(format!("http://example.com{CHALLENGE_PATH}").as_str()),
            "{status}: response_url stays the original"
        );
        assert_eq!(
            d.final_url.as_deref(),
            Some("http://other.example.com/moved?x=1"),
            "{status}"
        );
    }
    // Each hop was its own request, with its own Host.
    let hosts: Vec<_> = w
        .web
        .requests()
        .iter()
        .map(|r| r.header("host").unwrap().to_owned())
        .collect();
    assert_eq!(
        hosts,
        ["example.com", "other.example.com"].repeat(4),
        "each redirect is resolved and fetched again"
    );
}

#[tokio::test]
async fn redirects_the_policy_refuses() {
    struct Case {
        name: &'static str,
        routes: Routes,
        want_message: String,
    }
    let chain = |hops: usize| {
        let mut routes = Routes::new().route(CHALLENGE_PATH, Reply::redirect(302, "/r/1"));
        for i in 1..hops {
            routes = routes.route(
                &format!("/r/{i}"),
                Reply::redirect(302, format!("/r/{}", i + 1)),
            );
        }
        routes.route(&format!("/r/{hops}"), Reply::ok(KEY_AUTHORIZATION))
    };
    let cases = vec![
        Case {
            name: "303",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(303, "/x")),
            want_message: "redirect 303 to \"/x\" refused: only 301, 302, 307 and 308 are followed".into(),
        },
        Case {
            name: "300",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(300, "/x")),
            want_message: "redirect 300 to \"/x\" refused: only 301, 302, 307 and 308 are followed".into(),
        },
        Case {
            name: "no location",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::Redirect { status: 302, location: None }),
            want_message: "redirect 302 refused: no Location header".into(),
        },
        Case {
            name: "port 8080",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(302, "http://example.com:8080/x")),
            want_message: "redirect 302 to \"http://example.com:8080/x\" refused: port 8080; only 80 (http) and 443 (https) are followed".into(),
        },
        Case {
            name: "ftp",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(301, "ftp://example.com/x")),
            want_message: "redirect 301 to \"ftp://example.com/x\" refused: scheme \"ftp\"; only http and https are followed".into(),
        },
        Case {
            name: "reserved address literal",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(302, "http://10.0.0.1/x")),
            want_message: "redirect 302 to \"http://10.0.0.1/x\" refused: 10.0.0.1: is in 10.0.0.0/8, private-use (RFC 1918); such addresses are never dialled".into(),
        },
        Case {
            name: "name resolving to a reserved address",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(307, "http://internal.example.com/x")),
            want_message: "redirect 307 to \"http://internal.example.com/x\" refused: 10.0.0.1: is in 10.0.0.0/8, private-use (RFC 1918); such addresses are never dialled".into(),
        },
        Case {
            name: "cloud metadata address",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(302, "http://169.254.169.254/latest/meta-data/")),
            want_message: "redirect 302 to \"http://169.254.169.254/latest/meta-data/\" refused: 169.254.169.254: is in 169.254.0.0/16, link-local (RFC 3927); such addresses are never dialled".into(),
        },
        Case {
            name: "single-label host",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(302, "http://localhost/x")),
            want_message: "redirect 302 to \"http://localhost/x\" refused: \"localhost\" is not a valid domain name".into(),
        },
        Case {
            name: "loop",
            routes: Routes::new()
                .route(CHALLENGE_PATH, Reply::redirect(302, "/b"))
                .route("/b", Reply::redirect(301, CHALLENGE_PATH)),
            want_message: format!("redirect 301 to {CHALLENGE_PATH:?} refused: a loop (this URL was already fetched)"),
        },
        Case {
            name: "loop onto itself",
            routes: Routes::new().route(CHALLENGE_PATH, Reply::redirect(308, CHALLENGE_PATH)),
            want_message: format!("redirect 308 to {CHALLENGE_PATH:?} refused: a loop (this URL was already fetched)"),
        },
        Case {
            name: "21 hops",
            routes: chain(21),
            want_message: "redirect 302 to \"/r/21\" refused: more than 20 redirects".into(),
        },
    ];
    let w = world(Routes::new()).await;
    for c in cases {
        w.web.set_routes(c.routes);
        let before = w.web.requests().len();
        let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
        assert!(
            r.check_completed && !r.check_passed,
            "case {:?}: {r:?}",
            c.name
        );
        assert_eq!(
            errors(&r),
            [("mpic_error:redirect:invalid".to_owned(), c.want_message)],
            "case {:?}",
            c.name
        );
        // Every redirect that named a Location is in the history, the refused one included.
        assert_eq!(
            details(&r).response_history.is_some(),
            c.name != "no location",
            "case {:?}",
            c.name
        );
        // Nothing but our own server was ever contacted.
        for seen in &w.web.requests()[before..] {
            assert!(seen.peer.ip().is_loopback(), "case {:?}", c.name);
        }
    }

    // Twenty hops is the default limit (web.max_redirects), and is allowed; so is the
    // 12-hop chain of Open MPIC's compliance suite.
    for hops in [12, 20] {
        w.web.set_routes(chain(hops));
        let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
        assert!(r.check_passed, "{hops} hops: {r:?}");
        assert_eq!(
            details(&r).response_history.as_ref().unwrap().len(),
            hops,
            "{hops} hops"
        );
        assert_eq!(
            details(&r).final_url.as_deref(),
            Some(format!("http://example.com/r/{hops}").as_str())
        );
    }

    // A perspective configured with web.max_redirects: 3 follows three, not four.
    let ctx = context(
        w._dns.addr(),
        &WebConfig {
            max_redirects: 3,
            ..web_config(w.web.addr().port(), None)
        },
    );
    w.web.set_routes(chain(3));
    let r = run(&ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert!(r.check_passed, "{r:?}");
    w.web.set_routes(chain(4));
    let r = run(&ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert_eq!(
        errors(&r),
        [(
            "mpic_error:redirect:invalid".to_owned(),
            "redirect 302 to \"/r/4\" refused: more than 3 redirects".to_owned()
        )]
    );
}

#[tokio::test]
async fn slow_and_silent_servers_are_bounded() {
    struct Case {
        name: &'static str,
        reply: Reply,
    }
    let cases = [
        Case {
            name: "answers after the deadline",
            reply: Reply::Late {
                delay: Duration::from_secs(30),
                then: Box::new(Reply::ok(KEY_AUTHORIZATION)),
            },
        },
        Case {
            name: "never answers",
            reply: Reply::Silent,
        },
        Case {
            name: "trickles the body",
            reply: Reply::Trickle {
                status: 200,
                body: KEY_AUTHORIZATION.as_bytes().to_vec(),
                every: Duration::from_millis(200),
            },
        },
    ];
    let w = world(Routes::new()).await;
    for c in cases {
        w.web
            .set_routes(Routes::new().route(CHALLENGE_PATH, c.reply));
        let started = Instant::now();
        let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
        let elapsed = started.elapsed();
        assert!(
            !r.check_completed && !r.check_passed,
            "case {:?}: {r:?}",
            c.name
        );
        assert_eq!(
            errors(&r),
            [(
                "mpic_error:http".to_owned(),
                format!("127.0.0.1: no complete answer within {FETCH_DEADLINE_MS} ms")
            )],
            "case {:?}",
            c.name
        );
        assert_eq!(
            details(&r).resolved_ip.as_deref(),
            Some("127.0.0.1"),
            "case {:?}",
            c.name
        );
        // Bounded by the deadline (with room for a slow machine), not by the server.
        assert!(
            elapsed < CHECK_TIMEOUT + Duration::from_secs(1),
            "case {:?}: {elapsed:?}",
            c.name
        );
    }
}

#[tokio::test]
async fn an_oversized_body_is_read_only_up_to_the_cap() {
    let cap = WebConfig::default().max_body_read_bytes;
    let w = world(Routes::new()).await;

    // Found at the start of an endless body: passes without reading the rest.
    w.web.set_routes(Routes::new().route(
        "/.well-known/pki-validation/token.txt",
        Reply::Endless {
            prefix: b"site-verification=abc123 ".to_vec(),
        },
    ));
    let r = run(&w.ctx, "example.com", &website(json!({}))).await;
    assert!(r.check_completed && r.check_passed, "{r:?}");

    // Beyond the cap: not found, and the message says how much was read.
    let mut late = vec![b' '; cap + 10];
    late.extend_from_slice(b"site-verification=abc123");
    w.web
        .set_routes(Routes::new().route("/.well-known/pki-validation/token.txt", Reply::ok(late)));
    let r = run(&w.ctx, "example.com", &website(json!({}))).await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(
        errors(&r),
        [(
            "mpic_error:http".to_owned(),
            format!(
                "http://example.com/.well-known/pki-validation/token.txt: the challenge value was not found (in the first {cap} bytes read)"
            )
        )]
    );
    let page = base64::engine::general_purpose::STANDARD
        .decode(details(&r).response_page.as_deref().unwrap())
        .unwrap();
    assert_eq!(page.len(), 100, "the echo is bounded");

    // http-01: a key authorization followed by an endless body is not the key authorization.
    w.web.set_routes(Routes::new().route(
        CHALLENGE_PATH,
        Reply::Endless {
            prefix: KEY_AUTHORIZATION.as_bytes().to_vec(),
        },
    ));
    let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(
        errors(&r)[0].1,
        format!(
            "http://example.com{CHALLENGE_PATH}: the body is longer than {cap} bytes, so it is not the key authorization"
        )
    );
}

#[tokio::test]
async fn ip_targets_and_address_families() {
    struct Case {
        name: &'static str,
        target: &'static str,
        server: &'static str,
        want_host: &'static str,
        want_ip: &'static str,
    }
    let cases = [
        Case {
            name: "ipv4 literal",
            target: "127.0.0.1",
            server: "127.0.0.1:0",
            want_host: "127.0.0.1",
            want_ip: "127.0.0.1",
        },
        Case {
            name: "ipv6 literal",
            target: "::1",
            server: "[::1]:0",
            want_host: "[::1]",
            want_ip: "::1",
        },
        Case {
            name: "ipv6 literal in brackets",
            target: "[::1]",
            server: "[::1]:0",
            want_host: "[::1]",
            want_ip: "::1",
        },
        Case {
            name: "name with only AAAA",
            target: "v6only.example.com",
            server: "[::1]:0",
            want_host: "v6only.example.com",
            want_ip: "::1",
        },
        Case {
            name: "name with only A",
            target: "example.com",
            server: "127.0.0.1:0",
            want_host: "example.com",
            want_ip: "127.0.0.1",
        },
        Case {
            name: "both: IPv6 first",
            target: "dual.example.com",
            server: "[::1]:0",
            want_host: "dual.example.com",
            want_ip: "::1",
        },
    ];
    let dns = DnsServer::start(zone()).await.unwrap();
    for c in cases {
        let web = WebServer::start(
            c.server.parse().unwrap(),
            Routes::new().route(CHALLENGE_PATH, Reply::ok(KEY_AUTHORIZATION)),
        )
        .await
        .unwrap();
        let ctx = context(dns.addr(), &web_config(web.addr().port(), None));
        let r = run(&ctx, c.target, &http01(TOKEN, KEY_AUTHORIZATION)).await;
        assert!(r.check_passed, "case {:?}: {r:?}", c.name);
        assert_eq!(
            details(&r).resolved_ip.as_deref(),
            Some(c.want_ip),
            "case {:?}",
            c.name
        );
        assert_eq!(
            web.requests()[0].header("host"),
            Some(c.want_host),
            "case {:?}",
            c.name
        );
        if c.target.contains(':') {
            assert_eq!(
                details(&r).response_url.as_deref(),
                Some(format!("http://[::1]{CHALLENGE_PATH}").as_str()),
                "case {:?}: IPv6 in brackets",
                c.name
            );
        }
    }
}

#[tokio::test]
async fn one_ipv4_fallback_after_an_ipv6_dial_error() {
    // Only IPv4 listens: the IPv6 dial to the same port is refused, then IPv4 is tried once.
    let w = world(Routes::new().route(CHALLENGE_PATH, Reply::ok(KEY_AUTHORIZATION))).await;
    let r = run(
        &w.ctx,
        "dual.example.com",
        &http01(TOKEN, KEY_AUTHORIZATION),
    )
    .await;
    assert!(r.check_passed, "{r:?}");
    assert_eq!(details(&r).resolved_ip.as_deref(), Some("127.0.0.1"));

    // Nothing listens at all: both failures are named.
    let port = mpic_tests::fixtures::free_port();
    let dns = DnsServer::start(zone()).await.unwrap();
    let ctx = context(dns.addr(), &web_config(port, None));
    let r = run(&ctx, "dual.example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert!(!r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(
        errors(&r),
        [(
            "mpic_error:http".to_owned(),
            "::1: connection refused; 127.0.0.1: connection refused".to_owned()
        )]
    );
    assert_eq!(details(&r).resolved_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn special_purpose_addresses_are_refused_unless_the_danger_setting_is_on() {
    let dns = DnsServer::start(
        zone()
            .a("private.example.com", "192.168.1.10".parse().unwrap())
            .a("cgnat.example.com", "100.64.0.1".parse().unwrap())
            .a("docs.example.com", "203.0.113.5".parse().unwrap())
            .aaaa("ula.example.com", "fd00::1".parse().unwrap())
            .aaaa("linklocal.example.com", "fe80::1".parse().unwrap())
            .aaaa("mapped.example.com", "::ffff:10.1.2.3".parse().unwrap())
            // A public AAAA does not launder a private A: every address is checked.
            .aaaa("mixed.example.com", "2606:4700::1111".parse().unwrap())
            .a("mixed.example.com", "10.9.9.9".parse().unwrap()),
    )
    .await
    .unwrap();
    let web = WebServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Routes::new().route(CHALLENGE_PATH, Reply::ok(KEY_AUTHORIZATION)),
    )
    .await
    .unwrap();
    let port = web.addr().port();
    let safe = WebConfig {
        danger_allow_loopback_targets: false,
        ..web_config(port, None)
    };
    let cases = [
        (
            "example.com",
            safe.clone(),
            "127.0.0.1: is in 127.0.0.0/8, loopback (RFC 1122 section 3.2.1.3)",
        ),
        (
            "127.0.0.1",
            safe.clone(),
            "127.0.0.1: is in 127.0.0.0/8, loopback (RFC 1122 section 3.2.1.3)",
        ),
        (
            "::1",
            safe.clone(),
            "::1: is in ::1/128, loopback (RFC 4291)",
        ),
        (
            "private.example.com",
            web_config(port, None),
            "192.168.1.10: is in 192.168.0.0/16, private-use (RFC 1918)",
        ),
        (
            "10.0.0.1",
            web_config(port, None),
            "10.0.0.1: is in 10.0.0.0/8, private-use (RFC 1918)",
        ),
        (
            "cgnat.example.com",
            web_config(port, None),
            "100.64.0.1: is in 100.64.0.0/10, shared address space (carrier-grade NAT) (RFC 6598)",
        ),
        (
            "docs.example.com",
            web_config(port, None),
            "203.0.113.5: is in 203.0.113.0/24, documentation (TEST-NET-3) (RFC 5737)",
        ),
        (
            "ula.example.com",
            web_config(port, None),
            "fd00::1: is in fc00::/7, unique-local (RFC 4193)",
        ),
        (
            "linklocal.example.com",
            web_config(port, None),
            "fe80::1: is in fe80::/10, link-local unicast (RFC 4291)",
        ),
        (
            "mapped.example.com",
            web_config(port, None),
            "10.1.2.3: is in 10.0.0.0/8, private-use (RFC 1918)",
        ),
        (
            "mixed.example.com",
            web_config(port, None),
            "10.9.9.9: is in 10.0.0.0/8, private-use (RFC 1918)",
        ),
    ];
    for (t, config, want) in cases {
        let ctx = context(dns.addr(), &config);
        let r = run(&ctx, t, &http01(TOKEN, KEY_AUTHORIZATION)).await;
        assert!(r.check_completed && !r.check_passed, "{t}: {r:?}");
        assert_eq!(
            errors(&r),
            [(
                "mpic_error:http".to_owned(),
                format!("{want}; such addresses are never dialled")
            )],
            "{t}"
        );
        assert_eq!(details(&r).resolved_ip, None, "{t}: nothing was dialled");
    }
    assert!(web.requests().is_empty(), "no refused target was fetched");

    // The same loopback target passes once the danger setting is on.
    let ctx = context(dns.addr(), &web_config(port, None));
    let r = run(&ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert!(r.check_passed, "{r:?}");
}

#[tokio::test]
async fn names_that_do_not_resolve() {
    let w = world(Routes::new()).await;
    let cases = [
        (
            "nx.example.com",
            "nx.example.com: no such domain name (NXDOMAIN)",
        ),
        (
            "noaddress.example.com",
            "noaddress.example.com: no A or AAAA records",
        ),
    ];
    for (t, want) in cases {
        let r = run(&w.ctx, t, &http01(TOKEN, KEY_AUTHORIZATION)).await;
        assert!(r.check_completed && !r.check_passed, "{t}: {r:?}");
        assert_eq!(
            errors(&r),
            [("mpic_error:dcv_checker:lookup".to_owned(), want.to_owned())],
            "{t}"
        );
    }
    let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert!(!r.check_passed, "404 from the empty server");
    assert!(
        w.web.requests().len() == 1,
        "only the resolvable name was fetched"
    );
}

#[tokio::test]
async fn a_refused_connection_names_the_address() {
    let dns = DnsServer::start(zone()).await.unwrap();
    let ctx = context(
        dns.addr(),
        &web_config(mpic_tests::fixtures::free_port(), None),
    );
    let r = run(&ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert!(!r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(
        errors(&r),
        [(
            "mpic_error:http".to_owned(),
            "127.0.0.1: connection refused".to_owned()
        )]
    );
}

#[tokio::test]
async fn broken_http_answers() {
    let cases = [
        (
            Reply::Raw(b"this is not http\r\n\r\n".to_vec()),
            "127.0.0.1: the response is not valid HTTP/1.1",
        ),
        (
            Reply::Raw(Vec::new()),
            "127.0.0.1: the connection closed before a complete HTTP response",
        ),
    ];
    let w = world(Routes::new()).await;
    for (reply, want) in cases {
        w.web.set_routes(Routes::new().route(CHALLENGE_PATH, reply));
        let r = run(&w.ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
        assert!(!r.check_completed && !r.check_passed, "{want}: {r:?}");
        assert_eq!(
            errors(&r),
            [("mpic_error:http".to_owned(), want.to_owned())]
        );
    }
}

#[tokio::test]
async fn https_is_fetched_without_certificate_validation() {
    let dns = DnsServer::start(zone()).await.unwrap();
    let https = WebServer::start_tls(
        "127.0.0.1:0".parse().unwrap(),
        Routes::new()
            .route(
                "/.well-known/pki-validation/token.txt",
                Reply::ok("site-verification=abc123"),
            )
            .route(CHALLENGE_PATH, Reply::ok(KEY_AUTHORIZATION)),
        &["not-the-target.example"],
    )
    .await
    .unwrap();
    let http = WebServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Routes::new().route(
            CHALLENGE_PATH,
            Reply::redirect(302, format!("https://example.com{CHALLENGE_PATH}")),
        ),
    )
    .await
    .unwrap();
    let ctx = context(
        dns.addr(),
        &web_config(http.addr().port(), Some(https.addr().port())),
    );

    // website-change with url_scheme https: a self-signed certificate for another name is fine.
    let r = run(
        &ctx,
        "example.com",
        &website(json!({"url_scheme": "https"})),
    )
    .await;
    assert!(r.check_passed, "{r:?}");
    assert_eq!(
        details(&r).response_url.as_deref(),
        Some("https://example.com/.well-known/pki-validation/token.txt")
    );

    // http-01 redirected to https.
    let r = run(&ctx, "example.com", &http01(TOKEN, KEY_AUTHORIZATION)).await;
    assert!(r.check_passed, "{r:?}");
    assert_eq!(
        details(&r).final_url.as_deref(),
        Some(format!("https://example.com{CHALLENGE_PATH}").as_str())
    );
    assert_eq!(https.requests().len(), 2);
    assert_eq!(https.requests()[1].header("host"), Some("example.com"));
}

#[tokio::test]
async fn through_the_service_with_the_config_settings() {
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt as _;

    let dns = DnsServer::start(zone()).await.unwrap();
    let web = WebServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Routes::new().route(CHALLENGE_PATH, Reply::ok(KEY_AUTHORIZATION)),
    )
    .await
    .unwrap();
    let mut config = crate::support::plain_config("p1", dns.addr());
    config.web = WebConfig {
        user_agent: Some("ExampleCA-validation/1.0".to_owned()),
        ..web_config(web.addr().port(), None)
    };
    config.validate().unwrap();
    let app = crate::support::router(&config);
    let body = json!({
        "domain_or_ip_target": "example.com",
        "dcv_check_parameters": {"validation_method": "acme-http-01", "token": TOKEN, "key_authorization": KEY_AUTHORIZATION},
    });
    let response = app
        .oneshot(
            Request::post("/dcv")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let r: CheckResponse = serde_json::from_slice(&bytes).unwrap();
    assert!(r.check_completed && r.check_passed, "{r:?}");
    assert_eq!(
        web.requests()[0].header("user-agent"),
        Some("ExampleCA-validation/1.0")
    );
}

// ---------------------------------------------------------------------------------------------
// pebble-challtestsrv: an independent HTTP-01 server, resolving through its own mock DNS.

fn pebble_context(srv: &ChallTestSrv) -> DcvContext {
    context(
        srv.dns,
        &web_config(srv.http01.port(), Some(srv.https01.port())),
    )
}

#[tokio::test]
async fn pebble_http01_passes_and_fails() {
    let srv = ChallTestSrv::start().await.unwrap();
    srv.add_http01(TOKEN, KEY_AUTHORIZATION).await.unwrap();
    let ctx = pebble_context(&srv);

    let r = run(
        &ctx,
        "pebble.example.com",
        &http01(TOKEN, KEY_AUTHORIZATION),
    )
    .await;
    assert!(r.check_completed && r.check_passed, "{r:?}");
    assert_eq!(details(&r).resolved_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(details(&r).response_status_code, Some(200));

    // Another key authorization than the one served.
    let other = format!("{TOKEN}.another-thumbprint");
    let r = run(&ctx, "pebble.example.com", &http01(TOKEN, &other)).await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");

    // A token challtestsrv does not serve.
    let r = run(
        &ctx,
        "pebble.example.com",
        &http01("unknowntoken", KEY_AUTHORIZATION),
    )
    .await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
}

#[tokio::test]
async fn pebble_http01_redirected_to_https() {
    let srv = ChallTestSrv::start().await.unwrap();
    srv.add_http01(TOKEN, KEY_AUTHORIZATION).await.unwrap();
    let target_url = format!(
        "https://pebble.example.com:{}{CHALLENGE_PATH}",
        srv.https01.port()
    );
    srv.add_redirect(CHALLENGE_PATH, &target_url).await.unwrap();
    let ctx = pebble_context(&srv);
    let r = run(
        &ctx,
        "pebble.example.com",
        &http01(TOKEN, KEY_AUTHORIZATION),
    )
    .await;
    assert!(r.check_completed && r.check_passed, "{r:?}");
    let d = details(&r);
    assert_eq!(d.final_url.as_deref(), Some(target_url.as_str()));
    let history = d.response_history.as_ref().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].url, target_url);

    // The same redirect to a port that is not an allowed one is refused.
    let srv2 = ChallTestSrv::start().await.unwrap();
    srv2.add_http01(TOKEN, KEY_AUTHORIZATION).await.unwrap();
    let bad = format!(
        "https://pebble.example.com:{}{CHALLENGE_PATH}",
        srv2.tlsalpn01.port()
    );
    srv2.add_redirect(CHALLENGE_PATH, &bad).await.unwrap();
    let r = run(
        &pebble_context(&srv2),
        "pebble.example.com",
        &http01(TOKEN, KEY_AUTHORIZATION),
    )
    .await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(errors(&r)[0].0, "mpic_error:redirect:invalid");
}
