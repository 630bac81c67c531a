//! The wire contract of `docs/api.md`: the Open MPIC API 3.9.0 as the reference implementation
//! (`open-mpic-core` 6.x) emits it, plus our additive extensions.
//!
//! These types describe JSON only. They accept what either the published spec or the reference
//! accepts (api.md section 4) and serialise what the reference emits: every key, `null` where
//! empty — except `errors`, which is `[]` when empty, as the published spec types it (the
//! reference sends `null` there, and is still understood). Semantic checks that serde cannot express (targets, counts, prefixes, digests) live in
//! [`crate::validate`], which turns these shapes into typed values before any check runs.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `check_type`: which family of check a request or response is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// CAA (BR 3.2.2.8). The default when a request omits `check_type` (reference behaviour).
    #[default]
    Caa,
    /// Domain or IP control validation (BR 3.2.2.4 / 3.2.2.5).
    Dcv,
}

impl CheckType {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Caa => "caa",
            CheckType::Dcv => "dcv",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Coordinator request: POST /mpic
// ---------------------------------------------------------------------------------------------

/// The body of `POST /mpic` as it arrives on the wire (api.md section 1).
///
/// `check_type` may be missing (then `caa`); which of the parameter objects is required depends
/// on it, which [`crate::validate`] enforces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpicRequest {
    /// `caa` or `dcv`; `null` or absent means `caa`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub check_type: CheckType,
    /// FQDN, wildcard (`*.`), IPv4 or IPv6 literal (`[v6]` accepted).
    pub domain_or_ip_target: String,
    /// Opaque, echoed back and forwarded to the perspectives.
    #[serde(default)]
    pub trace_identifier: Option<String>,
    /// Cohort size, quorum and attempts.
    #[serde(default)]
    pub orchestration_parameters: Option<OrchestrationParameters>,
    /// CAA only.
    #[serde(default)]
    pub caa_check_parameters: Option<CaaCheckParameters>,
    /// DCV only, required there.
    #[serde(default)]
    pub dcv_check_parameters: Option<DcvCheckParameters>,
}

/// `orchestration_parameters`. Integers are signed on the wire so that out-of-range values
/// reach validation and get a precise message instead of a type error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OrchestrationParameters {
    /// Cohort size n.
    #[serde(default)]
    pub perspective_count: Option<i64>,
    /// Passes required; default from the BR table.
    #[serde(default)]
    pub quorum_count: Option<i64>,
    /// Attempts over successive cohorts; ≤ 0 or null means 1.
    #[serde(default)]
    pub max_attempts: Option<i64>,
    /// 1-based index of the only cohort to try.
    #[serde(default)]
    pub cohort_for_single_attempt: Option<i64>,
}

/// `actual_orchestration_parameters` of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActualOrchestrationParameters {
    /// Cohort size used.
    pub perspective_count: u32,
    /// Quorum applied.
    pub quorum_count: u32,
    /// 1-based number of the attempt whose results are returned.
    pub attempt_count: u32,
}

/// `caa_check_parameters` (api.md section 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CaaCheckParameters {
    /// `tls-server` (default) or `s-mime`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub certificate_type: CertificateType,
    /// Issuer domain names that identify this CA; null or empty: the perspective's default.
    #[serde(default)]
    pub caa_domains: Option<Vec<String>>,
    /// Whether a lookup failure may count as permission (only with a retry and a proof of
    /// DNSSEC insecurity, requirements.md "CAA").
    #[serde(default, deserialize_with = "null_as_default")]
    pub allow_lookup_failure: bool,
    /// *Extension*: RFC 8657 `accounturi` to match.
    #[serde(default)]
    pub account_uri: Option<String>,
    /// *Extension*: RFC 8657 validation method label to match.
    #[serde(default)]
    pub validation_method: Option<String>,
}

