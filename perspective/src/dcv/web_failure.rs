//! Why an HTTP or TLS-ALPN check got no answer to judge, and [`outcome`]: the one place where
//! those low-level failures become the error a user sees (Boulder's `detailedError`).
//!
//! Messages name the host or the address that failed ("203.0.113.5: connection refused") and
//! never our internals (no OS error numbers, no library type names, no file paths).

use std::fmt;
use std::net::IpAddr;

use mpic_common::api::ValidationMethod;
use mpic_common::outcome::{Checker, Outcome, Problem, ProblemKind};

use crate::net::{Forbidden, NetError};

/// A check that got no answer to judge. Grouped by who is at fault: the target's DNS
/// ([`Failure::Net`] lookups), the target's network ([`Failure::Net`] dials, [`Failure::Tls`],
/// [`Failure::Http`], [`Failure::Timeout`]), the target's content ([`Failure::Redirect`]) and
/// the request ([`Failure::Parameter`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Resolution, the address policy, or dialling.
    Net(NetError),
    /// The TLS handshake failed.
    Tls {
        /// The address connected to.
        ip: IpAddr,
        /// Why.
        cause: TlsCause,
    },
    /// The HTTP exchange broke.
    Http {
        /// The address connected to.
        ip: IpAddr,
        /// Why.
        cause: HttpCause,
    },
    /// The method's deadline passed.
    Timeout {
        /// The host being fetched or resolved.
        host: String,
        /// The address being talked to, when a dial had started.
        ip: Option<IpAddr>,
        /// The deadline.
        ms: u64,
    },
    /// A redirect broke the redirect policy.
    Redirect(RedirectRefusal),
    /// A request parameter could not be used (the request validation refuses these; this
    /// is defence in depth).
    Parameter {
        /// Which, and why.
        message: String,
    },
}

/// Why a TLS handshake failed.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsCause {
    /// rustls refused the peer (an alert, an incompatible or misbehaving peer, a certificate
    /// that failed validation when validation is configured).
    Rustls(rustls::Error),
    /// The peer closed the connection during the handshake.
    Closed,
    /// The socket failed.
    Io(std::io::ErrorKind),
}

/// Why an HTTP exchange broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpCause {
    /// The connection closed before a complete response head arrived.
    ClosedEarly,
    /// The response was not valid HTTP/1.1.
    Malformed,
    /// The response head exceeded our limit.
    HeadTooLarge,
    /// The connection broke while the body was being read.
    BodyBroken,
    /// Any other failure of the exchange.
    Protocol,
}

/// A redirect the policy refused (requirements.md "HTTP methods").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRefusal {
    /// The redirect's status.
    pub status: u16,
    /// Its `Location` value (made printable and bounded), if it had one.
    pub location: Option<String>,
    /// Which rule it broke.
    pub reason: RedirectReason,
}

/// The redirect rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectReason {
    /// A 3xx status other than 301, 302, 307 and 308 (and 304).
    StatusNotFollowed,
    /// No `Location` header.
    MissingLocation,
    /// `Location` is not a URL, even relative to the current one.
    InvalidLocation,
    /// Not an http or https URL.
    Scheme(String),
    /// A port other than 80 for http and 443 for https (or the configured test ports).
    Port(u16),
    /// The host is not a valid domain name or address.
    Host(String),
    /// The limit of redirects was reached.
    TooMany {
        /// The limit.
        max: usize,
    },
    /// The URL was already fetched in this chain.
    Loop,
    /// The redirect's host is, or resolves to, a special-purpose address.
    Forbidden(Forbidden),
}

