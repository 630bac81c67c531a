//! The MPIC coordinator (architecture.md): validates `POST /mpic`, picks the target's cohort
//! of perspectives, calls them concurrently over mutual TLS, and decides under the BR quorum
//! rules (BR 3.2.2.9).

pub mod auth;
pub mod channel;
pub mod cohort;
pub mod config;
pub mod distance;
pub mod fanout;
pub mod metrics;
pub mod orchestrate;
pub mod policy;
pub mod quorum;
pub mod readiness;
pub mod rules;
pub mod secrets;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use mpic_common::reload::Reloader;
use mpic_common::reload::tls::ClientTls;
use mpic_common::serve::{
    ConnectionLimits, ConnectionMetrics, Exposure, Lifecycle, Listeners, Shutdown,
};

use crate::config::{CoordinatorConfig, parse_api_keys};
use crate::policy::Policy;
use crate::rules::{Clock, Date, Rule, SystemClock};

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
        let hash_secret = secrets::parse_hash_secret(&config.hash_secret.read("hash_secret")?)?;
        Ok(Secrets {
            api_keys,
            hash_secret,
        })
    }
}

/// The mutual-TLS material towards the perspectives, loaded and watched by `reloader`, or
/// `None` with `danger_plain_http_perspectives` (said in the log). Each perspective gets a
/// client of its own that accepts only its certificate (the orchestrator builds them).
pub fn perspective_tls(
    config: &CoordinatorConfig,
    reloader: &mut Reloader,
) -> Result<Option<ClientTls>, mpic_common::config::ConfigError> {
    match &config.perspective_tls {
        Some(t) => ClientTls::load(
            reloader,
            "perspective_tls",
            &t.certificate,
            &t.private_key,
            &t.ca,
        )
        .map(Some),
        None => {
            tracing::warn!(
                "danger_plain_http_perspectives is on: perspective calls are neither encrypted nor authenticated"
            );
            Ok(None)
        }
    }
}

/// A coordinator bound to its ports.
#[derive(Debug)]
pub struct Coordinator {
    listeners: Listeners,
    perspective_count: usize,
    state: Arc<service::AppState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    reloader: Reloader,
    connections: ConnectionLimits,
    connection_metrics: ConnectionMetrics,
}

impl Coordinator {
    /// Checks the configuration, builds the client and binds the listeners; the dated rules
    /// follow the wall clock. Certificates, keys, CA bundles and the secrets given by file are
    /// watched from then on; secrets from the environment are `secrets` and fixed.
    pub async fn bind(config: &CoordinatorConfig, secrets: Secrets) -> anyhow::Result<Coordinator> {
        Coordinator::bind_with_clock(config, secrets, Arc::new(SystemClock)).await
    }

