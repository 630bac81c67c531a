//! The CAA check's real code against the test kit's DNS server standing in for the resolver.
//! Expected outcomes come from RFC 8659 section 3 and requirements.md "CAA".

use std::time::{Duration, Instant};

use mpic_common::api::{CaaDetails, CheckDetails, CheckResponse, error_type};
use mpic_tests::dns::{Behaviour, DnsServer, Zone};
use serde_json::json;

use crate::support::{checker, params, target};

fn details(r: &CheckResponse) -> &CaaDetails {
    match &r.details {
        CheckDetails::Caa(d) => d,
        other => panic!("not CAA details: {other:?}"),
    }
}

fn error_types(r: &CheckResponse) -> Vec<String> {
    r.errors.iter().map(|e| e.error_type.clone()).collect()
}

/// A world with CAA at example.com and various names below it.
fn zone() -> Zone {
    Zone::new()
        .caa("example.com", 0, "issue", "ca.example")
        .caa("example.com", 0, "iodef", "mailto:security@example.com")
        .a("www.example.com", "192.0.2.1".parse().unwrap())
        .caa("deny.example.com", 0, "issue", "other.example")
        .caa("wild.example.com", 0, "issue", "ca.example")
        .caa("wild.example.com", 0, "issuewild", ";")
        .cname("alias.example.com", "target.example.net")
        .caa("target.example.net", 0, "issue", "other.example")
        .cname("alias2.example.com", "hop.example.net")
        .cname("hop.example.net", "final.example.org")
        .caa("final.example.org", 128, "issue", "ca.example")
        .cname("dangling.example.com", "nowhere.example.net")
        .caa("example.net", 0, "issue", ";")
        .caa("example.org", 0, "issue", ";")
        .behave("servfail.example.com", Behaviour::ServFail)
        .behave("refused.example.com", Behaviour::Refused)
        .behave("silent.example.com", Behaviour::Drop)
        .behave(
            "bogus.example.com",
            Behaviour::ServFailWithEde {
                code: 6,
                text: "signature crypto failed".into(),
            },
        )
}

#[tokio::test]
async fn climbs_from_a_name_that_does_not_exist_and_reports_the_details() {
    let server = DnsServer::start(zone()).await.unwrap();
    let r = checker(server.addr())
        .check(&target("a.b.nx.example.com"), &params(json!(null)))
        .await;
    assert!(r.check_completed && r.check_passed, "{r:?}");
    let d = details(&r);
    assert_eq!(d.caa_record_present, Some(true));
    assert_eq!(d.found_at.as_deref(), Some("example.com"));
    assert_eq!(
        d.records_seen.as_deref(),
        Some(
            &[
                "0 issue \"ca.example\"".to_owned(),
                "0 iodef \"mailto:security@example.com\"".to_owned()
            ][..]
        )
    );
    assert_eq!(d.reason.as_deref(), Some("issuer-authorised"));
    // Every level was asked, in parallel, up to and including the TLD.
    let mut asked: Vec<String> = server.queries().into_iter().map(|q| q.name).collect();
    asked.sort();
    assert_eq!(
        asked,
        [
            "a.b.nx.example.com",
            "b.nx.example.com",
            "com",
            "example.com",
            "nx.example.com"
        ]
    );
}

#[tokio::test]
async fn closest_rrset_decides_deny() {
    let server = DnsServer::start(zone()).await.unwrap();
    let r = checker(server.addr())
        .check(&target("deny.example.com"), &params(json!(null)))
        .await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(details(&r).found_at.as_deref(), Some("deny.example.com"));
    assert_eq!(details(&r).reason.as_deref(), Some("issuer-not-listed"));
    assert_eq!(r.errors, []);
}

#[tokio::test]
async fn caa_domains_of_the_request_replace_the_default() {
    let server = DnsServer::start(zone()).await.unwrap();
    let r = checker(server.addr())
        .check(
            &target("deny.example.com"),
            &params(json!({"caa_domains": ["OTHER.example"]})),
        )
        .await;
    assert!(r.check_passed, "{r:?}");
}

#[tokio::test]
async fn wildcard_uses_issuewild() {
    let server = DnsServer::start(zone()).await.unwrap();
    let plain = checker(server.addr())
        .check(&target("wild.example.com"), &params(json!(null)))
        .await;
    assert!(plain.check_passed, "{plain:?}");
    let wild = checker(server.addr())
        .check(&target("*.wild.example.com"), &params(json!(null)))
        .await;
    assert!(wild.check_completed && !wild.check_passed, "{wild:?}");
    assert_eq!(details(&wild).found_at.as_deref(), Some("wild.example.com"));
}

