//! The generated seeds: DNS answers built with hickory (byte for byte the same on every run)
//! and tls-alpn-01 certificates made with rcgen (new keys each time, so they are checked, not
//! compared). `MPIC_FUZZ_WRITE_SEEDS=1 cargo test -p mpic-fuzz seeds` writes them again.

use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr as _;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, CAA, CNAME, PTR, TXT};
use hickory_proto::rr::{Name, RData, Record};
use mpic_fuzz::smoke::corpus_dir;
use mpic_fuzz::targets::{dns_answer, tls_alpn};
use mpic_perspective::dcv::tls_alpn::Expected;
use rustls_pki_types::CertificateDer;

fn writing() -> bool {
    std::env::var_os("MPIC_FUZZ_WRITE_SEEDS").is_some()
}

/// The query choice byte of `name` / `rtype` in [`dns_answer::NAMES`] / [`dns_answer::TYPES`].
fn choice(name: usize, rtype: usize) -> u8 {
    u8::try_from(name + rtype * dns_answer::NAMES.len()).unwrap()
}

fn record(name: &str, rdata: RData) -> Record {
    Record::from_rdata(Name::from_str(&format!("{name}.")).unwrap(), 300, rdata)
}

fn txt(text: &str) -> RData {
    RData::TXT(TXT::new(vec![text.to_owned()]))
}

fn caa(flags: u8, tag: &str, value: &[u8]) -> RData {
    let mut caa = CAA::new_issue(false, None, Vec::new());
    caa.issuer_critical = flags & 0x80 != 0;
    caa.tag = tag.to_owned();
    caa.value = value.to_vec();
    RData::CAA(caa)
}

/// One seed: the choice byte, then the answer to that query.
fn answer(
    choice: u8,
    rcode: ResponseCode,
    records: Vec<Record>,
    ede: Option<(u16, &str)>,
) -> Vec<u8> {
    let (_, _, query) = dns_answer::query(choice);
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.recursion_desired = true;
    response.metadata.recursion_available = true;
    response.metadata.response_code = rcode;
    response.queries = query.queries.clone();
    response.answers = records;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some((code, text)) = ede {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(text.as_bytes());
        edns.options_mut().insert(EdnsOption::Unknown(15, payload));
    }
    response.set_edns(edns);
    let mut seed = vec![choice];
    seed.extend(response.to_vec().unwrap());
    seed
}

fn dns_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let challenge = dns_answer::NAMES[0];
    let (txt_type, caa_type, a_type, ptr_type) = (0, 1, 3, 5);
    vec![
        (
            "txt-token.bin",
            answer(
                choice(0, txt_type),
                ResponseCode::NoError,
                vec![record(challenge, txt("token"))],
                None,
            ),
        ),
        (
            "txt-cname-chain.bin",
            answer(
                choice(0, txt_type),
                ResponseCode::NoError,
                vec![
                    record(
                        challenge,
                        RData::CNAME(CNAME(Name::from_str("v.example.net.").unwrap())),
                    ),
                    record("v.example.net", txt("token")),
                ],
                None,
            ),
        ),
        (
            "txt-persistent.bin",
            answer(
                choice(0, txt_type),
                ResponseCode::NoError,
                vec![record(
                    challenge,
                    txt("ca.example; accounturi=https://ca.example/acct/123"),
                )],
                None,
            ),
        ),
        (
            "nxdomain-ede.bin",
            answer(
                choice(0, txt_type),
                ResponseCode::NXDomain,
                Vec::new(),
                Some((6, "bogus")),
            ),
        ),
        (
            "servfail-ede.bin",
            answer(
                choice(0, txt_type),
                ResponseCode::ServFail,
                Vec::new(),
                Some((9, "no DNSKEY")),
            ),
        ),
        (
            "caa-issue.bin",
            answer(
                choice(1, caa_type),
                ResponseCode::NoError,
                vec![
                    record(
                        "example.com",
                        caa(0, "issue", b"ca.example; validationmethods=dns-01"),
                    ),
                    record("example.com", caa(128, "tbs", b"x")),
                ],
                None,
            ),
        ),
        (
            "a-record.bin",
            answer(
                choice(1, a_type),
                ResponseCode::NoError,
                vec![record(
                    "example.com",
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
                )],
                None,
            ),
        ),
        (
            "ptr-record.bin",
            answer(
                choice(2, ptr_type),
                ResponseCode::NoError,
                vec![record(
                    dns_answer::NAMES[2],
                    RData::PTR(PTR(Name::from_str("host.example.com.").unwrap())),
                )],
                None,
            ),
        ),
    ]
}

