//! Shutdown in the order a load balancer needs (architecture.md "Operations"): on SIGTERM the
//! service says at once that it is not ready (`/readyz` 503 with the reason), keeps serving for
//! a pre-stop delay while load balancers and Kubernetes endpoints stop sending to it, then
//! closes its API listener and drains it (GOAWAY, `Connection: close`, requests in flight
//! finish within the drain deadline), and only then closes the operations listener, so that
//! probes and scrapers see the whole drain.
//!
//! The `shutdown:` section of both configuration files is [`ShutdownSettings`]; the running
//! state is a [`Lifecycle`], shared by the readiness endpoint and the listeners.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The `shutdown` section of both services' configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    /// From SIGTERM until the listeners close, in milliseconds: readiness is false meanwhile
    /// and requests are still served, so that load balancers stop sending before the port
    /// closes. In Kubernetes set it above the time your endpoints take to update (5000 is
    /// common); in compose, where nothing routes by readiness, keep it small.
    #[serde(default = "default_pre_stop_delay_ms")]
    pub pre_stop_delay_ms: u64,
    /// How long requests in flight get to finish once the listeners have closed, in
    /// milliseconds; what is left then is cut. At least the request deadline (the
    /// coordinator's `timeouts.request_ms`, the perspective's `limits.check_timeout_ms`);
    /// unset, the request deadline plus one second for the last answers to be written.
    #[serde(default)]
    pub drain_timeout_ms: Option<u64>,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings {
            pre_stop_delay_ms: default_pre_stop_delay_ms(),
            drain_timeout_ms: None,
        }
    }
}

impl ShutdownSettings {
    /// Checks the ranges and that the drain is no shorter than the request deadline
    /// (`request_deadline_ms`, configured as `deadline_key`); errors name `section.field`.
    pub fn validate(
        &self,
        section: &str,
        request_deadline_ms: u64,
        deadline_key: &str,
    ) -> Result<(), ConfigError> {
        if self.pre_stop_delay_ms > MAX_PRE_STOP_DELAY_MS {
            return Err(ConfigError::field(
                &format!("{section}.pre_stop_delay_ms"),
                format!("must be at most {MAX_PRE_STOP_DELAY_MS}"),
            ));
        }
        if let Some(drain) = self.drain_timeout_ms
            && (drain < request_deadline_ms || drain > MAX_DRAIN_TIMEOUT_MS)
        {
            return Err(ConfigError::field(
                &format!("{section}.drain_timeout_ms"),
                format!(
                    "must be at least {deadline_key} ({request_deadline_ms}), so that a request in flight at shutdown can finish, and at most {MAX_DRAIN_TIMEOUT_MS}"
                ),
            ));
        }
        Ok(())
    }

    /// The pre-stop delay.
    pub fn pre_stop_delay(&self) -> Duration {
        Duration::from_millis(self.pre_stop_delay_ms)
    }

    /// The drain deadline for a service whose requests end within `request_deadline`.
    pub fn drain_timeout(&self, request_deadline: Duration) -> Duration {
        self.drain_timeout_ms
            .map_or(request_deadline + DRAIN_MARGIN, Duration::from_millis)
    }
}

/// A service's place between serving and exiting: readiness reads it, the listeners follow it.
#[derive(Debug, Clone)]
pub struct Lifecycle(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    stopping: AtomicBool,
    pre_stop_delay: Duration,
    drain_timeout: Duration,
    metrics: Option<LifecycleMetrics>,
}

impl Lifecycle {
    /// Serving, with these delays.
    pub fn new(pre_stop_delay: Duration, drain_timeout: Duration) -> Lifecycle {
        Lifecycle(Arc::new(Inner {
            stopping: AtomicBool::new(false),
            pre_stop_delay,
            drain_timeout,
            metrics: None,
        }))
    }

    /// Serving as `settings` say, for requests that end within `request_deadline`, counted in
    /// `metrics`.
    pub fn from_settings(
        settings: &ShutdownSettings,
        request_deadline: Duration,
        metrics: &LifecycleMetrics,
    ) -> Lifecycle {
        Lifecycle(Arc::new(Inner {
            stopping: AtomicBool::new(false),
            pre_stop_delay: settings.pre_stop_delay(),
            drain_timeout: settings.drain_timeout(request_deadline),
            metrics: Some(metrics.clone()),
        }))
    }

    /// True once shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.0.stopping.load(Ordering::Acquire)
    }

    /// What `/readyz` answers (with 503) once shutdown has begun; `None` before.
    pub fn not_ready(&self) -> Option<serde_json::Value> {
        self.is_stopping().then(|| {
            serde_json::json!({
                "status": "not-ready",
                "reason": "shutting down: draining connections",
            })
        })
    }

    /// How long requests in flight get once the listeners have closed.
    pub fn drain_timeout(&self) -> Duration {
        self.0.drain_timeout
    }

    /// The pre-stop delay.
    pub fn pre_stop_delay(&self) -> Duration {
        self.0.pre_stop_delay
    }

    /// Turns readiness false now and logs it.
    pub fn begin_stop(&self) {
        if self.0.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(m) = &self.0.metrics {
            m.shutting_down.set(1);
        }
        tracing::info!(
            pre_stop_delay_ms = millis(self.0.pre_stop_delay),
            drain_timeout_ms = millis(self.0.drain_timeout),
            "shutting down: not ready; the listeners close after the pre-stop delay"
        );
    }

    /// Completes when the listeners should close: `signal`, then [`begin_stop`](Self::begin_stop)
    /// and the pre-stop delay.
    pub async fn stop_after(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.begin_stop();
        // No delay means none: a zero sleep would still wait for the timer's next tick, and
        // the drain would count what is in flight a tick late.
        if !self.0.pre_stop_delay.is_zero() {
            tokio::time::sleep(self.0.pre_stop_delay).await;
        }
    }
}

