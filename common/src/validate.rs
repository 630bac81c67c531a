//! Parse, don't validate: wire shapes of [`crate::api`] become typed values here, or a list of
//! [`ValidationIssue`]s that each name the field (api.md "Other statuses", 400).
//!
//! Both the coordinator and the perspectives run these checks, so a request the API forbids is
//! refused at the edge of either service with the same words.

use serde::de::DeserializeOwned;

use crate::api::{CaaCheckParameters, CertificateType, DcvCheckParameters, ValidationIssue};
use crate::target::Target;
use crate::text::truncate_for_echo;

/// Issue types (kebab-case, as the reference names them where it has one).
pub mod issue {
    /// The body is not JSON at all.
    pub const INVALID_JSON: &str = "invalid-json";
    /// A field has the wrong type, an unknown value, is missing or is not expected.
    pub const INVALID_FIELD: &str = "invalid-field";
    /// `domain_or_ip_target` is not a valid name or address.
    pub const INVALID_TARGET: &str = "invalid-target";
    /// The target's kind does not fit the method (an IP for a DNS method, a wildcard for HTTP).
    pub const INVALID_TARGET_FOR_METHOD: &str = "invalid-target-for-method";
    /// `check_type` and the parameter objects disagree.
    pub const INVALID_CHECK_PARAMETERS: &str = "invalid-check-parameters";
    /// A CAA issuer domain name is invalid.
    pub const INVALID_CAA_DOMAIN: &str = "invalid-caa-domain";
    /// `perspective_count` out of range.
    pub const INVALID_PERSPECTIVE_COUNT: &str = "invalid-perspective-count";
    /// `quorum_count` out of range.
    pub const INVALID_QUORUM_COUNT: &str = "invalid-quorum-count";
    /// A DCV method the BR no longer allows on this day (BR 1.2.2), refused under
    /// `policy: enforce`.
    pub const RETIRED_VALIDATION_METHOD: &str = "retired-validation-method";
    /// `cohort_for_single_attempt` out of range.
    pub const INVALID_COHORT_INDEX: &str = "invalid-cohort-for-single-attempt";
    /// website-change with neither a challenge value nor a regex.
    pub const EMPTY_CHALLENGE_VALUE: &str = "empty-challenge-value";
    /// Another DCV parameter is unusable.
    pub const INVALID_DCV_PARAMETER: &str = "invalid-dcv-parameter";
}

/// Longest `trace_identifier` accepted, in characters (as JSON Schema's `maxLength`).
pub const MAX_TRACE_IDENTIFIER_CHARS: usize = 256;
/// Most `caa_domains` / `issuer_domain_names` accepted.
pub const MAX_ISSUER_DOMAINS: usize = 32;
/// Longest free-text parameter (challenge values, tokens, URIs), in bytes.
pub const MAX_PARAMETER_BYTES: usize = 4096;
/// Largest compiled `match_regex` program, in bytes (the `regex` default is 10 MiB; a pattern
/// that matches a token on a page needs a few KiB).
pub const MAX_REGEX_PROGRAM_BYTES: usize = 256 * 1024;
/// Largest lazy-DFA cache of one `match_regex` search, in bytes.
pub const MAX_REGEX_DFA_BYTES: usize = 1024 * 1024;
/// Deepest nesting of groups and repetitions in a `match_regex`.
pub const MAX_REGEX_NESTING: u32 = 32;

/// Parses a JSON body into `T` strictly ([`crate::strict_json`]), naming the failing field
/// path in the issue.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ValidationIssue> {
    crate::strict_json::parse(body)
}

/// Parses `domain_or_ip_target`.
pub fn target(input: &str) -> Result<Target, ValidationIssue> {
    Target::parse(input).map_err(|e| {
        issue_at(
            issue::INVALID_TARGET,
            format!(
                "field `domain_or_ip_target` (\"{}\"): {e}",
                truncate_for_echo(input, 128)
            ),
        )
    })
}

/// The target and the trace identifier every request carries (in this order of issues): the
/// target when it is valid; every issue of either pushed onto `issues`.
pub fn target_and_trace(
    target_field: &str,
    trace: Option<&str>,
    issues: &mut Vec<ValidationIssue>,
) -> Option<Target> {
    let parsed = target(target_field).map_err(|i| issues.push(i)).ok();
    if let Err(i) = trace_identifier(trace) {
        issues.push(i);
    }
    parsed
}