#[tokio::test]
async fn cname_is_followed_at_each_level() {
    let server = DnsServer::start(zone()).await.unwrap();
    // alias → target.example.net, which denies.
    let r = checker(server.addr())
        .check(&target("alias.example.com"), &params(json!(null)))
        .await;
    assert!(r.check_completed && !r.check_passed, "{r:?}");
    assert_eq!(details(&r).found_at.as_deref(), Some("alias.example.com"));
    assert_eq!(
        details(&r).records_seen.as_deref(),
        Some(&["0 issue \"other.example\"".to_owned()][..])
    );
}

#[tokio::test]
async fn cname_to_cname() {
    let server = DnsServer::start(zone()).await.unwrap();
    let r = checker(server.addr())
        .check(&target("alias2.example.com"), &params(json!(null)))
        .await;
    assert!(r.check_passed, "{r:?}");
    assert_eq!(
        details(&r).records_seen.as_deref(),
        Some(&["128 issue \"ca.example\"".to_owned()][..])
    );
}

#[tokio::test]
async fn caa_at_the_cname_targets_parent_is_not_consulted() {
    // RFC 8659 3: dangling.example.com → nowhere.example.net (no CAA; example.net says ";").
    // The climb goes to the alias's parents (example.com permits), never the target's.
    let server = DnsServer::start(zone()).await.unwrap();
    let r = checker(server.addr())
        .check(&target("dangling.example.com"), &params(json!(null)))
        .await;
    assert!(r.check_passed, "{r:?}");
    assert_eq!(details(&r).found_at.as_deref(), Some("example.com"));
}

#[tokio::test]
async fn no_records_anywhere_permits() {
    let server = DnsServer::start(Zone::new().a("host.example.info", "192.0.2.1".parse().unwrap()))
        .await
        .unwrap();
    let r = checker(server.addr())
        .check(&target("host.example.info"), &params(json!(null)))
        .await;
    assert!(r.check_completed && r.check_passed, "{r:?}");
    let d = details(&r);
    assert_eq!(
        (
            d.caa_record_present,
            d.found_at.as_deref(),
            d.reason.as_deref()
        ),
        (Some(false), None, Some("no-caa-records"))
    );
}

#[tokio::test]
async fn a_tld_that_does_not_exist_fails_closed() {
    // NXDOMAIN is "no records" below a TLD only; at the TLD it means the name cannot exist.
    let server = DnsServer::start(Zone::new()).await.unwrap();
    let r = checker(server.addr())
        .check(&target("host.nosuchtld"), &params(json!(null)))
        .await;
    assert!(!r.check_completed && !r.check_passed, "{r:?}");
    assert!(r.errors[0].error_message.contains("NXDOMAIN"));
}

#[tokio::test]
async fn failures_fail_closed_with_their_cause() {
    struct Case {
        name: &'static str,
        target: &'static str,
        error_type: &'static str,
        message_has: &'static str,
    }
    let cases = [
        Case {
            name: "SERVFAIL",
            target: "servfail.example.com",
            error_type: error_type::CAA_LOOKUP,
            message_has: "SERVFAIL",
        },
        Case {
            name: "REFUSED",
            target: "refused.example.com",
            error_type: error_type::CAA_LOOKUP,
            message_has: "REFUSED",
        },
        Case {
            name: "below a SERVFAIL",
            target: "x.servfail.example.com",
            error_type: error_type::CAA_LOOKUP,
            message_has: "servfail.example.com",
        },
        Case {
            name: "no answer",
            target: "silent.example.com",
            error_type: error_type::CAA_LOOKUP,
            message_has: "within",
        },
        Case {
            name: "DNSSEC bogus",
            target: "bogus.example.com",
            error_type: error_type::CAA_DNSSEC,
            message_has: "EDE 6 (DNSSEC Bogus): signature crypto failed",
        },
    ];
    let server = DnsServer::start(zone()).await.unwrap();
    for c in cases {
        let started = Instant::now();
        let r = checker(server.addr())
            .check(&target(c.target), &params(json!(null)))
            .await;
        // Bounded: at most the first try and one retry, each under the lookup deadline.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{}: took {:?}",
            c.name,
            started.elapsed()
        );
        assert!(!r.check_completed && !r.check_passed, "{}: {r:?}", c.name);
        assert_eq!(error_types(&r), [c.error_type], "{}", c.name);
        let message = &r.errors[0].error_message;
        assert!(message.contains(c.message_has), "{}: {message}", c.name);
        let d = details(&r);
        assert_eq!(d.caa_record_present, None, "{}", c.name);
        assert_eq!(d.reason.as_deref(), Some("lookup-failed"), "{}", c.name);
        let report = d.lookup_failure.unwrap();
        assert!(
            report.retried && !report.allow_lookup_failure && !report.treated_as_permission,
            "{}",
            c.name
        );
    }
}

