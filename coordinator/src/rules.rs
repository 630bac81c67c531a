//! The BR's dated rules in one table ([`RULES`]): from which day a cohort needs how many remote
//! perspectives (BR 3.2.2.9), and from which day a CA may no longer rely on a domain or IP
//! validation method (BR 1.2.2 and each method's section).
//!
//! It is the single source of everything that depends on the date: the coordinator's decisions
//! on configurations and requests ([`crate::policy`]), `mpic config check`, `/configz`, the
//! `mpic_rules_next_change_days` metric and the README's table (a test compares them). Days are
//! passed in; only [`SystemClock`] reads the wall clock, so that tests choose the day.

use std::fmt;
use std::str::FromStr;

use mpic_common::api::ValidationMethod;

/// A calendar day (UTC), proleptic Gregorian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Days since 1970-01-01.
    days: i64,
}

impl Date {
    /// The day `year-month-day` (month 1–12, day 1–31; not checked: use [`str::parse`] for
    /// input).
    pub const fn from_ymd(year: i32, month: u32, day: u32) -> Date {
        // H. Hinnant's `days_from_civil`.
        let y = year as i64 - if month <= 2 { 1 } else { 0 };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Date {
            days: era * 146_097 + doe - 719_468,
        }
    }

    /// The day `days` days after 1970-01-01.
    pub const fn from_days(days: i64) -> Date {
        Date { days }
    }

    /// Days since 1970-01-01.
    pub const fn days_since_epoch(self) -> i64 {
        self.days
    }

    /// (year, month, day).
    pub fn ymd(self) -> (i32, u32, u32) {
        // H. Hinnant's `civil_from_days`.
        let z = self.days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (
            i32::try_from(year).unwrap_or(i32::MAX),
            u32::try_from(month).unwrap_or(1),
            u32::try_from(day).unwrap_or(1),
        )
    }

