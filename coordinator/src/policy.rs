//! How the coordinator applies the dated rules of [`crate::rules`] (`policy` and `rules` in its
//! configuration): to its configuration at start, to each request, and what it says about the
//! rules in force and the next change (`mpic config check`, `/configz`, the daily warning).
//!
//! | `policy` | below the minimum of perspectives | a retired method | a retired method in `rules.allow_retired_methods` |
//! |---|---|---|---|
//! | `enforce` | configuration refused, request 400 `invalid-perspective-count` | 400 `retired-validation-method` | served with a warning |
//! | `warn` | served with a warning | served with a warning | served with a warning |
//! | `off` | served (the reference's behaviour) | served | served |
//!
//! A warning is an item of the response's `warnings` (an extension) and a count of
//! `mpic_rule_warnings_total{rule,method}`.

use std::fmt;

use mpic_common::api::{RuleWarning, ValidationIssue, ValidationMethod};
use mpic_common::validate::{issue, issue_at};
use serde::{Deserialize, Serialize};

use crate::rules::{self, Date, DatedRule, InForce, Rule};

/// How strictly the dated rules are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Refuse a configuration or request that breaks a rule in force (production).
    #[default]
    Enforce,
    /// Serve it with a warning (labs, local development).
    Warn,
    /// Do not check: the reference's behaviour.
    Off,
}

impl PolicyMode {
    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Enforce => "enforce",
            PolicyMode::Warn => "warn",
            PolicyMode::Off => "off",
        }
    }
}

/// The `rules:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Retired DCV methods still served under `policy: enforce`, each an exception the CA's
    /// auditors agreed to; each is logged at warn at start, and every request for one carries
    /// a warning.
    #[serde(default)]
    pub allow_retired_methods: Vec<ValidationMethod>,
}

/// How many days before a change the coordinator starts warning about it.
pub const WARN_DAYS_AHEAD: i64 = 30;

/// The mode and the exceptions: everything the decisions need from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// `policy`.
    pub mode: PolicyMode,
    /// `rules.allow_retired_methods`.
    pub allow_retired_methods: Vec<ValidationMethod>,
}

/// What the coordinator does with what a rule forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Treatment {
    /// Refused: the configuration does not start, the request gets a 400.
    Refused,
    /// Served with a warning (`policy: warn`).
    Warned,
    /// Served with a warning, as an exception of `rules.allow_retired_methods`.
    Excepted,
    /// Served, unchecked (`policy: off`).
    Unchecked,
}

/// What the rules in force say about one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruling {
    /// Why it is refused (400); empty when it may run.
    pub issues: Vec<ValidationIssue>,
    /// What it breaks that is not enforced, for the response's `warnings`.
    pub warnings: Vec<RuleWarning>,
}

/// What a configuration sets that the dated rules constrain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigFacts {
    /// `default_perspective_count`.
    pub default_perspective_count: u32,
    /// The perspectives configured.
    pub catalogue_size: u32,
}

/// What one dated rule means for a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effect {
    /// [`Rule::kind`].
    pub rule: &'static str,
    /// The BR section.
    pub br_section: &'static str,
    /// The day it applies from.
    pub effective_date: Date,
    /// What it says.
    pub summary: String,
    /// What happens to what it forbids under this configuration's policy.
    pub treatment: Treatment,
    /// For this configuration, in words.
    pub for_this_configuration: String,
    /// The coordinator does not start with this configuration once the rule applies.
    pub configuration_refused: bool,
    /// Requests this configuration served before are refused once the rule applies.
    pub requests_refused: bool,
}

/// The rules in force on a day and the next change, for one configuration (`/configz`,
/// `mpic config check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RulesReport {
    /// The day.
    pub date: Date,
    /// `policy`.
    pub policy: PolicyMode,
    /// `rules.allow_retired_methods`.
    pub allow_retired_methods: Vec<ValidationMethod>,
    /// The rules in force, in date order: the minimum's row and every retirement.
    pub in_force: Vec<Effect>,
    /// The next dated change, if the table knows one.
    pub next_change: Option<NextChange>,
}

/// The next change and what it does to the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextChange {
    /// Its day.
    pub date: Date,
    /// Days from the report's day.
    pub days_away: i64,
    /// Its rules.
    pub rules: Vec<Effect>,
    /// Whether the coordinator still starts with this configuration from that day.
    pub configuration_still_valid: bool,
}

/// An upcoming change the coordinator warns about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upcoming {
    /// Days until it applies (1..=[`WARN_DAYS_AHEAD`]).
    pub days_left: i64,
    /// What it does.
    pub effect: Effect,
}

