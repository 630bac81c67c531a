//! Whether the perspective can do its job: its resolver answers. Every check resolves
//! through it, so a perspective whose resolver is gone (stopped, restarted into another
//! network namespace, wedged) must not look ready.
//!
//! The probe is one cheap query, `localhost. A`, which a resolver answers from its own data
//! (RFC 6761 6.3; Unbound's default local zone), so readiness does not depend on reaching the
//! root. Any rcode counts as an answer: a SERVFAIL still proves the resolver is there. The
//! result is kept for [`PROBE_TTL`], and only one probe runs at a time, so probes (from
//! Kubernetes, Docker, a scraper or an attacker on the operations port) cannot load the
//! resolver.

use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::metrics::{Metrics, ProbeLabels};
use crate::resolver::DnsClient;

/// How long a probe's result is reused.
pub const PROBE_TTL: Duration = Duration::from_secs(3);
/// How long the resolver gets to answer the probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `ready` or `not-ready`.
    pub status: &'static str,
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

/// The kept result of the last probe.
#[derive(Debug, Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, Report)>>,
}

impl Readiness {
    /// The report, probing the resolver if the kept one is older than [`PROBE_TTL`].
    pub async fn report(&self, dns: &DnsClient, metrics: &Metrics) -> Report {
        // Held across the probe: concurrent callers wait for it and share its result.
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref()
            && at.elapsed() < PROBE_TTL
        {
            return report.clone();
        }
        let (outcome, report) =
            match tokio::time::timeout(PROBE_TIMEOUT, dns.query("localhost.", RecordType::A)).await
            {
                Ok(Ok(_)) => (
                    "answered",
                    Report {
                        status: "ready",
                        reason: None,
                    },
                ),
                Ok(Err(e)) => ("failed", not_ready(format!("the resolver: {e}"))),
                Err(_) => (
                    "timeout",
                    not_ready(format!(
                        "the resolver did not answer within {} ms",
                        PROBE_TIMEOUT.as_millis()
                    )),
                ),
            };
        metrics
            .resolver_probes
            .get_or_create(&ProbeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        metrics.ready.set(i64::from(report.is_ready()));
        // Logged when it changes, not at every probe.
        let was_ready = last.as_ref().is_none_or(|(_, r)| r.is_ready());
        match (was_ready, report.is_ready()) {
            (true, false) => {
                tracing::warn!(reason = report.reason.as_deref().unwrap_or(""), "not ready")
            }
            (false, true) => tracing::info!("ready again: the resolver answers"),
            _ => {}
        }
        *last = Some((Instant::now(), report.clone()));
        report
    }
}

fn not_ready(reason: String) -> Report {
    Report {
        status: "not-ready",
        reason: Some(reason),
    }
}
