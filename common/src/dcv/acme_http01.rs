//! `acme-http-01`: BR 3.2.2.4.19 (domains) and 3.2.2.5.6 (IP addresses), RFC 8555 section 8.3.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::{FixedTrue, ValidationMethod};

/// `acme-http-01`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeHttp01Parameters {
    /// The ACME token (last path segment).
    pub token: String,
    /// The expected body, `token.thumbprint`.
    pub key_authorization: String,
    /// Extra request headers.
    #[serde(default)]
    pub http_headers: Option<BTreeMap<String, String>>,
    /// Fixed `true`.
    #[serde(default)]
    pub require_exact_case: FixedTrue,
}

impl MethodRules for AcmeHttp01Parameters {
    const METHOD: ValidationMethod = ValidationMethod::AcmeHttp01;
    // RFC 8555 8.3: http-01 cannot validate a wildcard.
    const WILDCARD_OK: bool = false;
    const IP_OK: bool = true;

    fn check(&self, c: &mut Checks) {
        c.bounded("key_authorization", &self.key_authorization);
        if self.token.is_empty() || !self.token.bytes().all(crate::validate::is_base64url_byte) {
            c.field(
                "token",
                "an ACME token is non-empty base64url (RFC 8555 8.1)",
            );
        }
        c.non_empty("key_authorization", &self.key_authorization);
        c.headers(self.http_headers.as_ref());
    }
}