impl Policy {
    /// The configuration's `policy` and `rules`.
    pub fn new(mode: PolicyMode, rules: &RulesConfig) -> Policy {
        Policy {
            mode,
            allow_retired_methods: rules.allow_retired_methods.clone(),
        }
    }

    /// What happens to what `rule` forbids.
    pub fn treatment(&self, rule: Rule) -> Treatment {
        match (self.mode, rule) {
            (PolicyMode::Off, _) => Treatment::Unchecked,
            (_, Rule::Retires(m)) if self.allow_retired_methods.contains(&m) => Treatment::Excepted,
            (PolicyMode::Enforce, _) => Treatment::Refused,
            (PolicyMode::Warn, _) => Treatment::Warned,
        }
    }

    /// Rules on a request over `perspective_count` perspectives (`given`: the request named
    /// the count; else it is the configured default) by `method` (`None` for CAA), under the
    /// rules `in_force`.
    pub fn rule_on_request(
        &self,
        in_force: &InForce,
        perspective_count: u32,
        given: bool,
        method: Option<ValidationMethod>,
    ) -> Ruling {
        let mut ruling = Ruling::default();
        if let Some(row) = in_force.minimum
            && perspective_count < in_force.minimum_perspectives()
        {
            let whose = if given {
                ""
            } else {
                " (the configured default)"
            };
            let message = format!(
                "field `orchestration_parameters.perspective_count`: {perspective_count}{whose} is below the BR {} minimum of {} remote perspectives in force since {}",
                row.br_section,
                in_force.minimum_perspectives(),
                row.effective
            );
            self.apply(&row, issue::INVALID_PERSPECTIVE_COUNT, message, &mut ruling);
        }
        if let Some(row) = method.and_then(|m| in_force.retirement(m)) {
            let message = format!(
                "field `dcv_check_parameters.validation_method`: {} (BR {}) may not be relied on since {} (BR 1.2.2)",
                method.map_or("", ValidationMethod::as_str),
                row.br_section,
                row.effective
            );
            self.apply(row, issue::RETIRED_VALIDATION_METHOD, message, &mut ruling);
        }
        ruling
    }

    /// Adds what `row` makes of a request breaking it to `ruling`.
    fn apply(&self, row: &DatedRule, issue_type: &str, message: String, ruling: &mut Ruling) {
        let served_because = match self.treatment(row.rule) {
            Treatment::Refused => {
                ruling.issues.push(issue_at(issue_type, message));
                return;
            }
            Treatment::Unchecked => return,
            Treatment::Warned => "served under policy: warn",
            Treatment::Excepted => "served as an exception of rules.allow_retired_methods",
        };
        ruling.warnings.push(RuleWarning {
            warning_type: row.rule.kind().to_owned(),
            br_section: row.br_section.to_owned(),
            effective_date: row.effective.to_string(),
            message: format!("{message}; {served_because}"),
        });
    }

    /// What `rule` means for a configuration with `facts`; `upcoming` words it for a change
    /// still to come.
    pub fn effect(&self, rule: &DatedRule, facts: &ConfigFacts, upcoming: bool) -> Effect {
        let treatment = self.treatment(rule.rule);
        // The words of a rule in force, or of one still to come.
        let (is, are, does_not) = if upcoming {
            ("will be", "will be", "will not")
        } else {
            ("is", "are", "does not")
        };
        let mut configuration_refused = false;
        let mut requests_refused = false;
        let for_this_configuration = match rule.rule {
            Rule::MinimumPerspectives(m) => {
                let n = facts.default_perspective_count;
                if n >= m {
                    format!("your default cohort of {n} meets it")
                } else {
                    let short = if facts.catalogue_size < m {
                        format!(
                            "; the catalogue has {} perspectives: add some",
                            facts.catalogue_size
                        )
                    } else {
                        String::new()
                    };
                    match treatment {
                        Treatment::Refused => {
                            configuration_refused = true;
                            format!(
                                "your default cohort of {n} {is} refused: the coordinator {does_not} start with it (raise default_perspective_count{short})"
                            )
                        }
                        Treatment::Warned | Treatment::Excepted => format!(
                            "your default cohort of {n} {is} below it: served with a warning (policy: warn{short})"
                        ),
                        Treatment::Unchecked => {
                            format!(
                                "your default cohort of {n} {is} below it; not checked (policy: off)"
                            )
                        }
                    }
                }
            }
            Rule::Retires(_) => match treatment {
                Treatment::Refused => {
                    requests_refused = true;
                    format!("requests for it {are} refused (400 retired-validation-method)")
                }
                Treatment::Warned => {
                    format!("requests for it {are} served, with a warning (policy: warn)")
                }
                Treatment::Excepted => format!(
                    "requests for it {are} served, with a warning: rules.allow_retired_methods lists it"
                ),
                Treatment::Unchecked => format!("requests for it {are} served (policy: off)"),
            },
        };
        Effect {
            rule: rule.rule.kind(),
            br_section: rule.br_section,
            effective_date: rule.effective,
            summary: match rule.rule {
                Rule::MinimumPerspectives(m) if upcoming => format!(
                    "the minimum becomes {m} remote perspectives per cohort (BR {})",
                    rule.br_section
                ),
                _ => format!("{} (BR {})", rule.summary(), rule.br_section),
            },
            treatment,
            for_this_configuration,
            configuration_refused,
            requests_refused,
        }
    }

