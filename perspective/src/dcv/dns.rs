//! The DNS-based methods, one file per method below `dns/`, and what they share —
//! the owner name a method queries, the lookup through the perspective's validating resolver,
//! the reading of record data, text matching, and the one mapping from a lookup's outcome to a
//! [`CheckResponse`] with [`DnsDetails`].
//!
//! The outcome mapping (api.md "DNS DCV" details, requirements.md "DNSSEC"):
//!
//! | lookup | `check_completed` | `check_passed` | `errors` |
//! |---|---|---|---|
//! | records, one matches | true | true | null |
//! | records, none matches | true | false | null |
//! | NXDOMAIN, or NOERROR without records | true | false | `dcv_checker:lookup` |
//! | SERVFAIL, REFUSED, other rcodes, timeouts | false | false | `dcv_checker:lookup` with the cause |
//! | a DNSSEC failure (EDE 1–12) | false | false | `dcv_checker:dnssec` with the EDE text |
//!
//! A failed check is data, never an `Err` or a panic, and nothing that did not complete passes.

pub mod acme_dns01;
pub mod contact;
pub mod dns_change;
pub mod dns_persistent;
pub mod ip_address;
pub mod reverse_lookup;

use std::borrow::Cow;

use hickory_proto::rr::{RData, Record, RecordType};
use mpic_common::api::{CheckDetails, CheckResponse, DnsDetails, ValidationMethod};
use mpic_common::outcome::{Checker, Outcome, Problem, ProblemKind};
use mpic_common::target::{Target, prefixed_name, reverse_name};
use mpic_common::text::{MAX_RECORD_ECHO_BYTES, bytes_for_echo};

use super::DcvContext;
use crate::resolver::{DnsAnswer, LookupFailure, rcode_text};

/// What a method concluded from the records of its RRset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The records as the details show them (`records_seen`).
    pub records_seen: Vec<String>,
    /// One record proves control.
    pub passed: bool,
}

/// How a method compares its expected value with record data (api.md "Matching rules").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// The whole record must equal the value; otherwise the value must occur in the record.
    pub exact: bool,
    /// Compare case-sensitively; otherwise both sides are lowercased first.
    pub case_sensitive: bool,
}

impl TextRule {
    /// Exact and case-sensitive (`acme-dns-01`, `dns-account-01`).
    pub const EXACT: TextRule = TextRule {
        exact: true,
        case_sensitive: true,
    };
    /// Exact and case-insensitive (`contact-*`, `reverse-address-lookup`).
    pub const EXACT_ANY_CASE: TextRule = TextRule {
        exact: true,
        case_sensitive: false,
    };

    /// Whether `record` (bytes from the wire, compared as bytes: NUL and invalid UTF-8 are
    /// data, whitespace is never trimmed) matches `expected`. An empty `expected` never matches
    /// (fail closed; the API refuses empty challenge values anyway).
    ///
    /// Case-insensitive comparison lowercases valid UTF-8 with Unicode rules (as the reference
    /// does with Python's `str.lower`) and anything else ASCII letters only, so bytes that are
    /// not text can only match themselves.
    pub fn matches(self, expected: &str, record: &[u8]) -> bool {
        if expected.is_empty() {
            return false;
        }
        let (expected, record): (Cow<'_, [u8]>, Cow<'_, [u8]>) = if self.case_sensitive {
            (Cow::Borrowed(expected.as_bytes()), Cow::Borrowed(record))
        } else {
            (
                Cow::Owned(expected.to_lowercase().into_bytes()),
                Cow::Owned(lowercase(record)),
            )
        };
        if self.exact {
            record == expected
        } else {
            record
                .windows(expected.len())
                .any(|window| window == &*expected)
        }
    }

    /// Evaluates record data: every record is shown, any one match passes.
    pub fn evaluate(self, expected: &str, values: &[Vec<u8>]) -> Evaluation {
        Evaluation {
            records_seen: values.iter().map(|v| render(v)).collect(),
            passed: values.iter().any(|v| self.matches(expected, v)),
        }
    }
}

