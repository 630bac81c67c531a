//! `reverse-address-lookup` (BR 3.2.2.5.3, Reverse Address Lookup): the PTR record of the IP
//! address names the expected domain.
//!
//! The caller passes the reverse name (`…in-addr.arpa` / `…ip6.arpa`) as the target, as the
//! reference expects; *extension*: an IP literal target is turned into its reverse name
//! (RFC 1035 3.5, RFC 3596 2.5). A `dns_name_prefix` goes in front of either. The PTR target
//! keeps its trailing dot and is compared exactly, case-insensitively (the reference's rules).

use hickory_proto::rr::RecordType;
use mpic_common::api::{CheckResponse, ReverseAddressLookupParameters, ValidationMethod};
use mpic_common::target::Target;

use super::{TextRule, lookup_and_evaluate, owner_name, parameter_error, records_data};
use crate::dcv::DcvContext;

/// Runs `reverse-address-lookup`.
pub async fn check(
    ctx: &DcvContext,
    target: &Target,
    p: &ReverseAddressLookupParameters,
) -> CheckResponse {
    let method = ValidationMethod::ReverseAddressLookup;
    let name = match owner_name(target, p.dns_name_prefix.as_deref(), true) {
        Ok(name) => name,
        Err(e) => return parameter_error(method, e),
    };
    lookup_and_evaluate(ctx, method, &name, RecordType::PTR, |records| {
        TextRule::EXACT_ANY_CASE.evaluate(&p.challenge_value, &records_data(records))
    })
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hickory_proto::rr::rdata::PTR;
    use hickory_proto::rr::{Name, RData, Record};

    use super::*;

    #[test]
    fn names_table() {
        struct Case {
            name: &'static str,
            target: &'static str,
            prefix: Option<&'static str>,
            want: &'static str,
        }
        let cases = [
            Case {
                name: "ipv4 literal becomes its reverse name",
                target: "192.0.2.1",
                prefix: None,
                want: "1.2.0.192.in-addr.arpa",
            },
            Case {
                name: "bracketed ipv6 literal",
                target: "[2001:db8::1]",
                prefix: None,
                want: "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
            },
            Case {
                name: "a reverse name is queried as given",
                target: "1.2.0.192.in-addr.arpa",
                prefix: None,
                want: "1.2.0.192.in-addr.arpa",
            },
            Case {
                name: "prefix in front of the reverse name",
                target: "192.0.2.1",
                prefix: Some("_x"),
                want: "_x.1.2.0.192.in-addr.arpa",
            },
        ];
        for c in cases {
            let target = Target::parse(c.target).unwrap();
            assert_eq!(
                owner_name(&target, c.prefix, true).as_deref(),
                Ok(c.want),
                "case {:?}",
                c.name
            );
        }
    }

    #[test]
    fn ptr_matching_table() {
        // (expected, PTR target, passes)
        let cases: &[(&str, &str, bool)] = &[
            ("host.example.com.", "host.example.com.", true),
            ("HOST.Example.com.", "host.example.COM.", true),
            ("host.example.com", "host.example.com.", false),
            ("example.com.", "host.example.com.", false),
            ("host.example.com.", "other.example.com.", false),
        ];
        for &(expected, ptr, want) in cases {
            let record = Record::from_rdata(
                Name::from_ascii("1.2.0.192.in-addr.arpa.").unwrap(),
                60,
                RData::PTR(PTR(Name::from_ascii(ptr).unwrap())),
            );
            let got = TextRule::EXACT_ANY_CASE.evaluate(expected, &records_data(&[record]));
            assert_eq!(got.passed, want, "{expected:?} vs {ptr:?}");
            assert_eq!(got.records_seen, [ptr], "{expected:?} vs {ptr:?}");
        }
    }
}
