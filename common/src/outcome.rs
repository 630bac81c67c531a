//! The one check-result model: what a check concluded ([`Outcome`]: passed, not passed, or
//! not completed, with the [`Problem`]s behind it), and the one conversion to the wire
//! ([`Outcome::into_response`]) that owns every `error_type` string (api.md "Error type
//! strings") and builds every [`CheckResponse`] — of the perspectives' checks and of the
//! coordinator's failed entries alike.
//!
//! A failed check is data, not an error (Boulder's `va/`): a check returns an `Outcome`
//! whatever happened. Problems are grouped by family and, inside a family, by closed enums,
//! so that the coordinator and the metrics classify failures from their types, never by
//! reading strings back.
//!
//! | outcome | `check_completed` | `check_passed` | `errors` |
//! |---|---|---|---|
//! | [`Outcome::Passed`] | true | true | `[]` |
//! | [`Outcome::NotPassed`] | true | false | its problems, `[]` when there are none |
//! | [`Outcome::NotCompleted`] | false | false | its problem |
//!
//! `errors` is `[]`, never `null`, when there is nothing to report: the Open MPIC OpenAPI
//! document types it as a non-nullable array (api.md; the reference sends `null`).

use crate::api::{CheckDetails, CheckResponse, CheckType, MpicError, error_type};

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It found permission (CAA) or control (DCV).
    Passed,
    /// It finished and found no permission or control; the problems say why, when there is
    /// something to report beyond "it did not match".
    NotPassed(Vec<Problem>),
    /// It could not finish; nothing that did not finish passes.
    NotCompleted(Problem),
}

/// One thing that went wrong, with a message for people (naming the address or name that
/// failed, never our internals; bounded on the way to the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem: decides the `error_type`.
    pub kind: ProblemKind,
    /// What happened.
    pub message: String,
}

/// The families of problems, each a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A DNS lookup of a check failed or found nothing.
    Lookup(Checker),
    /// A DNS lookup failed DNSSEC validation (the resolver's Extended DNS Error in the
    /// message).
    Dnssec(Checker),
    /// A request parameter the check could not use (requests are validated before; this is
    /// defence in depth).
    Parameter,
    /// An HTTP exchange failed or answered wrongly.
    Http,
    /// A redirect broke the redirect policy.
    Redirect,
    /// A TLS-ALPN check could not connect or complete its handshake.
    TlsAlpnConnection,
    /// A TLS-ALPN certificate broke one of RFC 8737's rules.
    TlsAlpnCertificate(CertificateRule),
    /// The coordinator got no usable answer from a perspective.
    Remote(RemoteFailure),
}

/// Which checker a lookup belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checker {
    /// The CAA check.
    Caa,
    /// A domain-control method.
    Dcv,
}

/// The RFC 8737 certificate rules (section 3), one `error_type` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateRule {
    /// No subjectAltName or no acmeIdentifier extension.
    ExtensionMissing,
    /// The acmeIdentifier extension is not critical.
    NonCriticalAlpnExtension,
    /// Not exactly one subjectAltName entry.
    NoSingleSan,
    /// A domain target whose one SAN is not a dNSName.
    SanNotDnsName,
    /// An IP target whose one SAN is not an iPAddress.
    SanTypeNotMatch,
    /// The one SAN names something else than the target.
    SanNotHostname,
    /// The acmeIdentifier holds another digest than the request's.
    DigestMismatch,
    /// The acmeIdentifier value is not a DER OCTET STRING of 32 bytes.
    MalformedAlpnExtension,
    /// The server did not negotiate `acme-tls/1`.
    AlpnNotNegotiated,
    /// The certificate is not a parsable X.509 certificate.
    Unparsable,
    /// The certificate's issuer is not its subject: it is not self-signed.
    IssuerNotSubject,
    /// The certificate's signature does not verify with its own public key: it is not
    /// self-signed.
    SelfSignatureInvalid,
}

/// Why a perspective call gave no usable answer (all `mpic_error:coordinator:remote_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteFailure {
    /// No connection: refused, unreachable, TLS failed.
    Unreachable,
    /// No answer within the call's time.
    Timeout,
    /// The exchange broke, or the perspective answered with an error status.
    Exchange,
    /// The reply is not a check response of the right type.
    Malformed,
    /// The reply came from another perspective than the one called.
    WrongIdentity,
    /// The call was dropped because the verdict was settled before it answered.
    Cancelled,
}

