//! The CAA check (BR 3.2.2.8, RFC 8659): find the relevant RRset by climbing the tree, then
//! evaluate it with [`policy::evaluate`].
//!
//! - Every level from the name up to (excluding) the root is queried **in parallel**; the
//!   closest non-empty RRset is relevant. The resolver follows CNAMEs for each query; the CNAME
//!   target's parents are never consulted (RFC 8659 3).
//! - NXDOMAIN below a TLD is "no records"; SERVFAIL, REFUSED, other rcodes, timeouts and
//!   DNSSEC-bogus answers are failures, and a failure at or below the relevant level fails the
//!   check closed.
//! - A failed level is retried once. A failure that remains may count as permission only when
//!   the request allows it, the retry happened, and the zone is provably DNSSEC-insecure
//!   (RFC 4035 4.3); the details report each condition.

pub mod issuer_value;
pub mod policy;

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use mpic_common::api::{
    CaaDetails, CheckDetails, CheckResponse, CheckType, LookupFailureReport, MpicError, error_type,
};
use mpic_common::target::{DomainTarget, Target};
use mpic_common::validate::CaaParams;

use crate::dns::{DnsAnswer, DnsClient, DnsError};
use policy::{CaaReason, CaaRecord, CaaRequest};

/// Runs CAA checks through one perspective's resolver.
#[derive(Debug, Clone)]
pub struct CaaChecker {
    dns: DnsClient,
    default_issuers: Vec<String>,
}

/// The outcome of querying one level of the tree.
#[derive(Debug, Clone, PartialEq)]
enum Level {
    /// NOERROR with no CAA, or NXDOMAIN below a TLD.
    Empty { authentic_data: bool },
    /// A CAA RRset.
    Found {
        records: Vec<CaaRecord>,
        authentic_data: bool,
    },
    /// No usable answer.
    Failed(LookupFailure),
}

/// Why a level could not be read.
#[derive(Debug, Clone, PartialEq)]
struct LookupFailure {
    name: String,
    dnssec: bool,
    message: String,
}

/// Reason codes of lookup outcomes (the evaluation reasons are [`CaaReason::code`]).
const REASON_LOOKUP_FAILED: &str = "lookup-failed";
const REASON_LOOKUP_FAILURE_ALLOWED: &str = "lookup-failure-allowed";
const REASON_IP_TARGET: &str = "ip-address-target";

impl CaaChecker {
    /// A checker resolving through `dns`; `default_issuers` (lowercase) apply when a request
    /// names no `caa_domains`.
    pub fn new(dns: DnsClient, default_issuers: Vec<String>) -> CaaChecker {
        CaaChecker {
            dns,
            default_issuers,
        }
    }

    /// Runs the check. Never fails: problems are a failed [`CheckResponse`].
    pub async fn check(&self, target: &Target, params: &CaaParams) -> CheckResponse {
        let domain = match target {
            Target::Domain(d) => d,
            // CAA governs domain names only (RFC 8659 1, BR 3.2.2.8 "dNSName").
            Target::Ip(_) => {
                return response(
                    true,
                    true,
                    None,
                    CaaDetails {
                        caa_record_present: Some(false),
                        reason: Some(REASON_IP_TARGET.to_owned()),
                        ..CaaDetails::default()
                    },
                );
            }
        };
        let issuers = if params.caa_domains.is_empty() {
            &self.default_issuers
        } else {
            &params.caa_domains
        };
        let (found, retried) = self.relevant_rrset(domain).await;
        match found {
            Ok((found_at, records, authentic_data)) => {
                let request = CaaRequest {
                    wildcard: domain.is_wildcard(),
                    certificate_type: params.certificate_type,
                    issuer_domains: issuers,
                    account_uri: params.account_uri.as_deref(),
                    validation_method: params.validation_method.as_deref(),
                };
                let reason = if issuers.is_empty() && !records.is_empty() {
                    // No issuer identity configured or given: nothing can be authorised.
                    CaaReason::IssuerNotListed
                } else {
                    policy::evaluate(&records, &request)
                };
                let present = !records.is_empty();
                response(
                    true,
                    reason.permits(),
                    None,
                    CaaDetails {
                        caa_record_present: Some(present),
                        found_at: present.then_some(found_at),
                        records_seen: Some(records.iter().map(CaaRecord::presentation).collect()),
                        ad_flag: Some(authentic_data),
                        reason: Some(reason.code().to_owned()),
                        lookup_failure: None,
                    },
                )
            }
            Err(failure) => self.failed(failure, retried, params).await,
        }
    }

