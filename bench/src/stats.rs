//! Latency histograms and their summaries. Values are microseconds in an HdrHistogram with three
//! significant figures (any recorded value is reported within 0.1 %), from 1 µs to
//! [`MAX_TRACKED`]; longer values saturate at the top so nothing is silently dropped.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest latency the histogram tells apart (longer ones count as this).
pub const MAX_TRACKED: Duration = Duration::from_secs(120);

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// What a histogram says, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest value.
    pub max_us: u64,
    /// Arithmetic mean.
    pub mean_us: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Latency {
        // Constant bounds that satisfy the crate's rules (low ≥ 1, high ≥ 2·low, sigfig ≤ 5):
        // construction cannot fail.
        let hist = Histogram::new_with_bounds(1, micros(MAX_TRACKED), 3)
            .expect("constant histogram bounds are valid");
        Latency { hist }
    }

    /// Records one duration (saturating at [`MAX_TRACKED`], at least 1 µs).
    pub fn record(&mut self, d: Duration) {
        self.record_us(micros(d));
    }

    /// Records one value in microseconds.
    pub fn record_us(&mut self, us: u64) {
        self.hist
            .saturating_record(us.clamp(1, micros(MAX_TRACKED)));
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at `quantile` (0.0–1.0), in microseconds; 0 when empty.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        if self.hist.is_empty() {
            return 0;
        }
        self.hist
            .highest_equivalent(self.hist.value_at_quantile(quantile))
            .min(self.hist.max())
    }

    /// The summary.
    pub fn summary(&self) -> Summary {
        if self.hist.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.hist.len(),
            p50_us: self.quantile_us(0.50),
            p90_us: self.quantile_us(0.90),
            p99_us: self.quantile_us(0.99),
            p999_us: self.quantile_us(0.999),
            max_us: self.hist.max(),
            mean_us: self.hist.mean().round() as u64,
        }
    }
}

/// Whole microseconds of `d`, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Microseconds as milliseconds with three decimals, for tables.
pub fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Within HdrHistogram's 3-significant-figure precision.
    fn close(got: u64, want: u64) -> bool {
        got.abs_diff(want) * 1000 <= want.max(1)
    }

    #[test]
    fn percentiles_of_known_distributions() {
        struct Case {
            name: &'static str,
            values_us: Vec<u64>,
            want: Summary,
        }
        let cases = [
            Case {
                name: "1..=1000 ms uniform",
                values_us: (1..=1000).map(|ms| ms * 1000).collect(),
                want: Summary {
                    count: 1000,
                    p50_us: 500_000,
                    p90_us: 900_000,
                    p99_us: 990_000,
                    p999_us: 999_000,
                    max_us: 1_000_000,
                    mean_us: 500_500,
                },
            },
            Case {
                name: "one slow outlier among 999 fast",
                values_us: std::iter::repeat_n(200, 999).chain([80_000]).collect(),
                want: Summary {
                    count: 1000,
                    p50_us: 200,
                    p90_us: 200,
                    p99_us: 200,
                    p999_us: 200,
                    max_us: 80_000,
                    mean_us: 280,
                },
            },
            Case {
                name: "a single value",
                values_us: vec![1234],
                want: Summary {
                    count: 1,
                    p50_us: 1234,
                    p90_us: 1234,
                    p99_us: 1234,
                    p999_us: 1234,
                    max_us: 1234,
                    mean_us: 1234,
                },
            },
        ];
        for c in cases {
            let mut h = Latency::new();
            for v in &c.values_us {
                h.record_us(*v);
            }
            let got = h.summary();
            assert_eq!(got.count, c.want.count, "{}", c.name);
            for (what, g, w) in [
                ("p50", got.p50_us, c.want.p50_us),
                ("p90", got.p90_us, c.want.p90_us),
                ("p99", got.p99_us, c.want.p99_us),
                ("p99.9", got.p999_us, c.want.p999_us),
                ("max", got.max_us, c.want.max_us),
                ("mean", got.mean_us, c.want.mean_us),
            ] {
                assert!(close(g, w), "{}: {what} = {g}, want {w}", c.name);
            }
        }
    }

    #[test]
    fn empty_histogram_summarises_to_zeros() {
        assert_eq!(Latency::new().summary(), Summary::default());
        assert_eq!(Latency::new().quantile_us(0.99), 0);
    }

    #[test]
    fn out_of_range_values_saturate_instead_of_vanishing() {
        let mut h = Latency::new();
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(3600));
        let s = h.summary();
        assert_eq!(s.count, 2);
        assert!(close(s.max_us, micros(MAX_TRACKED)), "{s:?}");
        assert_eq!(h.quantile_us(0.0), 1);
    }

    #[test]
    fn ms_formatting() {
        assert_eq!(ms(1), "0.001");
        assert_eq!(ms(1_234_567), "1234.567");
    }
}
