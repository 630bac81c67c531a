//! One `POST /mpic` from validated request to response (architecture.md "Data flow"): pick
//! the target's cohorts, run attempts over them until the corroboration succeeds or attempts
//! run out, and build the document the CA logs (BR 5.4.1).
//!
//! Each step is its own function: [`Orchestrator::attempt`] calls one cohort and gathers what
//! became of each call, once; [`Attempt::verdict`] decides the attempt under the quorum rules,
//! once; [`response`] builds the document from the decided attempts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mpic_common::api::{
    ActualOrchestrationParameters, CaaPerspectiveRequest, DcvPerspectiveRequest, EchoedParameters,
    MpicRequest, MpicResponse, PerspectiveResult, RuleWarning,
};
use mpic_common::reload::tls::ClientTls;
use mpic_common::target::Target;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::channel::{Channel, ChannelSettings};
use crate::cohort::{self, Member};
use crate::config::PerspectiveEntry;
use crate::fanout::{self, Call, CallResult, Check, Limits, Pending};
use crate::metrics::{CallLabels, CheckTypeLabels, Metrics, PerspectiveLabels};
use crate::quorum::{self, Plan, Verdict, Vote};
use crate::secrets::HashSecret;

/// What an orchestrator is built from: the configuration's catalogue and `timeouts`, the
/// client TLS towards the perspectives and the cohort hash secret.
#[derive(Clone)]
pub struct OrchestratorSettings {
    /// The catalogue, in configuration order.
    pub perspectives: Vec<PerspectiveEntry>,
    /// Mutual TLS towards the perspectives (each perspective's certificate must name it,
    /// [`ClientTls::config`]); `None` calls them over plain HTTP,
    /// only behind `danger_plain_http_perspectives` (tests).
    pub tls: Option<ClientTls>,
    /// The secret keying the cohort hash, so that nobody can tell a target's cohorts.
    pub hash_secret: HashSecret,
    /// Each call's limit (`timeouts.perspective_call_ms`); also the limit of a connection's
    /// set-up.
    pub call_timeout: Duration,
    /// The whole request's limit (`timeouts.request_ms`).
    pub request_timeout: Duration,
    /// How long stragglers get once the verdict is settled (`timeouts.straggler_grace_ms`).
    pub grace: Duration,
    /// The most HTTP/2 connections to each perspective
    /// (`limits.max_connections_per_perspective`).
    pub max_connections_per_perspective: usize,
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
    pub channels: Vec<Arc<Channel>>,
    metrics: Arc<Metrics>,
    secret: HashSecret,
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
pub struct Orchestrated {
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
    /// What it checks: CAA, or DCV by which method.
    pub check: Check,
    /// The echo, defaults filled in.
    pub echo: EchoedParameters,
    /// The dated BR rules it breaks that the policy serves anyway (the response's
    /// `warnings`).
    pub warnings: Vec<RuleWarning>,
}

/// One attempt: each member of its cohort with what became of its call, in cohort order.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The calls.
    pub calls: Vec<(&'a PerspectiveEntry, CallResult)>,
    /// From the first send to the last answer or cancellation.
    pub waited: Duration,
}

/// An attempt's `perspectives` array and its verdict.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The entries, in cohort order.
    pub entries: Vec<PerspectiveResult>,
    /// What they decide.
    pub verdict: Verdict,
}

impl Attempt<'_> {
    /// The attempt's verdict under `plan` (api.md section 3), from each perspective's vote.
    pub fn verdict(&self, plan: &Plan) -> Verdict {
        let votes: Vec<Vote> = self
            .calls
            .iter()
            .map(|(perspective, result)| result.vote(perspective.rir))
            .collect();
        quorum::decide(plan.perspective_count, plan.quorum_count, &votes)
    }

    /// The attempt's entries, decided by `verdict`.
    pub fn decided(self, verdict: Verdict) -> Decided {
        let entries = self
            .calls
            .into_iter()
            .map(|(perspective, result)| PerspectiveResult {
                perspective_code: perspective.code.clone(),
                latency_ms: result
                    .took()
                    .map(|took| u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
                check_response: result.into_response(),
                rir: Some(perspective.rir),
            })
            .collect();
        Decided { entries, verdict }
    }
}

