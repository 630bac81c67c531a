//! The domain-control methods' parameters and their rules (api.md section 1, the method
//! table): one file per method, each with its parameter type, its fixed names and the checks
//! its parameters must pass before any perspective runs it. Both services apply them (the
//! coordinator before fanning out, each perspective again at its edge), so a request the API
//! forbids is refused with the same words everywhere. The checks themselves — the lookups,
//! fetches and handshakes and the judgement of what they find — are the perspective's
//! (`perspective/src/dcv/`).
//!
//! Adding a method: its file here (parameters, [`MethodRules`]), its variant in
//! [`crate::api::DcvCheckParameters`] and [`crate::api::ValidationMethod`] (and the one
//! dispatch in [`check`]), and its check in the perspective.

pub mod acme_dns01;
pub mod acme_http01;
pub mod acme_tls_alpn01;
pub mod contact;
pub mod dns_account01;
pub mod dns_change;
pub mod dns_persistent;
pub mod ip_address;
pub mod reverse_address_lookup;
pub mod website_change;

use crate::api::{DcvCheckParameters, ValidationIssue, ValidationMethod};
use crate::target::{Target, TargetError, parse_name_prefix, prefixed_name, reverse_name};
use crate::validate::{MAX_PARAMETER_BYTES, issue, issue_at};

/// What a method's parameters must satisfy.
pub trait MethodRules {
    /// The method.
    const METHOD: ValidationMethod;
    /// Whether a wildcard target can be validated (its base domain is).
    const WILDCARD_OK: bool;
    /// Whether an IP address target can be validated.
    const IP_OK: bool;
    /// Whether the name queried for an IP target is its reverse name (RFC 1035 3.5, RFC 3596
    /// 2.5).
    const REVERSE_NAME_OF_IP: bool = false;

    /// Adds every issue of these parameters to `checks`.
    fn check(&self, checks: &mut Checks);
}

/// The issues of `params` for `target`, each naming the field; empty when usable.
pub fn check(target: &Target, params: &DcvCheckParameters) -> Vec<ValidationIssue> {
    use DcvCheckParameters as P;
    match params {
        P::WebsiteChange(p) => Checks::run(target, p),
        P::AcmeHttp01(p) => Checks::run(target, p),
        P::AcmeDns01(p) => Checks::run(target, p),
        P::AcmeTlsAlpn01(p) => Checks::run(target, p),
        P::DnsChange(p) => Checks::run(target, p),
        P::DnsPersistent(p) => Checks::run(target, p),
        P::DnsAccount01(p) => Checks::run(target, p),
        P::ContactEmailTxt(p) => Checks::run(target, p),
        P::ContactPhoneTxt(p) => Checks::run(target, p),
        P::ContactEmailCaa(p) => Checks::run(target, &contact::Email(p)),
        P::ContactPhoneCaa(p) => Checks::run(target, &contact::Phone(p)),
        P::IpAddress(p) => Checks::run(target, p),
        P::ReverseAddressLookup(p) => Checks::run(target, p),
    }
}

/// The issues found so far, and what the rules share: bounds, prefixes, URIs, headers.
#[derive(Debug)]
pub struct Checks {
    /// The name a DNS method's prefix goes in front of: the target's name, or the reverse
    /// name of an IP target for methods that query it.
    base: Option<String>,
    issues: Vec<ValidationIssue>,
}

