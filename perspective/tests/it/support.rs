//! Shared set-up for the perspective's integration tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mpic_common::target::Target;
use mpic_common::validate::CaaParams;
use mpic_perspective::caa::CaaChecker;
use mpic_perspective::config::{CaaConfig, Identity, Limits, PerspectiveConfig, ResolverConfig};
use mpic_perspective::resolver::DnsClient;

/// The issuer domain our test CA uses.
pub const CA: &str = "ca.example";

/// Lookup deadline in component tests: short, so the never-answering cases stay quick.
pub const DNS_TIMEOUT: Duration = Duration::from_millis(400);

/// A checker resolving through `resolver`, with `ca.example` as the default issuer.
pub fn checker(resolver: SocketAddr) -> CaaChecker {
    CaaChecker::new(DnsClient::new(resolver, DNS_TIMEOUT), vec![CA.to_owned()])
}

/// Parsed CAA parameters from JSON (null = defaults).
pub fn params(json: serde_json::Value) -> CaaParams {
    let wire: Option<mpic_common::api::CaaCheckParameters> = serde_json::from_value(json).unwrap();
    CaaParams::from_wire(wire.as_ref()).unwrap()
}

/// A parsed target.
pub fn target(s: &str) -> Target {
    Target::parse(s).unwrap()
}

/// A plain-HTTP test configuration resolving through `resolver`.
pub fn plain_config(code: &str, resolver: SocketAddr) -> PerspectiveConfig {
    PerspectiveConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ops_listen: None,
        connections: Default::default(),
        perspective: Identity {
            code: code.to_owned(),
            rir: mpic_common::config::Rir::Arin,
        },
        resolver: ResolverConfig {
            address: resolver,
            timeout_ms: 400,
            retry_ms: None,
        },
        caa: CaaConfig {
            default_issuer_domains: vec![CA.to_owned()],
        },
        limits: Limits {
            check_timeout_ms: 3_000,
            ..Limits::default()
        },
        web: Default::default(),
        tls: None,
        reload: Default::default(),
        shutdown: Default::default(),
        danger_plain_http: true,
    }
}

/// The router of a perspective with `config`, for `oneshot` tests.
pub fn router(config: &PerspectiveConfig) -> axum::Router {
    mpic_perspective::service::router(Arc::new(mpic_perspective::service::AppState::new(config)))
}
