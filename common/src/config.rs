//! Configuration plumbing shared by both services: YAML files parsed into typed values with
//! unknown keys refused and errors that name the field (architecture.md "Configuration").

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The five Regional Internet Registries (BR 3.2.2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Rir {
    /// North America.
    #[serde(rename = "ARIN")]
    Arin,
    /// Europe, the Middle East, Central Asia.
    #[serde(rename = "RIPE NCC")]
    RipeNcc,
    /// Asia-Pacific.
    #[serde(rename = "APNIC")]
    Apnic,
    /// Latin America and the Caribbean.
    #[serde(rename = "LACNIC")]
    Lacnic,
    /// Africa.
    #[serde(rename = "AFRINIC")]
    Afrinic,
}

impl Rir {
    /// All five.
    pub const ALL: [Rir; 5] = [
        Rir::Arin,
        Rir::RipeNcc,
        Rir::Apnic,
        Rir::Lacnic,
        Rir::Afrinic,
    ];

    /// The name as written in configs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Rir::Arin => "ARIN",
            Rir::RipeNcc => "RIPE NCC",
            Rir::Apnic => "APNIC",
            Rir::Lacnic => "LACNIC",
            Rir::Afrinic => "AFRINIC",
        }
    }
}

impl fmt::Display for Rir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration that cannot be used; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// An error about `field`.
    pub fn field(field: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError(format!("{field}: {message}"))
    }
}

/// Reads and parses a YAML file into `T` (whose types deny unknown fields).
pub fn load_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
    parse_yaml(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
}

/// Parses YAML text into `T`, naming the failing field path.
pub fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let de = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ConfigError(e.into_inner().to_string())
        } else {
            ConfigError(format!("field `{path}`: {}", e.into_inner()))
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        rir: Rir,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_yaml::<Outer>("inner:\n  rir: MARS\n").unwrap_err();
        assert!(e.0.contains("inner.rir"), "{e}");
        let e = parse_yaml::<Outer>("inner:\n  rir: ARIN\n  extra: 1\n").unwrap_err();
        assert!(e.0.contains("extra"), "{e}");
        let ok = parse_yaml::<Outer>("inner:\n  rir: RIPE NCC\n").unwrap();
        assert_eq!(ok.inner.rir, Rir::RipeNcc);
    }
}
