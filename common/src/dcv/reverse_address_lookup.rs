//! `reverse-address-lookup`: BR 3.2.2.5.3, the PTR record of an address naming the expected
//! host. The caller passes the reverse name; *extension*: an IP literal target is turned into
//! its reverse name.

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::{Fixed, PtrType, ValidationMethod};

/// `reverse-address-lookup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseAddressLookupParameters {
    /// The expected PTR target.
    pub challenge_value: String,
    /// Label(s) put in front of the target.
    #[serde(default)]
    pub dns_name_prefix: Option<String>,
    /// Fixed `PTR`.
    #[serde(default)]
    pub dns_record_type: Fixed<PtrType>,
}

impl MethodRules for ReverseAddressLookupParameters {
    const METHOD: ValidationMethod = ValidationMethod::ReverseAddressLookup;
    const WILDCARD_OK: bool = false;
    const IP_OK: bool = true;
    const REVERSE_NAME_OF_IP: bool = true;

    fn check(&self, c: &mut Checks) {
        c.non_empty("challenge_value", &self.challenge_value);
        c.bounded("challenge_value", &self.challenge_value);
        c.prefix(self.dns_name_prefix.as_deref());
    }
}