impl ProblemKind {
    /// The `error_type` string of api.md.
    pub fn error_type(self) -> &'static str {
        use CertificateRule as R;
        use error_type as E;
        match self {
            ProblemKind::Lookup(Checker::Caa) => E::CAA_LOOKUP,
            ProblemKind::Lookup(Checker::Dcv) => E::DCV_LOOKUP,
            ProblemKind::Dnssec(Checker::Caa) => E::CAA_DNSSEC,
            ProblemKind::Dnssec(Checker::Dcv) => E::DCV_DNSSEC,
            ProblemKind::Parameter => E::DCV_PARAMETER,
            ProblemKind::Http => E::HTTP,
            ProblemKind::Redirect => E::REDIRECT_INVALID,
            ProblemKind::TlsAlpnConnection => E::TLS_ALPN_CONNECTION,
            ProblemKind::TlsAlpnCertificate(rule) => match rule {
                R::ExtensionMissing => E::tls_alpn_certificate::EXTENSION_MISSING,
                R::NonCriticalAlpnExtension => E::tls_alpn_certificate::NONCRITICAL_ALPN_EXTENSION,
                R::NoSingleSan => E::tls_alpn_certificate::NO_SINGLE_SAN,
                R::SanNotDnsName => E::tls_alpn_certificate::SAN_NOT_DNSNAME,
                R::SanTypeNotMatch => E::tls_alpn_certificate::SAN_TYPE_NOT_MATCH,
                R::SanNotHostname => E::tls_alpn_certificate::SAN_NOT_HOSTNAME,
                R::DigestMismatch => E::tls_alpn_certificate::DIGEST_MISMATCH,
                R::MalformedAlpnExtension => E::tls_alpn_certificate::MALFORMED_ALPN_EXTENSION,
                R::AlpnNotNegotiated => E::tls_alpn_certificate::ALPN_NOT_NEGOTIATED,
                R::Unparsable => E::tls_alpn_certificate::UNPARSABLE,
                R::IssuerNotSubject => E::tls_alpn_certificate::ISSUER_NOT_SUBJECT,
                R::SelfSignatureInvalid => E::tls_alpn_certificate::SELF_SIGNATURE_INVALID,
            },
            ProblemKind::Remote(_) => E::COORDINATOR_REMOTE_CHECK,
        }
    }
}

impl Problem {
    /// A problem of `kind` saying `message`.
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            message: message.into(),
        }
    }

    /// The wire entry: the `error_type` and the message, bounded and valid UTF-8.
    pub fn to_wire(&self) -> MpicError {
        MpicError {
            error_type: self.kind.error_type().to_owned(),
            error_message: crate::text::truncate_for_echo(
                &self.message,
                crate::text::MAX_ERROR_MESSAGE_BYTES,
            ),
        }
    }
}

impl Outcome {
    /// Passed when `passed`, else not passed with no problem to report.
    pub fn from_match(passed: bool) -> Outcome {
        if passed {
            Outcome::Passed
        } else {
            Outcome::NotPassed(Vec::new())
        }
    }