    /// Days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Date) -> i64 {
        later.days - self.days
    }

    /// The day `n` days later.
    pub fn plus_days(self, n: i64) -> Date {
        Date {
            days: self.days.saturating_add(n),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Why a text is not a `YYYY-MM-DD` day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a day of the form YYYY-MM-DD")]
pub struct DateError(String);

impl FromStr for Date {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Date, DateError> {
        let bad = || DateError(s.chars().take(32).collect());
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        // Length first: the indices below exist; all ASCII: the slices are on characters.
        let shaped = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
        if !shaped || !digits(0..4) || !digits(5..7) || !digits(8..10) {
            return Err(bad());
        }
        let number = |r: std::ops::Range<usize>| s[r].parse::<u32>().map_err(|_| bad());
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let year = i32::try_from(year).map_err(|_| bad())?;
        let date = Date::from_ymd(year, month, day);
        // Month 13 or 31 February come back as another day.
        if (1..=12).contains(&month) && date.ymd() == (year, month, day) {
            Ok(date)
        } else {
            Err(bad())
        }
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where the coordinator gets today's date from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Today (UTC).
    fn today(&self) -> Date;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn today(&self) -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Date::from_days(i64::try_from(secs / 86_400).unwrap_or(i64::MAX))
    }
}

/// A clock that always says the same day (tests, `mpic config check --at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub Date);

impl Clock for FixedClock {
    fn today(&self) -> Date {
        self.0
    }
}

/// What a dated rule requires from its day on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A cohort has at least this many remote perspectives (BR 3.2.2.9).
    MinimumPerspectives(u32),
    /// The CA MUST NOT rely on this method any more.
    Retires(ValidationMethod),
}

impl Rule {
    /// The rule's name in `warnings[].warning_type`, the metric's `rule` label and `/configz`.
    pub fn kind(self) -> &'static str {
        match self {
            Rule::MinimumPerspectives(_) => "minimum-perspectives",
            Rule::Retires(_) => "retired-validation-method",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatedRule {
    /// The first day it applies (BR 1.2.2 "Compliance" dates are effective on that day).
    pub effective: Date,
    /// Its BR section.
    pub br_section: &'static str,
    /// What it requires.
    pub rule: Rule,
    /// What else the BR says from that day, for people ("" when nothing).
    pub note: &'static str,
}

impl DatedRule {
    /// What the rule says, e.g. "at least 5 remote perspectives per cohort" or "ip-address
    /// retired", with its note.
    pub fn summary(&self) -> String {
        let rule = match self.rule {
            Rule::MinimumPerspectives(n) => format!("at least {n} remote perspectives per cohort"),
            Rule::Retires(m) => format!("{} retired", m.as_str()),
        };
        if self.note.is_empty() {
            rule
        } else {
            format!("{rule}; {}", self.note)
        }
    }
}

/// The dated rules, in date order: BR 2.2.6 section 1.2.2 ("Relevant Dates": the methods'
/// retirement dates, each repeated in the method's own section) and section 3.2.2.9 (the
/// phase-in of Multi-Perspective Issuance Corroboration). From 2026-03-15 the corroborating
/// perspectives must also span two RIRs, which [`crate::quorum::verdict`] requires of every
/// cohort over two. Methods the BR retired that the API never offered (3.2.2.4.2, .4, .15,
/// 3.2.2.5.2, .5) have no row. A new ballot adds a row here; the README shows
/// [`markdown_table`] (a test compares them).
pub const RULES: [DatedRule; 11] = [
    minimum(
        Date::from_ymd(2025, 3, 15),
        2,
        "issuance may proceed with more non-corroborations than the quorum table allows",
    ),
    minimum(
        Date::from_ymd(2025, 9, 15),
        2,
        "the quorum table is enforced",
    ),
    minimum(
        Date::from_ymd(2026, 3, 15),
        3,
        "the corroborating perspectives span at least two RIRs",
    ),
    retires(
        Date::from_ymd(2026, 3, 15),
        "3.2.2.4.8",
        ValidationMethod::IpAddress,
    ),
    minimum(Date::from_ymd(2026, 6, 15), 4, ""),
    minimum(Date::from_ymd(2026, 12, 15), 5, ""),
    retires(
        Date::from_ymd(2027, 3, 15),
        "3.2.2.4.16",
        ValidationMethod::ContactPhoneTxt,
    ),
    retires(
        Date::from_ymd(2027, 3, 15),
        "3.2.2.4.17",
        ValidationMethod::ContactPhoneCaa,
    ),
    retires(
        Date::from_ymd(2027, 3, 15),
        "3.2.2.5.3",
        ValidationMethod::ReverseAddressLookup,
    ),
    retires(
        Date::from_ymd(2028, 3, 15),
        "3.2.2.4.13",
        ValidationMethod::ContactEmailCaa,
    ),
    retires(
        Date::from_ymd(2028, 3, 15),
        "3.2.2.4.14",
        ValidationMethod::ContactEmailTxt,
    ),
];

/// The rules in force on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    /// The day.
    pub date: Date,
    /// The minimum's row in force (`None` before the phase-in: no minimum).
    pub minimum: Option<DatedRule>,
    /// The retirements in force, in table order.
    pub retired: Vec<DatedRule>,
}

impl InForce {
    /// The minimum of remote perspectives (0 before the phase-in).
    pub fn minimum_perspectives(&self) -> u32 {
        match self.minimum.map(|r| r.rule) {
            Some(Rule::MinimumPerspectives(n)) => n,
            _ => 0,
        }
    }

    /// The row retiring `method`, if it is retired on this day.
    pub fn retirement(&self, method: ValidationMethod) -> Option<&DatedRule> {
        self.retired
            .iter()
            .find(|r| r.rule == Rule::Retires(method))
    }
}

/// The rules in force on `date`.
pub fn in_force(date: Date) -> InForce {
    let applied = || RULES.iter().filter(move |r| r.effective <= date);
    InForce {
        date,
        // The table is in date order: the latest minimum that applies.
        minimum: applied()
            .rfind(|r| matches!(r.rule, Rule::MinimumPerspectives(_)))
            .copied(),
        retired: applied()
            .filter(|r| matches!(r.rule, Rule::Retires(_)))
            .copied()
            .collect(),
    }
}

/// The rows that take effect on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The day.
    pub date: Date,
    /// Its rows, in table order.
    pub rules: Vec<DatedRule>,
}

/// Every change after `date` up to and including `until`, earliest first.
pub fn changes_between(date: Date, until: Date) -> Vec<Change> {
    let mut changes: Vec<Change> = Vec::new();
    for rule in RULES
        .iter()
        .filter(|r| r.effective > date && r.effective <= until)
    {
        match changes.last_mut() {
            Some(c) if c.date == rule.effective => c.rules.push(*rule),
            _ => changes.push(Change {
                date: rule.effective,
                rules: vec![*rule],
            }),
        }
    }
    changes
}

/// The next change after `date`, if the table knows one.
pub fn next_change(date: Date) -> Option<Change> {
    changes_between(date, Date::from_days(i64::MAX))
        .into_iter()
        .next()
}

/// The README's table, generated from [`RULES`].
pub fn markdown_table() -> String {
    let mut out = String::from("| from | BR | rule |\n|---|---|---|\n");
    for r in &RULES {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            r.effective,
            r.br_section,
            r.summary()
        ));
    }
    out
}

