//! CAA evaluation: given the relevant RRset, may this CA issue? A pure function over data
//! (RFC 8659 section 4, RFC 8657, RFC 9495, BR 3.2.2.8 and Appendix A).

use mpic_common::api::CertificateType;
use mpic_common::method_labels::grants;

use super::issuer_value::{self, IssuerValue};

/// One CAA resource record as received: the flags byte, the tag and the raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaRecord {
    /// The flags octet; bit 128 is Issuer Critical.
    pub flags: u8,
    /// The property tag as written.
    pub tag: String,
    /// The property value bytes.
    pub value: Vec<u8>,
}

impl CaaRecord {
    /// The Issuer Critical flag (RFC 8659 4.1: bit 0, value 128). Flag value 1 is treated as
    /// critical too, as Boulder does, because early implementations set the wrong bit
    /// (RFC 6844 errata 5065); treating it as critical can only forbid, never authorise.
    pub fn is_critical(&self) -> bool {
        self.flags & 0b1000_0001 != 0
    }

    /// RFC 8659 presentation form, e.g. `0 issue "ca.example"`, with non-printable bytes,
    /// `"` and `\` escaped (RFC 1035 5.1), bounded for echo.
    pub fn presentation(&self) -> String {
        let mut value = String::with_capacity(self.value.len() + 2);
        for &b in &self.value {
            match b {
                b'"' | b'\\' => {
                    value.push('\\');
                    value.push(char::from(b));
                }
                0x20..=0x7e => value.push(char::from(b)),
                _ => value.push_str(&format!("\\{b:03}")),
            }
        }
        let text = format!(
            "{} {} \"{}\"",
            self.flags,
            mpic_common::text::bytes_for_echo(self.tag.as_bytes(), 64),
            value
        );
        mpic_common::text::truncate_for_echo(&text, mpic_common::text::MAX_RECORD_ECHO_BYTES)
    }
}

/// What the CA asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaRequest<'a> {
    /// The certificate is for a wildcard name (`*.` removed before lookup).
    pub wildcard: bool,
    /// TLS server or S/MIME.
    pub certificate_type: CertificateType,
    /// The CA's issuer domain names, lowercase.
    pub issuer_domains: &'a [String],
    /// RFC 8657 account URI of the request.
    pub account_uri: Option<&'a str>,
    /// RFC 8657 validation method label of the request, as validated (lowercase).
    pub validation_method: Option<&'a str>,
}

/// The outcome and why; the reason is reported in the details as [`CaaReason::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaaReason {
    /// No CAA RRset anywhere up the tree: anyone may issue.
    NoRecords,
    /// A CAA RRset exists but has no property governing this certificate type.
    NoRelevantProperty,
    /// A relevant property names one of our issuer domains and its parameters are met.
    IssuerAuthorised,
    /// A property tag we do not understand is marked critical (RFC 8659 4.1).
    UnknownCriticalProperty,
    /// No relevant property names one of our issuer domains (includes `";"`, empty and
    /// malformed values).
    IssuerNotListed,
    /// Our issuer is named but the record's `accounturi` is not the request's.
    AccountUriMismatch,
    /// Our issuer is named with an `accounturi`, and the request gave no account URI.
    AccountUriNotGiven,
    /// Our issuer is named with `validationmethods` that do not include the request's method.
    ValidationMethodMismatch,
    /// Our issuer is named with `validationmethods`, and the request gave no method.
    ValidationMethodNotGiven,
    /// Our issuer is named with a repeated or malformed `accounturi`/`validationmethods`
    /// (RFC 8657 3 and 4: the property cannot be satisfied).
    UnsatisfiableParameters,
}

impl CaaReason {
    /// Whether issuance is permitted.
    pub fn permits(self) -> bool {
        matches!(
            self,
            CaaReason::NoRecords | CaaReason::NoRelevantProperty | CaaReason::IssuerAuthorised
        )
    }

    /// The code reported in `details.reason`.
    pub fn code(self) -> &'static str {
        match self {
            CaaReason::NoRecords => "no-caa-records",
            CaaReason::NoRelevantProperty => "no-relevant-property",
            CaaReason::IssuerAuthorised => "issuer-authorised",
            CaaReason::UnknownCriticalProperty => "unknown-critical-property",
            CaaReason::IssuerNotListed => "issuer-not-listed",
            CaaReason::AccountUriMismatch => "accounturi-mismatch",
            CaaReason::AccountUriNotGiven => "accounturi-not-given",
            CaaReason::ValidationMethodMismatch => "validationmethods-mismatch",
            CaaReason::ValidationMethodNotGiven => "validationmethods-not-given",
            CaaReason::UnsatisfiableParameters => "unsatisfiable-parameters",
        }
    }
}

