//! The coordinator's configuration file (YAML; unknown keys refused; errors name the field,
//! before any port is bound). Secrets (API keys, the cohort hash secret) come from the
//! environment or a file, never from the file itself.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mpic_common::config::{ConfigError, Rir, load_yaml};
use mpic_common::serve::{ConnectionLimits, ShutdownSettings};
use serde::{Deserialize, Serialize};

use crate::cohort::{self, Member};
use crate::policy::{ConfigFacts, Policy, PolicyMode, RulesConfig, Treatment};
use crate::rules::{self, Clock, Date, Rule, SystemClock};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Address of the API, e.g. `0.0.0.0:8080`.
    pub listen: SocketAddr,
    /// Address of the operations listener (`/healthz`, `/readyz`, `/metrics`, `/configz`,
    /// plain HTTP, no API key), e.g. `0.0.0.0:9090`: for probes and scrapers on a private
    /// network, never for the public. Without it, `/metrics` and `/configz` are served on
    /// the API port to API-key holders only.
    #[serde(default)]
    pub ops_listen: Option<SocketAddr>,
    /// What one client connection may hold (both listeners; the operations listener holds
    /// few connections).
    #[serde(default)]
    pub connections: ConnectionLimits,
    /// TLS for the API itself; without it the API is plain HTTP (put it behind a
    /// TLS-terminating load balancer).
    #[serde(default)]
    pub api_tls: Option<ApiTls>,
    /// Where the API keys come from.
    pub api_keys: SecretSource,
    /// Where the cohort hash secret comes from.
    pub hash_secret: SecretSource,
    /// How often certificates, keys, CA bundles and secret files are read for a change
    /// (`mpic_common::reload`).
    #[serde(default)]
    pub reload: mpic_common::reload::ReloadSettings,
    /// Cohort size when a request names none.
    #[serde(default = "default_perspective_count")]
    pub default_perspective_count: u32,
    /// The absolute maximum of attempts a request may ask for.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Deadlines.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// How the dated BR rules ([`crate::rules`]: the minimum of perspectives, the retired
    /// methods) are applied: `enforce` (default), `warn` or `off`.
    #[serde(default)]
    pub policy: PolicyMode,
    /// Exceptions to the dated rules.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Size and concurrency limits.
    #[serde(default)]
    pub limits: Limits,
    /// On SIGTERM: how long to keep serving while not ready, and how long requests in flight
    /// get once the listeners have closed (at least `timeouts.request_ms`).
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    /// Mutual TLS towards the perspectives; required unless
    /// `danger_plain_http_perspectives` is set.
    #[serde(default)]
    pub perspective_tls: Option<PerspectiveTls>,
    /// Call perspectives over plain HTTP without authentication. For tests only.
    #[serde(default)]
    pub danger_plain_http_perspectives: bool,
    /// The perspectives.
    pub perspectives: Vec<PerspectiveEntry>,
}

/// TLS of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTls {
    /// PEM certificate chain.
    pub certificate: PathBuf,
    /// PEM private key.
    pub private_key: PathBuf,
}

/// A secret by reference: exactly one of an environment variable or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// The variable whose value is the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// The file whose contents are the secret.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl SecretSource {
    /// Reads the secret; the error names `field`.
    pub fn read(&self, field: &str) -> Result<String, ConfigError> {
        match (&self.env, &self.file) {
            (Some(var), None) => std::env::var(var).map_err(|_| {
                ConfigError::field(field, format!("environment variable {var} is not set"))
            }),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| ConfigError::field(field, format!("{}: {e}", path.display()))),
            _ => Err(ConfigError::field(
                field,
                "give exactly one of `env` or `file`",
            )),
        }
    }
}

/// Deadlines, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// One perspective call.
    #[serde(default = "default_call_ms")]
    pub perspective_call_ms: u64,
    /// The whole request from its headers on: reading its body and every attempt.
    #[serde(default = "default_request_ms")]
    pub request_ms: u64,
    /// How long stragglers may still answer once the verdict cannot change.
    #[serde(default = "default_grace_ms")]
    pub straggler_grace_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            perspective_call_ms: default_call_ms(),
            request_ms: default_request_ms(),
            straggler_grace_ms: default_grace_ms(),
        }
    }
}

/// Limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Requests in flight; more are shed with 503 and `Retry-After`. Size it by Little's law:
    /// the peak rate to serve × the p99 latency of a request at the fleet's distances (e.g.
    /// 1,000/s × 0.5 s = 500), with room to spare; each costs about 20–30 KiB while in flight.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// HTTP/2 connections to one perspective, at most; opened as calls need them, 200 streams
    /// each. `max_concurrent_requests` / 200, rounded up, is enough: a request has at most
    /// one call in flight to a perspective.
    #[serde(default = "default_max_connections_per_perspective")]
    pub max_connections_per_perspective: usize,
    /// Moved to `connections.max_open`; refused with a message saying so.
    #[serde(default, skip_serializing)]
    pub max_connections: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: default_max_body_bytes(),
            max_concurrent_requests: default_max_concurrent_requests(),
            max_connections_per_perspective: default_max_connections_per_perspective(),
            max_connections: None,
        }
    }
}

/// Client certificate and the CA that issues the perspectives' certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerspectiveTls {
    /// PEM client certificate of the coordinator.
    pub certificate: PathBuf,
    /// PEM private key.
    pub private_key: PathBuf,
    /// PEM CA certificate(s) the perspectives' server certificates chain to.
    pub ca: PathBuf,
}

/// One perspective of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerspectiveEntry {
    /// Its code; it must answer with this code in `x-mpic-perspective`.
    pub code: String,
    /// A human name, e.g. "US East (Virginia)".
    pub name: String,
    /// Its Regional Internet Registry.
    pub rir: Rir,
    /// Latitude in degrees (−90..90).
    pub latitude: f64,
    /// Longitude in degrees (−180..180).
    pub longitude: f64,
    /// Base URL, e.g. `https://p-us-east-1.mpic.internal:8443`.
    pub url: String,
    /// Codes that must never share a cohort with this one (an extra veto beside distance).
    #[serde(default)]
    pub too_close_codes: Vec<String>,
    /// The expected network round trip from the coordinator to it, in milliseconds (e.g. 80
    /// from us-east to eu-west). Only `mpic config check` and the start-up log read it: they
    /// warn about deadlines and limits that cannot work at that distance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u64>,
}

impl PerspectiveEntry {
    /// As a cohort member.
    pub fn member(&self) -> Member {
        Member {
            code: self.code.clone(),
            rir: self.rir,
            latitude: self.latitude,
            longitude: self.longitude,
            too_close_codes: self.too_close_codes.clone(),
        }
    }
}

impl CoordinatorConfig {
    /// Loads and checks a file under today's rules.
    pub fn load(path: &Path) -> Result<CoordinatorConfig, ConfigError> {
        CoordinatorConfig::load_at(path, SystemClock.today())
    }

