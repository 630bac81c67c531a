//! The RFC 8659 section 4.2 issuer value grammar ([`issuer_value::parse`]) and the RFC 8657
//! `validationmethods` list ([`issuer_value::parse_method_list`]), on any bytes.
//!
//! Invariants: a value that parses holds only the grammar's bytes (printable ASCII, space and
//! tab); its issuer is a lowercase `label *("." label)`; its tags are lowercase labels and its
//! values hold only `%x21-3A / %x3C-7E`; writing it back in canonical form parses to the same
//! value; a method list that parses is non-empty lowercase labels.

use mpic_perspective::caa::issuer_value::{self, IssuerValue};

/// Tokens of the grammar.
pub const DICTIONARY: &[&[u8]] = &[
    b"ca.example",
    b"; ",
    b";",
    b"=",
    b" ",
    b"\t",
    b"accounturi=",
    b"validationmethods=",
    b"dns-01",
    b"http-01,dns-01",
    b",",
    b"policy=wildcard",
    b"persistUntil=",
    b"https://ca.example/acct/1",
    b"-",
    b".",
    b"\x00",
    b"\xc3\xa4",
];

/// The target.
pub fn run(data: &[u8]) {
    if let Ok(value) = issuer_value::parse(data) {
        check(data, &value);
    }
    if let Some(methods) = issuer_value::parse_method_list(&String::from_utf8_lossy(data)) {
        check_methods(&methods);
    }
}

fn check(data: &[u8], value: &IssuerValue) {
    assert!(
        data.iter().all(|b| matches!(b, 0x20..=0x7e | b'\t')),
        "accepted a byte outside the grammar"
    );
    if let Some(issuer) = &value.issuer {
        assert!(
            issuer.split('.').all(is_lower_label),
            "issuer {issuer:?} is not a lowercase domain"
        );
    }
    for (tag, text) in &value.parameters {
        assert!(is_lower_label(tag), "tag {tag:?}");
        assert!(
            text.bytes().all(|b| matches!(b, 0x21..=0x3a | 0x3c..=0x7e)),
            "value {text:?}"
        );
        if let Some(methods) = issuer_value::parse_method_list(text) {
            check_methods(&methods);
        }
    }
    let canonical = canonical(value);
    assert_eq!(
        issuer_value::parse(canonical.as_bytes()).as_ref(),
        Ok(value),
        "the canonical form {canonical:?} reads differently"
    );
}

/// Method labels are kept as written (they are compared exactly, BR 4.2.2.1.2).
fn check_methods(methods: &[String]) {
    assert!(!methods.is_empty());
    for method in methods {
        assert!(
            is_lower_label(&method.to_ascii_lowercase()),
            "method {method:?}"
        );
    }
}

/// `issuer; tag=value; tag=value`.
fn canonical(value: &IssuerValue) -> String {
    let mut text = value.issuer.clone().unwrap_or_default();
    let parameters: Vec<String> = value
        .parameters
        .iter()
        .map(|(tag, text)| format!("{tag}={text}"))
        .collect();
    if !parameters.is_empty() {
        text.push_str("; ");
        text.push_str(&parameters.join("; "));
    }
    text
}

/// RFC 8659 `label`, lowercase.
fn is_lower_label(label: &str) -> bool {
    !label.is_empty()
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
