//! Parse, don't validate: wire shapes of [`crate::api`] become typed values here, or a list of
//! [`ValidationIssue`]s that each name the field (api.md "Other statuses", 400).
//!
//! Both the coordinator and the perspectives run these checks, so a request the API forbids is
//! refused at the edge of either service with the same words.

use std::net::IpAddr;

use serde::de::DeserializeOwned;

use crate::api::{
    AddressRecordType, CaaCheckParameters, CertificateType, DcvCheckParameters, ValidationIssue,
};
use crate::target::{Target, TargetError, parse_name_prefix, prefixed_name, reverse_name};
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
    /// RFC 8657 method label of the request, lowercase.
    pub validation_method: Option<String>,
}

impl CaaParams {
    /// From the wire object (null means defaults).
    pub fn from_wire(wire: Option<&CaaCheckParameters>) -> Result<CaaParams, Vec<ValidationIssue>> {
        let default = CaaCheckParameters::default();
        let wire = wire.unwrap_or(&default);
        let mut issues = Vec::new();
        let caa_domains = issuer_domains(
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
            Some(m) if is_rfc8657_label(m) => Some(m.to_ascii_lowercase()),
            Some(m) => {
                issues.push(issue_at(
                    issue::INVALID_FIELD,
                    format!(
                        "field `caa_check_parameters.validation_method`: \"{}\" is not an RFC 8657 method label (letters, digits and inner hyphens)",
                        truncate_for_echo(m, 64)
                    ),
                ));
                None
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

/// Checks a DCV parameter set against its target: the combinations the API forbids.
pub fn dcv_params(target: &Target, params: &DcvCheckParameters) -> Vec<ValidationIssue> {
    use DcvCheckParameters as P;
    let mut issues = Vec::new();
    let method = params.method();
    let field = |name: &str| format!("dcv_check_parameters.{name}");
    // The name a DNS method queries is its prefix in front of the target's base name (the
    // reverse name of an IP target for reverse-address-lookup). It must fit in 253 octets
    // (RFC 1035 §2.3.4), or there is nothing to look up.
    let base = match target {
        Target::Domain(d) => Some(d.name().to_owned()),
        Target::Ip(ip) if matches!(params, P::ReverseAddressLookup(_)) => Some(reverse_name(*ip)),
        Target::Ip(_) => None,
    };
    let fits = |prefix: &str,
                shown: &str,
                field_name: &str,
                issue_type: &str,
                issues: &mut Vec<ValidationIssue>| {
        if let Some(base) = &base
            && let Err(TargetError::TooLong { len }) = prefixed_name(prefix, base)
        {
            issues.push(issue_at(
                issue_type,
                format!(
                    "field `{field_name}`: with `{shown}.` in front of the target, the name to query is {len} octets long; the limit is 253 (RFC 1035 §2.3.4)"
                ),
            ));
        }
    };
    let prefix = |value: &Option<String>, issues: &mut Vec<ValidationIssue>| {
        // An empty prefix is no prefix, as the reference treats it.
        let Some(p) = value.as_deref().filter(|p| !p.is_empty()) else {
            return;
        };
        match parse_name_prefix(p) {
            Err(e) => issues.push(issue_at(
                issue::INVALID_DCV_PARAMETER,
                format!("field `{}`: {e}", field("dns_name_prefix")),
            )),
            Ok(_) => fits(
                p,
                p,
                &field("dns_name_prefix"),
                issue::INVALID_DCV_PARAMETER,
                issues,
            ),
        }
    };
    // A method's own fixed prefix: the target is what is too long.
    let fixed_prefix = |p: &str, shown: &str, issues: &mut Vec<ValidationIssue>| {
        fits(
            p,
            shown,
            "domain_or_ip_target",
            issue::INVALID_TARGET_FOR_METHOD,
            issues,
        );
    };
    let fixed = |p: &str, issues: &mut Vec<ValidationIssue>| fixed_prefix(p, p, issues);
    let bounded = |name: &str, value: &str, issues: &mut Vec<ValidationIssue>| {
        if value.len() > MAX_PARAMETER_BYTES {
            issues.push(issue_at(
                issue::INVALID_DCV_PARAMETER,
                format!(
                    "field `{}`: longer than {MAX_PARAMETER_BYTES} bytes",
                    field(name)
                ),
            ));
        }
    };

    // Which targets each method can prove control of.
    let wildcard_ok = matches!(
        params,
        P::AcmeDns01(_)
            | P::DnsChange(_)
            | P::DnsPersistent(_)
            | P::DnsAccount01(_)
            | P::ContactEmailTxt(_)
            | P::ContactPhoneTxt(_)
            | P::ContactEmailCaa(_)
            | P::ContactPhoneCaa(_)
            | P::IpAddress(_)
    );
    let ip_ok = matches!(
        params,
        P::WebsiteChange(_) | P::AcmeHttp01(_) | P::AcmeTlsAlpn01(_) | P::ReverseAddressLookup(_)
    );
    if target.is_wildcard() && !wildcard_ok {
        issues.push(issue_at(
            issue::INVALID_TARGET_FOR_METHOD,
            format!(
                "field `domain_or_ip_target`: a wildcard cannot be validated with {} (RFC 8555 8.3, BR 3.2.2.4)",
                method.as_str()
            ),
        ));
    }
    if matches!(target, Target::Ip(_)) && !ip_ok {
        issues.push(issue_at(
            issue::INVALID_TARGET_FOR_METHOD,
            format!(
                "field `domain_or_ip_target`: an IP address cannot be validated with {}, which needs a domain name",
                method.as_str()
            ),
        ));
    }

    match params {
        P::WebsiteChange(p) => {
            bounded("http_token_path", &p.http_token_path, &mut issues);
            bounded("challenge_value", &p.challenge_value, &mut issues);
            if p.challenge_value.is_empty() && p.match_regex.as_deref().unwrap_or("").is_empty() {
                issues.push(issue_at(
                    issue::EMPTY_CHALLENGE_VALUE,
                    "field `dcv_check_parameters.challenge_value`: empty, and no `match_regex` given".to_owned(),
                ));
            }
            if p.http_token_path.is_empty() {
                issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!("field `{}`: must not be empty", field("http_token_path")),
                ));
            }
            if let Err(e) = check_token_path(&p.http_token_path) {
                issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!("field `{}`: {e}", field("http_token_path")),
                ));
            }
            if let Some(r) = &p.match_regex {
                bounded("match_regex", r, &mut issues);
                if !r.is_empty()
                    && r.len() <= MAX_PARAMETER_BYTES
                    && let Err(e) = match_regex(r)
                {
                    issues.push(issue_at(
                        issue::INVALID_DCV_PARAMETER,
                        format!("field `{}`: {e}", field("match_regex")),
                    ));
                }
            }
            headers(p.http_headers.as_ref(), &mut issues);
        }
        P::AcmeHttp01(p) => {
            bounded("key_authorization", &p.key_authorization, &mut issues);
            if p.token.is_empty() || !p.token.bytes().all(is_base64url_byte) {
                issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!(
                        "field `{}`: an ACME token is non-empty base64url (RFC 8555 8.1)",
                        field("token")
                    ),
                ));
            }
            if p.key_authorization.is_empty() {
                issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!("field `{}`: must not be empty", field("key_authorization")),
                ));
            }
            headers(p.http_headers.as_ref(), &mut issues);
        }
        P::AcmeDns01(p) => {
            non_empty(
                "key_authorization_hash",
                &p.key_authorization_hash,
                &mut issues,
            );
            bounded(
                "key_authorization_hash",
                &p.key_authorization_hash,
                &mut issues,
            );
            fixed("_acme-challenge", &mut issues);
        }
        P::AcmeTlsAlpn01(p) => {
            if crate::digest::parse_sha256(&p.key_authorization_hash).is_none() {
                issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!(
                        "field `{}`: must be the SHA-256 digest of the key authorization as 64 hex digits (or 43 base64url characters)",
                        field("key_authorization_hash")
                    ),
                ));
            }
        }
        P::DnsChange(p) => {
            non_empty("challenge_value", &p.challenge_value, &mut issues);
            bounded("challenge_value", &p.challenge_value, &mut issues);
            prefix(&p.dns_name_prefix, &mut issues);
        }
        P::DnsPersistent(p) => {
            if p.issuer_domain_names.is_empty() {
                issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!(
                        "field `{}`: must not be empty",
                        field("issuer_domain_names")
                    ),
                ));
            }
            issuer_domains(
                "dcv_check_parameters.issuer_domain_names",
                &p.issuer_domain_names,
                issue::INVALID_DCV_PARAMETER,
                &mut issues,
            );
            if let Err(e) = check_uri(&p.expected_account_uri) {
                issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!("field `{}`: {e}", field("expected_account_uri")),
                ));
            }
            fixed("_validation-persist", &mut issues);
        }
        P::DnsAccount01(p) => {
            if let Err(e) = check_uri(&p.account_uri) {
                issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!("field `{}`: {e}", field("account_uri")),
                ));
            }
            non_empty(
                "key_authorization_hash",
                &p.key_authorization_hash,
                &mut issues,
            );
            bounded(
                "key_authorization_hash",
                &p.key_authorization_hash,
                &mut issues,
            );
            // The account label is always `_` and 16 base32 characters (BR 3.2.2.4.21).
            fixed_prefix(
                "_aaaaaaaaaaaaaaaa._acme-challenge",
                "_<account label>._acme-challenge",
                &mut issues,
            );
        }
        P::ContactEmailTxt(p) => {
            non_empty("challenge_value", &p.challenge_value, &mut issues);
            bounded("challenge_value", &p.challenge_value, &mut issues);
            fixed_prefix(
                "_validation-contactemail",
                "_validation-contactemail",
                &mut issues,
            );
        }
        P::ContactPhoneTxt(p) => {
            non_empty("challenge_value", &p.challenge_value, &mut issues);
            bounded("challenge_value", &p.challenge_value, &mut issues);
            fixed_prefix(
                "_validation-contactphone",
                "_validation-contactphone",
                &mut issues,
            );
        }
        P::ContactEmailCaa(p) | P::ContactPhoneCaa(p) => {
            non_empty("challenge_value", &p.challenge_value, &mut issues);
            bounded("challenge_value", &p.challenge_value, &mut issues);
            prefix(&p.dns_name_prefix, &mut issues);
        }
        P::IpAddress(p) => {
            match (p.challenge_value.parse::<IpAddr>(), p.dns_record_type) {
                (Ok(IpAddr::V4(_)), AddressRecordType::A)
                | (Ok(IpAddr::V6(_)), AddressRecordType::Aaaa) => {}
                (Ok(_), t) => issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!(
                        "field `{}`: the address family does not match dns_record_type {}",
                        field("challenge_value"),
                        if t == AddressRecordType::A {
                            "A"
                        } else {
                            "AAAA"
                        }
                    ),
                )),
                (Err(_), _) => issues.push(issue_at(
                    issue::INVALID_DCV_PARAMETER,
                    format!("field `{}`: not an IP address", field("challenge_value")),
                )),
            }
            prefix(&p.dns_name_prefix, &mut issues);
        }
        P::ReverseAddressLookup(p) => {
            non_empty("challenge_value", &p.challenge_value, &mut issues);
            bounded("challenge_value", &p.challenge_value, &mut issues);
            prefix(&p.dns_name_prefix, &mut issues);
        }
    }
    issues
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

fn issuer_domains(
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

fn non_empty(name: &str, value: &str, issues: &mut Vec<ValidationIssue>) {
    if value.is_empty() {
        issues.push(issue_at(
            issue::INVALID_DCV_PARAMETER,
            format!("field `dcv_check_parameters.{name}`: must not be empty"),
        ));
    }
}

fn headers(
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
fn check_uri(uri: &str) -> Result<(), String> {
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
fn check_token_path(path: &str) -> Result<(), String> {
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

fn is_base64url_byte(b: u8) -> bool {
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
