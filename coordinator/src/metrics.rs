//! The coordinator's Prometheus metrics (`GET /metrics`). Names and labels follow the
//! Prometheus and OpenTelemetry conventions (`_total` counters, `_seconds` histograms); label
//! values are bounded sets — check types, method names, verdicts, status codes, configured
//! perspective codes — never domain names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::fanout::CallResult;
use mpic_common::outcome::RemoteFailure;

/// Labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `caa` or `dcv`.
    pub check_type: String,
    /// The DCV method, or empty for CAA.
    pub method: String,
    /// `valid`, `invalid`, or `none` when no verdict was reached (4xx/5xx).
    pub verdict: String,
    /// The HTTP status returned.
    pub status: u16,
}

/// Labels of a request-level histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckTypeLabels {
    /// `caa` or `dcv`.
    pub check_type: String,
}

/// Labels of a perspective call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The configured code.
    pub perspective: String,
    /// `passed`, `not_passed`, `error` (answered, not completed), `failed` (no usable
    /// answer) or `cancelled` (dropped after the verdict was settled).
    pub outcome: String,
}

/// The `outcome` label of a perspective call ([`CallLabels`]), from what became of it:
///
/// | the call | label |
/// |---|---|
/// | answered, completed, passed | `passed` |
/// | answered, completed, not passed | `not_passed` |
/// | answered, not completed | `error` |
/// | no usable answer: unreachable, out of time, broken, malformed, from another perspective | `failed` |
/// | dropped after the verdict was settled | `cancelled` |
pub fn call_outcome(result: &CallResult) -> &'static str {
    match result {
        CallResult::Answered { response, .. } => {
            match (response.check_completed, response.check_passed) {
                (true, true) => "passed",
                (true, false) => "not_passed",
                (false, _) => "error",
            }
        }
        CallResult::Failed {
            failure: RemoteFailure::Cancelled,
            ..
        } => "cancelled",
        CallResult::Failed { .. } => "failed",
    }
}

/// Labels of a rule warning.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule broken: `retired-validation-method` or `minimum-perspectives`.
    pub rule: String,
    /// The DCV method of the request, or empty for CAA.
    pub method: String,
}

/// Labels of a perspective call that did not complete.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotCompletedLabels {
    /// The configured code.
    pub perspective: String,
    /// Why ([`not_completed_reason`]).
    pub reason: String,
}

/// Why a call's entry is not completed (the `reason` of
/// `mpic_perspective_not_completed_total`), or `None` when it completed. A bounded set: the
/// coordinator's own [`RemoteFailure`] when it got no usable answer; else the family of the
/// perspective's first error type (api.md), `other` for a type this coordinator does not know.
///
/// | the call | reason |
/// |---|---|
/// | no usable answer | `unreachable`, `timeout`, `exchange`, `malformed`, `wrong_identity`, `cancelled` |
/// | answered, not completed | `caa_lookup`, `caa_dnssec`, `dcv_lookup`, `dcv_dnssec`, `dcv_parameter`, `http`, `redirect`, `tls_alpn_connection`, `tls_alpn_certificate`, `other` |
pub fn not_completed_reason(result: &CallResult) -> Option<&'static str> {
    use mpic_common::api::error_type as E;
    match result {
        CallResult::Failed { failure, .. } => Some(match failure {
            RemoteFailure::Unreachable => "unreachable",
            RemoteFailure::Timeout => "timeout",
            RemoteFailure::Exchange => "exchange",
            RemoteFailure::Malformed => "malformed",
            RemoteFailure::WrongIdentity => "wrong_identity",
            RemoteFailure::Cancelled => "cancelled",
        }),
        CallResult::Answered { response, .. } if !response.check_completed => {
            let first = response
                .errors
                .first()
                .map_or("", |e| e.error_type.as_str());
            Some(match first {
                E::CAA_LOOKUP => "caa_lookup",
                E::CAA_DNSSEC => "caa_dnssec",
                E::DCV_LOOKUP => "dcv_lookup",
                E::DCV_DNSSEC => "dcv_dnssec",
                E::DCV_PARAMETER => "dcv_parameter",
                E::HTTP => "http",
                E::REDIRECT_INVALID => "redirect",
                E::TLS_ALPN_CONNECTION => "tls_alpn_connection",
                t if t.starts_with(E::TLS_ALPN_CERTIFICATE_PREFIX) => "tls_alpn_certificate",
                _ => "other",
            })
        }
        CallResult::Answered { .. } => None,
    }
}

/// Labels of a per-perspective histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PerspectiveLabels {
    /// The configured code.
    pub perspective: String,
}

