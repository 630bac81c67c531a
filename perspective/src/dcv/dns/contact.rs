//! The contact methods: the CA finds a Domain Contact in DNS and then contacts it
//! (BR 3.2.2.4.13/.14 email, .16/.17 phone). The perspective corroborates that the contact is
//! published: the value equals `challenge_value` exactly, case-insensitively (the reference's
//! rule), with no whitespace trimming.
//!
//! - `contact-email-txt` / `contact-phone-txt` (BR 3.2.2.4.14/.16): TXT at
//!   `_validation-contactemail.<domain>` / `_validation-contactphone.<domain>`.
//! - `contact-email-caa` / `contact-phone-caa` (BR 3.2.2.4.13/.17): the `contactemail` /
//!   `contactphone` properties (BR Appendix A) of the CAA RRset "found using the search algorithm
//!   defined in RFC 8659 Section 3": the same climb as the CAA check ([`crate::caa::climb`]),
//!   which stops at the first name with any CAA RRset even if it holds no contact property.

use hickory_proto::rr::{RData, Record, RecordType};
use mpic_common::api::{
    CheckResponse, ContactCaaParameters, EmailTxtPrefix, FixedValue as _, PhoneTxtPrefix,
    ValidationMethod,
};
use mpic_common::target::Target;

use super::{Evaluation, TextRule, lookup_and_evaluate, owner_name, parameter_error, respond};
use crate::caa::climb;
use crate::dcv::DcvContext;

/// Which contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    /// An email address (BR 3.2.2.4.13/.14).
    Email,
    /// A phone number (BR 3.2.2.4.16/.17).
    Phone,
}

impl Contact {
    /// The TXT owner prefix (BR 3.2.2.4.14/.16).
    pub fn txt_prefix(self) -> &'static str {
        match self {
            Contact::Email => EmailTxtPrefix::VALUE,
            Contact::Phone => PhoneTxtPrefix::VALUE,
        }
    }

    /// The CAA property tag (BR Appendix A).
    pub fn caa_tag(self) -> &'static str {
        match self {
            Contact::Email => "contactemail",
            Contact::Phone => "contactphone",
        }
    }

    fn txt_method(self) -> ValidationMethod {
        match self {
            Contact::Email => ValidationMethod::ContactEmailTxt,
            Contact::Phone => ValidationMethod::ContactPhoneTxt,
        }
    }

    fn caa_method(self) -> ValidationMethod {
        match self {
            Contact::Email => ValidationMethod::ContactEmailCaa,
            Contact::Phone => ValidationMethod::ContactPhoneCaa,
        }
    }
}

/// `contact-email-txt` / `contact-phone-txt`.
pub async fn txt(
    ctx: &DcvContext,
    target: &Target,
    contact: Contact,
    challenge_value: &str,
) -> CheckResponse {
    let method = contact.txt_method();
    let name = match owner_name(target, Some(contact.txt_prefix()), false) {
        Ok(name) => name,
        Err(e) => return parameter_error(method, e),
    };
    lookup_and_evaluate(ctx, method, &name, RecordType::TXT, |records| {
        TextRule::EXACT_ANY_CASE.evaluate(challenge_value, &super::records_data(records))
    })
    .await
}

/// `contact-email-caa` / `contact-phone-caa`: climb from the target (or
/// `<dns_name_prefix>.<target>`) to the relevant CAA RRset, then look for the contact property.
pub async fn caa(
    ctx: &DcvContext,
    target: &Target,
    contact: Contact,
    p: &ContactCaaParameters,
) -> CheckResponse {
    let method = contact.caa_method();
    let start = match owner_name(target, p.dns_name_prefix.as_deref(), false) {
        Ok(name) => name,
        Err(e) => return parameter_error(method, e),
    };
    let climbed = climb::climb(&ctx.dns, &climb::self_and_ancestors(&start)).await;
    let (found_at, outcome) = match climbed.outcome {
        Ok(relevant) => (relevant.found_at, Ok(relevant.answer)),
        Err(failure) => (failure.name.clone(), Err(failure)),
    };
    respond(method, &found_at, RecordType::CAA, outcome, |records| {
        evaluate_caa(contact, &p.challenge_value, records)
    })
}

