//! The report: per phase throughput, latency percentiles, sheds, errors, wrong verdicts, memory
//! and connections; the targets checked against them; a human table and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::load::{ConnectionReport, MemoryReport, Tally};
use crate::metrics::WanPhase;
use crate::stats::{Summary, ms};

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The preset or mode that ran.
    pub scenario: String,
    /// The check sent.
    pub check: String,
    /// What answered DNS.
    pub dns: String,
    /// The coordinator's settings that matter here.
    pub settings: Settings,
    /// The machine.
    pub machine: Machine,
    /// The phases, in order.
    pub phases: Vec<PhaseReport>,
    /// The targets that this run measured.
    pub targets: Vec<TargetCheck>,
    /// The cohort identity check across coordinator replicas, when it ran.
    pub cohorts: Option<Cohorts>,
    /// Anything the reader must know to read the numbers.
    pub notes: Vec<String>,
}

/// Coordinator settings.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Perspectives in the fleet.
    pub perspectives: usize,
    /// `timeouts.straggler_grace_ms`.
    pub straggler_grace_ms: u64,
    /// `timeouts.perspective_call_ms`.
    pub perspective_call_ms: u64,
    /// `limits.max_concurrent_requests`.
    pub max_concurrent_requests: usize,
    /// Coordinator replicas.
    pub coordinators: usize,
}

/// The same requests sent to every coordinator replica: did each pick the same cohort?
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cohorts {
    /// Targets sampled.
    pub sampled: usize,
    /// Targets for which every replica named the same perspectives.
    pub identical: usize,
    /// The cohort size asked for (`perspective_count`).
    pub perspective_count: usize,
    /// The first targets that differed or failed, and how.
    pub mismatches: Vec<String>,
}

/// The machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs available.
    pub cpus: usize,
    /// `/proc/loadavg` when the run began.
    pub loadavg_start: String,
    /// One core's speed, to compare runs on different machines: nanoseconds per JSON round
    /// trip of a request (`scenario::cpu_reference_ns`; lower is faster).
    pub cpu_reference_ns: u64,
    /// `/proc/loadavg` when it ended.
    pub loadavg_end: String,
}

/// One phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Its name.
    pub name: String,
    /// `coordinator` (POST /mpic) or `direct` (the bench fans out to the perspectives itself).
    pub endpoint: String,
    /// `open` or `closed`.
    pub mode: String,
    /// Offered rate (open loop).
    pub offered_per_s: Option<u64>,
    /// Workers (closed loop).
    pub concurrency: Option<usize>,
    /// First send to last answer, seconds.
    pub elapsed_s: f64,
    /// Requests sent.
    pub sent: u64,
    /// 200 answers.
    pub ok: u64,
    /// 200 answers per second.
    pub ok_per_s: f64,
    /// 503 answers.
    pub shed: u64,
    /// 503 answers without `Retry-After`.
    pub shed_without_retry_after: u64,
    /// Wrong verdicts among the 200 answers.
    pub wrong_verdicts: u64,
    /// Of those, "valid" where "invalid" was expected.
    pub false_valid: u64,
    /// Perspective checks that did not complete, by (masked) first error.
    pub incomplete_checks: BTreeMap<String, u64>,
    /// Not sent: the client's in-flight cap was reached.
    pub not_sent: u64,
    /// Other failures, by kind.
    pub errors: BTreeMap<String, u64>,
    /// 200 answers, from the intended send time.
    pub latency: Summary,
    /// 200 answers, from the actual send time.
    pub service_latency: Summary,
    /// How late the client sent (open loop).
    pub send_lag: Summary,
    /// 503 answers, from the intended send time.
    pub shed_latency: Summary,
    /// From the coordinator's `Server-Timing` (exact), when it sends one.
    pub coordinator_added: Option<Summary>,
    /// Answer received minus the last perspective's check timestamp.
    pub after_last_check: Summary,
    /// Memory of each process.
    pub memory: Vec<MemoryReport>,
    /// Connections accepted by the perspectives during the phase.
    pub connections: Option<ConnectionReport>,
    /// The wan scenario's figures from the services' metrics and the relays.
    pub wan: Option<WanPhase>,
}

impl PhaseReport {
    /// Builds the report of a finished phase.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        endpoint: &str,
        mode: &str,
        offered_per_s: Option<u64>,
        concurrency: Option<usize>,
        tally: &Tally,
        memory: Vec<MemoryReport>,
        connections: Option<ConnectionReport>,
    ) -> PhaseReport {
        let elapsed_s = tally.elapsed.as_secs_f64();
        PhaseReport {
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
            mode: mode.to_owned(),
            offered_per_s,
            concurrency,
            elapsed_s,
            sent: tally.sent,
            ok: tally.ok,
            ok_per_s: if elapsed_s > 0.0 {
                tally.ok as f64 / elapsed_s
            } else {
                0.0
            },
            shed: tally.shed,
            shed_without_retry_after: tally.shed_without_retry_after,
            wrong_verdicts: tally.wrong,
            false_valid: tally.false_valid,
            incomplete_checks: tally.incomplete_checks.clone(),
            not_sent: tally.not_sent,
            errors: tally.errors.clone(),
            latency: tally.latency.summary(),
            service_latency: tally.service.summary(),
            send_lag: tally.send_lag.summary(),
            shed_latency: tally.shed_latency.summary(),
            coordinator_added: (tally.coordinator_added.count() > 0)
                .then(|| tally.coordinator_added.summary()),
            after_last_check: tally.after_last_check.summary(),
            memory,
            connections,
            wan: None,
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Whether a target was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Met.
    Met,
    /// Missed.
    Missed,
    /// Met, on an estimate rather than an exact measurement.
    MetEstimated,
    /// Missed, on an estimate.
    MissedEstimated,
}

impl Verdict {
    fn of(met: bool, estimated: bool) -> Verdict {
        match (met, estimated) {
            (true, false) => Verdict::Met,
            (false, false) => Verdict::Missed,
            (true, true) => Verdict::MetEstimated,
            (false, true) => Verdict::MissedEstimated,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "MET",
            Verdict::Missed => "MISSED",
            Verdict::MetEstimated => "met (estimate)",
            Verdict::MissedEstimated => "MISSED (estimate)",
        }
    }
}

/// One target of the issue.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What the issue asks.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Met or not.
    pub verdict: Verdict,
}