/// `certificate_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum CertificateType {
    /// A TLS server certificate: `issue` / `issuewild` govern.
    #[default]
    #[serde(rename = "tls-server")]
    TlsServer,
    /// An S/MIME certificate: `issuemail` governs (RFC 9495).
    #[serde(rename = "s-mime")]
    SMime,
}

/// `dcv_check_parameters`: one variant per `validation_method`, each with its own fields
/// (api.md section 1, the method table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "validation_method")]
pub enum DcvCheckParameters {
    /// BR 3.2.2.4.18 / 3.2.2.5.1.
    #[serde(rename = "website-change")]
    WebsiteChange(WebsiteChangeParameters),
    /// BR 3.2.2.4.19 / 3.2.2.5.6, RFC 8555 8.3.
    #[serde(rename = "acme-http-01")]
    AcmeHttp01(AcmeHttp01Parameters),
    /// BR 3.2.2.4.7 through ACME, RFC 8555 8.4.
    #[serde(rename = "acme-dns-01")]
    AcmeDns01(AcmeDns01Parameters),
    /// BR 3.2.2.4.20 / 3.2.2.5.7, RFC 8737.
    #[serde(rename = "acme-tls-alpn-01")]
    AcmeTlsAlpn01(AcmeTlsAlpn01Parameters),
    /// BR 3.2.2.4.7.
    #[serde(rename = "dns-change")]
    DnsChange(DnsChangeParameters),
    /// BR 3.2.2.4.22.
    #[serde(rename = "dns-persistent")]
    DnsPersistent(DnsPersistentParameters),
    /// *Extension*: BR 3.2.2.4.21.
    #[serde(rename = "dns-account-01")]
    DnsAccount01(DnsAccount01Parameters),
    /// BR 3.2.2.4.14.
    #[serde(rename = "contact-email-txt")]
    ContactEmailTxt(ContactTxtParameters<EmailTxtPrefix>),
    /// BR 3.2.2.4.16.
    #[serde(rename = "contact-phone-txt")]
    ContactPhoneTxt(ContactTxtParameters<PhoneTxtPrefix>),
    /// BR 3.2.2.4.13.
    #[serde(rename = "contact-email-caa")]
    ContactEmailCaa(ContactCaaParameters),
    /// BR 3.2.2.4.17.
    #[serde(rename = "contact-phone-caa")]
    ContactPhoneCaa(ContactCaaParameters),
    /// BR 3.2.2.4.8 (retired 2026-03-15; kept for compatibility).
    #[serde(rename = "ip-address")]
    IpAddress(IpAddressParameters),
    /// BR 3.2.2.5.3.
    #[serde(rename = "reverse-address-lookup")]
    ReverseAddressLookup(ReverseAddressLookupParameters),
}

/// Read by hand rather than derived: serde's internally tagged enums lose the path of an
/// error inside the variant, and a 400 must name the field (api.md "Other statuses").
impl<'de> Deserialize<'de> for DcvCheckParameters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let method = map
            .remove("validation_method")
            .ok_or_else(|| D::Error::missing_field("validation_method"))?;
        let method: ValidationMethod = serde_json::from_value(method)
            .map_err(|e| D::Error::custom(format!("in `validation_method`: {e}")))?;
        fn fields<T: serde::de::DeserializeOwned>(
            map: serde_json::Map<String, serde_json::Value>,
        ) -> Result<T, String> {
            serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    e.into_inner().to_string()
                } else {
                    format!("in `{path}`: {}", e.into_inner())
                }
            })
        }
        use DcvCheckParameters as P;
        use ValidationMethod as M;
        let parsed = match method {
            M::WebsiteChange => fields(map).map(P::WebsiteChange),
            M::AcmeHttp01 => fields(map).map(P::AcmeHttp01),
            M::AcmeDns01 => fields(map).map(P::AcmeDns01),
            M::AcmeTlsAlpn01 => fields(map).map(P::AcmeTlsAlpn01),
            M::DnsChange => fields(map).map(P::DnsChange),
            M::DnsPersistent => fields(map).map(P::DnsPersistent),
            M::DnsAccount01 => fields(map).map(P::DnsAccount01),
            M::ContactEmailTxt => fields(map).map(P::ContactEmailTxt),
            M::ContactPhoneTxt => fields(map).map(P::ContactPhoneTxt),
            M::ContactEmailCaa => fields(map).map(P::ContactEmailCaa),
            M::ContactPhoneCaa => fields(map).map(P::ContactPhoneCaa),
            M::IpAddress => fields(map).map(P::IpAddress),
            M::ReverseAddressLookup => fields(map).map(P::ReverseAddressLookup),
        };
        parsed.map_err(D::Error::custom)
    }
}

