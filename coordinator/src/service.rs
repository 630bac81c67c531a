//! The coordinator's HTTP service: `POST /mpic` (api.md section 1) with API-key
//! authentication, `GET /healthz`, `GET /readyz`, `GET /openapi.json`; `GET /metrics` and
//! `GET /configz` to API-key holders. The operations listener serves the health endpoints,
//! `/metrics` and `/configz` without a key. Load beyond the concurrency limit is shed with
//! 503 and `Retry-After`, never queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use mpic_common::api::{CheckType, EchoedParameters, MpicRequest, MpicResponse, ValidationIssue};
use mpic_common::http::{self, bad_request, error};
use mpic_common::operations::{self, Operations};
use mpic_common::validate::{self, CaaParams, issue, issue_at};
use tokio::sync::Semaphore;
use tracing::Instrument as _;

use crate::auth::ApiKeys;
use crate::fanout::Check;
use crate::metrics::{CheckTypeLabels, Metrics, RequestLabels, RuleLabels};
use crate::orchestrate::{Orchestrated, Orchestrator, Validated};
use crate::policy::{ConfigFacts, Policy};
use crate::quorum::{self, Bounds};
use crate::readiness::Readiness;
use crate::rules::{self, Clock, InForce};

/// Everything a handler needs.
#[derive(Debug)]
pub struct AppState {
    /// Runs requests.
    pub orchestrator: Orchestrator,
    /// Who may call.
    pub keys: ApiKeys,
    /// Request bounds from the configuration.
    pub bounds: Bounds,
    /// How the dated BR rules apply (`policy`, `rules`).
    pub policy: Policy,
    /// What the dated rules look at in the configuration.
    pub facts: ConfigFacts,
    /// Today's date, for the dated rules.
    pub clock: Arc<dyn Clock>,
    /// Largest body.
    pub max_body_bytes: usize,
    /// Requests in flight.
    pub in_flight: Arc<Semaphore>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// What `GET /configz` shows: the effective configuration without secrets, file paths,
    /// variable names or perspective addresses, and versions; the rules in force and the
    /// next change are added when it is asked for.
    pub configz: serde_json::Value,
    /// Whether a default cohort can be reached, probed in the background.
    pub readiness: Arc<Readiness>,
    /// Serving, or shutting down (then not ready).
    pub lifecycle: mpic_common::serve::Lifecycle,
}

impl Operations for AppState {
    async fn readiness(&self) -> (bool, serde_json::Value) {
        let report = self.readiness.report();
        (
            report.is_ready(),
            serde_json::to_value(&*report).unwrap_or_default(),
        )
    }

    fn registry(&self) -> &prometheus_client::registry::Registry {
        &self.metrics.registry
    }

    fn configz(&self) -> std::borrow::Cow<'_, serde_json::Value> {
        let mut view = self.configz.clone();
        view["rules"] = serde_json::to_value(self.policy.report(self.clock.today(), &self.facts))
            .unwrap_or_default();
        std::borrow::Cow::Owned(view)
    }

    fn lifecycle(&self) -> &mpic_common::serve::Lifecycle {
        &self.lifecycle
    }
}

/// The API's router: `/mpic`, the health endpoints, the OpenAPI document, and `/metrics` and
/// `/configz` behind the API key.
pub fn router(state: Arc<AppState>) -> Router {
    let keyed = Router::new()
        .route("/metrics", get(operations::metrics::<AppState>))
        .route("/configz", get(operations::configz::<AppState>))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_key,
        ));
    operations::finish(
        Router::new()
            .route("/mpic", post(post_mpic))
            .route("/healthz", get(operations::healthz))
            .route("/readyz", get(operations::readyz::<AppState>))
            .route("/openapi.json", get(openapi))
            .merge(keyed)
            .with_state(state),
    )
}

/// Lets a request through only with the API key (401 otherwise).
async fn require_key(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.keys.allows(request.headers()) {
        next.run(request).await
    } else {
        error(StatusCode::UNAUTHORIZED, "unauthorized")
    }
}

