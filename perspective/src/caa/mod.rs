//! The CAA check (BR 3.2.2.8, RFC 8659): find the relevant RRset by climbing the tree, then
//! evaluate it with [`policy::evaluate`].
//!
//! - Every level from the name up to (excluding) the root is queried **in parallel**; the
//!   closest non-empty RRset is relevant. The resolver follows CNAMEs for each query; the CNAME
//!   target's parents are never consulted (RFC 8659 3).
//! - NXDOMAIN below a TLD is "no records"; SERVFAIL, REFUSED, other rcodes, timeouts and
//!   DNSSEC-bogus answers are failures, and a failure at or below the relevant level fails the
//!   check closed.
//! - The climb itself lives in [`climb`], shared with the contact-CAA methods of DCV.
//! - A failed level is retried once. A failure that remains may count as permission only when
//!   the request allows it, the retry happened, and the zone is provably DNSSEC-insecure
//!   (RFC 4035 4.3); the details report each condition. An answer the resolver sent but that
//!   cannot be read (a record whose tag or value this client cannot decode) is not an outage
//!   and never qualifies: it might be the record that forbids issuance.

pub mod climb;
pub mod issuer_value;
pub mod policy;

use futures_util::future::join_all;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use mpic_common::api::{CaaDetails, CheckDetails, CheckResponse, LookupFailureReport};
use mpic_common::outcome::{Checker, Outcome};
use mpic_common::target::Target;
use mpic_common::validate::CaaParams;

pub use crate::resolver::rcode_text;
use crate::resolver::{DnsClient, LookupFailure};
use policy::{CaaReason, CaaRecord, CaaRequest};

/// Runs CAA checks through one perspective's resolver.
#[derive(Debug, Clone)]
pub struct CaaChecker {
    dns: DnsClient,
    default_issuers: Vec<String>,
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
                return Outcome::Passed.into_response(CheckDetails::Caa(CaaDetails {
                    caa_record_present: Some(false),
                    reason: Some(REASON_IP_TARGET.to_owned()),
                    ..CaaDetails::default()
                }));
            }
        };
        let issuers = if params.caa_domains.is_empty() {
            &self.default_issuers
        } else {
            &params.caa_domains
        };
        let climbed = climb::climb(&self.dns, &domain.self_and_ancestors()).await;
        match climbed.outcome {
            Ok(relevant) => {
                let records = climb::caa_records(&relevant.answer);
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
                Outcome::from_match(reason.permits()).into_response(CheckDetails::Caa(CaaDetails {
                    caa_record_present: Some(present),
                    found_at: present.then_some(relevant.found_at),
                    records_seen: Some(records.iter().map(CaaRecord::presentation).collect()),
                    ad_flag: Some(relevant.answer.authentic_data),
                    reason: Some(reason.code().to_owned()),
                    lookup_failure: None,
                }))
            }
            Err(failure) => self.failed(failure, climbed.retried, params).await,
        }
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
        // A bogus or indeterminate answer never qualifies, nor one that came but cannot be
        // read; only ask when it could matter.
        if params.allow_lookup_failure && retried && !failure.dnssec && !failure.malformed {
            report.dnssec_insecure = provably_insecure(&self.dns, &failure.name).await;
        }
        report.treated_as_permission =
            report.allow_lookup_failure && report.retried && report.dnssec_insecure;
        if report.treated_as_permission {
            return Outcome::Passed.into_response(CheckDetails::Caa(CaaDetails {
                reason: Some(REASON_LOOKUP_FAILURE_ALLOWED.to_owned()),
                lookup_failure: Some(report),
                ..CaaDetails::default()
            }));
        }
        Outcome::NotCompleted(failure.problem(Checker::Caa)).into_response(CheckDetails::Caa(
            CaaDetails {
                reason: Some(REASON_LOOKUP_FAILED.to_owned()),
                lookup_failure: Some(report),
                ..CaaDetails::default()
            },
        ))
    }
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
    let levels = climb::self_and_ancestors(name);
    let checks = levels.iter().map(|&level| async move {
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
