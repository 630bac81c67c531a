//! `website-change`: BR 3.2.2.4.18 (domains) and 3.2.2.5.1 (IP addresses). The CA's random
//! value in a file below `/.well-known/pki-validation/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::{ValidationMethod, default_true, null_as_default, null_as_true};
use crate::validate::{MAX_PARAMETER_BYTES, issue};

/// `website-change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebsiteChangeParameters {
    /// Path below `/.well-known/pki-validation/`.
    pub http_token_path: String,
    /// The value to find in the body.
    pub challenge_value: String,
    /// `http` (default; `null` accepted as the default) or `https`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub url_scheme: UrlScheme,
    /// A regular expression the body must also match.
    #[serde(default)]
    pub match_regex: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub http_headers: Option<BTreeMap<String, String>>,
    /// Case-sensitive search (default true).
    #[serde(default = "default_true", deserialize_with = "null_as_true")]
    pub require_exact_case: bool,
}

/// `url_scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UrlScheme {
    /// Port 80.
    #[default]
    Http,
    /// Port 443; the certificate is not validated (the BR does not require it).
    Https,
}

impl MethodRules for WebsiteChangeParameters {
    const METHOD: ValidationMethod = ValidationMethod::WebsiteChange;
    // A file on a web server proves control of that one host name (BR 3.2.2.4.18).
    const WILDCARD_OK: bool = false;
    const IP_OK: bool = true;

    fn check(&self, c: &mut Checks) {
        c.bounded("http_token_path", &self.http_token_path);
        c.bounded("challenge_value", &self.challenge_value);
        if self.challenge_value.is_empty() && self.match_regex.as_deref().unwrap_or("").is_empty() {
            c.push(
                issue::EMPTY_CHALLENGE_VALUE,
                "field `dcv_check_parameters.challenge_value`: empty, and no `match_regex` given",
            );
        }
        if self.http_token_path.is_empty() {
            c.field("http_token_path", "must not be empty");
        }
        if let Err(e) = crate::validate::check_token_path(&self.http_token_path) {
            c.field("http_token_path", e);
        }
        if let Some(r) = &self.match_regex {
            c.bounded("match_regex", r);
            if !r.is_empty()
                && r.len() <= MAX_PARAMETER_BYTES
                && let Err(e) = crate::validate::match_regex(r)
            {
                c.field("match_regex", e);
            }
        }
        c.headers(self.http_headers.as_ref());
    }
}