async fn post_mpic(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!(
        "mpic.request",
        otel.name = "POST /mpic",
        trace_id = tracing::field::Empty,
        trace_identifier = tracing::field::Empty,
        target_name = tracing::field::Empty,
        check.type = tracing::field::Empty,
    );
    mpic_common::telemetry::continue_trace(&span, &headers);
    span.record("trace_id", mpic_common::telemetry::trace_id(&span));
    let handled = handle(&state, headers, body, &span, started)
        .instrument(span.clone())
        .await;
    let status = handled.response.status().as_u16();
    let m = &state.metrics;
    m.requests
        .get_or_create(&RequestLabels {
            check_type: handled.check_type.to_owned(),
            method: handled.method.to_owned(),
            verdict: handled.verdict.to_owned(),
            status,
        })
        .inc();
    if status == 200 {
        m.request_duration
            .get_or_create(&CheckTypeLabels {
                check_type: handled.check_type.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
    handled.response
}

/// A handled `POST /mpic`: the response, and the labels of its request metric.
#[derive(Debug)]
struct Handled {
    response: Response,
    /// `caa` or `dcv`; empty when the body was not read.
    check_type: &'static str,
    /// The DCV method; empty for CAA and for a request that did not pass validation.
    method: &'static str,
    /// `valid`, `invalid`, or `none` when no verdict was reached.
    verdict: &'static str,
}

impl Handled {
    /// A response given before anything about the request was known.
    fn unlabelled(response: Response) -> Handled {
        Handled {
            response,
            check_type: "",
            method: "",
            verdict: "none",
        }
    }
}

/// How long a shed request's body may take to arrive before the 503 goes out anyway.
const SHED_BODY_WAIT: Duration = Duration::from_secs(1);

/// Reads a shed request's body to its end (at most `limit` bytes, for at most
/// [`SHED_BODY_WAIT`]) and drops it, so that the exchange ends cleanly. Answered before its
/// body is in, an HTTP/2 stream is reset, and the client's DATA frames still on their way
/// arrive on a stream the server has forgotten; h2 answers each with a reset of its own and,
/// after 1,024 of them, closes the connection with `ENHANCE_YOUR_CALM`, failing the requests
/// it was serving. An HTTP/1.1 connection with an unread body cannot be reused.
async fn discard(body: Body, limit: usize) {
    let _ = tokio::time::timeout(SHED_BODY_WAIT, axum::body::to_bytes(body, limit)).await;
}

/// The request itself.
async fn handle(
    state: &AppState,
    headers: HeaderMap,
    body: Body,
    span: &tracing::Span,
    request_started: Instant,
) -> Handled {
    if !state.keys.allows(&headers) {
        return Handled::unlabelled(error(StatusCode::UNAUTHORIZED, "unauthorized"));
    }
    // Shed before parsing the body: under overload that work is wasted too.
    let Ok(_permit) = state.in_flight.clone().try_acquire_owned() else {
        state.metrics.shed.inc();
        discard(body, state.max_body_bytes).await;
        return Handled::unlabelled(http::overloaded());
    };
    // The body arrives within the request's deadline, or the slot goes back: a client that
    // trickles its body would otherwise hold it for as long as it likes.
    let deadline = state
        .orchestrator
        .deadline(tokio::time::Instant::from_std(request_started));
    let read = http::read_json(&headers, body, state.max_body_bytes);
    let request: MpicRequest = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(r)) => r,
        Ok(Err(response)) => return Handled::unlabelled(response),
        Err(_) => return Handled::unlabelled(http::request_timeout()),
    };
    // The headers (and the body, consumed above) share the connection's read buffer: dropped
    // now, the buffer is not held for the whole orchestration.
    drop(headers);
    let check_type = request.check_type.as_str();
    if let Some(t) = &request.trace_identifier {
        span.record(
            "trace_identifier",
            mpic_common::text::truncate_for_echo(t, 256),
        );
    }
    span.record("check.type", check_type);
    let in_force = rules::in_force(state.clock.today());
    let validated = match validate_request(request, &state.bounds, &state.policy, &in_force) {
        Ok(v) => v,
        Err(issues) => {
            return Handled {
                check_type,
                ..Handled::unlabelled(bad_request(issues))
            };
        }
    };
    span.record("target_name", validated.target.to_string());
    let method = validated.check.method_name();
    for w in &validated.warnings {
        state
            .metrics
            .rule_warnings
            .get_or_create(&RuleLabels {
                rule: w.warning_type.clone(),
                method: method.to_owned(),
            })
            .inc();
        // Counted and carried in the response; not logged per request (under `warn` in a lab
        // that was half the log). The configuration's own warning is logged once, at start.
        tracing::debug!(
            rule = %w.warning_type,
            br_section = %w.br_section,
            target_name = %validated.target,
            "{}",
            w.message
        );
    }
    state.metrics.in_flight.inc();
    let started = Instant::now();
    let orchestrated = state.orchestrator.run(&validated, deadline).await;
    state.metrics.in_flight.dec();
    match orchestrated {
        Ok(Orchestrated { response, waited }) => {
            audit(&validated, &response, started.elapsed());
            if !response.mpic_completed {
                state
                    .metrics
                    .quorum_failures
                    .get_or_create(&CheckTypeLabels {
                        check_type: check_type.to_owned(),
                    })
                    .inc();
            }
            let verdict = if response.is_valid {
                "valid"
            } else {
                "invalid"
            };
            let mut http_response = (StatusCode::OK, axum::Json(response)).into_response();
            // Server-Timing (W3C): the whole request and the part spent waiting on
            // perspectives; the difference is what the coordinator itself added.
            let timing = format!(
                "total;dur={:.3}, perspectives;dur={:.3}",
                request_started.elapsed().as_secs_f64() * 1e3,
                waited.as_secs_f64() * 1e3
            );
            if let Ok(value) = axum::http::HeaderValue::from_str(&timing) {
                http_response.headers_mut().insert("server-timing", value);
            }
            Handled {
                response: http_response,
                check_type,
                method,
                verdict,
            }
        }
        Err(e) => {
            tracing::error!(target_name = %validated.target, error = %e, "orchestration failed");
            Handled {
                check_type,
                method,
                ..Handled::unlabelled(error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
            }
        }
    }
}

/// The BR 5.4.1 audit event: one per answered `POST /mpic`, with the target, the check, every
/// attempt's perspectives and results, the quorum result, the RIRs of the corroborating
/// perspectives, the attempt count and the latency. `perspectives` is a JSON array (see
/// [`AuditPerspective`]; the JSON log writes it as such, `mpic_common::telemetry::JSON_VALUED`).
/// Parameters (tokens, key authorizations, challenge values) and error messages are never
/// logged: an error's type says why a perspective failed.
fn audit(v: &Validated, r: &MpicResponse, took: Duration) {
    let attempts: Vec<&[mpic_common::api::PerspectiveResult]> = r
        .previous_attempt_results
        .iter()
        .flatten()
        .map(Vec::as_slice)
        .chain(std::iter::once(r.perspectives.as_slice()))
        .collect();
    let perspectives: Vec<AuditPerspective<'_>> = attempts
        .iter()
        .enumerate()
        .flat_map(|(i, attempt)| attempt.iter().map(move |p| AuditPerspective::of(i + 1, p)))
        .collect();
    let passing_rirs: std::collections::BTreeSet<&str> = r
        .perspectives
        .iter()
        .filter(|p| p.check_response.check_completed && p.check_response.check_passed)
        .map(|p| p.rir.map_or("?", mpic_common::config::Rir::as_str))
        .collect();
    tracing::info!(
        target: "mpic::audit",
        event = "mpic.audit",
        target_name = %v.target,
        check.type = v.request.check_type.as_str(),
        check.method = v.check.method_name(),
        trace_identifier = v.request.trace_identifier.as_deref().unwrap_or(""),
        is_valid = r.is_valid,
        mpic_completed = r.mpic_completed,
        quorum_result = %r.quorum_result,
        passing_rirs = %passing_rirs.into_iter().collect::<Vec<_>>().join(","),
        attempt_count = attempts.len(),
        perspectives = %serde_json::to_string(&perspectives).unwrap_or_default(),
        duration_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        "mpic request decided"
    );
}

/// One perspective of one attempt, as the audit event lists it.
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct AuditPerspective<'a> {
    /// The attempt (cohort) it belonged to, from 1.
    pub attempt: usize,
    /// The configured code.
    pub code: &'a str,
    /// Its RIR, as configured.
    pub rir: Option<&'static str>,
    /// `passed`, `not_passed` (completed, no permission or control) or `error` (not
    /// completed).
    pub result: &'static str,
    /// The `error_type` of its first error (api.md), when it has one.
    pub error_type: Option<&'a str>,
    /// Milliseconds to its answer; none when it did not answer.
    pub latency_ms: Option<u64>,
}

impl<'a> AuditPerspective<'a> {
    /// The entry of `p` in attempt `attempt`.
    pub fn of(attempt: usize, p: &'a mpic_common::api::PerspectiveResult) -> AuditPerspective<'a> {
        let c = &p.check_response;
        AuditPerspective {
            attempt,
            code: &p.perspective_code,
            rir: p.rir.map(mpic_common::config::Rir::as_str),
            result: match (c.check_completed, c.check_passed) {
                (true, true) => "passed",
                (true, false) => "not_passed",
                (false, _) => "error",
            },
            error_type: c.errors.first().map(|e| e.error_type.as_str()),
            latency_ms: p.latency_ms,
        }
    }
}

/// Turns a parsed body into a request the orchestrator can run, or the 400 issues: the
/// contract's rules, then the dated BR rules `in_force` as `policy` applies them.
pub fn validate_request(
    request: MpicRequest,
    bounds: &Bounds,
    policy: &Policy,
    in_force: &InForce,
) -> Result<Validated, Vec<ValidationIssue>> {
    let mut issues = Vec::new();
    let target = validate::target_and_trace(
        &request.domain_or_ip_target,
        request.trace_identifier.as_deref(),
        &mut issues,
    );
    // The method is taken here, once, with the parameters it came with.
    let checked = match request.check_type {
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
            Some((Check::Caa, EchoedParameters::Caa(wire)))
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
                    Some((Check::Dcv(p.method()), EchoedParameters::Dcv(p.clone())))
                }
            }
        }
    };
    let plan = quorum::plan(request.orchestration_parameters.as_ref(), bounds)
        .map_err(|i| issues.extend(i))
        .ok();
    let (Some(target), Some((check, echo)), Some(plan)) = (target, checked, plan) else {
        return Err(issues);
    };
    let given = request
        .orchestration_parameters
        .as_ref()
        .is_some_and(|p| p.perspective_count.is_some());
    let ruling = policy.rule_on_request(in_force, plan.perspective_count, given, check.method());
    issues.extend(ruling.issues);
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(Validated {
        request,
        target,
        plan,
        check,
        echo,
        warnings: ruling.warnings,
    })
}

/// The OpenAPI 3.1 document of this service (`coordinator/openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
