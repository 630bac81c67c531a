//! HTTP-based methods: website change and ACME http-01.

use mpic_common::api::{
    AcmeHttp01Parameters, CheckResponse, ValidationMethod, WebsiteChangeParameters,
};
use mpic_common::target::Target;

use super::DcvContext;

/// HTTP and TLS settings of the perspective.
#[derive(Debug, Clone, Default)]
pub struct WebSettings {}

/// BR 3.2.2.4.18 / 3.2.2.5.1.
pub async fn website_change(
    _ctx: &DcvContext,
    _target: &Target,
    _p: &WebsiteChangeParameters,
) -> CheckResponse {
    super::not_implemented(ValidationMethod::WebsiteChange)
}

/// BR 3.2.2.4.19 / 3.2.2.5.6, RFC 8555 8.3.
pub async fn acme_http01(
    _ctx: &DcvContext,
    _target: &Target,
    _p: &AcmeHttp01Parameters,
) -> CheckResponse {
    super::not_implemented(ValidationMethod::AcmeHttp01)
}
