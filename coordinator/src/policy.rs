//! How the coordinator applies the dated rules of [`crate::rules`] (`policy` and `rules` in its
//! configuration): to its configuration at start and to each request.
//!
//! | `policy` | below the minimum of perspectives | a retired method | a retired method in `rules.allow_retired_methods` |
//! |---|---|---|---|
//! | `enforce` | configuration refused, request 400 `invalid-perspective-count` | 400 `retired-validation-method` | served with a warning |
//! | `warn` | served with a warning | served with a warning | served with a warning |
//! | `off` | served (the reference's behaviour) | served | served |
//!
//! A warning is an item of the response's `warnings` (an extension) and a count of
//! `mpic_rule_warnings_total{rule,method}`.

use mpic_common::api::{RuleWarning, ValidationIssue, ValidationMethod};
use mpic_common::validate::{issue, issue_at};
use serde::{Deserialize, Serialize};

use crate::rules::{DatedRule, InForce, Rule};

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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rules::{self, Date};
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
}
