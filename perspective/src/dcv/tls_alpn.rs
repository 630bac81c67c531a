//! ACME tls-alpn-01 (RFC 8737, RFC 8738; BR 3.2.2.4.20 / 3.2.2.5.7).
//!
//! The check connects to TCP 443 of the target (resolved and address-checked like every
//! HTTP hop), offers TLS 1.2 or 1.3 with ALPN `acme-tls/1` only and SNI = the domain name, or
//! for an IP target its reverse name (RFC 8738 section 6), then requires, each rule with its
//! own error type (api.md):
//!
//! 1. the server negotiated `acme-tls/1` (RFC 8737 section 3);
//! 2. the certificate carries a subjectAltName extension and an acmeIdentifier extension
//!    (id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31);
//! 3. the subjectAltName holds exactly one name, of the target's type (dNSName for a domain,
//!    iPAddress for an IP), equal to the target (dNSName case-insensitively, RFC 4343);
//! 4. the acmeIdentifier extension is critical, and its value is the DER OCTET STRING of the
//!    32-byte SHA-256 digest of the key authorization, equal to the request's digest;
//! 5. the certificate is self-signed, as RFC 8737 section 3 has the client construct it ("a
//!    self-signed certificate that MUST contain an acmeIdentifier extension and a
//!    subjectAlternativeName extension"): its issuer is its subject, the same DER bytes, and
//!    its signature verifies with its own public key. Boulder checks both
//!    (`cert.CheckSignature(...)` with the certificate's own key, and `bytes.Equal(RawSubject,
//!    RawIssuer)`); each has its own error type here.
//!
//! No chain is validated (RFC 8737 section 3): the self-signature proves only that the
//! certificate was made by the holder of its key, the key the handshake signature is verified
//! with (see [`super::tls_client`]).

use std::net::IpAddr;

use mpic_common::api::{
    AcmeTlsAlpn01Parameters, CheckDetails, CheckResponse, TlsAlpnDetails, ValidationMethod,
};
use mpic_common::outcome::{CertificateRule, Outcome, Problem, ProblemKind};
use mpic_common::target::{Target, reverse_name};
use mpic_common::text::{bytes_for_echo, truncate_for_echo};
use rustls::pki_types::{CertificateDer, ServerName};
use x509_parser::error::X509Error;
use x509_parser::extensions::{GeneralName, X509Extension};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::DcvContext;
use super::http_fetch::tls_cause;
use super::tls_client::ACME_TLS_ALPN_PROTOCOL;
use super::web_failure::{self, Failure, TlsCause};
use crate::net::{self, Host};
use tracing::Instrument as _;

/// Runs the check.
pub async fn check(
    ctx: &DcvContext,
    target: &Target,
    p: &AcmeTlsAlpn01Parameters,
) -> CheckResponse {
    let method = ValidationMethod::AcmeTlsAlpn01;
    let Some(digest) = mpic_common::digest::parse_sha256(&p.key_authorization_hash) else {
        let failure = Failure::Parameter {
            message: "field `dcv_check_parameters.key_authorization_hash`: not a SHA-256 digest in hex or base64url".to_owned(),
        };
        return failed(method, &failure, None);
    };
    let expected = match target {
        Target::Domain(d) => Expected::Dns(d.name().to_owned()),
        Target::Ip(ip) => Expected::Ip(*ip),
    };
    let mut dialling = None;
    let deadline = tokio::time::Instant::now() + ctx.web.deadline;
    let handshake =
        tokio::time::timeout_at(deadline, handshake(ctx, &expected, &mut dialling)).await;
    let (certificate, ip) = match handshake {
        Ok(Ok(done)) => done,
        // A certificate that does not parse ends the handshake (its key is needed to check
        // the handshake signature), but it is the certificate's fault: report it as such.
        Ok(Err(Failure::Tls {
            ip,
            cause:
                TlsCause::Rustls(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::BadEncoding,
                )),
        })) => {
            let problem = Violation::Unparsable.problem(ip);
            return response(Outcome::NotPassed(vec![problem]), None, Some(ip));
        }
        Ok(Err(failure)) => return failed(method, &failure, dialling),
        Err(_) => {
            let failure = Failure::Timeout {
                host: expected.host().to_string(),
                ip: dialling,
                ms: u64::try_from(ctx.web.deadline.as_millis()).unwrap_or(u64::MAX),
            };
            return failed(method, &failure, dialling);
        }
    };
    let (common_name, violations) = match certificate {
        Presented::NotAcmeTls { protocol } => {
            (None, vec![Violation::AlpnNotNegotiated { protocol }])
        }
        Presented::Certificate(der) => evaluate(&der, &expected, &digest),
    };
    // The server answered with a certificate: the check completed, passed or not (reference
    // behaviour).
    let outcome = if violations.is_empty() {
        Outcome::Passed
    } else {
        Outcome::NotPassed(violations.iter().map(|v| v.problem(ip)).collect())
    };
    response(outcome, common_name, Some(ip))
}

