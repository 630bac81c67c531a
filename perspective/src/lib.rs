//! An MPIC network perspective (architecture.md): it runs the CAA check and the domain-control
//! methods from its own network location, resolving every name through its own
//! DNSSEC-validating resolver, and answers the coordinator over mutual TLS.

pub mod caa;
pub mod config;
pub mod dcv;
pub mod dns;
pub mod metrics;
pub mod net;
pub mod service;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use mpic_common::api::now_ns;

/// A perspective bound to its port, ready to serve.
#[derive(Debug)]
pub struct Perspective {
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Perspective {
    /// Loads TLS material and binds the listener. Configuration errors surface here, before
    /// anything is served.
    pub async fn bind(config: &config::PerspectiveConfig) -> anyhow::Result<Perspective> {
        config.validate()?;
        let tls = match &config.tls {
            Some(t) => Some(mpic_common::tls::mutual_server_config(
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
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen: cannot bind {}", config.listen))?;
        let state = Arc::new(service::AppState::new(config));
        Ok(Perspective {
            listener,
            router: service::router(state),
            tls,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        mpic_common::serve::serve(
            self.listener,
            self.router,
            self.tls,
            mpic_common::serve::DEFAULT_MAX_CONNECTIONS,
            shutdown,
        )
        .await
    }
}