/// The validation methods, as named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValidationMethod {
    /// `website-change`
    #[serde(rename = "website-change")]
    WebsiteChange,
    /// `acme-http-01`
    #[serde(rename = "acme-http-01")]
    AcmeHttp01,
    /// `acme-dns-01`
    #[serde(rename = "acme-dns-01")]
    AcmeDns01,
    /// `acme-tls-alpn-01`
    #[serde(rename = "acme-tls-alpn-01")]
    AcmeTlsAlpn01,
    /// `dns-change`
    #[serde(rename = "dns-change")]
    DnsChange,
    /// `dns-persistent`
    #[serde(rename = "dns-persistent")]
    DnsPersistent,
    /// `dns-account-01`
    #[serde(rename = "dns-account-01")]
    DnsAccount01,
    /// `contact-email-txt`
    #[serde(rename = "contact-email-txt")]
    ContactEmailTxt,
    /// `contact-phone-txt`
    #[serde(rename = "contact-phone-txt")]
    ContactPhoneTxt,
    /// `contact-email-caa`
    #[serde(rename = "contact-email-caa")]
    ContactEmailCaa,
    /// `contact-phone-caa`
    #[serde(rename = "contact-phone-caa")]
    ContactPhoneCaa,
    /// `ip-address`
    #[serde(rename = "ip-address")]
    IpAddress,
    /// `reverse-address-lookup`
    #[serde(rename = "reverse-address-lookup")]
    ReverseAddressLookup,
}

impl ValidationMethod {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationMethod::WebsiteChange => "website-change",
            ValidationMethod::AcmeHttp01 => "acme-http-01",
            ValidationMethod::AcmeDns01 => "acme-dns-01",
            ValidationMethod::AcmeTlsAlpn01 => "acme-tls-alpn-01",
            ValidationMethod::DnsChange => "dns-change",
            ValidationMethod::DnsPersistent => "dns-persistent",
            ValidationMethod::DnsAccount01 => "dns-account-01",
            ValidationMethod::ContactEmailTxt => "contact-email-txt",
            ValidationMethod::ContactPhoneTxt => "contact-phone-txt",
            ValidationMethod::ContactEmailCaa => "contact-email-caa",
            ValidationMethod::ContactPhoneCaa => "contact-phone-caa",
            ValidationMethod::IpAddress => "ip-address",
            ValidationMethod::ReverseAddressLookup => "reverse-address-lookup",
        }
    }

    /// Which details shape a response for this method carries.
    pub fn family(self) -> MethodFamily {
        match self {
            ValidationMethod::WebsiteChange | ValidationMethod::AcmeHttp01 => MethodFamily::Http,
            ValidationMethod::AcmeTlsAlpn01 => MethodFamily::TlsAlpn,
            _ => MethodFamily::Dns,
        }
    }
}

/// The three details shapes of DCV responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodFamily {
    /// DNS record lookups.
    Dns,
    /// HTTP fetches.
    Http,
    /// A TLS handshake with ALPN `acme-tls/1`.
    TlsAlpn,
}

