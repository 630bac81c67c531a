//! The operations endpoints both services serve alike: `GET /healthz` (liveness: the
//! process serves), `GET /readyz` (readiness: it can do its job, each service's own test),
//! `GET /metrics` and `GET /configz`, and the JSON envelope every router shares (404, 405,
//! a panic as 500).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;

use crate::http;

/// What a service tells the operations endpoints.
pub trait Operations: Send + Sync + 'static {
    /// Whether the service can do its job now, and the body that says so (with the reason
    /// when it cannot).
    fn readiness(&self) -> impl Future<Output = (bool, serde_json::Value)> + Send;
    /// The service's metrics.
    fn registry(&self) -> &prometheus_client::registry::Registry;
    /// What `/configz` shows: the effective configuration without secrets, file paths or
    /// addresses, and versions; built when asked where part of it changes with the date.
    fn configz(&self) -> std::borrow::Cow<'_, serde_json::Value>;
    /// Where the service stands between serving and exiting: once shutdown has begun it is
    /// not ready, whatever its own test says.
    fn lifecycle(&self) -> &crate::serve::Lifecycle;
}

/// The router of an operations listener: the four endpoints, nothing else.
pub fn router<T: Operations>(state: Arc<T>) -> Router {
    finish(
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz::<T>))
            .route("/metrics", get(metrics::<T>))
            .route("/configz", get(configz::<T>))
            .with_state(state),
    )
}

/// The envelope of every router: 404 and 405 as JSON, a panicking handler answered 500.
pub fn finish(router: Router) -> Router {
    router
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(CatchPanicLayer::custom(http::panicked))
}

/// `GET /healthz`: the process serves.
pub async fn healthz() -> Response {
    http::status(StatusCode::OK, serde_json::json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when ready, else 503; the service's body either way, or the shutdown's
/// once it has begun.
pub async fn readyz<T: Operations>(State(state): State<Arc<T>>) -> Response {
    if let Some(body) = state.lifecycle().not_ready() {
        return http::status(StatusCode::SERVICE_UNAVAILABLE, body);
    }
    let (ready, body) = state.readiness().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    http::status(status, body)
}

/// `GET /metrics`.
pub async fn metrics<T: Operations>(State(state): State<Arc<T>>) -> Response {
    http::metrics(state.registry())
}

/// `GET /configz`.
pub async fn configz<T: Operations>(State(state): State<Arc<T>>) -> Response {
    let configz = state.configz();
    (StatusCode::OK, axum::Json(&*configz)).into_response()
}