    /// Loads and checks a file under the rules of `date`.
    pub fn load_at(path: &Path, date: Date) -> Result<CoordinatorConfig, ConfigError> {
        let config: CoordinatorConfig = load_yaml(path)?;
        config
            .validate_at(date)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))?;
        Ok(config)
    }

    /// [`CoordinatorConfig::validate_at`] today.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_at(SystemClock.today())
    }

    /// The policy of `policy` and `rules`.
    pub fn rules_policy(&self) -> Policy {
        Policy::new(self.policy, &self.rules)
    }

    /// What the dated rules look at in this configuration.
    pub fn rules_facts(&self) -> ConfigFacts {
        ConfigFacts {
            default_perspective_count: self.default_perspective_count,
            catalogue_size: u32::try_from(self.perspectives.len()).unwrap_or(u32::MAX),
        }
    }

    /// Checks what serde cannot: ranges, the catalogue, and the BR minimum of perspectives in
    /// force on `date` (refused under `policy: enforce`).
    pub fn validate_at(&self, date: Date) -> Result<(), ConfigError> {
        let size = u32::try_from(self.perspectives.len()).unwrap_or(u32::MAX);
        let mut codes = BTreeSet::new();
        for (i, p) in self.perspectives.iter().enumerate() {
            let field = |f: &str| format!("perspectives[{i}].{f}");
            if p.code.is_empty()
                || p.code.len() > 64
                || !p
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(ConfigError::field(
                    &field("code"),
                    "1–64 characters of letters, digits, '-', '_' or '.'",
                ));
            }
            if !codes.insert(p.code.as_str()) {
                return Err(ConfigError::field(
                    &field("code"),
                    format!("{:?} appears twice", p.code),
                ));
            }
            if !(-90.0..=90.0).contains(&p.latitude) {
                return Err(ConfigError::field(
                    &field("latitude"),
                    "must be within -90..90",
                ));
            }
            if !(-180.0..=180.0).contains(&p.longitude) {
                return Err(ConfigError::field(
                    &field("longitude"),
                    "must be within -180..180",
                ));
            }
            if p.rtt_ms.is_some_and(|rtt| !(1..=60_000).contains(&rtt)) {
                return Err(ConfigError::field(
                    &field("rtt_ms"),
                    "must be within 1..=60000",
                ));
            }
            let scheme_ok = p.url.starts_with("https://")
                || (self.danger_plain_http_perspectives && p.url.starts_with("http://"));
            let parsed = p.url.parse::<http::Uri>();
            if !scheme_ok || parsed.map_or(true, |u| u.host().is_none_or(str::is_empty)) {
                return Err(ConfigError::field(
                    &field("url"),
                    "must be an https:// URL (http:// only with danger_plain_http_perspectives)",
                ));
            }
        }
        for (i, p) in self.perspectives.iter().enumerate() {
            for (j, c) in p.too_close_codes.iter().enumerate() {
                if !codes.contains(c.as_str()) {
                    return Err(ConfigError::field(
                        &format!("perspectives[{i}].too_close_codes[{j}]"),
                        format!("{c:?} is not a perspective code"),
                    ));
                }
            }
        }
        let n = self.default_perspective_count;
        if n < 2 || n > size {
            return Err(ConfigError::field(
                "default_perspective_count",
                format!("{n} must be within 2..={size} (the perspectives configured)"),
            ));
        }
        let in_force = rules::in_force(date);
        if let Some(row) = in_force.minimum
            && n < in_force.minimum_perspectives()
        {
            let since = if row.effective == date {
                String::new()
            } else {
                format!(" (since {})", row.effective)
            };
            let message = format!(
                "{n} is below the BR {} minimum of {} remote perspectives in force on {date}{since}",
                row.br_section,
                in_force.minimum_perspectives(),
            );
            match self.rules_policy().treatment(row.rule) {
                Treatment::Refused => {
                    return Err(ConfigError::field(
                        "default_perspective_count",
                        format!("{message}; set policy: warn for a lab"),
                    ));
                }
                Treatment::Warned | Treatment::Excepted => {
                    tracing::warn!("default_perspective_count: {message}");
                }
                Treatment::Unchecked => {}
            }
        }
        for (i, method) in self.rules.allow_retired_methods.iter().enumerate() {
            let field = format!("rules.allow_retired_methods[{i}]");
            if !rules::RULES
                .iter()
                .any(|r| r.rule == Rule::Retires(*method))
            {
                return Err(ConfigError::field(
                    &field,
                    format!(
                        "{} is not retired by any dated rule; only a retired method needs an exception",
                        method.as_str()
                    ),
                ));
            }
            if self.rules.allow_retired_methods[..i].contains(method) {
                return Err(ConfigError::field(
                    &field,
                    format!("{} appears twice", method.as_str()),
                ));
            }
        }
        let members: Vec<Member> = self
            .perspectives
            .iter()
            .map(PerspectiveEntry::member)
            .collect();
        if cohort::cohorts(&members, n as usize, [0; 32]).is_empty() {
            return Err(ConfigError::field(
                "perspectives",
                format!(
                    "no cohort of {n} can be built: every cohort needs members at least {} km apart, not listed as too close, from at least two RIRs",
                    cohort::MIN_DISTANCE_KM
                ),
            ));
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err(ConfigError::field("max_attempts", "must be within 1..=10"));
        }
        let t = &self.timeouts;
        if !(1..=60_000).contains(&t.perspective_call_ms) {
            return Err(ConfigError::field(
                "timeouts.perspective_call_ms",
                "must be within 1..=60000",
            ));
        }
        if t.request_ms < t.perspective_call_ms || t.request_ms > 300_000 {
            return Err(ConfigError::field(
                "timeouts.request_ms",
                "must be at least timeouts.perspective_call_ms and at most 300000",
            ));
        }
        if t.straggler_grace_ms > t.perspective_call_ms {
            return Err(ConfigError::field(
                "timeouts.straggler_grace_ms",
                "must not exceed timeouts.perspective_call_ms",
            ));
        }
        if !(1024..=(1 << 20)).contains(&self.limits.max_body_bytes) {
            return Err(ConfigError::field(
                "limits.max_body_bytes",
                "must be within 1024..=1048576",
            ));
        }
        if self.limits.max_concurrent_requests == 0 {
            return Err(ConfigError::field(
                "limits.max_concurrent_requests",
                "must be at least 1",
            ));
        }
        if !(1..=MAX_CONNECTIONS_PER_PERSPECTIVE)
            .contains(&self.limits.max_connections_per_perspective)
        {
            return Err(ConfigError::field(
                "limits.max_connections_per_perspective",
                format!("must be within 1..={MAX_CONNECTIONS_PER_PERSPECTIVE}"),
            ));
        }
        if self.limits.max_connections.is_some() {
            return Err(ConfigError::field(
                "limits.max_connections",
                "moved to connections.max_open",
            ));
        }
        self.connections.validate("connections")?;
        self.shutdown
            .validate("shutdown", t.request_ms, "timeouts.request_ms")?;
        if self
            .ops_listen
            .is_some_and(|ops| ops.port() != 0 && ops == self.listen)
        {
            return Err(ConfigError::field("ops_listen", "must differ from listen"));
        }
        for (field, source) in [
            ("api_keys", &self.api_keys),
            ("hash_secret", &self.hash_secret),
        ] {
            if source.env.is_some() == source.file.is_some() {
                return Err(ConfigError::field(
                    field,
                    "give exactly one of `env` or `file`",
                ));
            }
        }
        match (&self.perspective_tls, self.danger_plain_http_perspectives) {
            (None, false) => Err(ConfigError::field(
                "perspective_tls",
                "required (mutual TLS with the perspectives, BR 3.2.2.9); danger_plain_http_perspectives only for tests",
            )),
            _ => Ok(()),
        }
    }

    /// The configuration as `/configz` shows it: secrets, certificate and key files, the
    /// variables and files secrets come from, and the perspectives' addresses are left out
    /// (each replaced by whether it is set), so that the view tells nothing of the
    /// deployment's layout.
    pub fn public_view(&self) -> serde_json::Value {
        let mut view = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = view.as_object_mut() {
            fields.insert("api_keys".into(), "configured".into());
            fields.insert("hash_secret".into(), "configured".into());
            fields.insert("api_tls".into(), self.api_tls.is_some().into());
            fields.insert(
                "perspective_tls".into(),
                self.perspective_tls.is_some().into(),
            );
            if let Some(list) = fields
                .get_mut("perspectives")
                .and_then(serde_json::Value::as_array_mut)
            {
                for entry in list.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                    entry.remove("url");
                }
            }
        }
        view
    }

    /// One perspective call's deadline.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.timeouts.perspective_call_ms)
    }

    /// The whole request's deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.timeouts.request_ms)
    }

    /// The straggler grace.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.timeouts.straggler_grace_ms)
    }
}