/// The contact properties of a CAA RRset against the expected contact: only properties with
/// the contact's tag (compared case-insensitively, RFC 8659 4.1) count and are shown, as the
/// reference shows them (their values).
pub fn evaluate_caa(contact: Contact, challenge_value: &str, records: &[Record]) -> Evaluation {
    let values: Vec<Vec<u8>> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::CAA(caa) if caa.tag.eq_ignore_ascii_case(contact.caa_tag()) => {
                Some(caa.value.clone())
            }
            _ => None,
        })
        .collect();
    TextRule::EXACT_ANY_CASE.evaluate(challenge_value, &values)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hickory_proto::rr::Name;

    use super::*;
    use crate::dcv::dns::tests::caa_rdata;

    fn caa(tag: &str, value: &[u8]) -> Record {
        Record::from_rdata(
            Name::from_ascii("example.com.").unwrap(),
            60,
            RData::CAA(caa_rdata(tag, value)),
        )
    }

    #[test]
    fn caa_contact_table() {
        struct Case {
            name: &'static str,
            contact: Contact,
            expected: &'static str,
            records: Vec<Record>,
            want: Evaluation,
        }
        let seen = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let cases = [
            Case {
                name: "email found, case-insensitive",
                contact: Contact::Email,
                expected: "Admin@Example.com",
                records: vec![
                    caa("issue", b"ca.example"),
                    caa("contactemail", b"admin@example.com"),
                ],
                want: Evaluation {
                    records_seen: seen(&["admin@example.com"]),
                    passed: true,
                },
            },
            Case {
                name: "tag compared case-insensitively",
                contact: Contact::Email,
                expected: "admin@example.com",
                records: vec![caa("ContactEmail", b"admin@example.com")],
                want: Evaluation {
                    records_seen: seen(&["admin@example.com"]),
                    passed: true,
                },
            },
            Case {
                name: "the phone tag does not count for email",
                contact: Contact::Email,
                expected: "+1 555 0100",
                records: vec![caa("contactphone", b"+1 555 0100")],
                want: Evaluation {
                    records_seen: seen(&[]),
                    passed: false,
                },
            },
            Case {
                name: "phone, one of two",
                contact: Contact::Phone,
                expected: "+1 555 0100",
                records: vec![
                    caa("contactphone", b"+1 555 0199"),
                    caa("contactphone", b"+1 555 0100"),
                ],
                want: Evaluation {
                    records_seen: seen(&["+1 555 0199", "+1 555 0100"]),
                    passed: true,
                },
            },
            Case {
                name: "exact: no substring, no trimming",
                contact: Contact::Phone,
                expected: "+1 555 0100",
                records: vec![caa("contactphone", b"+1 555 0100 ")],
                want: Evaluation {
                    records_seen: seen(&["+1 555 0100 "]),
                    passed: false,
                },
            },
            Case {
                name: "invalid UTF-8 value is shown safely",
                contact: Contact::Email,
                expected: "a@b.example",
                records: vec![caa("contactemail", b"a@b.example\xff")],
                want: Evaluation {
                    records_seen: seen(&["a@b.example\u{fffd}"]),
                    passed: false,
                },
            },
        ];
        for c in cases {
            assert_eq!(
                evaluate_caa(c.contact, c.expected, &c.records),
                c.want,
                "case {:?}",
                c.name
            );
        }
    }

    #[test]
    fn txt_contact_matching() {
        // (expected, record, passes)
        let cases: &[(&str, &[u8], bool)] = &[
            ("admin@example.com", b"ADMIN@example.com", true),
            ("admin@example.com", b"admin@example.com.", false),
            ("admin@example.com", b" admin@example.com", false),
            ("+1 555 0100", b"+1 555 0100", true),
            ("+1 555 0100", b"+15550100", false),
        ];
        for &(expected, record, want) in cases {
            assert_eq!(
                TextRule::EXACT_ANY_CASE.matches(expected, record),
                want,
                "{expected:?} vs {record:?}"
            );
        }
        assert_eq!(Contact::Email.txt_prefix(), "_validation-contactemail");
        assert_eq!(Contact::Phone.txt_prefix(), "_validation-contactphone");
    }
}