/// A rule the server broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The server negotiated another protocol, or none.
    AlpnNotNegotiated {
        /// What it negotiated (printable), if anything.
        protocol: Option<String>,
    },
    /// The certificate does not parse.
    Unparsable,
    /// A required extension is absent.
    ExtensionMissing {
        /// `subjectAltName` or `acmeIdentifier`.
        which: &'static str,
    },
    /// The acmeIdentifier extension is not critical.
    NonCriticalAcmeIdentifier,
    /// The subjectAltName does not hold exactly one name.
    NoSingleSan {
        /// How many it holds.
        count: usize,
    },
    /// A domain target, and the SAN is not a dNSName.
    SanNotDnsName {
        /// The SAN's type.
        found: &'static str,
    },
    /// An IP target, and the SAN is not an iPAddress.
    SanTypeNotMatch {
        /// The SAN's type.
        found: &'static str,
    },
    /// The SAN is of the right type but names something else.
    SanNotTarget {
        /// The SAN's value (printable, bounded).
        found: String,
        /// The target.
        want: String,
    },
    /// The acmeIdentifier value is not `04 20 <32 bytes>`.
    MalformedAcmeIdentifier,
    /// The acmeIdentifier holds another digest.
    DigestMismatch,
    /// The issuer is not the subject (their DER differs): not self-signed.
    IssuerNotSubject,
    /// The signature does not verify with the certificate's own public key: not self-signed.
    SelfSignatureInvalid {
        /// The signature algorithm is not one this check can verify (those of ring through
        /// x509-parser: RSA PKCS#1 and PSS, ECDSA P-256 and P-384, Ed25519), rather than a
        /// signature that fails.
        unsupported_algorithm: bool,
    },
}

impl Violation {
    /// The rule broken (its `error_type` is [`ProblemKind::error_type`]'s).
    pub fn rule(&self) -> CertificateRule {
        use CertificateRule as R;
        match self {
            Violation::AlpnNotNegotiated { .. } => R::AlpnNotNegotiated,
            Violation::Unparsable => R::Unparsable,
            Violation::ExtensionMissing { .. } => R::ExtensionMissing,
            Violation::NonCriticalAcmeIdentifier => R::NonCriticalAlpnExtension,
            Violation::NoSingleSan { .. } => R::NoSingleSan,
            Violation::SanNotDnsName { .. } => R::SanNotDnsName,
            Violation::SanTypeNotMatch { .. } => R::SanTypeNotMatch,
            Violation::SanNotTarget { .. } => R::SanNotHostname,
            Violation::MalformedAcmeIdentifier => R::MalformedAlpnExtension,
            Violation::DigestMismatch => R::DigestMismatch,
            Violation::IssuerNotSubject => R::IssuerNotSubject,
            Violation::SelfSignatureInvalid { .. } => R::SelfSignatureInvalid,
        }
    }

