//! The BR quorum rules (BR 3.2.2.9) as pure functions: the default quorum, request
//! validation of the orchestration parameters, the verdict of an attempt and the early
//! decision.

use std::collections::BTreeSet;

use mpic_common::api::{OrchestrationParameters, ValidationIssue};
use mpic_common::config::Rir;
use mpic_common::validate::{issue, issue_at};

use crate::policy::PolicyMode;

/// The quorum the BR table allows for a cohort of `n` remote perspectives:
///
/// | perspectives used | non-corroborations allowed | quorum |
/// |---|---|---|
/// | 2–5 | 1 | n − 1 |
/// | 6 or more | 2 | n − 2 |
pub fn default_quorum(n: u32) -> u32 {
    if n <= 5 { n.saturating_sub(1) } else { n - 2 }
}

/// What one request will use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Cohort size n.
    pub perspective_count: u32,
    /// Passes required.
    pub quorum_count: u32,
    /// Attempts allowed (≥ 1).
    pub max_attempts: u32,
    /// The only cohort to try (1-based), if the request named one.
    pub cohort_for_single_attempt: Option<u32>,
    /// The cohort is smaller than today's BR minimum, which the policy allows (`warn`, `off`):
    /// counted per request (`mpic_requests_below_br_minimum_total`); the warning is logged once,
    /// at start ([`Bounds::below_minimum_notice`]), not per request.
    pub below_br_minimum: bool,
}

/// Limits from the configuration that bound a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Perspectives in the catalogue.
    pub catalogue_size: u32,
    /// n when the request gives none.
    pub default_perspective_count: u32,
    /// The absolute maximum of attempts.
    pub max_attempts: u32,
    /// Today's BR minimum of remote perspectives.
    pub br_minimum: u32,
    /// How the minimum is applied.
    pub policy: PolicyMode,
}

impl Bounds {
    /// The warning to log once when the configuration is loaded (and again whenever it
    /// changes), when its default cohort is below today's BR minimum and the policy lets such
    /// requests through; requests below the minimum are then only counted, not logged one by
    /// one (under `warn` in a lab, that was half of the log).
    pub fn below_minimum_notice(&self) -> Option<String> {
        let n = self.default_perspective_count;
        (n < self.br_minimum && self.policy == PolicyMode::Warn).then(|| {
            format!(
                "policy: warn: default_perspective_count {n} is below today's BR 3.2.2.9 minimum of {} remote perspectives; such requests are served and counted in mpic_requests_below_br_minimum_total",
                self.br_minimum
            )
        })
    }
}

/// Validates `orchestration_parameters` (api.md section 1). `quorum_count` is checked whether
/// or not `perspective_count` is sent (the reference checks it only when both are sent, which
/// lets a quorum of 1 through).
pub fn plan(
    params: Option<&OrchestrationParameters>,
    bounds: &Bounds,
) -> Result<Plan, Vec<ValidationIssue>> {
    let default = OrchestrationParameters::default();
    let p = params.unwrap_or(&default);
    let mut issues = Vec::new();
    let n = match p.perspective_count {
        None => bounds.default_perspective_count,
        Some(n) if n < 2 || n > i64::from(bounds.catalogue_size) => {
            issues.push(issue_at(
                issue::INVALID_PERSPECTIVE_COUNT,
                format!(
                    "field `orchestration_parameters.perspective_count`: {n} is outside 2..={} (the perspectives configured)",
                    bounds.catalogue_size
                ),
            ));
            bounds.default_perspective_count
        }
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
    };
    let below_br_minimum = issues.is_empty() && n < bounds.br_minimum;
    if below_br_minimum && bounds.policy == PolicyMode::Enforce {
        issues.push(issue_at(
            issue::INVALID_PERSPECTIVE_COUNT,
            format!(
                "field `orchestration_parameters.perspective_count`: {n} is below today's BR 3.2.2.9 minimum of {} remote perspectives",
                bounds.br_minimum
            ),
        ));
    }
    let floor = default_quorum(n);
    let q = match p.quorum_count {
        None => floor,
        Some(q) if q < i64::from(floor) || q > i64::from(n) => {
            issues.push(issue_at(
                issue::INVALID_QUORUM_COUNT,
                format!(
                    "field `orchestration_parameters.quorum_count`: {q} is outside {floor}..={n} (the BR allows at most {} non-corroborations among {n} perspectives)",
                    n - floor
                ),
            ));
            floor
        }
        Some(q) => u32::try_from(q).unwrap_or(u32::MAX),
    };
    let attempts = match p.max_attempts {
        None => 1,
        Some(a) if a <= 0 => 1,
        Some(a) => u32::try_from(a)
            .unwrap_or(u32::MAX)
            .min(bounds.max_attempts),
    };
    let single = match p.cohort_for_single_attempt {
        None => None,
        Some(i) if i < 1 => {
            issues.push(issue_at(
                issue::INVALID_COHORT_INDEX,
                format!("field `orchestration_parameters.cohort_for_single_attempt`: {i} is not a 1-based cohort number"),
            ));
            None
        }
        Some(i) => Some(u32::try_from(i).unwrap_or(u32::MAX)),
    };
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(Plan {
        perspective_count: n,
        quorum_count: q,
        max_attempts: if single.is_some() { 1 } else { attempts },
        cohort_for_single_attempt: single,
        below_br_minimum,
    })
}