#[tokio::test]
async fn a_failed_level_is_retried_once() {
    let server = DnsServer::start(zone()).await.unwrap();
    let _ = checker(server.addr())
        .check(&target("servfail.example.com"), &params(json!(null)))
        .await;
    let tries = server
        .queries()
        .iter()
        .filter(|q| q.name == "servfail.example.com")
        .count();
    assert_eq!(tries, 2);
}

#[tokio::test]
async fn a_failure_above_the_relevant_rrset_does_not_matter() {
    // The closest non-empty RRset decides; an error further up is never consulted.
    let server = DnsServer::start(
        Zone::new()
            .caa("a.example.com", 0, "issue", "ca.example")
            .behave("example.com", Behaviour::ServFail)
            .a("com", "192.0.2.9".parse().unwrap()),
    )
    .await
    .unwrap();
    let r = checker(server.addr())
        .check(&target("a.example.com"), &params(json!(null)))
        .await;
    assert!(r.check_passed, "{r:?}");
}

/// The lookup-failure rule: only allow + retried + provably insecure counts as permission.
#[tokio::test]
async fn lookup_failure_rule() {
    // insecure.example.com is an unsigned delegation out of the signed example.com: DS denied
    // with AD, NS answered by the (unsigned) child. inside.example.com is a name inside the
    // signed zone: DS denied with AD, NS denied with AD too. Its servers are the ones failing.
    let zone = Zone::new()
        .authentic_data(true)
        .record(ns_record("insecure.example.com", "ns.insecure.example.com"))
        .a("inside.example.com", "192.0.2.1".parse().unwrap())
        .a("com", "192.0.2.9".parse().unwrap())
        .behave("broken.insecure.example.com", Behaviour::ServFail)
        .behave("broken.inside.example.com", Behaviour::ServFail)
        // RFC 8659 4.1 allows tags of up to 255 bytes; hickory reads at most 15, so this
        // answer arrives but cannot be read. It may forbid issuance: it never counts as an
        // outage, and the check does not wait for the deadline either.
        .caa_bytes(
            "longtag.insecure.example.com",
            128,
            "averyveryverylongtag",
            b"x",
        )
        .behave(
            "bogus.insecure.example.com",
            Behaviour::ServFailWithEde {
                code: 6,
                text: "bogus".into(),
            },
        );
    let server = DnsServer::start(zone).await.unwrap();
    struct Case {
        name: &'static str,
        target: &'static str,
        allow: bool,
        passed: bool,
        dnssec_insecure: bool,
    }
    let cases = [
        Case {
            name: "insecure and allowed",
            target: "broken.insecure.example.com",
            allow: true,
            passed: true,
            dnssec_insecure: true,
        },
        Case {
            name: "insecure, not allowed",
            target: "broken.insecure.example.com",
            allow: false,
            passed: false,
            dnssec_insecure: false,
        },
        Case {
            name: "allowed, but inside a signed zone",
            target: "broken.inside.example.com",
            allow: true,
            passed: false,
            dnssec_insecure: false,
        },
        Case {
            name: "allowed, but bogus",
            target: "bogus.insecure.example.com",
            allow: true,
            passed: false,
            dnssec_insecure: false,
        },
        Case {
            name: "allowed and insecure, but the answer cannot be read",
            target: "longtag.insecure.example.com",
            allow: true,
            passed: false,
            dnssec_insecure: false,
        },
    ];
    for c in cases {
        let r = checker(server.addr())
            .check(
                &target(c.target),
                &params(json!({"allow_lookup_failure": c.allow})),
            )
            .await;
        assert_eq!(r.check_passed, c.passed, "{}: {r:?}", c.name);
        assert_eq!(r.check_completed, c.passed, "{}", c.name);
        let report = details(&r).lookup_failure.unwrap();
        assert_eq!(report.allow_lookup_failure, c.allow, "{}", c.name);
        assert!(report.retried, "{}", c.name);
        assert_eq!(report.dnssec_insecure, c.dnssec_insecure, "{}", c.name);
        assert_eq!(report.treated_as_permission, c.passed, "{}", c.name);
        let reason = if c.passed {
            "lookup-failure-allowed"
        } else {
            "lookup-failed"
        };
        assert_eq!(details(&r).reason.as_deref(), Some(reason), "{}", c.name);
        if c.target.starts_with("longtag") {
            let said = format!("{:?}", r.errors);
            assert!(said.contains("cannot be read"), "{}: {said}", c.name);
        }
    }
}