/// The committed DNS seeds are the ones the builders above make.
#[test]
fn dns_answer_seeds_are_current() {
    let dir = corpus_dir("dns_answer");
    for (file, bytes) in dns_seeds() {
        let path = dir.join(file);
        if writing() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).ok(),
            Some(bytes),
            "{} is stale",
            path.display()
        );
    }
}

/// A certificate that passes tls-alpn-01 for `identity`: its only SAN, and a critical
/// acmeIdentifier holding the DER OCTET STRING of [`tls_alpn::DIGEST`].
fn certificate(san: rcgen::SanType) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![san];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fuzz seed");
    let mut value = vec![0x04, 0x20];
    value.extend_from_slice(&tls_alpn::DIGEST);
    let mut acme = rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 31], value);
    acme.set_criticality(true);
    params.custom_extensions = vec![acme];
    params.self_signed(&key).unwrap().der().to_vec()
}

/// Each committed certificate seed passes for exactly one of the target's expectations.
#[test]
fn tls_alpn_seeds_pass() {
    let dir = corpus_dir("tls_alpn");
    let seeds = [
        (
            "domain.der",
            rcgen::SanType::DnsName(tls_alpn::DOMAIN.try_into().unwrap()),
        ),
        ("ipv4.der", rcgen::SanType::IpAddress(tls_alpn::IPS[0])),
        ("ipv6.der", rcgen::SanType::IpAddress(tls_alpn::IPS[1])),
    ];
    for (file, san) in seeds {
        let path = dir.join(file);
        if writing() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, certificate(san)).unwrap();
        }
        let der = std::fs::read(&path).unwrap();
        let passing: Vec<Expected> = tls_alpn::expectations()
            .into_iter()
            .filter(|e| {
                mpic_perspective::dcv::tls_alpn::evaluate(
                    &CertificateDer::from(der.as_slice()),
                    e,
                    &tls_alpn::DIGEST,
                )
                .1
                .is_empty()
            })
            .collect();
        assert_eq!(
            passing.len(),
            1,
            "{}: passes for {passing:?}",
            path.display()
        );
    }
}

/// A certificate that would pass for the domain target but whose signature another key made:
/// it meets every content rule and breaks only the self-signature rule (RFC 8737 section 3).
#[test]
fn tls_alpn_seed_signed_by_another_key_fails_only_rule_5() {
    let path = corpus_dir("tls_alpn").join("signed-by-another-key.der");
    if writing() {
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::DnsName(
            tls_alpn::DOMAIN.try_into().unwrap(),
        )];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fuzz seed");
        let mut value = vec![0x04, 0x20];
        value.extend_from_slice(&tls_alpn::DIGEST);
        let mut acme =
            rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 31], value);
        acme.set_criticality(true);
        params.custom_extensions = vec![acme];
        let issuer = rcgen::Issuer::from_params(&params, &other);
        let der = params.signed_by(&key, &issuer).unwrap().der().to_vec();
        std::fs::write(&path, der).unwrap();
    }
    let der = std::fs::read(&path).unwrap();
    let (_, violations) = mpic_perspective::dcv::tls_alpn::evaluate(
        &CertificateDer::from(der.as_slice()),
        &Expected::Dns(tls_alpn::DOMAIN.to_owned()),
        &tls_alpn::DIGEST,
    );
    assert_eq!(
        violations,
        [
            mpic_perspective::dcv::tls_alpn::Violation::SelfSignatureInvalid {
                unsupported_algorithm: false
            }
        ]
    );
}

/// The certificate the fuzz target found (the acmeIdentifier's OBJECT IDENTIFIER tagged
/// `[APPLICATION 6]`) passes for no target.
#[test]
fn tls_alpn_regression_seed_fails() {
    let der =
        std::fs::read(corpus_dir("tls_alpn").join("regression-oid-application-tag.der")).unwrap();
    for expected in tls_alpn::expectations() {
        let (_, violations) = mpic_perspective::dcv::tls_alpn::evaluate(
            &CertificateDer::from(der.as_slice()),
            &expected,
            &tls_alpn::DIGEST,
        );
        assert!(!violations.is_empty(), "{expected:?}");
    }
}

/// Every corpus folder belongs to a target.
#[test]
fn corpus_folders_are_targets() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for entry in std::fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            mpic_fuzz::target(&name).is_some(),
            "corpus/{name} has no target"
        );
    }
}
