//! The perspective's configuration file (YAML; unknown keys refused; every error names the
//! field, before any port is bound).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mpic_common::config::{ConfigError, Rir, load_yaml};
use mpic_common::target::Target;
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerspectiveConfig {
    /// Address to serve on, e.g. `0.0.0.0:8443`.
    pub listen: SocketAddr,
    /// Who this perspective is.
    pub perspective: Identity,
    /// Its own validating resolver (the Unbound sidecar).
    pub resolver: ResolverConfig,
    /// CAA settings.
    #[serde(default)]
    pub caa: CaaConfig,
    /// Deadlines and size limits.
    #[serde(default)]
    pub limits: Limits,
    /// Mutual TLS; required unless `danger_plain_http` is set.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Serve plain HTTP without client authentication. For tests only: anyone who can reach
    /// the port can then run checks. Logged at warn when on.
    #[serde(default)]
    pub danger_plain_http: bool,
}

/// The perspective's identity, reported in the `x-mpic-perspective` header of every reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The code the coordinator's catalogue knows it by, e.g. `us-east-1`.
    pub code: String,
    /// The Regional Internet Registry its network sits in (BR 3.2.2.9).
    pub rir: Rir,
}

/// The resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    /// `host:port` of the DNSSEC-validating resolver this perspective alone uses.
    pub address: SocketAddr,
    /// Deadline of one lookup (UDP, plus TCP after truncation), in milliseconds.
    #[serde(default = "default_dns_timeout_ms")]
    pub timeout_ms: u64,
}

/// CAA settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CaaConfig {
    /// Issuer domain names of the CA (RFC 8659 4.2), used when a request names none.
    #[serde(default)]
    pub default_issuer_domains: Vec<String>,
}

/// Deadlines and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Deadline of one whole check, in milliseconds.
    #[serde(default = "default_check_timeout_ms")]
    pub check_timeout_ms: u64,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Checks run at once; more are refused with 503 rather than queued.
    #[serde(default = "default_max_concurrent_checks")]
    pub max_concurrent_checks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            check_timeout_ms: default_check_timeout_ms(),
            max_body_bytes: default_max_body_bytes(),
            max_concurrent_checks: default_max_concurrent_checks(),
        }
    }
}

/// Server certificate and the CA that issues the coordinator's client certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of this perspective.
    pub certificate: PathBuf,
    /// PEM private key.
    pub private_key: PathBuf,
    /// PEM CA certificate(s) that client certificates must chain to.
    pub client_ca: PathBuf,
}

/// Largest accepted `max_body_bytes`.
const MAX_BODY_LIMIT: usize = 1 << 20;

impl PerspectiveConfig {
    /// Loads and checks a file.
    pub fn load(path: &Path) -> Result<PerspectiveConfig, ConfigError> {
        let config: PerspectiveConfig = load_yaml(path)?;
        config
            .validate()
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let code = &self.perspective.code;
        if code.is_empty()
            || code.len() > 64
            || !code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ConfigError::field(
                "perspective.code",
                "1–64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        for (i, name) in self.caa.default_issuer_domains.iter().enumerate() {
            match Target::parse(name) {
                Ok(Target::Domain(d)) if !d.is_wildcard() && d.name() == name => {}
                Ok(_) => {
                    return Err(ConfigError::field(
                        &format!("caa.default_issuer_domains[{i}]"),
                        format!("{name:?} must be a lowercase A-label domain name"),
                    ));
                }
                Err(e) => {
                    return Err(ConfigError::field(
                        &format!("caa.default_issuer_domains[{i}]"),
                        format!("{name:?}: {e}"),
                    ));
                }
            }
        }
        if !(1..=60_000).contains(&self.resolver.timeout_ms) {
            return Err(ConfigError::field(
                "resolver.timeout_ms",
                "must be 1..=60000",
            ));
        }
        if !(1..=300_000).contains(&self.limits.check_timeout_ms) {
            return Err(ConfigError::field(
                "limits.check_timeout_ms",
                "must be 1..=300000",
            ));
        }
        if self.resolver.timeout_ms > self.limits.check_timeout_ms {
            return Err(ConfigError::field(
                "resolver.timeout_ms",
                "must not exceed limits.check_timeout_ms",
            ));
        }
        if !(1024..=MAX_BODY_LIMIT).contains(&self.limits.max_body_bytes) {
            return Err(ConfigError::field(
                "limits.max_body_bytes",
                format!("must be 1024..={MAX_BODY_LIMIT}"),
            ));
        }
        if self.limits.max_concurrent_checks == 0 {
            return Err(ConfigError::field(
                "limits.max_concurrent_checks",
                "must be at least 1",
            ));
        }
        match (&self.tls, self.danger_plain_http) {
            (None, false) => Err(ConfigError::field(
                "tls",
                "required (mutual TLS with the coordinator); set danger_plain_http only for tests",
            )),
            (Some(_), true) => Err(ConfigError::field(
                "danger_plain_http",
                "cannot be combined with tls",
            )),
            _ => Ok(()),
        }
    }

