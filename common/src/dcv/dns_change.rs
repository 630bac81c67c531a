//! `dns-change`: BR 3.2.2.4.7. The CA's random value in a CNAME, TXT or CAA record at the
//! domain (or a prefixed name).

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::{ValidationMethod, default_true, null_as_default, null_as_true};

/// `dns-change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsChangeParameters {
    /// The value to find.
    pub challenge_value: String,
    /// `CNAME`, `TXT` or `CAA`.
    pub dns_record_type: DnsChangeRecordType,
    /// Label(s) put in front of the target.
    #[serde(default)]
    pub dns_name_prefix: Option<String>,
    /// Exact match instead of substring (default false).
    #[serde(default, deserialize_with = "null_as_default")]
    pub require_exact_match: bool,
    /// Case-sensitive (default true; only TXT honours it, others are case-insensitive).
    #[serde(default = "default_true", deserialize_with = "null_as_true")]
    pub require_exact_case: bool,
}

/// Record types `dns-change` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DnsChangeRecordType {
    /// CNAME target.
    #[serde(rename = "CNAME")]
    Cname,
    /// TXT strings, concatenated.
    #[serde(rename = "TXT")]
    Txt,
    /// CAA record value.
    #[serde(rename = "CAA")]
    Caa,
}

impl MethodRules for DnsChangeParameters {
    const METHOD: ValidationMethod = ValidationMethod::DnsChange;
    const WILDCARD_OK: bool = true;
    const IP_OK: bool = false;

    fn check(&self, c: &mut Checks) {
        c.non_empty("challenge_value", &self.challenge_value);
        c.bounded("challenge_value", &self.challenge_value);
        c.prefix(self.dns_name_prefix.as_deref());
    }
}