#[tokio::test]
async fn a_thousand_record_rrset_arrives_over_tcp() {
    let mut zone = Zone::new();
    for i in 0..999 {
        zone = zone.caa(
            "big.example.com",
            0,
            "issue",
            &format!("ca{i}.other.example"),
        );
    }
    zone = zone.caa("big.example.com", 0, "issue", "ca.example");
    let server = DnsServer::start(zone).await.unwrap();
    let r = checker(server.addr())
        .check(&target("big.example.com"), &params(json!(null)))
        .await;
    assert!(r.check_passed, "{:?}", r.errors);
    assert_eq!(details(&r).records_seen.as_ref().map(Vec::len), Some(1000));
    assert!(
        server
            .queries()
            .iter()
            .any(|q| q.transport == mpic_tests::dns::Transport::Tcp)
    );
}

#[tokio::test]
async fn rfc8657_parameters_reach_the_decision() {
    let server = DnsServer::start(
        Zone::new()
            .caa(
                "acct.example.com",
                0,
                "issue",
                "ca.example; accounturi=https://ca.example/acct/1; validationmethods=dns-01",
            )
            .a("com", "192.0.2.9".parse().unwrap()),
    )
    .await
    .unwrap();
    let c = checker(server.addr());
    let t = target("acct.example.com");
    let ok = c
        .check(
            &t,
            &params(
                json!({"account_uri": "https://ca.example/acct/1", "validation_method": "dns-01"}),
            ),
        )
        .await;
    assert!(ok.check_passed, "{ok:?}");
    let missing = c.check(&t, &params(json!(null))).await;
    assert!(!missing.check_passed);
    assert_eq!(
        details(&missing).reason.as_deref(),
        Some("accounturi-not-given")
    );
    let wrong = c
        .check(
            &t,
            &params(
                json!({"account_uri": "https://ca.example/acct/1", "validation_method": "http-01"}),
            ),
        )
        .await;
    assert_eq!(
        details(&wrong).reason.as_deref(),
        Some("validationmethods-mismatch")
    );
}

/// BR 4.2.2.1.2 (SC-098): a record restricted to a BR label (`ca-tbr-` + the 3.2.2.4
/// subsection) permits a check naming that label, or the ACME label of the same mechanism,
/// and refuses one naming another; labels are matched exactly, and a request's label must
/// be canonical (lowercase).
#[tokio::test]
async fn br_validationmethods_labels_reach_the_decision() {
    let server = DnsServer::start(
        Zone::new()
            .caa(
                "tbr.example.com",
                0,
                "issue",
                "ca.example; validationmethods=ca-tbr-7,ca-tbr-19",
            )
            .caa(
                "upper.example.com",
                0,
                "issue",
                "ca.example; validationmethods=CA-TBR-7",
            )
            .a("com", "192.0.2.9".parse().unwrap()),
    )
    .await
    .unwrap();
    let c = checker(server.addr());
    // (name, label, permitted)
    let cases = [
        ("tbr.example.com", "ca-tbr-7", true),
        ("tbr.example.com", "ca-tbr-19", true),
        ("tbr.example.com", "http-01", true),
        ("tbr.example.com", "dns-01", true),
        ("tbr.example.com", "ca-tbr-18", false),
        ("tbr.example.com", "tls-alpn-01", false),
        ("upper.example.com", "ca-tbr-7", false),
    ];
    for (name, label, permitted) in cases {
        let r = c
            .check(&target(name), &params(json!({"validation_method": label})))
            .await;
        assert!(r.check_completed, "{name} {label}: {r:?}");
        assert_eq!(r.check_passed, permitted, "{name} {label}: {r:?}");
        let want = if permitted {
            "issuer-authorised"
        } else {
            "validationmethods-mismatch"
        };
        assert_eq!(details(&r).reason.as_deref(), Some(want), "{name} {label}");
    }
    for label in ["CA-TBR-7", "ca-tbr-07", "Http-01"] {
        let wire = serde_json::from_value(json!({"validation_method": label})).unwrap();
        let err = mpic_common::validate::CaaParams::from_wire(Some(&wire)).unwrap_err();
        assert!(
            err[0]
                .message
                .starts_with("field `caa_check_parameters.validation_method`"),
            "{label}: {err:?}"
        );
    }
}

#[tokio::test]
async fn ip_targets_have_no_caa() {
    let server = DnsServer::start(Zone::new()).await.unwrap();
    let r = checker(server.addr())
        .check(&target("192.0.2.1"), &params(json!(null)))
        .await;
    assert!(r.check_passed && r.check_completed);
    assert_eq!(details(&r).reason.as_deref(), Some("ip-address-target"));
    assert!(server.queries().is_empty());
}

fn ns_record(name: &str, target: &str) -> hickory_proto::rr::Record {
    use hickory_proto::rr::{Name, RData, Record, rdata::NS};
    Record::from_rdata(
        Name::from_ascii(format!("{name}.")).unwrap(),
        60,
        RData::NS(NS(Name::from_ascii(format!("{target}.")).unwrap())),
    )
}
