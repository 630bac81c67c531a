//! The contact methods: email (BR 3.2.2.4.13 CAA, 3.2.2.4.14 TXT) and phone (3.2.2.4.16 TXT,
//! 3.2.2.4.17 CAA) contacts published in DNS.

use serde::{Deserialize, Serialize};

use super::{Checks, MethodRules};
use crate::api::{
    CaaType, EmailTxtPrefix, Fixed, FixedValue, PhoneTxtPrefix, TxtType, ValidationMethod,
};

/// `contact-email-txt` / `contact-phone-txt`; `P` fixes the prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "P: FixedValue", serialize = "P: FixedValue")
)]
pub struct ContactTxtParameters<P> {
    /// The contact (email address or phone number), matched exactly, case-insensitively.
    pub challenge_value: String,
    /// Fixed `TXT`.
    #[serde(default)]
    pub dns_record_type: Fixed<TxtType>,
    /// Fixed `_validation-contactemail` / `_validation-contactphone`.
    #[serde(default)]
    pub dns_name_prefix: Fixed<P>,
}

/// `contact-email-caa` / `contact-phone-caa`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactCaaParameters {
    /// The contact, matched exactly, case-insensitively.
    pub challenge_value: String,
    /// Label(s) put in front of the target.
    #[serde(default)]
    pub dns_name_prefix: Option<String>,
    /// Fixed `CAA`.
    #[serde(default)]
    pub dns_record_type: Fixed<CaaType>,
}

/// The TXT prefix of a contact kind, and its method.
pub trait ContactTxt: FixedValue {
    /// The method.
    const METHOD: ValidationMethod;
}

impl ContactTxt for EmailTxtPrefix {
    const METHOD: ValidationMethod = ValidationMethod::ContactEmailTxt;
}

impl ContactTxt for PhoneTxtPrefix {
    const METHOD: ValidationMethod = ValidationMethod::ContactPhoneTxt;
}

impl<P: ContactTxt> MethodRules for ContactTxtParameters<P> {
    const METHOD: ValidationMethod = P::METHOD;
    const WILDCARD_OK: bool = true;
    const IP_OK: bool = false;

    fn check(&self, c: &mut Checks) {
        c.non_empty("challenge_value", &self.challenge_value);
        c.bounded("challenge_value", &self.challenge_value);
        c.fixed_prefix(P::VALUE, P::VALUE);
    }
}

/// `contact-email-caa` parameters, for their rules.
#[derive(Debug)]
pub struct Email<'a>(pub &'a ContactCaaParameters);

/// `contact-phone-caa` parameters, for their rules.
#[derive(Debug)]
pub struct Phone<'a>(pub &'a ContactCaaParameters);

fn check_caa(p: &ContactCaaParameters, c: &mut Checks) {
    c.non_empty("challenge_value", &p.challenge_value);
    c.bounded("challenge_value", &p.challenge_value);
    c.prefix(p.dns_name_prefix.as_deref());
}

impl MethodRules for Email<'_> {
    const METHOD: ValidationMethod = ValidationMethod::ContactEmailCaa;
    const WILDCARD_OK: bool = true;
    const IP_OK: bool = false;

    fn check(&self, c: &mut Checks) {
        check_caa(self.0, c);
    }
}

impl MethodRules for Phone<'_> {
    const METHOD: ValidationMethod = ValidationMethod::ContactPhoneCaa;
    const WILDCARD_OK: bool = true;
    const IP_OK: bool = false;

    fn check(&self, c: &mut Checks) {
        check_caa(self.0, c);
    }
}