    /// The rules in force on `date` and the next change, for a configuration with `facts`.
    pub fn report(&self, date: Date, facts: &ConfigFacts) -> RulesReport {
        let in_force = rules::in_force(date);
        let mut rows: Vec<&DatedRule> = in_force.minimum.iter().chain(&in_force.retired).collect();
        rows.sort_by_key(|r| r.effective);
        let next_change = rules::next_change(date).map(|change| {
            let effects: Vec<Effect> = change
                .rules
                .iter()
                .map(|r| self.effect(r, facts, true))
                .collect();
            NextChange {
                date: change.date,
                days_away: date.days_until(change.date),
                configuration_still_valid: !effects.iter().any(|e| e.configuration_refused),
                rules: effects,
            }
        });
        RulesReport {
            date,
            policy: self.mode,
            allow_retired_methods: self.allow_retired_methods.clone(),
            in_force: rows
                .into_iter()
                .map(|r| self.effect(r, facts, false))
                .collect(),
            next_change,
        }
    }

    /// What the coordinator warns about on `today`: every change of the next
    /// [`WARN_DAYS_AHEAD`] days that this policy will enforce against this configuration —
    /// a minimum above its default cohort (it will not start) or a retirement (requests for
    /// the method will be refused).
    pub fn upcoming_refusals(&self, today: Date, facts: &ConfigFacts) -> Vec<Upcoming> {
        rules::changes_between(today, today.plus_days(WARN_DAYS_AHEAD))
            .iter()
            .flat_map(|change| change.rules.iter())
            .map(|rule| Upcoming {
                days_left: today.days_until(rule.effective),
                effect: self.effect(rule, facts, true),
            })
            .filter(|u| u.effect.configuration_refused || u.effect.requests_refused)
            .collect()
    }
}

