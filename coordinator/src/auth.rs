//! API-key authentication of the CA backend (architecture.md "Security model"):
//! `Authorization: Bearer <key>` or `x-api-key: <key>`, compared in constant time. Keys from
//! a file are reloaded when it changes (`mpic_common::reload`): a key removed from the file is
//! refused from the next request on.

use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderMap;
use mpic_common::config::ConfigError;
use mpic_common::reload::{Built, Material, Reloader, Swap};
use sha2::{Digest as _, Sha256};

use crate::config::parse_api_keys;

/// The accepted keys, kept only as SHA-256 digests.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Arc<Swap<Vec<[u8; 32]>>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.get().len())
    }
}

impl ApiKeys {
    /// From the plain keys, fixed (an environment variable cannot change).
    pub fn new(keys: &[String]) -> ApiKeys {
        ApiKeys {
            digests: Arc::new(Swap::new(Arc::new(digests(keys)))),
        }
    }

    /// From the file at `path` (one key a line), read again when it changes; a file that no
    /// longer holds a valid key list is refused and the keys in use stay.
    pub fn watched(reloader: &mut Reloader, path: &Path) -> Result<ApiKeys, ConfigError> {
        let digests = reloader.load(Material::new(
            "api_keys",
            "api_keys",
            vec![path.to_owned()],
            |contents: &[Vec<u8>]| {
                let keys =
                    parse_api_keys(crate::secrets::text(contents)?).map_err(|e| e.to_string())?;
                Ok(Built {
                    value: Arc::new(digests(&keys)),
                    certificates: Vec::new(),
                })
            },
        ))?;
        Ok(ApiKeys { digests })
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
        for d in self.digests.get().iter() {
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

fn digests(keys: &[String]) -> Vec<[u8; 32]> {
    keys.iter().map(|k| digest(k.as_bytes())).collect()
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

    /// Keys from a file follow it: a key removed is refused once the change is read twice,
    /// and a file without a valid key list is refused, the keys in use staying.
    #[test]
    fn keys_from_a_file_follow_it() {
        let dir = mpic_tests::temp::TempDir::new();
        let path = dir.0.join("api-keys");
        std::fs::write(&path, "k1-aaaaaaaaaaaaaaaa\nk2-bbbbbbbbbbbbbbbb\n").unwrap();
        let mut reloader = Reloader::unwatched();
        let keys = ApiKeys::watched(&mut reloader, &path).unwrap();
        let allowed = |key: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-api-key", key.parse().unwrap());
            keys.allows(&h)
        };
        let mut read_twice = |text: &str| {
            std::fs::write(&path, text).unwrap();
            reloader.poll(0);
            reloader.poll(0);
        };
        assert!(allowed("k1-aaaaaaaaaaaaaaaa") && allowed("k2-bbbbbbbbbbbbbbbb"));
        read_twice("k2-bbbbbbbbbbbbbbbb\n");
        assert!(!allowed("k1-aaaaaaaaaaaaaaaa"), "removed");
        assert!(allowed("k2-bbbbbbbbbbbbbbbb"));
        read_twice("short\n");
        assert!(
            allowed("k2-bbbbbbbbbbbbbbbb"),
            "the refused file changes nothing"
        );
        assert!(!allowed("short"));
    }
}
