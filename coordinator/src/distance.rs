//! Settings read against the catalogue's distances: what `mpic config check` and the start-up
//! log say about deadlines and limits that cannot work, or work badly, at the round trips the
//! catalogue's `rtt_ms` give (README, "Sizing a fleet").
//!
//! The model of one perspective call at round trip `rtt`:
//!
//! - on an open connection: `rtt` + the perspective's lookups ([`LOOKUP_MS`] for an uncached
//!   one, more when a lost datagram waits for `resolver.retry_ms`);
//! - on a new connection: 3 × `rtt` (TCP, TLS 1.3, the request) + the lookups — the case a
//!   call deadline must allow, since a perspective's first call after a start, a rotation or
//!   a restart is one.
//!
//! A request waits for its cohort's quorum-th answer, then for stragglers up to the grace, so
//! its latency is about the slowest cohort member's call; with `max_attempts` it may try that
//! many cohorts. Little's law then gives the rate `limits.max_concurrent_requests` serves.

use crate::config::CoordinatorConfig;

/// An uncached lookup by a perspective's resolver, in milliseconds: a few round trips to
/// authoritative servers a continent away, the root and TLD delegations cached (measured
/// figures run 20–300 ms; this is a cautious middle).
pub const LOOKUP_MS: u64 = 300;

/// The perspective's default `resolver.timeout_ms`: the longest a lookup may take before the
/// check fails on its own.
pub const DEFAULT_RESOLVER_TIMEOUT_MS: u64 = 2_000;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The setting cannot work at that distance: checks will fail.
    Warning,
    /// What the settings mean at that distance, and what to change if it is not meant.
    Note,
}

impl Severity {
    /// `warning` or `note`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// One thing said about the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The setting it is about.
    pub field: String,
    /// What it means, with the figures.
    pub text: String,
}

