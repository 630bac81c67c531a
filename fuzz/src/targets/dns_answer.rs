//! DNS answers as the checks read them: a datagram from the resolver through the lookup's own
//! steps ([`resolver::answer_to`], [`resolver::interpret`], [`resolver::classify`]), then into
//! the one mapping to a check response ([`dns::respond`]) with the matching of the DNS methods
//! ([`TextRule`], [`record_data`]), the `dns-persistent` record and the CAA decision. The
//! first byte picks the query (name and type); the rest is the datagram. Every message that
//! parses is also interpreted as if it had matched (the TCP path matches by hickory's rules).
//!
//! Invariants: a datagram is taken only as an answer to the query (its ID and question); the
//! records kept are of the queried type, at the end of a CNAME chain of at most 16 links;
//! only NOERROR and NXDOMAIN are answers; a response passes only when it completed, from an
//! answer, with a record equal to the expected value; a response that did not complete has an
//! error; every response serialises.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use mpic_common::api::{CheckResponse, ValidationMethod};
use mpic_perspective::caa::{climb, policy};
use mpic_perspective::dcv::dns::{self, TextRule, dns_persistent, record_data, records_data};
use mpic_perspective::resolver::{self, DnsAnswer, LookupFailure};

use crate::input::Input;

/// Fragments of DNS messages.
pub const DICTIONARY: &[&[u8]] = &[
    b"\x12\x34",
    b"\x81\x80",
    b"\x81\x83",
    b"\x81\xa0",
    b"\x00\x01\x00\x01",
    b"\x00\x10\x00\x01",
    b"\x01\x01\x00\x01",
    b"\x00\x05\x00\x01",
    b"\x00\x29\x04\xd0",
    b"\x00\x0f\x00\x02",
    b"\xc0\x0c",
    b"\x07example\x03com\x00",
    b"\x05token",
    b"\x00\x00\x0e\x10",
];

/// The ID of every query here (a lookup's is random).
pub const QUERY_ID: u16 = 0x1234;

/// The names queried (index = the first byte, modulo 3).
pub const NAMES: [&str; 3] = [
    "_acme-challenge.example.com",
    "example.com",
    "1.2.0.192.in-addr.arpa",
];

/// The types queried (index = the first byte divided by 3, modulo 6).
pub const TYPES: [RecordType; 6] = [
    RecordType::TXT,
    RecordType::CAA,
    RecordType::CNAME,
    RecordType::A,
    RecordType::AAAA,
    RecordType::PTR,
];

/// The value the DNS methods expect.
const TOKEN: &str = "token";
const ISSUERS: [&str; 1] = ["ca.example"];

/// The query the first byte `choice` picks, with [`QUERY_ID`].
///
/// # Panics
///
/// Never: every name of [`NAMES`] is valid.
pub fn query(choice: u8) -> (&'static str, RecordType, Message) {
    let name = NAMES[usize::from(choice) % NAMES.len()];
    let rtype = TYPES[usize::from(choice) / NAMES.len() % TYPES.len()];
    let fqdn = resolver::fqdn(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut message = resolver::query_message(&fqdn, rtype);
    message.metadata.id = QUERY_ID;
    (name, rtype, message)
}

/// The target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let (name, rtype, query) = query(input.byte());
    let datagram = input.rest();
    if let Some(answer) = resolver::answer_to(&query, datagram) {
        assert_eq!(answer.metadata.id, query.metadata.id);
        assert_eq!(answer.queries, query.queries);
        check(name, rtype, answer);
    } else if let Ok(message) = Message::from_vec(datagram) {
        check(name, rtype, message);
    }
}

fn check(name: &str, rtype: RecordType, message: Message) {
    let fqdn = resolver::fqdn(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let rcode = message.metadata.response_code;
    let answer = resolver::interpret(name, &fqdn, rtype, message);
    assert_eq!(answer.name, name);
    assert_eq!(answer.rcode, rcode);
    assert!(answer.cname_chain.len() <= 16, "{:?}", answer.cname_chain);
    assert!(answer.records.iter().all(|r| r.record_type() == rtype));
    for ede in &answer.extended_errors {
        assert!(!ede.to_string().is_empty());
    }
    let outcome = resolver::classify(name, rtype, Ok(answer.clone()));
    match &outcome {
        Ok(_) => assert!(matches!(
            rcode,
            ResponseCode::NoError | ResponseCode::NXDomain
        )),
        Err(failure) => {
            assert!(!matches!(
                rcode,
                ResponseCode::NoError | ResponseCode::NXDomain
            ));
            assert_eq!(
                failure.dnssec,
                answer.extended_errors.iter().any(|e| e.is_dnssec())
            );
        }
    }
    exact_match(name, rtype, &outcome);
    other_rules(name, rtype, &outcome);
    caa(&answer);
}

/// acme-dns-01's rule: passing needs a record equal to the token.
fn exact_match(name: &str, rtype: RecordType, outcome: &Result<DnsAnswer, LookupFailure>) {
    let response = dns::respond(
        ValidationMethod::AcmeDns01,
        name,
        rtype,
        outcome.clone(),
        |records| TextRule::EXACT.evaluate(TOKEN, &records_data(records)),
    );
    check_response(&response);
    if response.check_passed {
        let Ok(answer) = outcome else {
            panic!("passed on a failed lookup");
        };
        assert!(
            answer
                .records
                .iter()
                .any(|r| record_data(&r.data).as_deref() == Some(TOKEN.as_bytes())),
            "passed without the token"
        );
    }
    assert_eq!(response.check_completed, outcome.is_ok());
}

/// The substring rule and dns-persistent on the same records.
fn other_rules(name: &str, rtype: RecordType, outcome: &Result<DnsAnswer, LookupFailure>) {
    const ANY_CASE: TextRule = TextRule {
        exact: false,
        case_sensitive: false,
    };
    let substring = dns::respond(
        ValidationMethod::DnsChange,
        name,
        rtype,
        outcome.clone(),
        |records| ANY_CASE.evaluate(TOKEN, &records_data(records)),
    );
    check_response(&substring);
    let issuers: Vec<String> = ISSUERS.iter().map(|s| (*s).to_owned()).collect();
    let request = dns_persistent::PersistRequest {
        issuer_domain_names: &issuers,
        account_uri: "https://ca.example/acct/123",
        wildcard: false,
        now: 1_700_000_000,
    };
    let persistent = dns::respond(
        ValidationMethod::DnsPersistent,
        name,
        rtype,
        outcome.clone(),
        |records| dns_persistent::evaluate(&records_data(records), &request),
    );
    check_response(&persistent);
}

/// The CAA decision on the answer's CAA records.
fn caa(answer: &DnsAnswer) {
    let records = climb::caa_records(answer);
    let issuers: Vec<String> = ISSUERS.iter().map(|s| (*s).to_owned()).collect();
    let request = policy::CaaRequest {
        wildcard: false,
        certificate_type: mpic_common::api::CertificateType::TlsServer,
        issuer_domains: &issuers,
        account_uri: None,
        validation_method: None,
    };
    let reason = policy::evaluate(&records, &request);
    if reason == policy::CaaReason::IssuerAuthorised {
        assert!(!records.is_empty());
    }
}

fn check_response(response: &CheckResponse) {
    if response.check_passed {
        assert!(response.check_completed, "passed without completing");
        assert!(response.errors.is_empty(), "passed with errors");
    }
    if !response.check_completed {
        assert!(
            !response.errors.is_empty(),
            "did not complete, and says no error"
        );
    }
    serde_json::to_vec(response).unwrap_or_else(|e| panic!("the response does not serialise: {e}"));
}