    /// The `CheckResponse` of this outcome with `details`, stamped now. The check type
    /// follows from the details' shape.
    pub fn into_response(self, details: CheckDetails) -> CheckResponse {
        let check_type = match details {
            CheckDetails::Caa(_) => CheckType::Caa,
            CheckDetails::Dns(_) | CheckDetails::Http(_) | CheckDetails::TlsAlpn(_) => {
                CheckType::Dcv
            }
        };
        let (completed, passed, problems) = match self {
            Outcome::Passed => (true, true, Vec::new()),
            Outcome::NotPassed(problems) => (true, false, problems),
            Outcome::NotCompleted(problem) => (false, false, vec![problem]),
        };
        let errors = problems.iter().map(Problem::to_wire).collect();
        CheckResponse {
            check_type,
            check_completed: completed,
            check_passed: passed,
            errors,
            timestamp_ns: crate::api::now_ns(),
            details,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::api::{CaaDetails, ValidationMethod};

    #[test]
    fn every_problem_kind_has_its_api_string() {
        use CertificateRule as R;
        let prefix = "mpic_error:dcv_checker:tls_alpn:certificate:";
        let cases: Vec<(ProblemKind, String)> = vec![
            (
                ProblemKind::Lookup(Checker::Caa),
                "mpic_error:caa_checker:lookup".into(),
            ),
            (
                ProblemKind::Lookup(Checker::Dcv),
                "mpic_error:dcv_checker:lookup".into(),
            ),
            (
                ProblemKind::Dnssec(Checker::Caa),
                "mpic_error:caa_checker:dnssec".into(),
            ),
            (
                ProblemKind::Dnssec(Checker::Dcv),
                "mpic_error:dcv_checker:dnssec".into(),
            ),
            (
                ProblemKind::Parameter,
                "mpic_error:dcv_checker:parameter".into(),
            ),
            (ProblemKind::Http, "mpic_error:http".into()),
            (ProblemKind::Redirect, "mpic_error:redirect:invalid".into()),
            (
                ProblemKind::TlsAlpnConnection,
                "mpic_error:dcv_checker:tls_alpn:connection".into(),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::ExtensionMissing),
                format!("{prefix}extension_missing"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::NonCriticalAlpnExtension),
                format!("{prefix}noncritical_alpn_extension"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::NoSingleSan),
                format!("{prefix}no_single_san"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::SanNotDnsName),
                format!("{prefix}san_not_dnsname"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::SanTypeNotMatch),
                format!("{prefix}san_type_not_match"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::SanNotHostname),
                format!("{prefix}san_not_hostname"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::DigestMismatch),
                format!("{prefix}digest_mismatch"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::MalformedAlpnExtension),
                format!("{prefix}malformed_alpn_extension"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::AlpnNotNegotiated),
                format!("{prefix}alpn_not_negotiated"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::Unparsable),
                format!("{prefix}unparsable"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::IssuerNotSubject),
                format!("{prefix}issuer_not_subject"),
            ),
            (
                ProblemKind::TlsAlpnCertificate(R::SelfSignatureInvalid),
                format!("{prefix}self_signature_invalid"),
            ),
            (
                ProblemKind::Remote(RemoteFailure::Timeout),
                "mpic_error:coordinator:remote_check".into(),
            ),
            (
                ProblemKind::Remote(RemoteFailure::Cancelled),
                "mpic_error:coordinator:remote_check".into(),
            ),
        ];
        for (kind, want) in cases {
            assert_eq!(kind.error_type(), want, "{kind:?}");
        }
    }

    #[test]
    fn each_outcome_becomes_its_row_of_the_table() {
        let lookup = Problem::new(ProblemKind::Lookup(Checker::Dcv), "no TXT record");
        struct Case {
            name: &'static str,
            outcome: Outcome,
            completed: bool,
            passed: bool,
            errors: Vec<(&'static str, &'static str)>,
        }
        let cases = [
            Case {
                name: "passed",
                outcome: Outcome::Passed,
                completed: true,
                passed: true,
                errors: vec![],
            },
            Case {
                name: "not passed, nothing to report",
                outcome: Outcome::NotPassed(Vec::new()),
                completed: true,
                passed: false,
                errors: vec![],
            },
            Case {
                name: "not passed with a reason",
                outcome: Outcome::NotPassed(vec![lookup.clone()]),
                completed: true,
                passed: false,
                errors: vec![("mpic_error:dcv_checker:lookup", "no TXT record")],
            },
            Case {
                name: "not completed",
                outcome: Outcome::NotCompleted(lookup),
                completed: false,
                passed: false,
                errors: vec![("mpic_error:dcv_checker:lookup", "no TXT record")],
            },
        ];
        for case in cases {
            let r = case
                .outcome
                .into_response(CheckDetails::empty_for(ValidationMethod::AcmeDns01));
            assert_eq!(r.check_type, CheckType::Dcv, "{}", case.name);
            assert_eq!(r.check_completed, case.completed, "{}", case.name);
            assert_eq!(r.check_passed, case.passed, "{}", case.name);
            // On the wire: an array, `[]` when empty (never `null`).
            let wire = serde_json::to_value(&r).unwrap();
            assert_eq!(
                wire["errors"].as_array().map(Vec::len),
                Some(case.errors.len()),
                "{}",
                case.name
            );
            let errors: Vec<(String, String)> = r
                .errors
                .into_iter()
                .map(|e| (e.error_type, e.error_message))
                .collect();
            let want: Vec<(String, String)> = case
                .errors
                .into_iter()
                .map(|(t, m)| (t.to_owned(), m.to_owned()))
                .collect();
            assert_eq!(errors, want, "{}", case.name);
        }
        let caa = Outcome::Passed.into_response(CheckDetails::Caa(CaaDetails::default()));
        assert_eq!(caa.check_type, CheckType::Caa);
    }

    #[test]
    fn messages_are_bounded_on_the_wire() {
        let long = "x".repeat(10 * crate::text::MAX_ERROR_MESSAGE_BYTES);
        let wire = Problem::new(ProblemKind::Http, long).to_wire();
        assert!(wire.error_message.len() <= crate::text::MAX_ERROR_MESSAGE_BYTES + 4);
    }
}
