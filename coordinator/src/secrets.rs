//! The cohort hash secret as it is in use: from an environment variable (fixed) or a file
//! (read again when it changes, `mpic_common::reload`). A changed secret changes every
//! target's cohorts, so its reload is logged at warn.

use std::path::Path;
use std::sync::Arc;

use mpic_common::config::ConfigError;
use mpic_common::reload::{Built, Material, Reloader, Swap};

/// The secret keying the cohort hash (`hash_secret`).
#[derive(Clone)]
pub struct HashSecret(Arc<Swap<Vec<u8>>>);

impl std::fmt::Debug for HashSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.write_str("HashSecret(..)")
    }
}

impl From<Vec<u8>> for HashSecret {
    /// A fixed secret.
    fn from(secret: Vec<u8>) -> HashSecret {
        HashSecret(Arc::new(Swap::new(Arc::new(secret))))
    }
}

impl HashSecret {
    /// From the file at `path`, read again when it changes; a file that no longer holds a
    /// valid secret is refused and the secret in use stays.
    pub fn watched(reloader: &mut Reloader, path: &Path) -> Result<HashSecret, ConfigError> {
        let secret = reloader.load(
            Material::new(
                "hash_secret",
                "hash_secret",
                vec![path.to_owned()],
                |contents: &[Vec<u8>]| {
                    Ok(Built {
                        value: Arc::new(
                            parse_hash_secret(text(contents)?).map_err(|e| e.to_string())?,
                        ),
                        certificates: Vec::new(),
                    })
                },
            )
            .caution("the hash secret changed: every target's cohorts change"),
        )?;
        Ok(HashSecret(secret))
    }

    /// The secret now.
    pub fn get(&self) -> Arc<Vec<u8>> {
        self.0.get()
    }
}

/// The hash secret in `text`: surrounding white space dropped, at least
/// [`MIN_HASH_SECRET_BYTES`] left.
pub fn parse_hash_secret(text: &str) -> Result<Vec<u8>, ConfigError> {
    let secret = text.trim().as_bytes().to_vec();
    if secret.len() < MIN_HASH_SECRET_BYTES {
        return Err(ConfigError::field(
            "hash_secret",
            format!("must be at least {MIN_HASH_SECRET_BYTES} bytes"),
        ));
    }
    Ok(secret)
}

/// The one file of a secret as text.
pub(crate) fn text(contents: &[Vec<u8>]) -> Result<&str, String> {
    let [file] = contents else {
        return Err("one file is needed".to_owned());
    };
    std::str::from_utf8(file).map_err(|_| "not UTF-8 text".to_owned())
}

/// The shortest hash secret accepted: 128 bits.
pub const MIN_HASH_SECRET_BYTES: usize = 16;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A secret from a file follows it; one too short is refused and the one in use stays.
    #[test]
    fn a_secret_from_a_file_follows_it() {
        let dir = mpic_tests::temp::TempDir::new();
        let path = dir.0.join("hash-secret");
        std::fs::write(&path, "first-secret-0123456789\n").unwrap();
        let mut reloader = Reloader::unwatched();
        let secret = HashSecret::watched(&mut reloader, &path).unwrap();
        assert_eq!(secret.get().as_slice(), b"first-secret-0123456789");
        let mut read_twice = |text: &str| {
            std::fs::write(&path, text).unwrap();
            reloader.poll(0);
            reloader.poll(0);
        };
        read_twice("second-secret-0123456789");
        assert_eq!(secret.get().as_slice(), b"second-secret-0123456789");
        read_twice("too-short");
        assert_eq!(secret.get().as_slice(), b"second-secret-0123456789");
    }
}