/// All coordinator metrics, registered in their own registry.
#[derive(Debug)]
pub struct Metrics {
    /// The registry served on `/metrics`.
    pub registry: Registry,
    /// `mpic_requests_total`.
    pub requests: Family<RequestLabels, Counter>,
    /// `mpic_request_duration_seconds`.
    pub request_duration: Family<CheckTypeLabels, Histogram>,
    /// `mpic_perspective_calls_total`.
    pub calls: Family<CallLabels, Counter>,
    /// `mpic_perspective_call_duration_seconds`.
    pub call_duration: Family<PerspectiveLabels, Histogram>,
    /// `mpic_perspective_not_completed_total`.
    pub not_completed: Family<NotCompletedLabels, Counter>,
    /// `mpic_cohort_attempts_total`.
    pub attempts: Family<CheckTypeLabels, Counter>,
    /// `mpic_load_shed_total`.
    pub shed: Counter,
    /// `mpic_requests_in_flight`.
    pub in_flight: Gauge,
    /// `mpic_rule_warnings_total`.
    pub rule_warnings: Family<RuleLabels, Counter>,
    /// `mpic_rules_next_change_days`.
    pub rules_next_change_days: Gauge,
    /// `mpic_connections_open`, `mpic_connections_closed_total`.
    pub connections: mpic_common::serve::ConnectionMetrics,
    /// `mpic_tls_certificate_not_after_seconds`, `mpic_tls_reload_applied_total`,
    /// `mpic_tls_reload_refused_total`.
    pub reload: mpic_common::reload::ReloadMetrics,
    /// `mpic_quorum_failures_total`.
    pub quorum_failures: Family<CheckTypeLabels, Counter>,
    /// `mpic_start_time_seconds`, `mpic_shutting_down`.
    pub lifecycle: mpic_common::serve::LifecycleMetrics,
    /// `mpic_perspective_connections`.
    pub perspective_connections: Family<PerspectiveLabels, Gauge>,
    /// `mpic_perspective_stream_waits_total`.
    pub stream_waits: Family<PerspectiveLabels, Counter>,
    /// `mpic_quorum_to_response_seconds`.
    pub quorum_to_response: Histogram,
}

impl Metrics {
    /// A fresh set.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mpic");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "POST /mpic requests answered, by check type, method, verdict and HTTP status",
            requests.clone(),
        );
        let request_duration = Family::<CheckTypeLabels, Histogram>::new_with_constructor(
            mpic_common::metrics::latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "request_duration",
            "Time to answer POST /mpic, every attempt included",
            prometheus_client::registry::Unit::Seconds,
            request_duration.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "perspective_calls",
            "Perspective calls, by perspective and outcome",
            calls.clone(),
        );
        let call_duration = Family::<PerspectiveLabels, Histogram>::new_with_constructor(
            mpic_common::metrics::latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "perspective_call_duration",
            "Duration of one perspective call until its answer or failure",
            prometheus_client::registry::Unit::Seconds,
            call_duration.clone(),
        );
        let not_completed = Family::<NotCompletedLabels, Counter>::default();
        registry.register(
            "perspective_not_completed",
            "Perspective calls whose entry is not completed, by perspective and reason",
            not_completed.clone(),
        );
        let attempts = Family::<CheckTypeLabels, Counter>::default();
        registry.register(
            "cohort_attempts",
            "Cohort attempts made (a retry walks the next cohort)",
            attempts.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "load_shed",
            "Requests refused with 503 because the concurrency limit was reached",
            shed.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "POST /mpic requests being orchestrated now",
            in_flight.clone(),
        );
        let rule_warnings = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rule_warnings",
            "Requests served although they break a dated BR rule (policy: warn, or an exception of rules.allow_retired_methods), by rule and method",
            rule_warnings.clone(),
        );
        let rules_next_change_days = Gauge::default();
        registry.register(
            "rules_next_change_days",
            "Days until the next dated BR rule takes effect (the rules table), -1 when none is known",
            rules_next_change_days.clone(),
        );
        let connections = mpic_common::serve::ConnectionMetrics::register(&mut registry);
        let reload = mpic_common::reload::ReloadMetrics::register(&mut registry);
        let quorum_failures = Family::<CheckTypeLabels, Counter>::default();
        // Both series exist from the start, at 0: a rate over them (the alert on undecidable
        // answers) has data before the first failure, and the family is in every scrape.
        for check_type in ["caa", "dcv"] {
            drop(quorum_failures.get_or_create(&CheckTypeLabels {
                check_type: check_type.to_owned(),
            }));
        }
        registry.register(
            "quorum_failures",
            "POST /mpic answered with mpic_completed false: more perspectives did not complete than the quorum allows",
            quorum_failures.clone(),
        );
        let lifecycle = mpic_common::serve::LifecycleMetrics::register(&mut registry);
        let perspective_connections = Family::<PerspectiveLabels, Gauge>::default();
        registry.register(
            "perspective_connections",
            "HTTP/2 connections open to each perspective (opened on demand, up to limits.max_connections_per_perspective)",
            perspective_connections.clone(),
        );
        let stream_waits = Family::<PerspectiveLabels, Counter>::default();
        registry.register(
            "perspective_stream_waits",
            "Perspective calls that found no free HTTP/2 stream and waited for one",
            stream_waits.clone(),
        );
        let quorum_to_response = mpic_common::metrics::latency_histogram();
        registry.register_with_unit(
            "quorum_to_response",
            "Per attempt, from the answer that settled the verdict to the end of the gather (the straggler grace at work)",
            prometheus_client::registry::Unit::Seconds,
            quorum_to_response.clone(),
        );
        Metrics {
            perspective_connections,
            stream_waits,
            quorum_to_response,
            rule_warnings,
            rules_next_change_days,
            registry,
            lifecycle,
            connections,
            reload,
            requests,
            request_duration,
            calls,
            call_duration,
            not_completed,
            attempts,
            shed,
            in_flight,
            quorum_failures,
        }
    }
}

