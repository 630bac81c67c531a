//! `dns-persistent` (BR 3.2.2.4.22, Persistent DNS TXT Record; draft-ietf-acme-dns-persist):
//! a long-lived TXT record at `_validation-persist.<domain>` names the CA and the account that
//! may issue for the domain.
//!
//! The record is an RFC 8659 section 4.2 issuer value (the grammar of CAA `issue`, parsed by
//! [`crate::caa::issuer_value`]):
//!
//! ```text
//! issuer-domain-name; accounturi=<uri>[; policy=wildcard][; persistUntil=<unix seconds>]
//! ```
//!
//! A record authorises the request when (requirements.md "Persistent TXT"):
//! - its issuer domain name is one of `issuer_domain_names`, compared as domain names: in the
//!   normal form of draft-ietf-acme-dns-persist ("issuer-domain-names": A-labels, lowercase, no
//!   trailing dot), on both sides, so `LETSENCRYPT.ORG.` in a record matches `letsencrypt.org`
//!   (Boulder's `core.NormalizeIssuerDomainName` does the same); then exactly;
//! - it has exactly one `accounturi`, equal byte for byte to `expected_account_uri`;
//! - its `persistUntil`, if any, is not in the past;
//! - for a wildcard target, it carries `policy=wildcard` (value case-insensitive; any other
//!   policy value is as if absent).
//!
//! Parameter tags are case-insensitive and unknown parameters are ignored. A record that does
//! not parse — wrong grammar, no issuer, not exactly one `accounturi`, a repeated `policy` or
//! `persistUntil`, a `persistUntil` that is not a number of seconds — is malformed and skipped;
//! any one authorising record passes.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::RecordType;
use mpic_common::api::{CheckResponse, DnsPersistentParameters, ValidationMethod};
use mpic_common::target::Target;

use super::{Evaluation, lookup_and_evaluate, owner_name, parameter_error, records_data, render};
use crate::caa::issuer_value::{self, IssuerValueError};
use crate::dcv::DcvContext;

/// Runs `dns-persistent`.
pub async fn check(
    ctx: &DcvContext,
    target: &Target,
    p: &DnsPersistentParameters,
) -> CheckResponse {
    let method = ValidationMethod::DnsPersistent;
    let name = match owner_name(
        target,
        Some(mpic_common::dcv::dns_persistent::PREFIX),
        false,
    ) {
        Ok(name) => name,
        Err(e) => return parameter_error(method, e),
    };
    // The same normal form as the record's issuer: lowercase A-labels, no trailing dot.
    let issuers: Vec<String> = p
        .issuer_domain_names
        .iter()
        .filter_map(|n| match Target::parse(n) {
            Ok(Target::Domain(d)) if !d.is_wildcard() => Some(d.name().to_owned()),
            _ => None,
        })
        .collect();
    let request = PersistRequest {
        issuer_domain_names: &issuers,
        account_uri: &p.expected_account_uri,
        wildcard: target.is_wildcard(),
        now: unix_now(),
    };
    lookup_and_evaluate(ctx, method, &name, RecordType::TXT, |records| {
        evaluate(&records_data(records), &request)
    })
    .await
}

/// A well-formed persistent validation record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRecord {
    /// The issuer domain name, lowercase.
    pub issuer: String,
    /// The one `accounturi` value, as written.
    pub account_uri: String,
    /// `policy=wildcard` is present.
    pub wildcard: bool,
    /// `persistUntil`, in seconds since the Unix epoch.
    pub persist_until: Option<u64>,
}

/// Why a record is malformed (and therefore skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedRecord {
    /// Not an RFC 8659 4.2 issuer value.
    #[error("not an issuer value: {0}")]
    Grammar(IssuerValueError),
    /// No issuer domain name (`;` alone, or empty).
    #[error("no issuer domain name")]
    NoIssuer,
    /// Zero, or more than one, `accounturi`.
    #[error("{0} accounturi parameters, exactly one is required")]
    AccountUriCount(usize),
    /// A parameter that may appear once appears again.
    #[error("more than one {0} parameter")]
    Repeated(&'static str),
    /// `persistUntil` is not a decimal number of seconds that fits in 64 bits.
    #[error("persistUntil is not a number of seconds")]
    PersistUntil,
}