    /// Queries every level in parallel and returns, as soon as the closest levels decide it,
    /// the closest non-empty RRset (`found_at`, records, AD) or the failure that decides the
    /// check; a failed level is retried once. The boolean says whether a retry was made.
    async fn relevant_rrset(
        &self,
        domain: &DomainTarget,
    ) -> (Result<(String, Vec<CaaRecord>, bool), LookupFailure>, bool) {
        let names = domain.self_and_ancestors();
        let mut levels: Vec<Option<Level>> = vec![None; names.len()];
        let mut retried = vec![false; names.len()];
        let query = |i: usize| {
            let name = names[i];
            async move { (i, self.query_level(name).await) }
        };
        let mut pending: FuturesUnordered<_> = (0..names.len()).map(query).collect();
        loop {
            // Closest level first: the first level that is not empty decides, once every level
            // below it has answered. Higher levels still in flight are then dropped.
            let decided = levels
                .iter()
                .position(|l| !matches!(l, Some(Level::Empty { .. })));
            match decided.map(|i| (i, &levels[i])) {
                Some((_, None)) => {}
                Some((i, Some(Level::Failed(_)))) if !retried[i] => {
                    retried[i] = true;
                    levels[i] = None;
                    pending.push(query(i));
                }
                Some((_, Some(Level::Failed(failure)))) => return (Err(failure.clone()), true),
                Some((
                    i,
                    Some(Level::Found {
                        records,
                        authentic_data,
                    }),
                )) => {
                    return (
                        Ok((names[i].to_owned(), records.clone(), *authentic_data)),
                        retried.contains(&true),
                    );
                }
                Some((_, Some(Level::Empty { .. }))) | None => {
                    let ad = matches!(
                        levels.first(),
                        Some(Some(Level::Empty {
                            authentic_data: true
                        }))
                    );
                    return (
                        Ok((names[0].to_owned(), Vec::new(), ad)),
                        retried.contains(&true),
                    );
                }
            }
            match pending.next().await {
                Some((i, level)) => levels[i] = Some(level),
                // Unreachable by construction (an undecided level is always in flight), but
                // if it ever happened the check must fail, not hang or pass.
                None => {
                    return (
                        Err(LookupFailure {
                            name: names[0].to_owned(),
                            dnssec: false,
                            message: "CAA lookup ended without an answer for every level"
                                .to_owned(),
                        }),
                        retried.contains(&true),
                    );
                }
            }
        }
    }

    async fn query_level(&self, name: &str) -> Level {
        let is_tld = !name.contains('.');
        classify(name, is_tld, self.dns.query(name, RecordType::CAA).await)
    }

    /// A lookup failure: fail closed unless the lookup-failure rule lets it count.
    async fn failed(
        &self,
        failure: LookupFailure,
        retried: bool,
        params: &CaaParams,
    ) -> CheckResponse {
        let mut report = LookupFailureReport {
            allow_lookup_failure: params.allow_lookup_failure,
            retried,
            dnssec_insecure: false,
            treated_as_permission: false,
        };
        // A bogus or indeterminate answer never qualifies; only ask when it could matter.
        if params.allow_lookup_failure && retried && !failure.dnssec {
            report.dnssec_insecure = provably_insecure(&self.dns, &failure.name).await;
        }
        report.treated_as_permission =
            report.allow_lookup_failure && report.retried && report.dnssec_insecure;
        if report.treated_as_permission {
            return response(
                true,
                true,
                None,
                CaaDetails {
                    reason: Some(REASON_LOOKUP_FAILURE_ALLOWED.to_owned()),
                    lookup_failure: Some(report),
                    ..CaaDetails::default()
                },
            );
        }
        let kind = if failure.dnssec {
            error_type::CAA_DNSSEC
        } else {
            error_type::CAA_LOOKUP
        };
        response(
            false,
            false,
            Some(vec![MpicError::new(kind, &failure.message)]),
            CaaDetails {
                reason: Some(REASON_LOOKUP_FAILED.to_owned()),
                lookup_failure: Some(report),
                ..CaaDetails::default()
            },
        )
    }
}