/// What the settings mean at the catalogue's distances; nothing when no entry has `rtt_ms`.
pub fn findings(config: &CoordinatorConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let rtts: Vec<(&str, u64)> = config
        .perspectives
        .iter()
        .filter_map(|p| p.rtt_ms.map(|rtt| (p.code.as_str(), rtt)))
        .collect();
    let Some(&(farthest, max_rtt)) = rtts.iter().max_by_key(|(_, rtt)| *rtt) else {
        return out;
    };
    let t = &config.timeouts;
    let call = t.perspective_call_ms;
    for &(code, rtt) in &rtts {
        let cold = 3 * rtt + LOOKUP_MS;
        if call < cold {
            out.push(Finding {
                severity: Severity::Warning,
                field: "timeouts.perspective_call_ms".to_owned(),
                text: format!(
                    "{call} ms is below a call to {code} on a new connection: 3 × {rtt} ms round trip (TCP, TLS, the request) + {LOOKUP_MS} ms for a lookup = {cold} ms; its calls will fail after every restart or rotation"
                ),
            });
        }
    }
    let patient = max_rtt + DEFAULT_RESOLVER_TIMEOUT_MS;
    if call < patient {
        out.push(Finding {
            severity: Severity::Note,
            field: "timeouts.perspective_call_ms".to_owned(),
            text: format!(
                "{call} ms is below {farthest}'s round trip ({max_rtt} ms) + a perspective's whole lookup deadline ({DEFAULT_RESOLVER_TIMEOUT_MS} ms by default): a slow resolver shows as 'no answer within {call} ms' rather than the resolver's own failure"
            ),
        });
    }
    let slowest_call = max_rtt + LOOKUP_MS;
    let attempts = u64::from(config.max_attempts);
    if t.request_ms < attempts * slowest_call {
        out.push(Finding {
            severity: Severity::Note,
            field: "timeouts.request_ms".to_owned(),
            text: format!(
                "{} ms leaves room for {} of max_attempts = {attempts} cohort attempts of about {slowest_call} ms ({farthest}'s round trip + a lookup)",
                t.request_ms,
                t.request_ms / slowest_call.max(1),
            ),
        });
    }
    let nearest = rtts.iter().map(|(_, rtt)| *rtt).min().unwrap_or(max_rtt);
    let spread = max_rtt - nearest;
    if t.straggler_grace_ms < spread {
        out.push(Finding {
            severity: Severity::Note,
            field: "timeouts.straggler_grace_ms".to_owned(),
            text: format!(
                "{} ms is below the spread of round trips ({nearest}–{max_rtt} ms): when the nearer perspectives settle the verdict, the farthest often read 'cancelled' in the response (the verdict is not affected)",
                t.straggler_grace_ms
            ),
        });
    }
    let limits = &config.limits;
    let per_second = limits.max_concurrent_requests as u64 * 1_000 / slowest_call.max(1);
    out.push(Finding {
        severity: Severity::Note,
        field: "limits.max_concurrent_requests".to_owned(),
        text: format!(
            "{} requests in flight serve about {per_second} requests/s at these distances (Little's law: {} / {slowest_call} ms, the farthest round trip + a lookup); more are shed with 503",
            limits.max_concurrent_requests, limits.max_concurrent_requests
        ),
    });
    let streams = limits.max_connections_per_perspective
        * mpic_common::serve::MAX_CONCURRENT_STREAMS as usize;
    if streams < limits.max_concurrent_requests {
        out.push(Finding {
            severity: Severity::Warning,
            field: "limits.max_connections_per_perspective".to_owned(),
            text: format!(
                "{} connections × {} streams = {streams} calls in flight to a perspective, fewer than limits.max_concurrent_requests ({}): calls beyond wait for a stream (mpic_perspective_stream_waits_total)",
                limits.max_connections_per_perspective,
                mpic_common::serve::MAX_CONCURRENT_STREAMS,
                limits.max_concurrent_requests
            ),
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(rtts: &[Option<u64>], extra: &str) -> CoordinatorConfig {
        let mut yaml = String::from(
            "listen: 127.0.0.1:0\napi_keys: {env: K}\nhash_secret: {env: S}\ndanger_plain_http_perspectives: true\n",
        );
        yaml.push_str(extra);
        yaml.push_str("perspectives:\n");
        for (i, rtt) in rtts.iter().enumerate() {
            yaml.push_str(&format!(
                "  - {{code: p{i}, name: p{i}, rir: ARIN, latitude: 0, longitude: {}, url: 'http://127.0.0.1:{}'{}}}\n",
                i * 20,
                8000 + i,
                rtt.map_or_else(String::new, |r| format!(", rtt_ms: {r}"))
            ));
        }
        mpic_common::config::parse_yaml(&yaml).unwrap()
    }

    fn said(c: &CoordinatorConfig) -> Vec<(Severity, String)> {
        findings(c)
            .into_iter()
            .map(|f| (f.severity, f.field))
            .collect()
    }

    #[test]
    fn what_the_distances_say() {
        use Severity::{Note, Warning};
        struct Case {
            name: &'static str,
            rtts: &'static [Option<u64>],
            extra: &'static str,
            want: &'static [(Severity, &'static str)],
        }
        let cases = [
            Case {
                name: "no distances: nothing to say",
                rtts: &[None, None, None],
                extra: "",
                want: &[],
            },
            Case {
                name: "defaults at the default profile's distances: only the capacity",
                rtts: &[
                    Some(65),
                    Some(80),
                    Some(120),
                    Some(160),
                    Some(230),
                    Some(240),
                ],
                extra: "",
                want: &[(Note, "limits.max_concurrent_requests")],
            },
            Case {
                // 3 × 240 + 300 = 1020 > 1000; 240 + 2000 > 1000.
                name: "a call deadline too short for a cold call",
                rtts: &[Some(65), Some(240)],
                extra: "timeouts: {perspective_call_ms: 1000, straggler_grace_ms: 250}\n",
                want: &[
                    (Warning, "timeouts.perspective_call_ms"),
                    (Note, "timeouts.perspective_call_ms"),
                    (Note, "limits.max_concurrent_requests"),
                ],
            },
            Case {
                // 3 attempts × (240 + 300) = 1620 > 1500; spread 175 > 100.
                name: "a short request deadline and grace",
                rtts: &[Some(65), Some(240)],
                extra: "timeouts: {perspective_call_ms: 1500, request_ms: 1500, straggler_grace_ms: 100}\n",
                want: &[
                    (Note, "timeouts.perspective_call_ms"),
                    (Note, "timeouts.request_ms"),
                    (Note, "timeouts.straggler_grace_ms"),
                    (Note, "limits.max_concurrent_requests"),
                ],
            },
            Case {
                name: "too few connections for the requests in flight",
                rtts: &[Some(80)],
                extra: "limits: {max_concurrent_requests: 4096, max_connections_per_perspective: 8}\n",
                want: &[
                    (Note, "limits.max_concurrent_requests"),
                    (Warning, "limits.max_connections_per_perspective"),
                ],
            },
        ];
        for c in cases {
            let got = said(&config(c.rtts, c.extra));
            let want: Vec<(Severity, String)> =
                c.want.iter().map(|(s, f)| (*s, (*f).to_owned())).collect();
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn the_capacity_follows_littles_law() {
        // 2048 in flight / (240 + 300) ms = 3792 requests/s.
        let c = config(&[Some(65), Some(240)], "");
        let capacity = findings(&c)
            .into_iter()
            .find(|f| f.field == "limits.max_concurrent_requests")
            .unwrap();
        assert!(
            capacity.text.contains("about 3792 requests/s"),
            "{}",
            capacity.text
        );
        let cold = findings(&config(
            &[Some(240)],
            "timeouts: {perspective_call_ms: 1000}\n",
        ));
        assert!(cold[0].text.contains("= 1020 ms"), "{}", cold[0].text);
    }
}
