//! One `POST /mpic` from validated request to response (architecture.md "Data flow"): pick
//! the target's cohorts, run attempts over them until the corroboration succeeds or attempts
//! run out, and build the document the CA logs (BR 5.4.1).

use std::time::Duration;

use bytes::Bytes;
use mpic_common::api::{
    ActualOrchestrationParameters, CaaPerspectiveRequest, CheckType, DcvPerspectiveRequest,
    EchoedParameters, MpicRequest, MpicResponse, PerspectiveResult,
};
use mpic_common::target::Target;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::channel::Channel;
use crate::cohort::{self, Member};
use crate::config::PerspectiveEntry;
use crate::fanout::{self, Call, Check, Limits, Pending};
use crate::metrics::{CallLabels, CheckTypeLabels, PerspectiveLabels};
use crate::quorum::{self, Plan};

/// What an orchestrator is built from: the configuration's catalogue and `timeouts`, the
/// client TLS towards the perspectives and the cohort hash secret.
#[derive(Clone)]
pub struct OrchestratorSettings {
    /// The catalogue, in configuration order.
    pub perspectives: Vec<PerspectiveEntry>,
    /// Mutual TLS towards the perspectives; `None` calls them over plain HTTP, only behind
    /// `danger_plain_http_perspectives` (tests).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The secret keying the cohort hash, so that nobody can tell a target's cohorts.
    pub hash_secret: Vec<u8>,
    /// Each call's limit (`timeouts.perspective_call_ms`); also the limit of a connection's
    /// set-up.
    pub call_timeout: Duration,
    /// The whole request's limit (`timeouts.request_ms`).
    pub request_timeout: Duration,
    /// How long stragglers get once the verdict is settled (`timeouts.straggler_grace_ms`).
    pub grace: Duration,
}

impl std::fmt::Debug for OrchestratorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the hash secret.
        f.debug_struct("OrchestratorSettings")
            .field("perspectives", &self.perspectives.len())
            .field("tls", &self.tls.is_some())
            .field("call_timeout", &self.call_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Everything needed to run requests against one catalogue.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    /// The catalogue, in configuration order.
    pub perspectives: Vec<PerspectiveEntry>,
    members: Vec<Member>,
    /// The connection to each perspective, in catalogue order.
    pub channels: Vec<std::sync::Arc<Channel>>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    secret: Vec<u8>,
    call_timeout: Duration,
    request_timeout: Duration,
    grace: Duration,
}

/// Why a request could not be orchestrated (500, api.md "Other statuses").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrchestrationError {
    /// Not one cohort of the requested size can be built from the catalogue.
    #[error(
        "mpic_error:coordinator:cohort: no cohort of {n} perspectives can be built for this target"
    )]
    NoCohort {
        /// The size asked for.
        n: u32,
    },
    /// `cohort_for_single_attempt` names a cohort that does not exist.
    #[error(
        "mpic_error:coordinator:cohort_selection: cohort {requested} requested, this target has {available} cohorts of {n}"
    )]
    CohortSelection {
        /// The 1-based number asked for.
        requested: u32,
        /// How many exist.
        available: usize,
        /// Their size.
        n: u32,
    },
}

/// A finished orchestration.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The document for the CA.
    pub response: MpicResponse,
    /// Time spent waiting on perspectives (every attempt's calls, from first send to the last
    /// answer or cancellation); the rest of the request's time is the coordinator's own.
    pub waited: Duration,
}

/// A request that passed validation.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The body as received.
    pub request: MpicRequest,
    /// Its target, normalised.
    pub target: Target,
    /// Cohort size, quorum, attempts.
    pub plan: Plan,
    /// The echo, defaults filled in.
    pub echo: EchoedParameters,
}