/// The data of a record as the methods compare it: TXT is the concatenation of its
/// character-strings (RFC 8555 8.4, the reference's rule), CNAME and PTR the target in ASCII
/// with its trailing dot, CAA the property value, A and AAAA the address text. `None` for other
/// types.
pub fn record_data(rdata: &RData) -> Option<Vec<u8>> {
    match rdata {
        RData::TXT(txt) => Some(txt.txt_data.concat()),
        RData::CNAME(name) => Some(name.0.to_ascii().into_bytes()),
        RData::PTR(name) => Some(name.0.to_ascii().into_bytes()),
        RData::CAA(caa) => Some(caa.value.clone()),
        RData::A(a) => Some(a.0.to_string().into_bytes()),
        RData::AAAA(aaaa) => Some(aaaa.0.to_string().into_bytes()),
        _ => None,
    }
}

/// [`record_data`] of every record that has any.
pub fn records_data(records: &[Record]) -> Vec<Vec<u8>> {
    records
        .iter()
        .filter_map(|r| record_data(&r.data))
        .collect()
}

/// Record bytes as a `records_seen` entry: valid UTF-8, control bytes escaped, bounded.
pub fn render(bytes: &[u8]) -> String {
    bytes_for_echo(bytes, MAX_RECORD_ECHO_BYTES)
}

/// The name a method queries: the target's name (without the `*.` of a wildcard: RFC 8555 8.4
/// and BR 3.2.2.4 validate the base domain), or for an IP target — which only
/// `reverse-address-lookup` accepts, `allow_ip` — its reverse name (RFC 1035 3.5, RFC 3596
/// 2.5); then `<prefix>.` in front when a prefix is given (an empty prefix is none, as the
/// reference treats it).
pub fn owner_name(target: &Target, prefix: Option<&str>, allow_ip: bool) -> Result<String, String> {
    let base = match target {
        Target::Domain(domain) => domain.name().to_owned(),
        Target::Ip(ip) if allow_ip => reverse_name(*ip),
        Target::Ip(_) => {
            return Err("an IP address target cannot be validated with this method".to_owned());
        }
    };
    match prefix.filter(|p| !p.is_empty()) {
        None => Ok(base),
        Some(prefix) => prefixed_name(prefix, &base)
            .map_err(|e| format!("the name to query cannot be built from the prefix: {e}")),
    }
}

/// Looks up `name`/`rtype` through the perspective's resolver and reports the outcome, with
/// `evaluate` deciding on the records when there are any.
pub async fn lookup_and_evaluate(
    ctx: &DcvContext,
    method: ValidationMethod,
    name: &str,
    rtype: RecordType,
    evaluate: impl FnOnce(&[Record]) -> Evaluation,
) -> CheckResponse {
    let outcome = ctx.dns.lookup(name, rtype).await;
    respond(method, name, rtype, outcome, evaluate)
}

/// The one mapping from a lookup's outcome to a response (the table of the module docs).
/// `found_at` is the name whose answer `outcome` holds.
pub fn respond(
    method: ValidationMethod,
    found_at: &str,
    rtype: RecordType,
    outcome: Result<DnsAnswer, LookupFailure>,
    evaluate: impl FnOnce(&[Record]) -> Evaluation,
) -> CheckResponse {
    let (outcome, details) = match outcome {
        Ok(answer) if !answer.records.is_empty() => {
            let evaluation = evaluate(&answer.records);
            (
                Outcome::from_match(evaluation.passed),
                details(
                    method,
                    found_at,
                    Some(&answer),
                    Some(evaluation.records_seen),
                ),
            )
        }
        Ok(answer) => {
            let message = format!(
                "no {rtype} record at {found_at}: {}{}",
                rcode_text(answer.rcode),
                if answer.cname_chain.is_empty() {
                    String::new()
                } else {
                    format!(" after the CNAME chain {}", answer.cname_chain.join(" → "))
                }
            );
            (
                Outcome::NotPassed(vec![Problem::new(
                    ProblemKind::Lookup(Checker::Dcv),
                    message,
                )]),
                details(method, found_at, Some(&answer), Some(Vec::new())),
            )
        }
        Err(failure) => (
            Outcome::NotCompleted(failure.problem(Checker::Dcv)),
            details(method, &failure.name, failure.answer.as_ref(), None),
        ),
    };
    outcome.into_response(CheckDetails::Dns(details))
}

