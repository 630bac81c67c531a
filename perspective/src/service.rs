//! The perspective's HTTP service (api.md section 2): `POST /caa`, `POST /dcv`, `GET /healthz`,
//! `GET /readyz`. Every reply carries `x-mpic-perspective`; malformed requests get the 400
//! body of api.md naming the field; a failed check is a 200 with a failed `CheckResponse`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mpic_common::api::{
    CaaPerspectiveRequest, CheckDetails, CheckResponse, CheckType, DcvPerspectiveRequest,
    ValidationMethod,
};
use mpic_common::http::{bad_request, overloaded, read_json};
use mpic_common::operations::{self, Operations};
use mpic_common::outcome::{Checker, Outcome, Problem, ProblemKind};
use mpic_common::target::Target;
use mpic_common::validate::{self, CaaParams};
use tokio::sync::Semaphore;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument as _;

use crate::caa::CaaChecker;
use crate::config::PerspectiveConfig;
use crate::dcv;
use crate::metrics::{CheckLabels, KindLabels, Metrics};
use crate::resolver::DnsClient;

/// The header naming the perspective that answered (api.md section 2).
pub const PERSPECTIVE_HEADER: &str = "x-mpic-perspective";

/// The header naming the perspective's Regional Internet Registry, which the coordinator
/// compares with its catalogue (BR 3.2.2.9 counts RIRs; as Boulder's remote VAs report both).
pub const RIR_HEADER: &str = "x-mpic-perspective-rir";

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState {
    code: String,
    rir: mpic_common::config::Rir,
    caa: CaaChecker,
    dcv: dcv::DcvContext,
    dns: DnsClient,
    check_timeout: Duration,
    max_body_bytes: usize,
    checks: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    configz: serde_json::Value,
    readiness: crate::readiness::Readiness,
    lifecycle: mpic_common::serve::Lifecycle,
}

impl AppState {
    /// State for `config`, with a resolver client of its own.
    pub fn new(config: &PerspectiveConfig) -> AppState {
        let metrics = Arc::new(Metrics::new());
        let dns = DnsClient::new(config.resolver.address, config.dns_timeout())
            .with_retry(config.dns_retry())
            .with_metrics(metrics.clone());
        let lifecycle = mpic_common::serve::Lifecycle::from_settings(
            &config.shutdown,
            config.check_timeout(),
            &metrics.lifecycle,
        );
        AppState {
            code: config.perspective.code.clone(),
            rir: config.perspective.rir,
            caa: CaaChecker::new(dns.clone(), config.caa.default_issuer_domains.clone()),
            dcv: dcv::DcvContext {
                dns: dns.clone(),
                web: dcv::http_fetch::WebSettings::from_config(
                    &config.web,
                    &config.perspective.code,
                    config.check_timeout(),
                ),
            },
            dns,
            check_timeout: config.check_timeout(),
            max_body_bytes: config.limits.max_body_bytes,
            checks: Arc::new(Semaphore::new(config.limits.max_concurrent_checks)),
            metrics,
            configz: serde_json::json!({
                "service": "mpic-perspective",
                "version": env!("CARGO_PKG_VERSION"),
                "config": config.public_view(),
            }),
            readiness: crate::readiness::Readiness::default(),
            lifecycle,
        }
    }
}

impl AppState {
    /// The service's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serving, or shutting down.
    pub fn lifecycle(&self) -> &mpic_common::serve::Lifecycle {
        &self.lifecycle
    }
}

impl Operations for AppState {
    async fn readiness(&self) -> (bool, serde_json::Value) {
        let report = self.readiness.report(&self.dns, &self.metrics).await;
        (
            report.is_ready(),
            serde_json::to_value(&report).unwrap_or_default(),
        )
    }

    fn registry(&self) -> &prometheus_client::registry::Registry {
        &self.metrics.registry
    }

    fn configz(&self) -> std::borrow::Cow<'_, serde_json::Value> {
        std::borrow::Cow::Borrowed(&self.configz)
    }

    fn lifecycle(&self) -> &mpic_common::serve::Lifecycle {
        &self.lifecycle
    }
}

/// The API's router (mutual TLS: only the coordinator reaches it), with the identity
/// header, panic guard and fallbacks applied to every route.
pub fn router(state: Arc<AppState>) -> Router {
    let identity = HeaderValue::from_str(&state.code)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid-code"));
    let rir = HeaderValue::from_static(state.rir.as_str());
    operations::finish(
        Router::new()
            .route("/caa", post(post_caa))
            .route("/dcv", post(post_dcv))
            .route("/healthz", get(operations::healthz))
            .route("/readyz", get(operations::readyz::<AppState>))
            .route("/metrics", get(operations::metrics::<AppState>))
            .route("/configz", get(operations::configz::<AppState>))
            .with_state(state),
    )
    .layer(SetResponseHeaderLayer::overriding(
        HeaderName::from_static(PERSPECTIVE_HEADER),
        identity,
    ))
    .layer(SetResponseHeaderLayer::overriding(
        HeaderName::from_static(RIR_HEADER),
        rir,
    ))
}