/// Property tags we understand (RFC 8659 4.2–4.4, RFC 9495, BR Appendix A, the VMC
/// requirements' `issuevmc`). Any other tag marked critical forbids issuance.
pub const KNOWN_TAGS: [&str; 7] = [
    "issue",
    "issuewild",
    "iodef",
    "issuemail",
    "issuevmc",
    "contactemail",
    "contactphone",
];

/// Decides whether the CA may issue under the relevant RRset `records` (empty: none found).
///
/// 1. Empty RRset: permitted (RFC 8659 3).
/// 2. A critical property we do not understand: forbidden (RFC 8659 4.1), whatever else the set
///    says.
/// 3. The governing properties: `issuemail` for S/MIME (RFC 9495 3); for TLS, `issuewild` for a
///    wildcard when the set has any `issuewild`, else `issue` (RFC 8659 4.3). None: permitted.
/// 4. Permitted if one governing property names one of our issuer domains (case-insensitive,
///    exact) and its RFC 8657 parameters are met; otherwise forbidden, with the most specific
///    reason among the properties that named us.
pub fn evaluate(records: &[CaaRecord], request: &CaaRequest<'_>) -> CaaReason {
    if records.is_empty() {
        return CaaReason::NoRecords;
    }
    let has_tag = |tag: &str| records.iter().any(|r| r.tag.eq_ignore_ascii_case(tag));
    if records
        .iter()
        .any(|r| r.is_critical() && !KNOWN_TAGS.iter().any(|k| r.tag.eq_ignore_ascii_case(k)))
    {
        return CaaReason::UnknownCriticalProperty;
    }
    let governing = match request.certificate_type {
        CertificateType::SMime => "issuemail",
        CertificateType::TlsServer if request.wildcard && has_tag("issuewild") => "issuewild",
        CertificateType::TlsServer => "issue",
    };
    if !has_tag(governing) {
        return CaaReason::NoRelevantProperty;
    }
    let mut best = CaaReason::IssuerNotListed;
    for record in records
        .iter()
        .filter(|r| r.tag.eq_ignore_ascii_case(governing))
    {
        let Ok(value) = issuer_value::parse(&record.value) else {
            continue;
        };
        let Some(issuer) = &value.issuer else {
            continue;
        };
        if !request
            .issuer_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(issuer))
        {
            continue;
        }
        match parameters_met(&value, request) {
            None => return CaaReason::IssuerAuthorised,
            Some(reason) => best = more_specific(best, reason),
        }
    }
    best
}

/// RFC 8657: `None` when the parameters allow this request, else why not. A
/// `validationmethods` label grants the request's label when it is the same label, byte for
/// byte (as Boulder matches; BR 4.2.2.1.2 makes case-insensitive matching a disclosed option,
/// which this service does not take), or the other label of the same mechanism
/// ([`mpic_common::method_labels::grants`]: `ca-tbr-19` grants `http-01`).
fn parameters_met(value: &IssuerValue, request: &CaaRequest<'_>) -> Option<CaaReason> {
    let uris: Vec<&str> = value.parameter_values("accounturi").collect();
    match (uris.as_slice(), request.account_uri) {
        ([], _) => {}
        ([uri], Some(given)) if *uri == given => {}
        ([_], Some(_)) => return Some(CaaReason::AccountUriMismatch),
        ([_], None) => return Some(CaaReason::AccountUriNotGiven),
        // RFC 8657 3: more than one accounturi makes the property unsatisfiable.
        (_, _) => return Some(CaaReason::UnsatisfiableParameters),
    }
    let lists: Vec<&str> = value.parameter_values("validationmethods").collect();
    match lists.as_slice() {
        [] => None,
        [list] => match (
            issuer_value::parse_method_list(list),
            request.validation_method,
        ) {
            (None, _) => Some(CaaReason::UnsatisfiableParameters),
            (Some(_), None) => Some(CaaReason::ValidationMethodNotGiven),
            // The labels are compared as written.
            (Some(labels), Some(m)) if labels.iter().any(|label| grants(label, m)) => None,
            (Some(_), Some(_)) => Some(CaaReason::ValidationMethodMismatch),
        },
        // RFC 8657 4: more than one validationmethods makes the property unsatisfiable.
        _ => Some(CaaReason::UnsatisfiableParameters),
    }
}