/// An open-loop phase sustains its rate when every request was sent on schedule and answered
/// 200 with the right verdict, and no queue built up: the p99 latency, counted from each
/// request's intended send time, stays under [`SUSTAINED_P99_LIMIT_US`] (a fleet that falls
/// behind answers later and later, which shows there). Answers per second over the whole phase
/// are reported but not judged: they include the wait for the last answers after the last
/// send, which is latency, already judged by the p99.
pub fn sustained(p: &PhaseReport) -> bool {
    let Some(rate) = p.offered_per_s else {
        return false;
    };
    p.mode == "open"
        && p.error_count() == 0
        && p.shed == 0
        && p.not_sent == 0
        && p.wrong_verdicts == 0
        && p.ok == p.sent
        && rate > 0
        && p.latency.p99_us <= SUSTAINED_P99_LIMIT_US
}

/// The p99 above which an open-loop phase is said to be queueing (1 s).
pub const SUSTAINED_P99_LIMIT_US: u64 = 1_000_000;

/// The target: scenario 1 without Unbound sustains 1,500 requests per second.
pub fn check_sustained(p: &PhaseReport, want_per_s: u64) -> TargetCheck {
    let met = sustained(p) && p.offered_per_s.unwrap_or(0) >= want_per_s;
    TargetCheck {
        target: format!("CAA without Unbound: >= {want_per_s} POST /mpic per second sustained"),
        measured: format!(
            "offered {}/s: {:.0} answered/s, p99 {} ms, {} errors, {} shed, {} wrong, {} not sent",
            p.offered_per_s.unwrap_or(0),
            p.ok_per_s,
            ms(p.latency.p99_us),
            p.error_count(),
            p.shed,
            p.wrong_verdicts,
            p.not_sent
        ),
        verdict: Verdict::of(met, false),
    }
}

/// The target: coordinator-added latency p99 ≤ 1 ms at half the sustained rate. Exact from
/// `Server-Timing` when the coordinator sends it; otherwise estimated as the p99 through the
/// coordinator minus the p99 of the same checks sent straight to the perspectives.
pub fn check_coordinator_added(
    through: &PhaseReport,
    direct: Option<&PhaseReport>,
    limit_us: u64,
) -> TargetCheck {
    let target = format!(
        "coordinator-added latency p99 <= {} ms at half the sustained rate",
        ms(limit_us)
    );
    if let Some(exact) = through.coordinator_added {
        return TargetCheck {
            target,
            measured: format!(
                "Server-Timing total - perspectives: p50 {} ms, p99 {} ms",
                ms(exact.p50_us),
                ms(exact.p99_us)
            ),
            verdict: Verdict::of(exact.p99_us <= limit_us, false),
        };
    }
    let Some(direct) = direct else {
        return TargetCheck {
            target,
            measured: "not measured (no Server-Timing and no direct phase)".to_owned(),
            verdict: Verdict::Missed,
        };
    };
    let d50 = through.latency.p50_us.saturating_sub(direct.latency.p50_us);
    let d99 = through.latency.p99_us.saturating_sub(direct.latency.p99_us);
    TargetCheck {
        target,
        measured: format!(
            "no Server-Timing; p50 {} - {} = {} ms, p99 {} - {} = {} ms (through coordinator - direct fan-out); return path after the last check p99 {} ms",
            ms(through.latency.p50_us),
            ms(direct.latency.p50_us),
            ms(d50),
            ms(through.latency.p99_us),
            ms(direct.latency.p99_us),
            ms(d99),
            ms(through.after_last_check.p99_us)
        ),
        verdict: Verdict::of(d99 <= limit_us, true),
    }
}

/// The target: with one perspective black-holed the p99 stays within the straggler grace
/// + 10 % and nothing waits for the per-call deadline.
pub fn check_blackhole(p: &PhaseReport, grace_ms: u64, call_ms: u64) -> TargetCheck {
    let limit_us = grace_ms * 1000 * 11 / 10;
    let met = p.latency.p99_us <= limit_us
        && p.latency.max_us < call_ms * 1000
        && p.wrong_verdicts == 0
        && p.error_count() == 0;
    TargetCheck {
        target: format!(
            "one perspective black-holed: p99 <= grace {grace_ms} ms + 10 % = {} ms, never the {call_ms} ms call deadline",
            ms(limit_us)
        ),
        measured: format!(
            "p50 {} ms, p99 {} ms, max {} ms at {:.0}/s; {} wrong, {} errors",
            ms(p.latency.p50_us),
            ms(p.latency.p99_us),
            ms(p.latency.max_us),
            p.ok_per_s,
            p.wrong_verdicts,
            p.error_count()
        ),
        verdict: Verdict::of(met, false),
    }
}