impl Orchestrator {
    /// An orchestrator over `settings.perspectives`, counting in `metrics`.
    pub fn new(
        settings: OrchestratorSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Orchestrator, mpic_common::config::ConfigError> {
        let OrchestratorSettings {
            perspectives,
            tls,
            hash_secret,
            call_timeout,
            request_timeout,
            grace,
            max_connections_per_perspective,
        } = settings;
        let members = perspectives.iter().map(PerspectiveEntry::member).collect();
        let channels = perspectives
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // A client of its own for each perspective: only that perspective's
                // certificate is accepted on its connection.
                let client = tls.as_ref().map(|t| Arc::new(t.config(Some(&p.code))));
                let mut channel_settings = ChannelSettings::new(call_timeout);
                channel_settings.max_connections = max_connections_per_perspective;
                channel_settings.metrics = metrics.channel(&p.code);
                // A connection authenticated with material since replaced is not used for
                // new calls: it finishes those it carries and closes.
                if let Some(t) = &tls {
                    channel_settings = channel_settings.retire_on(t.generation().clone());
                }
                Channel::new(&p.url, client, channel_settings)
                    .map(Arc::new)
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
        let seed = cohort::seed(&self.secret.get(), &target.to_string());
        cohort::cohorts(&self.members, n as usize, seed)
    }

    /// When a request that arrived at `arrived` must be answered (`timeouts.request_ms`, "the
    /// whole request"): reading its body and every attempt count toward it.
    pub fn deadline(&self, arrived: Instant) -> Instant {
        arrived + self.request_timeout
    }

    /// Runs the request, within `deadline` ([`Orchestrator::deadline`]): attempts over the
    /// target's cohorts until one is valid, the attempts allowed are made, or the deadline
    /// has passed (the first attempt always runs).
    pub async fn run(
        &self,
        v: &Validated,
        deadline: Instant,
    ) -> Result<Orchestrated, OrchestrationError> {
        let plan = v.plan;
        let cohorts = self.cohorts_for(&v.target, plan.perspective_count);
        let first = first_cohort(&plan, cohorts.len())?;
        let body = perspective_body(v);
        let mut waited = Duration::ZERO;
        let mut decided = Vec::new();
        for (k, cohort) in cohorts
            .iter()
            .enumerate()
            .skip(first)
            .take(plan.max_attempts as usize)
        {
            if k > first && Instant::now() >= deadline {
                break;
            }
            let attempt = self.attempt(v, k, cohort, &body, deadline).await;
            waited += attempt.waited;
            self.count(v.check, &attempt);
            let verdict = attempt.verdict(&plan);
            let valid = verdict.is_valid;
            decided.push(attempt.decided(verdict));
            if valid {
                break;
            }
        }
        Ok(Orchestrated {
            response: response(v, decided),
            waited,
        })
    }

    /// Calls every member of `cohort` (the target's cohort `k`, 0-based) with `body`, within
    /// the call limit and `deadline`, and gathers what becomes of each call.
    pub async fn attempt(
        &self,
        v: &Validated,
        k: usize,
        cohort: &[usize],
        body: &Bytes,
        deadline: Instant,
    ) -> Attempt<'_> {
        let check = v.check;
        let calls: Vec<_> = cohort
            .iter()
            .map(|&i| {
                let entry = &self.perspectives[i];
                let channel = &*self.channels[i];
                let call = Call {
                    uri: channel.check_uri(check.check_type()),
                    channel,
                    code: &entry.code,
                    rir: entry.rir,
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
        let gathered = fanout::gather(calls, v.plan.quorum_count, limits, check).await;
        if let Some(settled_for) = gathered.settled_for {
            self.metrics
                .quorum_to_response
                .observe(settled_for.as_secs_f64());
        }
        let results = gathered.results;
        Attempt {
            waited: gathering.elapsed(),
            calls: cohort
                .iter()
                .map(|&i| &self.perspectives[i])
                .zip(results)
                .collect(),
        }
    }

    /// Counts the attempt and each of its calls (metrics.rs).
    fn count(&self, check: Check, attempt: &Attempt<'_>) {
        self.metrics
            .attempts
            .get_or_create(&CheckTypeLabels {
                check_type: check.check_type().as_str().to_owned(),
            })
            .inc();
        for (perspective, result) in &attempt.calls {
            if let Some(took) = result.took() {
                self.metrics
                    .call_duration
                    .get_or_create(&PerspectiveLabels {
                        perspective: perspective.code.clone(),
                    })
                    .observe(took.as_secs_f64());
            }
            self.metrics
                .calls
                .get_or_create(&CallLabels {
                    perspective: perspective.code.clone(),
                    outcome: crate::metrics::call_outcome(result).to_owned(),
                })
                .inc();
            if let Some(reason) = crate::metrics::not_completed_reason(result) {
                self.metrics
                    .not_completed
                    .get_or_create(&crate::metrics::NotCompletedLabels {
                        perspective: perspective.code.clone(),
                        reason: reason.to_owned(),
                    })
                    .inc();
            }
        }
    }
}

/// The document for the CA: the last attempt's entries and verdict, the earlier attempts'
/// entries oldest first (api.md section 1, "Response").
pub fn response(v: &Validated, mut decided: Vec<Decided>) -> MpicResponse {
    let n = v.plan.perspective_count;
    let q = v.plan.quorum_count;
    let attempt_count = u32::try_from(decided.len()).unwrap_or(u32::MAX);
    // Every plan allows an attempt and the first always runs; were none made, none passed.
    let last = decided.pop().unwrap_or_else(|| Decided {
        entries: Vec::new(),
        verdict: quorum::decide(n, q, &[]),
    });
    let earlier: Vec<Vec<PerspectiveResult>> = decided.into_iter().map(|d| d.entries).collect();
    MpicResponse {
        mpic_completed: last.verdict.mpic_completed,
        request_orchestration_parameters: v.request.orchestration_parameters.clone(),
        actual_orchestration_parameters: Some(ActualOrchestrationParameters {
            perspective_count: n,
            quorum_count: q,
            attempt_count,
        }),
        check_type: v.request.check_type,
        domain_or_ip_target: v.request.domain_or_ip_target.clone(),
        trace_identifier: v.request.trace_identifier.clone(),
        is_valid: last.verdict.is_valid,
        parameters: v.echo.clone(),
        perspectives: last.entries,
        previous_attempt_results: (!earlier.is_empty()).then_some(earlier),
        quorum_result: last.verdict.quorum_result,
        warnings: v.warnings.clone(),
    }
}

/// The index of the first cohort to try among `available`: the first, or the one
/// `cohort_for_single_attempt` names (1-based).
fn first_cohort(plan: &Plan, available: usize) -> Result<usize, OrchestrationError> {
    let n = plan.perspective_count;
    if available == 0 {
        return Err(OrchestrationError::NoCohort { n });
    }
    match plan.cohort_for_single_attempt {
        None => Ok(0),
        Some(k) if (k as usize) <= available => Ok(k as usize - 1),
        Some(k) => Err(OrchestrationError::CohortSelection {
            requested: k,
            available,
            n,
        }),
    }
}

/// The body every perspective of the request receives (serialised once).
fn perspective_body(v: &Validated) -> Bytes {
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
    // Serialising our own types to JSON cannot fail (string keys, no non-finite floats).
    Bytes::from(body.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mpic_common::api::{CaaDetails, CheckDetails};
    use mpic_common::config::Rir;
    use mpic_common::outcome::{Outcome, RemoteFailure};

    fn plan(single: Option<u32>) -> Plan {
        Plan {
            perspective_count: 2,
            quorum_count: 1,
            max_attempts: 1,
            cohort_for_single_attempt: single,
        }
    }

    /// A CAA request for `example.com` over cohorts of two.
    fn validated() -> Validated {
        let bounds = quorum::Bounds {
            catalogue_size: 2,
            default_perspective_count: 2,
            max_attempts: 3,
        };
        let request = serde_json::from_value(serde_json::json!({
            "domain_or_ip_target": "example.com",
        }))
        .unwrap();
        // Cohorts of two are below the dated minimum: not what these tests are about.
        let policy = crate::policy::Policy {
            mode: crate::policy::PolicyMode::Off,
            allow_retired_methods: Vec::new(),
        };
        let today = crate::rules::in_force(crate::rules::Date::from_ymd(2026, 12, 4));
        crate::service::validate_request(request, &bounds, &policy, &today).unwrap()
    }

    #[test]
    fn the_first_cohort_is_the_first_or_the_one_named() {
        use OrchestrationError::*;
        let cases = [
            ("the first", plan(None), 3, Ok(0)),
            ("the one named", plan(Some(3)), 3, Ok(2)),
            (
                "beyond the last",
                plan(Some(4)),
                3,
                Err(CohortSelection {
                    requested: 4,
                    available: 3,
                    n: 2,
                }),
            ),
            ("no cohort", plan(None), 0, Err(NoCohort { n: 2 })),
        ];
        for (name, plan, available, want) in cases {
            assert_eq!(first_cohort(&plan, available), want, "{name}");
        }
    }

    #[tokio::test]
    async fn an_attempt_gathers_each_call_once_in_cohort_order() {
        // Nobody listens at the perspectives' address: every call fails on its own.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let entry = |code: &str, rir| PerspectiveEntry {
            code: code.to_owned(),
            name: code.to_owned(),
            rir,
            latitude: 0.0,
            longitude: 0.0,
            url: url.clone(),
            too_close_codes: Vec::new(),
            rtt_ms: None,
        };
        let settings = OrchestratorSettings {
            perspectives: vec![entry("a", Rir::Arin), entry("b", Rir::RipeNcc)],
            tls: None,
            hash_secret: vec![7; 16].into(),
            call_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            grace: Duration::from_millis(100),
            max_connections_per_perspective: 2,
        };
        let orchestrator = Orchestrator::new(settings, Arc::new(Metrics::new())).unwrap();
        let v = validated();
        let deadline = Instant::now() + Duration::from_secs(5);
        let attempt = orchestrator
            .attempt(&v, 0, &[1, 0], &perspective_body(&v), deadline)
            .await;
        for ((perspective, result), code) in attempt.calls.iter().zip(["b", "a"]) {
            assert_eq!(perspective.code, code);
            let CallResult::Failed { failure, took, .. } = result else {
                panic!("{code}: {result:?}");
            };
            assert_eq!(*failure, RemoteFailure::Unreachable, "{code}");
            assert!(took.is_some(), "{code}: failed on its own");
            let message = &result.response().errors[0].error_message;
            assert!(
                message.starts_with(&format!("perspective {code}: could not connect")),
                "{message}"
            );
        }
        let verdict = attempt.verdict(&v.plan);
        assert_eq!(
            verdict,
            Verdict {
                is_valid: false,
                mpic_completed: false,
                quorum_result: "0/2".to_owned(),
            }
        );
        let decided = attempt.decided(verdict);
        let rirs: Vec<_> = decided.entries.iter().map(|e| e.rir).collect();
        assert_eq!(rirs, [Some(Rir::RipeNcc), Some(Rir::Arin)]);
    }

    #[test]
    fn the_response_is_the_last_attempt_with_the_earlier_ones_oldest_first() {
        let v = validated();
        let attempt = |codes: [&str; 2], passed: u32| Decided {
            entries: codes
                .iter()
                .map(|code| PerspectiveResult {
                    perspective_code: (*code).to_owned(),
                    check_response: Outcome::Passed
                        .into_response(CheckDetails::Caa(CaaDetails::default())),
                    rir: Some(Rir::Arin),
                    latency_ms: Some(1),
                })
                .collect(),
            verdict: Verdict {
                is_valid: passed == 2,
                mpic_completed: true,
                quorum_result: format!("{passed}/2"),
            },
        };
        let codes = |entries: &[PerspectiveResult]| -> Vec<String> {
            entries.iter().map(|e| e.perspective_code.clone()).collect()
        };
        let r = response(
            &v,
            vec![
                attempt(["a", "b"], 0),
                attempt(["c", "d"], 1),
                attempt(["e", "f"], 2),
            ],
        );
        assert_eq!(codes(&r.perspectives), ["e", "f"]);
        let earlier: Vec<_> = r
            .previous_attempt_results
            .as_deref()
            .unwrap()
            .iter()
            .map(|a| codes(a))
            .collect();
        assert_eq!(earlier, [["a", "b"], ["c", "d"]]);
        assert_eq!(r.actual_orchestration_parameters.unwrap().attempt_count, 3);
        assert_eq!(
            (r.is_valid, r.mpic_completed, r.quorum_result.as_str()),
            (true, true, "2/2")
        );

        let r = response(&v, vec![attempt(["a", "b"], 1)]);
        assert_eq!(r.previous_attempt_results, None);
        assert_eq!((r.is_valid, r.quorum_result.as_str()), (false, "1/2"));
    }
}
