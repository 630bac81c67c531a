//! `dns-change` (BR 3.2.2.4.7, DNS Change): the Random Value or Request Token in a TXT, CNAME
//! or CAA record at the target or at `<dns_name_prefix>.<target>`.
//!
//! Matching (api.md, the reference's rules): a substring search by default, the whole record
//! with `require_exact_match`; case-sensitive only for TXT and only while `require_exact_case`
//! holds (CNAME targets and CAA values are compared case-insensitively whatever it says). CNAME
//! values keep their trailing dot; TXT is the concatenation of its character-strings.

use hickory_proto::rr::RecordType;
use mpic_common::api::{CheckResponse, DnsChangeParameters, DnsChangeRecordType, ValidationMethod};
use mpic_common::target::Target;

use super::{TextRule, lookup_and_evaluate, owner_name, parameter_error, records_data};
use crate::dcv::DcvContext;

/// Runs `dns-change`.
pub async fn check(ctx: &DcvContext, target: &Target, p: &DnsChangeParameters) -> CheckResponse {
    let method = ValidationMethod::DnsChange;
    let name = match owner_name(target, p.dns_name_prefix.as_deref(), false) {
        Ok(name) => name,
        Err(e) => return parameter_error(method, e),
    };
    let rule = rule(p);
    lookup_and_evaluate(
        ctx,
        method,
        &name,
        record_type(p.dns_record_type),
        |records| rule.evaluate(&p.challenge_value, &records_data(records)),
    )
    .await
}

/// The comparison the parameters ask for.
pub fn rule(p: &DnsChangeParameters) -> TextRule {
    TextRule {
        exact: p.require_exact_match,
        case_sensitive: p.dns_record_type == DnsChangeRecordType::Txt && p.require_exact_case,
    }
}

/// The DNS type of the parameter.
pub fn record_type(t: DnsChangeRecordType) -> RecordType {
    match t {
        DnsChangeRecordType::Cname => RecordType::CNAME,
        DnsChangeRecordType::Txt => RecordType::TXT,
        DnsChangeRecordType::Caa => RecordType::CAA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: DnsChangeRecordType, exact_match: bool, exact_case: bool) -> DnsChangeParameters {
        DnsChangeParameters {
            challenge_value: "Token-42".to_owned(),
            dns_record_type: t,
            dns_name_prefix: None,
            require_exact_match: exact_match,
            require_exact_case: exact_case,
        }
    }

    #[test]
    fn rule_and_matching_table() {
        use DnsChangeRecordType as T;
        struct Case {
            name: &'static str,
            params: DnsChangeParameters,
            record: &'static [u8],
            want: bool,
        }
        let cases = [
            Case {
                name: "TXT default: substring, case-sensitive",
                params: params(T::Txt, false, true),
                record: b"prefix Token-42 suffix",
                want: true,
            },
            Case {
                name: "TXT default refuses another case",
                params: params(T::Txt, false, true),
                record: b"prefix token-42 suffix",
                want: false,
            },
            Case {
                name: "TXT with require_exact_case false",
                params: params(T::Txt, false, false),
                record: b"prefix TOKEN-42 suffix",
                want: true,
            },
            Case {
                name: "TXT exact refuses a substring",
                params: params(T::Txt, true, true),
                record: b"prefix Token-42",
                want: false,
            },
            Case {
                name: "TXT exact",
                params: params(T::Txt, true, true),
                record: b"Token-42",
                want: true,
            },
            Case {
                name: "TXT exact does not trim",
                params: params(T::Txt, true, true),
                record: b"Token-42 ",
                want: false,
            },
            Case {
                name: "CNAME is case-insensitive even when exact case is asked",
                params: params(T::Cname, false, true),
                record: b"token-42.validation.example.net.",
                want: true,
            },
            Case {
                name: "CNAME exact needs the trailing dot",
                params: DnsChangeParameters {
                    challenge_value: "token-42.example.net".to_owned(),
                    ..params(T::Cname, true, true)
                },
                record: b"token-42.example.net.",
                want: false,
            },
            Case {
                name: "CNAME exact with the trailing dot",
                params: DnsChangeParameters {
                    challenge_value: "TOKEN-42.example.net.".to_owned(),
                    ..params(T::Cname, true, true)
                },
                record: b"token-42.example.net.",
                want: true,
            },
            Case {
                name: "CAA value, case-insensitive",
                params: params(T::Caa, true, true),
                record: b"token-42",
                want: true,
            },
        ];
        for c in cases {
            let rule = rule(&c.params);
            assert_eq!(
                rule.matches(&c.params.challenge_value, c.record),
                c.want,
                "case {:?}",
                c.name
            );
        }
    }

    #[test]
    fn case_rule_is_forced_off_unless_txt() {
        use DnsChangeRecordType as T;
        for (t, exact_case, want) in [
            (T::Txt, true, true),
            (T::Txt, false, false),
            (T::Cname, true, false),
            (T::Caa, true, false),
        ] {
            assert_eq!(
                rule(&params(t, false, exact_case)).case_sensitive,
                want,
                "{t:?} {exact_case}"
            );
        }
        assert_eq!(record_type(T::Cname), RecordType::CNAME);
        assert_eq!(record_type(T::Txt), RecordType::TXT);
        assert_eq!(record_type(T::Caa), RecordType::CAA);
    }
}