/// The target: peak RSS at 1,000 requests in flight.
pub fn check_memory(
    p: &PhaseReport,
    over: &str,
    perspective_mib: u64,
    coordinator_mib: u64,
) -> TargetCheck {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let coordinator = p
        .memory
        .iter()
        .find(|m| m.name == "coordinator")
        .map_or(0, |m| m.peak_kib);
    let perspectives: Vec<u64> = p
        .memory
        .iter()
        .filter(|m| m.name.starts_with("perspective"))
        .map(|m| m.peak_kib)
        .collect();
    let worst = perspectives.iter().copied().max().unwrap_or(0);
    let met = !perspectives.is_empty()
        && coordinator > 0
        && worst <= perspective_mib * 1024
        && coordinator <= coordinator_mib * 1024;
    TargetCheck {
        target: format!(
            "RSS at 1,000 requests in flight ({over}): <= {perspective_mib} MiB per perspective, <= {coordinator_mib} MiB coordinator"
        ),
        measured: format!(
            "coordinator {:.1} MiB, largest perspective {:.1} MiB ({} answered, {} errors, {} wrong)",
            mib(coordinator),
            mib(worst),
            p.ok,
            p.error_count(),
            p.wrong_verdicts
        ),
        verdict: Verdict::of(met, false),
    }
}

/// The target: no connection set-up per request between coordinator and perspectives.
/// `perspectives` counts each perspective once per coordinator replica; `pool` is the most
/// connections a coordinator opens to one perspective (on demand, when streams run out).
pub fn check_connections(phases: &[PhaseReport], perspectives: usize, pool: usize) -> TargetCheck {
    let through: Vec<&PhaseReport> = phases
        .iter()
        .filter(|p| p.endpoint == "coordinator" && p.connections.is_some())
        .collect();
    let seen: usize = through
        .iter()
        .filter_map(|p| p.connections)
        .map(|c| c.perspective_connections_seen)
        .sum();
    let requests: u64 = through.iter().map(|p| p.sent).sum();
    // The pool filled once, and a connection per perspective re-made a few times a phase at
    // most (e.g. after an idle timeout), is reuse; anything growing with the request count is
    // not.
    let met = requests > 0 && seen <= perspectives * (pool + 2 * through.len().max(1));
    TargetCheck {
        target: "no connection set-up per request between coordinator and perspectives".to_owned(),
        measured: format!(
            "{seen} new connections to the perspectives over {requests} requests in {} phases",
            through.len()
        ),
        verdict: Verdict::of(met, false),
    }
}

/// The overload expectations: sheds with 503 (+ Retry-After), bounded p99 of accepted
/// requests, flat memory, no wrong verdict.
pub fn check_overload(p: &PhaseReport, over: &str, request_ms: u64) -> TargetCheck {
    let coordinator = p.memory.iter().find(|m| m.name == "coordinator");
    let growth_kib = coordinator.map_or(0, |m| m.rss_end_kib.saturating_sub(m.rss_quarter_kib));
    let flat = coordinator.is_some_and(|m| growth_kib * 10 <= m.rss_quarter_kib.max(1));
    let met = p.shed > 0
        && p.shed_without_retry_after == 0
        && p.wrong_verdicts == 0
        && p.latency.p99_us < request_ms * 1000
        && flat;
    TargetCheck {
        target: format!(
            "overload (10x, {over}): sheds with 503 + Retry-After, accepted p99 bounded, memory flat, no wrong verdict"
        ),
        measured: format!(
            "offered {}/s, sent {:.0}/s: {} answered ({:.0}/s, p99 {} ms), {} shed (p99 {} ms), {} errors, {} wrong, {} not sent; coordinator RSS {} -> {} KiB",
            p.offered_per_s.unwrap_or(0),
            p.sent as f64 / p.elapsed_s.max(f64::MIN_POSITIVE),
            p.ok,
            p.ok_per_s,
            ms(p.latency.p99_us),
            p.shed,
            ms(p.shed_latency.p99_us),
            p.error_count(),
            p.wrong_verdicts,
            p.not_sent,
            coordinator.map_or(0, |m| m.rss_quarter_kib),
            coordinator.map_or(0, |m| m.rss_end_kib),
        ),
        verdict: Verdict::of(met, false),
    }
}

/// The wan target: through the distance the fleet serves at least [`WAN_THROUGHPUT_SHARE`] %
/// of what the same build serves on loopback (the relays in place, every delay zero).
pub fn check_wan_throughput(max: &PhaseReport, baseline_ok_per_s: f64, from: &str) -> TargetCheck {
    let share = max.ok_per_s * 100.0 / baseline_ok_per_s.max(f64::MIN_POSITIVE);
    TargetCheck {
        target: format!("wan: throughput >= {WAN_THROUGHPUT_SHARE} % of the zero-delay baseline"),
        measured: format!(
            "{:.0}/s at c={} against {baseline_ok_per_s:.0}/s ({from}): {share:.0} %",
            max.ok_per_s,
            max.concurrency.unwrap_or(0)
        ),
        verdict: Verdict::of(share >= WAN_THROUGHPUT_SHARE as f64, false),
    }
}

/// The wan target: no request is shed (503) at a rate below the baseline's.
pub fn check_wan_no_shed(phases: &[&PhaseReport], baseline_ok_per_s: f64) -> TargetCheck {
    let below: Vec<&&PhaseReport> = phases
        .iter()
        .filter(|p| {
            p.offered_per_s
                .is_some_and(|r| (r as f64) <= baseline_ok_per_s)
        })
        .collect();
    let shed: u64 = below.iter().map(|p| p.shed).sum();
    let each: Vec<String> = below
        .iter()
        .map(|p| {
            format!(
                "{} at {}/s: {} shed",
                p.name,
                p.offered_per_s.unwrap_or(0),
                p.shed
            )
        })
        .collect();
    TargetCheck {
        target: format!("wan: no 503 below the baseline's {baseline_ok_per_s:.0}/s"),
        measured: if each.is_empty() {
            "no open-loop phase below it".to_owned()
        } else {
            each.join(", ")
        },
        verdict: Verdict::of(!below.is_empty() && shed == 0, false),
    }
}