impl fmt::Display for RulesReport {
    /// The text of `mpic config check`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  rules in force on {} (policy: {}):",
            self.date,
            self.policy.as_str()
        )?;
        if self.in_force.is_empty() {
            writeln!(f, "    none yet")?;
        }
        for e in &self.in_force {
            writeln!(
                f,
                "    since {}: {}; {}",
                e.effective_date, e.summary, e.for_this_configuration
            )?;
        }
        match &self.next_change {
            None => writeln!(f, "  no later dated change is known"),
            Some(next) => {
                writeln!(
                    f,
                    "  next change on {} (in {} days):",
                    next.date, next.days_away
                )?;
                for e in &next.rules {
                    writeln!(f, "    {}; {}", e.summary, e.for_this_configuration)?;
                }
                if next.configuration_still_valid {
                    writeln!(f, "  this configuration still works after {}", next.date)
                } else {
                    writeln!(f, "  this configuration will be refused from {}", next.date)
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ValidationMethod as M;

    fn day(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn policy(mode: PolicyMode, allow: &[ValidationMethod]) -> Policy {
        Policy {
            mode,
            allow_retired_methods: allow.to_vec(),
        }
    }

    #[test]
    fn treatment_table() {
        use PolicyMode::*;
        use Treatment::*;
        let ip = Rule::Retires(M::IpAddress);
        let minimum = Rule::MinimumPerspectives(5);
        let cases = [
            (Enforce, &[][..], ip, Refused),
            (Enforce, &[M::IpAddress][..], ip, Excepted),
            (Enforce, &[M::ContactPhoneTxt][..], ip, Refused),
            (Enforce, &[M::IpAddress][..], minimum, Refused),
            (Warn, &[][..], ip, Warned),
            (Warn, &[M::IpAddress][..], ip, Excepted),
            (Warn, &[][..], minimum, Warned),
            (Off, &[][..], ip, Unchecked),
            (Off, &[M::IpAddress][..], ip, Unchecked),
            (Off, &[][..], minimum, Unchecked),
        ];
        for (mode, allow, rule, want) in cases {
            assert_eq!(
                policy(mode, allow).treatment(rule),
                want,
                "{mode:?} {allow:?} {rule:?}"
            );
        }
    }

    #[test]
    fn requests_are_ruled_on() {
        struct Case {
            name: &'static str,
            policy: Policy,
            date: &'static str,
            n: u32,
            method: Option<ValidationMethod>,
            issues: &'static [&'static str],
            warnings: &'static [&'static str],
        }
        let enforce = policy(PolicyMode::Enforce, &[]);
        let cases = [
            Case {
                name: "caa at the minimum",
                policy: enforce.clone(),
                date: "2026-12-15",
                n: 5,
                method: None,
                issues: &[],
                warnings: &[],
            },
            Case {
                name: "caa below the minimum",
                policy: enforce.clone(),
                date: "2026-12-15",
                n: 4,
                method: None,
                issues: &[issue::INVALID_PERSPECTIVE_COUNT],
                warnings: &[],
            },
            Case {
                name: "caa below the minimum, warn",
                policy: policy(PolicyMode::Warn, &[]),
                date: "2026-12-15",
                n: 4,
                method: None,
                issues: &[],
                warnings: &["minimum-perspectives"],
            },
            Case {
                name: "retired method the day before",
                policy: enforce.clone(),
                date: "2027-03-14",
                n: 5,
                method: Some(M::ContactPhoneTxt),
                issues: &[],
                warnings: &[],
            },
            Case {
                name: "retired method on its day",
                policy: enforce.clone(),
                date: "2027-03-15",
                n: 5,
                method: Some(M::ContactPhoneTxt),
                issues: &[issue::RETIRED_VALIDATION_METHOD],
                warnings: &[],
            },
            Case {
                name: "retired method and too few perspectives",
                policy: enforce.clone(),
                date: "2027-03-15",
                n: 3,
                method: Some(M::ReverseAddressLookup),
                issues: &[
                    issue::INVALID_PERSPECTIVE_COUNT,
                    issue::RETIRED_VALIDATION_METHOD,
                ],
                warnings: &[],
            },
            Case {
                name: "retired method, exception",
                policy: policy(PolicyMode::Enforce, &[M::IpAddress]),
                date: "2026-12-04",
                n: 4,
                method: Some(M::IpAddress),
                issues: &[],
                warnings: &["retired-validation-method"],
            },
            Case {
                name: "retired method, warn",
                policy: policy(PolicyMode::Warn, &[]),
                date: "2026-12-04",
                n: 4,
                method: Some(M::IpAddress),
                issues: &[],
                warnings: &["retired-validation-method"],
            },
            Case {
                name: "retired method, off",
                policy: policy(PolicyMode::Off, &[]),
                date: "2028-03-15",
                n: 2,
                method: Some(M::ContactEmailTxt),
                issues: &[],
                warnings: &[],
            },
            Case {
                name: "method never retired",
                policy: enforce.clone(),
                date: "2099-01-01",
                n: 5,
                method: Some(M::AcmeDns01),
                issues: &[],
                warnings: &[],
            },
        ];
        for c in cases {
            let r = c
                .policy
                .rule_on_request(&rules::in_force(day(c.date)), c.n, true, c.method);
            let issues: Vec<&str> = r.issues.iter().map(|i| i.issue_type.as_str()).collect();
            let warnings: Vec<&str> = r.warnings.iter().map(|w| w.warning_type.as_str()).collect();
            assert_eq!(issues, c.issues, "{}", c.name);
            assert_eq!(warnings, c.warnings, "{}", c.name);
        }
    }

    #[test]
    fn a_refusal_names_the_field_the_section_and_the_date() {
        let r = policy(PolicyMode::Enforce, &[]).rule_on_request(
            &rules::in_force(day("2026-12-04")),
            4,
            true,
            Some(M::IpAddress),
        );
        assert_eq!(
            r.issues[0].message,
            "field `dcv_check_parameters.validation_method`: ip-address (BR 3.2.2.4.8) may not be relied on since 2026-03-15 (BR 1.2.2)"
        );
        let r = policy(PolicyMode::Warn, &[]).rule_on_request(
            &rules::in_force(day("2026-12-15")),
            4,
            false,
            None,
        );
        let w = &r.warnings[0];
        assert_eq!(
            (w.br_section.as_str(), w.effective_date.as_str()),
            ("3.2.2.9", "2026-12-15")
        );
        assert!(
            w.message.contains("4 (the configured default) is below"),
            "{}",
            w.message
        );
    }

    /// The pure decision behind the daily warning: what changes of the next 30 days will
    /// this configuration be refused by, or have requests refused by.
    #[test]
    fn what_to_warn_about() {
        struct Case {
            name: &'static str,
            today: &'static str,
            policy: Policy,
            default: u32,
            want: &'static [(i64, &'static str)],
        }
        let cases = [
            Case {
                name: "the minimum rises above the default in 11 days",
                today: "2026-12-04",
                policy: policy(PolicyMode::Enforce, &[]),
                default: 4,
                want: &[(11, "minimum-perspectives")],
            },
            Case {
                name: "30 days before",
                today: "2026-11-15",
                policy: policy(PolicyMode::Enforce, &[]),
                default: 4,
                want: &[(30, "minimum-perspectives")],
            },
            Case {
                name: "31 days before: not yet",
                today: "2026-11-14",
                policy: policy(PolicyMode::Enforce, &[]),
                default: 4,
                want: &[],
            },
            Case {
                name: "the day before",
                today: "2026-12-14",
                policy: policy(PolicyMode::Enforce, &[]),
                default: 4,
                want: &[(1, "minimum-perspectives")],
            },
            Case {
                name: "on the day it is in force, not upcoming",
                today: "2026-12-15",
                policy: policy(PolicyMode::Enforce, &[]),
                default: 4,
                want: &[],
            },
            Case {
                name: "the default meets the new minimum",
                today: "2026-12-04",
                policy: policy(PolicyMode::Enforce, &[]),
                default: 6,
                want: &[],
            },
            Case {
                name: "warn mode: nothing will be refused",
                today: "2026-12-04",
                policy: policy(PolicyMode::Warn, &[]),
                default: 4,
                want: &[],
            },
            Case {
                name: "off",
                today: "2026-12-04",
                policy: policy(PolicyMode::Off, &[]),
                default: 2,
                want: &[],
            },
            Case {
                name: "three retirements in 20 days",
                today: "2027-02-23",
                policy: policy(PolicyMode::Enforce, &[]),
                default: 6,
                want: &[
                    (20, "retired-validation-method"),
                    (20, "retired-validation-method"),
                    (20, "retired-validation-method"),
                ],
            },
            Case {
                name: "retirements with one exception",
                today: "2027-02-23",
                policy: policy(PolicyMode::Enforce, &[M::ContactPhoneTxt]),
                default: 6,
                want: &[
                    (20, "retired-validation-method"),
                    (20, "retired-validation-method"),
                ],
            },
        ];
        for c in cases {
            let facts = ConfigFacts {
                default_perspective_count: c.default,
                catalogue_size: 8,
            };
            let got: Vec<(i64, &str)> = c
                .policy
                .upcoming_refusals(day(c.today), &facts)
                .iter()
                .map(|u| (u.days_left, u.effect.rule))
                .collect();
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn the_report_of_a_configuration_that_breaks_on_the_next_change() {
        let facts = ConfigFacts {
            default_perspective_count: 4,
            catalogue_size: 4,
        };
        let report = policy(PolicyMode::Enforce, &[]).report(day("2026-12-04"), &facts);
        assert_eq!(report.in_force.len(), 2, "{report:?}");
        let next = report.next_change.clone().unwrap();
        assert_eq!((next.date, next.days_away), (day("2026-12-15"), 11));
        assert!(!next.configuration_still_valid);
        let text = report.to_string();
        assert!(
            text.contains("next change on 2026-12-15 (in 11 days):\n    the minimum becomes 5 remote perspectives per cohort (BR 3.2.2.9); your default cohort of 4 will be refused: the coordinator will not start with it"),
            "{text}"
        );
        assert!(
            text.contains("the catalogue has 4 perspectives: add some"),
            "{text}"
        );
        assert!(
            text.contains(
                "since 2026-03-15: ip-address retired (BR 3.2.2.4.8); requests for it are refused"
            ),
            "{text}"
        );
        assert!(
            text.contains("this configuration will be refused from 2026-12-15"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["next_change"]["configuration_still_valid"], false);
        assert_eq!(json["next_change"]["rules"][0]["treatment"], "refused");
        assert_eq!(json["in_force"][0]["effective_date"], "2026-03-15");
        assert_eq!(json["in_force"][1]["rule"], "minimum-perspectives");
        assert_eq!(json["date"], "2026-12-04");
    }
}