/// Why a well-formed record does not authorise this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// The issuer is not among `issuer_domain_names`.
    IssuerNotListed,
    /// The `accounturi` is not the expected one.
    AccountUriMismatch,
    /// `persistUntil` has passed.
    Expired,
    /// A wildcard target without `policy=wildcard`.
    WildcardNotAllowed,
}

/// What the request asks of a record.
#[derive(Debug, Clone, Copy)]
pub struct PersistRequest<'a> {
    /// Issuer domain names of this CA, lowercase A-labels.
    pub issuer_domain_names: &'a [String],
    /// The account URI the record must name.
    pub account_uri: &'a str,
    /// The target is a wildcard.
    pub wildcard: bool,
    /// Now, in seconds since the Unix epoch.
    pub now: u64,
}

/// Parses one record (the concatenated character-strings of one TXT record). The issuer domain
/// name comes out in the draft's normal form: lowercase, without the trailing root dot.
pub fn parse(bytes: &[u8]) -> Result<PersistRecord, MalformedRecord> {
    let value = issuer_value::parse(&without_root_dot(bytes)).map_err(MalformedRecord::Grammar)?;
    let issuer = value.issuer.clone().ok_or(MalformedRecord::NoIssuer)?;
    let account_uris: Vec<&str> = value.parameter_values(ACCOUNT_URI).collect();
    let [account_uri] = account_uris[..] else {
        return Err(MalformedRecord::AccountUriCount(account_uris.len()));
    };
    let wildcard = match at_most_one(&value, POLICY)? {
        Some(policy) => policy.eq_ignore_ascii_case(POLICY_WILDCARD),
        None => false,
    };
    let persist_until = match at_most_one(&value, PERSIST_UNTIL)? {
        Some(seconds) => Some(parse_seconds(seconds).ok_or(MalformedRecord::PersistUntil)?),
        None => None,
    };
    Ok(PersistRecord {
        issuer,
        account_uri: account_uri.to_owned(),
        wildcard,
        persist_until,
    })
}

/// Whether a well-formed record authorises the request.
pub fn usable(record: &PersistRecord, request: &PersistRequest<'_>) -> Result<(), Unusable> {
    if !request.issuer_domain_names.contains(&record.issuer) {
        return Err(Unusable::IssuerNotListed);
    }
    if record.account_uri != request.account_uri {
        return Err(Unusable::AccountUriMismatch);
    }
    if record
        .persist_until
        .is_some_and(|until| request.now > until)
    {
        return Err(Unusable::Expired);
    }
    if request.wildcard && !record.wildcard {
        return Err(Unusable::WildcardNotAllowed);
    }
    Ok(())
}

/// Every record is shown; any one record that parses and authorises passes.
pub fn evaluate(values: &[Vec<u8>], request: &PersistRequest<'_>) -> Evaluation {
    Evaluation {
        records_seen: values.iter().map(|v| render(v)).collect(),
        passed: values
            .iter()
            .any(|v| parse(v).is_ok_and(|record| usable(&record, request).is_ok())),
    }
}

/// `bytes` with the one dot that ends its issuer domain name removed, if it ends with one: a
/// fully qualified `ca.example.` is the name `ca.example` (draft-ietf-acme-dns-persist, the
/// normalization of "issuer-domain-names": "The domain name MUST NOT have a trailing dot";
/// Boulder's `core.NormalizeIssuerDomainName` trims it from the record's name). RFC 8659's
/// issuer-domain-name grammar, which the rest of the record is read with, has no root dot. Only
/// that one dot goes: `ca.example..` or a lone `.` stay malformed.
pub fn without_root_dot(bytes: &[u8]) -> Cow<'_, [u8]> {
    let is_wsp = |b: &u8| matches!(b, b' ' | b'\t');
    let start = bytes.iter().position(|b| !is_wsp(b)).unwrap_or(bytes.len());
    let end = bytes[start..]
        .iter()
        .position(|b| *b == b';' || is_wsp(b))
        .map_or(bytes.len(), |i| start + i);
    match bytes[start..end] {
        [.., before, b'.'] if before != b'.' => {
            let mut owned = bytes.to_vec();
            owned.remove(end - 1);
            Cow::Owned(owned)
        }
        _ => Cow::Borrowed(bytes),
    }
}