/// Checks `trace_identifier`.
pub fn trace_identifier(value: Option<&str>) -> Result<(), ValidationIssue> {
    match value {
        Some(t) if t.chars().count() > MAX_TRACE_IDENTIFIER_CHARS => Err(issue_at(
            issue::INVALID_FIELD,
            format!(
                "field `trace_identifier`: longer than {MAX_TRACE_IDENTIFIER_CHARS} characters"
            ),
        )),
        _ => Ok(()),
    }
}

/// Validated `caa_check_parameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaParams {
    /// TLS server or S/MIME.
    pub certificate_type: CertificateType,
    /// Lowercase A-label issuer domain names; empty means the perspective's default.
    pub caa_domains: Vec<String>,
    /// The request allows a lookup failure to count (under the rule's conditions).
    pub allow_lookup_failure: bool,
    /// RFC 8657 account URI of the request.
    pub account_uri: Option<String>,
    /// RFC 8657 method label of the request, as given: lowercase, its canonical form, and a
    /// `ca-tbr-` label as BR 4.2.2.1.2 spells it ([`crate::method_labels`]).
    pub validation_method: Option<String>,
}

impl CaaParams {
    /// From the wire object (null means defaults).
    pub fn from_wire(wire: Option<&CaaCheckParameters>) -> Result<CaaParams, Vec<ValidationIssue>> {
        let default = CaaCheckParameters::default();
        let wire = wire.unwrap_or(&default);
        let mut issues = Vec::new();
        let caa_domains = check_issuer_domains(
            "caa_check_parameters.caa_domains",
            wire.caa_domains.as_deref().unwrap_or(&[]),
            issue::INVALID_CAA_DOMAIN,
            &mut issues,
        );
        if let Some(uri) = &wire.account_uri
            && let Err(e) = check_uri(uri)
        {
            issues.push(issue_at(
                issue::INVALID_FIELD,
                format!("field `caa_check_parameters.account_uri`: {e}"),
            ));
        }
        let validation_method = match &wire.validation_method {
            None => None,
            Some(m) => {
                let spelt = if is_rfc8657_label(m) {
                    crate::method_labels::check_request_label(m)
                } else {
                    Err("not an RFC 8657 method label (letters, digits and inner hyphens)")
                };
                match spelt {
                    Ok(()) => Some(m.clone()),
                    Err(why) => {
                        issues.push(issue_at(
                            issue::INVALID_FIELD,
                            format!(
                                "field `caa_check_parameters.validation_method`: \"{}\": {why}",
                                truncate_for_echo(m, 64)
                            ),
                        ));
                        None
                    }
                }
            }
        };
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(CaaParams {
            certificate_type: wire.certificate_type,
            caa_domains,
            allow_lookup_failure: wire.allow_lookup_failure,
            account_uri: wire.account_uri.clone(),
            validation_method,
        })
    }
}

/// The issues of a request's `dcv_check_parameters` for `target`: each method's rules
/// ([`crate::dcv`]).
pub fn dcv_params(target: &Target, params: &DcvCheckParameters) -> Vec<ValidationIssue> {
    crate::dcv::check(target, params)
}

/// Compiles a website-change `match_regex` with the bounds that keep a request from costing
/// the perspective more than a bounded amount of memory and time. The `regex` crate's engines
/// run in time linear in the input (no backtracking), so the body search cannot be made
/// catastrophic; these limits bound the compiled program instead.
///
/// # Errors
///
/// The pattern's syntax error or the limit it exceeds, as text for a 400 or a check error.
pub fn match_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_PROGRAM_BYTES)
        .dfa_size_limit(MAX_REGEX_DFA_BYTES)
        .nest_limit(MAX_REGEX_NESTING)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("the regular expression compiles to more than {limit} bytes; simplify it")
            }
            regex::Error::Syntax(_) => {
                "not a valid regular expression (Rust regex syntax)".to_owned()
            }
            _ => "not a usable regular expression".to_owned(),
        })
}

