//! acme-tls-alpn-01 (RFC 8737, RFC 8738) against the test kit's TLS-ALPN server presenting
//! rcgen certificates, and against pebble-challtestsrv as an independent peer.

use std::net::SocketAddr;
use std::time::Duration;

use mpic_common::api::{CheckDetails, CheckResponse, DcvCheckParameters, TlsAlpnDetails};
use mpic_perspective::config::WebConfig;
use mpic_perspective::dcv::http_fetch::WebSettings;
use mpic_perspective::dcv::{self, DcvContext};
use mpic_perspective::resolver::DnsClient;
use mpic_tests::dns::{DnsServer, Zone};
use mpic_tests::web::{
    ACME_TLS_1, AcmeExtension, ChallTestSrv, ChallengeCert, San, Signer, TlsAlpnServer,
    TlsVersions, hex, key_authorization_digest,
};
use serde_json::json;

use crate::support::{DNS_TIMEOUT, target};

const KEY_AUTHORIZATION: &str =
    "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
const CHECK_TIMEOUT: Duration = Duration::from_millis(2_000);

fn context(resolver: SocketAddr, port: u16, loopback: bool) -> DcvContext {
    let web = WebConfig {
        connect_timeout_ms: 1_000,
        danger_allow_loopback_targets: loopback,
        danger_tls_alpn_port: Some(port),
        ..WebConfig::default()
    };
    DcvContext {
        dns: DnsClient::new(resolver, DNS_TIMEOUT),
        web: WebSettings::from_config(&web, "p1", CHECK_TIMEOUT),
    }
}

fn params(key_authorization_hash: &str) -> DcvCheckParameters {
    serde_json::from_value(json!({
        "validation_method": "acme-tls-alpn-01",
        "key_authorization_hash": key_authorization_hash,
    }))
    .unwrap()
}

fn hex_digest() -> String {
    hex(&key_authorization_digest(KEY_AUTHORIZATION))
}

fn details(r: &CheckResponse) -> &TlsAlpnDetails {
    match &r.details {
        CheckDetails::TlsAlpn(d) => d,
        other => panic!("not TLS-ALPN details: {other:?}"),
    }
}

fn error_types(r: &CheckResponse) -> Vec<String> {
    r.errors.iter().map(|e| e.error_type.clone()).collect()
}

fn zone() -> Zone {
    Zone::new()
        .a("example.com", "127.0.0.1".parse().unwrap())
        .aaaa("v6.example.com", "::1".parse().unwrap())
}

const PREFIX: &str = "mpic_error:dcv_checker:tls_alpn:certificate:";

/// A TLS-ALPN server on `bind` presenting `cert`, and a context that dials it.
async fn serve(
    dns: &DnsServer,
    bind: &str,
    cert: &ChallengeCert,
    alpn: &[&[u8]],
    versions: TlsVersions,
) -> (TlsAlpnServer, DcvContext) {
    let server = TlsAlpnServer::start(bind.parse().unwrap(), cert, alpn, versions)
        .await
        .unwrap();
    let ctx = context(dns.addr(), server.addr().port(), true);
    (server, ctx)
}