async fn post_caa(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let request: CaaPerspectiveRequest = match read_json(&headers, body, state.max_body_bytes).await
    {
        Ok(r) => r,
        Err(response) => return response,
    };
    let mut issues = Vec::new();
    let target = validate::target_and_trace(
        &request.domain_or_ip_target,
        request.trace_identifier.as_deref(),
        &mut issues,
    );
    let params = CaaParams::from_wire(request.caa_check_parameters.as_ref())
        .map_err(|i| issues.extend(i))
        .ok();
    let (Some(target), Some(params)) = (target, params) else {
        return bad_request(issues);
    };
    if !issues.is_empty() {
        return bad_request(issues);
    }
    run_check(
        &state,
        &headers,
        None,
        &target,
        request.trace_identifier.as_deref(),
        state.caa.check(&target, &params),
    )
    .await
}

async fn post_dcv(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let request: DcvPerspectiveRequest = match read_json(&headers, body, state.max_body_bytes).await
    {
        Ok(r) => r,
        Err(response) => return response,
    };
    let mut issues = Vec::new();
    let Some(target) = validate::target_and_trace(
        &request.domain_or_ip_target,
        request.trace_identifier.as_deref(),
        &mut issues,
    ) else {
        return bad_request(issues);
    };
    issues.extend(validate::dcv_params(&target, &request.dcv_check_parameters));
    if !issues.is_empty() {
        return bad_request(issues);
    }
    run_check(
        &state,
        &headers,
        Some(request.dcv_check_parameters.method()),
        &target,
        request.trace_identifier.as_deref(),
        dcv::check(&state.dcv, &target, &request.dcv_check_parameters),
    )
    .await
}

/// Runs a validated check: sheds when too many run, continues the caller's trace, bounds the
/// check by the deadline, counts it and logs it once.
async fn run_check(
    state: &AppState,
    headers: &HeaderMap,
    method: Option<ValidationMethod>,
    target: &Target,
    trace_identifier: Option<&str>,
    check: impl std::future::Future<Output = CheckResponse>,
) -> Response {
    let Ok(_permit) = state.checks.clone().try_acquire_owned() else {
        state.metrics.shed.inc();
        return overloaded();
    };
    let check_type = if method.is_some() {
        CheckType::Dcv
    } else {
        CheckType::Caa
    };
    let method_name = method.map_or("", ValidationMethod::as_str);
    let span = tracing::info_span!(
        "mpic.check",
        otel.name = %format!("check {}", if method_name.is_empty() { "caa" } else { method_name }),
        trace_id = tracing::field::Empty,
        trace_identifier = trace_identifier.unwrap_or(""),
        perspective.code = %state.code,
        check.type = check_type.as_str(),
        check.method = method_name,
        target_name = %target,
    );
    mpic_common::telemetry::continue_trace(&span, headers);
    span.record("trace_id", mpic_common::telemetry::trace_id(&span));
    state.metrics.in_flight.inc();
    let started = Instant::now();
    let response = match tokio::time::timeout(state.check_timeout, check)
        .instrument(span.clone())
        .await
    {
        Ok(r) => r,
        Err(_) => deadline_exceeded(check_type, method, state.check_timeout),
    };
    state.metrics.in_flight.dec();
    let result = match (response.check_completed, response.check_passed) {
        (true, true) => "passed",
        (true, false) => "not_passed",
        (false, _) => "error",
    };
    state
        .metrics
        .checks
        .get_or_create(&CheckLabels {
            check_type: check_type.as_str().to_owned(),
            method: method_name.to_owned(),
            result: result.to_owned(),
        })
        .inc();
    state
        .metrics
        .check_duration
        .get_or_create(&KindLabels {
            check_type: check_type.as_str().to_owned(),
            method: method_name.to_owned(),
        })
        .observe(started.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            check.completed = response.check_completed,
            check.passed = response.check_passed,
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "check finished"
        );
    });
    (StatusCode::OK, axum::Json(response)).into_response()
}

/// A check that ran out of time: not completed, not passed.
fn deadline_exceeded(
    check_type: CheckType,
    method: Option<mpic_common::api::ValidationMethod>,
    limit: Duration,
) -> CheckResponse {
    let (checker, details) = match (check_type, method) {
        (CheckType::Dcv, Some(m)) => (Checker::Dcv, CheckDetails::empty_for(m)),
        _ => (
            Checker::Caa,
            CheckDetails::Caa(mpic_common::api::CaaDetails::default()),
        ),
    };
    Outcome::NotCompleted(Problem::new(
        ProblemKind::Lookup(checker),
        format!("the check did not finish within {} ms", limit.as_millis()),
    ))
    .into_response(details)
}