const fn minimum(effective: Date, n: u32, note: &'static str) -> DatedRule {
    DatedRule {
        effective,
        br_section: "3.2.2.9",
        rule: Rule::MinimumPerspectives(n),
        note,
    }
}

const fn retires(effective: Date, br_section: &'static str, method: ValidationMethod) -> DatedRule {
    DatedRule {
        effective,
        br_section,
        rule: Rule::Retires(method),
        note: "",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn dates() {
        assert_eq!(Date::from_ymd(1970, 1, 1), Date::from_days(0));
        assert_eq!(Date::from_ymd(2000, 3, 1), Date::from_days(11_017));
        assert_eq!(Date::from_ymd(2026, 11, 29), Date::from_days(20_786));
        for s in [
            "1970-01-01",
            "2000-02-29",
            "2026-12-04",
            "2028-03-15",
            "1969-12-31",
        ] {
            assert_eq!(day(s).to_string(), s);
        }
        assert_eq!(day("2026-12-04").days_until(day("2026-12-15")), 11);
        assert_eq!(day("2026-12-31").plus_days(1), day("2027-01-01"));
        for bad in [
            "2026-13-01",
            "2026-02-29",
            "2026-00-10",
            "2026-12-32",
            "2026-1-01",
            "26-12-01",
            "2026/12/01",
            "2026-12-01 ",
            "+026-12-01",
            "",
        ] {
            assert!(bad.parse::<Date>().is_err(), "{bad:?}");
        }
    }

    /// One case per row of the table, on the day before it and on its day (BR 1.2.2, 3.2.2.9;
    /// the dates of rules-research.md).
    #[test]
    fn the_table_against_the_br_dates() {
        use ValidationMethod as M;
        struct Case {
            row: &'static str,
            day_before: &'static str,
            day_of: &'static str,
            minimum: (u32, u32),
            retired: Option<M>,
        }
        let cases = [
            Case {
                row: "3.2.2.9 two perspectives",
                day_before: "2025-03-14",
                day_of: "2025-03-15",
                minimum: (0, 2),
                retired: None,
            },
            Case {
                row: "3.2.2.9 quorum enforced",
                day_before: "2025-09-14",
                day_of: "2025-09-15",
                minimum: (2, 2),
                retired: None,
            },
            Case {
                row: "3.2.2.9 three perspectives",
                day_before: "2026-03-14",
                day_of: "2026-03-15",
                minimum: (2, 3),
                retired: None,
            },
            Case {
                row: "3.2.2.4.8 IP Address",
                day_before: "2026-03-14",
                day_of: "2026-03-15",
                minimum: (2, 3),
                retired: Some(M::IpAddress),
            },
            Case {
                row: "3.2.2.9 four perspectives",
                day_before: "2026-06-14",
                day_of: "2026-06-15",
                minimum: (3, 4),
                retired: None,
            },
            Case {
                row: "3.2.2.9 five perspectives",
                day_before: "2026-12-14",
                day_of: "2026-12-15",
                minimum: (4, 5),
                retired: None,
            },
            Case {
                row: "3.2.2.4.16 phone to DNS TXT contact",
                day_before: "2027-03-14",
                day_of: "2027-03-15",
                minimum: (5, 5),
                retired: Some(M::ContactPhoneTxt),
            },
            Case {
                row: "3.2.2.4.17 phone to DNS CAA contact",
                day_before: "2027-03-14",
                day_of: "2027-03-15",
                minimum: (5, 5),
                retired: Some(M::ContactPhoneCaa),
            },
            Case {
                row: "3.2.2.5.3 reverse address lookup",
                day_before: "2027-03-14",
                day_of: "2027-03-15",
                minimum: (5, 5),
                retired: Some(M::ReverseAddressLookup),
            },
            Case {
                row: "3.2.2.4.13 email to DNS CAA contact",
                day_before: "2028-03-14",
                day_of: "2028-03-15",
                minimum: (5, 5),
                retired: Some(M::ContactEmailCaa),
            },
            Case {
                row: "3.2.2.4.14 email to DNS TXT contact",
                day_before: "2028-03-14",
                day_of: "2028-03-15",
                minimum: (5, 5),
                retired: Some(M::ContactEmailTxt),
            },
        ];
        assert_eq!(cases.len(), RULES.len(), "one case per row of the table");
        assert!(
            RULES.windows(2).all(|w| w[0].effective <= w[1].effective),
            "the table is in date order"
        );
        for c in &cases {
            let (before, on) = (in_force(day(c.day_before)), in_force(day(c.day_of)));
            assert_eq!(
                (before.minimum_perspectives(), on.minimum_perspectives()),
                c.minimum,
                "{}",
                c.row
            );
            if let Some(method) = c.retired {
                assert_eq!(before.retirement(method), None, "{}: the day before", c.row);
                let row = on.retirement(method).unwrap();
                assert_eq!(row.effective, day(c.day_of), "{}", c.row);
                assert!(c.row.starts_with(row.br_section), "{}", c.row);
                assert_eq!(
                    in_force(day("2099-01-01")).retirement(method),
                    Some(row),
                    "{}: for good",
                    c.row
                );
            }
            assert_eq!(
                next_change(day(c.day_before)).map(|ch| ch.date),
                Some(day(c.day_of)),
                "{}: the next change seen the day before",
                c.row
            );
        }
        // The methods never retired.
        for m in [
            M::WebsiteChange,
            M::AcmeHttp01,
            M::AcmeDns01,
            M::AcmeTlsAlpn01,
            M::DnsChange,
            M::DnsPersistent,
            M::DnsAccount01,
        ] {
            assert_eq!(in_force(day("2099-01-01")).retirement(m), None, "{m:?}");
        }
    }

    #[test]
    fn next_changes() {
        let next = next_change(day("2026-12-04")).unwrap();
        assert_eq!(next.date, day("2026-12-15"));
        assert_eq!(next.rules.len(), 1);
        assert_eq!(next.rules[0].rule, Rule::MinimumPerspectives(5));
        let next = next_change(day("2026-12-15")).unwrap();
        assert_eq!(next.date, day("2027-03-15"));
        assert_eq!(next.rules.len(), 3, "{next:?}");
        assert_eq!(next_change(day("2028-03-15")), None);
        let within = changes_between(day("2026-03-01"), day("2026-06-15"));
        let dates: Vec<String> = within.iter().map(|c| c.date.to_string()).collect();
        assert_eq!(dates, ["2026-03-15", "2026-06-15"]);
        assert_eq!(within[0].rules.len(), 2);
    }

    /// The README shows the tables the code generates: this one, and the CAA labels of each
    /// method ([`mpic_common::method_labels`]).
    #[test]
    fn the_readme_shows_the_generated_tables() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        for (name, table) in [
            ("dated rules", markdown_table()),
            ("labels", mpic_common::method_labels::markdown_table()),
        ] {
            assert!(
                readme.contains(&table),
                "README.md must contain the {name} table, as generated:\n{table}"
            );
        }
    }
}