    /// [`Coordinator::bind`] with the dated rules of the days `clock` says (tests).
    pub async fn bind_with_clock(
        config: &CoordinatorConfig,
        secrets: Secrets,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Coordinator> {
        mpic_common::tls::install_crypto_provider();
        config.validate_at(clock.today())?;
        let policy = config.rules_policy();
        log_exceptions(&policy);
        for finding in distance::findings(config) {
            match finding.severity {
                distance::Severity::Warning => {
                    tracing::warn!(setting = %finding.field, "{}", finding.text);
                }
                distance::Severity::Note => {
                    tracing::info!(setting = %finding.field, "{}", finding.text);
                }
            }
        }
        let metrics = Arc::new(metrics::Metrics::new());
        let mut reloader = Reloader::new(&config.reload, metrics.reload.clone());
        let tls = perspective_tls(config, &mut reloader)?;
        let hash_secret = match &config.hash_secret.file {
            Some(path) => secrets::HashSecret::watched(&mut reloader, path)?,
            None => secrets.hash_secret.into(),
        };
        let keys = match &config.api_keys.file {
            Some(path) => auth::ApiKeys::watched(&mut reloader, path)?,
            None => auth::ApiKeys::new(&secrets.api_keys),
        };
        let orchestrator = orchestrate::Orchestrator::new(
            orchestrate::OrchestratorSettings {
                perspectives: config.perspectives.clone(),
                tls,
                hash_secret,
                call_timeout: config.call_timeout(),
                request_timeout: config.request_timeout(),
                grace: config.grace(),
                max_connections_per_perspective: config.limits.max_connections_per_perspective,
            },
            metrics.clone(),
        )?;
        let tls = match &config.api_tls {
            Some(t) => Some(mpic_common::reload::tls::server_config(
                &mut reloader,
                "api",
                "api_tls",
                &t.certificate,
                &t.private_key,
            )?),
            None => None,
        };
        let connection_metrics = metrics.connections.clone();
        let lifecycle = Lifecycle::from_settings(
            &config.shutdown,
            config.request_timeout(),
            &metrics.lifecycle,
        );
        let state = Arc::new(service::AppState {
            orchestrator,
            keys,
            bounds: quorum::Bounds {
                catalogue_size: u32::try_from(config.perspectives.len()).unwrap_or(u32::MAX),
                default_perspective_count: config.default_perspective_count,
                max_attempts: config.max_attempts,
            },
            policy,
            facts: config.rules_facts(),
            clock,
            max_body_bytes: config.limits.max_body_bytes,
            in_flight: Arc::new(tokio::sync::Semaphore::new(
                config.limits.max_concurrent_requests,
            )),
            metrics,
            configz: serde_json::json!({
                "service": "mpic-coordinator",
                "version": env!("CARGO_PKG_VERSION"),
                "api_spec_version": "3.9.0",
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
            reloader,
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
    /// perspectives' health and watching the certificates, keys and secret files in the
    /// background meanwhile; then drains.
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
        let watching = tokio::spawn(watch_rules(self.state.clone(), shutdown.clone().wait()));
        let reloading = tokio::spawn(self.reloader.run());
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
        watching.abort();
        reloading.abort();
        served
    }
}

/// How often the rules watch looks at the date.
const RULES_WATCH_INTERVAL: Duration = Duration::from_secs(3600);

/// The rules watch: on each new day (looked at hourly), sets `mpic_rules_next_change_days` and
/// logs a warning for each change of the next [`policy::WARN_DAYS_AHEAD`] days that will refuse
/// this configuration or requests it serves ([`Policy::upcoming_refusals`]), until `stop`.
async fn watch_rules(state: Arc<service::AppState>, stop: impl Future<Output = ()>) {
    let watch = async {
        let mut last: Option<Date> = None;
        loop {
            let today = state.clock.today();
            if last != Some(today) {
                daily_rules_check(&state, today);
                last = Some(today);
            }
            tokio::time::sleep(RULES_WATCH_INTERVAL).await;
        }
    };
    tokio::select! {
        () = watch => {}
        () = stop => {}
    }
}

/// What the rules watch does once a day.
fn daily_rules_check(state: &service::AppState, today: Date) {
    let days = rules::next_change(today).map_or(-1, |c| today.days_until(c.date));
    state.metrics.rules_next_change_days.set(days);
    for upcoming in state.policy.upcoming_refusals(today, &state.facts) {
        let e = &upcoming.effect;
        tracing::warn!(
            rule = e.rule,
            br_section = e.br_section,
            effective_date = %e.effective_date,
            days_left = upcoming.days_left,
            "in {} days, on {}: {}; {}",
            upcoming.days_left,
            e.effective_date,
            e.summary,
            e.for_this_configuration
        );
    }
}

/// Says at start, at warn, each exception of `rules.allow_retired_methods` (a relaxed rule is
/// never silent).
fn log_exceptions(policy: &Policy) {
    for method in &policy.allow_retired_methods {
        if let Some(row) = rules::RULES
            .iter()
            .find(|r| r.rule == Rule::Retires(*method))
        {
            tracing::warn!(
                method = method.as_str(),
                br_section = row.br_section,
                retired_from = %row.effective,
                "rules.allow_retired_methods: {} (BR {}) is served although the BR retires it from {}; keep this only for an exception your auditors agreed",
                method.as_str(),
                row.br_section,
                row.effective
            );
        }
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