impl Checks {
    fn run<M: MethodRules>(target: &Target, params: &M) -> Vec<ValidationIssue> {
        let base = match target {
            Target::Domain(d) => Some(d.name().to_owned()),
            Target::Ip(ip) if M::REVERSE_NAME_OF_IP => Some(reverse_name(*ip)),
            Target::Ip(_) => None,
        };
        let mut checks = Checks {
            base,
            issues: Vec::new(),
        };
        let method = M::METHOD.as_str();
        if target.is_wildcard() && !M::WILDCARD_OK {
            checks.push(
                issue::INVALID_TARGET_FOR_METHOD,
                format!(
                    "field `domain_or_ip_target`: a wildcard cannot be validated with {method} (RFC 8555 8.3, BR 3.2.2.4)"
                ),
            );
        }
        if matches!(target, Target::Ip(_)) && !M::IP_OK {
            checks.push(
                issue::INVALID_TARGET_FOR_METHOD,
                format!(
                    "field `domain_or_ip_target`: an IP address cannot be validated with {method}, which needs a domain name"
                ),
            );
        }
        params.check(&mut checks);
        checks.issues
    }

    /// Adds an issue.
    pub fn push(&mut self, issue_type: &str, message: impl Into<String>) {
        self.issues.push(issue_at(issue_type, message));
    }

    /// Adds an `invalid-dcv-parameter` issue about `dcv_check_parameters.<name>`.
    pub fn field(&mut self, name: &str, problem: impl std::fmt::Display) {
        self.push(
            issue::INVALID_DCV_PARAMETER,
            format!("field `dcv_check_parameters.{name}`: {problem}"),
        );
    }

    /// `value` must not be empty.
    pub fn non_empty(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            self.field(name, "must not be empty");
        }
    }

    /// `value` must fit [`MAX_PARAMETER_BYTES`].
    pub fn bounded(&mut self, name: &str, value: &str) {
        if value.len() > MAX_PARAMETER_BYTES {
            self.field(
                name,
                format_args!("longer than {MAX_PARAMETER_BYTES} bytes"),
            );
        }
    }

    /// A `dns_name_prefix` the request chose: valid labels, and the name built with it fits
    /// in 253 octets (RFC 1035 §2.3.4). An empty prefix is no prefix, as the reference treats
    /// it.
    pub fn prefix(&mut self, value: Option<&str>) {
        let Some(p) = value.filter(|p| !p.is_empty()) else {
            return;
        };
        match parse_name_prefix(p) {
            Err(e) => self.field("dns_name_prefix", e),
            Ok(_) => self.fits(
                p,
                p,
                "dcv_check_parameters.dns_name_prefix",
                issue::INVALID_DCV_PARAMETER,
            ),
        }
    }

    /// A method's own fixed prefix (shown as `shown`): when the name built with it does not
    /// fit, the target is what is too long.
    pub fn fixed_prefix(&mut self, prefix: &str, shown: &str) {
        self.fits(
            prefix,
            shown,
            "domain_or_ip_target",
            issue::INVALID_TARGET_FOR_METHOD,
        );
    }

    fn fits(&mut self, prefix: &str, shown: &str, field_name: &str, issue_type: &str) {
        if let Some(base) = &self.base
            && let Err(TargetError::TooLong { len }) = prefixed_name(prefix, base)
        {
            self.push(
                issue_type,
                format!(
                    "field `{field_name}`: with `{shown}.` in front of the target, the name to query is {len} octets long; the limit is 253 (RFC 1035 §2.3.4)"
                ),
            );
        }
    }

    /// A URI field ([`crate::validate::check_uri`]).
    pub fn uri(&mut self, name: &str, value: &str) {
        if let Err(e) = crate::validate::check_uri(value) {
            self.field(name, e);
        }
    }

    /// The request headers of an HTTP method ([`crate::validate::check_headers`]).
    pub fn headers(&mut self, headers: Option<&std::collections::BTreeMap<String, String>>) {
        crate::validate::check_headers(headers, &mut self.issues);
    }

    /// A list of issuer domain names ([`crate::validate::check_issuer_domains`]).
    pub fn issuer_domains(&mut self, name: &str, names: &[String]) {
        crate::validate::check_issuer_domains(
            &format!("dcv_check_parameters.{name}"),
            names,
            issue::INVALID_DCV_PARAMETER,
            &mut self.issues,
        );
    }
}
