//! The RFC 8657 `validationmethods` labels of CAA (BR 4.2.2.1.2, ballot SC-098): the label of
//! each DCV method of the API, how a request's label is spelt, and which labels in a CAA record
//! grant a request's label.
//!
//! BR 4.2.2.1.2, *effective 2027-03-15*: "the CA MUST interpret and process `validationmethods`
//! labels formed by concatenating the string 'ca-tbr-' with the BR 3.2.2.4 subsection number,
//! e.g. 'ca-tbr-7' represents the DNS method described in TLS BR 3.2.2.4.7. If a CA performs
//! domain validation using a mechanism that can be represented by multiple labels (e.g.
//! 'http-01' and 'ca-tbr-19'), the CA SHOULD accept any of the labels as granting permission to
//! issue." and "The canonical representation of validationmethods labels is lowercase letters.
//! However, the CA MAY perform case insensitive matching of labels. If the CA does perform case
//! insensitive matching of labels, this practice MUST be documented in their CP and/or CPS."
//!
//! Labels are matched **exactly**, byte for byte, as Boulder's `caaValidationMethodMatches`
//! does: a record's `HTTP-01` does not grant `http-01`. Case-insensitive matching is a MAY that
//! the CA would have to disclose; exact matching needs no disclosure. A request's label must
//! therefore be in the canonical lowercase form, or it could never match.
//!
//! The ballot defines labels for the 3.2.2.4 (domain) methods only; the 3.2.2.5 (IP address)
//! methods have none — and need none, as CAA governs domain names only (RFC 8659 section 1).

use crate::api::ValidationMethod;

/// The prefix of the BR's labels (BR 4.2.2.1.2): `ca-tbr-` and the 3.2.2.4 subsection number.
pub const BR_LABEL_PREFIX: &str = "ca-tbr-";

/// The labels of one DCV method of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodLabels {
    /// The method.
    pub method: ValidationMethod,
    /// The BR sections it implements.
    pub br_sections: &'static str,
    /// Its label in the IANA ACME Validation Methods registry (or the ACME draft defining it),
    /// when it is an ACME method.
    pub acme: Option<&'static str>,
    /// Its BR label (`ca-tbr-` + its 3.2.2.4 subsection number), when it is a 3.2.2.4 method.
    pub br: Option<&'static str>,
}

impl MethodLabels {
    /// The label a CA passes as `caa_check_parameters.validation_method` when it validates
    /// with this method: the ACME label for an ACME method, else the BR label.
    pub fn to_pass(&self) -> Option<&'static str> {
        self.acme.or(self.br)
    }
}

/// Every DCV method of the API with its labels (README "CAA `validationmethods` labels" shows
/// [`markdown_table`]; a test of the coordinator compares them).
pub const METHOD_LABELS: [MethodLabels; 13] = [
    labels(
        ValidationMethod::AcmeDns01,
        "3.2.2.4.7",
        Some("dns-01"),
        Some("ca-tbr-7"),
    ),
    labels(
        ValidationMethod::DnsChange,
        "3.2.2.4.7",
        None,
        Some("ca-tbr-7"),
    ),
    labels(
        ValidationMethod::IpAddress,
        "3.2.2.4.8",
        None,
        Some("ca-tbr-8"),
    ),
    labels(
        ValidationMethod::ContactEmailCaa,
        "3.2.2.4.13",
        None,
        Some("ca-tbr-13"),
    ),
    labels(
        ValidationMethod::ContactEmailTxt,
        "3.2.2.4.14",
        None,
        Some("ca-tbr-14"),
    ),
    labels(
        ValidationMethod::ContactPhoneTxt,
        "3.2.2.4.16",
        None,
        Some("ca-tbr-16"),
    ),
    labels(
        ValidationMethod::ContactPhoneCaa,
        "3.2.2.4.17",
        None,
        Some("ca-tbr-17"),
    ),
    labels(
        ValidationMethod::WebsiteChange,
        "3.2.2.4.18 / 3.2.2.5.1",
        None,
        Some("ca-tbr-18"),
    ),
    labels(
        ValidationMethod::AcmeHttp01,
        "3.2.2.4.19 / 3.2.2.5.6",
        Some("http-01"),
        Some("ca-tbr-19"),
    ),
    labels(
        ValidationMethod::AcmeTlsAlpn01,
        "3.2.2.4.20 / 3.2.2.5.7",
        Some("tls-alpn-01"),
        Some("ca-tbr-20"),
    ),
    labels(
        ValidationMethod::DnsAccount01,
        "3.2.2.4.21",
        Some("dns-account-01"),
        Some("ca-tbr-21"),
    ),
    labels(
        ValidationMethod::DnsPersistent,
        "3.2.2.4.22",
        Some("dns-persist-01"),
        Some("ca-tbr-22"),
    ),
    labels(
        ValidationMethod::ReverseAddressLookup,
        "3.2.2.5.3",
        None,
        None,
    ),
];

/// Whether a CAA record's `validationmethods` label `record` grants a request that names
/// `request` (BR 4.2.2.1.2): the same label, exactly; or, for a mechanism that two labels
/// represent, the other one. An ACME method is one way of doing its BR method, so its ACME
/// label is granted by the BR label (`dns-01` by `ca-tbr-7`, `http-01` by `ca-tbr-19`); a BR
/// label is granted by an ACME label only when that ACME method is the only method of the API
/// with the BR label (`ca-tbr-19` by `http-01`, but not `ca-tbr-7` by `dns-01`: 3.2.2.4.7 is
/// also `dns-change`).
pub fn grants(record: &str, request: &str) -> bool {
    if record == request {
        return true;
    }
    METHOD_LABELS.iter().any(|m| match (m.acme, m.br) {
        (Some(acme), Some(br)) if request == acme => record == br,
        (Some(acme), Some(br)) if request == br => {
            record == acme && METHOD_LABELS.iter().filter(|o| o.br == Some(br)).count() == 1
        }
        _ => false,
    })
}

