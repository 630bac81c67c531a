//! The DNS-based methods.

use mpic_common::api::{CheckResponse, DcvCheckParameters};
use mpic_common::target::Target;

use super::DcvContext;

/// Runs a DNS-based method.
pub async fn check(
    _ctx: &DcvContext,
    _target: &Target,
    params: &DcvCheckParameters,
) -> CheckResponse {
    super::not_implemented(params.method())
}
