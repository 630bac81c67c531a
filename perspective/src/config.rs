//! The perspective's configuration file (YAML; unknown keys refused; every error names the
//! field, before any port is bound).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mpic_common::config::{ConfigError, Rir, load_yaml};
use mpic_common::serve::{ConnectionLimits, ShutdownSettings};
use mpic_common::target::Target;
use serde::{Deserialize, Serialize};

use crate::dcv::http_fetch::{DEFAULT_MAX_REDIRECTS, MAX_REDIRECTS_LIMIT};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerspectiveConfig {
    /// Address to serve on, e.g. `0.0.0.0:8443`.
    pub listen: SocketAddr,
    /// Address of the operations listener (`/healthz`, `/readyz`, `/metrics`, `/configz`,
    /// plain HTTP, no client certificate), e.g. `0.0.0.0:9443`: for probes and scrapers on a
    /// private network. Without it these are served on the API port only, to holders of a
    /// client certificate.
    #[serde(default)]
    pub ops_listen: Option<SocketAddr>,
    /// What one client connection may hold (both listeners; the operations listener holds
    /// few connections).
    #[serde(default)]
    pub connections: ConnectionLimits,
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
    /// The HTTP and TLS-ALPN methods.
    #[serde(default)]
    pub web: WebConfig,
    /// On SIGTERM: how long to keep serving while not ready, and how long checks in flight
    /// get once the listeners have closed (at least `limits.check_timeout_ms`).
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    /// Mutual TLS; required unless `danger_plain_http` is set.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How often the TLS files are read for a change (`mpic_common::reload`).
    #[serde(default)]
    pub reload: mpic_common::reload::ReloadSettings,
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
    /// An unanswered UDP query is sent again after this long, in milliseconds (or later, while
    /// the resolver answers slower than that: its smoothed answer time plus four deviations,
    /// RFC 6298), and then after twice the interval before each time, until `timeout_ms`;
    /// default half of `timeout_ms` (one resend). Set it a little above the resolver's slowest usual answer (its round
    /// trip plus its own upstream lookups): a lost datagram then costs this long rather than
    /// half the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ms: Option<u64>,
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

/// The HTTP and TLS-ALPN methods (website change, http-01, tls-alpn-01).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// `User-Agent` of every request; default `mpic-perspective/<version> (perspective <code>)`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Most bytes of a response body read and searched.
    #[serde(default = "default_max_body_read_bytes")]
    pub max_body_read_bytes: usize,
    /// Bound of one TCP connect, in milliseconds (the IPv4 fallback gets its own).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Most redirects one fetch follows, 1..=50 (default 20: the reference's limit, which Open
    /// MPIC's compliance suite relies on; the BR set none).
    #[serde(default = "default_max_redirects")]
    pub max_redirects: usize,
    /// PEM roots to validate HTTPS certificates against. Unset (the default): HTTPS
    /// certificates are not validated, as the BR do not require it.
    #[serde(default)]
    pub https_ca_file: Option<PathBuf>,
    /// Allow loopback targets (127.0.0.0/8, ::1). For tests only: it lets a request make the
    /// perspective fetch from its own host. Logged at warn when on.
    #[serde(default)]
    pub danger_allow_loopback_targets: bool,
    /// Dial this port for `http` URLs instead of 80 (and allow it in redirects). Tests only.
    #[serde(default)]
    pub danger_http_port: Option<u16>,
    /// Dial this port for `https` URLs instead of 443 (and allow it in redirects). Tests only.
    #[serde(default)]
    pub danger_https_port: Option<u16>,
    /// Dial this port for tls-alpn-01 instead of 443. Tests only.
    #[serde(default)]
    pub danger_tls_alpn_port: Option<u16>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            user_agent: None,
            max_body_read_bytes: default_max_body_read_bytes(),
            connect_timeout_ms: default_connect_timeout_ms(),
            max_redirects: default_max_redirects(),
            https_ca_file: None,
            danger_allow_loopback_targets: false,
            danger_http_port: None,
            danger_https_port: None,
            danger_tls_alpn_port: None,
        }
    }
}