/// The API keys: one per line (file) or comma-separated (environment); blank entries
/// ignored. At least one key of at least 16 bytes is required.
pub fn parse_api_keys(text: &str) -> Result<Vec<String>, ConfigError> {
    let keys: Vec<String> = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() {
        return Err(ConfigError::field("api_keys", "no key given"));
    }
    if keys.iter().any(|k| k.len() < 16) {
        return Err(ConfigError::field(
            "api_keys",
            "every key must be at least 16 characters",
        ));
    }
    Ok(keys)
}

fn default_perspective_count() -> u32 {
    6
}
fn default_max_attempts() -> u32 {
    3
}
fn default_call_ms() -> u64 {
    5_000
}
fn default_request_ms() -> u64 {
    15_000
}
fn default_grace_ms() -> u64 {
    250
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}
/// Size it as sustained rate × the latency you accept (Little's law): beyond what the fleet
/// can answer in time, queued work only turns into timeouts. 2,048 serves about 4,000
/// requests a second at half a second each (Internet distances), at about 50 MiB if all are in
/// flight at once.
fn default_max_concurrent_requests() -> usize {
    2048
}
fn default_max_connections_per_perspective() -> usize {
    crate::channel::DEFAULT_MAX_CONNECTIONS
}
/// The largest `limits.max_connections_per_perspective`: 51,200 streams to one perspective.
const MAX_CONNECTIONS_PER_PERSPECTIVE: usize = 256;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mpic_common::config::parse_yaml;

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/coordinator.yaml");
        let config: CoordinatorConfig = load_yaml(&path).unwrap();
        config.validate().unwrap();
        assert_eq!(config.perspectives.len(), 7);
    }

    fn example() -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/coordinator.yaml"),
        )
        .unwrap()
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        let base = example();
        let cases = [
            ("top", format!("{base}\ncolour: red\n")),
            (
                "timeouts",
                base.replace("timeouts:\n", "timeouts:\n  colour: red\n"),
            ),
            (
                "limits",
                base.replace("limits:\n", "limits:\n  colour: red\n"),
            ),
            (
                "shutdown",
                base.replace(
                    "  pre_stop_delay_ms: 1000",
                    "  pre_stop_delay_ms: 1000\n  colour: red",
                ),
            ),
            (
                "perspective_tls",
                base.replace(
                    "  certificate: /etc/mpic/tls/coordinator.crt\n",
                    "  certificate: /etc/mpic/tls/coordinator.crt\n  colour: red\n",
                ),
            ),
            ("rules", base.replace("rules:\n", "rules:\n  colour: red\n")),
            (
                "perspective entry",
                base.replace(
                    "  - code: us-east-1\n",
                    "  - code: us-east-1\n    colour: red\n",
                ),
            ),
            (
                "secret source",
                base.replace(
                    "api_keys: {env: MPIC_API_KEYS}",
                    "api_keys: {env: MPIC_API_KEYS, colour: red}",
                ),
            ),
        ];
        for (name, text) in cases {
            assert!(
                text.contains("colour"),
                "{name}: the case edits the example"
            );
            let err = parse_yaml::<CoordinatorConfig>(&text).unwrap_err();
            assert!(err.0.contains("colour"), "{name}: {err}");
        }
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let base = example();
        let cases = [
            (
                "duplicate code",
                base.replace("code: eu-west-1", "code: us-east-1"),
                "perspectives[1].code",
            ),
            (
                "bad latitude",
                base.replace("latitude: 53.3", "latitude: 153.3"),
                "perspectives[1].latitude",
            ),
            (
                "plain url",
                base.replace("https://p-eu-west-1", "http://p-eu-west-1"),
                "perspectives[1].url",
            ),
            (
                "unknown too-close code",
                base.replace("too_close_codes: [us-east-2]", "too_close_codes: [nowhere]"),
                "perspectives[0].too_close_codes[0]",
            ),
            (
                "count over catalogue",
                base.replace(
                    "default_perspective_count: 6",
                    "default_perspective_count: 8",
                ),
                "default_perspective_count",
            ),
            (
                "count below BR minimum",
                base.replace(
                    "default_perspective_count: 6",
                    "default_perspective_count: 3",
                ),
                "default_perspective_count",
            ),
            (
                "exception for a method never retired",
                base.replace(
                    "rules:\n  allow_retired_methods: []",
                    "rules:\n  allow_retired_methods: [dns-change]",
                ),
                "rules.allow_retired_methods[0]",
            ),
            (
                "exception listed twice",
                base.replace(
                    "rules:\n  allow_retired_methods: []",
                    "rules:\n  allow_retired_methods: [ip-address, ip-address]",
                ),
                "rules.allow_retired_methods[1]",
            ),
            (
                "grace over call",
                base.replace("straggler_grace_ms: 250", "straggler_grace_ms: 9000"),
                "timeouts.straggler_grace_ms",
            ),
            (
                "drain shorter than a request",
                base.replace(
                    "  pre_stop_delay_ms: 1000",
                    "  pre_stop_delay_ms: 1000\n  drain_timeout_ms: 5000",
                ),
                "shutdown.drain_timeout_ms",
            ),
            (
                "request under call",
                base.replace("request_ms: 15000", "request_ms: 100"),
                "timeouts.request_ms",
            ),
        ];
        for (name, text, field) in cases {
            assert_ne!(text, base, "{name}: the case edits the example");
            let config: CoordinatorConfig = parse_yaml(&text).unwrap();
            let err = config.validate_at(TODAY).unwrap_err();
            assert!(err.0.starts_with(field), "{name}: {err}");
        }
    }

    /// The day the tests validate on (the minimum is 4; 5 from 2026-12-15).
    const TODAY: Date = Date::from_ymd(2026, 12, 4);

    #[test]
    fn the_minimum_of_the_day_validates_the_default_cohort() {
        let four = example().replace(
            "default_perspective_count: 6",
            "default_perspective_count: 4",
        );
        let day = |s: &str| s.parse::<Date>().unwrap();
        let cases = [
            ("enforce", "2026-12-14", true),
            ("enforce", "2026-12-15", false),
            ("warn", "2026-12-15", true),
            ("off", "2026-12-15", true),
        ];
        for (policy, date, ok) in cases {
            let text = four.replace("policy: enforce", &format!("policy: {policy}"));
            let config: CoordinatorConfig = parse_yaml(&text).unwrap();
            let got = config.validate_at(day(date));
            assert_eq!(got.is_ok(), ok, "{policy} on {date}: {got:?}");
            if let Err(e) = got {
                assert!(
                    e.0.contains("below the BR 3.2.2.9 minimum of 5 remote perspectives in force on 2026-12-15; set policy: warn"),
                    "{e}"
                );
            }
        }
        let excepted = example().replace(
            "allow_retired_methods: []",
            "allow_retired_methods: [ip-address, contact-phone-txt]",
        );
        let config: CoordinatorConfig = parse_yaml(&excepted).unwrap();
        config.validate_at(TODAY).unwrap();
        assert_eq!(
            config.rules_policy().allow_retired_methods,
            [
                mpic_common::api::ValidationMethod::IpAddress,
                mpic_common::api::ValidationMethod::ContactPhoneTxt
            ]
        );
    }

    #[test]
    fn a_catalogue_without_a_cohort_is_refused() {
        let base = example().replace("policy: enforce", "policy: warn");
        // Move everyone into one city.
        let mut text = String::new();
        for line in base.lines() {
            if line.trim_start().starts_with("latitude:") {
                text.push_str("    latitude: 50.0\n");
            } else if line.trim_start().starts_with("longitude:") {
                text.push_str("    longitude: 8.0\n");
            } else {
                text.push_str(line);
                text.push('\n');
            }
        }
        let config: CoordinatorConfig = parse_yaml(&text).unwrap();
        let err = config.validate_at(TODAY).unwrap_err();
        assert!(err.0.starts_with("perspectives:"), "{err}");
    }

    #[test]
    fn api_keys() {
        assert_eq!(
            parse_api_keys("aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb\n")
                .unwrap()
                .len(),
            2
        );
        assert!(parse_api_keys(" , \n").is_err());
        assert!(parse_api_keys("short").is_err());
    }
}