#[tokio::test]
async fn certificates_made_with_rcgen() {
    struct Case {
        name: &'static str,
        cert: ChallengeCert,
        /// The certificate error types, without the common prefix; empty means a pass.
        want: &'static [&'static str],
    }
    let digest = key_authorization_digest(KEY_AUTHORIZATION);
    let valid = ChallengeCert::valid("example.com", KEY_AUTHORIZATION);
    let cases = [
        Case {
            name: "valid",
            cert: valid.clone(),
            want: &[],
        },
        Case {
            name: "SAN in another case",
            cert: ChallengeCert {
                sans: vec![San::Dns("EXAMPLE.com".into())],
                ..valid.clone()
            },
            want: &[],
        },
        Case {
            name: "no acmeIdentifier extension",
            cert: ChallengeCert {
                acme: AcmeExtension::Absent,
                ..valid.clone()
            },
            want: &["extension_missing"],
        },
        Case {
            name: "no subjectAltName extension",
            cert: ChallengeCert {
                sans: vec![],
                ..valid.clone()
            },
            want: &["extension_missing"],
        },
        Case {
            name: "non-critical extension",
            cert: ChallengeCert {
                acme: AcmeExtension::NonCritical(digest),
                ..valid.clone()
            },
            want: &["noncritical_alpn_extension"],
        },
        Case {
            name: "wrong digest",
            cert: ChallengeCert {
                acme: AcmeExtension::Critical(key_authorization_digest("another.keyauth")),
                ..valid.clone()
            },
            want: &["digest_mismatch"],
        },
        Case {
            name: "digest not wrapped in an OCTET STRING",
            cert: ChallengeCert {
                acme: AcmeExtension::RawCritical(digest.to_vec()),
                ..valid.clone()
            },
            want: &["malformed_alpn_extension"],
        },
        Case {
            name: "two SANs",
            cert: ChallengeCert {
                sans: vec![
                    San::Dns("example.com".into()),
                    San::Dns("www.example.com".into()),
                ],
                ..valid.clone()
            },
            want: &["no_single_san"],
        },
        Case {
            name: "SAN of the wrong type",
            cert: ChallengeCert {
                sans: vec![San::Ip("127.0.0.1".parse().unwrap())],
                ..valid.clone()
            },
            want: &["san_not_dnsname"],
        },
        Case {
            name: "an e-mail SAN",
            cert: ChallengeCert {
                sans: vec![San::Email("admin@example.com".into())],
                ..valid.clone()
            },
            want: &["san_not_dnsname"],
        },
        Case {
            name: "wrong name",
            cert: ChallengeCert {
                sans: vec![San::Dns("example.net".into())],
                ..valid.clone()
            },
            want: &["san_not_hostname"],
        },
        Case {
            name: "several violations at once",
            cert: ChallengeCert {
                sans: vec![San::Dns("example.net".into())],
                acme: AcmeExtension::NonCritical(key_authorization_digest("x")),
                common_name: None,
            },
            want: &[
                "san_not_hostname",
                "noncritical_alpn_extension",
                "digest_mismatch",
            ],
        },
    ];
    let dns = DnsServer::start(zone()).await.unwrap();
    for c in cases {
        for versions in [TlsVersions::Tls12, TlsVersions::Tls13] {
            let (server, ctx) = serve(&dns, "127.0.0.1:0", &c.cert, &[ACME_TLS_1], versions).await;
            let r = dcv::check(&ctx, &target("example.com"), &params(&hex_digest())).await;
            let want: Vec<String> = c.want.iter().map(|w| format!("{PREFIX}{w}")).collect();
            assert_eq!(
                error_types(&r),
                want,
                "case {:?} {versions:?}: {r:?}",
                c.name
            );
            assert!(r.check_completed, "case {:?} {versions:?}", c.name);
            assert_eq!(
                r.check_passed,
                c.want.is_empty(),
                "case {:?} {versions:?}",
                c.name
            );
            assert_eq!(details(&r).resolved_ip.as_deref(), Some("127.0.0.1"));
            assert_eq!(
                details(&r).common_name,
                c.cert.common_name.clone(),
                "case {:?}: the common name is reported whatever the verdict",
                c.name
            );
            // RFC 8737 section 3: SNI is the name, ALPN offers acme-tls/1 and nothing else.
            let hellos = server.hellos();
            assert_eq!(hellos.len(), 1, "case {:?}", c.name);
            assert_eq!(hellos[0].server_name.as_deref(), Some("example.com"));
            assert_eq!(hellos[0].alpn, Some(vec![ACME_TLS_1.to_vec()]));
        }
    }
}

/// RFC 8737 section 3 has the client construct a self-signed certificate, and Boulder checks
/// both halves: a certificate whose issuer is another name, or whose signature another key made,
/// fails, each with its own error type, over TLS 1.2 and 1.3 alike (the handshake itself is
/// signed with the certificate's key, so it succeeds).
#[tokio::test]
async fn certificates_that_are_not_self_signed() {
    struct Case {
        name: &'static str,
        signer: Signer,
        want: &'static [&'static str],
        want_message: &'static str,
    }
    let cases = [
        Case {
            name: "another issuer",
            signer: Signer::OtherIssuer("Example Issuing CA".to_owned()),
            want: &["issuer_not_subject"],
            want_message: "127.0.0.1: the certificate's issuer is not its subject; RFC 8737 requires a self-signed certificate",
        },
        Case {
            name: "signed by another key",
            signer: Signer::OtherKey,
            want: &["self_signature_invalid"],
            want_message: "127.0.0.1: the certificate's signature does not verify with its own public key; RFC 8737 requires a self-signed certificate",
        },
    ];
    let dns = DnsServer::start(zone()).await.unwrap();
    let cert = ChallengeCert::valid("example.com", KEY_AUTHORIZATION);
    for c in cases {
        for versions in [TlsVersions::Tls12, TlsVersions::Tls13] {
            let server = TlsAlpnServer::start_with_key(
                "127.0.0.1:0".parse().unwrap(),
                cert.certified_key_signed(&c.signer).unwrap(),
                &[ACME_TLS_1],
                versions,
            )
            .await
            .unwrap();
            let ctx = context(dns.addr(), server.addr().port(), true);
            let r = dcv::check(&ctx, &target("example.com"), &params(&hex_digest())).await;
            let want: Vec<String> = c.want.iter().map(|w| format!("{PREFIX}{w}")).collect();
            assert_eq!(
                error_types(&r),
                want,
                "case {:?} {versions:?}: {r:?}",
                c.name
            );
            assert_eq!(
                r.errors[0].error_message, c.want_message,
                "case {:?}",
                c.name
            );
            assert!(r.check_completed && !r.check_passed, "case {:?}", c.name);
            assert_eq!(details(&r).common_name.as_deref(), Some("example.com"));
        }
    }
}

