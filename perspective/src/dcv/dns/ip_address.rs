//! `ip-address` (BR 3.2.2.4.8, retired 2026-03-15 and kept for API compatibility): an A or AAAA
//! record at the target (or `<dns_name_prefix>.<target>`) holds the expected address.
//!
//! Addresses are compared as addresses, not strings (the reference's rule): `1::` and
//! `1:0:00:000:0000::` are the same address. An IPv4-mapped IPv6 address is not its IPv4
//! address: the API ties the expected address's family to `dns_record_type`. A
//! `challenge_value` that is not an address of that family (a malformed IPv6, an IPv4 for
//! `AAAA`) matches no record: the check runs and fails, as the reference and Open MPIC's
//! compliance suite expect (api.md).

use std::net::IpAddr;

use hickory_proto::rr::{RData, Record, RecordType};
use mpic_common::api::{AddressRecordType, CheckResponse, IpAddressParameters, ValidationMethod};
use mpic_common::target::Target;

use super::{Evaluation, lookup_and_evaluate, owner_name, parameter_error};
use crate::dcv::DcvContext;

/// Runs `ip-address`.
pub async fn check(ctx: &DcvContext, target: &Target, p: &IpAddressParameters) -> CheckResponse {
    let method = ValidationMethod::IpAddress;
    let expected = expected_address(&p.challenge_value, p.dns_record_type);
    let name = match owner_name(target, p.dns_name_prefix.as_deref(), false) {
        Ok(name) => name,
        Err(e) => return parameter_error(method, e),
    };
    let rtype = match p.dns_record_type {
        AddressRecordType::A => RecordType::A,
        AddressRecordType::Aaaa => RecordType::AAAA,
    };
    lookup_and_evaluate(ctx, method, &name, rtype, |records| {
        evaluate(expected, records)
    })
    .await
}

/// The address a record must hold: `challenge_value` when it is an address of the family of
/// `record_type`, else none (and no record can match).
pub fn expected_address(challenge_value: &str, record_type: AddressRecordType) -> Option<IpAddr> {
    match (challenge_value.parse::<IpAddr>(), record_type) {
        (Ok(ip @ IpAddr::V4(_)), AddressRecordType::A)
        | (Ok(ip @ IpAddr::V6(_)), AddressRecordType::Aaaa) => Some(ip),
        _ => None,
    }
}

/// The addresses of A/AAAA records against the expected one.
pub fn evaluate(expected: Option<IpAddr>, records: &[Record]) -> Evaluation {
    let seen: Vec<IpAddr> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    Evaluation {
        records_seen: seen.iter().map(IpAddr::to_string).collect(),
        passed: expected.is_some_and(|ip| seen.contains(&ip)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, AAAA};

    use super::*;

    fn record(ip: &str) -> Record {
        let name = Name::from_ascii("example.com.").unwrap();
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) => Record::from_rdata(name, 60, RData::A(A(v4))),
            IpAddr::V6(v6) => Record::from_rdata(name, 60, RData::AAAA(AAAA(v6))),
        }
    }

    #[test]
    fn address_equivalence_table() {
        struct Case {
            name: &'static str,
            expected: &'static str,
            records: &'static [&'static str],
            want: bool,
            seen: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "ipv4 equal",
                expected: "192.0.2.1",
                records: &["192.0.2.1"],
                want: true,
                seen: &["192.0.2.1"],
            },
            Case {
                name: "ipv4 different",
                expected: "192.0.2.1",
                records: &["192.0.2.10"],
                want: false,
                seen: &["192.0.2.10"],
            },
            Case {
                name: "ipv6 compressed equals uncompressed",
                expected: "1:0:00:000:0000::",
                records: &["1::"],
                want: true,
                seen: &["1::"],
            },
            Case {
                name: "ipv6 the other way round",
                expected: "1::",
                records: &["1:0:00:000:0000::"],
                want: true,
                seen: &["1::"],
            },
            Case {
                name: "ipv6 upper-case hex",
                expected: "2001:DB8::A",
                records: &["2001:db8::a"],
                want: true,
                seen: &["2001:db8::a"],
            },
            Case {
                name: "ipv6 different",
                expected: "2001:db8::1",
                records: &["2001:db8::2"],
                want: false,
                seen: &["2001:db8::2"],
            },
            Case {
                name: "ipv4-mapped is not the ipv4 address",
                expected: "::ffff:192.0.2.1",
                records: &["192.0.2.1"],
                want: false,
                seen: &["192.0.2.1"],
            },
            Case {
                name: "one of several",
                expected: "192.0.2.3",
                records: &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
                want: true,
                seen: &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
            },
            Case {
                name: "no records",
                expected: "192.0.2.1",
                records: &[],
                want: false,
                seen: &[],
            },
        ];
        for c in cases {
            let records: Vec<Record> = c.records.iter().map(|r| record(r)).collect();
            let got = evaluate(Some(c.expected.parse().unwrap()), &records);
            assert_eq!(got.passed, c.want, "case {:?}", c.name);
            assert_eq!(got.records_seen, c.seen, "case {:?}", c.name);
        }
    }

    /// Open MPIC's compliance cases: a value that is not an address of the record type's
    /// family expects nothing, so no record can match (and the request is no 400).
    #[test]
    fn a_value_of_the_wrong_family_or_malformed_expects_nothing() {
        use AddressRecordType::{A, Aaaa};
        let cases: [(&str, AddressRecordType, Option<&str>); 7] = [
            ("192.0.2.1", A, Some("192.0.2.1")),
            ("2001:db8::1", Aaaa, Some("2001:db8::1")),
            (
                "2001:4860:4860:0:00:000:0000:8888",
                Aaaa,
                Some("2001:4860:4860::8888"),
            ),
            ("2001:4860:4860:0:0:0:0:0:8889", Aaaa, None),
            ("2001:4860:4860:0:0:0:00000:8889", Aaaa, None),
            ("1.2.3.4", Aaaa, None),
            ("2001:db8::1", A, None),
        ];
        for (value, family, want) in cases {
            let want = want.map(|w| w.parse::<IpAddr>().unwrap());
            assert_eq!(expected_address(value, family), want, "{value}");
        }
        let records = [record("2001:4860:4860::8889")];
        assert!(!evaluate(None, &records).passed);
    }
}
