//! `ip-address`: BR 3.2.2.4.8, an A or AAAA record of the domain holding the expected address
//! (retired on 2026-03-15; kept for API compatibility).

use std::net::IpAddr;

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
        match (self.challenge_value.parse::<IpAddr>(), self.dns_record_type) {
            (Ok(IpAddr::V4(_)), AddressRecordType::A)
            | (Ok(IpAddr::V6(_)), AddressRecordType::Aaaa) => {}
            (Ok(_), t) => c.field(
                "challenge_value",
                format_args!(
                    "the address family does not match dns_record_type {}",
                    if t == AddressRecordType::A {
                        "A"
                    } else {
                        "AAAA"
                    }
                ),
            ),
            (Err(_), _) => c.field("challenge_value", "not an IP address"),
        }
        c.prefix(self.dns_name_prefix.as_deref());
    }
}