/// A wan p99 target: the half-rate phase's p99 at most `limit_ms` (`what` names the limit).
pub fn check_wan_p99(half: &PhaseReport, what: &str, limit_ms: u64) -> TargetCheck {
    TargetCheck {
        target: format!("wan: p99 at half rate <= {what} ({limit_ms} ms)"),
        measured: format!(
            "{} at {}/s: p50 {} ms, p99 {} ms, p99.9 {} ms, max {} ms",
            half.name,
            half.offered_per_s.unwrap_or(0),
            ms(half.latency.p50_us),
            ms(half.latency.p99_us),
            ms(half.latency.p999_us),
            ms(half.latency.max_us)
        ),
        verdict: Verdict::of(half.ok > 0 && half.latency.p99_us <= limit_ms * 1000, false),
    }
}

/// Perspective checks not completed, calls, and whether the figures are an estimate: from the
/// coordinator's counters when every phase has them, else from the answers' entries (exact
/// too, but only for answered requests).
fn not_completed_of(phases: &[&PhaseReport], perspectives: usize) -> (u64, u64, bool) {
    let from_metrics: Option<(u64, u64)> = phases
        .iter()
        .map(|p| {
            let w = p.wan.as_ref()?;
            Some((w.not_completed?, w.calls?))
        })
        .try_fold((0, 0), |acc, x| x.map(|(n, c)| (acc.0 + n, acc.1 + c)));
    match from_metrics {
        Some((n, c)) => (n, c, false),
        None => (
            phases
                .iter()
                .map(|p| p.incomplete_checks.values().sum::<u64>())
                .sum(),
            phases.iter().map(|p| p.ok * perspectives as u64).sum(),
            true,
        ),
    }
}

/// The wan target: at most [`WAN_NOT_COMPLETED_PER_MILLE`] ‰ of perspective checks not
/// completed at the offered rates (`rates`, the open-loop phases), and no wrong verdict in any
/// phase. The closed-loop maxima (`saturated`) hold the machine's cores saturated on purpose:
/// their requests queue for the CPU, stragglers there measure that queue rather than the
/// distance, so their share is shown but not judged.
pub fn check_wan_not_completed(
    rates: &[&PhaseReport],
    saturated: &[&PhaseReport],
    perspectives: usize,
) -> TargetCheck {
    let wrong: u64 = rates
        .iter()
        .chain(saturated)
        .map(|p| p.wrong_verdicts)
        .sum();
    let (not_completed, calls, estimated) = not_completed_of(rates, perspectives);
    let met =
        wrong == 0 && calls > 0 && not_completed * 1000 <= calls * WAN_NOT_COMPLETED_PER_MILLE;
    let share = |n: u64, c: u64| {
        format!(
            "{n} of {c} calls ({:.3} %)",
            n as f64 * 100.0 / c.max(1) as f64
        )
    };
    let mut measured = format!("at the offered rates {}", share(not_completed, calls));
    if !saturated.is_empty() {
        let (n, c, _) = not_completed_of(saturated, perspectives);
        measured.push_str(&format!(
            "; in the saturating closed loops (not judged) {}",
            share(n, c)
        ));
    }
    measured.push_str(&format!(", {wrong} wrong in all phases"));
    if estimated {
        measured.push_str("; from the answers (the coordinator has no call counters)");
    }
    TargetCheck {
        target: format!(
            "wan: perspective checks not completed <= 0.{WAN_NOT_COMPLETED_PER_MILLE} % at the offered rates, zero wrong verdicts"
        ),
        measured,
        verdict: Verdict::of(met, estimated),
    }
}

