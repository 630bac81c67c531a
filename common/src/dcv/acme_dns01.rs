//! `acme-dns-01`: BR 3.2.2.4.7 by way of ACME, RFC 8555 section 8.4: a TXT record at
//! `_acme-challenge.<domain>` holding base64url(SHA-256(key authorization)).

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::{AcmeChallengePrefix, Fixed, FixedValue as _, TxtType, ValidationMethod};

/// The label in front of the domain (RFC 8555 8.4).
pub const PREFIX: &str = AcmeChallengePrefix::VALUE;

/// `acme-dns-01`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeDns01Parameters {
    /// base64url(SHA-256(key authorization)), compared exactly.
    pub key_authorization_hash: String,
    /// Fixed `TXT`.
    #[serde(default)]
    pub dns_record_type: Fixed<TxtType>,
    /// Fixed `_acme-challenge`.
    #[serde(default)]
    pub dns_name_prefix: Fixed<AcmeChallengePrefix>,
}

impl MethodRules for AcmeDns01Parameters {
    const METHOD: ValidationMethod = ValidationMethod::AcmeDns01;
    // RFC 8555 8.4: a wildcard is validated at its base domain.
    const WILDCARD_OK: bool = true;
    const IP_OK: bool = false;

    fn check(&self, c: &mut Checks) {
        c.non_empty("key_authorization_hash", &self.key_authorization_hash);
        c.bounded("key_authorization_hash", &self.key_authorization_hash);
        c.fixed_prefix(PREFIX, PREFIX);
    }
}
