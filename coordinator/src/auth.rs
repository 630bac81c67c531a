//! API-key authentication of the CA backend (architecture.md "Security model"):
//! `Authorization: Bearer <key>` or `x-api-key: <key>`, compared in constant time.

use axum::http::HeaderMap;
use sha2::{Digest as _, Sha256};

/// The accepted keys, kept only as SHA-256 digests.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

impl ApiKeys {
    /// From the plain keys.
    pub fn new(keys: &[String]) -> ApiKeys {
        ApiKeys {
            digests: keys.iter().map(|k| digest(k.as_bytes())).collect(),
        }
    }

    /// Whether the request carries one of the keys.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(given) = presented_key(headers) else {
            return false;
        };
        let given = digest(given.as_bytes());
        // Compare against every key without stopping early, and each comparison without
        // branching on the bytes: the time taken says nothing about how close a guess was.
        let mut any = 0u8;
        for d in &self.digests {
            let diff = d.iter().zip(&given).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            any |= u8::from(std::hint::black_box(diff) == 0);
        }
        any == 1
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_either_header() {
        let keys = ApiKeys::new(&["k1-aaaaaaaaaaaaaaaa".into(), "k2-bbbbbbbbbbbbbbbb".into()]);
        let cases: [(&str, &str, bool); 8] = [
            ("authorization", "Bearer k1-aaaaaaaaaaaaaaaa", true),
            ("authorization", "bearer k2-bbbbbbbbbbbbbbbb", true),
            ("x-api-key", "k2-bbbbbbbbbbbbbbbb", true),
            ("authorization", "Bearer wrong", false),
            ("authorization", "Basic k1-aaaaaaaaaaaaaaaa", false),
            ("authorization", "k1-aaaaaaaaaaaaaaaa", false),
            ("x-api-key", "k1-aaaaaaaaaaaaaaa", false),
            ("x-other", "k1-aaaaaaaaaaaaaaaa", false),
        ];
        for (name, value, want) in cases {
            let mut h = HeaderMap::new();
            h.insert(
                axum::http::HeaderName::from_static(name),
                value.parse().unwrap(),
            );
            assert_eq!(keys.allows(&h), want, "{name}: {value}");
        }
        assert!(!keys.allows(&HeaderMap::new()));
    }
}