#[tokio::test]
async fn the_digest_may_be_given_in_base64url() {
    let dns = DnsServer::start(zone()).await.unwrap();
    let cert = ChallengeCert::valid("example.com", KEY_AUTHORIZATION);
    let (_server, ctx) = serve(&dns, "127.0.0.1:0", &cert, &[ACME_TLS_1], TlsVersions::Both).await;
    let b64 = mpic_common::digest::base64url(&key_authorization_digest(KEY_AUTHORIZATION));
    let r = dcv::check(&ctx, &target("example.com"), &params(&b64)).await;
    assert!(r.check_passed, "{r:?}");
    let upper = hex_digest().to_uppercase();
    let r = dcv::check(&ctx, &target("example.com"), &params(&upper)).await;
    assert!(r.check_passed, "upper-case hex: {r:?}");
}

#[tokio::test]
async fn a_server_that_does_not_negotiate_acme_tls_1() {
    let dns = DnsServer::start(zone()).await.unwrap();
    let cert = ChallengeCert::valid("example.com", KEY_AUTHORIZATION);
    let (_server, ctx) = serve(&dns, "127.0.0.1:0", &cert, &[], TlsVersions::Both).await;
    let r = dcv::check(&ctx, &target("example.com"), &params(&hex_digest())).await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    let e = &r.errors[0];
    assert_eq!(e.error_type, format!("{PREFIX}alpn_not_negotiated"));
    assert_eq!(
        e.error_message,
        "127.0.0.1: the server negotiated no ALPN protocol; acme-tls/1 is required"
    );
}

#[tokio::test]
async fn ip_targets_use_the_reverse_name_as_sni() {
    struct Case {
        name: &'static str,
        target: &'static str,
        bind: &'static str,
        sans: Vec<San>,
        want_sni: &'static str,
        want: &'static [&'static str],
    }
    let v6_reverse = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa";
    let cases = [
        Case {
            name: "ipv4",
            target: "127.0.0.1",
            bind: "127.0.0.1:0",
            sans: vec![San::Ip("127.0.0.1".parse().unwrap())],
            want_sni: "1.0.0.127.in-addr.arpa",
            want: &[],
        },
        Case {
            name: "ipv6",
            target: "::1",
            bind: "[::1]:0",
            sans: vec![San::Ip("::1".parse().unwrap())],
            want_sni: v6_reverse,
            want: &[],
        },
        Case {
            name: "another address",
            target: "127.0.0.1",
            bind: "127.0.0.1:0",
            sans: vec![San::Ip("127.0.0.2".parse().unwrap())],
            want_sni: "1.0.0.127.in-addr.arpa",
            want: &["san_not_hostname"],
        },
        Case {
            name: "a dNSName for an IP target",
            target: "127.0.0.1",
            bind: "127.0.0.1:0",
            sans: vec![San::Dns("example.com".into())],
            want_sni: "1.0.0.127.in-addr.arpa",
            want: &["san_type_not_match"],
        },
        Case {
            name: "the reverse name as a dNSName",
            target: "127.0.0.1",
            bind: "127.0.0.1:0",
            sans: vec![San::Dns("1.0.0.127.in-addr.arpa".into())],
            want_sni: "1.0.0.127.in-addr.arpa",
            want: &["san_type_not_match"],
        },
    ];
    let dns = DnsServer::start(zone()).await.unwrap();
    for c in cases {
        let cert = ChallengeCert {
            sans: c.sans,
            ..ChallengeCert::valid_ip("127.0.0.1".parse().unwrap(), KEY_AUTHORIZATION)
        };
        let (server, ctx) = serve(&dns, c.bind, &cert, &[ACME_TLS_1], TlsVersions::Both).await;
        let r = dcv::check(&ctx, &target(c.target), &params(&hex_digest())).await;
        let want: Vec<String> = c.want.iter().map(|w| format!("{PREFIX}{w}")).collect();
        assert_eq!(error_types(&r), want, "case {:?}: {r:?}", c.name);
        assert_eq!(r.check_passed, c.want.is_empty(), "case {:?}", c.name);
        assert_eq!(
            server.hellos()[0].server_name.as_deref(),
            Some(c.want_sni),
            "case {:?}",
            c.name
        );
        assert!(
            dns.queries().is_empty(),
            "case {:?}: an IP target is not resolved",
            c.name
        );
    }
}