/// One perspective's contribution to the tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    /// Its RIR.
    pub rir: Rir,
    /// It answered and completed.
    pub completed: bool,
    /// It corroborated (completed and passed).
    pub passed: bool,
}

/// What an attempt's votes decide (api.md sections 1 and 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `is_valid`: see [`verdict`].
    pub is_valid: bool,
    /// `mpic_completed`: see [`completed`].
    pub mpic_completed: bool,
    /// `quorum_result`: see [`quorum_result`].
    pub quorum_result: String,
}

/// The verdict of an attempt over a cohort of `n` with `quorum`, from its `votes`; a
/// perspective without a vote counts as not completed.
pub fn decide(n: u32, quorum: u32, votes: &[Vote]) -> Verdict {
    Verdict {
        is_valid: verdict(n, quorum, votes),
        mpic_completed: completed(n, quorum, votes),
        quorum_result: quorum_result(n, votes),
    }
}

/// api.md section 3: valid when passes ≥ quorum and, for cohorts over two, the passing
/// perspectives span at least two RIRs (BR 3.2.2.9, from 2026-03-15).
pub fn verdict(n: u32, quorum: u32, votes: &[Vote]) -> bool {
    let passing: Vec<&Vote> = votes.iter().filter(|o| o.passed && o.completed).collect();
    let rirs: BTreeSet<Rir> = passing.iter().map(|o| o.rir).collect();
    count(passing.len()) >= quorum && (n <= 2 || rirs.len() >= 2)
}

/// `mpic_completed`: perspectives that did not complete are at most n − quorum.
pub fn completed(n: u32, quorum: u32, votes: &[Vote]) -> bool {
    let not_completed =
        count(votes.iter().filter(|o| !o.completed).count()) + n.saturating_sub(count(votes.len()));
    not_completed <= n.saturating_sub(quorum)
}

/// `quorum_result`: `"passed/attempted"` (BR 5.4.1 log form).
pub fn quorum_result(n: u32, votes: &[Vote]) -> String {
    let passed = votes.iter().filter(|o| o.passed && o.completed).count();
    format!("{passed}/{n}")
}