/// Maps a failure of `method` to the error a user sees.
///
/// | failure | `error_type` | completed |
/// |---|---|---|
/// | NXDOMAIN, no A/AAAA | `mpic_error:dcv_checker:lookup` | yes (reference behaviour for a name that does not exist) |
/// | lookup failed | `mpic_error:dcv_checker:lookup` | no |
/// | DNSSEC failure | `mpic_error:dcv_checker:dnssec` | no |
/// | special-purpose address | `mpic_error:http` / TLS-ALPN connection | yes |
/// | dial, TLS, HTTP, timeout | `mpic_error:http` / TLS-ALPN connection | no |
/// | redirect policy | `mpic_error:redirect:invalid` | yes (reference behaviour) |
/// | parameter | `mpic_error:dcv_checker:parameter` | no |
pub fn outcome(failure: &Failure, method: ValidationMethod) -> Outcome {
    let network = if method == ValidationMethod::AcmeTlsAlpn01 {
        ProblemKind::TlsAlpnConnection
    } else {
        ProblemKind::Http
    };
    let (kind, completed) = match failure {
        Failure::Net(NetError::NoSuchName { .. } | NetError::NoAddresses { .. }) => {
            (ProblemKind::Lookup(Checker::Dcv), true)
        }
        Failure::Net(NetError::Lookup { dnssec: true, .. }) => {
            (ProblemKind::Dnssec(Checker::Dcv), false)
        }
        Failure::Net(NetError::Lookup { .. }) => (ProblemKind::Lookup(Checker::Dcv), false),
        Failure::Net(NetError::Forbidden(_)) => (network, true),
        Failure::Net(NetError::Dial { .. })
        | Failure::Tls { .. }
        | Failure::Http { .. }
        | Failure::Timeout { .. } => (network, false),
        Failure::Redirect(_) => (ProblemKind::Redirect, true),
        Failure::Parameter { .. } => (ProblemKind::Parameter, false),
    };
    let problem = Problem::new(kind, failure.to_string());
    if completed {
        // A definitive answer about the target (its name does not exist, it points at a
        // forbidden address, it redirects against the policy).
        Outcome::NotPassed(vec![problem])
    } else {
        Outcome::NotCompleted(problem)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Net(e) => e.fmt(f),
            Failure::Tls { ip, cause } => write!(f, "{ip}: TLS handshake failed: {cause}"),
            Failure::Http { ip, cause } => write!(f, "{ip}: {cause}"),
            Failure::Timeout {
                ip: Some(ip), ms, ..
            } => write!(f, "{ip}: no complete answer within {ms} ms"),
            Failure::Timeout { host, ip: None, ms } => {
                write!(f, "{host}: could not be resolved within {ms} ms")
            }
            Failure::Redirect(r) => r.fmt(f),
            Failure::Parameter { message } => f.write_str(message),
        }
    }
}

impl fmt::Display for TlsCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsCause::Rustls(rustls::Error::AlertReceived(alert)) => {
                write!(f, "the server sent the alert {}", alert_name(*alert))
            }
            TlsCause::Rustls(rustls::Error::InvalidCertificate(e)) => {
                write!(f, "invalid certificate: {e:?}")
            }
            TlsCause::Rustls(rustls::Error::PeerIncompatible(e)) => {
                write!(f, "the server is incompatible: {e:?}")
            }
            TlsCause::Rustls(rustls::Error::PeerMisbehaved(e)) => {
                write!(f, "the server misbehaved: {e:?}")
            }
            TlsCause::Rustls(rustls::Error::NoApplicationProtocol) => {
                f.write_str("the server accepted none of the offered ALPN protocols")
            }
            TlsCause::Rustls(_) => f.write_str("protocol error"),
            TlsCause::Closed => f.write_str("the server closed the connection"),
            TlsCause::Io(kind) => write!(f, "{kind}"),
        }
    }
}

impl fmt::Display for HttpCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HttpCause::ClosedEarly => "the connection closed before a complete HTTP response",
            HttpCause::Malformed => "the response is not valid HTTP/1.1",
            HttpCause::HeadTooLarge => "the response headers are too large",
            HttpCause::BodyBroken => "the connection broke while the body was being read",
            HttpCause::Protocol => "HTTP protocol error",
        })
    }
}

impl fmt::Display for RedirectRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redirect {}", self.status)?;
        if let Some(location) = &self.location {
            write!(f, " to {location:?}")?;
        }
        match &self.reason {
            RedirectReason::StatusNotFollowed => {
                f.write_str(" refused: only 301, 302, 307 and 308 are followed")
            }
            RedirectReason::MissingLocation => f.write_str(" refused: no Location header"),
            RedirectReason::InvalidLocation => f.write_str(" refused: not a valid URL"),
            RedirectReason::Scheme(s) => {
                write!(
                    f,
                    " refused: scheme {s:?}; only http and https are followed"
                )
            }
            RedirectReason::Port(p) => write!(
                f,
                " refused: port {p}; only 80 (http) and 443 (https) are followed"
            ),
            RedirectReason::Host(why) => write!(f, " refused: {why}"),
            RedirectReason::TooMany { max } => {
                write!(f, " refused: more than {max} redirects")
            }
            RedirectReason::Loop => f.write_str(" refused: a loop (this URL was already fetched)"),
            RedirectReason::Forbidden(forbidden) => write!(f, " refused: {forbidden}"),
        }
    }
}