/// Default of `web.max_body_read_bytes`: twice the longest challenge value a request may carry
/// ([`mpic_common::validate::MAX_PARAMETER_BYTES`], 4 KiB), so the value can follow a page
/// header as long as itself and still be found, while a hostile server can make us buffer no
/// more than this per check.
pub const DEFAULT_MAX_BODY_READ_BYTES: usize = 2 * mpic_common::validate::MAX_PARAMETER_BYTES;
/// Smallest `web.max_body_read_bytes`: the longest challenge value must fit.
const MIN_BODY_READ_BYTES: usize = mpic_common::validate::MAX_PARAMETER_BYTES;
/// Largest `web.max_body_read_bytes`.
const MAX_BODY_READ_BYTES: usize = 1 << 20;

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
/// The shortest `resolver.retry_ms`: more often than this is a flood, not a retry.
const MIN_DNS_RETRY_MS: u64 = 10;

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
        if let Some(retry) = self.resolver.retry_ms
            && !(MIN_DNS_RETRY_MS..=self.resolver.timeout_ms).contains(&retry)
        {
            return Err(ConfigError::field(
                "resolver.retry_ms",
                format!("must be {MIN_DNS_RETRY_MS}..=resolver.timeout_ms"),
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
        self.web.validate(self.limits.check_timeout_ms)?;
        self.connections.validate("connections")?;
        self.shutdown.validate(
            "shutdown",
            self.limits.check_timeout_ms,
            "limits.check_timeout_ms",
        )?;
        if self
            .ops_listen
            .is_some_and(|ops| ops.port() != 0 && ops == self.listen)
        {
            return Err(ConfigError::field("ops_listen", "must differ from listen"));
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

    /// The configuration as `/configz` shows it: certificate, key and CA files are left out
    /// (each replaced by whether it is set), so that the view tells nothing of the
    /// deployment's layout.
    pub fn public_view(&self) -> serde_json::Value {
        let mut view = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = view.as_object_mut() {
            fields.insert("tls".into(), self.tls.is_some().into());
            if let Some(web) = fields
                .get_mut("web")
                .and_then(serde_json::Value::as_object_mut)
            {
                web.insert(
                    "https_ca_file".into(),
                    self.web.https_ca_file.is_some().into(),
                );
            }
        }
        view
    }

    /// The lookup deadline.
    pub fn dns_timeout(&self) -> Duration {
        Duration::from_millis(self.resolver.timeout_ms)
    }

    /// The soonest an unanswered UDP query is first sent again: `resolver.retry_ms`, or half
    /// the lookup deadline (later while the resolver answers slower; each later resend waits
    /// twice as long as the one before).
    pub fn dns_retry(&self) -> Duration {
        self.resolver
            .retry_ms
            .map_or(self.dns_timeout() / 2, Duration::from_millis)
    }

    /// The whole-check deadline.
    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.check_timeout_ms)
    }
}

impl WebConfig {
    fn validate(&self, check_timeout_ms: u64) -> Result<(), ConfigError> {
        if let Some(ua) = &self.user_agent
            && (ua.is_empty() || ua.len() > 256 || !ua.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(ConfigError::field(
                "web.user_agent",
                "1–256 printable ASCII characters",
            ));
        }
        if !(MIN_BODY_READ_BYTES..=MAX_BODY_READ_BYTES).contains(&self.max_body_read_bytes) {
            return Err(ConfigError::field(
                "web.max_body_read_bytes",
                format!("must be {MIN_BODY_READ_BYTES}..={MAX_BODY_READ_BYTES}"),
            ));
        }
        if self.connect_timeout_ms == 0 || self.connect_timeout_ms > check_timeout_ms {
            return Err(ConfigError::field(
                "web.connect_timeout_ms",
                "must be at least 1 and not exceed limits.check_timeout_ms",
            ));
        }
        if !(1..=MAX_REDIRECTS_LIMIT).contains(&self.max_redirects) {
            return Err(ConfigError::field(
                "web.max_redirects",
                format!("must be 1..={MAX_REDIRECTS_LIMIT}"),
            ));
        }
        if let Some(path) = &self.https_ca_file {
            mpic_common::tls::load_roots("web.https_ca_file", path)?;
        }
        for (key, port) in [
            ("web.danger_http_port", self.danger_http_port),
            ("web.danger_https_port", self.danger_https_port),
            ("web.danger_tls_alpn_port", self.danger_tls_alpn_port),
        ] {
            if port == Some(0) {
                return Err(ConfigError::field(key, "must be a port number, 1..=65535"));
            }
        }
        Ok(())
    }
}

fn default_max_body_read_bytes() -> usize {
    DEFAULT_MAX_BODY_READ_BYTES
}

fn default_connect_timeout_ms() -> u64 {
    3_000
}

fn default_max_redirects() -> usize {
    DEFAULT_MAX_REDIRECTS
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
        assert_eq!(config.web.max_redirects, DEFAULT_MAX_REDIRECTS);
    }

    #[test]
    fn the_dns_retry_defaults_to_half_the_deadline() {
        let mut config: PerspectiveConfig = mpic_common::config::parse_yaml(
            &MINIMAL.replace("127.0.0.1:53}", "127.0.0.1:53, timeout_ms: 3000}"),
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.dns_retry(), Duration::from_millis(1_500));
        config.resolver.retry_ms = Some(300);
        config.validate().unwrap();
        assert_eq!(config.dns_retry(), Duration::from_millis(300));
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
            ("web", format!("{MINIMAL}web: {{colour: red}}\n")),
            ("reload", format!("{MINIMAL}reload: {{colour: red}}\n")),
            ("shutdown", format!("{MINIMAL}shutdown: {{colour: red}}\n")),
            (
                "web beside danger keys",
                format!(
                    "{MINIMAL}web: {{danger_allow_loopback_targets: true, danger_http_port: 80, colour: red}}\n"
                ),
            ),
        ];
        for (name, text) in cases {
            let err = mpic_common::config::parse_yaml::<PerspectiveConfig>(&text).unwrap_err();
            assert!(err.0.contains("colour"), "{name}: {err}");
        }
        // A misspelt danger setting is refused, never silently ignored.
        let err = mpic_common::config::parse_yaml::<PerspectiveConfig>(&format!(
            "{MINIMAL}web: {{danger_alow_loopback_targets: true}}\n"
        ))
        .unwrap_err();
        assert!(err.0.contains("danger_alow_loopback_targets"), "{err}");
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
                name: "retry more often than a flood",
                yaml: MINIMAL.replace("127.0.0.1:53}", "127.0.0.1:53, retry_ms: 5}"),
                field: "resolver.retry_ms",
            },
            Case {
                name: "retry after the deadline",
                yaml: MINIMAL.replace(
                    "127.0.0.1:53}",
                    "127.0.0.1:53, timeout_ms: 500, retry_ms: 501}",
                ),
                field: "resolver.retry_ms",
            },
            Case {
                name: "tiny body",
                yaml: format!("{MINIMAL}limits: {{max_body_bytes: 10}}\n"),
                field: "limits.max_body_bytes",
            },
            Case {
                name: "tiny body read",
                yaml: format!("{MINIMAL}web: {{max_body_read_bytes: 100}}\n"),
                field: "web.max_body_read_bytes",
            },
            Case {
                name: "connect timeout above the check's",
                yaml: format!("{MINIMAL}web: {{connect_timeout_ms: 20000}}\n"),
                field: "web.connect_timeout_ms",
            },
            Case {
                name: "user agent with a newline",
                yaml: format!("{MINIMAL}web: {{user_agent: \"a\\nb\"}}\n"),
                field: "web.user_agent",
            },
            Case {
                name: "no redirect at all",
                yaml: format!("{MINIMAL}web: {{max_redirects: 0}}\n"),
                field: "web.max_redirects",
            },
            Case {
                name: "too many redirects",
                yaml: format!("{MINIMAL}web: {{max_redirects: 51}}\n"),
                field: "web.max_redirects",
            },
            Case {
                name: "port zero",
                yaml: format!("{MINIMAL}web: {{danger_tls_alpn_port: 0}}\n"),
                field: "web.danger_tls_alpn_port",
            },
            Case {
                name: "a drain shorter than a check",
                yaml: format!(
                    "{MINIMAL}limits: {{check_timeout_ms: 10000}}\nshutdown: {{drain_timeout_ms: 9000}}\n"
                ),
                field: "shutdown.drain_timeout_ms",
            },
            Case {
                name: "missing roots",
                yaml: format!("{MINIMAL}web: {{https_ca_file: /nonexistent/roots.pem}}\n"),
                field: "web.https_ca_file",
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
