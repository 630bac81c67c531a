//! An MPIC network perspective (architecture.md): it runs the CAA check and the domain-control
//! methods from its own network location, resolving every name through its own
//! DNSSEC-validating resolver, and answers the coordinator over mutual TLS.

pub mod caa;
pub mod config;
pub mod dcv;
pub mod metrics;
pub mod net;
pub mod readiness;
pub mod resolver;
pub mod service;

use std::sync::Arc;

use mpic_common::reload::Reloader;
use mpic_common::serve::{ConnectionLimits, Exposure, Listeners, Shutdown};

pub use mpic_common::api::now_ns;

/// A perspective bound to its ports, ready to serve.
#[derive(Debug)]
pub struct Perspective {
    code: String,
    resolver: std::net::SocketAddr,
    listeners: Listeners,
    state: Arc<service::AppState>,
    tls: Option<Arc<rustls::ServerConfig>>,
    reloader: Reloader,
    connections: ConnectionLimits,
}

impl Perspective {
    /// Loads TLS material and binds the listeners. Configuration errors surface here, before
    /// anything is served.
    pub async fn bind(config: &config::PerspectiveConfig) -> anyhow::Result<Perspective> {
        config.validate()?;
        let state = Arc::new(service::AppState::new(config));
        let mut reloader = Reloader::new(&config.reload, state.metrics().reload.clone());
        let tls = match &config.tls {
            Some(t) => Some(mpic_common::reload::tls::mutual_server_config(
                &mut reloader,
                "tls",
                &t.certificate,
                &t.private_key,
                &t.client_ca,
            )?),
            None => {
                tracing::warn!(
                    "danger_plain_http is on: serving plain HTTP without client authentication"
                );
                None
            }
        };
        let listeners = Listeners::bind(config.listen, config.ops_listen).await?;
        Ok(Perspective {
            code: config.perspective.code.clone(),
            resolver: config.resolver.address,
            listeners,
            state,
            tls,
            reloader,
            connections: config.connections,
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

    /// Serves until `shutdown` completes, then drains; meanwhile the TLS files are watched.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let metrics = self.state.metrics().connections.clone();
        let reloading = tokio::spawn(self.reloader.run());
        let served = self
            .listeners
            .serve(
                (
                    service::router(self.state.clone()),
                    self.tls,
                    Exposure::Authenticated,
                ),
                mpic_common::operations::router(self.state.clone()),
                self.connections,
                &metrics,
                self.state.lifecycle(),
                Shutdown::new(shutdown),
            )
            .await;
        reloading.abort();
        served
    }
}

impl mpic_common::service_main::Service for Perspective {
    type Config = config::PerspectiveConfig;

    const NAME: &'static str = "mpic-perspective";

    const ABOUT: &'static str =
        "Serve one MPIC network perspective (CAA and domain-control checks) over mutual TLS.";

    fn load(path: &std::path::Path) -> Result<config::PerspectiveConfig, String> {
        config::PerspectiveConfig::load(path).map_err(|e| e.to_string())
    }

    async fn bind(config: config::PerspectiveConfig) -> Result<Perspective, String> {
        Perspective::bind(&config)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    fn announce(&self) {
        match self.local_addr() {
            Ok(addr) => tracing::info!(
                perspective.code = %self.code,
                listen = %addr,
                ops_listen = ?self.ops_addr(),
                resolver = %self.resolver,
                "perspective serving"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot read the bound address"),
        }
    }

    async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        Perspective::serve(self, shutdown).await
    }
}