/// Metrics of a service's life: when it started and whether it is shutting down.
#[derive(Debug, Clone, Default)]
pub struct LifecycleMetrics {
    /// `…_start_time_seconds`: when the process started serving (Unix time); a restart
    /// changes it.
    pub start_time: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// `…_shutting_down`: 1 from SIGTERM until the process exits.
    pub shutting_down: Gauge,
}

impl LifecycleMetrics {
    /// Registers the metrics in `registry`, the start time set to now.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> LifecycleMetrics {
        let metrics = LifecycleMetrics::default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics.start_time.set(now);
        registry.register_with_unit(
            "start_time",
            "When the process started (Unix time)",
            prometheus_client::registry::Unit::Seconds,
            metrics.start_time.clone(),
        );
        registry.register(
            "shutting_down",
            "1 from SIGTERM until the process exits: not ready, draining",
            metrics.shutting_down.clone(),
        );
        metrics
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn default_pre_stop_delay_ms() -> u64 {
    DEFAULT_PRE_STOP_DELAY_MS
}

/// Default `shutdown.pre_stop_delay_ms`: long enough for a probe or a compose health check to
/// see the service not ready, short enough that restarting it in compose stays quick. Set
/// several seconds in Kubernetes (the chart does).
pub const DEFAULT_PRE_STOP_DELAY_MS: u64 = 1_000;
/// Time given to the last answers to be written after the request deadline, when
/// `drain_timeout_ms` is not set.
pub const DRAIN_MARGIN: Duration = Duration::from_secs(1);
/// Largest `shutdown.pre_stop_delay_ms`.
const MAX_PRE_STOP_DELAY_MS: u64 = 120_000;
/// Largest `shutdown.drain_timeout_ms`.
const MAX_DRAIN_TIMEOUT_MS: u64 = 600_000;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_drain_is_no_shorter_than_the_request_deadline() {
        struct Case {
            name: &'static str,
            yaml: &'static str,
            want: Result<Duration, &'static str>,
        }
        let cases = [
            Case {
                name: "defaults: the deadline and a second",
                yaml: "{}",
                want: Ok(Duration::from_millis(16_000)),
            },
            Case {
                name: "a drain as long as the deadline",
                yaml: "{drain_timeout_ms: 15000}",
                want: Ok(Duration::from_millis(15_000)),
            },
            Case {
                name: "a drain shorter than the deadline",
                yaml: "{drain_timeout_ms: 14999}",
                want: Err("shutdown.drain_timeout_ms"),
            },
            Case {
                name: "a pre-stop delay of hours",
                yaml: "{pre_stop_delay_ms: 7200000}",
                want: Err("shutdown.pre_stop_delay_ms"),
            },
        ];
        for case in cases {
            let settings: ShutdownSettings = crate::config::parse_yaml(case.yaml).unwrap();
            let got = settings
                .validate("shutdown", 15_000, "timeouts.request_ms")
                .map(|()| settings.drain_timeout(Duration::from_millis(15_000)));
            match (got, case.want) {
                (Ok(d), Ok(want)) => assert_eq!(d, want, "{}", case.name),
                (Err(e), Err(field)) => {
                    assert!(e.0.starts_with(field), "{}: {e}", case.name);
                    assert!(
                        field.ends_with("pre_stop_delay_ms") || e.0.contains("timeouts.request_ms"),
                        "{}: the error names the deadline: {e}",
                        case.name
                    );
                }
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
            }
        }
        let err = crate::config::parse_yaml::<ShutdownSettings>("{colour: red}").unwrap_err();
        assert!(err.0.contains("colour"), "{err}");
    }

    /// SIGTERM turns readiness false at once; the listeners are told to close only after the
    /// pre-stop delay.
    #[tokio::test(start_paused = true)]
    async fn readiness_turns_false_at_once_and_the_listeners_close_after_the_delay() {
        let metrics = LifecycleMetrics::default();
        let lifecycle = Lifecycle::from_settings(
            &ShutdownSettings {
                pre_stop_delay_ms: 2_000,
                drain_timeout_ms: None,
            },
            Duration::from_secs(5),
            &metrics,
        );
        assert_eq!(lifecycle.drain_timeout(), Duration::from_secs(6));
        assert!(lifecycle.not_ready().is_none());
        let (fire, fired) = tokio::sync::oneshot::channel::<()>();
        let close = tokio::spawn(lifecycle.clone().stop_after(async {
            let _ = fired.await;
        }));
        tokio::task::yield_now().await;
        assert!(!lifecycle.is_stopping());
        let started = tokio::time::Instant::now();
        fire.send(()).unwrap();
        for _ in 0..10 {
            if lifecycle.is_stopping() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let body = lifecycle.not_ready().expect("not ready at once");
        assert_eq!(body["status"], "not-ready");
        assert!(body["reason"].as_str().unwrap().contains("shutting down"));
        assert_eq!(metrics.shutting_down.get(), 1);
        close.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }
}