impl DcvCheckParameters {
    /// The method this parameter set belongs to.
    pub fn method(&self) -> ValidationMethod {
        match self {
            DcvCheckParameters::WebsiteChange(_) => ValidationMethod::WebsiteChange,
            DcvCheckParameters::AcmeHttp01(_) => ValidationMethod::AcmeHttp01,
            DcvCheckParameters::AcmeDns01(_) => ValidationMethod::AcmeDns01,
            DcvCheckParameters::AcmeTlsAlpn01(_) => ValidationMethod::AcmeTlsAlpn01,
            DcvCheckParameters::DnsChange(_) => ValidationMethod::DnsChange,
            DcvCheckParameters::DnsPersistent(_) => ValidationMethod::DnsPersistent,
            DcvCheckParameters::DnsAccount01(_) => ValidationMethod::DnsAccount01,
            DcvCheckParameters::ContactEmailTxt(_) => ValidationMethod::ContactEmailTxt,
            DcvCheckParameters::ContactPhoneTxt(_) => ValidationMethod::ContactPhoneTxt,
            DcvCheckParameters::ContactEmailCaa(_) => ValidationMethod::ContactEmailCaa,
            DcvCheckParameters::ContactPhoneCaa(_) => ValidationMethod::ContactPhoneCaa,
            DcvCheckParameters::IpAddress(_) => ValidationMethod::IpAddress,
            DcvCheckParameters::ReverseAddressLookup(_) => ValidationMethod::ReverseAddressLookup,
        }
    }
}

pub use crate::dcv::acme_dns01::AcmeDns01Parameters;
pub use crate::dcv::acme_http01::AcmeHttp01Parameters;
pub use crate::dcv::acme_tls_alpn01::AcmeTlsAlpn01Parameters;
pub use crate::dcv::contact::{ContactCaaParameters, ContactTxtParameters};
pub use crate::dcv::dns_account01::DnsAccount01Parameters;
pub use crate::dcv::dns_change::{DnsChangeParameters, DnsChangeRecordType};
pub use crate::dcv::dns_persistent::DnsPersistentParameters;
pub use crate::dcv::ip_address::{AddressRecordType, IpAddressParameters};
pub use crate::dcv::reverse_address_lookup::ReverseAddressLookupParameters;
pub use crate::dcv::website_change::{UrlScheme, WebsiteChangeParameters};

// ---------------------------------------------------------------------------------------------
// Fixed fields: "Fixed fields may be omitted; a different value is a 400" (api.md section 1).
// ---------------------------------------------------------------------------------------------

/// A string field whose only legal value is `V::VALUE`: absent or `null` means that value,
/// anything else is a deserialisation error naming the expected value. Always serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed<V>(std::marker::PhantomData<V>);

impl<V> Default for Fixed<V> {
    fn default() -> Self {
        Fixed(std::marker::PhantomData)
    }
}

/// The one legal value of a [`Fixed`] field.
pub trait FixedValue {
    /// The value on the wire.
    const VALUE: &'static str;
    /// Whether a different ASCII case is accepted (true for DNS names).
    const CASE_INSENSITIVE: bool = false;
}

macro_rules! fixed_values {
    ($($(#[$doc:meta])* $name:ident = $value:literal, $ci:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;
        impl FixedValue for $name {
            const VALUE: &'static str = $value;
            const CASE_INSENSITIVE: bool = $ci;
        }
    )*};
}

fixed_values! {
    /// `TXT`.
    TxtType = "TXT", false;
    /// `CAA`.
    CaaType = "CAA", false;
    /// `PTR`.
    PtrType = "PTR", false;
    /// `_acme-challenge` (RFC 8555 8.4).
    AcmeChallengePrefix = "_acme-challenge", true;
    /// `_validation-persist` (BR 3.2.2.4.22).
    PersistPrefix = "_validation-persist", true;
    /// `_validation-contactemail` (BR 3.2.2.4.14).
    EmailTxtPrefix = "_validation-contactemail", true;
    /// `_validation-contactphone` (BR 3.2.2.4.16).
    PhoneTxtPrefix = "_validation-contactphone", true;
}

impl<V: FixedValue> Serialize for Fixed<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(V::VALUE)
    }
}