/// Request headers a DCV request may not set: they frame the HTTP message or name the host,
/// which the fetcher decides (the `Host` is the target's; RFC 9110 section 7.6.1 and RFC 9112
/// section 6 for the connection and framing fields).
pub const FORBIDDEN_REQUEST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Whether `name` is one of [`FORBIDDEN_REQUEST_HEADERS`] (case-insensitive).
pub fn is_forbidden_request_header(name: &str) -> bool {
    FORBIDDEN_REQUEST_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// An issue with the given type and message.
pub fn issue_at(issue_type: &str, message: impl Into<String>) -> ValidationIssue {
    ValidationIssue {
        issue_type: issue_type.to_owned(),
        message: message.into(),
    }
}

/// RFC 8657 section 4 `label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))`.
pub fn is_rfc8657_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

pub(crate) fn check_issuer_domains(
    path: &str,
    names: &[String],
    issue_type: &str,
    issues: &mut Vec<ValidationIssue>,
) -> Vec<String> {
    if names.len() > MAX_ISSUER_DOMAINS {
        issues.push(issue_at(
            issue_type,
            format!("field `{path}`: more than {MAX_ISSUER_DOMAINS} names"),
        ));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        match Target::parse(name) {
            Ok(Target::Domain(d)) if !d.is_wildcard() => out.push(d.name().to_owned()),
            Ok(_) => issues.push(issue_at(
                issue_type,
                format!(
                    "field `{path}[{i}]`: \"{}\" must be a domain name, not a wildcard or an address",
                    truncate_for_echo(name, 128)
                ),
            )),
            Err(e) => issues.push(issue_at(
                issue_type,
                format!("field `{path}[{i}]`: \"{}\": {e}", truncate_for_echo(name, 128)),
            )),
        }
    }
    out
}

/// The request headers of an HTTP method: at most 32, each a valid field, none that frames
/// the message or names the host.
pub(crate) fn check_headers(
    headers: Option<&std::collections::BTreeMap<String, String>>,
    issues: &mut Vec<ValidationIssue>,
) {
    const MAX_HEADERS: usize = 32;
    let Some(headers) = headers else { return };
    if headers.len() > MAX_HEADERS {
        issues.push(issue_at(
            issue::INVALID_DCV_PARAMETER,
            format!("field `dcv_check_parameters.http_headers`: more than {MAX_HEADERS} headers"),
        ));
    }
    for (name, value) in headers {
        // RFC 9110 section 5.6.2: a field name is a token.
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        let value_ok = value.len() <= 4096
            && value
                .bytes()
                .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        if !name_ok || !value_ok {
            issues.push(issue_at(
                issue::INVALID_DCV_PARAMETER,
                format!(
                    "field `dcv_check_parameters.http_headers.{}`: not a valid HTTP header",
                    truncate_for_echo(name, 64)
                ),
            ));
        } else if is_forbidden_request_header(name) {
            issues.push(issue_at(
                issue::INVALID_DCV_PARAMETER,
                format!(
                    "field `dcv_check_parameters.http_headers.{}`: this header is set by the perspective and cannot be given",
                    truncate_for_echo(name, 64)
                ),
            ));
        }
    }
}

/// A URI as RFC 3986 `scheme ":" hier-part`: enough to refuse obvious garbage; the value is
/// compared byte for byte, never dereferenced.
pub(crate) fn check_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_PARAMETER_BYTES {
        return Err(format!("longer than {MAX_PARAMETER_BYTES} bytes"));
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("not a URI (no scheme)".to_owned());
    };
    let scheme_ok = scheme
        .as_bytes()
        .first()
        .is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || rest.is_empty() {
        return Err("not a URI".to_owned());
    }
    if uri.bytes().any(|b| b <= 0x20 || b == 0x7f || b == b';') {
        return Err("a URI has no spaces, control characters or ';'".to_owned());
    }
    Ok(())
}

/// `http_token_path` must stay below `/.well-known/pki-validation/` (BR 3.2.2.4.18): RFC 3986
/// path characters only, and no `.` or `..` segment (also percent-encoded, which URL parsers
/// resolve as dot segments too) that would climb out of the directory.
pub(crate) fn check_token_path(path: &str) -> Result<(), String> {
    let char_ok = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%/".contains(&b);
    if !path.bytes().all(char_ok) {
        return Err(
            "only RFC 3986 path characters are allowed (no spaces, '?', '#' or '\\')".to_owned(),
        );
    }
    for segment in path.split('/') {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        if decoded == "." || decoded == ".." {
            return Err(
                "dot segments would leave /.well-known/pki-validation/ (BR 3.2.2.4.18)".to_owned(),
            );
        }
    }
    Ok(())
}

