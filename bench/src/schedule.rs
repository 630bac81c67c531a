//! The open-loop schedule: request `i` is due at `i / rate` seconds after the start, whatever
//! happened to the requests before it. Latency is measured from that intended time, so a
//! server (or a client) that falls behind shows as latency instead of silently slowing the
//! offered load down (the "coordinated omission" of closed-loop tools).

use std::time::Duration;

/// A fixed-rate schedule of a bounded number of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    rate_per_s: u64,
    count: u64,
}

impl Schedule {
    /// `rate_per_s` requests per second for `duration` (the count is rounded down; a rate of
    /// zero schedules nothing).
    pub fn new(rate_per_s: u64, duration: Duration) -> Schedule {
        let count =
            u64::try_from(u128::from(rate_per_s) * duration.as_millis() / 1000).unwrap_or(u64::MAX);
        Schedule { rate_per_s, count }
    }

    /// How many requests the schedule holds.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// When request `i` is due, from the start. Exact in integer nanoseconds, so no drift
    /// accumulates over long runs.
    pub fn offset(&self, i: u64) -> Duration {
        if self.rate_per_s == 0 {
            return Duration::ZERO;
        }
        let ns = u128::from(i) * 1_000_000_000 / u128::from(self.rate_per_s);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// Requests due by `elapsed` (those with `offset(i) <= elapsed`), capped at the count.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        let due = elapsed.as_nanos() * u128::from(self.rate_per_s) / 1_000_000_000 + 1;
        u64::try_from(due).unwrap_or(u64::MAX).min(self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        struct Case {
            name: &'static str,
            rate: u64,
            duration: Duration,
            want: u64,
        }
        let cases = [
            Case {
                name: "1500/s for 20 s",
                rate: 1500,
                duration: Duration::from_secs(20),
                want: 30_000,
            },
            Case {
                name: "rounded down",
                rate: 3,
                duration: Duration::from_millis(1500),
                want: 4,
            },
            Case {
                name: "zero rate",
                rate: 0,
                duration: Duration::from_secs(10),
                want: 0,
            },
            Case {
                name: "zero duration",
                rate: 1000,
                duration: Duration::ZERO,
                want: 0,
            },
        ];
        for c in cases {
            assert_eq!(
                Schedule::new(c.rate, c.duration).count(),
                c.want,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn offsets_are_evenly_spaced_and_do_not_drift() {
        let s = Schedule::new(1500, Duration::from_secs(3600));
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(3), Duration::from_millis(2));
        // After an hour of 1500/s the 5,400,000th request is due at exactly 3600 s.
        assert_eq!(s.offset(5_400_000), Duration::from_secs(3600));
        let mut previous = Duration::ZERO;
        for i in 1..10_000 {
            let o = s.offset(i);
            assert!(o > previous, "offset {i} does not move forward");
            let gap = o - previous;
            assert!(
                gap >= Duration::from_nanos(666_666) && gap <= Duration::from_nanos(666_667),
                "gap {gap:?} at {i}"
            );
            previous = o;
        }
    }

    #[test]
    fn due_by_matches_offsets() {
        let s = Schedule::new(1000, Duration::from_secs(1));
        assert_eq!(s.due_by(Duration::ZERO), 1, "request 0 is due at once");
        assert_eq!(s.due_by(Duration::from_micros(999)), 1);
        assert_eq!(s.due_by(Duration::from_millis(1)), 2);
        assert_eq!(s.due_by(Duration::from_millis(500)), 501);
        assert_eq!(
            s.due_by(Duration::from_secs(5)),
            1000,
            "capped at the count"
        );
        for i in 0..1000 {
            assert!(
                s.due_by(s.offset(i)) > i,
                "request {i} is due at its offset"
            );
        }
    }
}