impl<'de, V: FixedValue> Deserialize<'de> for Fixed<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let given: Option<String> = Option::deserialize(deserializer)?;
        match given {
            None => Ok(Fixed(std::marker::PhantomData)),
            Some(s)
                if s == V::VALUE || (V::CASE_INSENSITIVE && s.eq_ignore_ascii_case(V::VALUE)) =>
            {
                Ok(Fixed(std::marker::PhantomData))
            }
            Some(s) => Err(serde::de::Error::custom(format!(
                "must be \"{}\" for this validation method, got \"{}\"",
                V::VALUE,
                crate::text::truncate_for_echo(&s, 64)
            ))),
        }
    }
}

/// A boolean field fixed at `true` (`require_exact_case` of `acme-http-01`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FixedTrue;

impl Serialize for FixedTrue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(true)
    }
}

impl<'de> Deserialize<'de> for FixedTrue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<bool>::deserialize(deserializer)? {
            None | Some(true) => Ok(FixedTrue),
            Some(false) => Err(serde::de::Error::custom(
                "must be true for this validation method",
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Perspective requests: POST /caa, POST /dcv (api.md section 2)
// ---------------------------------------------------------------------------------------------

/// Body of a perspective's `POST /caa`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaaPerspectiveRequest {
    /// The target as the coordinator received it (normalised again by the perspective).
    pub domain_or_ip_target: String,
    /// Forwarded for logs and traces.
    #[serde(default)]
    pub trace_identifier: Option<String>,
    /// CAA parameters; null means defaults.
    #[serde(default)]
    pub caa_check_parameters: Option<CaaCheckParameters>,
}

/// Body of a perspective's `POST /dcv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcvPerspectiveRequest {
    /// The target as the coordinator received it.
    pub domain_or_ip_target: String,
    /// Forwarded for logs and traces.
    #[serde(default)]
    pub trace_identifier: Option<String>,
    /// The method and its fields.
    pub dcv_check_parameters: DcvCheckParameters,
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// One perspective's answer (api.md section 1, `CheckResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResponse {
    /// `caa` or `dcv`.
    pub check_type: CheckType,
    /// Finished without error.
    pub check_completed: bool,
    /// The check found permission / control.
    pub check_passed: bool,
    /// What went wrong; `[]` when nothing did. Always an array on output, as the Open MPIC
    /// OpenAPI document types it (non-nullable); `null` is still read as `[]`, because the
    /// reference (and a perspective of an older version of this service) sends it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<MpicError>,
    /// Epoch nanoseconds at completion.
    pub timestamp_ns: u64,
    /// Check-specific details.
    pub details: CheckDetails,
}

/// Nanoseconds since the Unix epoch, as `timestamp_ns` carries them.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `{error_type, error_message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpicError {
    /// One of [`error_type`]'s strings.
    pub error_type: String,
    /// Human-readable, bounded, valid UTF-8.
    pub error_message: String,
}

impl MpicError {
    /// An error with a message truncated to [`crate::text::MAX_ERROR_MESSAGE_BYTES`].
    pub fn new(error_type: &str, message: impl AsRef<str>) -> Self {
        MpicError {
            error_type: error_type.to_owned(),
            error_message: crate::text::truncate_for_echo(
                message.as_ref(),
                crate::text::MAX_ERROR_MESSAGE_BYTES,
            ),
        }
    }
}

