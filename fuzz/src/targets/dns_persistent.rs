//! The `dns-persistent` record (BR 3.2.2.4.22): [`dns_persistent::parse`], [`usable`] and
//! [`evaluate`] over TXT values built from the input — the first byte chooses the request
//! (bit 0: a wildcard target; bit 1: a clock far in the future), the rest is values separated
//! by `\n`.
//!
//! Invariants: a record that parses has exactly one `accounturi`, the one it reports, and a
//! lowercase issuer without a trailing dot (a record's `CA.Example.` is `ca.example`: issuer
//! domain names compare as domain names; the root dot removed is one byte, the one ending the
//! issuer, and the rest of the value is read as written); the check passes only if some value names a listed issuer with exactly
//! one `accounturi` equal byte for byte to the expected one, a `persistUntil` not in the
//! past and, for a wildcard, `policy=wildcard`; asked for another account, it passes only if a
//! value names that account; every value is shown.

use mpic_perspective::caa::issuer_value;
use mpic_perspective::dcv::dns::dns_persistent::{self, PersistRequest, evaluate, usable};

use crate::input::{Input, contains, pieces};

/// Tokens of the record.
pub const DICTIONARY: &[&[u8]] = &[
    b"ca.example",
    b"; ",
    b"accounturi=",
    b"https://ca.example/acct/123",
    b"https://ca.example/acct/124",
    b"policy=wildcard",
    b"policy=WildCard",
    b"persistUntil=",
    b"persistuntil=1893456000",
    b"18446744073709551616",
    b"=",
    b";",
    b"CA.EXAMPLE.",
    b"ca.example.",
    b"..",
];

const ISSUERS: [&str; 1] = ["ca.example"];
const ACCOUNT: &str = "https://ca.example/acct/123";
const OTHER_ACCOUNT: &str = "https://ca.example/acct/124";
/// 2023-11-14, and a clock past every `persistUntil` that fits in 64 bits.
const NOW: [u64; 2] = [1_700_000_000, u64::MAX];
const MAX_VALUES: usize = 16;

/// The target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let values: Vec<Vec<u8>> = pieces(input.rest(), b'\n', MAX_VALUES)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let issuers: Vec<String> = ISSUERS.iter().map(|s| (*s).to_owned()).collect();
    let request = PersistRequest {
        issuer_domain_names: &issuers,
        account_uri: ACCOUNT,
        wildcard: flags & 1 != 0,
        now: NOW[usize::from(flags >> 1 & 1)],
    };
    for value in &values {
        check_record(value, &request);
    }
    let evaluation = evaluate(&values, &request);
    assert_eq!(evaluation.records_seen.len(), values.len());
    if evaluation.passed {
        assert!(
            values.iter().any(|v| authorises(v, &request)),
            "passed on no authorising value"
        );
    }
    let other = PersistRequest {
        account_uri: OTHER_ACCOUNT,
        ..request
    };
    if evaluate(&values, &other).passed {
        assert!(
            values.iter().any(|v| contains(v, OTHER_ACCOUNT.as_bytes())),
            "passed for an account no value names"
        );
    }
}

fn check_record(value: &[u8], request: &PersistRequest<'_>) {
    let normal = dns_persistent::without_root_dot(value);
    if normal.len() != value.len() {
        assert_eq!(normal.len() + 1, value.len());
        let at = value
            .iter()
            .zip(normal.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(normal.len());
        assert_eq!(value[at], b'.', "removed a byte that is not a dot");
        assert!(
            at + 1 == value.len() || matches!(value[at + 1], b';' | b' ' | b'\t'),
            "removed a dot that does not end the issuer"
        );
    }
    let Ok(record) = dns_persistent::parse(value) else {
        return;
    };
    let Ok(parsed) = issuer_value::parse(&normal) else {
        panic!("a record that is not an issuer value parsed");
    };
    assert!(!record.issuer.ends_with('.'), "issuer {:?}", record.issuer);
    let uris: Vec<&str> = parsed.parameter_values("accounturi").collect();
    assert_eq!(uris, [record.account_uri.as_str()]);
    assert_eq!(Some(&record.issuer), parsed.issuer.as_ref());
    assert_eq!(record.issuer, record.issuer.to_ascii_lowercase());
    if usable(&record, request).is_ok() {
        assert_eq!(record.account_uri, request.account_uri);
        assert!(request.issuer_domain_names.contains(&record.issuer));
    }
}

/// Whether `value` alone authorises the request, read straight from the issuer value.
fn authorises(value: &[u8], request: &PersistRequest<'_>) -> bool {
    let Ok(parsed) = issuer_value::parse(&dns_persistent::without_root_dot(value)) else {
        return false;
    };
    let uris: Vec<&str> = parsed.parameter_values("accounturi").collect();
    let policies: Vec<&str> = parsed.parameter_values("policy").collect();
    let until: Vec<&str> = parsed.parameter_values("persistuntil").collect();
    let issuer_ok = parsed
        .issuer
        .as_ref()
        .is_some_and(|i| request.issuer_domain_names.contains(i));
    let wildcard_ok =
        !request.wildcard || matches!(policies[..], [p] if p.eq_ignore_ascii_case("wildcard"));
    let until_ok = match until[..] {
        [] => true,
        [t] => {
            t.parse::<u64>().is_ok_and(|t| t >= request.now)
                && t.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    };
    issuer_ok && uris == [request.account_uri] && policies.len() <= 1 && wildcard_ok && until_ok
}
