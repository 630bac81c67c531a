//! Digest encodings the API uses for key authorizations.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A SHA-256 digest given as 64 hex digits (the reference's `acme-tls-alpn-01` form) or as
/// 43 unpadded base64url characters (RFC 8555's form; *extension*). `None` if it is neither.
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(s, 16).ok()?;
        }
        return Some(out);
    }
    if text.len() == 43 {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() == 32 {
            out.copy_from_slice(&bytes);
            return Some(out);
        }
    }
    None
}

/// Unpadded base64url (RFC 4648 section 5), the encoding of ACME digests (RFC 8555 8.4).
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_forms() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let want = parse_sha256(hex);
        assert!(want.is_some());
        assert_eq!(parse_sha256(&hex.to_uppercase()), want, "upper-case hex");
        let b64 = base64url(&want.unwrap_or_default());
        assert_eq!(b64, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert_eq!(parse_sha256(&b64), want, "base64url");
        for bad in [
            "",
            "abc",
            &hex[..63],
            &format!("{hex}0"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0=",
            "zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ] {
            assert_eq!(parse_sha256(bad), None, "{bad:?}");
        }
    }
}
