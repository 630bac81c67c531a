//! `dns-account-01` (*extension*): BR 3.2.2.4.21. A TXT record at
//! `_<label>._acme-challenge.<domain>`, the label derived from the ACME account URI.

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules, acme_dns01};
use crate::api::{Fixed, TxtType, ValidationMethod};

/// `dns-account-01` (*extension*).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsAccount01Parameters {
    /// The ACME account URL the label is derived from.
    pub account_uri: String,
    /// base64url(SHA-256(key authorization)).
    pub key_authorization_hash: String,
    /// Fixed `TXT`.
    #[serde(default)]
    pub dns_record_type: Fixed<TxtType>,
}

impl MethodRules for DnsAccount01Parameters {
    const METHOD: ValidationMethod = ValidationMethod::DnsAccount01;
    const WILDCARD_OK: bool = true;
    const IP_OK: bool = false;

    fn check(&self, c: &mut Checks) {
        c.uri("account_uri", &self.account_uri);
        c.non_empty("key_authorization_hash", &self.key_authorization_hash);
        c.bounded("key_authorization_hash", &self.key_authorization_hash);
        // The account label is always `_` and 16 base32 characters (BR 3.2.2.4.21).
        c.fixed_prefix(
            &format!("_aaaaaaaaaaaaaaaa.{}", acme_dns01::PREFIX),
            &format!("_<account label>.{}", acme_dns01::PREFIX),
        );
    }
}