/// The one value of parameter `tag`, if any; a repeated parameter makes the record malformed.
fn at_most_one<'a>(
    value: &'a issuer_value::IssuerValue,
    tag: &'static str,
) -> Result<Option<&'a str>, MalformedRecord> {
    let mut values = value.parameter_values(tag);
    let first = values.next();
    if values.next().is_some() {
        return Err(MalformedRecord::Repeated(tag));
    }
    Ok(first)
}

/// Decimal digits only (no sign, no space), at most what fits in a `u64`.
fn parse_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `_validation-persist` (BR 3.2.2.4.22).
/// Parameter tags, lowercase ([`issuer_value`] lowercases the tags it reads).
const ACCOUNT_URI: &str = "accounturi";
const POLICY: &str = "policy";
const PERSIST_UNTIL: &str = "persistuntil";
/// The one policy value with a meaning.
const POLICY_WILDCARD: &str = "wildcard";

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "https://ca.example/acct/123";

    fn record(issuer: &str, wildcard: bool, persist_until: Option<u64>) -> PersistRecord {
        PersistRecord {
            issuer: issuer.to_owned(),
            account_uri: ACCOUNT.to_owned(),
            wildcard,
            persist_until,
        }
    }

    #[test]
    fn grammar_table() {
        struct Case {
            name: &'static str,
            input: &'static [u8],
            want: Result<PersistRecord, MalformedRecord>,
        }
        use MalformedRecord as M;
        let cases = [
            // Well-formed.
            Case {
                name: "minimal",
                input: b"ca.example; accounturi=https://ca.example/acct/123",
                want: Ok(record("ca.example", false, None)),
            },
            Case {
                name: "all parameters, odd case and spacing",
                input: b"  CA.Example ;AccountURI = https://ca.example/acct/123;  Policy=WildCard;persistUntil=1893456000  ",
                want: Ok(record("ca.example", true, Some(1_893_456_000))),
            },
            Case {
                name: "unknown parameters ignored",
                input: b"ca.example; foo=bar; accounturi=https://ca.example/acct/123; x-1=",
                want: Ok(record("ca.example", false, None)),
            },
            Case {
                name: "another policy value is as if absent",
                input: b"ca.example; accounturi=https://ca.example/acct/123; policy=subdomains",
                want: Ok(record("ca.example", false, None)),
            },
            Case {
                name: "tab as whitespace",
                input: b"ca.example;\taccounturi=https://ca.example/acct/123",
                want: Ok(record("ca.example", false, None)),
            },
            // Malformed.
            Case {
                name: "empty",
                input: b"",
                want: Err(M::NoIssuer),
            },
            Case {
                name: "semicolon alone",
                input: b";",
                want: Err(M::NoIssuer),
            },
            Case {
                name: "no issuer",
                input: b"; accounturi=https://ca.example/acct/123",
                want: Err(M::NoIssuer),
            },
            Case {
                name: "no accounturi",
                input: b"ca.example",
                want: Err(M::AccountUriCount(0)),
            },
            Case {
                name: "two accounturi",
                input: b"ca.example; accounturi=https://ca.example/acct/123; accounturi=https://ca.example/acct/9",
                want: Err(M::AccountUriCount(2)),
            },
            Case {
                name: "two accounturi in different case",
                input: b"ca.example; accounturi=https://ca.example/acct/123; ACCOUNTURI=https://ca.example/acct/123",
                want: Err(M::AccountUriCount(2)),
            },
            Case {
                name: "issuer with an empty label",
                input: b"ca..example; accounturi=https://ca.example/acct/123",
                want: Err(M::Grammar(IssuerValueError::IssuerDomain)),
            },
            Case {
                name: "issuer with the trailing root dot",
                input: b"ca.example.; accounturi=https://ca.example/acct/123",
                want: Ok(record("ca.example", false, None)),
            },
            Case {
                name: "upper case and the root dot, nothing after the name",
                input: b" CA.EXAMPLE.",
                want: Err(M::AccountUriCount(0)),
            },
            Case {
                name: "upper case and the root dot, a space before the semicolon",
                input: b"CA.Example. ;accounturi=https://ca.example/acct/123",
                want: Ok(record("ca.example", false, None)),
            },
            Case {
                name: "two trailing dots",
                input: b"ca.example..; accounturi=https://ca.example/acct/123",
                want: Err(M::Grammar(IssuerValueError::IssuerDomain)),
            },
            Case {
                name: "the root alone",
                input: b".; accounturi=https://ca.example/acct/123",
                want: Err(M::Grammar(IssuerValueError::IssuerDomain)),
            },
            Case {
                name: "a dot inside a parameter value is kept",
                input: b"ca.example; accounturi=https://ca.example/acct/123.",
                want: Ok(PersistRecord {
                    account_uri: "https://ca.example/acct/123.".to_owned(),
                    ..record("ca.example", false, None)
                }),
            },
            Case {
                name: "missing semicolon after the issuer",
                input: b"ca.example accounturi=https://ca.example/acct/123",
                want: Err(M::Grammar(IssuerValueError::Unexpected(11))),
            },
            Case {
                name: "parameter without =",
                input: b"ca.example; accounturi",
                want: Err(M::Grammar(IssuerValueError::Parameter(12))),
            },
            Case {
                name: "trailing semicolon",
                input: b"ca.example; accounturi=https://ca.example/acct/123;",
                want: Err(M::Grammar(IssuerValueError::Parameter(51))),
            },
            Case {
                name: "space inside a value",
                input: b"ca.example; accounturi=https://ca.example/acct 123",
                want: Err(M::Grammar(IssuerValueError::Unexpected(47))),
            },
            Case {
                name: "NUL byte",
                input: b"ca.example; accounturi=https://ca.example/acct/123\0",
                want: Err(M::Grammar(IssuerValueError::Unexpected(50))),
            },
            Case {
                name: "invalid UTF-8",
                input: b"ca.example; accounturi=https://ca.example/acct/\xff",
                want: Err(M::Grammar(IssuerValueError::Unexpected(47))),
            },
            Case {
                name: "quoted like a zone file",
                input: b"\"ca.example; accounturi=https://ca.example/acct/123\"",
                want: Err(M::Grammar(IssuerValueError::IssuerDomain)),
            },
            Case {
                name: "persistUntil not a number",
                input: b"ca.example; accounturi=https://ca.example/acct/123; persistUntil=tomorrow",
                want: Err(M::PersistUntil),
            },
            Case {
                name: "persistUntil negative",
                input: b"ca.example; accounturi=https://ca.example/acct/123; persistUntil=-1",
                want: Err(M::PersistUntil),
            },
            Case {
                name: "persistUntil with a sign",
                input: b"ca.example; accounturi=https://ca.example/acct/123; persistUntil=+1893456000",
                want: Err(M::PersistUntil),
            },
            Case {
                name: "persistUntil empty",
                input: b"ca.example; accounturi=https://ca.example/acct/123; persistUntil=",
                want: Err(M::PersistUntil),
            },
            Case {
                name: "persistUntil beyond 64 bits",
                input: b"ca.example; accounturi=https://ca.example/acct/123; persistUntil=18446744073709551616",
                want: Err(M::PersistUntil),
            },
            Case {
                name: "persistUntil twice",
                input: b"ca.example; accounturi=https://ca.example/acct/123; persistUntil=1; persistUntil=2",
                want: Err(M::Repeated("persistuntil")),
            },
            Case {
                name: "policy twice",
                input: b"ca.example; accounturi=https://ca.example/acct/123; policy=wildcard; policy=none",
                want: Err(M::Repeated("policy")),
            },
        ];
        for c in cases {
            assert_eq!(parse(c.input), c.want, "case {:?}", c.name);
        }
    }

    #[test]
    fn authorisation_table() {
        struct Case {
            name: &'static str,
            record: PersistRecord,
            account_uri: &'static str,
            wildcard: bool,
            want: Result<(), Unusable>,
        }
        const NOW: u64 = 1_800_000_000;
        let cases = [
            Case {
                name: "authorises",
                record: record("ca.example", false, None),
                account_uri: ACCOUNT,
                wildcard: false,
                want: Ok(()),
            },
            Case {
                name: "second issuer name of the CA",
                record: record("ca2.example", false, None),
                account_uri: ACCOUNT,
                wildcard: false,
                want: Ok(()),
            },
            Case {
                name: "another CA",
                record: record("other.example", false, None),
                account_uri: ACCOUNT,
                wildcard: false,
                want: Err(Unusable::IssuerNotListed),
            },
            Case {
                name: "another account",
                record: record("ca.example", false, None),
                account_uri: "https://ca.example/acct/124",
                wildcard: false,
                want: Err(Unusable::AccountUriMismatch),
            },
            Case {
                name: "account compared byte for byte",
                record: record("ca.example", false, None),
                account_uri: "HTTPS://ca.example/acct/123",
                wildcard: false,
                want: Err(Unusable::AccountUriMismatch),
            },
            Case {
                name: "persistUntil in the future",
                record: record("ca.example", false, Some(NOW + 1)),
                account_uri: ACCOUNT,
                wildcard: false,
                want: Ok(()),
            },
            Case {
                name: "persistUntil is now",
                record: record("ca.example", false, Some(NOW)),
                account_uri: ACCOUNT,
                wildcard: false,
                want: Ok(()),
            },
            Case {
                name: "persistUntil passed",
                record: record("ca.example", false, Some(NOW - 1)),
                account_uri: ACCOUNT,
                wildcard: false,
                want: Err(Unusable::Expired),
            },
            Case {
                name: "wildcard without the policy",
                record: record("ca.example", false, None),
                account_uri: ACCOUNT,
                wildcard: true,
                want: Err(Unusable::WildcardNotAllowed),
            },
            Case {
                name: "wildcard with the policy",
                record: record("ca.example", true, None),
                account_uri: ACCOUNT,
                wildcard: true,
                want: Ok(()),
            },
            Case {
                name: "the policy also allows the base name",
                record: record("ca.example", true, None),
                account_uri: ACCOUNT,
                wildcard: false,
                want: Ok(()),
            },
        ];
        let issuers = ["ca.example".to_owned(), "ca2.example".to_owned()];
        for c in cases {
            let request = PersistRequest {
                issuer_domain_names: &issuers,
                account_uri: c.account_uri,
                wildcard: c.wildcard,
                now: NOW,
            };
            assert_eq!(usable(&c.record, &request), c.want, "case {:?}", c.name);
        }
    }

    /// Issuer domain names compare as domain names (draft-ietf-acme-dns-persist; Boulder):
    /// case-insensitively, a trailing root dot ignored.
    #[test]
    fn issuer_domain_names_compare_as_domain_names() {
        let issuers = ["letsencrypt.org".to_owned()];
        let request = PersistRequest {
            issuer_domain_names: &issuers,
            account_uri: ACCOUNT,
            wildcard: false,
            now: 1_800_000_000,
        };
        for (value, want) in [
            (
                "LETSENCRYPT.ORG.; accounturi=https://ca.example/acct/123",
                true,
            ),
            (
                "letsencrypt.org.; accounturi=https://ca.example/acct/123",
                true,
            ),
            (
                "LetsEncrypt.Org; accounturi=https://ca.example/acct/123",
                true,
            ),
            (
                "letsencrypt.org..; accounturi=https://ca.example/acct/123",
                false,
            ),
            (
                "letsencrypt.org.example; accounturi=https://ca.example/acct/123",
                false,
            ),
            (
                "xletsencrypt.org.; accounturi=https://ca.example/acct/123",
                false,
            ),
        ] {
            let got = evaluate(&[value.as_bytes().to_vec()], &request);
            assert_eq!(got.passed, want, "{value}");
            // The record is shown as it was written.
            assert_eq!(got.records_seen, [value], "{value}");
        }
    }

    #[test]
    fn malformed_records_are_skipped_and_one_good_record_passes() {
        let issuers = ["ca.example".to_owned()];
        let request = PersistRequest {
            issuer_domain_names: &issuers,
            account_uri: ACCOUNT,
            wildcard: false,
            now: 1_800_000_000,
        };
        let values = vec![
            b"garbage \xff".to_vec(),
            b"ca.example; accounturi=https://ca.example/acct/123; persistUntil=1".to_vec(),
            b"ca.example; accounturi=https://ca.example/acct/123".to_vec(),
        ];
        let got = evaluate(&values, &request);
        assert!(got.passed);
        assert_eq!(got.records_seen[0], "garbage \u{fffd}");
        assert!(!evaluate(&values[..2], &request).passed);
    }
}