/// The registered name of a TLS alert (RFC 8446 section 6, lowercase with underscores).
fn alert_name(alert: rustls::AlertDescription) -> String {
    let debug = format!("{alert:?}");
    let mut name = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::ErrorKind;

    use super::*;
    use crate::net::{AddressPolicy, DialAttempt, DialFailure};

    #[test]
    fn what_the_user_sees() {
        struct Case {
            name: &'static str,
            failure: Failure,
            method: ValidationMethod,
            want_type: &'static str,
            want_message: &'static str,
            want_completed: bool,
        }
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let http = ValidationMethod::AcmeHttp01;
        let alpn = ValidationMethod::AcmeTlsAlpn01;
        let refused = Failure::Net(NetError::Dial {
            attempts: vec![DialAttempt {
                ip,
                port: 80,
                failure: DialFailure::Io(ErrorKind::ConnectionRefused),
            }],
        });
        let forbidden = AddressPolicy::default()
            .check("10.0.0.1".parse().unwrap())
            .unwrap_err();
        let cases = [
            Case {
                name: "connection refused",
                failure: refused.clone(),
                method: http,
                want_type: "mpic_error:http",
                want_message: "203.0.113.5: connection refused",
                want_completed: false,
            },
            Case {
                name: "connection refused, tls-alpn",
                failure: refused,
                method: alpn,
                want_type: "mpic_error:dcv_checker:tls_alpn:connection",
                want_message: "203.0.113.5: connection refused",
                want_completed: false,
            },
            Case {
                name: "nxdomain",
                failure: Failure::Net(NetError::NoSuchName {
                    host: "nx.example.com".into(),
                }),
                method: http,
                want_type: "mpic_error:dcv_checker:lookup",
                want_message: "nx.example.com: no such domain name (NXDOMAIN)",
                want_completed: true,
            },
            Case {
                name: "no addresses",
                failure: Failure::Net(NetError::NoAddresses {
                    host: "txt.example.com".into(),
                }),
                method: ValidationMethod::WebsiteChange,
                want_type: "mpic_error:dcv_checker:lookup",
                want_message: "txt.example.com: no A or AAAA records",
                want_completed: true,
            },
            Case {
                name: "servfail",
                failure: Failure::Net(NetError::Lookup {
                    host: "example.com".into(),
                    dnssec: false,
                    message: "A lookup for example.com failed: SERVFAIL (rcode 2)".into(),
                }),
                method: http,
                want_type: "mpic_error:dcv_checker:lookup",
                want_message: "A lookup for example.com failed: SERVFAIL (rcode 2)",
                want_completed: false,
            },
            Case {
                name: "dnssec",
                failure: Failure::Net(NetError::Lookup {
                    host: "example.com".into(),
                    dnssec: true,
                    message: "AAAA lookup for example.com failed: SERVFAIL (rcode 2); EDE 6 (DNSSEC Bogus) (DNSSEC validation failed)".into(),
                }),
                method: alpn,
                want_type: "mpic_error:dcv_checker:dnssec",
                want_message: "AAAA lookup for example.com failed: SERVFAIL (rcode 2); EDE 6 (DNSSEC Bogus) (DNSSEC validation failed)",
                want_completed: false,
            },
            Case {
                name: "forbidden address",
                failure: Failure::Net(NetError::Forbidden(forbidden)),
                method: http,
                want_type: "mpic_error:http",
                want_message: "10.0.0.1: is in 10.0.0.0/8, private-use (RFC 1918); such addresses are never dialled",
                want_completed: true,
            },
            Case {
                name: "tls alert",
                failure: Failure::Tls {
                    ip,
                    cause: TlsCause::Rustls(rustls::Error::AlertReceived(
                        rustls::AlertDescription::HandshakeFailure,
                    )),
                },
                method: ValidationMethod::WebsiteChange,
                want_type: "mpic_error:http",
                want_message: "203.0.113.5: TLS handshake failed: the server sent the alert handshake_failure",
                want_completed: false,
            },
            Case {
                name: "tls alpn refused",
                failure: Failure::Tls {
                    ip,
                    cause: TlsCause::Rustls(rustls::Error::AlertReceived(
                        rustls::AlertDescription::NoApplicationProtocol,
                    )),
                },
                method: alpn,
                want_type: "mpic_error:dcv_checker:tls_alpn:connection",
                want_message: "203.0.113.5: TLS handshake failed: the server sent the alert no_application_protocol",
                want_completed: false,
            },
            Case {
                name: "tls closed",
                failure: Failure::Tls {
                    ip,
                    cause: TlsCause::Closed,
                },
                method: alpn,
                want_type: "mpic_error:dcv_checker:tls_alpn:connection",
                want_message: "203.0.113.5: TLS handshake failed: the server closed the connection",
                want_completed: false,
            },
            Case {
                name: "http closed early",
                failure: Failure::Http {
                    ip,
                    cause: HttpCause::ClosedEarly,
                },
                method: http,
                want_type: "mpic_error:http",
                want_message: "203.0.113.5: the connection closed before a complete HTTP response",
                want_completed: false,
            },
            Case {
                name: "timeout talking",
                failure: Failure::Timeout {
                    host: "example.com".into(),
                    ip: Some(ip),
                    ms: 2700,
                },
                method: http,
                want_type: "mpic_error:http",
                want_message: "203.0.113.5: no complete answer within 2700 ms",
                want_completed: false,
            },
            Case {
                name: "timeout resolving",
                failure: Failure::Timeout {
                    host: "example.com".into(),
                    ip: None,
                    ms: 2700,
                },
                method: http,
                want_type: "mpic_error:http",
                want_message: "example.com: could not be resolved within 2700 ms",
                want_completed: false,
            },
            Case {
                name: "redirect 303",
                failure: Failure::Redirect(RedirectRefusal {
                    status: 303,
                    location: Some("http://example.com/x".into()),
                    reason: RedirectReason::StatusNotFollowed,
                }),
                method: http,
                want_type: "mpic_error:redirect:invalid",
                want_message: "redirect 303 to \"http://example.com/x\" refused: only 301, 302, 307 and 308 are followed",
                want_completed: true,
            },
            Case {
                name: "redirect port",
                failure: Failure::Redirect(RedirectRefusal {
                    status: 302,
                    location: Some("http://example.com:8080/x".into()),
                    reason: RedirectReason::Port(8080),
                }),
                method: http,
                want_type: "mpic_error:redirect:invalid",
                want_message: "redirect 302 to \"http://example.com:8080/x\" refused: port 8080; only 80 (http) and 443 (https) are followed",
                want_completed: true,
            },
            Case {
                name: "redirect to a forbidden address",
                failure: Failure::Redirect(RedirectRefusal {
                    status: 301,
                    location: Some("http://10.0.0.1/".into()),
                    reason: RedirectReason::Forbidden(forbidden),
                }),
                method: http,
                want_type: "mpic_error:redirect:invalid",
                want_message: "redirect 301 to \"http://10.0.0.1/\" refused: 10.0.0.1: is in 10.0.0.0/8, private-use (RFC 1918); such addresses are never dialled",
                want_completed: true,
            },
            Case {
                name: "too many",
                failure: Failure::Redirect(RedirectRefusal {
                    status: 302,
                    location: Some("/r/11".into()),
                    reason: RedirectReason::TooMany { max: 10 },
                }),
                method: http,
                want_type: "mpic_error:redirect:invalid",
                want_message: "redirect 302 to \"/r/11\" refused: more than 10 redirects",
                want_completed: true,
            },
            Case {
                name: "parameter",
                failure: Failure::Parameter {
                    message: "field `dcv_check_parameters.match_regex`: too large".into(),
                },
                method: ValidationMethod::WebsiteChange,
                want_type: "mpic_error:dcv_checker:parameter",
                want_message: "field `dcv_check_parameters.match_regex`: too large",
                want_completed: false,
            },
        ];
        for c in cases {
            let (problem, completed) = match outcome(&c.failure, c.method) {
                Outcome::NotPassed(mut problems) if problems.len() == 1 => {
                    (problems.remove(0), true)
                }
                Outcome::NotCompleted(problem) => (problem, false),
                other => panic!("case {:?}: {other:?}", c.name),
            };
            let error = problem.to_wire();
            assert_eq!(error.error_type, c.want_type, "case {:?}", c.name);
            assert_eq!(error.error_message, c.want_message, "case {:?}", c.name);
            assert_eq!(completed, c.want_completed, "case {:?}", c.name);
        }
    }

    #[test]
    fn alert_names_are_the_registered_ones() {
        assert_eq!(
            alert_name(rustls::AlertDescription::NoApplicationProtocol),
            "no_application_protocol"
        );
        assert_eq!(
            alert_name(rustls::AlertDescription::HandshakeFailure),
            "handshake_failure"
        );
    }
}