/// Whether the verdict is settled given the answers so far and the RIRs of the perspectives
/// still pending: `Some(verdict)` if no pending answer can change it.
pub fn settled(n: u32, quorum: u32, answered: &[Vote], pending: &[Rir]) -> Option<bool> {
    if verdict(n, quorum, answered) {
        // More passes cannot make it invalid.
        return Some(true);
    }
    let passed: Vec<Rir> = answered
        .iter()
        .filter(|o| o.passed && o.completed)
        .map(|o| o.rir)
        .collect();
    let best_passes = count(passed.len() + pending.len());
    let best_rirs: BTreeSet<Rir> = passed.iter().chain(pending).copied().collect();
    if best_passes < quorum || (n > 2 && best_rirs.len() < 2) {
        return Some(false);
    }
    None
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn br_quorum_table() {
        // BR 3.2.2.9: 2–5 perspectives used: 1 non-corroboration allowed; 6+: 2.
        for (n, want) in [
            (2, 1),
            (3, 2),
            (4, 3),
            (5, 4),
            (6, 4),
            (7, 5),
            (10, 8),
            (20, 18),
        ] {
            assert_eq!(default_quorum(n), want, "n={n}");
        }
    }

    fn bounds() -> Bounds {
        Bounds {
            catalogue_size: 8,
            default_perspective_count: 6,
            max_attempts: 3,
            br_minimum: 4,
            policy: PolicyMode::Enforce,
        }
    }

    fn params(n: Option<i64>, q: Option<i64>) -> OrchestrationParameters {
        OrchestrationParameters {
            perspective_count: n,
            quorum_count: q,
            max_attempts: None,
            cohort_for_single_attempt: None,
        }
    }

    #[test]
    fn request_validation_table() {
        struct Case {
            name: &'static str,
            n: Option<i64>,
            q: Option<i64>,
            want: Result<(u32, u32), &'static str>,
        }
        let cases = [
            Case {
                name: "defaults",
                n: None,
                q: None,
                want: Ok((6, 4)),
            },
            Case {
                name: "n only",
                n: Some(5),
                q: None,
                want: Ok((5, 4)),
            },
            Case {
                name: "n at the catalogue size",
                n: Some(8),
                q: None,
                want: Ok((8, 6)),
            },
            Case {
                name: "q at floor",
                n: Some(6),
                q: Some(4),
                want: Ok((6, 4)),
            },
            Case {
                name: "q at n",
                n: Some(6),
                q: Some(6),
                want: Ok((6, 6)),
            },
            Case {
                name: "q without n, valid",
                n: None,
                q: Some(5),
                want: Ok((6, 5)),
            },
            Case {
                name: "n = 1",
                n: Some(1),
                q: None,
                want: Err(issue::INVALID_PERSPECTIVE_COUNT),
            },
            Case {
                name: "n = 0",
                n: Some(0),
                q: None,
                want: Err(issue::INVALID_PERSPECTIVE_COUNT),
            },
            Case {
                name: "n negative",
                n: Some(-3),
                q: None,
                want: Err(issue::INVALID_PERSPECTIVE_COUNT),
            },
            Case {
                name: "n over the catalogue",
                n: Some(9),
                q: None,
                want: Err(issue::INVALID_PERSPECTIVE_COUNT),
            },
            Case {
                name: "n below the BR minimum",
                n: Some(3),
                q: None,
                want: Err(issue::INVALID_PERSPECTIVE_COUNT),
            },
            Case {
                name: "q below floor",
                n: Some(6),
                q: Some(3),
                want: Err(issue::INVALID_QUORUM_COUNT),
            },
            Case {
                name: "q over n",
                n: Some(6),
                q: Some(7),
                want: Err(issue::INVALID_QUORUM_COUNT),
            },
            Case {
                name: "quorum 1 without perspective_count",
                n: None,
                q: Some(1),
                want: Err(issue::INVALID_QUORUM_COUNT),
            },
            Case {
                name: "quorum 0 (monitoring) without n",
                n: None,
                q: Some(0),
                want: Err(issue::INVALID_QUORUM_COUNT),
            },
            Case {
                name: "quorum 0 with n",
                n: Some(4),
                q: Some(0),
                want: Err(issue::INVALID_QUORUM_COUNT),
            },
            Case {
                name: "q negative",
                n: Some(4),
                q: Some(-1),
                want: Err(issue::INVALID_QUORUM_COUNT),
            },
            Case {
                name: "n = 4, q = 2",
                n: Some(4),
                q: Some(2),
                want: Err(issue::INVALID_QUORUM_COUNT),
            },
        ];
        for c in cases {
            let got = plan(Some(&params(c.n, c.q)), &bounds())
                .map(|p| (p.perspective_count, p.quorum_count))
                .map_err(|issues| {
                    assert_eq!(issues.len(), 1, "{}: {issues:?}", c.name);
                    assert!(
                        issues[0].message.contains("orchestration_parameters."),
                        "{}",
                        c.name
                    );
                    issues[0].issue_type.clone()
                });
            assert_eq!(got, c.want.map_err(str::to_owned), "{}", c.name);
        }
    }

    #[test]
    fn below_minimum_is_allowed_outside_enforce_mode() {
        for policy in [PolicyMode::Warn, PolicyMode::Off] {
            let b = Bounds { policy, ..bounds() };
            let p = plan(Some(&params(Some(2), None)), &b).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!((p.perspective_count, p.quorum_count), (2, 1));
            assert!(p.below_br_minimum, "{policy:?}");
        }
        let p = plan(Some(&params(Some(4), None)), &bounds()).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!p.below_br_minimum);
    }

    /// Under `warn`, a default cohort below the minimum is said once, when the configuration
    /// is loaded; under `enforce` such a configuration is refused, under `off` nothing is said.
    #[test]
    fn the_below_minimum_notice_is_for_warn_only() {
        let below = Bounds {
            default_perspective_count: 2,
            ..bounds()
        };
        let cases = [
            (PolicyMode::Warn, below, true),
            (PolicyMode::Off, below, false),
            (PolicyMode::Warn, bounds(), false),
        ];
        for (policy, b, want) in cases {
            let notice = Bounds { policy, ..b }.below_minimum_notice();
            assert_eq!(notice.is_some(), want, "{policy:?}: {notice:?}");
        }
    }

    #[test]
    fn attempts_and_single_cohort() {
        let mut p = params(None, None);
        for (given, want) in [
            (None, 1),
            (Some(-1), 1),
            (Some(0), 1),
            (Some(2), 2),
            (Some(99), 3),
        ] {
            p.max_attempts = given;
            assert_eq!(
                plan(Some(&p), &bounds()).map(|x| x.max_attempts),
                Ok(3.min(want)),
                "{given:?}"
            );
        }
        p.max_attempts = Some(3);
        p.cohort_for_single_attempt = Some(2);
        let got = plan(Some(&p), &bounds()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (got.max_attempts, got.cohort_for_single_attempt),
            (1, Some(2))
        );
        p.cohort_for_single_attempt = Some(0);
        let err = plan(Some(&p), &bounds()).unwrap_err();
        assert_eq!(err[0].issue_type, issue::INVALID_COHORT_INDEX);
    }

    fn o(rir: Rir, completed: bool, passed: bool) -> Vote {
        Vote {
            rir,
            completed,
            passed,
        }
    }

    #[test]
    fn verdicts() {
        use Rir::*;
        let pass = |r| o(r, true, true);
        let fail = |r| o(r, true, false);
        let lost = |r| o(r, false, false);
        struct Case {
            name: &'static str,
            n: u32,
            q: u32,
            votes: Vec<Vote>,
            valid: bool,
            completed: bool,
            result: &'static str,
        }
        let cases = [
            Case {
                name: "6/6",
                n: 6,
                q: 4,
                votes: vec![
                    pass(Arin),
                    pass(Arin),
                    pass(RipeNcc),
                    pass(Apnic),
                    pass(Lacnic),
                    pass(Afrinic),
                ],
                valid: true,
                completed: true,
                result: "6/6",
            },
            Case {
                name: "4/6 with two lost",
                n: 6,
                q: 4,
                votes: vec![
                    pass(Arin),
                    pass(RipeNcc),
                    pass(Apnic),
                    pass(Arin),
                    lost(Lacnic),
                    lost(Afrinic),
                ],
                valid: true,
                completed: true,
                result: "4/6",
            },
            Case {
                name: "3/6",
                n: 6,
                q: 4,
                votes: vec![
                    pass(Arin),
                    pass(RipeNcc),
                    pass(Apnic),
                    fail(Arin),
                    fail(Lacnic),
                    fail(Afrinic),
                ],
                valid: false,
                completed: true,
                result: "3/6",
            },
            Case {
                name: "3 lost of 6",
                n: 6,
                q: 4,
                votes: vec![
                    pass(Arin),
                    pass(RipeNcc),
                    pass(Apnic),
                    lost(Arin),
                    lost(Lacnic),
                    lost(Afrinic),
                ],
                valid: false,
                completed: false,
                result: "3/6",
            },
            Case {
                name: "quorum from one RIR",
                n: 4,
                q: 3,
                votes: vec![pass(Arin), pass(Arin), pass(Arin), fail(RipeNcc)],
                valid: false,
                completed: true,
                result: "3/4",
            },
            Case {
                name: "cohort of two, one RIR",
                n: 2,
                q: 1,
                votes: vec![pass(Arin), fail(Arin)],
                valid: true,
                completed: true,
                result: "1/2",
            },
            Case {
                name: "passed but not completed never counts",
                n: 2,
                q: 1,
                votes: vec![o(Arin, false, true), fail(RipeNcc)],
                valid: false,
                completed: true,
                result: "0/2",
            },
            Case {
                name: "missing answers count as not completed",
                n: 6,
                q: 4,
                votes: vec![pass(Arin), pass(RipeNcc), pass(Apnic)],
                valid: false,
                completed: false,
                result: "3/6",
            },
        ];
        for c in cases {
            let got = decide(c.n, c.q, &c.votes);
            assert_eq!(got.is_valid, c.valid, "{}", c.name);
            assert_eq!(got.mpic_completed, c.completed, "{}", c.name);
            assert_eq!(got.quorum_result, c.result, "{}", c.name);
        }
    }

    #[test]
    fn early_decision() {
        use Rir::*;
        let pass = |r| o(r, true, true);
        let fail = |r| o(r, true, false);
        // Valid as soon as quorum and RIR spread are reached.
        assert_eq!(
            settled(
                6,
                4,
                &[pass(Arin), pass(RipeNcc), pass(Arin), pass(Apnic)],
                &[Lacnic, Afrinic]
            ),
            Some(true)
        );
        // Three failures of six with quorum 4: cannot reach 4.
        assert_eq!(
            settled(
                6,
                4,
                &[fail(Arin), fail(RipeNcc), fail(Apnic)],
                &[Arin, Lacnic, Afrinic]
            ),
            Some(false)
        );
        // Still open.
        assert_eq!(
            settled(
                6,
                4,
                &[pass(Arin), fail(RipeNcc)],
                &[Arin, Apnic, Lacnic, Afrinic]
            ),
            None
        );
        // Enough passes possible, but every possible pass is in one RIR.
        assert_eq!(
            settled(4, 3, &[pass(Arin), pass(Arin), fail(RipeNcc)], &[Arin]),
            Some(false)
        );
        // Quorum reached in one RIR, a second RIR still pending: open.
        assert_eq!(
            settled(4, 3, &[pass(Arin), pass(Arin), pass(Arin)], &[Apnic]),
            None
        );
    }
}
