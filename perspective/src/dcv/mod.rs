//! Domain-control validation methods (BR 3.2.2.4 / 3.2.2.5), one file per method or per family
//! where the logic is truly shared.

pub mod dns;
pub mod http_fetch;
pub mod tls_alpn;
pub mod tls_client;
pub mod web;
pub mod web_failure;

use mpic_common::api::{CheckResponse, DcvCheckParameters};
use mpic_common::target::Target;

use crate::dns::DnsClient;

/// What a DCV check needs from its perspective: the resolver and the network settings.
#[derive(Debug, Clone)]
pub struct DcvContext {
    /// This perspective's own resolver.
    pub dns: DnsClient,
    /// HTTP and TLS settings (ports, address policy, user agent).
    pub web: web::WebSettings,
}

/// Runs the DCV check `params` asks for against `target`. Never fails: problems are a failed
/// [`CheckResponse`].
pub async fn check(
    ctx: &DcvContext,
    target: &Target,
    params: &DcvCheckParameters,
) -> CheckResponse {
    use DcvCheckParameters as P;
    match params {
        P::WebsiteChange(p) => web::website_change(ctx, target, p).await,
        P::AcmeHttp01(p) => web::acme_http01(ctx, target, p).await,
        P::AcmeTlsAlpn01(p) => tls_alpn::check(ctx, target, p).await,
        _ => dns::check(ctx, target, params).await,
    }
}
