//! The coordinator's HTTP service: `POST /mpic` (api.md section 1) with API-key
//! authentication, `GET /healthz`, `GET /readyz`. Load beyond the concurrency limit is shed
//! with 503 and `Retry-After`, never queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::join_all;
use mpic_common::api::{
    CheckType, EchoedParameters, ErrorBody, MpicRequest, ValidationFailure, ValidationIssue,
};
use mpic_common::validate::{self, CaaParams, issue, issue_at};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::ApiKeys;
use crate::cohort;
use crate::orchestrate::{Orchestrator, Validated};
use crate::quorum::{self, Bounds};

/// How long `/readyz` waits for each perspective's `/healthz`.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a handler needs.
#[derive(Debug)]
pub struct AppState {
    /// Runs requests.
    pub orchestrator: Orchestrator,
    /// Who may call.
    pub keys: ApiKeys,
    /// Request bounds from the configuration.
    pub bounds: Bounds,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Requests in flight.
    pub in_flight: Arc<Semaphore>,
    /// The client used for health probes (the same pool as the checks).
    pub client: reqwest::Client,
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/mpic", post(post_mpic))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not-found") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed")
        })
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal-error")
        }))
}

async fn post_mpic(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    if !state.keys.allows(&headers) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let json = ct
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
        }
    }
    let Ok(bytes) = axum::body::to_bytes(body, state.max_body_bytes).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    };
    let request: MpicRequest = match validate::parse_json(&bytes) {
        Ok(r) => r,
        Err(i) => return bad_request(vec![i]),
    };
    let validated = match validate_request(request, &state.bounds) {
        Ok(v) => v,
        Err(issues) => return bad_request(issues),
    };
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let started = Instant::now();
    match state.orchestrator.run(&validated).await {
        Ok(response) => {
            tracing::info!(
                target: "mpic::audit",
                target_name = %validated.target,
                check.type = validated.request.check_type.as_str(),
                check.method = match &validated.echo { EchoedParameters::Dcv(p) => p.method().as_str(), EchoedParameters::Caa(_) => "" },
                trace_identifier = validated.request.trace_identifier.as_deref().unwrap_or(""),
                is_valid = response.is_valid,
                quorum_result = %response.quorum_result,
                attempts = response.actual_orchestration_parameters.map_or(0, |a| a.attempt_count),
                duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "mpic request"
            );
            (StatusCode::OK, axum::Json(response)).into_response()
        }
        Err(e) => {
            tracing::error!(target_name = %validated.target, error = %e, "orchestration failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    }
}

/// Turns a parsed body into a request the orchestrator can run, or the 400 issues.
pub fn validate_request(
    request: MpicRequest,
    bounds: &Bounds,
) -> Result<Validated, Vec<ValidationIssue>> {
    let mut issues = Vec::new();
    let target = validate::target(&request.domain_or_ip_target)
        .map_err(|i| issues.push(i))
        .ok();
    if let Err(i) = validate::trace_identifier(request.trace_identifier.as_deref()) {
        issues.push(i);
    }
    let echo = match request.check_type {
        CheckType::Caa => {
            if request.dcv_check_parameters.is_some() {
                issues.push(issue_at(
                    issue::INVALID_CHECK_PARAMETERS,
                    "field `dcv_check_parameters`: given for a caa check",
                ));
            }
            let wire = request.caa_check_parameters.clone().unwrap_or_default();
            if let Err(i) = CaaParams::from_wire(Some(&wire)) {
                issues.extend(i);
            }
            Some(EchoedParameters::Caa(wire))
        }
        CheckType::Dcv => {
            if request.caa_check_parameters.is_some() {
                issues.push(issue_at(
                    issue::INVALID_CHECK_PARAMETERS,
                    "field `caa_check_parameters`: given for a dcv check",
                ));
            }
            match &request.dcv_check_parameters {
                None => {
                    issues.push(issue_at(
                        issue::INVALID_CHECK_PARAMETERS,
                        "field `dcv_check_parameters`: required for a dcv check",
                    ));
                    None
                }
                Some(p) => {
                    if let Some(t) = &target {
                        issues.extend(validate::dcv_params(t, p));
                    }
                    Some(EchoedParameters::Dcv(p.clone()))
                }
            }
        }
    };
    let plan = quorum::plan(request.orchestration_parameters.as_ref(), bounds)
        .map_err(|i| issues.extend(i))
        .ok();
    match (target, echo, plan) {
        (Some(target), Some(echo), Some(plan)) if issues.is_empty() => Ok(Validated {
            request,
            target,
            plan,
            echo,
        }),
        _ => Err(issues),
    }
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
        .into_response()
}

/// Ready when the perspectives answering `/healthz` can form a default cohort.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let o = &state.orchestrator;
    let probes = o.perspectives.iter().map(|p| {
        let url = format!("{}/healthz", p.url.trim_end_matches('/'));
        let client = state.client.clone();
        async move {
            matches!(
                tokio::time::timeout(HEALTH_PROBE_TIMEOUT, client.get(url).send()).await,
                Ok(Ok(r)) if r.status().is_success()
            )
        }
    });
    let healthy: Vec<cohort::Member> = join_all(probes)
        .await
        .into_iter()
        .zip(&o.perspectives)
        .filter(|(up, _)| *up)
        .map(|(_, p)| p.member())
        .collect();
    let n = state.bounds.default_perspective_count as usize;
    let up = healthy.len();
    if cohort::cohorts(&healthy, n, [0; 32]).is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not-ready", "healthy_perspectives": up, "reason": format!("no cohort of {n} among the {up} perspectives answering")})),
        )
            .into_response()
    } else {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready", "healthy_perspectives": up})),
        )
            .into_response()
    }
}

fn bad_request(issues: Vec<ValidationIssue>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(ValidationFailure {
            error: "request-validation-failed".to_owned(),
            validation_issues: issues,
        }),
    )
        .into_response()
}

fn error(status: StatusCode, what: &str) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: what.to_owned(),
        }),
    )
        .into_response()
}