    /// The problem a server at `ip` breaking this rule is reported as.
    pub fn problem(&self, ip: IpAddr) -> Problem {
        Problem::new(
            ProblemKind::TlsAlpnCertificate(self.rule()),
            format!("{ip}: {self}"),
        )
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::AlpnNotNegotiated { protocol: None } => {
                f.write_str("the server negotiated no ALPN protocol; acme-tls/1 is required")
            }
            Violation::AlpnNotNegotiated { protocol: Some(p) } => {
                write!(f, "the server negotiated {p:?}; acme-tls/1 is required")
            }
            Violation::Unparsable => f.write_str("the certificate is not valid X.509"),
            Violation::ExtensionMissing { which } => {
                write!(f, "the certificate has no {which} extension")
            }
            Violation::NonCriticalAcmeIdentifier => {
                f.write_str("the acmeIdentifier extension is not marked critical")
            }
            Violation::NoSingleSan { count } => write!(
                f,
                "the subjectAltName holds {count} names; exactly one is required"
            ),
            Violation::SanNotDnsName { found } => {
                write!(f, "the subjectAltName is a {found}; a dNSName is required")
            }
            Violation::SanTypeNotMatch { found } => write!(
                f,
                "the subjectAltName is a {found}; an iPAddress is required for an IP target"
            ),
            Violation::SanNotTarget { found, want } => {
                write!(f, "the subjectAltName is {found:?}, not {want:?}")
            }
            Violation::MalformedAcmeIdentifier => f.write_str(
                "the acmeIdentifier value is not a DER OCTET STRING of a 32-byte SHA-256 digest",
            ),
            Violation::DigestMismatch => f.write_str(
                "the acmeIdentifier digest is not the SHA-256 digest of the key authorization",
            ),
            Violation::IssuerNotSubject => f.write_str(
                "the certificate's issuer is not its subject; RFC 8737 requires a self-signed certificate",
            ),
            Violation::SelfSignatureInvalid {
                unsupported_algorithm: false,
            } => f.write_str(
                "the certificate's signature does not verify with its own public key; RFC 8737 requires a self-signed certificate",
            ),
            Violation::SelfSignatureInvalid {
                unsupported_algorithm: true,
            } => f.write_str(
                "the certificate's signature algorithm cannot be verified, so it is not known to be self-signed as RFC 8737 requires",
            ),
        }
    }
}

/// The identifier being validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A domain name (lowercase A-labels).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl Expected {
    fn host(&self) -> Host<'_> {
        match self {
            Expected::Dns(name) => Host::Domain(name),
            Expected::Ip(ip) => Host::Ip(*ip),
        }
    }

    /// SNI: the name, or the reverse name of an address (RFC 8738 section 6).
    fn server_name(&self) -> Option<ServerName<'static>> {
        let name = match self {
            Expected::Dns(name) => name.clone(),
            Expected::Ip(ip) => reverse_name(*ip),
        };
        ServerName::try_from(name).ok()
    }
}

