//! `dns-persistent`: BR 3.2.2.4.22. A standing TXT record at `_validation-persist.<domain>`
//! naming the CA's issuer domain and the subscriber's account.

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::{Fixed, FixedValue as _, PersistPrefix, TxtType, ValidationMethod};

/// The label in front of the domain (BR 3.2.2.4.22).
pub const PREFIX: &str = PersistPrefix::VALUE;

/// `dns-persistent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPersistentParameters {
    /// Issuer domain names that identify this CA (non-empty).
    pub issuer_domain_names: Vec<String>,
    /// The account URI the record must name.
    pub expected_account_uri: String,
    /// Fixed `TXT`.
    #[serde(default)]
    pub dns_record_type: Fixed<TxtType>,
    /// Fixed `_validation-persist`.
    #[serde(default)]
    pub dns_name_prefix: Fixed<PersistPrefix>,
}

impl MethodRules for DnsPersistentParameters {
    const METHOD: ValidationMethod = ValidationMethod::DnsPersistent;
    // BR 3.2.2.4.22: a record with `policy=wildcard` covers the wildcard.
    const WILDCARD_OK: bool = true;
    const IP_OK: bool = false;

    fn check(&self, c: &mut Checks) {
        if self.issuer_domain_names.is_empty() {
            c.field("issuer_domain_names", "must not be empty");
        }
        c.issuer_domains("issuer_domain_names", &self.issuer_domain_names);
        c.uri("expected_account_uri", &self.expected_account_uri);
        c.fixed_prefix(PREFIX, PREFIX);
    }
}
