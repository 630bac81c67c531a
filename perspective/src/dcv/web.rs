//! HTTP-based methods: website change (BR 3.2.2.4.18 / 3.2.2.5.1) and ACME http-01
//! (BR 3.2.2.4.19 / 3.2.2.5.6, RFC 8555 section 8.3, RFC 8738 section 3 for IP targets).
//!
//! The fetch itself (resolution, address policy, redirects, body cap) is
//! [`super::http_fetch`]; this file builds the challenge URL, judges the final response by the
//! method's rule and reports what was seen. A failed check is data: it carries the
//! `HttpDetails` of how far the fetch got.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use mpic_common::api::{
    AcmeHttp01Parameters, CheckDetails, CheckResponse, HttpDetails, UrlScheme, ValidationMethod,
    WebsiteChangeParameters,
};
use mpic_common::outcome::{Outcome, Problem, ProblemKind};
use mpic_common::target::Target;

use super::DcvContext;
use super::http_fetch::{self, FetchFailure, Fetched, Ports, Trail};
use super::tls_client;
use super::web_failure::{self, Failure};
use crate::config::WebConfig;
use crate::net::AddressPolicy;
use tracing::Instrument as _;

/// HTTP and TLS settings of the perspective, built once from its `web:` configuration.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The `User-Agent` of every request.
    pub(crate) user_agent: HeaderValue,
    /// Most body bytes read from a response.
    pub(crate) max_body_read_bytes: usize,
    /// Bound of one dial.
    pub(crate) connect_timeout: Duration,
    /// Bound of one whole check (all hops, or the TLS-ALPN handshake).
    pub(crate) deadline: Duration,
    /// Which addresses may be dialled.
    pub(crate) policy: AddressPolicy,
    /// Ports dialled and allowed in redirects.
    pub(crate) ports: Ports,
    /// The port tls-alpn-01 dials (443, or `danger_tls_alpn_port`).
    pub(crate) tls_alpn_port: u16,
    /// The HTTPS client configuration.
    pub(crate) https: Arc<rustls::ClientConfig>,
    /// The tls-alpn-01 client configuration.
    pub(crate) tls_alpn: Arc<rustls::ClientConfig>,
}

impl WebSettings {
    /// Settings from the `web:` section of a perspective whose code is `perspective_code` and
    /// whose whole-check deadline is `check_timeout`. Each `danger_` setting that is on is
    /// logged at warn.
    ///
    /// The fetch deadline is nine tenths of the check's: the check then reports its own
    /// timeout, naming the address it was waiting for, before the service's generic deadline
    /// answer replaces it.
    ///
    /// Configuration validation ([`crate::config::PerspectiveConfig::validate`]) has already
    /// loaded `https_ca_file`; if it cannot be read now, HTTPS fails closed (every HTTPS
    /// fetch fails its handshake) rather than falling back to no validation.
    pub fn from_config(
        config: &WebConfig,
        perspective_code: &str,
        check_timeout: Duration,
    ) -> WebSettings {
        if config.danger_allow_loopback_targets {
            tracing::warn!(
                "web.danger_allow_loopback_targets is on: HTTP and TLS-ALPN checks may dial loopback addresses"
            );
        }
        for (key, port) in [
            ("web.danger_http_port", config.danger_http_port),
            ("web.danger_https_port", config.danger_https_port),
            ("web.danger_tls_alpn_port", config.danger_tls_alpn_port),
        ] {
            if let Some(port) = port {
                tracing::warn!(
                    setting = key,
                    port,
                    "{key} is on: checks dial port {port} instead of the standard one"
                );
            }
        }
        let user_agent = config
            .user_agent
            .clone()
            .unwrap_or_else(|| default_user_agent(perspective_code));
        let https = match &config.https_ca_file {
            None => tls_client::https_config(None),
            Some(path) => mpic_common::tls::load_roots("web.https_ca_file", path)
                .map_err(|e| rustls::Error::General(e.0))
                .and_then(|roots| tls_client::https_config(Some(Arc::new(roots)))),
        };
        let https = https.unwrap_or_else(|e| {
            tracing::error!(error = %e, "web.https_ca_file unusable: every HTTPS fetch will fail");
            tls_client::https_refusing_all()
        });
        WebSettings {
            user_agent: HeaderValue::from_str(&user_agent)
                .unwrap_or_else(|_| HeaderValue::from_static("mpic-perspective")),
            max_body_read_bytes: config.max_body_read_bytes,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            deadline: check_timeout - check_timeout / 10,
            policy: AddressPolicy {
                danger_allow_loopback: config.danger_allow_loopback_targets,
            },
            ports: Ports {
                danger_http: config.danger_http_port,
                danger_https: config.danger_https_port,
            },
            tls_alpn_port: config.danger_tls_alpn_port.unwrap_or(443),
            https,
            tls_alpn: tls_client::tls_alpn_config(),
        }
    }
}