/// The error-type strings of api.md (exact). New failure kinds get new strings of the same form.
pub mod error_type {
    /// A CAA lookup failed (SERVFAIL, REFUSED, timeout, malformed answer).
    pub const CAA_LOOKUP: &str = "mpic_error:caa_checker:lookup";
    /// *New*: a CAA lookup failed DNSSEC validation (the resolver's EDE in the message).
    pub const CAA_DNSSEC: &str = "mpic_error:caa_checker:dnssec";
    /// A DCV lookup found nothing or failed.
    pub const DCV_LOOKUP: &str = "mpic_error:dcv_checker:lookup";
    /// *New*: a DCV lookup failed DNSSEC validation.
    pub const DCV_DNSSEC: &str = "mpic_error:dcv_checker:dnssec";
    /// A DCV parameter the check could not use.
    pub const DCV_PARAMETER: &str = "mpic_error:dcv_checker:parameter";
    /// A perspective call failed (timeout, refused, non-200, unparsable, wrong identity).
    pub const COORDINATOR_REMOTE_CHECK: &str = "mpic_error:coordinator:remote_check";
    /// Communication with a perspective failed.
    pub const COORDINATOR_COMMUNICATION: &str = "mpic_error:coordinator:communication";
    /// An HTTP fetch failed or answered wrongly.
    pub const HTTP: &str = "mpic_error:http";
    /// A redirect broke the redirect policy.
    pub const REDIRECT_INVALID: &str = "mpic_error:redirect:invalid";
    /// No cohort could be built.
    pub const COORDINATOR_COHORT: &str = "mpic_error:coordinator:cohort";
    /// The requested cohort could not be selected.
    pub const COORDINATOR_COHORT_SELECTION: &str = "mpic_error:coordinator:cohort_selection";
    /// Prefix of the TLS-ALPN certificate errors.
    pub const TLS_ALPN_CERTIFICATE_PREFIX: &str = "mpic_error:dcv_checker:tls_alpn:certificate:";
    /// *New*: a TLS-ALPN check could not connect or complete its handshake (the reference
    /// reports these as lookup errors).
    pub const TLS_ALPN_CONNECTION: &str = "mpic_error:dcv_checker:tls_alpn:connection";

    /// The TLS-ALPN certificate rules (api.md; the last six are *new*, of the same form).
    pub mod tls_alpn_certificate {
        /// No subjectAltName or no acmeIdentifier extension.
        pub const EXTENSION_MISSING: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:extension_missing";
        /// The acmeIdentifier extension is not critical.
        pub const NONCRITICAL_ALPN_EXTENSION: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:noncritical_alpn_extension";
        /// Not exactly one subjectAltName entry.
        pub const NO_SINGLE_SAN: &str = "mpic_error:dcv_checker:tls_alpn:certificate:no_single_san";
        /// A domain target whose one SAN is not a dNSName.
        pub const SAN_NOT_DNSNAME: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:san_not_dnsname";
        /// An IP target whose one SAN is not an iPAddress.
        pub const SAN_TYPE_NOT_MATCH: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:san_type_not_match";
        /// The one SAN names something else than the target.
        pub const SAN_NOT_HOSTNAME: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:san_not_hostname";
        /// *New*: the acmeIdentifier holds another digest than the request's.
        pub const DIGEST_MISMATCH: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:digest_mismatch";
        /// *New*: the acmeIdentifier value is not a DER OCTET STRING of 32 bytes.
        pub const MALFORMED_ALPN_EXTENSION: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:malformed_alpn_extension";
        /// *New*: the server did not negotiate `acme-tls/1`.
        pub const ALPN_NOT_NEGOTIATED: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:alpn_not_negotiated";
        /// *New*: the certificate is not a parsable X.509 certificate.
        pub const UNPARSABLE: &str = "mpic_error:dcv_checker:tls_alpn:certificate:unparsable";
        /// *New*: the certificate's issuer is not its subject (RFC 8737 section 3: the
        /// certificate is self-signed).
        pub const ISSUER_NOT_SUBJECT: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:issuer_not_subject";
        /// *New*: the certificate's signature does not verify with its own public key (RFC 8737
        /// section 3: the certificate is self-signed).
        pub const SELF_SIGNATURE_INVALID: &str =
            "mpic_error:dcv_checker:tls_alpn:certificate:self_signature_invalid";
    }
}