/// Among denials for records that named us, report the first parameter failure seen over the
/// generic "not listed".
fn more_specific(current: CaaReason, new: CaaReason) -> CaaReason {
    if current == CaaReason::IssuerNotListed {
        new
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(flags: u8, tag: &str, value: &str) -> CaaRecord {
        CaaRecord {
            flags,
            tag: tag.to_owned(),
            value: value.as_bytes().to_vec(),
        }
    }

    struct Case {
        name: &'static str,
        records: Vec<CaaRecord>,
        wildcard: bool,
        smime: bool,
        account_uri: Option<&'static str>,
        method: Option<&'static str>,
        want: CaaReason,
    }

    impl Default for Case {
        fn default() -> Self {
            Case {
                name: "",
                records: vec![],
                wildcard: false,
                smime: false,
                account_uri: None,
                method: None,
                want: CaaReason::NoRecords,
            }
        }
    }

    const ACCT: &str = "https://ca.example/acct/1";

    #[test]
    fn evaluation_table() {
        use CaaReason::*;
        let cases = vec![
            Case {
                name: "no records",
                want: NoRecords,
                ..Case::default()
            },
            Case {
                name: "permit",
                records: vec![rec(0, "issue", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "deny: other issuer",
                records: vec![rec(0, "issue", "other.example")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "issuer case-insensitive",
                records: vec![rec(0, "issue", "CA.EXAMPLE")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "tag case-insensitive",
                records: vec![rec(0, "ISSUE", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "issuer is exact, not a suffix",
                records: vec![rec(0, "issue", "sub.ca.example")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "issuer is exact, not a prefix",
                records: vec![rec(0, "issue", "example")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "issue \";\" forbids",
                records: vec![rec(0, "issue", ";")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "empty value forbids",
                records: vec![rec(0, "issue", "")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "unparsable value forbids",
                records: vec![rec(0, "issue", "%%%")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "unparsable beside a permit",
                records: vec![rec(0, "issue", "%%%"), rec(0, "issue", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "\";\" beside a permit",
                records: vec![rec(0, "issue", ";"), rec(0, "issue", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "unknown parameters ignored",
                records: vec![rec(0, "issue", "ca.example; account=123; policy=ev")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "wildcard governed by issuewild",
                wildcard: true,
                records: vec![
                    rec(0, "issue", "other.example"),
                    rec(0, "issuewild", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "wildcard denied by issuewild despite issue",
                wildcard: true,
                records: vec![rec(0, "issue", "ca.example"), rec(0, "issuewild", ";")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "wildcard without issuewild uses issue",
                wildcard: true,
                records: vec![rec(0, "issue", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "wildcard without issuewild denied by issue",
                wildcard: true,
                records: vec![rec(0, "issue", "other.example")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "issuewild \";\" does not govern a non-wildcard",
                records: vec![rec(0, "issue", "ca.example"), rec(0, "issuewild", ";")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "only issuewild, non-wildcard",
                records: vec![rec(0, "issuewild", ";")],
                want: NoRelevantProperty,
                ..Case::default()
            },
            Case {
                name: "only iodef",
                records: vec![rec(0, "iodef", "mailto:a@b.example")],
                want: NoRelevantProperty,
                ..Case::default()
            },
            Case {
                name: "unknown non-critical tag ignored",
                records: vec![rec(0, "futuretag", "x"), rec(0, "issue", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "unknown non-critical tag alone",
                records: vec![rec(0, "futuretag", "x")],
                want: NoRelevantProperty,
                ..Case::default()
            },
            Case {
                name: "unknown critical tag forbids",
                records: vec![rec(128, "tbs", "x"), rec(0, "issue", "ca.example")],
                want: UnknownCriticalProperty,
                ..Case::default()
            },
            Case {
                name: "flag 1 treated as critical",
                records: vec![rec(1, "tbs", "x"), rec(0, "issue", "ca.example")],
                want: UnknownCriticalProperty,
                ..Case::default()
            },
            Case {
                name: "other reserved flags are not critical",
                records: vec![rec(2, "tbs", "x"), rec(0, "issue", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "critical issue",
                records: vec![rec(128, "issue", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "critical issuewild",
                records: vec![
                    rec(128, "issuewild", "ca.example"),
                    rec(0, "issue", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "critical iodef",
                records: vec![
                    rec(128, "iodef", "mailto:a@b.example"),
                    rec(0, "issue", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "critical issuemail",
                records: vec![
                    rec(128, "issuemail", "ca.example"),
                    rec(0, "issue", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "critical contactemail",
                records: vec![
                    rec(128, "contactemail", "a@b.example"),
                    rec(0, "issue", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "critical contactphone",
                records: vec![
                    rec(128, "contactphone", "+1 555"),
                    rec(0, "issue", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "critical issuevmc",
                records: vec![
                    rec(128, "issuevmc", "ca.example"),
                    rec(0, "issue", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "s-mime governed by issuemail",
                smime: true,
                records: vec![rec(0, "issue", ";"), rec(0, "issuemail", "ca.example")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "s-mime denied by issuemail",
                smime: true,
                records: vec![rec(0, "issue", "ca.example"), rec(0, "issuemail", ";")],
                want: IssuerNotListed,
                ..Case::default()
            },
            Case {
                name: "s-mime without issuemail",
                smime: true,
                records: vec![rec(0, "issue", ";")],
                want: NoRelevantProperty,
                ..Case::default()
            },
            Case {
                name: "tls ignores issuemail",
                records: vec![rec(0, "issuemail", ";")],
                want: NoRelevantProperty,
                ..Case::default()
            },
            Case {
                name: "accounturi match",
                account_uri: Some(ACCT),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; accounturi=https://ca.example/acct/1",
                )],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "accounturi mismatch",
                account_uri: Some("https://ca.example/acct/2"),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; accounturi=https://ca.example/acct/1",
                )],
                want: AccountUriMismatch,
                ..Case::default()
            },
            Case {
                name: "accounturi missing from request",
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; accounturi=https://ca.example/acct/1",
                )],
                want: AccountUriNotGiven,
                ..Case::default()
            },
            Case {
                name: "accounturi duplicate",
                account_uri: Some(ACCT),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; accounturi=https://ca.example/acct/1; accounturi=https://ca.example/acct/1",
                )],
                want: UnsatisfiableParameters,
                ..Case::default()
            },
            Case {
                name: "accounturi compared exactly",
                account_uri: Some("https://CA.example/acct/1"),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; accounturi=https://ca.example/acct/1",
                )],
                want: AccountUriMismatch,
                ..Case::default()
            },
            Case {
                name: "accounturi on another issuer does not bind us",
                records: vec![
                    rec(0, "issue", "other.example; accounturi=x:y"),
                    rec(0, "issue", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "second record without restriction authorises",
                records: vec![
                    rec(0, "issue", "ca.example; accounturi=x:y"),
                    rec(0, "issue", "ca.example"),
                ],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "validationmethods match",
                method: Some("dns-01"),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; validationmethods=http-01,dns-01",
                )],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "validationmethods mismatch",
                method: Some("tls-alpn-01"),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; validationmethods=http-01,dns-01",
                )],
                want: ValidationMethodMismatch,
                ..Case::default()
            },
            Case {
                name: "validationmethods missing from request",
                records: vec![rec(0, "issue", "ca.example; validationmethods=dns-01")],
                want: ValidationMethodNotGiven,
                ..Case::default()
            },
            Case {
                name: "validationmethods malformed",
                method: Some("dns-01"),
                records: vec![rec(0, "issue", "ca.example; validationmethods=dns-01,")],
                want: UnsatisfiableParameters,
                ..Case::default()
            },
            Case {
                name: "validationmethods duplicate",
                method: Some("dns-01"),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; validationmethods=dns-01; validationmethods=dns-01",
                )],
                want: UnsatisfiableParameters,
                ..Case::default()
            },
            Case {
                name: "validationmethods BR label grants that label",
                method: Some("ca-tbr-7"),
                records: vec![rec(0, "issue", "ca.example; validationmethods=ca-tbr-7")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "validationmethods BR label refuses another BR label",
                method: Some("ca-tbr-18"),
                records: vec![rec(0, "issue", "ca.example; validationmethods=ca-tbr-7")],
                want: ValidationMethodMismatch,
                ..Case::default()
            },
            Case {
                name: "validationmethods BR label refuses an ACME label of another method",
                method: Some("http-01"),
                records: vec![rec(0, "issue", "ca.example; validationmethods=ca-tbr-7")],
                want: ValidationMethodMismatch,
                ..Case::default()
            },
            Case {
                name: "validationmethods BR label among others",
                method: Some("ca-tbr-19"),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; validationmethods=dns-01,ca-tbr-19",
                )],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "validationmethods BR label grants the ACME label of its mechanism",
                method: Some("http-01"),
                records: vec![rec(0, "issue", "ca.example; validationmethods=ca-tbr-19")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "validationmethods dns-01 does not grant the wider ca-tbr-7",
                method: Some("ca-tbr-7"),
                records: vec![rec(0, "issue", "ca.example; validationmethods=dns-01")],
                want: ValidationMethodMismatch,
                ..Case::default()
            },
            Case {
                name: "validationmethods matched exactly: upper case in the record",
                method: Some("ca-tbr-7"),
                records: vec![rec(0, "issue", "ca.example; validationmethods=CA-TBR-7")],
                want: ValidationMethodMismatch,
                ..Case::default()
            },
            Case {
                name: "validationmethods matched exactly: ACME label in upper case",
                method: Some("http-01"),
                records: vec![rec(0, "issue", "ca.example; validationmethods=HTTP-01")],
                want: ValidationMethodMismatch,
                ..Case::default()
            },
            Case {
                name: "validationmethods tag case-insensitive, value exact",
                method: Some("ca-tbr-7"),
                records: vec![rec(0, "issue", "ca.example; ValidationMethods=ca-tbr-7")],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "both parameters met",
                account_uri: Some(ACCT),
                method: Some("http-01"),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; accounturi=https://ca.example/acct/1; validationmethods=http-01",
                )],
                want: IssuerAuthorised,
                ..Case::default()
            },
            Case {
                name: "account ok, method wrong",
                account_uri: Some(ACCT),
                method: Some("dns-01"),
                records: vec![rec(
                    0,
                    "issue",
                    "ca.example; accounturi=https://ca.example/acct/1; validationmethods=http-01",
                )],
                want: ValidationMethodMismatch,
                ..Case::default()
            },
        ];
        let issuers = vec!["ca.example".to_owned(), "second-ca.example".to_owned()];
        for c in cases {
            let request = CaaRequest {
                wildcard: c.wildcard,
                certificate_type: if c.smime {
                    CertificateType::SMime
                } else {
                    CertificateType::TlsServer
                },
                issuer_domains: &issuers,
                account_uri: c.account_uri,
                validation_method: c.method,
            };
            let got = evaluate(&c.records, &request);
            assert_eq!(got, c.want, "{}", c.name);
            assert_eq!(
                got.permits(),
                matches!(c.want, NoRecords | NoRelevantProperty | IssuerAuthorised),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn second_issuer_domain_is_honoured() {
        let issuers = vec!["ca.example".to_owned(), "second-ca.example".to_owned()];
        let request = CaaRequest {
            wildcard: false,
            certificate_type: CertificateType::TlsServer,
            issuer_domains: &issuers,
            account_uri: None,
            validation_method: None,
        };
        assert_eq!(
            evaluate(&[rec(0, "issue", "second-ca.example")], &request),
            CaaReason::IssuerAuthorised
        );
    }

    #[test]
    fn a_thousand_record_rrset() {
        let issuers = vec!["ca.example".to_owned()];
        let request = CaaRequest {
            wildcard: false,
            certificate_type: CertificateType::TlsServer,
            issuer_domains: &issuers,
            account_uri: None,
            validation_method: None,
        };
        let mut records: Vec<CaaRecord> = (0..999)
            .map(|i| rec(0, "issue", &format!("ca{i}.other.example")))
            .collect();
        assert_eq!(evaluate(&records, &request), CaaReason::IssuerNotListed);
        records.push(rec(0, "issue", "ca.example"));
        assert_eq!(evaluate(&records, &request), CaaReason::IssuerAuthorised);
        records.push(rec(128, "zzz", ""));
        assert_eq!(
            evaluate(&records, &request),
            CaaReason::UnknownCriticalProperty
        );
    }

    #[test]
    fn presentation_escapes() {
        assert_eq!(
            rec(0, "issue", "ca.example").presentation(),
            "0 issue \"ca.example\""
        );
        assert_eq!(
            rec(128, "tbs", "a\"b\\c").presentation(),
            "128 tbs \"a\\\"b\\\\c\""
        );
        let raw = CaaRecord {
            flags: 0,
            tag: "issue".into(),
            value: vec![0, 0xff],
        };
        assert_eq!(raw.presentation(), "0 issue \"\\000\\255\"");
    }
}