pub(crate) fn is_base64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dns_method_owner_names() {
        struct Case {
            name: &'static str,
            target: String,
            params: serde_json::Value,
            want: &'static [(&'static str, &'static str)],
        }
        // 251 octets: fits as a target, not with a method prefix in front.
        let long = format!("{}.example.com", vec!["a".repeat(59); 4].join("."));
        // 233 octets: `_validation-persist.` (20) in front makes exactly 253.
        let edge = format!("b.{}.example.com", vec!["a".repeat(54); 4].join("."));
        let cases = [
            Case {
                name: "empty prefix is no prefix (reference behaviour)",
                target: "example.com".into(),
                params: serde_json::json!({"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "TXT", "dns_name_prefix": ""}),
                want: &[],
            },
            Case {
                name: "given prefix makes the name too long",
                target: long.clone(),
                params: serde_json::json!({"validation_method": "dns-change", "challenge_value": "x", "dns_record_type": "TXT", "dns_name_prefix": "_some-long-prefix"}),
                want: &[(
                    issue::INVALID_DCV_PARAMETER,
                    "field `dcv_check_parameters.dns_name_prefix`: with `_some-long-prefix.` in front of the target, the name to query is 269 octets long; the limit is 253 (RFC 1035 §2.3.4)",
                )],
            },
            Case {
                name: "acme-dns-01 fixed prefix",
                target: long.clone(),
                params: serde_json::json!({"validation_method": "acme-dns-01", "key_authorization_hash": "h"}),
                want: &[(
                    issue::INVALID_TARGET_FOR_METHOD,
                    "field `domain_or_ip_target`: with `_acme-challenge.` in front of the target, the name to query is 267 octets long",
                )],
            },
            Case {
                name: "dns-account-01 label",
                target: long.clone(),
                params: serde_json::json!({"validation_method": "dns-account-01", "account_uri": "https://ca.example/acct/1", "key_authorization_hash": "h"}),
                want: &[(
                    issue::INVALID_TARGET_FOR_METHOD,
                    "field `domain_or_ip_target`: with `_<account label>._acme-challenge.` in front of the target, the name to query is 285 octets long",
                )],
            },
            Case {
                name: "dns-persistent exactly 253 fits",
                target: edge.clone(),
                params: serde_json::json!({"validation_method": "dns-persistent", "issuer_domain_names": ["ca.example"], "expected_account_uri": "https://ca.example/acct/1"}),
                want: &[],
            },
            Case {
                name: "contact-email-txt",
                target: long.clone(),
                params: serde_json::json!({"validation_method": "contact-email-txt", "challenge_value": "a@b.example"}),
                want: &[(
                    issue::INVALID_TARGET_FOR_METHOD,
                    "field `domain_or_ip_target`: with `_validation-contactemail.` in front",
                )],
            },
            Case {
                name: "contact-phone-txt",
                target: long.clone(),
                params: serde_json::json!({"validation_method": "contact-phone-txt", "challenge_value": "+1 555"}),
                want: &[(
                    issue::INVALID_TARGET_FOR_METHOD,
                    "field `domain_or_ip_target`: with `_validation-contactphone.` in front",
                )],
            },
            Case {
                name: "no prefix: the target alone always fits",
                target: long.clone(),
                params: serde_json::json!({"validation_method": "contact-email-caa", "challenge_value": "a@b.example"}),
                want: &[],
            },
            Case {
                name: "reverse name of an ipv6 target with a prefix fits",
                target: "2001:db8::1".into(),
                params: serde_json::json!({"validation_method": "reverse-address-lookup", "challenge_value": "h.example.", "dns_name_prefix": "_p"}),
                want: &[],
            },
            Case {
                name: "an IP target is refused once, not also for its length",
                target: "192.0.2.1".into(),
                params: serde_json::json!({"validation_method": "acme-dns-01", "key_authorization_hash": "h"}),
                want: &[(
                    issue::INVALID_TARGET_FOR_METHOD,
                    "field `domain_or_ip_target`: an IP address cannot be validated with acme-dns-01",
                )],
            },
        ];
        for c in cases {
            let target = Target::parse(&c.target).unwrap();
            let params: DcvCheckParameters = serde_json::from_value(c.params).unwrap();
            let got = dcv_params(&target, &params);
            assert_eq!(got.len(), c.want.len(), "case {:?}: {got:?}", c.name);
            for (issue, (issue_type, message)) in got.iter().zip(c.want) {
                assert_eq!(issue.issue_type, *issue_type, "case {:?}", c.name);
                assert!(
                    issue.message.starts_with(message),
                    "case {:?}: {}",
                    c.name,
                    issue.message
                );
            }
        }
    }

    #[test]
    fn rfc8657_labels() {
        for (label, ok) in [
            ("dns-01", true),
            ("http-01", true),
            ("ca-tbr-7", true),
            ("tls-alpn-01", true),
            ("a", true),
            ("", false),
            ("-dns", false),
            ("dns-", false),
            ("dns_01", false),
            ("dns 01", false),
        ] {
            assert_eq!(is_rfc8657_label(label), ok, "{label:?}");
        }
    }

    #[test]
    fn website_change_rules() {
        struct Case {
            name: &'static str,
            params: serde_json::Value,
            want: &'static [&'static str],
        }
        let base = |extra: serde_json::Value| {
            let mut p = serde_json::json!({"validation_method": "website-change", "http_token_path": "token.txt", "challenge_value": "v"});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            p
        };
        let cases = [
            Case {
                name: "plain",
                params: base(serde_json::json!({})),
                want: &[],
            },
            Case {
                name: "nested path",
                params: base(serde_json::json!({"http_token_path": "a/b-c_d.txt"})),
                want: &[],
            },
            Case {
                name: "dot dot",
                params: base(serde_json::json!({"http_token_path": "../../admin"})),
                want: &["http_token_path"],
            },
            Case {
                name: "encoded dot dot",
                params: base(serde_json::json!({"http_token_path": "a/%2E%2e/b"})),
                want: &["http_token_path"],
            },
            Case {
                name: "query",
                params: base(serde_json::json!({"http_token_path": "a?b"})),
                want: &["http_token_path"],
            },
            Case {
                name: "space",
                params: base(serde_json::json!({"http_token_path": "a b"})),
                want: &["http_token_path"],
            },
            Case {
                name: "regex ok",
                params: base(serde_json::json!({"match_regex": "^tok-[0-9a-f]{8}$"})),
                want: &[],
            },
            Case {
                name: "regex syntax",
                params: base(serde_json::json!({"match_regex": "(unclosed"})),
                want: &["match_regex"],
            },
            Case {
                name: "regex too big",
                params: base(serde_json::json!({"match_regex": "\\w{1000}\\w{1000}"})),
                want: &["match_regex"],
            },
            Case {
                name: "regex too deep",
                params: base(serde_json::json!({"match_regex": "(".repeat(40) + &")".repeat(40)})),
                want: &["match_regex"],
            },
            Case {
                name: "header ok",
                params: base(
                    serde_json::json!({"http_headers": {"X-Probe": "1", "User-Agent": "ca"}}),
                ),
                want: &[],
            },
            Case {
                name: "host header",
                params: base(serde_json::json!({"http_headers": {"Host": "other.example"}})),
                want: &["http_headers.Host"],
            },
            Case {
                name: "framing header",
                params: base(serde_json::json!({"http_headers": {"transfer-encoding": "chunked"}})),
                want: &["http_headers.transfer-encoding"],
            },
            Case {
                name: "header name not a token",
                params: base(serde_json::json!({"http_headers": {"a(b)": "1"}})),
                want: &["http_headers.a(b)"],
            },
        ];
        let target = Target::parse("example.com").unwrap();
        for c in cases {
            let params: DcvCheckParameters = serde_json::from_value(c.params).unwrap();
            let issues = dcv_params(&target, &params);
            let fields: Vec<String> = issues
                .iter()
                .map(|i| {
                    let m = i
                        .message
                        .strip_prefix("field `dcv_check_parameters.")
                        .unwrap();
                    m[..m.find('`').unwrap()].to_owned()
                })
                .collect();
            assert_eq!(fields, c.want, "case {:?}: {issues:?}", c.name);
        }
    }

    #[test]
    fn uris() {
        for (uri, ok) in [
            ("https://ca.example/acct/1", true),
            ("urn:example:1", true),
            ("no-scheme", false),
            ("https:", false),
            ("1http://x", false),
            ("https://a b", false),
            ("https://a;b", false),
        ] {
            assert_eq!(check_uri(uri).is_ok(), ok, "{uri:?}");
        }
    }
}