/// `details`, by check. Untagged: each shape denies unknown fields and has required keys, so
/// exactly one matches a well-formed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CheckDetails {
    /// CAA.
    Caa(CaaDetails),
    /// DNS-based DCV.
    Dns(DnsDetails),
    /// HTTP-based DCV.
    Http(HttpDetails),
    /// TLS-ALPN-01.
    TlsAlpn(TlsAlpnDetails),
}

/// CAA details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CaaDetails {
    /// Whether a relevant RRset exists; null on error.
    pub caa_record_present: Option<bool>,
    /// Owner name of the relevant RRset, no trailing dot.
    pub found_at: Option<String>,
    /// Presentation strings such as `0 issue "ca.example"`.
    pub records_seen: Option<Vec<String>>,
    /// *Extension*: the resolver's AD flag on the relevant answer.
    pub ad_flag: Option<bool>,
    /// *Extension*: machine-readable reason for the outcome (see `CaaReason` in the
    /// perspective), e.g. `issuer-not-listed`.
    pub reason: Option<String>,
    /// *Extension*: on a lookup failure, which conditions of the lookup-failure rule held.
    pub lookup_failure: Option<LookupFailureReport>,
}

/// Which conditions of the lookup-failure rule held (requirements.md "CAA").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LookupFailureReport {
    /// The request set `allow_lookup_failure`.
    pub allow_lookup_failure: bool,
    /// The failed lookup was retried and failed again.
    pub retried: bool,
    /// The zone was proven DNSSEC-insecure (RFC 4035 4.3).
    pub dnssec_insecure: bool,
    /// All three held, so the failure was treated as permission.
    pub treated_as_permission: bool,
}

/// DNS-based DCV details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsDetails {
    /// The method.
    pub validation_method: ValidationMethod,
    /// Records as strings (TXT: concatenated character-strings).
    pub records_seen: Option<Vec<String>>,
    /// DNS rcode.
    pub response_code: Option<u16>,
    /// The resolver's AD flag.
    pub ad_flag: Option<bool>,
    /// Queried name, no trailing dot.
    pub found_at: Option<String>,
    /// CNAME targets followed, with trailing dots.
    pub cname_chain: Option<Vec<String>>,
}

/// HTTP-based DCV details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpDetails {
    /// The method.
    pub validation_method: ValidationMethod,
    /// Each redirect: its status and `Location` value.
    pub response_history: Option<Vec<RedirectResponse>>,
    /// The original challenge URL (reference behaviour).
    pub response_url: Option<String>,
    /// Status of the final response.
    pub response_status_code: Option<u16>,
    /// base64 of the start of the body.
    pub response_page: Option<String>,
    /// *Extension*: the URL of the final response.
    pub final_url: Option<String>,
    /// *Extension*: the address dialled.
    pub resolved_ip: Option<String>,
}

/// One redirect hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectResponse {
    /// 301, 302, 307 or 308.
    pub status_code: u16,
    /// The `Location` value.
    pub url: String,
}

/// TLS-ALPN-01 details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsAlpnDetails {
    /// The method.
    pub validation_method: ValidationMethod,
    /// Subject CN of the presented certificate.
    pub common_name: Option<String>,
    /// *Extension*: the address dialled.
    pub resolved_ip: Option<String>,
}

impl CheckDetails {
    /// Empty details of the right shape for a DCV method, used when a check could not run.
    pub fn empty_for(method: ValidationMethod) -> CheckDetails {
        match method.family() {
            MethodFamily::Dns => CheckDetails::Dns(DnsDetails {
                validation_method: method,
                records_seen: None,
                response_code: None,
                ad_flag: None,
                found_at: None,
                cname_chain: None,
            }),
            MethodFamily::Http => CheckDetails::Http(HttpDetails {
                validation_method: method,
                response_history: None,
                response_url: None,
                response_status_code: None,
                response_page: None,
                final_url: None,
                resolved_ip: None,
            }),
            MethodFamily::TlsAlpn => CheckDetails::TlsAlpn(TlsAlpnDetails {
                validation_method: method,
                common_name: None,
                resolved_ip: None,
            }),
        }
    }
}

