//! The CAA tree climb of RFC 8659 section 3 (BR 3.2.2.8), shared by the CAA check and the
//! contact-CAA methods (BR 3.2.2.4.13 / .17, which find `contactemail` / `contactphone` "using
//! the search algorithm defined in RFC 8659 Section 3").
//!
//! What it proves: the returned RRset is the closest one at or above the first name, every level
//! below it answered "no CAA" (NOERROR without CAA, or NXDOMAIN below a TLD), and none of those
//! levels failed. Every level is queried **in parallel** (requirements.md "CAA"); the resolver
//! follows CNAMEs for each query and the CNAME target's parents are never consulted. A failed
//! level is retried once; a failure that remains at or below the relevant level decides the
//! climb, a failure above it is never consulted.

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use crate::resolver::{DnsAnswer, DnsClient, LookupFailure};

use super::policy::CaaRecord;

/// Where the climb stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Relevant {
    /// The closest level with a CAA RRset, or the first name when no level has one; no
    /// trailing dot.
    pub found_at: String,
    /// The resolver's answer at `found_at`; its CAA records are empty when no level has any.
    pub answer: DnsAnswer,
}

/// The outcome of a climb.
#[derive(Debug, Clone, PartialEq)]
pub struct Climb {
    /// The relevant RRset, or the failure that decides.
    pub outcome: Result<Relevant, LookupFailure>,
    /// Whether a failed level was retried.
    pub retried: bool,
}

/// Climbs from `names[0]` through each following name (closest first, as
/// [`self_and_ancestors`] lists them) and returns, as soon as the closest levels decide it,
/// the closest level with any CAA RRset or the failure that decides.
pub async fn climb(dns: &DnsClient, names: &[&str]) -> Climb {
    let Some(first) = names.first() else {
        return Climb {
            outcome: Err(no_level_answered("(no name)")),
            retried: false,
        };
    };
    let mut levels: Vec<Option<Level>> = vec![None; names.len()];
    let mut retried = vec![false; names.len()];
    let query = |i: usize| {
        let name = names[i];
        async move { (i, query_level(dns, name).await) }
    };
    let mut pending: FuturesUnordered<_> = (0..names.len()).map(query).collect();
    loop {
        // Closest level first: the first level that is not empty decides, once every level
        // below it has answered. Higher levels still in flight are then dropped.
        let decided = levels
            .iter()
            .position(|l| !matches!(l, Some(Level::Empty(_))));
        let any_retry = retried.contains(&true);
        match decided.map(|i| (i, &levels[i])) {
            Some((_, None)) => {}
            Some((i, Some(Level::Failed(_)))) if !retried[i] => {
                retried[i] = true;
                levels[i] = None;
                pending.push(query(i));
            }
            Some((_, Some(Level::Failed(failure)))) => {
                return Climb {
                    outcome: Err(failure.clone()),
                    retried: true,
                };
            }
            Some((i, Some(Level::Found(answer)))) => {
                return Climb {
                    outcome: Ok(Relevant {
                        found_at: names[i].to_owned(),
                        answer: answer.clone(),
                    }),
                    retried: any_retry,
                };
            }
            Some((_, Some(Level::Empty(_)))) | None => {
                // No level has CAA: report the first name's answer.
                let outcome = match levels.first() {
                    Some(Some(Level::Empty(answer))) => Ok(Relevant {
                        found_at: (*first).to_owned(),
                        answer: answer.clone(),
                    }),
                    _ => Err(no_level_answered(first)),
                };
                return Climb {
                    outcome,
                    retried: any_retry,
                };
            }
        }
        match pending.next().await {
            Some((i, level)) => levels[i] = Some(level),
            // Unreachable by construction (an undecided level is always in flight), but if it
            // ever happened the check must fail, not hang or pass.
            None => {
                return Climb {
                    outcome: Err(no_level_answered(first)),
                    retried: any_retry,
                };
            }
        }
    }
}

/// The CAA records of an answer.
pub fn caa_records(answer: &DnsAnswer) -> Vec<CaaRecord> {
    answer
        .records
        .iter()
        .filter_map(|r| match &r.data {
            RData::CAA(caa) => Some(CaaRecord {
                flags: caa.flags(),
                tag: caa.tag.clone(),
                value: caa.value.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// `name` and each parent down to (excluding) the root, closest first:
/// `a.example.com` gives `["a.example.com", "example.com", "com"]`.
pub fn self_and_ancestors(name: &str) -> Vec<&str> {
    let mut names = vec![name];
    names.extend(
        name.match_indices('.')
            .filter_map(|(dot, _)| name.get(dot + 1..))
            .filter(|parent| !parent.is_empty()),
    );
    names
}

/// The outcome of querying one level of the tree.
#[derive(Debug, Clone, PartialEq)]
enum Level {
    /// NOERROR with no CAA, or NXDOMAIN below a TLD.
    Empty(DnsAnswer),
    /// An answer with a CAA RRset.
    Found(DnsAnswer),
    /// No usable answer.
    Failed(LookupFailure),
}

async fn query_level(dns: &DnsClient, name: &str) -> Level {
    let is_tld = !name.contains('.');
    match dns.lookup(name, RecordType::CAA).await {
        Err(failure) => Level::Failed(failure),
        // RFC 8659 3: a name that does not exist has no CAA; its parents are consulted. A TLD
        // that does not exist is not a place anyone can hold a certificate for.
        Ok(answer) if answer.rcode == ResponseCode::NXDomain && is_tld => {
            Level::Failed(LookupFailure::bad_rcode(name, RecordType::CAA, answer))
        }
        Ok(answer)
            if answer
                .records
                .iter()
                .any(|r| matches!(r.data, RData::CAA(_))) =>
        {
            Level::Found(answer)
        }
        Ok(answer) => Level::Empty(answer),
    }
}

fn no_level_answered(name: &str) -> LookupFailure {
    LookupFailure {
        name: name.to_owned(),
        dnssec: false,
        malformed: false,
        message: "CAA lookup ended without an answer for every level".to_owned(),
        answer: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_table() {
        struct Case {
            name: &'static str,
            input: &'static str,
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "three labels",
                input: "a.example.com",
                want: &["a.example.com", "example.com", "com"],
            },
            Case {
                name: "prefixed",
                input: "_p.example.com",
                want: &["_p.example.com", "example.com", "com"],
            },
            Case {
                name: "single label",
                input: "com",
                want: &["com"],
            },
            Case {
                name: "trailing dot adds no empty root level",
                input: "example.com.",
                want: &["example.com.", "com."],
            },
        ];
        for c in cases {
            assert_eq!(self_and_ancestors(c.input), c.want, "case {:?}", c.name);
        }
    }
}
