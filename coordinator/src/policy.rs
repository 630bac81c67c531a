//! The BR's dated minimum of remote perspectives (BR 3.2.2.9 phase-in), and what the
//! coordinator does when a configuration or request is below it.

use serde::{Deserialize, Serialize};

/// How strictly today's BR minimum is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Refuse a configuration or request below the minimum (production).
    #[default]
    Enforce,
    /// Allow it and log a warning (labs, local development).
    Warn,
    /// Do not check.
    Off,
}

/// BR 3.2.2.9 phase-in: from each date (year, month, day) on, the minimum number of remote
/// perspectives. From 2026-03-15 the corroborating perspectives must also span at least two
/// RIRs, which [`crate::quorum::verdict`] always requires for cohorts over two.
pub const BR_MINIMUM_PERSPECTIVES: [((i32, u32, u32), u32); 5] = [
    ((2025, 3, 15), 2),
    ((2025, 9, 15), 2),
    ((2026, 3, 15), 3),
    ((2026, 6, 15), 4),
    ((2026, 12, 15), 5),
];

/// The minimum in force on `days` (days since 1970-01-01, UTC); 0 before the phase-in.
pub fn br_minimum_on(days: i64) -> u32 {
    BR_MINIMUM_PERSPECTIVES
        .iter()
        .rev()
        .find(|((y, m, d), _)| days_from_civil(*y, *m, *d) <= days)
        .map_or(0, |(_, n)| *n)
}

/// The minimum in force today.
pub fn br_minimum_today() -> u32 {
    br_minimum_on(today())
}

/// Days since 1970-01-01 (UTC) now.
pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs / 86_400).unwrap_or(i64::MAX)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 29), 20_786);
    }

    #[test]
    fn dated_minimum_table() {
        // requirements.md: 2025-03-15: 2 · 2025-09-15: 2 · 2026-03-15: 3 · 2026-06-15: 4 ·
        // 2026-12-15: 5.
        let cases = [
            ((2025, 3, 14), 0),
            ((2025, 3, 15), 2),
            ((2025, 9, 15), 2),
            ((2026, 3, 14), 2),
            ((2026, 3, 15), 3),
            ((2026, 6, 14), 3),
            ((2026, 6, 15), 4),
            ((2026, 11, 29), 4),
            ((2026, 12, 14), 4),
            ((2026, 12, 15), 5),
            ((2030, 1, 1), 5),
        ];
        for ((y, m, d), want) in cases {
            assert_eq!(br_minimum_on(days_from_civil(y, m, d)), want, "{y}-{m}-{d}");
        }
    }
}
