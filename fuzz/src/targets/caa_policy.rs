//! The CAA decision ([`policy::evaluate`], RFC 8659, RFC 8657, RFC 9495) over a relevant RRset
//! and a request both built from the input: the first byte chooses the request (wildcard,
//! S/MIME, no issuer domains, an account URI, a method), the rest is records separated by
//! `\n`, each `<flags><tag choice><value>`.
//!
//! Invariants: no records permits; an unknown critical tag forbids; with no issuer domain
//! nothing is authorised; "issuer authorised" only when a governing record names one of our
//! domains with RFC 8657 parameters the request meets; any other permit is an RRset without
//! a governing property; a record that authorises nobody never turns a denial into a permit.

use mpic_common::api::CertificateType;
use mpic_perspective::caa::issuer_value;
use mpic_perspective::caa::policy::{self, CaaReason, CaaRecord, CaaRequest, KNOWN_TAGS};

use crate::input::{Input, pieces};

/// The tags records take (index = the tag choice byte, modulo).
const TAGS: [&str; 9] = [
    "issue",
    "issuewild",
    "issuemail",
    "iodef",
    "contactemail",
    "ISSUE",
    "IssueWild",
    "tbs",
    "issuevmc",
];

const ISSUERS: [&str; 2] = ["ca.example", "ca2.example"];
const ACCOUNT: &str = "https://ca.example/acct/1";
const METHOD: &str = "dns-01";
const MAX_RECORDS: usize = 16;

/// The target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let records: Vec<CaaRecord> = if input.rest().is_empty() {
        Vec::new()
    } else {
        pieces(input.rest(), b'\n', MAX_RECORDS)
            .into_iter()
            .map(|piece| {
                let mut piece = Input::new(piece);
                CaaRecord {
                    flags: piece.byte(),
                    tag: piece.pick(&TAGS).to_owned(),
                    value: piece.rest().to_vec(),
                }
            })
            .collect()
    };
    let issuers: Vec<String> = if flags & 4 == 0 {
        ISSUERS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        Vec::new()
    };
    let request = CaaRequest {
        wildcard: flags & 1 != 0,
        certificate_type: if flags & 2 == 0 {
            CertificateType::TlsServer
        } else {
            CertificateType::SMime
        },
        issuer_domains: &issuers,
        account_uri: (flags & 8 != 0).then_some(ACCOUNT),
        validation_method: (flags & 16 != 0).then_some(METHOD),
    };
    let reason = policy::evaluate(&records, &request);
    check(&records, &request, reason);
    if !reason.permits() {
        let mut more = records.clone();
        more.push(CaaRecord {
            flags: 0,
            tag: governing(&records, &request).to_owned(),
            value: b";".to_vec(),
        });
        assert!(
            !policy::evaluate(&more, &request).permits(),
            "a record that names no issuer turned {reason:?} into a permit"
        );
    }
    for record in &records {
        assert!(!record.presentation().is_empty());
    }
}

fn check(records: &[CaaRecord], request: &CaaRequest<'_>, reason: CaaReason) {
    if records.is_empty() {
        assert_eq!(reason, CaaReason::NoRecords);
        return;
    }
    let unknown_critical = records
        .iter()
        .any(|r| r.is_critical() && !KNOWN_TAGS.iter().any(|k| r.tag.eq_ignore_ascii_case(k)));
    if unknown_critical {
        assert_eq!(reason, CaaReason::UnknownCriticalProperty);
        return;
    }
    if request.issuer_domains.is_empty() {
        assert_ne!(
            reason,
            CaaReason::IssuerAuthorised,
            "no issuer, yet authorised"
        );
    }
    let tag = governing(records, request);
    let governed: Vec<&CaaRecord> = records
        .iter()
        .filter(|r| r.tag.eq_ignore_ascii_case(tag))
        .collect();
    match reason {
        CaaReason::IssuerAuthorised => assert!(
            governed.iter().any(|r| authorises(r, request)),
            "authorised by no record"
        ),
        CaaReason::NoRelevantProperty => assert!(governed.is_empty()),
        CaaReason::NoRecords => panic!("records, yet {reason:?}"),
        _ => assert!(
            !governed.is_empty() && !governed.iter().any(|r| authorises(r, request)),
            "{reason:?}, yet a record authorises"
        ),
    }
}

/// The tag that governs the request (RFC 8659 4.3, RFC 9495 3).
fn governing(records: &[CaaRecord], request: &CaaRequest<'_>) -> &'static str {
    match request.certificate_type {
        CertificateType::SMime => "issuemail",
        CertificateType::TlsServer
            if request.wildcard
                && records
                    .iter()
                    .any(|r| r.tag.eq_ignore_ascii_case("issuewild")) =>
        {
            "issuewild"
        }
        CertificateType::TlsServer => "issue",
    }
}

/// Whether `record` alone authorises the request: it names one of our issuer domains, has at
/// most one `accounturi`, equal to the request's, and at most one `validationmethods`, which
/// lists the request's method.
fn authorises(record: &CaaRecord, request: &CaaRequest<'_>) -> bool {
    let Ok(value) = issuer_value::parse(&record.value) else {
        return false;
    };
    let named = value.issuer.as_deref().is_some_and(|i| {
        request
            .issuer_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(i))
    });
    let uris: Vec<&str> = value.parameter_values("accounturi").collect();
    let uri_ok = match uris[..] {
        [] => true,
        [uri] => request.account_uri == Some(uri),
        _ => false,
    };
    let lists: Vec<&str> = value.parameter_values("validationmethods").collect();
    let method_ok = match lists[..] {
        [] => true,
        [list] => match (
            issuer_value::parse_method_list(list),
            request.validation_method,
        ) {
            // Labels compare as written (BR 4.2.2.1.2), or grant the other label of one
            // mechanism (`ca-tbr-19` and `http-01`).
            (Some(methods), Some(m)) => methods
                .iter()
                .any(|x| mpic_common::method_labels::grants(x, m)),
            _ => false,
        },
        _ => false,
    };
    named && uri_ok && method_ok
}
