//! `ip-address`: BR 3.2.2.4.8, an A or AAAA record of the domain holding the expected address
//! (retired on 2026-03-15; kept for API compatibility).

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::ValidationMethod;

/// `ip-address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpAddressParameters {
    /// The expected address.
    pub challenge_value: String,
    /// `A` or `AAAA`.
    pub dns_record_type: AddressRecordType,
    /// Label(s) put in front of the target.
    #[serde(default)]
    pub dns_name_prefix: Option<String>,
}

/// Record types `ip-address` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddressRecordType {
    /// IPv4.
    A,
    /// IPv6.
    #[serde(rename = "AAAA")]
    Aaaa,
}

impl MethodRules for IpAddressParameters {
    const METHOD: ValidationMethod = ValidationMethod::IpAddress;
    const WILDCARD_OK: bool = true;
    const IP_OK: bool = false;

    fn check(&self, c: &mut Checks) {
        // A value that is not an address of the record type's family is no 400: the check
        // runs and fails (api.md; the reference and Open MPIC's compliance suite do so).
        c.non_empty("challenge_value", &self.challenge_value);
        c.bounded("challenge_value", &self.challenge_value);
        c.prefix(self.dns_name_prefix.as_deref());
    }
}