#[tokio::test]
async fn connection_failures_and_the_address_policy() {
    let dns = DnsServer::start(zone().a("internal.example.com", "10.0.0.1".parse().unwrap()))
        .await
        .unwrap();
    let closed = mpic_tests::fixtures::free_port();

    // Nothing listens.
    let r = dcv::check(
        &context(dns.addr(), closed, true),
        &target("example.com"),
        &params(&hex_digest()),
    )
    .await;
    assert!(!r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(
        r.errors[0].error_type,
        "mpic_error:dcv_checker:tls_alpn:connection"
    );
    assert_eq!(r.errors[0].error_message, "127.0.0.1: connection refused");

    // Loopback refused without the danger setting; private addresses refused with it.
    for (t, loopback, want) in [
        (
            "example.com",
            false,
            "127.0.0.1: is in 127.0.0.0/8, loopback (RFC 1122 section 3.2.1.3); such addresses are never dialled",
        ),
        (
            "internal.example.com",
            true,
            "10.0.0.1: is in 10.0.0.0/8, private-use (RFC 1918); such addresses are never dialled",
        ),
        (
            "192.168.0.1",
            true,
            "192.168.0.1: is in 192.168.0.0/16, private-use (RFC 1918); such addresses are never dialled",
        ),
    ] {
        let r = dcv::check(
            &context(dns.addr(), closed, loopback),
            &target(t),
            &params(&hex_digest()),
        )
        .await;
        assert!(r.check_completed && !r.check_passed, "{t}: {r:?}");
        let e = &r.errors[0];
        assert_eq!(
            e.error_type, "mpic_error:dcv_checker:tls_alpn:connection",
            "{t}"
        );
        assert_eq!(e.error_message, want, "{t}");
    }

    // A plain TCP server that never speaks TLS: bounded by the deadline.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let started = std::time::Instant::now();
    let r = dcv::check(
        &context(dns.addr(), port, true),
        &target("example.com"),
        &params(&hex_digest()),
    )
    .await;
    assert!(started.elapsed() < CHECK_TIMEOUT + Duration::from_secs(1));
    assert!(!r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(
        r.errors[0].error_message,
        "127.0.0.1: no complete answer within 1800 ms"
    );
    hold.abort();
}

#[tokio::test]
async fn a_certificate_that_does_not_parse() {
    let dns = DnsServer::start(zone()).await.unwrap();
    let key = ChallengeCert::raw_certified_key(b"not a certificate".to_vec()).unwrap();
    let server = TlsAlpnServer::start_with_key(
        "127.0.0.1:0".parse().unwrap(),
        key,
        &[ACME_TLS_1],
        TlsVersions::Both,
    )
    .await
    .unwrap();
    let ctx = context(dns.addr(), server.addr().port(), true);
    let r = dcv::check(&ctx, &target("example.com"), &params(&hex_digest())).await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(error_types(&r), [format!("{PREFIX}unparsable")]);
}

#[tokio::test]
async fn an_ipv6_only_name() {
    let dns = DnsServer::start(zone()).await.unwrap();
    let cert = ChallengeCert::valid("v6.example.com", KEY_AUTHORIZATION);
    let (_server, ctx) = serve(&dns, "[::1]:0", &cert, &[ACME_TLS_1], TlsVersions::Both).await;
    let r = dcv::check(&ctx, &target("v6.example.com"), &params(&hex_digest())).await;
    assert!(r.check_passed, "{r:?}");
    assert_eq!(details(&r).resolved_ip.as_deref(), Some("::1"));
}

#[tokio::test]
async fn pebble_tls_alpn01() {
    let srv = ChallTestSrv::start().await.unwrap();
    srv.add_tlsalpn01("pebble.example.com", KEY_AUTHORIZATION)
        .await
        .unwrap();
    let ctx = context(srv.dns, srv.tlsalpn01.port(), true);

    // pebble's challenge certificate is self-signed, as RFC 8737 section 3 asks, so it passes
    // that rule as well as the others.
    let r = dcv::check(&ctx, &target("pebble.example.com"), &params(&hex_digest())).await;
    assert!(r.check_completed && r.check_passed, "{r:?}");
    assert_eq!(details(&r).resolved_ip.as_deref(), Some("127.0.0.1"));

    // Another key authorization's digest.
    let other = hex(&key_authorization_digest("another.keyauthorization"));
    let r = dcv::check(&ctx, &target("pebble.example.com"), &params(&other)).await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(error_types(&r), [format!("{PREFIX}digest_mismatch")]);
}