/// What the handshake produced.
enum Presented {
    /// The leaf certificate of an `acme-tls/1` connection.
    Certificate(CertificateDer<'static>),
    /// The server negotiated something else.
    NotAcmeTls { protocol: Option<String> },
}

async fn handshake(
    ctx: &DcvContext,
    expected: &Expected,
    dialling: &mut Option<IpAddr>,
) -> Result<(Presented, IpAddr), Failure> {
    let Some(server_name) = expected.server_name() else {
        return Err(Failure::Parameter {
            message: format!("{} cannot be sent as a TLS server name", expected.host()),
        });
    };
    let connected = net::connect(
        &ctx.dns,
        ctx.web.policy,
        expected.host(),
        ctx.web.tls_alpn_port,
        ctx.web.connect_timeout,
        &mut |ip| *dialling = Some(ip),
    )
    .await
    .map_err(Failure::Net)?;
    let ip = connected.ip;
    let span = mpic_common::detail_span!(
        "tls.handshake",
        otel.name = "TLS acme-tls/1",
        server.address = %ip
    );
    let tls = tokio_rustls::TlsConnector::from(ctx.web.tls_alpn.clone())
        .connect(server_name, connected.stream)
        .instrument(span)
        .await
        .map_err(|e| Failure::Tls {
            ip,
            cause: tls_cause(&e),
        })?;
    let (_, connection) = tls.get_ref();
    let presented = match connection.alpn_protocol() {
        Some(p) if p == ACME_TLS_ALPN_PROTOCOL => match connection
            .peer_certificates()
            .and_then(|certs| certs.first())
        {
            Some(leaf) => Presented::Certificate(leaf.clone().into_owned()),
            // rustls requires a certificate from a TLS server; kept total all the same.
            None => Presented::NotAcmeTls { protocol: None },
        },
        other => Presented::NotAcmeTls {
            protocol: other.map(|p| bytes_for_echo(p, 64)),
        },
    };
    Ok((presented, ip))
}

/// Applies rules 2–5 to a certificate: its subject common name (reported whatever the
/// verdict) and every rule it breaks.
pub fn evaluate(
    der: &CertificateDer<'_>,
    expected: &Expected,
    digest: &[u8; 32],
) -> (Option<String>, Vec<Violation>) {
    let Ok((_, cert)) = X509Certificate::from_der(der.as_ref()) else {
        return (None, vec![Violation::Unparsable]);
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(|cn| truncate_for_echo(&bytes_for_echo(cn.as_bytes(), 256), 256));
    let mut violations = self_signature_violations(&cert);
    let acme: Vec<_> = cert
        .extensions()
        .iter()
        .filter(|e| e.oid.to_id_string() == ACME_IDENTIFIER_OID)
        .collect();
    let san = match cert.subject_alternative_name() {
        Ok(san) => san,
        // A subjectAltName present twice, or that does not parse.
        Err(_) => return (common_name, vec![Violation::Unparsable]),
    };
    let Some(san) = san else {
        violations.push(Violation::ExtensionMissing {
            which: "subjectAltName",
        });
        return (common_name, violations);
    };
    let [acme] = acme[..] else {
        violations.push(if acme.is_empty() {
            Violation::ExtensionMissing {
                which: "acmeIdentifier",
            }
        } else {
            // RFC 5280 section 4.2: an extension appears at most once.
            Violation::MalformedAcmeIdentifier
        });
        return (common_name, violations);
    };

    match &san.value.general_names[..] {
        [one] => {
            if let Some(v) = san_violation(one, expected) {
                violations.push(v);
            }
        }
        names => violations.push(Violation::NoSingleSan { count: names.len() }),
    }
    if !acme.critical {
        violations.push(Violation::NonCriticalAcmeIdentifier);
    }
    match acme.value {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 && der_encoded(der.as_ref(), acme) => {
            if rest != digest {
                violations.push(Violation::DigestMismatch);
            }
        }
        _ => violations.push(Violation::MalformedAcmeIdentifier),
    }
    (common_name, violations)
}

/// Rule 5: the certificate is self-signed. Its issuer must be its subject, compared as DER
/// bytes (as Boulder compares `RawSubject` and `RawIssuer`), and its signature must verify over
/// its TBSCertificate with its own subject public key, with the algorithm it names. The key's
/// authority to sign (basic constraints, key usage) is not asked for: a self-signed leaf is
/// not a CA certificate.
fn self_signature_violations(cert: &X509Certificate<'_>) -> Vec<Violation> {
    let mut violations = Vec::new();
    if cert.issuer().as_raw() != cert.subject().as_raw() {
        violations.push(Violation::IssuerNotSubject);
    }
    match cert.verify_signature(None) {
        Ok(()) => {}
        Err(X509Error::SignatureUnsupportedAlgorithm) => {
            violations.push(Violation::SelfSignatureInvalid {
                unsupported_algorithm: true,
            });
        }
        Err(_) => violations.push(Violation::SelfSignatureInvalid {
            unsupported_algorithm: false,
        }),
    }
    violations
}

/// Whether the acmeIdentifier extension `acme`, whose value x509-parser read from `der`, is
/// DER as RFC 5280 section 4.1 requires: `SEQUENCE { OBJECT IDENTIFIER id-pe-acmeIdentifier,
/// [BOOLEAN TRUE,] OCTET STRING value }`, the boolean present only when critical and encoded
/// as 0xff. x509-parser reads an OBJECT IDENTIFIER whatever its tag class (an `[APPLICATION
/// 6]` reads as an OID) and a boolean from any non-zero byte, so the header bytes in front of
/// the value are compared with the one DER encoding. Holds for a value shorter than 128 bytes
/// (the caller's is 34).
fn der_encoded(der: &[u8], acme: &X509Extension<'_>) -> bool {
    const OID: [u8; 10] = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
    let critical: &[u8] = if acme.critical {
        &[0x01, 0x01, 0xff]
    } else {
        &[]
    };
    let (Ok(value_len), Ok(body_len)) = (
        u8::try_from(acme.value.len()),
        u8::try_from(OID.len() + critical.len() + 2 + acme.value.len()),
    ) else {
        return false;
    };
    if body_len >= 0x80 {
        return false;
    }
    let mut header = vec![0x30, body_len];
    header.extend_from_slice(&OID);
    header.extend_from_slice(critical);
    header.extend_from_slice(&[0x04, value_len]);
    // The value is a slice of `der`: its offset there ends the header.
    let start = acme.value.as_ptr().addr().wrapping_sub(der.as_ptr().addr());
    start
        .checked_sub(header.len())
        .and_then(|from| der.get(from..start))
        == Some(header.as_slice())
}

fn san_violation(name: &GeneralName<'_>, expected: &Expected) -> Option<Violation> {
    match (name, expected) {
        (GeneralName::DNSName(found), Expected::Dns(want)) => {
            // RFC 4343: DNS names compare case-insensitively. A trailing dot is not part of a
            // dNSName (RFC 5280 section 4.2.1.6), so it does not match.
            (!found.eq_ignore_ascii_case(want)).then(|| Violation::SanNotTarget {
                found: bytes_for_echo(found.as_bytes(), 256),
                want: want.clone(),
            })
        }
        (GeneralName::IPAddress(bytes), Expected::Ip(want)) => {
            let found = match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                _ => None,
            };
            (found != Some(*want)).then(|| Violation::SanNotTarget {
                found: found.map_or_else(|| format!("{} bytes", bytes.len()), |ip| ip.to_string()),
                want: want.to_string(),
            })
        }
        (other, Expected::Dns(_)) => Some(Violation::SanNotDnsName {
            found: general_name_kind(other),
        }),
        (other, Expected::Ip(_)) => Some(Violation::SanTypeNotMatch {
            found: general_name_kind(other),
        }),
    }
}

fn general_name_kind(name: &GeneralName<'_>) -> &'static str {
    match name {
        GeneralName::OtherName(..) => "otherName",
        GeneralName::RFC822Name(_) => "rfc822Name",
        GeneralName::DNSName(_) => "dNSName",
        GeneralName::X400Address(_) => "x400Address",
        GeneralName::DirectoryName(_) => "directoryName",
        GeneralName::EDIPartyName(_) => "ediPartyName",
        GeneralName::URI(_) => "uniformResourceIdentifier",
        GeneralName::IPAddress(_) => "iPAddress",
        GeneralName::RegisteredID(_) => "registeredID",
        GeneralName::Invalid(..) => "malformed name",
    }
}

/// id-pe-acmeIdentifier (RFC 8737 section 6.1).
pub const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

fn failed(method: ValidationMethod, failure: &Failure, ip: Option<IpAddr>) -> CheckResponse {
    response(web_failure::outcome(failure, method), None, ip)
}

fn response(outcome: Outcome, common_name: Option<String>, ip: Option<IpAddr>) -> CheckResponse {
    outcome.into_response(CheckDetails::TlsAlpn(TlsAlpnDetails {
        validation_method: ValidationMethod::AcmeTlsAlpn01,
        common_name,
        resolved_ip: ip.map(|ip| ip.to_string()),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use mpic_tests::web::{ChallengeCert, Signer, key_authorization_digest};

    /// Found by the `tls_alpn` fuzz target: x509-parser reads an extension whose OBJECT
    /// IDENTIFIER carries another tag class, or whose critical flag is a BER boolean, as the
    /// acmeIdentifier extension; such a certificate is not DER and must not pass.
    #[test]
    fn acme_identifier_must_be_der() {
        const OID_AND_CRITICAL: [u8; 13] = [
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f, 0x01, 0x01, 0xff,
        ];
        struct Case {
            name: &'static str,
            /// (offset in OID_AND_CRITICAL, new byte)
            edit: Option<(usize, u8)>,
            want: Vec<Violation>,
        }
        // An edit of the signed bytes also breaks the self-signature (rule 5), reported beside
        // the rule this test is about.
        let broken_signature = Violation::SelfSignatureInvalid {
            unsupported_algorithm: false,
        };
        let cases = [
            Case {
                name: "DER",
                edit: None,
                want: vec![],
            },
            Case {
                name: "OID tagged [APPLICATION 6]",
                edit: Some((0, 0x46)),
                want: vec![broken_signature.clone(), Violation::MalformedAcmeIdentifier],
            },
            Case {
                name: "OID tagged [6] context-specific",
                edit: Some((0, 0x86)),
                want: vec![broken_signature.clone(), Violation::MalformedAcmeIdentifier],
            },
            Case {
                name: "critical as BER TRUE 0x01",
                edit: Some((12, 0x01)),
                want: vec![broken_signature.clone(), Violation::MalformedAcmeIdentifier],
            },
        ];
        let digest = key_authorization_digest("token.thumbprint");
        let key = ChallengeCert::valid("acme.example", "token.thumbprint")
            .certified_key()
            .unwrap();
        let der = key.cert[0].to_vec();
        let at = der
            .windows(OID_AND_CRITICAL.len())
            .position(|w| w == OID_AND_CRITICAL)
            .unwrap();
        let expected = Expected::Dns("acme.example".to_owned());
        for c in cases {
            let mut der = der.clone();
            if let Some((offset, byte)) = c.edit {
                der[at + offset] = byte;
            }
            let (_, got) = evaluate(&CertificateDer::from(der), &expected, &digest);
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    /// RFC 8737 section 3: the certificate is self-signed. Each half of that is its own rule:
    /// the issuer is the subject, and the certificate's own key made the signature.
    #[test]
    fn the_certificate_must_be_self_signed() {
        struct Case {
            name: &'static str,
            signer: Signer,
            want: Vec<Violation>,
        }
        let cases = [
            Case {
                name: "self-signed",
                signer: Signer::SelfSigned,
                want: vec![],
            },
            Case {
                name: "another issuer, its own key",
                signer: Signer::OtherIssuer("Some CA".to_owned()),
                want: vec![Violation::IssuerNotSubject],
            },
            Case {
                name: "its own name as issuer, another key",
                signer: Signer::OtherKey,
                want: vec![Violation::SelfSignatureInvalid {
                    unsupported_algorithm: false,
                }],
            },
        ];
        let digest = key_authorization_digest("token.thumbprint");
        let expected = Expected::Dns("acme.example".to_owned());
        for c in cases {
            let key = ChallengeCert::valid("acme.example", "token.thumbprint")
                .certified_key_signed(&c.signer)
                .unwrap();
            let (common_name, got) = evaluate(&key.cert[0], &expected, &digest);
            assert_eq!(got, c.want, "{}", c.name);
            assert_eq!(common_name.as_deref(), Some("acme.example"), "{}", c.name);
            for v in &got {
                assert!(
                    v.problem("192.0.2.1".parse().unwrap())
                        .message
                        .contains("self-signed"),
                    "{}: {v}",
                    c.name
                );
            }
        }

        // A certificate whose signature bytes were altered after signing.
        let key = ChallengeCert::valid("acme.example", "token.thumbprint")
            .certified_key()
            .unwrap();
        let mut der = key.cert[0].to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let (_, got) = evaluate(&CertificateDer::from(der), &expected, &digest);
        assert_eq!(
            got,
            [Violation::SelfSignatureInvalid {
                unsupported_algorithm: false
            }]
        );
    }

    #[test]
    fn error_types_have_the_api_form() {
        let all = [
            Violation::AlpnNotNegotiated { protocol: None },
            Violation::Unparsable,
            Violation::ExtensionMissing { which: "x" },
            Violation::NonCriticalAcmeIdentifier,
            Violation::NoSingleSan { count: 2 },
            Violation::SanNotDnsName { found: "x" },
            Violation::SanTypeNotMatch { found: "x" },
            Violation::SanNotTarget {
                found: String::new(),
                want: String::new(),
            },
            Violation::MalformedAcmeIdentifier,
            Violation::DigestMismatch,
            Violation::IssuerNotSubject,
            Violation::SelfSignatureInvalid {
                unsupported_algorithm: false,
            },
        ];
        let mut seen = std::collections::BTreeSet::new();
        for v in all {
            let t = ProblemKind::TlsAlpnCertificate(v.rule()).error_type();
            assert!(
                t.starts_with(mpic_common::api::error_type::TLS_ALPN_CERTIFICATE_PREFIX),
                "{t}"
            );
            assert!(seen.insert(t), "{t} used twice");
        }
    }
}
