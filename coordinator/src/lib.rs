//! The MPIC coordinator (architecture.md): validates `POST /mpic`, picks the target's cohort
//! of perspectives, calls them concurrently over mutual TLS, and decides under the BR quorum
//! rules (BR 3.2.2.9).

pub mod auth;
pub mod channel;
pub mod cohort;
pub mod config;
pub mod fanout;
pub mod metrics;
pub mod orchestrate;
pub mod policy;
pub mod quorum;
pub mod readiness;
pub mod service;

use std::sync::Arc;

use mpic_common::serve::{
    ConnectionLimits, ConnectionMetrics, Exposure, Lifecycle, Listeners, Shutdown,
};

use crate::config::{CoordinatorConfig, parse_api_keys};

pub use mpic_common::api::now_ns;

/// Secrets resolved from their sources.
#[derive(Clone)]
pub struct Secrets {
    /// The API keys.
    pub api_keys: Vec<String>,
    /// The cohort hash secret.
    pub hash_secret: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Reads the secrets the configuration points at.
    pub fn load(config: &CoordinatorConfig) -> Result<Secrets, mpic_common::config::ConfigError> {
        let api_keys = parse_api_keys(&config.api_keys.read("api_keys")?)?;
        let hash_secret = config
            .hash_secret
            .read("hash_secret")?
            .trim()
            .as_bytes()
            .to_vec();
        if hash_secret.len() < 16 {
            return Err(mpic_common::config::ConfigError::field(
                "hash_secret",
                "must be at least 16 bytes",
            ));
        }
        Ok(Secrets {
            api_keys,
            hash_secret,
        })
    }
}

/// The mutual-TLS files towards the perspectives, or `None` with
/// `danger_plain_http_perspectives` (said in the log). Each perspective gets a client of its
/// own that accepts only its certificate (the orchestrator builds them).
pub fn perspective_tls(config: &CoordinatorConfig) -> Option<config::PerspectiveTls> {
    if config.perspective_tls.is_none() {
        tracing::warn!(
            "danger_plain_http_perspectives is on: perspective calls are neither encrypted nor authenticated"
        );
    }
    config.perspective_tls.clone()
}

/// A coordinator bound to its ports.
#[derive(Debug)]
pub struct Coordinator {
    listeners: Listeners,
    perspective_count: usize,
    state: Arc<service::AppState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    connections: ConnectionLimits,
    connection_metrics: ConnectionMetrics,
}

impl Coordinator {
    /// Checks the configuration, builds the client and binds the listeners.
    pub async fn bind(config: &CoordinatorConfig, secrets: Secrets) -> anyhow::Result<Coordinator> {
        mpic_common::tls::install_crypto_provider();
        config.validate()?;
        let tls = perspective_tls(config);
        let metrics = Arc::new(metrics::Metrics::new());
        let orchestrator = orchestrate::Orchestrator::new(
            orchestrate::OrchestratorSettings {
                perspectives: config.perspectives.clone(),
                tls,
                hash_secret: secrets.hash_secret,
                call_timeout: config.call_timeout(),
                request_timeout: config.request_timeout(),
                grace: config.grace(),
            },
            metrics.clone(),
        )?;
        let tls = match &config.api_tls {
            Some(t) => Some(mpic_common::tls::server_config(
                &t.certificate,
                &t.private_key,
            )?),
            None => None,
        };
        let bounds = quorum::Bounds {
            catalogue_size: u32::try_from(config.perspectives.len()).unwrap_or(u32::MAX),
            default_perspective_count: config.default_perspective_count,
            max_attempts: config.max_attempts,
            br_minimum: policy::br_minimum_today(),
            policy: config.policy,
        };
        if let Some(notice) = bounds.below_minimum_notice() {
            tracing::warn!("{notice}");
        }
        let connection_metrics = metrics.connections.clone();
        let lifecycle = Lifecycle::from_settings(
            &config.shutdown,
            config.request_timeout(),
            &metrics.lifecycle,
        );
        let state = Arc::new(service::AppState {
            orchestrator,
            keys: auth::ApiKeys::new(&secrets.api_keys),
            bounds,
            max_body_bytes: config.limits.max_body_bytes,
            in_flight: Arc::new(tokio::sync::Semaphore::new(
                config.limits.max_concurrent_requests,
            )),
            metrics,
            configz: serde_json::json!({
                "service": "mpic-coordinator",
                "version": env!("CARGO_PKG_VERSION"),
                "api_spec_version": "3.9.0",
                "br_minimum_perspectives_today": policy::br_minimum_today(),
                "config": config.public_view(),
            }),
            readiness: Arc::new(readiness::Readiness::new(config.default_perspective_count)),
            lifecycle,
        });
        let listeners = Listeners::bind(config.listen, config.ops_listen).await?;
        Ok(Coordinator {
            listeners,
            perspective_count: config.perspectives.len(),
            state,
            tls,
            connections: config.connections,
            connection_metrics,
        })
    }

    /// The bound address of the API.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listeners.api_addr()
    }

    /// The bound address of the operations listener, if there is one.
    pub fn ops_addr(&self) -> Option<std::net::SocketAddr> {
        self.listeners.ops_addr()
    }

    /// Serves the API (and the operations listener) until `shutdown` completes, probing the
    /// perspectives' health in the background meanwhile; then drains.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let shutdown = Shutdown::new(shutdown);
        let probing = tokio::spawn(
            self.state
                .readiness
                .clone()
                .run(self.state.orchestrator.clone(), shutdown.clone().wait()),
        );
        let served = self
            .listeners
            .serve(
                (
                    service::router(self.state.clone()),
                    self.tls,
                    Exposure::Public,
                ),
                mpic_common::operations::router(self.state.clone()),
                self.connections,
                &self.connection_metrics,
                &self.state.lifecycle,
                shutdown,
            )
            .await;
        probing.abort();
        served
    }
}

impl mpic_common::service_main::Service for Coordinator {
    /// The configuration and the secrets it points at.
    type Config = (CoordinatorConfig, Secrets);

    const NAME: &'static str = "mpic-coordinator";

    const ABOUT: &'static str =
        "Serve the MPIC API (POST /mpic): cohorts, quorum and fan-out to the perspectives.";

    fn load(path: &std::path::Path) -> Result<Self::Config, String> {
        let config = CoordinatorConfig::load(path).map_err(|e| e.to_string())?;
        let secrets = Secrets::load(&config).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((config, secrets))
    }

    async fn bind((config, secrets): Self::Config) -> Result<Coordinator, String> {
        Coordinator::bind(&config, secrets)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    fn announce(&self) {
        if let Ok(addr) = self.local_addr() {
            tracing::info!(
                listen = %addr,
                ops_listen = ?self.ops_addr(),
                perspectives = self.perspective_count,
                "coordinator serving"
            );
        }
    }

    async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        Coordinator::serve(self, shutdown).await
    }
}