/// A parameter the check cannot use (normally refused with a 400 before it gets here).
pub fn parameter_error(method: ValidationMethod, message: impl Into<String>) -> CheckResponse {
    Outcome::NotCompleted(Problem::new(ProblemKind::Parameter, message))
        .into_response(CheckDetails::Dns(details(method, "", None, None)))
}

fn details(
    method: ValidationMethod,
    found_at: &str,
    answer: Option<&DnsAnswer>,
    records_seen: Option<Vec<String>>,
) -> DnsDetails {
    DnsDetails {
        validation_method: method,
        records_seen,
        response_code: answer.map(|a| u16::from(a.rcode)),
        ad_flag: answer.map(|a| a.authentic_data),
        found_at: (!found_at.is_empty()).then(|| found_at.trim_end_matches('.').to_owned()),
        cname_chain: answer.map(|a| a.cname_chain.clone()),
    }
}

/// Lowercase for case-insensitive matching: Unicode rules for valid UTF-8, ASCII letters only
/// otherwise.
fn lowercase(bytes: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_lowercase().into_bytes(),
        Err(_) => bytes.to_ascii_lowercase(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, AAAA, CAA, CNAME, PTR, TXT};

    use super::*;

    /// A CAA record with this tag and value (`CAA` is `#[non_exhaustive]`: start from a
    /// constructor, then set the public fields).
    pub(crate) fn caa_rdata(tag: &str, value: &[u8]) -> CAA {
        let mut caa = CAA::new_issue(false, None, Vec::new());
        caa.tag = tag.to_owned();
        caa.value = value.to_vec();
        caa
    }

    #[test]
    fn text_rule_table() {
        struct Case {
            name: &'static str,
            rule: TextRule,
            expected: &'static str,
            record: &'static [u8],
            want: bool,
        }
        const SUBSTRING: TextRule = TextRule {
            exact: false,
            case_sensitive: true,
        };
        const SUBSTRING_ANY_CASE: TextRule = TextRule {
            exact: false,
            case_sensitive: false,
        };
        let cases = [
            Case {
                name: "exact equal",
                rule: TextRule::EXACT,
                expected: "token",
                record: b"token",
                want: true,
            },
            Case {
                name: "exact, case differs",
                rule: TextRule::EXACT,
                expected: "Token",
                record: b"token",
                want: false,
            },
            Case {
                name: "exact any case, case differs",
                rule: TextRule::EXACT_ANY_CASE,
                expected: "Admin@Example.COM",
                record: b"admin@example.com",
                want: true,
            },
            Case {
                name: "exact any case, non-ascii letters fold",
                rule: TextRule::EXACT_ANY_CASE,
                expected: "\u{c4}DMIN@b\u{fc}cher.example",
                record: "\u{e4}dmin@B\u{dc}CHER.example".as_bytes(),
                want: true,
            },
            Case {
                name: "exact refuses a longer record",
                rule: TextRule::EXACT,
                expected: "token",
                record: b"token2",
                want: false,
            },
            Case {
                name: "leading space not trimmed",
                rule: TextRule::EXACT,
                expected: "token",
                record: b" token",
                want: false,
            },
            Case {
                name: "trailing newline not trimmed",
                rule: TextRule::EXACT_ANY_CASE,
                expected: "token",
                record: b"token\n",
                want: false,
            },
            Case {
                name: "expected with spaces matches only with spaces",
                rule: TextRule::EXACT,
                expected: " token ",
                record: b" token ",
                want: true,
            },
            Case {
                name: "substring",
                rule: SUBSTRING,
                expected: "abc",
                record: b"xxabcxx",
                want: true,
            },
            Case {
                name: "substring, case differs",
                rule: SUBSTRING,
                expected: "ABC",
                record: b"xxabcxx",
                want: false,
            },
            Case {
                name: "substring any case",
                rule: SUBSTRING_ANY_CASE,
                expected: "ABC",
                record: b"xxabcxx",
                want: true,
            },
            Case {
                name: "substring longer than the record",
                rule: SUBSTRING,
                expected: "abcdef",
                record: b"abc",
                want: false,
            },
            Case {
                name: "NUL byte is data",
                rule: TextRule::EXACT,
                expected: "a\u{0}b",
                record: b"a\0b",
                want: true,
            },
            Case {
                name: "NUL byte is not ignored",
                rule: TextRule::EXACT,
                expected: "ab",
                record: b"a\0b",
                want: false,
            },
            Case {
                name: "invalid UTF-8 never equals U+FFFD",
                rule: TextRule::EXACT_ANY_CASE,
                expected: "a\u{fffd}b",
                record: b"a\xffb",
                want: false,
            },
            Case {
                name: "invalid UTF-8 elsewhere, ascii part folds",
                rule: SUBSTRING_ANY_CASE,
                expected: "token",
                record: b"\xff TOKEN",
                want: true,
            },
            Case {
                name: "trailing dot is part of a name",
                rule: TextRule::EXACT_ANY_CASE,
                expected: "host.example.com",
                record: b"host.example.com.",
                want: false,
            },
            Case {
                name: "trailing dot given",
                rule: TextRule::EXACT_ANY_CASE,
                expected: "HOST.example.com.",
                record: b"host.example.com.",
                want: true,
            },
            Case {
                name: "empty expected never matches",
                rule: SUBSTRING,
                expected: "",
                record: b"anything",
                want: false,
            },
            Case {
                name: "empty record",
                rule: TextRule::EXACT,
                expected: "x",
                record: b"",
                want: false,
            },
        ];
        for c in cases {
            assert_eq!(
                c.rule.matches(c.expected, c.record),
                c.want,
                "case {:?}",
                c.name
            );
        }
    }

    #[test]
    fn one_matching_record_of_many_passes() {
        let values = vec![b"wrong".to_vec(), b"a\xffb".to_vec(), b"token".to_vec()];
        let evaluation = TextRule::EXACT.evaluate("token", &values);
        assert!(evaluation.passed);
        assert_eq!(evaluation.records_seen, ["wrong", "a\u{fffd}b", "token"]);
        assert!(!TextRule::EXACT.evaluate("none", &values).passed);
        assert!(!TextRule::EXACT.evaluate("token", &[]).passed);
    }

    #[test]
    fn record_data_table() {
        struct Case {
            name: &'static str,
            rdata: RData,
            want: Option<&'static [u8]>,
            seen: &'static str,
        }
        let name = |s: &str| Name::from_ascii(s).unwrap();
        let cases = [
            Case {
                name: "TXT strings are concatenated",
                rdata: RData::TXT(TXT::from_bytes(vec![b"abc", b"", b"def"])),
                want: Some(b"abcdef"),
                seen: "abcdef",
            },
            Case {
                name: "TXT with NUL and invalid UTF-8 is rendered safely",
                rdata: RData::TXT(TXT::from_bytes(vec![b"a\0", b"\xff"])),
                want: Some(b"a\0\xff"),
                seen: "a\\u{0}\u{fffd}",
            },
            Case {
                name: "TXT of one empty string",
                rdata: RData::TXT(TXT::from_bytes(vec![b""])),
                want: Some(b""),
                seen: "",
            },
            Case {
                name: "CNAME keeps its trailing dot",
                rdata: RData::CNAME(CNAME(name("Target.Example.NET."))),
                want: Some(b"Target.Example.NET."),
                seen: "Target.Example.NET.",
            },
            Case {
                name: "PTR keeps its trailing dot",
                rdata: RData::PTR(PTR(name("host.example.com."))),
                want: Some(b"host.example.com."),
                seen: "host.example.com.",
            },
            Case {
                name: "CAA is the value",
                rdata: RData::CAA(caa_rdata("contactemail", b"admin@example.com")),
                want: Some(b"admin@example.com"),
                seen: "admin@example.com",
            },
            Case {
                name: "A",
                rdata: RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
                want: Some(b"192.0.2.1"),
                seen: "192.0.2.1",
            },
            Case {
                name: "AAAA in RFC 5952 form",
                rdata: RData::AAAA(AAAA("2001:db8:0:0:0:0:0:1".parse::<Ipv6Addr>().unwrap())),
                want: Some(b"2001:db8::1"),
                seen: "2001:db8::1",
            },
            Case {
                name: "other types have no data",
                rdata: RData::NS(hickory_proto::rr::rdata::NS(name("ns.example."))),
                want: None,
                seen: "",
            },
        ];
        for c in cases {
            let got = record_data(&c.rdata);
            assert_eq!(got.as_deref(), c.want, "case {:?}", c.name);
            if let Some(bytes) = got {
                assert_eq!(render(&bytes), c.seen, "case {:?}", c.name);
            }
        }
    }

    #[test]
    fn owner_name_table() {
        struct Case {
            name: &'static str,
            target: &'static str,
            prefix: Option<&'static str>,
            allow_ip: bool,
            want: Result<&'static str, &'static str>,
        }
        let long = format!("{}.example.com", vec!["a".repeat(55); 4].join("."));
        let long: &'static str = Box::leak(long.into_boxed_str());
        let cases = [
            Case {
                name: "no prefix",
                target: "Example.COM",
                prefix: None,
                allow_ip: false,
                want: Ok("example.com"),
            },
            Case {
                name: "prefix",
                target: "example.com",
                prefix: Some("_acme-challenge"),
                allow_ip: false,
                want: Ok("_acme-challenge.example.com"),
            },
            Case {
                name: "wildcard uses the base name",
                target: "*.example.com",
                prefix: Some("_acme-challenge"),
                allow_ip: false,
                want: Ok("_acme-challenge.example.com"),
            },
            Case {
                name: "prefix is lowercased",
                target: "example.com",
                prefix: Some("_X.Sub"),
                allow_ip: false,
                want: Ok("_x.sub.example.com"),
            },
            Case {
                name: "empty prefix is none",
                target: "example.com",
                prefix: Some(""),
                allow_ip: false,
                want: Ok("example.com"),
            },
            Case {
                name: "ipv4 reverse name",
                target: "192.0.2.1",
                prefix: None,
                allow_ip: true,
                want: Ok("1.2.0.192.in-addr.arpa"),
            },
            Case {
                name: "ipv6 reverse name with a prefix",
                target: "2001:db8::1",
                prefix: Some("_p"),
                allow_ip: true,
                want: Ok(
                    "_p.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                ),
            },
            Case {
                name: "ip refused",
                target: "192.0.2.1",
                prefix: None,
                allow_ip: false,
                want: Err("an IP address target cannot be validated with this method"),
            },
            Case {
                name: "too long with the prefix",
                target: long,
                prefix: Some("_validation-persist"),
                allow_ip: false,
                want: Err(
                    "the name to query cannot be built from the prefix: the name is 255 octets long in A-label form; the limit is 253 (RFC 1035 §2.3.4)",
                ),
            },
        ];
        for c in cases {
            let target = Target::parse(c.target).unwrap();
            let got = owner_name(&target, c.prefix, c.allow_ip);
            assert_eq!(
                got.as_deref().map_err(String::as_str),
                c.want,
                "case {:?}",
                c.name
            );
        }
    }
}