/// `{"perspective_code": …, "check_response": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerspectiveResult {
    /// The perspective's configured code.
    pub perspective_code: String,
    /// Its answer, or a failed entry made by the coordinator.
    pub check_response: CheckResponse,
    /// *Extension*: the perspective's RIR, as configured.
    #[serde(default)]
    pub rir: Option<crate::config::Rir>,
    /// *Extension*: milliseconds from the attempt's start to this perspective's answer; null
    /// when it did not answer (cancelled or out of time).
    #[serde(default)]
    pub latency_ms: Option<u64>,
}

/// The body of a `POST /mpic` 200 response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpicResponse {
    /// Failures (not completed) ≤ n − quorum.
    pub mpic_completed: bool,
    /// Echo of the request's object.
    pub request_orchestration_parameters: Option<OrchestrationParameters>,
    /// What was used.
    pub actual_orchestration_parameters: Option<ActualOrchestrationParameters>,
    /// Echo.
    pub check_type: CheckType,
    /// Echo.
    pub domain_or_ip_target: String,
    /// Echo.
    pub trace_identifier: Option<String>,
    /// The corroboration verdict (api.md section 3).
    pub is_valid: bool,
    /// Echo of the parameters as parsed, defaults filled in.
    #[serde(flatten)]
    pub parameters: EchoedParameters,
    /// The returned attempt's perspectives.
    pub perspectives: Vec<PerspectiveResult>,
    /// Earlier attempts, oldest first.
    pub previous_attempt_results: Option<Vec<Vec<PerspectiveResult>>>,
    /// *Extension*: `"passed/attempted"`, the BR 5.4.1 log form.
    pub quorum_result: String,
    /// *Extension*: the dated BR rules this request breaks that the coordinator did not
    /// enforce (`policy: warn`, or an exception of its configuration); `[]` when none.
    #[serde(default)]
    pub warnings: Vec<RuleWarning>,
}

/// *Extension*: a dated BR rule a served request breaks (an item of `warnings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleWarning {
    /// The rule: `retired-validation-method` or `minimum-perspectives`.
    pub warning_type: String,
    /// The BR section of the rule, e.g. `3.2.2.4.8`.
    pub br_section: String,
    /// The day (`YYYY-MM-DD`, UTC) from which the rule applies.
    pub effective_date: String,
    /// What the request does against the rule and why it was served.
    pub message: String,
}

/// The parameter echo: `caa_check_parameters` for CAA, `dcv_check_parameters` for DCV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EchoedParameters {
    /// CAA.
    #[serde(rename = "caa_check_parameters")]
    Caa(CaaCheckParameters),
    /// DCV.
    #[serde(rename = "dcv_check_parameters")]
    Dcv(DcvCheckParameters),
}

/// The body of every 400 (api.md "Other statuses").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationFailure {
    /// Always `request-validation-failed`.
    pub error: String,
    /// What is wrong, each naming the field.
    pub validation_issues: Vec<ValidationIssue>,
}

/// One problem with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationIssue {
    /// Kebab-case kind, e.g. `invalid-perspective-count`.
    pub issue_type: String,
    /// Human-readable, names the field.
    pub message: String,
}

/// The body of 401, 413, 415, 500 and 503 (api.md "Other statuses").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// `unauthorized`, `overloaded`, …
    pub error: String,
}

// ---------------------------------------------------------------------------------------------
// serde helpers
// ---------------------------------------------------------------------------------------------

/// `null` and absent both mean the default (api.md: "`null` accepted as default").
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

pub(crate) fn null_as_true<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(true))
}

pub(crate) fn default_true() -> bool {
    true
}