impl Default for WebSettings {
    /// The production defaults, for a perspective called `perspective`.
    fn default() -> Self {
        WebSettings::from_config(
            &WebConfig::default(),
            "perspective",
            Duration::from_secs(10),
        )
    }
}

/// The `User-Agent` when `web.user_agent` is not set: names the software and the
/// perspective, so a site operator can tell which vantage point fetched.
pub fn default_user_agent(perspective_code: &str) -> String {
    format!(
        "mpic-perspective/{} (perspective {perspective_code})",
        env!("CARGO_PKG_VERSION")
    )
}

/// BR 3.2.2.4.18 / 3.2.2.5.1: `<scheme>://<host>/.well-known/pki-validation/<http_token_path>`
/// must answer 2xx with a body that contains `challenge_value` (case-sensitive unless
/// `require_exact_case` is false) and, when given, matches `match_regex`.
pub async fn website_change(
    ctx: &DcvContext,
    target: &Target,
    p: &WebsiteChangeParameters,
) -> CheckResponse {
    let method = ValidationMethod::WebsiteChange;
    let regex = match p.match_regex.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => match mpic_common::validate::match_regex(r) {
            Ok(regex) => Some(regex),
            Err(e) => {
                let failure = Failure::Parameter {
                    message: format!("field `dcv_check_parameters.match_regex`: {e}"),
                };
                return failed(method, &failure, None);
            }
        },
    };
    let scheme = match p.url_scheme {
        UrlScheme::Http => "http",
        UrlScheme::Https => "https",
    };
    let path = format!("{WELL_KNOWN_PKI_VALIDATION}{}", p.http_token_path);
    let fetched = match fetch(ctx, method, target, scheme, &path, p.http_headers.as_ref()).await {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let echo_len = p.challenge_value.len();
    if !(200..300).contains(&fetched.status) {
        return wrong_status(method, &fetched, "a 2xx status", echo_len);
    }
    let text = String::from_utf8_lossy(&fetched.body);
    // The reference searches the body with surrounding whitespace trimmed; for a substring
    // search that changes nothing, for an anchored `match_regex` it does.
    let text = text.trim();
    let found = p.challenge_value.is_empty()
        || if p.require_exact_case {
            text.contains(p.challenge_value.as_str())
        } else {
            text.to_lowercase()
                .contains(&p.challenge_value.to_lowercase())
        };
    let regex_ok = regex.as_ref().is_none_or(|r| r.is_match(text));
    let outcome = match (found, regex_ok) {
        (true, true) => Outcome::Passed,
        _ => Outcome::NotPassed(vec![Problem::new(
            ProblemKind::Http,
            not_found_message(&fetched, found, regex_ok),
        )]),
    };
    done(method, outcome, &fetched, echo_len)
}

