//! ACME `dns-01` (RFC 8555 8.4; BR 3.2.2.4.7 through ACME) and `dns-account-01`
//! (BR 3.2.2.4.21, draft-ietf-acme-dns-account-label; an extension the reference lacks).
//!
//! Both look for a TXT record whose concatenated character-strings equal the
//! `key_authorization_hash` — base64url(SHA-256(key authorization)) — exactly and
//! case-sensitively; any one matching record passes. `dns-01` asks at
//! `_acme-challenge.<domain>`; `dns-account-01` at `_<label>._acme-challenge.<domain>` where the
//! label binds the record to one ACME account ([`account_label`]). A wildcard target uses its
//! base domain (RFC 8555 8.4).

use data_encoding::BASE32_NOPAD;
use hickory_proto::rr::RecordType;
use mpic_common::api::{
    AcmeDns01Parameters, CheckResponse, DnsAccount01Parameters, ValidationMethod,
};
use mpic_common::dcv::acme_dns01::PREFIX;
use mpic_common::target::Target;
use sha2::{Digest as _, Sha256};

use super::{TextRule, lookup_and_evaluate, owner_name, parameter_error, records_data};
use crate::dcv::DcvContext;

/// `acme-dns-01`: TXT at `_acme-challenge.<domain>`.
pub async fn acme_dns01(
    ctx: &DcvContext,
    target: &Target,
    p: &AcmeDns01Parameters,
) -> CheckResponse {
    txt_digest(
        ctx,
        target,
        ValidationMethod::AcmeDns01,
        PREFIX,
        &p.key_authorization_hash,
    )
    .await
}

/// `dns-account-01`: TXT at `_<label>._acme-challenge.<domain>`.
pub async fn dns_account01(
    ctx: &DcvContext,
    target: &Target,
    p: &DnsAccount01Parameters,
) -> CheckResponse {
    let prefix = format!("{}.{PREFIX}", account_label(&p.account_uri));
    txt_digest(
        ctx,
        target,
        ValidationMethod::DnsAccount01,
        &prefix,
        &p.key_authorization_hash,
    )
    .await
}

/// The account label of `dns-account-01` (BR 3.2.2.4.21): `_` followed by the lowercase
/// base32 (RFC 4648 section 6, no padding) of the first 10 bytes of SHA-256(account URL). Ten
/// bytes are 80 bits, exactly 16 base32 characters, so no padding ever arises.
pub fn account_label(account_uri: &str) -> String {
    let digest = Sha256::digest(account_uri.as_bytes());
    let encoded = BASE32_NOPAD.encode(&digest[..ACCOUNT_LABEL_DIGEST_BYTES]);
    format!("_{}", encoded.to_ascii_lowercase())
}

async fn txt_digest(
    ctx: &DcvContext,
    target: &Target,
    method: ValidationMethod,
    prefix: &str,
    key_authorization_hash: &str,
) -> CheckResponse {
    let name = match owner_name(target, Some(prefix), false) {
        Ok(name) => name,
        Err(e) => return parameter_error(method, e),
    };
    lookup_and_evaluate(ctx, method, &name, RecordType::TXT, |records| {
        TextRule::EXACT.evaluate(key_authorization_hash, &records_data(records))
    })
    .await
}

/// `_acme-challenge` (RFC 8555 8.4).
/// How much of the digest the account label keeps (BR 3.2.2.4.21).
const ACCOUNT_LABEL_DIGEST_BYTES: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_label_table() {
        struct Case {
            name: &'static str,
            account_uri: &'static str,
            want: &'static str,
        }
        let cases = [
            Case {
                name: "requirements.md example",
                account_uri: "https://example.com/acme/acct/ExampleAccount",
                want: "_ujmmovf2vn55tgye",
            },
            Case {
                // Independently computed: Python hashlib + base64.b32encode, lowercased.
                name: "the URI is hashed as given, case included",
                account_uri: "https://example.com/acme/acct/exampleaccount",
                want: "_iflesqt53jlt2hb7",
            },
            Case {
                name: "empty input",
                account_uri: "",
                want: "_4oymiquy7qobjgx3",
            },
        ];
        for c in cases {
            let got = account_label(c.account_uri);
            assert_eq!(got, c.want, "case {:?}", c.name);
            assert_eq!(got.len(), 17, "case {:?}", c.name);
            assert!(
                got[1..]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
                "case {:?}: {got}",
                c.name
            );
        }
    }

    #[test]
    fn owner_names() {
        struct Case {
            name: &'static str,
            target: &'static str,
            prefix: String,
            want: &'static str,
        }
        let label = account_label("https://example.com/acme/acct/ExampleAccount");
        let cases = [
            Case {
                name: "dns-01",
                target: "example.com",
                prefix: PREFIX.to_owned(),
                want: "_acme-challenge.example.com",
            },
            Case {
                name: "dns-01 wildcard uses the base domain",
                target: "*.example.com",
                prefix: PREFIX.to_owned(),
                want: "_acme-challenge.example.com",
            },
            Case {
                name: "dns-account-01",
                target: "example.com",
                prefix: format!("{label}.{PREFIX}"),
                want: "_ujmmovf2vn55tgye._acme-challenge.example.com",
            },
            Case {
                name: "dns-account-01 wildcard",
                target: "*.sub.example.com",
                prefix: format!("{label}.{PREFIX}"),
                want: "_ujmmovf2vn55tgye._acme-challenge.sub.example.com",
            },
        ];
        for c in cases {
            let target = Target::parse(c.target).expect("valid target");
            assert_eq!(
                owner_name(&target, Some(&c.prefix), false).as_deref(),
                Ok(c.want),
                "case {:?}",
                c.name
            );
        }
    }

    #[test]
    fn digest_matching_table() {
        struct Case {
            name: &'static str,
            records: &'static [&'static [u8]],
            want: bool,
        }
        // base64url(SHA-256("abc")), RFC 8555's form.
        const HASH: &str = "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0";
        let cases = [
            Case {
                name: "exact",
                records: &[b"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"],
                want: true,
            },
            Case {
                name: "case differs",
                records: &[b"UNGWV48BZ-PBQUDEXA4II7ADYAOWF3QCTBD_YFIAFA0"],
                want: false,
            },
            Case {
                name: "padding added",
                records: &[b"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0="],
                want: false,
            },
            Case {
                name: "surrounding whitespace is not trimmed",
                records: &[b" ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"],
                want: false,
            },
            Case {
                name: "a substring is not enough",
                records: &[b"xungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0x"],
                want: false,
            },
            Case {
                name: "one of several records",
                records: &[
                    b"stale-value",
                    b"\xff\x00",
                    b"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0",
                ],
                want: true,
            },
            Case {
                name: "none of several",
                records: &[b"stale-value", b"other"],
                want: false,
            },
        ];
        for c in cases {
            let values: Vec<Vec<u8>> = c.records.iter().map(|r| r.to_vec()).collect();
            assert_eq!(
                TextRule::EXACT.evaluate(HASH, &values).passed,
                c.want,
                "case {:?}",
                c.name
            );
        }
    }
}
