//! Target normalisation: `domain_or_ip_target` through [`Target::parse`] (UTS-46 / IDNA, LDH
//! and P-Label rules, wildcards, IPv4 and IPv6 literals), and DNS name prefixes through
//! [`parse_name_prefix`] / [`prefixed_name`]. The input is `<target>` or `<target>\0<prefix>`.
//!
//! Invariants: normalising is idempotent (the text form of a target parses to the same target,
//! as does its U-label form, its upper-case form and the form with a trailing dot); a domain
//! target holds only what a certificate's dNSName may (at most 253 octets, two labels or more,
//! LDH labels of 1–63 octets, no leading or trailing hyphen, a last label that is not numeric);
//! an IP target's text is the address's canonical text; a prefixed name is at most 253 octets
//! and ends with the name; a parsed prefix is lowercase and parses to itself.

use std::net::IpAddr;

use mpic_common::target::{DomainTarget, Target, parse_name_prefix, prefixed_name, reverse_name};

/// Tokens of names and literals.
pub const DICTIONARY: &[&[u8]] = &[
    b"*.",
    b"xn--",
    b"xn--fa-hia",
    b"xn--53h",
    b".",
    b"..",
    b"-",
    b"--",
    b"_",
    b"[",
    b"]",
    b"::",
    b"::ffff:",
    b"%eth0",
    b"192.0.2.1",
    b"2001:db8::1",
    b"0x7f",
    b"\xc3\x9f",
    b"\xe2\x98\x95",
    b"\xe3\x80\x82",
    b"\xef\xbc\x8e",
    b"\xe2\x80\x8b",
    b"\xc2\xad",
    b"\xd7\x90",
    b"\xd9\xa0",
    b"\xcc\x81",
    b"\x00",
    b"_acme-challenge",
];

/// The target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (target, prefix) = match text.split_once('\0') {
        Some((target, prefix)) => (target, Some(prefix)),
        None => (text.as_ref(), None),
    };
    if let Ok(parsed) = Target::parse(target) {
        check(&parsed);
    }
    if let Some(prefix) = prefix
        && let Ok(parsed) = parse_name_prefix(prefix)
    {
        assert_eq!(parsed, parsed.to_ascii_lowercase());
        assert_eq!(parse_name_prefix(&parsed).as_ref(), Ok(&parsed));
        assert!(parsed.len() <= 253);
    }
}

fn check(target: &Target) {
    let shown = target.to_string();
    assert_eq!(
        Target::parse(&shown).as_ref(),
        Ok(target),
        "{shown:?} is not a fixed point"
    );
    match target {
        Target::Domain(domain) => check_domain(domain, &shown),
        Target::Ip(ip) => check_ip(*ip, &shown),
    }
}

fn check_domain(domain: &DomainTarget, shown: &str) {
    let name = domain.name();
    assert!(shown.len() <= 253, "{shown:?} is longer than 253 octets");
    assert_eq!(shown.strip_prefix("*.").is_some(), domain.is_wildcard());
    let labels: Vec<&str> = name.split('.').collect();
    assert!(labels.len() >= 2, "{name:?} has one label");
    for label in &labels {
        assert!(
            (1..=63).contains(&label.len()),
            "label {label:?} of {name:?}"
        );
        assert!(
            label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "label {label:?} of {name:?} is not lowercase LDH"
        );
        assert!(
            !label.starts_with('-') && !label.ends_with('-'),
            "label {label:?} of {name:?}"
        );
    }
    let last = labels.last().copied().unwrap_or_default();
    assert!(
        !last.bytes().all(|b| b.is_ascii_digit()),
        "numeric TLD in {name:?}"
    );
    assert_eq!(domain.self_and_ancestors().len(), labels.len());
    for variant in [
        format!("{shown}."),
        shown.to_ascii_uppercase(),
        format!(
            "{}{}",
            if domain.is_wildcard() { "*." } else { "" },
            unicode(name)
        ),
    ] {
        assert_eq!(
            Target::parse(&variant).as_ref(),
            Ok(&Target::Domain(domain.clone())),
            "{variant:?} is another form of {shown:?}"
        );
    }
    check_prefixed(name);
}

fn check_ip(ip: IpAddr, shown: &str) {
    assert_eq!(shown, ip.to_string());
    let reverse = reverse_name(ip);
    let zone = match ip {
        IpAddr::V4(_) => ".in-addr.arpa",
        IpAddr::V6(_) => ".ip6.arpa",
    };
    assert!(reverse.ends_with(zone), "{reverse:?}");
    check_prefixed(&reverse);
}

fn check_prefixed(name: &str) {
    match prefixed_name("_acme-challenge", name) {
        Ok(joined) => {
            assert!(joined.len() <= 253, "{joined:?}");
            assert!(joined.ends_with(name) && joined.starts_with("_acme-challenge."));
        }
        Err(_) => assert!(name.len() + "_acme-challenge.".len() > 253, "{name:?}"),
    }
}

/// The name with its A-labels decoded (UTS-46 ToUnicode).
fn unicode(name: &str) -> String {
    let (text, result) = idna::domain_to_unicode(name);
    assert!(result.is_ok(), "{name:?} does not decode");
    text
}