    /// The lookup deadline.
    pub fn dns_timeout(&self) -> Duration {
        Duration::from_millis(self.resolver.timeout_ms)
    }

    /// The whole-check deadline.
    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.check_timeout_ms)
    }
}

fn default_dns_timeout_ms() -> u64 {
    2_000
}

fn default_check_timeout_ms() -> u64 {
    10_000
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}

fn default_max_concurrent_checks() -> usize {
    1_024
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/perspective.yaml");
        let config: PerspectiveConfig = load_yaml(&path).unwrap();
        config.validate().unwrap();
        assert_eq!(config.perspective.rir, Rir::Arin);
    }

    const MINIMAL: &str = "listen: 127.0.0.1:0\nperspective: {code: p1, rir: ARIN}\nresolver: {address: 127.0.0.1:53}\ndanger_plain_http: true\n";

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        let cases = [
            ("top", format!("{MINIMAL}colour: red\n")),
            (
                "perspective",
                MINIMAL.replace("rir: ARIN}", "rir: ARIN, colour: red}"),
            ),
            (
                "resolver",
                MINIMAL.replace("127.0.0.1:53}", "127.0.0.1:53, colour: red}"),
            ),
            ("caa", format!("{MINIMAL}caa: {{colour: red}}\n")),
            ("limits", format!("{MINIMAL}limits: {{colour: red}}\n")),
            (
                "tls",
                format!(
                    "{MINIMAL}tls: {{certificate: a, private_key: b, client_ca: c, colour: red}}\n"
                ),
            ),
        ];
        for (name, text) in cases {
            let err = mpic_common::config::parse_yaml::<PerspectiveConfig>(&text).unwrap_err();
            assert!(err.0.contains("colour"), "{name}: {err}");
        }
    }

    #[test]
    fn semantic_errors_name_the_field() {
        struct Case {
            name: &'static str,
            yaml: String,
            field: &'static str,
        }
        let cases = [
            Case {
                name: "no tls",
                yaml: MINIMAL.replace("danger_plain_http: true\n", ""),
                field: "tls",
            },
            Case {
                name: "bad code",
                yaml: MINIMAL.replace("code: p1", "code: 'a b'"),
                field: "perspective.code",
            },
            Case {
                name: "bad issuer",
                yaml: format!("{MINIMAL}caa: {{default_issuer_domains: [ca.example, 'x y']}}\n"),
                field: "caa.default_issuer_domains[1]",
            },
            Case {
                name: "zero timeout",
                yaml: MINIMAL.replace("127.0.0.1:53}", "127.0.0.1:53, timeout_ms: 0}"),
                field: "resolver.timeout_ms",
            },
            Case {
                name: "tiny body",
                yaml: format!("{MINIMAL}limits: {{max_body_bytes: 10}}\n"),
                field: "limits.max_body_bytes",
            },
        ];
        for c in cases {
            let config: PerspectiveConfig = mpic_common::config::parse_yaml(&c.yaml).unwrap();
            let err = config.validate().unwrap_err();
            assert!(err.0.starts_with(c.field), "{}: {err}", c.name);
        }
        let err =
            mpic_common::config::parse_yaml::<PerspectiveConfig>(&MINIMAL.replace("ARIN", "MARS"))
                .unwrap_err();
        assert!(err.0.contains("perspective.rir"), "{err}");
        let err = mpic_common::config::parse_yaml::<PerspectiveConfig>(
            &MINIMAL.replace("127.0.0.1:53", "nowhere"),
        )
        .unwrap_err();
        assert!(err.0.contains("resolver.address"), "{err}");
    }
}
