//! Whether the coordinator can do its job: the perspectives answering their health probe can
//! form a default cohort. Probed in the background every few seconds and kept, so that
//! `GET /readyz` answers from memory: a probe is never a fan-out to every perspective (which
//! an unauthenticated client could use as an amplifier).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use crate::cohort::{self, Member};
use crate::orchestrate::Orchestrator;

/// How often the perspectives are probed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// How long one perspective's probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The latest readiness report, shared by the probing task and the handlers.
#[derive(Debug)]
pub struct Readiness {
    latest: Mutex<Arc<Report>>,
    default_perspective_count: usize,
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `ready` or `not-ready`.
    pub status: &'static str,
    /// Perspectives that answered the last probe.
    pub healthy_perspectives: usize,
    /// Why not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Report {
    /// True when ready.
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

impl Readiness {
    /// Not ready until the first probe has run.
    pub fn new(default_perspective_count: u32) -> Readiness {
        Readiness {
            latest: Mutex::new(Arc::new(Report {
                status: "not-ready",
                healthy_perspectives: 0,
                reason: Some("the perspectives have not been probed yet".to_owned()),
            })),
            default_perspective_count: default_perspective_count as usize,
        }
    }

    /// The latest report.
    pub fn report(&self) -> Arc<Report> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Probes every perspective once and keeps the result.
    pub async fn refresh(&self, orchestrator: &Orchestrator) {
        // Over the same connections as the checks.
        let probes = orchestrator.channels.iter().map(|channel| async move {
            let mut request = axum::http::Request::new(());
            *request.uri_mut() = channel.healthz.clone();
            let probe = channel.exchange(request, bytes::Bytes::new(), 4096);
            matches!(
                tokio::time::timeout(PROBE_TIMEOUT, probe).await,
                Ok(Ok(r)) if r.status.is_success()
            )
        });
        let healthy: Vec<Member> = join_all(probes)
            .await
            .into_iter()
            .zip(&orchestrator.perspectives)
            .filter(|(up, _)| *up)
            .map(|(_, p)| p.member())
            .collect();
        let report = decide(&healthy, self.default_perspective_count);
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(report);
    }

    /// Probes every [`REFRESH_INTERVAL`] until `stop` completes.
    pub async fn run(self: Arc<Self>, orchestrator: Orchestrator, stop: impl Future<Output = ()>) {
        let probing = async {
            let mut tick = tokio::time::interval(REFRESH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.refresh(&orchestrator).await;
            }
        };
        tokio::select! {
            () = probing => {}
            () = stop => {}
        }
    }
}

/// Ready when the `healthy` perspectives can form a cohort of `n` (distance, RIR and
/// too-close rules of BR 3.2.2.9, as requests need).
pub fn decide(healthy: &[Member], n: usize) -> Report {
    let up = healthy.len();
    if cohort::cohorts(healthy, n, [0; 32]).is_empty() {
        Report {
            status: "not-ready",
            healthy_perspectives: up,
            reason: Some(format!(
                "no cohort of {n} among the {up} perspectives answering"
            )),
        }
    } else {
        Report {
            status: "ready",
            healthy_perspectives: up,
            reason: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpic_common::config::Rir;

    fn member(code: &str, rir: Rir, latitude: f64, longitude: f64) -> Member {
        Member {
            code: code.to_owned(),
            rir,
            latitude,
            longitude,
            too_close_codes: Vec::new(),
        }
    }

    #[test]
    fn ready_means_a_default_cohort_can_be_built() {
        let us = member("us", Rir::Arin, 38.9, -77.4);
        let eu = member("eu", Rir::RipeNcc, 53.3, -6.3);
        let ap = member("ap", Rir::Apnic, 35.7, 139.7);
        let us2 = member("us2", Rir::Arin, 38.95, -77.45);
        struct Case {
            name: &'static str,
            healthy: Vec<Member>,
            n: usize,
            ready: bool,
        }
        let cases = [
            Case {
                name: "none answering",
                healthy: vec![],
                n: 2,
                ready: false,
            },
            Case {
                name: "three in three RIRs for a cohort of three",
                healthy: vec![us.clone(), eu.clone(), ap.clone()],
                n: 3,
                ready: true,
            },
            Case {
                name: "two answering for a cohort of three",
                healthy: vec![us.clone(), eu.clone()],
                n: 3,
                ready: false,
            },
            Case {
                name: "three, but two too close to share a cohort",
                healthy: vec![us, us2, eu],
                n: 3,
                ready: false,
            },
        ];
        for case in cases {
            let report = decide(&case.healthy, case.n);
            assert_eq!(report.is_ready(), case.ready, "{}: {report:?}", case.name);
            assert_eq!(
                report.healthy_perspectives,
                case.healthy.len(),
                "{}",
                case.name
            );
        }
    }
}