impl Metrics {
    /// What the channel to perspective `code` counts in.
    pub fn channel(&self, code: &str) -> crate::channel::ChannelMetrics {
        let labels = PerspectiveLabels {
            perspective: code.to_owned(),
        };
        crate::channel::ChannelMetrics {
            connections: self.perspective_connections.get_or_create(&labels).clone(),
            stream_waits: self.stream_waits.get_or_create(&labels).clone(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpic_common::api::{CaaDetails, CheckDetails};
    use mpic_common::outcome::{Outcome, Problem, ProblemKind};
    use std::time::Duration;

    #[test]
    fn each_call_has_its_outcome_label() {
        let details = || CheckDetails::Caa(CaaDetails::default());
        let took = Duration::from_millis(5);
        let answered = |outcome: Outcome| CallResult::Answered {
            response: outcome.into_response(details()),
            took,
        };
        let failed = |failure: RemoteFailure| CallResult::Failed {
            failure,
            entry: Outcome::NotCompleted(Problem::new(ProblemKind::Remote(failure), "x"))
                .into_response(details()),
            took: None,
        };
        let lookup = Problem::new(ProblemKind::Lookup(mpic_common::outcome::Checker::Caa), "x");
        let cases = [
            ("passed", answered(Outcome::Passed), "passed"),
            (
                "not passed",
                answered(Outcome::NotPassed(Vec::new())),
                "not_passed",
            ),
            (
                "not completed",
                answered(Outcome::NotCompleted(lookup)),
                "error",
            ),
            ("unreachable", failed(RemoteFailure::Unreachable), "failed"),
            ("timeout", failed(RemoteFailure::Timeout), "failed"),
            ("exchange", failed(RemoteFailure::Exchange), "failed"),
            ("malformed", failed(RemoteFailure::Malformed), "failed"),
            (
                "wrong identity",
                failed(RemoteFailure::WrongIdentity),
                "failed",
            ),
            ("cancelled", failed(RemoteFailure::Cancelled), "cancelled"),
        ];
        for (name, result, want) in cases {
            assert_eq!(call_outcome(&result), want, "{name}");
        }
    }

    #[test]
    fn each_not_completed_call_has_a_bounded_reason() {
        let details = || CheckDetails::Caa(CaaDetails::default());
        let answered = |outcome: Outcome| CallResult::Answered {
            response: outcome.into_response(details()),
            took: Duration::from_millis(5),
        };
        let failed = |failure: RemoteFailure| CallResult::Failed {
            failure,
            entry: Outcome::NotCompleted(Problem::new(ProblemKind::Remote(failure), "x"))
                .into_response(details()),
            took: None,
        };
        let problem = |kind| Outcome::NotCompleted(Problem::new(kind, "x"));
        let mut unknown = problem(ProblemKind::Http).into_response(details());
        unknown.errors[0].error_type = "made-up".to_owned();
        let cases = [
            ("passed", answered(Outcome::Passed), None),
            ("not passed", answered(Outcome::NotPassed(Vec::new())), None),
            (
                "a CAA lookup",
                answered(problem(ProblemKind::Lookup(
                    mpic_common::outcome::Checker::Caa,
                ))),
                Some("caa_lookup"),
            ),
            (
                "DNSSEC of a DCV lookup",
                answered(problem(ProblemKind::Dnssec(
                    mpic_common::outcome::Checker::Dcv,
                ))),
                Some("dcv_dnssec"),
            ),
            (
                "a TLS-ALPN certificate rule",
                answered(problem(ProblemKind::TlsAlpnCertificate(
                    mpic_common::outcome::CertificateRule::DigestMismatch,
                ))),
                Some("tls_alpn_certificate"),
            ),
            (
                "a type this coordinator does not know",
                CallResult::Answered {
                    response: unknown,
                    took: Duration::from_millis(5),
                },
                Some("other"),
            ),
            (
                "unreachable",
                failed(RemoteFailure::Unreachable),
                Some("unreachable"),
            ),
            ("timeout", failed(RemoteFailure::Timeout), Some("timeout")),
            (
                "cancelled",
                failed(RemoteFailure::Cancelled),
                Some("cancelled"),
            ),
        ];
        for (name, result, want) in cases {
            assert_eq!(not_completed_reason(&result), want, "{name}");
        }
    }
}
