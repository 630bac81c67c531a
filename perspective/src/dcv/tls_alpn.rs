//! ACME tls-alpn-01 (RFC 8737, RFC 8738; BR 3.2.2.4.20 / 3.2.2.5.7).

use mpic_common::api::{AcmeTlsAlpn01Parameters, CheckResponse, ValidationMethod};
use mpic_common::target::Target;

use super::DcvContext;

/// Runs the check.
pub async fn check(
    _ctx: &DcvContext,
    _target: &Target,
    _p: &AcmeTlsAlpn01Parameters,
) -> CheckResponse {
    super::not_implemented(ValidationMethod::AcmeTlsAlpn01)
}