/// The wan target: peak RSS of every coordinator replica and every perspective at the
/// offered rates (`rates`: the in-flight counts the profile produces at those rates), with the
/// peaks of the saturating closed loops (`saturated`, about `--wan-concurrency` in flight)
/// shown beside, not judged.
pub fn check_wan_memory(
    rates: &[&PhaseReport],
    saturated: &[&PhaseReport],
    coordinator_mib: u64,
    perspective_mib: u64,
) -> TargetCheck {
    let peak = |phases: &[&PhaseReport], prefix: &str| {
        phases
            .iter()
            .flat_map(|p| p.memory.iter())
            .filter(|m| m.name.starts_with(prefix))
            .map(|m| m.peak_kib)
            .max()
            .unwrap_or(0)
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let (c, p) = (peak(rates, "coordinator"), peak(rates, "perspective"));
    let mut measured = format!(
        "at the offered rates: largest coordinator {:.1} MiB, largest perspective {:.1} MiB",
        mib(c),
        mib(p)
    );
    if !saturated.is_empty() {
        measured.push_str(&format!(
            "; in the saturating closed loops (not judged): {:.1} and {:.1} MiB",
            mib(peak(saturated, "coordinator")),
            mib(peak(saturated, "perspective"))
        ));
    }
    TargetCheck {
        target: format!(
            "wan: RSS <= {coordinator_mib} MiB per coordinator, <= {perspective_mib} MiB per perspective at the offered rates"
        ),
        measured,
        verdict: Verdict::of(
            c > 0 && c <= coordinator_mib * 1024 && p <= perspective_mib * 1024,
            false,
        ),
    }
}

/// The target with several coordinator replicas: no errors, and every replica picks the same
/// cohort for the same request.
pub fn check_replicas(
    phases: &[&PhaseReport],
    cohorts: Option<&Cohorts>,
    replicas: usize,
) -> TargetCheck {
    let errors: u64 = phases.iter().map(|p| p.error_count()).sum();
    let (identical, sampled) = cohorts.map_or((0, 0), |c| (c.identical, c.sampled));
    TargetCheck {
        target: format!("{replicas} coordinator replicas: no errors, identical cohorts"),
        measured: format!("{errors} errors; identical cohorts: {identical}/{sampled}"),
        verdict: Verdict::of(errors == 0 && sampled > 0 && identical == sampled, false),
    }
}

/// The wan throughput target's share of the baseline, percent.
pub const WAN_THROUGHPUT_SHARE: u64 = 90;
/// The wan target's not-completed checks, per mille of calls (0.1 %).
pub const WAN_NOT_COMPLETED_PER_MILLE: u64 = 1;

/// The human table.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mpic-bench: scenario {} ({}), DNS: {}",
        r.scenario, r.check, r.dns
    );
    let _ = writeln!(
        out,
        "{} perspectives, straggler grace {} ms, call deadline {} ms, max_concurrent_requests {}; {} CPUs, load {} -> {}, CPU reference {:.2} µs (lower is faster)",
        r.settings.perspectives,
        r.settings.straggler_grace_ms,
        r.settings.perspective_call_ms,
        r.settings.max_concurrent_requests,
        r.machine.cpus,
        r.machine.loadavg_start.trim(),
        r.machine.loadavg_end.trim(),
        r.machine.cpu_reference_ns as f64 / 1000.0
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<22} {:<11} {:>9} {:>9} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "phase",
        "load",
        "sent",
        "ok/s",
        "ok",
        "shed",
        "err",
        "wrong",
        "unsent",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    for p in &r.phases {
        let load = match (p.offered_per_s, p.concurrency) {
            (Some(rate), _) => format!("{rate}/s"),
            (None, Some(c)) => format!("c={c}"),
            _ => String::new(),
        };
        let name = if p.endpoint == "direct" {
            format!("{} (direct)", p.name)
        } else {
            p.name.clone()
        };
        let _ = writeln!(
            out,
            "{:<22} {:<11} {:>9} {:>9.0} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            load,
            p.sent,
            p.ok_per_s,
            p.ok,
            p.shed,
            p.error_count(),
            p.wrong_verdicts,
            p.not_sent,
            ms(p.latency.p50_us),
            ms(p.latency.p90_us),
            ms(p.latency.p99_us),
            ms(p.latency.p999_us),
            ms(p.latency.max_us)
        );
    }
    let errors: Vec<String> = r
        .phases
        .iter()
        .filter(|p| !p.errors.is_empty())
        .map(|p| {
            let list: Vec<String> = p.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("  {}: {}", p.name, list.join(", "))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(out, "errors:");
        for e in errors {
            let _ = writeln!(out, "{e}");
        }
    }
    for p in r.phases.iter().filter(|p| p.wrong_verdicts > 0) {
        let _ = writeln!(
            out,
            "wrong verdicts in {}: {} ({} valid where invalid was expected)",
            p.name, p.wrong_verdicts, p.false_valid
        );
    }
    for p in r.phases.iter().filter(|p| !p.incomplete_checks.is_empty()) {
        let mut top: Vec<(&String, &u64)> = p.incomplete_checks.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        let _ = writeln!(out, "perspective checks not completed in {}:", p.name);
        for (why, n) in top.into_iter().take(5) {
            let _ = writeln!(out, "  {n:>8}  {why}");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "client send lag p99 (ms) / return path after the last check p50, p99 (ms) / Server-Timing coordinator-added p99 (ms):"
    );
    for p in &r.phases {
        let _ = writeln!(
            out,
            "  {:<22} lag {:>9}   return {:>8} {:>8}   added {}",
            p.name,
            ms(p.send_lag.p99_us),
            ms(p.after_last_check.p50_us),
            ms(p.after_last_check.p99_us),
            p.coordinator_added
                .map_or_else(|| "n/a".to_owned(), |s| ms(s.p99_us))
        );
    }
    if r.phases.iter().any(|p| !p.memory.is_empty()) {
        per_process(&mut out, r, "peak RSS per phase (MiB):", |_, m| {
            Some(format!("{:.1}", m.peak_kib as f64 / 1024.0))
        });
        per_process(
            &mut out,
            r,
            "CPU per answered request (µs; user + system, all 200 answers of the phase):",
            |p, m| (p.ok > 0).then(|| format!("{:.0}", m.cpu_ms as f64 * 1000.0 / p.ok as f64)),
        );
        if r.settings.coordinators > 1 {
            let _ = write!(out, "  {:<26}", "all coordinators");
            let width = r
                .phases
                .iter()
                .map(|p| p.name.chars().count())
                .max()
                .unwrap_or(0)
                .max(12);
            for p in &r.phases {
                let cell =
                    coordinators_cpu_us(p).map_or_else(|| "-".to_owned(), |us| format!("{us:.0}"));
                let _ = write!(out, " {cell:>width$}");
            }
            let _ = writeln!(out);
        }
    }
    if r.phases.iter().any(|p| p.connections.is_some()) {
        let _ = writeln!(out);
        let _ = writeln!(out, "connections accepted by the perspectives:");
        for p in &r.phases {
            if let Some(c) = p.connections {
                let conntrack = c.conntrack_peak.map_or_else(String::new, |(n, max)| {
                    format!(
                        "; conntrack table peak {n}/{max}{}",
                        if n * 10 >= max * 9 {
                            " (FULL: packets dropped)"
                        } else {
                            ""
                        }
                    )
                });
                let clients = c.coordinator_connections_end.map_or_else(String::new, |n| {
                    format!("; {n} client connections to the coordinator at its end")
                });
                let _ = writeln!(
                    out,
                    "  {:<22} {:>5} new during the phase, {:>5} established at its end ({} requests){conntrack}{clients}",
                    p.name,
                    c.perspective_connections_seen,
                    c.perspective_connections_established_end,
                    p.sent
                );
            }
        }
    }
    render_wan(&mut out, r);
    if !r.targets.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "targets:");
        for t in &r.targets {
            let _ = writeln!(out, "  [{}] {}", t.verdict.as_str(), t.target);
            let _ = writeln!(out, "      {}", t.measured);
        }
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// CPU of every coordinator replica together per answered request, µs.
pub fn coordinators_cpu_us(p: &PhaseReport) -> Option<f64> {
    let cpu_ms: u64 = p
        .memory
        .iter()
        .filter(|m| m.name.starts_with("coordinator"))
        .map(|m| m.cpu_ms)
        .sum();
    (p.ok > 0).then(|| cpu_ms as f64 * 1000.0 / p.ok as f64)
}

/// The wan figures of each phase: quorum-to-response, Little's law, per perspective.
fn render_wan(out: &mut String, r: &Report) {
    let na = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |n| n.to_string());
    let na_ms = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |x| format!("{x:.1}"));
    if let Some(c) = &r.cohorts {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "identical cohorts: {}/{} (perspective_count {}, {} coordinators){}",
            c.identical,
            c.sampled,
            c.perspective_count,
            r.settings.coordinators,
            if c.mismatches.is_empty() {
                String::new()
            } else {
                format!("; first differences: {}", c.mismatches.join("; "))
            }
        );
    }
    for p in &r.phases {
        let Some(w) = &p.wan else {
            continue;
        };
        let _ = writeln!(out);
        let ratio = match (w.not_completed, w.calls) {
            (Some(n), Some(c)) if c > 0 => format!(" ({:.3} %)", n as f64 * 100.0 / c as f64),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "wan {}: quorum-th answer to response p50 {} ms, p99 {} ms; in flight (Little) {:.0} = {:.0}/s x {} ms; checks not completed {}/{} calls{ratio}",
            p.name,
            na_ms(w.quorum_to_response_p50_ms),
            na_ms(w.quorum_to_response_p99_ms),
            w.in_flight,
            p.ok_per_s,
            ms(p.latency.mean_us),
            na(w.not_completed),
            na(w.calls),
        );
        let _ = writeln!(
            out,
            "  {:<14} {:>12} {:>9} {:>11} {:>14} {:>9} {:>12} {:>11}",
            "perspective",
            "stream waits",
            "h2 conns",
            "DNS retries",
            "not completed",
            "calls",
            "DNS dropped",
            "DNS queries"
        );
        for q in &w.perspectives {
            let _ = writeln!(
                out,
                "  {:<14} {:>12} {:>9} {:>11} {:>14} {:>9} {:>12} {:>11}",
                q.code,
                na(q.stream_waits),
                na(q.connections_end),
                na(q.dns_retries),
                na(q.not_completed),
                na(q.calls),
                na(q.dns_dropped),
                na(q.dns_forwarded)
            );
        }
    }
}

