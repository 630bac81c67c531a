//! The perspective's Prometheus metrics (`GET /metrics`). Label values are bounded sets —
//! check types, method names, results, record types, rcodes — never domain names.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Labels of a finished check.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// `caa` or `dcv`.
    pub check_type: String,
    /// The DCV method, or empty for CAA.
    pub method: String,
    /// `passed`, `not_passed` or `error` (not completed).
    pub result: String,
}

/// Labels of a check-duration histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `caa` or `dcv`.
    pub check_type: String,
    /// The DCV method, or empty for CAA.
    pub method: String,
}

/// Labels of a DNS lookup.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsLabels {
    /// The queried record type (`CAA`, `TXT`, …).
    pub record_type: String,
    /// The rcode mnemonic (`NOERROR`, `SERVFAIL`, …), `TIMEOUT` or `TRANSPORT`.
    pub outcome: String,
}

/// Labels of an HTTP fetch.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    /// `http` or `https`.
    pub scheme: String,
}

/// Labels of a readiness probe of the resolver.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// `answered`, `failed` (the resolver answered with an error or could not be reached)
    /// or `timeout`.
    pub outcome: String,
}

/// All perspective metrics, in their own registry.
#[derive(Debug)]
pub struct Metrics {
    /// The registry served on `/metrics`.
    pub registry: Registry,
    /// `mpic_ready`.
    pub ready: Gauge,
    /// `mpic_resolver_probes_total`.
    pub resolver_probes: Family<ProbeLabels, Counter>,
    /// `mpic_connections_open`, `mpic_connections_closed_total`.
    pub connections: mpic_common::serve::ConnectionMetrics,
    /// `mpic_tls_certificate_not_after_seconds`, `mpic_tls_reload_applied_total`,
    /// `mpic_tls_reload_refused_total`.
    pub reload: mpic_common::reload::ReloadMetrics,
    /// `mpic_start_time_seconds`, `mpic_shutting_down`.
    pub lifecycle: mpic_common::serve::LifecycleMetrics,
    /// `mpic_checks_total`.
    pub checks: Family<CheckLabels, Counter>,
    /// `mpic_check_duration_seconds`.
    pub check_duration: Family<KindLabels, Histogram>,
    /// `mpic_dns_lookups_total`.
    pub dns_lookups: Family<DnsLabels, Counter>,
    /// `mpic_dns_lookup_duration_seconds`.
    pub dns_duration: Histogram,
    /// `mpic_dns_retries_total`.
    pub dns_retries: Counter,
    /// `mpic_http_fetch_duration_seconds`.
    pub http_duration: Family<FetchLabels, Histogram>,
    /// `mpic_load_shed_total`.
    pub shed: Counter,
    /// `mpic_checks_in_flight`.
    pub in_flight: Gauge,
}

impl Metrics {
    /// A fresh set.
    pub fn new() -> Metrics {
        let histogram = mpic_common::metrics::latency_histogram as fn() -> Histogram;
        let mut registry = Registry::with_prefix("mpic");
        let checks = Family::<CheckLabels, Counter>::default();
        registry.register(
            "checks",
            "Checks run, by check type, method and result",
            checks.clone(),
        );
        let check_duration = Family::<KindLabels, Histogram>::new_with_constructor(histogram);
        registry.register_with_unit(
            "check_duration",
            "Duration of one check",
            Unit::Seconds,
            check_duration.clone(),
        );
        let dns_lookups = Family::<DnsLabels, Counter>::default();
        registry.register(
            "dns_lookups",
            "DNS lookups sent to this perspective's resolver, by record type and outcome",
            dns_lookups.clone(),
        );
        let dns_duration = mpic_common::metrics::latency_histogram();
        registry.register_with_unit(
            "dns_lookup_duration",
            "Duration of one DNS lookup",
            Unit::Seconds,
            dns_duration.clone(),
        );
        let dns_retries = Counter::default();
        registry.register(
            "dns_retries",
            "UDP queries sent again because no answer had come within resolver.retry_ms",
            dns_retries.clone(),
        );
        let http_duration = Family::<FetchLabels, Histogram>::new_with_constructor(histogram);
        registry.register_with_unit(
            "http_fetch_duration",
            "Duration of one HTTP fetch, redirects included",
            Unit::Seconds,
            http_duration.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "load_shed",
            "Checks refused with 503 because the concurrency limit was reached",
            shed.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("checks_in_flight", "Checks running now", in_flight.clone());
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when the last readiness probe found the resolver answering, else 0",
            ready.clone(),
        );
        let resolver_probes = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "resolver_probes",
            "Readiness probes of the resolver, by outcome",
            resolver_probes.clone(),
        );
        let connections = mpic_common::serve::ConnectionMetrics::register(&mut registry);
        let reload = mpic_common::reload::ReloadMetrics::register(&mut registry);
        let lifecycle = mpic_common::serve::LifecycleMetrics::register(&mut registry);
        Metrics {
            registry,
            lifecycle,
            ready,
            resolver_probes,
            connections,
            reload,
            checks,
            check_duration,
            dns_lookups,
            dns_duration,
            dns_retries,
            http_duration,
            shed,
            in_flight,
        }
    }

    /// Records one DNS lookup.
    pub fn dns(&self, record_type: &str, outcome: &str, took: Duration) {
        self.dns_lookups
            .get_or_create(&DnsLabels {
                record_type: record_type.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.dns_duration.observe(took.as_secs_f64());
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