/// One level's answer as the climb sees it.
fn classify(name: &str, is_tld: bool, answer: Result<DnsAnswer, DnsError>) -> Level {
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            return Level::Failed(LookupFailure {
                name: name.to_owned(),
                dnssec: false,
                message: format!("CAA lookup for {name} failed: {e}"),
            });
        }
    };
    match answer.rcode {
        ResponseCode::NoError => {
            let records: Vec<CaaRecord> = answer
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
                .collect();
            if records.is_empty() {
                Level::Empty {
                    authentic_data: answer.authentic_data,
                }
            } else {
                Level::Found {
                    records,
                    authentic_data: answer.authentic_data,
                }
            }
        }
        // RFC 8659 3: a name that does not exist has no CAA; its parents are consulted. A TLD
        // that does not exist is not a place anyone can hold a certificate for.
        ResponseCode::NXDomain if !is_tld => Level::Empty {
            authentic_data: answer.authentic_data,
        },
        rcode => Level::Failed(lookup_failure(name, "CAA", rcode, &answer)),
    }
}

/// A failure built from a bad rcode, with the resolver's Extended DNS Errors.
fn lookup_failure(
    name: &str,
    rtype: &str,
    rcode: ResponseCode,
    answer: &DnsAnswer,
) -> LookupFailure {
    let dnssec = answer.extended_errors.iter().any(|e| e.is_dnssec());
    let mut message = format!("{rtype} lookup for {name} failed: {}", rcode_text(rcode));
    for ede in &answer.extended_errors {
        message.push_str(&format!("; {ede}"));
    }
    if dnssec {
        message.push_str(" (DNSSEC validation failed)");
    }
    LookupFailure {
        name: name.to_owned(),
        dnssec,
        message,
    }
}

/// The rcode's mnemonic (RFC 1035 4.1.1, RFC 6895 2.3) and number.
pub fn rcode_text(rcode: ResponseCode) -> String {
    let name = match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "RCODE",
    };
    format!("{name} (rcode {})", u16::from(rcode))
}

/// RFC 4035 4.3 "Insecure": some zone cut at or above `name` has an authenticated denial of
/// its DS RRset, so everything below it is unsigned by the parent's own signed word.
///
/// For each level `L` from `name` up to the TLD we ask, in parallel, for `DS L` and `NS L`:
/// - `DS L` must be NOERROR with the AD flag and no DS: the denial was validated up to the
///   root trust anchor;
/// - `NS L` must not be an authenticated "no NS here" (AD with NODATA or NXDOMAIN), which is
///   what a name inside a signed zone that is *not* a zone cut answers, and must carry no
///   DNSSEC error. An insecure cut answers NS from the unsigned child (AD clear) or fails.
///
/// Anything else, including every error, is "not proven" and keeps the check failed.
pub async fn provably_insecure(dns: &DnsClient, name: &str) -> bool {
    let levels: Vec<String> = {
        let mut v = vec![name.to_owned()];
        let mut rest = name;
        while let Some((_, parent)) = rest.split_once('.') {
            v.push(parent.to_owned());
            rest = parent;
        }
        v
    };
    let checks = levels.iter().map(|level| async move {
        let (ds, ns) = tokio::join!(
            dns.query(level, RecordType::DS),
            dns.query(level, RecordType::NS)
        );
        let ds_denied = matches!(&ds, Ok(a) if a.rcode == ResponseCode::NoError
            && a.authentic_data
            && a.records.is_empty());
        let not_a_non_cut = match &ns {
            Ok(a) => {
                let authenticated_absence = a.authentic_data
                    && ((a.rcode == ResponseCode::NoError && a.records.is_empty())
                        || a.rcode == ResponseCode::NXDomain);
                !authenticated_absence && !a.extended_errors.iter().any(|e| e.is_dnssec())
            }
            Err(_) => true,
        };
        ds_denied && not_a_non_cut
    });
    join_all(checks).await.into_iter().any(|proven| proven)
}

fn response(
    completed: bool,
    passed: bool,
    errors: Option<Vec<MpicError>>,
    details: CaaDetails,
) -> CheckResponse {
    CheckResponse {
        check_type: CheckType::Caa,
        check_completed: completed,
        // Fail closed: a check that did not complete never passes unless the lookup-failure
        // rule explicitly made it complete.
        check_passed: passed && completed,
        errors,
        timestamp_ns: crate::now_ns(),
        details: CheckDetails::Caa(details),
    }
}