/// BR 3.2.2.4.19 / 3.2.2.5.6, RFC 8555 section 8.3:
/// `http://<host>/.well-known/acme-challenge/<token>` must answer 200 (as Boulder and the
/// reference require) with a body that, with surrounding whitespace removed, is exactly the
/// key authorization.
pub async fn acme_http01(
    ctx: &DcvContext,
    target: &Target,
    p: &AcmeHttp01Parameters,
) -> CheckResponse {
    let method = ValidationMethod::AcmeHttp01;
    let path = format!("{WELL_KNOWN_ACME_CHALLENGE}{}", p.token);
    let fetched = match fetch(ctx, method, target, "http", &path, p.http_headers.as_ref()).await {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let echo_len = p.key_authorization.len();
    if fetched.status != 200 {
        return wrong_status(method, &fetched, "200", echo_len);
    }
    let passed =
        !fetched.truncated && String::from_utf8_lossy(&fetched.body).trim() == p.key_authorization;
    let outcome = if passed {
        Outcome::Passed
    } else {
        Outcome::NotPassed(vec![Problem::new(
            ProblemKind::Http,
            if fetched.truncated {
                format!(
                    "{}: the body is longer than {} bytes, so it is not the key authorization",
                    fetched.trail.final_url,
                    fetched.body.len()
                )
            } else {
                format!(
                    "{}: the body is not the key authorization",
                    fetched.trail.final_url
                )
            },
        )])
    };
    done(method, outcome, &fetched, echo_len)
}

/// Where the website-change file lives (BR 3.2.2.4.18).
pub const WELL_KNOWN_PKI_VALIDATION: &str = "/.well-known/pki-validation/";
/// Where the http-01 resource lives (RFC 8555 section 8.3).
pub const WELL_KNOWN_ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// Bytes of the body echoed in `response_page` at least (the reference's 100), or the
/// challenge's length when that is longer (api.md).
pub const RESPONSE_PAGE_MIN_BYTES: usize = 100;

/// Fetches, or returns the finished failed response.
async fn fetch(
    ctx: &DcvContext,
    method: ValidationMethod,
    target: &Target,
    scheme: &str,
    path: &str,
    headers: Option<&BTreeMap<String, String>>,
) -> Result<Fetched, Box<CheckResponse>> {
    let url = http_fetch::challenge_url(scheme, target, path)
        .map_err(|failure| Box::new(failed(method, &failure, None)))?;
    let empty = BTreeMap::new();
    // The span names scheme and host only: the path carries the token, which is not logged.
    let span = mpic_common::detail_span!(
        "http.fetch",
        otel.name = %format!("HTTP {scheme}"),
        url.scheme = scheme,
        server.address = url.host_str().unwrap_or(""),
    );
    let started = std::time::Instant::now();
    let result = http_fetch::fetch(&ctx.dns, &ctx.web, url, headers.unwrap_or(&empty))
        .instrument(span)
        .await;
    if let Some(m) = ctx.dns.metrics() {
        m.http_duration
            .get_or_create(&crate::metrics::FetchLabels {
                scheme: scheme.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }
    result
        .map_err(|FetchFailure { failure, trail }| Box::new(failed(method, &failure, Some(&trail))))
}

fn not_found_message(fetched: &Fetched, found: bool, regex_ok: bool) -> String {
    let what = match (found, regex_ok) {
        (false, false) => "the challenge value was not found and match_regex did not match",
        (false, true) => "the challenge value was not found",
        _ => "match_regex did not match",
    };
    let scope = if fetched.truncated {
        format!(" (in the first {} bytes read)", fetched.body.len())
    } else {
        String::new()
    };
    format!("{}: {what}{scope}", fetched.trail.final_url)
}

fn wrong_status(
    method: ValidationMethod,
    fetched: &Fetched,
    wanted: &str,
    echo_len: usize,
) -> CheckResponse {
    let problem = Problem::new(
        ProblemKind::Http,
        format!(
            "{}: status {}, {wanted} is required",
            fetched.trail.final_url, fetched.status
        ),
    );
    // Reference behaviour: the server answered, so the check completed (and failed).
    done(method, Outcome::NotPassed(vec![problem]), fetched, echo_len)
}

fn done(
    method: ValidationMethod,
    outcome: Outcome,
    fetched: &Fetched,
    echo_len: usize,
) -> CheckResponse {
    let echo = &fetched.body[..fetched
        .body
        .len()
        .min(echo_len.max(RESPONSE_PAGE_MIN_BYTES))];
    let mut details = details(method, Some(&fetched.trail));
    details.response_status_code = Some(fetched.status);
    details.response_page = Some(base64::engine::general_purpose::STANDARD.encode(echo));
    outcome.into_response(CheckDetails::Http(details))
}

fn failed(method: ValidationMethod, failure: &Failure, trail: Option<&Trail>) -> CheckResponse {
    web_failure::outcome(failure, method).into_response(CheckDetails::Http(details(method, trail)))
}

fn details(method: ValidationMethod, trail: Option<&Trail>) -> HttpDetails {
    HttpDetails {
        validation_method: method,
        response_history: trail
            .filter(|t| !t.history.is_empty())
            .map(|t| t.history.clone()),
        response_url: trail.map(|t| t.original_url.clone()),
        response_status_code: None,
        response_page: None,
        final_url: trail.map(|t| t.final_url.clone()),
        resolved_ip: trail.and_then(|t| t.resolved_ip).map(|ip| ip.to_string()),
    }
}