impl Orchestrator {
    /// An orchestrator over `settings.perspectives`, counting in `metrics`.
    pub fn new(
        settings: OrchestratorSettings,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Result<Orchestrator, mpic_common::config::ConfigError> {
        let OrchestratorSettings {
            perspectives,
            tls,
            hash_secret,
            call_timeout,
            request_timeout,
            grace,
        } = settings;
        let members = perspectives.iter().map(PerspectiveEntry::member).collect();
        let channels = perspectives
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Channel::new(&p.url, tls.clone(), call_timeout)
                    .map(std::sync::Arc::new)
                    .map_err(|e| {
                        mpic_common::config::ConfigError::field(
                            &format!("perspectives[{i}].url"),
                            e,
                        )
                    })
            })
            .collect::<Result<_, mpic_common::config::ConfigError>>()?;
        Ok(Orchestrator {
            perspectives,
            members,
            channels,
            metrics,
            secret: hash_secret,
            call_timeout,
            request_timeout,
            grace,
        })
    }

    /// The cohorts of `target` (indices into the catalogue), in the order retries walk them.
    pub fn cohorts_for(&self, target: &Target, n: u32) -> Vec<Vec<usize>> {
        let seed = cohort::seed(&self.secret, &target.to_string());
        cohort::cohorts(&self.members, n as usize, seed)
    }

    /// When a request that arrived at `arrived` must be answered (`timeouts.request_ms`, "the
    /// whole request"): reading its body and every attempt count toward it.
    pub fn deadline(&self, arrived: Instant) -> Instant {
        arrived + self.request_timeout
    }

    /// Runs the request, within `deadline` ([`Orchestrator::deadline`]).
    pub async fn run(
        &self,
        v: &Validated,
        deadline: Instant,
    ) -> Result<Outcome, OrchestrationError> {
        let plan = v.plan;
        let cohorts = self.cohorts_for(&v.target, plan.perspective_count);
        if cohorts.is_empty() {
            return Err(OrchestrationError::NoCohort {
                n: plan.perspective_count,
            });
        }
        let first = match plan.cohort_for_single_attempt {
            None => 0,
            Some(k) if (k as usize) <= cohorts.len() => k as usize - 1,
            Some(k) => {
                return Err(OrchestrationError::CohortSelection {
                    requested: k,
                    available: cohorts.len(),
                    n: plan.perspective_count,
                });
            }
        };
        let check = match &v.echo {
            EchoedParameters::Dcv(p) => Check::Dcv(p.method()),
            EchoedParameters::Caa(_) => Check::Caa,
        };
        let (path, body) = self.perspective_body(v);
        let mut waited = Duration::ZERO;
        let mut attempts: Vec<Vec<PerspectiveResult>> = Vec::new();
        let mut last_outcomes = Vec::new();
        for (k, cohort) in cohorts
            .iter()
            .enumerate()
            .skip(first)
            .take(plan.max_attempts as usize)
        {
            if k > first && Instant::now() >= deadline {
                break;
            }
            let calls: Vec<_> = cohort
                .iter()
                .map(|&i| {
                    let entry = &self.perspectives[i];
                    let channel = &*self.channels[i];
                    let call = Call {
                        uri: if path == 0 {
                            &channel.caa
                        } else {
                            &channel.dcv
                        },
                        channel,
                        code: &entry.code,
                        body: body.clone(),
                        trace_identifier: v.request.trace_identifier.as_deref(),
                    };
                    let span = mpic_common::detail_span!(
                        "mpic.perspective_call",
                        otel.name = %format!("call {}", entry.code),
                        perspective.code = %entry.code,
                        attempt = k + 1,
                    );
                    Pending {
                        rir: entry.rir,
                        code: &entry.code,
                        answer: fanout::call(call, check).instrument(span),
                    }
                })
                .collect();
            let limits = Limits {
                call_timeout: self
                    .call_timeout
                    .min(deadline.saturating_duration_since(Instant::now())),
                grace: self.grace,
                deadline,
            };
            let gathering = Instant::now();
            let results = fanout::gather(calls, plan.quorum_count, limits, check).await;
            waited += gathering.elapsed();
            self.metrics
                .attempts
                .get_or_create(&CheckTypeLabels {
                    check_type: v.request.check_type.as_str().to_owned(),
                })
                .inc();
            for (&i, result) in cohort.iter().zip(&results) {
                let code = &self.perspectives[i].code;
                if let Some(took) = result.took() {
                    self.metrics
                        .call_duration
                        .get_or_create(&PerspectiveLabels {
                            perspective: code.clone(),
                        })
                        .observe(took.as_secs_f64());
                }
                self.metrics
                    .calls
                    .get_or_create(&CallLabels {
                        perspective: code.clone(),
                        outcome: crate::metrics::call_outcome(result).to_owned(),
                    })
                    .inc();
            }
            last_outcomes = cohort
                .iter()
                .zip(&results)
                .map(|(&i, r)| r.vote(self.perspectives[i].rir))
                .collect();
            attempts.push(
                cohort
                    .iter()
                    .zip(results)
                    .map(|(&i, result)| PerspectiveResult {
                        perspective_code: self.perspectives[i].code.clone(),
                        latency_ms: result
                            .took()
                            .map(|took| u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
                        check_response: result.into_response(),
                        rir: Some(self.perspectives[i].rir),
                    })
                    .collect(),
            );
            if quorum::verdict(plan.perspective_count, plan.quorum_count, &last_outcomes) {
                break;
            }
        }
        let n = plan.perspective_count;
        let q = plan.quorum_count;
        let attempt_count = u32::try_from(attempts.len()).unwrap_or(u32::MAX);
        let perspectives = attempts.pop().unwrap_or_default();
        let response = MpicResponse {
            mpic_completed: quorum::completed(n, q, &last_outcomes),
            request_orchestration_parameters: v.request.orchestration_parameters.clone(),
            actual_orchestration_parameters: Some(ActualOrchestrationParameters {
                perspective_count: n,
                quorum_count: q,
                attempt_count,
            }),
            check_type: v.request.check_type,
            domain_or_ip_target: v.request.domain_or_ip_target.clone(),
            trace_identifier: v.request.trace_identifier.clone(),
            is_valid: quorum::verdict(n, q, &last_outcomes),
            parameters: v.echo.clone(),
            perspectives,
            previous_attempt_results: (!attempts.is_empty()).then_some(attempts),
            quorum_result: quorum::quorum_result(n, &last_outcomes),
        };
        Ok(Outcome { response, waited })
    }

    /// The body every perspective of the request receives (serialised once).
    fn perspective_body(&self, v: &Validated) -> (usize, Bytes) {
        let target = v.target.to_string();
        let trace_identifier = v.request.trace_identifier.clone();
        let body = match &v.echo {
            EchoedParameters::Caa(p) => serde_json::to_vec(&CaaPerspectiveRequest {
                domain_or_ip_target: target,
                trace_identifier,
                caa_check_parameters: Some(p.clone()),
            }),
            EchoedParameters::Dcv(p) => serde_json::to_vec(&DcvPerspectiveRequest {
                domain_or_ip_target: target,
                trace_identifier,
                dcv_check_parameters: p.clone(),
            }),
        };
        let path = match v.request.check_type {
            CheckType::Caa => 0,
            CheckType::Dcv => 1,
        };
        // Serialising our own types to JSON cannot fail (string keys, no non-finite floats).
        (path, Bytes::from(body.unwrap_or_default()))
    }
}
