//! The tls-alpn-01 certificate rules ([`tls_alpn::evaluate`], RFC 8737, RFC 8738) on any bytes
//! as the leaf certificate's DER, against a domain, an IPv4 and an IPv6 target and the digest
//! [`DIGEST`] (the seeds are certificates that pass for one of them).
//!
//! Invariants: a certificate meets the content rules (rules 1–4 of [`tls_alpn`]) only if its
//! bytes hold the acmeIdentifier OID, the DER OCTET STRING of the expected digest and the
//! target's name or address; it never meets them for another digest, nor for two different
//! targets; a certificate that passes outright is self-signed (rule 5: its issuer's DER is its
//! subject's and its signature verifies with its own key, read again here from the bytes); the
//! common name reported is bounded.
//!
//! The content rules are judged apart from rule 5 because a mutated certificate almost never
//! keeps a valid signature: requiring an outright pass would leave them unexercised.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mpic_common::outcome::CertificateRule;
use mpic_perspective::dcv::tls_alpn::{self, Expected, Violation};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::input::contains;

/// Fragments of DER.
pub const DICTIONARY: &[&[u8]] = &[
    &ACME_IDENTIFIER_OID_DER,
    b"\x04\x20",
    b"\x01\x01\xff",
    b"\x30\x82",
    b"\x82\x0cacme.example",
    b"\x87\x04\xc0\x00\x02\x01",
    b"\x06\x03\x55\x1d\x11",
    b"\xa3",
    DIGEST.as_slice(),
];

/// The key authorization digest every certificate here is checked against (32 bytes).
pub const DIGEST: [u8; 32] = *b"mpic fuzz acme identifier digest";

/// The domain target.
pub const DOMAIN: &str = "acme.example";

/// The IP targets.
pub const IPS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
];

/// id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31, as a DER OBJECT IDENTIFIER.
const ACME_IDENTIFIER_OID_DER: [u8; 10] =
    [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];

/// The target.
pub fn run(data: &[u8]) {
    let der = CertificateDer::from(data);
    let mut digest_value = vec![0x04, 0x20];
    digest_value.extend_from_slice(&DIGEST);
    let mut other_digest = DIGEST;
    other_digest[0] ^= 1;
    let mut passed = 0;
    for expected in expectations() {
        let (common_name, violations) = tls_alpn::evaluate(&der, &expected, &DIGEST);
        if let Some(cn) = &common_name {
            assert!(cn.len() <= 256 + 3, "common name of {} bytes", cn.len());
        }
        for violation in &violations {
            assert!(!violation.to_string().is_empty());
        }
        if violations.is_empty() {
            assert_self_signed(data);
        }
        if violations.iter().any(|v| !is_self_signature(v)) {
            continue;
        }
        passed += 1;
        assert!(
            contains(data, &ACME_IDENTIFIER_OID_DER),
            "passed without acmeIdentifier"
        );
        assert!(contains(data, &digest_value), "passed without the digest");
        let identity = match &expected {
            Expected::Dns(name) => name.as_bytes().to_vec(),
            Expected::Ip(IpAddr::V4(ip)) => ip.octets().to_vec(),
            Expected::Ip(IpAddr::V6(ip)) => ip.octets().to_vec(),
        };
        assert!(
            contains(&data.to_ascii_lowercase(), &identity) || contains(data, &identity),
            "passed without naming {expected:?}"
        );
        let (_, other) = tls_alpn::evaluate(&der, &expected, &other_digest);
        assert!(
            other.iter().any(|v| !is_self_signature(v)),
            "passed for another digest"
        );
    }
    assert!(passed <= 1, "one certificate passed for {passed} targets");
}

/// Whether `violation` is one of rule 5's (the certificate is not self-signed).
fn is_self_signature(violation: &Violation) -> bool {
    matches!(
        violation.rule(),
        CertificateRule::IssuerNotSubject | CertificateRule::SelfSignatureInvalid
    )
}

/// `data` is a certificate whose issuer is its subject and whose signature verifies with its
/// own public key.
fn assert_self_signed(data: &[u8]) {
    let Ok((_, cert)) = X509Certificate::from_der(data) else {
        panic!("passed without being a certificate");
    };
    assert_eq!(
        cert.issuer().as_raw(),
        cert.subject().as_raw(),
        "passed with another issuer"
    );
    assert!(
        cert.verify_signature(None).is_ok(),
        "passed without a self-signature"
    );
}

/// The targets every certificate is checked against.
pub fn expectations() -> Vec<Expected> {
    let mut all = vec![Expected::Dns(DOMAIN.to_owned())];
    all.extend(IPS.into_iter().map(Expected::Ip));
    all
}
