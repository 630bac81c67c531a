//! `acme-tls-alpn-01`: BR 3.2.2.4.20 (domains) and 3.2.2.5.7 (IP addresses), RFC 8737.

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::ValidationMethod;

/// `acme-tls-alpn-01`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeTlsAlpn01Parameters {
    /// Hex SHA-256 of the key authorization (reference); unpadded base64url accepted too.
    pub key_authorization_hash: String,
}

impl MethodRules for AcmeTlsAlpn01Parameters {
    const METHOD: ValidationMethod = ValidationMethod::AcmeTlsAlpn01;
    // RFC 8737 3: the certificate names one host.
    const WILDCARD_OK: bool = false;
    const IP_OK: bool = true;

    fn check(&self, c: &mut Checks) {
        if crate::digest::parse_sha256(&self.key_authorization_hash).is_none() {
            c.field(
                "key_authorization_hash",
                "must be the SHA-256 digest of the key authorization as 64 hex digits (or 43 base64url characters)",
            );
        }
    }
}
