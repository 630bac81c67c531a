//! DNSSEC end to end for the DNS-based methods: the perspective's real code resolving through a
//! real validating Unbound that trusts a locally signed zone served by a real NSD
//! (requirements.md "DNSSEC": a validation failure is a failed check naming the DNSSEC cause,
//! and the AD flag is reported).
//!
//! The world: an unsigned `test` parent; `mpic.test`, signed, with its own trust anchor;
//! `insecure.mpic.test`, an unsigned delegation that Unbound proves insecure from the parent's
//! signed denial of DS; `expired.mpic.test`, a signed delegation whose signatures expired in
//! 2020. `_acme-challenge.bogus.mpic.test` is edited after signing, so its RRSIG no longer
//! verifies.

use mpic_common::api::error_type;
use mpic_tests::fixtures::{DnsWorld, WorldSpec, ZoneSpec};
use serde_json::{Value, json};

use crate::dcv_dns::{details, errors, post_dcv};
use crate::support::{plain_config, router};

/// base64url(SHA-256("abc")).
const HASH: &str = "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0";

fn world() -> WorldSpec {
    let txt = format!(r#"_acme-challenge 60 IN TXT "{HASH}""#);
    WorldSpec {
        zones: vec![
            ZoneSpec::unsigned("test", Vec::<String>::new()),
            ZoneSpec::signed(
                "mpic.test",
                [
                    txt.clone(),
                    r#"_acme-challenge.bogus 60 IN TXT "bogus-digest-0001""#.to_owned(),
                    "_acme-challenge.chain 60 IN CNAME _acme-challenge".to_owned(),
                    r#"@ 60 IN CAA 0 contactemail "admin@mpic.test""#.to_owned(),
                    r#"_validation-persist 60 IN TXT "ca.example; accounturi=https://ca.example/acct/1""#
                        .to_owned(),
                    "host 60 IN A 192.0.2.10".to_owned(),
                    "_dc 60 IN CNAME token-1.dcv.mpic.test.".to_owned(),
                    // Unbound answers a CNAME query for a dangling CNAME with NXDOMAIN (the
                    // target's rcode, RFC 6604): give it a target so the case reads NOERROR.
                    "token-1.dcv 60 IN A 192.0.2.11".to_owned(),
                ],
            )
            .with_tamper("bogus-digest-0001", "bogus-digest-0002"),
            ZoneSpec::unsigned("insecure.mpic.test", [txt.clone()]),
            ZoneSpec::signed("expired.mpic.test", [txt])
                .with_signature_validity("20200101", "20200201"),
        ],
        resolvers: 1,
    }
}

struct Case {
    name: &'static str,
    target: &'static str,
    params: Value,
    /// `Ok(ad_flag)`: completed and passed with this AD flag; `Err(text)`: not completed, a
    /// DNSSEC error whose message has `text`.
    want: Result<bool, &'static str>,
    /// The CNAME chain reported.
    cname_chain: &'static [&'static str],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnssec_outcomes_through_a_real_unbound() {
    let world = DnsWorld::start(world()).await.unwrap();
    let mut config = plain_config("p-dnssec", world.resolver_addrs()[0]);
    // A cold validating resolver fetches keys and DS records first.
    config.resolver.timeout_ms = 5_000;
    config.limits.check_timeout_ms = 15_000;
    let app = router(&config);

    let dns01 = json!({"validation_method": "acme-dns-01", "key_authorization_hash": HASH});
    let cases = [
        Case {
            name: "valid signed TXT",
            target: "mpic.test",
            params: dns01.clone(),
            want: Ok(true),
            cname_chain: &[],
        },
        Case {
            name: "signed CNAME chain",
            target: "chain.mpic.test",
            params: dns01.clone(),
            want: Ok(true),
            cname_chain: &["_acme-challenge.mpic.test."],
        },
        Case {
            name: "signed CAA contact found by the climb through a signed NXDOMAIN",
            target: "nx.mpic.test",
            params: json!({"validation_method": "contact-email-caa", "challenge_value": "admin@mpic.test"}),
            want: Ok(true),
            cname_chain: &[],
        },
        Case {
            name: "signed persistent record",
            target: "mpic.test",
            params: json!({"validation_method": "dns-persistent", "issuer_domain_names": ["ca.example"], "expected_account_uri": "https://ca.example/acct/1"}),
            want: Ok(true),
            cname_chain: &[],
        },
        Case {
            name: "signed A record",
            target: "host.mpic.test",
            params: json!({"validation_method": "ip-address", "challenge_value": "192.0.2.10", "dns_record_type": "A"}),
            want: Ok(true),
            cname_chain: &[],
        },
        Case {
            name: "signed CNAME record",
            target: "mpic.test",
            params: json!({"validation_method": "dns-change", "challenge_value": "token-1.dcv.mpic.test.", "dns_record_type": "CNAME", "dns_name_prefix": "_dc", "require_exact_match": true}),
            want: Ok(true),
            cname_chain: &[],
        },
        Case {
            name: "unsigned delegation below the signed zone",
            target: "insecure.mpic.test",
            params: dns01.clone(),
            want: Ok(false),
            cname_chain: &[],
        },
        Case {
            name: "the record was changed after signing",
            target: "bogus.mpic.test",
            params: json!({"validation_method": "acme-dns-01", "key_authorization_hash": "bogus-digest-0002"}),
            want: Err("EDE 6 (DNSSEC Bogus)"),
            cname_chain: &[],
        },
        Case {
            name: "expired signatures",
            target: "expired.mpic.test",
            params: dns01.clone(),
            want: Err("EDE 7 (Signature Expired)"),
            cname_chain: &[],
        },
    ];
    for c in cases {
        let r = post_dcv(&app, c.target, c.params.clone()).await;
        let d = details(&r);
        let chain: Vec<String> = c.cname_chain.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(d.cname_chain.as_ref(), Some(&chain), "case {:?}", c.name);
        match c.want {
            Ok(ad_flag) => {
                assert!(
                    r.check_completed && r.check_passed,
                    "case {:?}: {r:?}",
                    c.name
                );
                assert_eq!(r.errors, [], "case {:?}", c.name);
                assert_eq!(d.ad_flag, Some(ad_flag), "case {:?}: {d:?}", c.name);
                assert_eq!(d.response_code, Some(0), "case {:?}", c.name);
            }
            Err(text) => {
                assert!(
                    !r.check_completed && !r.check_passed,
                    "case {:?}: {r:?}",
                    c.name
                );
                let errors = errors(&r);
                assert_eq!(errors.len(), 1, "case {:?}: {r:?}", c.name);
                assert_eq!(errors[0].0, error_type::DCV_DNSSEC, "case {:?}", c.name);
                assert!(
                    errors[0].1.contains(text) && errors[0].1.contains("SERVFAIL"),
                    "case {:?}: {}",
                    c.name,
                    errors[0].1
                );
                assert_eq!(d.ad_flag, Some(false), "case {:?}", c.name);
                assert_eq!(d.response_code, Some(2), "case {:?}", c.name);
            }
        }
    }
}
