//! Prometheus metrics plumbing shared by both services: an explicit registry per service
//! instance (no global recorder, so several services can live in one process, as in
//! `mpic dev`), the latency buckets, and the text rendering served on `GET /metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds: 0.5 ms to 30 s, roughly ×2.5 apart.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0,
    30.0,
];

/// A histogram with [`LATENCY_BUCKETS`].
pub fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The text exposition format of `registry` (OpenMetrics text, which Prometheus reads).
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
