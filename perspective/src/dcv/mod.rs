//! Domain-control validation methods (BR 3.2.2.4 / 3.2.2.5), one file per method or per family
//! where the logic is truly shared.

pub mod acme_http01;
pub mod dns;
pub mod http_fetch;
pub mod tls_alpn;
pub mod tls_client;
pub mod web_failure;
pub mod website_change;

use mpic_common::api::{CheckResponse, DcvCheckParameters};
use mpic_common::target::Target;

use crate::resolver::DnsClient;

/// What a DCV check needs from its perspective: the resolver and the network settings.
#[derive(Debug, Clone)]
pub struct DcvContext {
    /// This perspective's own resolver.
    pub dns: DnsClient,
    /// HTTP and TLS settings (ports, address policy, user agent).
    pub web: http_fetch::WebSettings,
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
        P::WebsiteChange(p) => website_change::check(ctx, target, p).await,
        P::AcmeHttp01(p) => acme_http01::check(ctx, target, p).await,
        P::AcmeTlsAlpn01(p) => tls_alpn::check(ctx, target, p).await,
        P::AcmeDns01(p) => dns::acme_dns01::acme_dns01(ctx, target, p).await,
        P::DnsAccount01(p) => dns::acme_dns01::dns_account01(ctx, target, p).await,
        P::DnsChange(p) => dns::dns_change::check(ctx, target, p).await,
        P::DnsPersistent(p) => dns::dns_persistent::check(ctx, target, p).await,
        P::ContactEmailTxt(p) => {
            dns::contact::txt(
                ctx,
                target,
                dns::contact::Contact::Email,
                &p.challenge_value,
            )
            .await
        }
        P::ContactPhoneTxt(p) => {
            dns::contact::txt(
                ctx,
                target,
                dns::contact::Contact::Phone,
                &p.challenge_value,
            )
            .await
        }
        P::ContactEmailCaa(p) => {
            dns::contact::caa(ctx, target, dns::contact::Contact::Email, p).await
        }
        P::ContactPhoneCaa(p) => {
            dns::contact::caa(ctx, target, dns::contact::Contact::Phone, p).await
        }
        P::IpAddress(p) => dns::ip_address::check(ctx, target, p).await,
        P::ReverseAddressLookup(p) => dns::reverse_lookup::check(ctx, target, p).await,
    }
}