/// A table with a row per process and a column per phase, as wide as the longest phase name;
/// `cell` gives a process's value in a phase, `-` where there is none.
fn per_process(
    out: &mut String,
    r: &Report,
    title: &str,
    cell: impl Fn(&PhaseReport, &MemoryReport) -> Option<String>,
) {
    let _ = writeln!(out);
    let _ = writeln!(out, "{title}");
    let width = r
        .phases
        .iter()
        .map(|p| p.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(12);
    let _ = write!(out, "  {:<26}", "process");
    for p in &r.phases {
        let _ = write!(out, " {:>width$}", p.name);
    }
    let _ = writeln!(out);
    for name in process_names(r) {
        let _ = write!(out, "  {name:<26}");
        for p in &r.phases {
            let value = p
                .memory
                .iter()
                .find(|m| m.name == name)
                .and_then(|m| cell(p, m))
                .unwrap_or_else(|| "-".to_owned());
            let _ = write!(out, " {value:>width$}");
        }
        let _ = writeln!(out);
    }
}

/// The processes of every phase, in first-seen order.
fn process_names(r: &Report) -> Vec<&str> {
    r.phases
        .iter()
        .flat_map(|p| p.memory.iter().map(|m| m.name.as_str()))
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn summary(p50: u64, p99: u64) -> Summary {
        Summary {
            count: 100,
            p50_us: p50,
            p90_us: p99,
            p99_us: p99,
            p999_us: p99,
            max_us: p99,
            mean_us: p50,
        }
    }

    fn phase(name: &str, rate: Option<u64>, ok_per_s: f64, p99_us: u64) -> PhaseReport {
        PhaseReport {
            name: name.to_owned(),
            endpoint: "coordinator".to_owned(),
            mode: if rate.is_some() { "open" } else { "closed" }.to_owned(),
            offered_per_s: rate,
            concurrency: rate.is_none().then_some(64),
            elapsed_s: 20.0,
            sent: 30_000,
            ok: 30_000,
            ok_per_s,
            shed: 0,
            shed_without_retry_after: 0,
            wrong_verdicts: 0,
            false_valid: 0,
            incomplete_checks: BTreeMap::new(),
            not_sent: 0,
            errors: BTreeMap::new(),
            latency: summary(4_000, p99_us),
            service_latency: summary(4_000, p99_us),
            send_lag: summary(50, 300),
            shed_latency: Summary::default(),
            coordinator_added: None,
            after_last_check: summary(300, 900),
            memory: vec![
                MemoryReport {
                    name: "coordinator".to_owned(),
                    pid: 1,
                    peak_kib: 40 * 1024,
                    rss_quarter_kib: 30 * 1024,
                    rss_end_kib: 31 * 1024,
                    peak_is_per_phase: true,
                    cpu_ms: 9_000,
                },
                MemoryReport {
                    name: "perspective us-east".to_owned(),
                    pid: 2,
                    peak_kib: 20 * 1024,
                    rss_quarter_kib: 15 * 1024,
                    rss_end_kib: 15 * 1024,
                    peak_is_per_phase: true,
                    cpu_ms: 9_000,
                },
            ],
            connections: Some(ConnectionReport {
                perspective_connections_seen: 6,
                perspective_connections_established_end: 6,
                coordinator_connections_end: Some(1000),
                preexisting: 0,
                conntrack_peak: Some((262_000, 262_144)),
            }),
            wan: None,
        }
    }

    #[test]
    fn sustained_needs_every_request_answered_right_and_in_time() {
        struct Case {
            name: &'static str,
            edit: fn(&mut PhaseReport),
            want: bool,
        }
        let cases = [
            Case {
                name: "clean",
                edit: |_| {},
                want: true,
            },
            Case {
                name: "fell behind: answers come later and later",
                edit: |p| {
                    p.ok_per_s = 1400.0;
                    p.latency.p99_us = 2_000_000;
                },
                want: false,
            },
            Case {
                name: "the last answers' wait lowers answers/s over the phase",
                edit: |p| p.ok_per_s = 1440.0,
                want: true,
            },
            Case {
                name: "some never answered",
                edit: |p| p.ok -= 1,
                want: false,
            },
            Case {
                name: "queueing",
                edit: |p| p.latency.p99_us = 1_500_000,
                want: false,
            },
            Case {
                name: "one wrong verdict",
                edit: |p| p.wrong_verdicts = 1,
                want: false,
            },
            Case {
                name: "one shed",
                edit: |p| p.shed = 1,
                want: false,
            },
            Case {
                name: "one error",
                edit: |p| {
                    p.errors.insert("timeout".into(), 1);
                },
                want: false,
            },
            Case {
                name: "client could not keep up",
                edit: |p| p.not_sent = 3,
                want: false,
            },
            Case {
                name: "closed loop is not a sustained rate",
                edit: |p| {
                    p.mode = "closed".into();
                    p.offered_per_s = None;
                },
                want: false,
            },
        ];
        for c in cases {
            let mut p = phase("sustained", Some(1500), 1499.0, 40_000);
            (c.edit)(&mut p);
            assert_eq!(sustained(&p), c.want, "{}", c.name);
        }
        let p = phase("sustained", Some(1200), 1200.0, 40_000);
        assert_eq!(check_sustained(&p, 1500).verdict, Verdict::Missed);
    }

    #[test]
    fn coordinator_added_is_exact_with_server_timing_and_an_estimate_without() {
        let mut through = phase("half", Some(750), 750.0, 9_000);
        let mut direct = phase("half", Some(750), 750.0, 8_500);
        direct.endpoint = "direct".into();
        through.latency.p50_us = 5_000;
        direct.latency.p50_us = 4_800;
        let c = check_coordinator_added(&through, Some(&direct), 1000);
        assert_eq!(c.verdict, Verdict::MetEstimated);
        assert!(
            c.measured.contains("p99 9.000 - 8.500 = 0.500 ms"),
            "{}",
            c.measured
        );
        direct.latency.p99_us = 7_000;
        assert_eq!(
            check_coordinator_added(&through, Some(&direct), 1000).verdict,
            Verdict::MissedEstimated
        );
        through.coordinator_added = Some(summary(200, 700));
        assert_eq!(
            check_coordinator_added(&through, None, 1000).verdict,
            Verdict::Met
        );
    }

    #[test]
    fn blackhole_memory_connections_overload() {
        let mut p = phase("blackhole", Some(500), 500.0, 270_000);
        assert_eq!(check_blackhole(&p, 250, 5000).verdict, Verdict::Met);
        p.latency.p99_us = 280_000;
        assert_eq!(check_blackhole(&p, 250, 5000).verdict, Verdict::Missed);

        let p = phase("1000 in flight", None, 1400.0, 900_000);
        assert_eq!(
            check_memory(&p, "over 8 HTTP/2 connections", 30, 50).verdict,
            Verdict::Met
        );
        assert_eq!(
            check_memory(&p, "over 8 HTTP/2 connections", 30, 35).verdict,
            Verdict::Missed
        );

        let phases = vec![phase("a", Some(1), 1.0, 1), phase("b", Some(1), 1.0, 1)];
        assert_eq!(check_connections(&phases, 6, 1).verdict, Verdict::Met);
        let mut churn = phases.clone();
        churn[0].connections = Some(ConnectionReport {
            perspective_connections_seen: 5000,
            perspective_connections_established_end: 300,
            coordinator_connections_end: None,
            preexisting: 0,
            conntrack_peak: None,
        });
        assert_eq!(check_connections(&churn, 6, 1).verdict, Verdict::Missed);

        let mut o = phase("overload", Some(15_000), 1400.0, 900_000);
        o.shed = 100_000;
        assert_eq!(check_overload(&o, "over h2", 15_000).verdict, Verdict::Met);
        o.memory[0].rss_end_kib = 60 * 1024;
        assert_eq!(
            check_overload(&o, "over h2", 15_000).verdict,
            Verdict::Missed,
            "memory grew"
        );
    }

    #[test]
    fn the_table_shows_every_phase_and_target() {
        let mut p = phase("sustained", Some(1500), 1499.6, 41_234);
        p.errors.insert("HTTP 500".into(), 2);
        let r = Report {
            scenario: "caa".into(),
            check: "caa".into(),
            dns: "nsd".into(),
            settings: Settings {
                perspectives: 6,
                straggler_grace_ms: 250,
                perspective_call_ms: 5000,
                max_concurrent_requests: 2048,
                coordinators: 1,
            },
            machine: Machine {
                cpus: 2,
                loadavg_start: "1.00 1.00 1.00 1/100 1\n".into(),
                cpu_reference_ns: 4200,
                loadavg_end: "2.00 1.00 1.00 1/100 1\n".into(),
            },
            targets: vec![check_sustained(&p, 1500)],
            cohorts: None,
            phases: vec![p, phase("max", None, 1700.0, 80_000)],
            notes: vec!["noisy machine".into()],
        };
        let text = render(&r);
        for want in [
            "scenario caa",
            "sustained",
            "1500/s",
            "c=64",
            "41.234",
            "1500",
            "HTTP 500: 2",
            "coordinator",
            "40.0",
            "[MISSED] CAA without Unbound",
            "6 new during the phase",
            "conntrack table peak 262000/262144 (FULL",
            "note: noisy machine",
            "CPU per answered request",
            "300",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["phases"][0]["latency"]["p99_us"], 41_234);
        assert_eq!(json["targets"][0]["verdict"], "missed");
    }

    #[test]
    fn wan_targets() {
        struct Case {
            name: &'static str,
            check: fn() -> TargetCheck,
            want: Verdict,
        }
        fn max(ok_per_s: f64) -> PhaseReport {
            phase("max", None, ok_per_s, 600_000)
        }
        fn half(p99_us: u64, shed: u64) -> PhaseReport {
            let mut p = phase("half rate", Some(800), 800.0, p99_us);
            p.shed = shed;
            p
        }
        fn cohorts(identical: usize) -> Cohorts {
            Cohorts {
                sampled: 50,
                identical,
                ..Cohorts::default()
            }
        }
        fn wan(p: &mut PhaseReport, not_completed: Option<u64>, calls: u64) {
            p.wan = Some(WanPhase {
                not_completed,
                calls: Some(calls),
                ..WanPhase::default()
            });
        }
        let cases = [
            Case {
                name: "90 % of the baseline",
                check: || check_wan_throughput(&max(1800.0), 2000.0, "measured"),
                want: Verdict::Met,
            },
            Case {
                name: "89 % of the baseline",
                check: || check_wan_throughput(&max(1780.0), 2000.0, "measured"),
                want: Verdict::Missed,
            },
            Case {
                name: "nothing shed below the baseline",
                check: || check_wan_no_shed(&[&half(1, 0), &max(1.0)], 2000.0),
                want: Verdict::Met,
            },
            Case {
                name: "one shed below the baseline",
                check: || check_wan_no_shed(&[&half(1, 1)], 2000.0),
                want: Verdict::Missed,
            },
            Case {
                name: "shed above the baseline does not count",
                check: || {
                    check_wan_no_shed(
                        &[&half(1, 0), &{
                            let mut p = half(1, 9);
                            p.offered_per_s = Some(3000);
                            p
                        }],
                        2000.0,
                    )
                },
                want: Verdict::Met,
            },
            Case {
                name: "p99 at the limit",
                check: || check_wan_p99(&half(415_000, 0), "the slowest path + 25 ms", 415),
                want: Verdict::Met,
            },
            Case {
                name: "p99 over the limit",
                check: || check_wan_p99(&half(416_000, 0), "the slowest path + 25 ms", 415),
                want: Verdict::Missed,
            },
            Case {
                name: "0.1 % not completed",
                check: || {
                    let mut p = half(1, 0);
                    wan(&mut p, Some(6), 6000);
                    check_wan_not_completed(&[&p], &[], 6)
                },
                want: Verdict::Met,
            },
            Case {
                name: "0.12 % not completed",
                check: || {
                    let mut p = half(1, 0);
                    wan(&mut p, Some(7), 6000);
                    check_wan_not_completed(&[&p], &[], 6)
                },
                want: Verdict::Missed,
            },
            Case {
                name: "a wrong verdict",
                check: || {
                    let mut p = half(1, 0);
                    wan(&mut p, Some(0), 6000);
                    p.wrong_verdicts = 1;
                    check_wan_not_completed(&[&p], &[], 6)
                },
                want: Verdict::Missed,
            },
            Case {
                name: "the saturated maxima are shown, not judged",
                check: || {
                    let mut p = half(1, 0);
                    wan(&mut p, Some(6), 6000);
                    let mut m = max(1000.0);
                    wan(&mut m, Some(600), 6000);
                    check_wan_not_completed(&[&p], &[&m], 6)
                },
                want: Verdict::Met,
            },
            Case {
                name: "a wrong verdict in a saturated maximum",
                check: || {
                    let mut p = half(1, 0);
                    wan(&mut p, Some(0), 6000);
                    let mut m = max(1000.0);
                    wan(&mut m, Some(0), 6000);
                    m.wrong_verdicts = 1;
                    check_wan_not_completed(&[&p], &[&m], 6)
                },
                want: Verdict::Missed,
            },
            Case {
                name: "an older coordinator: from the answers",
                check: || {
                    let mut p = half(1, 0);
                    wan(&mut p, None, 6000);
                    p.incomplete_checks.insert("timeout".into(), 100);
                    check_wan_not_completed(&[&p], &[], 6)
                },
                want: Verdict::MetEstimated,
            },
            Case {
                name: "memory within",
                check: || check_wan_memory(&[&half(1, 0)], &[], 64, 40),
                want: Verdict::Met,
            },
            Case {
                name: "a perspective over 20 MiB",
                check: || check_wan_memory(&[&half(1, 0)], &[], 64, 19),
                want: Verdict::Missed,
            },
            Case {
                name: "replicas agree",
                check: || {
                    let c = cohorts(50);
                    check_replicas(&[&half(1, 0)], Some(&c), 2)
                },
                want: Verdict::Met,
            },
            Case {
                name: "one cohort differs",
                check: || {
                    let c = cohorts(49);
                    check_replicas(&[&half(1, 0)], Some(&c), 2)
                },
                want: Verdict::Missed,
            },
            Case {
                name: "an error",
                check: || {
                    let c = cohorts(50);
                    let mut p = half(1, 0);
                    p.errors.insert("connect".into(), 1);
                    check_replicas(&[&p], Some(&c), 2)
                },
                want: Verdict::Missed,
            },
        ];
        for c in cases {
            let t = (c.check)();
            assert_eq!(t.verdict, c.want, "{}: {}", c.name, t.measured);
        }
        let mut p = phase("max", None, 1000.0, 1);
        p.memory[0].cpu_ms = 1_000;
        p.memory[1].name = "coordinator 2".into();
        p.memory[1].cpu_ms = 2_000;
        p.ok = 10_000;
        assert_eq!(coordinators_cpu_us(&p), Some(300.0));
    }
}