/// Checks the spelling of a request's label beyond the RFC 8657 grammar
/// ([`crate::validate::is_rfc8657_label`]): lowercase, its canonical form, and a `ca-tbr-`
/// label with a subsection number as the ballot writes it (`ca-tbr-7`, not `ca-tbr-07`).
///
/// # Errors
///
/// What is wrong, for a 400.
pub fn check_request_label(label: &str) -> Result<(), &'static str> {
    if label.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(
            "labels are lowercase, their canonical form (BR 4.2.2.1.2), and CAA records are matched exactly",
        );
    }
    if let Some(number) = label.strip_prefix(BR_LABEL_PREFIX) {
        let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
        if !digits || number.starts_with('0') {
            return Err(
                "a BR label is `ca-tbr-` followed by the BR 3.2.2.4 subsection number, e.g. `ca-tbr-7` (BR 4.2.2.1.2)",
            );
        }
    }
    Ok(())
}

/// The labels table of the README, one row per method.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| `validation_method` | BR | pass as `caa_check_parameters.validation_method` | also granted by a record listing |\n|---|---|---|---|\n",
    );
    for m in &METHOD_LABELS {
        let pass = m.to_pass().map_or_else(
            || "none: no label exists for a 3.2.2.5 IP address method, and CAA does not apply to IP addresses".to_owned(),
            |l| format!("`{l}`"),
        );
        let others: Vec<String> = [m.acme, m.br]
            .into_iter()
            .flatten()
            .filter(|l| Some(*l) != m.to_pass() && m.to_pass().is_some_and(|p| grants(l, p)))
            .map(|l| format!("`{l}`"))
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            m.method.as_str(),
            m.br_sections,
            pass,
            if others.is_empty() {
                "—".to_owned()
            } else {
                others.join(", ")
            }
        ));
    }
    out
}

const fn labels(
    method: ValidationMethod,
    br_sections: &'static str,
    acme: Option<&'static str>,
    br: Option<&'static str>,
) -> MethodLabels {
    MethodLabels {
        method,
        br_sections,
        acme,
        br,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_api_has_one_row() {
        let all = [
            "website-change",
            "acme-http-01",
            "acme-dns-01",
            "acme-tls-alpn-01",
            "dns-change",
            "dns-persistent",
            "dns-account-01",
            "contact-email-txt",
            "contact-phone-txt",
            "contact-email-caa",
            "contact-phone-caa",
            "ip-address",
            "reverse-address-lookup",
        ];
        for name in all {
            let rows = METHOD_LABELS
                .iter()
                .filter(|m| m.method.as_str() == name)
                .count();
            assert_eq!(rows, 1, "{name}");
        }
        for m in &METHOD_LABELS {
            // Every BR label is the ballot's `ca-tbr-` + the 3.2.2.4 subsection number.
            if let Some(br) = m.br {
                let section = m.br_sections.split(" / ").next().unwrap();
                assert_eq!(
                    section.strip_prefix("3.2.2.4."),
                    br.strip_prefix(BR_LABEL_PREFIX),
                    "{br}"
                );
                assert_eq!(check_request_label(br), Ok(()), "{br}");
            }
        }
    }

    #[test]
    fn which_record_labels_grant_a_request() {
        // (record label, request label, granted)
        let cases = [
            // Exact, byte for byte (Boulder).
            ("ca-tbr-7", "ca-tbr-7", true),
            ("ca-tbr-7", "ca-tbr-18", false),
            ("CA-TBR-7", "ca-tbr-7", false),
            ("HTTP-01", "http-01", false),
            ("ca-tbr-07", "ca-tbr-7", false),
            ("ca-tbr-3.2.2.4.7", "ca-tbr-7", false),
            // One mechanism, two labels (BR 4.2.2.1.2's SHOULD).
            ("ca-tbr-19", "http-01", true),
            ("http-01", "ca-tbr-19", true),
            ("ca-tbr-20", "tls-alpn-01", true),
            ("tls-alpn-01", "ca-tbr-20", true),
            ("ca-tbr-21", "dns-account-01", true),
            ("dns-account-01", "ca-tbr-21", true),
            ("ca-tbr-22", "dns-persist-01", true),
            ("dns-persist-01", "ca-tbr-22", true),
            // ACME dns-01 is one way of doing 3.2.2.4.7, not the only one.
            ("ca-tbr-7", "dns-01", true),
            ("dns-01", "ca-tbr-7", false),
            // Different mechanisms.
            ("ca-tbr-19", "dns-01", false),
            ("ca-tbr-18", "http-01", false),
            ("http-01", "ca-tbr-18", false),
            ("dns-01", "http-01", false),
        ];
        for (record, request, want) in cases {
            assert_eq!(
                grants(record, request),
                want,
                "record {record} request {request}"
            );
        }
    }

    #[test]
    fn request_labels_are_spelt_as_the_ballot_spells_them() {
        for (label, ok) in [
            ("ca-tbr-7", true),
            ("ca-tbr-19", true),
            ("ca-tbr-22", true),
            ("dns-01", true),
            ("dns-persist-01", true),
            ("ca-custom-method", true),
            ("CA-TBR-7", false),
            ("HTTP-01", false),
            ("ca-tbr-07", false),
            ("ca-tbr-0", false),
            ("ca-tbr-x", false),
            ("ca-tbr-7a", false),
        ] {
            assert_eq!(check_request_label(label).is_ok(), ok, "{label}");
        }
    }
}
