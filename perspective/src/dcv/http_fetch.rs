//! The HTTP client of website change and http-01: one GET per hop, redirects followed by this
//! code one at a time under the redirect policy of requirements.md "HTTP methods".
//!
//! Each hop is resolved through the perspective's resolver, checked against the address
//! policy and dialled by [`crate::net::connect`]; the request goes over that one connection
//! (hyper's HTTP/1.1 client, TLS by rustls without chain validation unless configured), so
//! there is no connection pool, no proxy and no second resolver anywhere. The body read is
//! capped; the whole fetch, redirects included, runs under one deadline.
//!
//! Also here: the perspective's HTTP and TLS settings ([`WebSettings`]), and what the two HTTP
//! methods share around a fetch: the challenge fetch with its span and metric, and the
//! `HttpDetails` of how far a fetch got.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use mpic_common::api::RedirectResponse;
use mpic_common::target::Target;
use mpic_common::text::bytes_for_echo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

use super::DcvContext;
use super::tls_client;
use super::web_failure::{self, Failure, HttpCause, RedirectReason, RedirectRefusal, TlsCause};
use crate::config::WebConfig;
use crate::net::AddressPolicy;
use crate::net::{self, Host, NetError};
use crate::resolver::DnsClient;
use base64::Engine as _;
use mpic_common::api::{CheckDetails, CheckResponse, HttpDetails, ValidationMethod};
use mpic_common::outcome::{Outcome, Problem, ProblemKind};
use std::sync::Arc;
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
    /// Most redirects one fetch follows (`web.max_redirects`).
    pub(crate) max_redirects: usize,
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
            max_redirects: config.max_redirects,
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

/// Default of `web.max_redirects`, the most redirects one fetch follows (requirements.md
/// "HTTP methods"). The BR set no number; the reference follows 20, and Open MPIC's compliance
/// suite has a website-change challenge behind 12 redirects that must pass (Boulder stops at
/// 10, which that case would fail).
pub const DEFAULT_MAX_REDIRECTS: usize = 20;

/// Largest `web.max_redirects` a configuration may set: every hop is another lookup and
/// connection inside the one fetch deadline, and a chain longer than this is no website's
/// honest configuration.
pub const MAX_REDIRECTS_LIMIT: usize = 50;

/// Largest response head (status line and headers) accepted, in bytes: hyper's smallest
/// read-buffer limit. A challenge response needs a few hundred bytes of headers.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 8 * 1024;

/// The redirect statuses followed (requirements.md "HTTP methods").
pub const FOLLOWED_REDIRECTS: [u16; 4] = [301, 302, 307, 308];

/// Longest `Location` value echoed in `response_history` or an error, in bytes.
const MAX_LOCATION_ECHO_BYTES: usize = 512;

/// A fetch that produced a final response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The hops before the final response.
    pub trail: Trail,
    /// The final response's status.
    pub status: u16,
    /// The start of the final body, at most `web.max_body_read_bytes`.
    pub body: Vec<u8>,
    /// The body was longer than what was read.
    pub truncated: bool,
}

/// A fetch that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchFailure {
    /// What went wrong.
    pub failure: Failure,
    /// How far the fetch got.
    pub trail: Trail,
}

/// Where a fetch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trail {
    /// The challenge URL (`response_url`).
    pub original_url: String,
    /// The last URL requested (`final_url`).
    pub final_url: String,
    /// Each redirect: status and `Location` value as sent.
    pub history: Vec<RedirectResponse>,
    /// The address of the last connection, or of the last dial attempt (`resolved_ip`).
    pub resolved_ip: Option<IpAddr>,
}

/// Which ports the fetcher dials and allows in redirects: 80 and 443, or the configured
/// `danger_` test ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ports {
    /// `web.danger_http_port`: dialled for http URLs on port 80, and allowed in redirects.
    pub danger_http: Option<u16>,
    /// `web.danger_https_port`: dialled for https URLs on port 443, and allowed in redirects.
    pub danger_https: Option<u16>,
}

impl Ports {
    /// The port to dial for `url`, or why its scheme or port is refused.
    pub fn dial_port(&self, url: &Url) -> Result<u16, RedirectReason> {
        let (standard, danger) = match url.scheme() {
            "http" => (80, self.danger_http),
            "https" => (443, self.danger_https),
            other => return Err(RedirectReason::Scheme(other.to_owned())),
        };
        match url.port_or_known_default() {
            Some(p) if p == standard => Ok(danger.unwrap_or(standard)),
            Some(p) if Some(p) == danger => Ok(p),
            Some(p) => Err(RedirectReason::Port(p)),
            None => Err(RedirectReason::Scheme(url.scheme().to_owned())),
        }
    }
}

/// The challenge URL `<scheme>://<host><path>` for `target`: IPv6 addresses in brackets
/// (RFC 8738 section 3, RFC 3986 section 3.2.2).
pub fn challenge_url(scheme: &str, target: &Target, path: &str) -> Result<Url, Failure> {
    let host = match target {
        Target::Domain(d) => d.name().to_owned(),
        Target::Ip(IpAddr::V4(ip)) => ip.to_string(),
        Target::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
    };
    let text = format!("{scheme}://{host}{path}");
    Url::parse(&text).map_err(|_| Failure::Parameter {
        message: format!(
            "the challenge URL {:?} is not a valid URL",
            bytes_for_echo(text.as_bytes(), MAX_LOCATION_ECHO_BYTES)
        ),
    })
}

/// GETs `url`, following redirects under the policy, with `headers` added to each request.
pub async fn fetch(
    dns: &DnsClient,
    web: &WebSettings,
    url: Url,
    headers: &BTreeMap<String, String>,
) -> Result<Fetched, FetchFailure> {
    let mut progress = Progress {
        trail: Trail {
            original_url: url.to_string(),
            final_url: url.to_string(),
            history: Vec::new(),
            resolved_ip: None,
        },
        host: url.host_str().unwrap_or_default().to_owned(),
        dialling: None,
    };
    let deadline = tokio::time::Instant::now() + web.deadline;
    let outcome =
        tokio::time::timeout_at(deadline, follow(dns, web, url, headers, &mut progress)).await;
    match outcome {
        Ok(Ok((status, body, truncated))) => Ok(Fetched {
            trail: progress.trail,
            status,
            body,
            truncated,
        }),
        Ok(Err(failure)) => Err(FetchFailure {
            failure,
            trail: progress.trail,
        }),
        Err(_) => Err(FetchFailure {
            failure: Failure::Timeout {
                host: progress.host,
                ip: progress.dialling,
                ms: millis(web.deadline),
            },
            trail: Trail {
                resolved_ip: progress.dialling.or(progress.trail.resolved_ip),
                ..progress.trail
            },
        }),
    }
}

/// What [`fetch`] knows when its deadline cuts it short.
struct Progress {
    trail: Trail,
    /// The host of the current hop.
    host: String,
    /// The address of the current hop's dial, once one started.
    dialling: Option<IpAddr>,
}

async fn follow(
    dns: &DnsClient,
    web: &WebSettings,
    mut url: Url,
    headers: &BTreeMap<String, String>,
    progress: &mut Progress,
) -> Result<(u16, Vec<u8>, bool), Failure> {
    let mut visited = vec![without_fragment(&url)];
    loop {
        // The challenge URL always passes (http or https on the default port, a validated
        // host); every later URL was checked before it was followed.
        let hop = hop_target(&url, &web.ports).map_err(|_| Failure::Parameter {
            message: format!(
                "the URL {:?} cannot be fetched",
                bytes_for_echo(url.as_str().as_bytes(), MAX_LOCATION_ECHO_BYTES)
            ),
        })?;
        progress.trail.final_url = url.to_string();
        progress.host = hop.host.to_string();
        progress.dialling = None;
        let dialling = &mut progress.dialling;
        let connected = net::connect(
            dns,
            web.policy,
            hop.host,
            hop.port,
            web.connect_timeout,
            &mut |ip| *dialling = Some(ip),
        )
        .await;
        let connected = match connected {
            Ok(c) => c,
            Err(e) => {
                progress.trail.resolved_ip = e.last_dialled();
                // A redirect to a forbidden address is the redirect's fault.
                return Err(match (e, progress.trail.history.last()) {
                    (NetError::Forbidden(f), Some(last)) => Failure::Redirect(RedirectRefusal {
                        status: last.status_code,
                        location: Some(last.url.clone()),
                        reason: RedirectReason::Forbidden(f),
                    }),
                    (e, _) => Failure::Net(e),
                });
            }
        };
        let ip = connected.ip;
        progress.trail.resolved_ip = Some(ip);
        let request = build_request(&url, &hop.host_header, web, headers)?;
        let answer = match hop.tls_name {
            None => exchange(connected.stream, ip, request, web.max_body_read_bytes).await?,
            Some(name) => {
                let tls = tokio_rustls::TlsConnector::from(web.https.clone())
                    .connect(name, connected.stream)
                    .await
                    .map_err(|e| Failure::Tls {
                        ip,
                        cause: tls_cause(&e),
                    })?;
                exchange(tls, ip, request, web.max_body_read_bytes).await?
            }
        };
        let (status, location) = match answer {
            Answer::Final {
                status,
                body,
                truncated,
            } => return Ok((status, body, truncated)),
            Answer::Redirect { status, location } => (status, location),
        };
        if let Some(l) = &location {
            progress.trail.history.push(RedirectResponse {
                status_code: status,
                url: bytes_for_echo(l, MAX_LOCATION_ECHO_BYTES),
            });
        }
        let redirect = Redirect {
            status,
            location: location.as_deref(),
            followed: progress.trail.history.len(),
        };
        url = next_hop(&url, &redirect, &visited, &web.ports, web.max_redirects)
            .map_err(Failure::Redirect)?;
        visited.push(without_fragment(&url));
    }
}

/// One redirect answer, as [`next_hop`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect<'a> {
    /// The 3xx status (304 never gets here).
    pub status: u16,
    /// The `Location` value as sent, if there was one.
    pub location: Option<&'a [u8]>,
    /// Redirects of this fetch so far, this one included.
    pub followed: usize,
}

/// The redirect policy (requirements.md "HTTP methods") for a redirect answered to a request
/// for `current`: the URL to request next, or why the redirect is refused. Only 301, 302, 307
/// and 308 are followed, at most `max_redirects` of them (`web.max_redirects`, by default
/// [`DEFAULT_MAX_REDIRECTS`]); the `Location` is resolved against
/// `current` (RFC 9110 section 10.2.2) and must name an http or https URL on an allowed port
/// ([`Ports`]) with a valid host, not yet in `visited` (the URLs requested so far, without
/// fragments). No I/O: the fetch loop calls it for every redirect.
pub fn next_hop(
    current: &Url,
    redirect: &Redirect<'_>,
    visited: &[String],
    ports: &Ports,
    max_redirects: usize,
) -> Result<Url, RedirectRefusal> {
    let refuse = |reason| RedirectRefusal {
        status: redirect.status,
        location: redirect
            .location
            .map(|l| bytes_for_echo(l, MAX_LOCATION_ECHO_BYTES)),
        reason,
    };
    if !FOLLOWED_REDIRECTS.contains(&redirect.status) {
        return Err(refuse(RedirectReason::StatusNotFollowed));
    }
    let Some(location) = redirect.location else {
        return Err(refuse(RedirectReason::MissingLocation));
    };
    if redirect.followed > max_redirects {
        return Err(refuse(RedirectReason::TooMany { max: max_redirects }));
    }
    let next = std::str::from_utf8(location)
        .ok()
        .and_then(|l| current.join(l.trim()).ok())
        .ok_or_else(|| refuse(RedirectReason::InvalidLocation))?;
    hop_target(&next, ports).map_err(refuse)?;
    if visited.contains(&without_fragment(&next)) {
        return Err(refuse(RedirectReason::Loop));
    }
    Ok(next)
}

/// Where one hop goes.
struct HopTarget<'u> {
    host: Host<'u>,
    port: u16,
    /// The `Host` header: the URL's host (IPv6 in brackets) and its port when not the
    /// scheme's default.
    host_header: String,
    /// The TLS server name for https (an IP address sends no SNI, RFC 6066 section 3).
    tls_name: Option<ServerName<'static>>,
}

fn hop_target<'u>(url: &'u Url, ports: &Ports) -> Result<HopTarget<'u>, RedirectReason> {
    let port = ports.dial_port(url)?;
    let (host, tls_host) = match url.host() {
        Some(url::Host::Ipv4(ip)) => (Host::Ip(IpAddr::V4(ip)), ServerName::IpAddress(ip.into())),
        Some(url::Host::Ipv6(ip)) => (Host::Ip(IpAddr::V6(ip)), ServerName::IpAddress(ip.into())),
        Some(url::Host::Domain(name)) => {
            // The URL parser has applied UTS-46 and lowercased; the name must also be a
            // valid target name (two labels at least, LDH, ...), which keeps `localhost` and
            // other single-label names out.
            match Target::parse(name) {
                Ok(Target::Domain(d)) if !d.is_wildcard() && d.name() == name => {}
                _ => {
                    return Err(RedirectReason::Host(format!(
                        "{:?} is not a valid domain name",
                        bytes_for_echo(name.as_bytes(), 256)
                    )));
                }
            }
            let server_name = ServerName::try_from(name.to_owned()).map_err(|_| {
                RedirectReason::Host(format!(
                    "{:?} is not a valid TLS server name",
                    bytes_for_echo(name.as_bytes(), 256)
                ))
            })?;
            (Host::Domain(name), server_name)
        }
        None => return Err(RedirectReason::Host("the URL has no host".to_owned())),
    };
    let mut host_header = url.host_str().unwrap_or_default().to_owned();
    if let Some(p) = url.port() {
        host_header.push_str(&format!(":{p}"));
    }
    Ok(HopTarget {
        host,
        port,
        host_header,
        tls_name: (url.scheme() == "https").then_some(tls_host),
    })
}

fn build_request(
    url: &Url,
    host_header: &str,
    web: &WebSettings,
    extra: &BTreeMap<String, String>,
) -> Result<http::Request<Empty<Bytes>>, Failure> {
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut headers = HeaderMap::new();
    let bad = |name: &str| Failure::Parameter {
        message: format!(
            "field `dcv_check_parameters.http_headers.{}`: not a valid HTTP header",
            bytes_for_echo(name.as_bytes(), 64)
        ),
    };
    headers.insert(
        header::HOST,
        HeaderValue::from_str(host_header).map_err(|_| bad("Host"))?,
    );
    headers.insert(header::USER_AGENT, web.user_agent.clone());
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    for (name, value) in extra {
        if mpic_common::validate::is_forbidden_request_header(name) {
            return Err(bad(name));
        }
        let name_ok = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad(name))?;
        let value_ok = HeaderValue::from_bytes(value.as_bytes()).map_err(|_| bad(name))?;
        // The request's headers replace ours (User-Agent, Accept): reference behaviour.
        headers.insert(name_ok, value_ok);
    }
    let mut request =
        http::Request::get(path)
            .body(Empty::new())
            .map_err(|_| Failure::Parameter {
                message: format!(
                    "the URL {:?} cannot be requested",
                    bytes_for_echo(url.as_str().as_bytes(), MAX_LOCATION_ECHO_BYTES)
                ),
            })?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// What one exchange produced.
enum Answer {
    /// A 3xx other than 304: to be followed or refused.
    Redirect {
        status: u16,
        location: Option<Vec<u8>>,
    },
    /// Anything else, with the start of its body.
    Final {
        status: u16,
        body: Vec<u8>,
        truncated: bool,
    },
}

/// One request over one connection, driving the connection in this task (nothing is
/// spawned, so nothing outlives the check when its deadline drops it).
async fn exchange<S>(
    io: S,
    ip: IpAddr,
    request: http::Request<Empty<Bytes>>,
    cap: usize,
) -> Result<Answer, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let broken = |cause| Failure::Http { ip, cause };
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_RESPONSE_HEAD_BYTES)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| broken(http_cause(&e)))?;
    let talk = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| broken(http_cause(&e)))?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) && status != 304 {
            let location = response
                .headers()
                .get(header::LOCATION)
                .map(|v| v.as_bytes().to_vec());
            return Ok(Answer::Redirect { status, location });
        }
        let mut body = response.into_body();
        let mut read = Vec::new();
        // Read one byte past the cap, to tell a body of exactly `cap` bytes from a longer one.
        while read.len() <= cap {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = cap + 1 - read.len();
                        read.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(_)) => return Err(broken(HttpCause::BodyBroken)),
            }
        }
        let truncated = read.len() > cap;
        read.truncate(cap);
        Ok(Answer::Final {
            status,
            body: read,
            truncated,
        })
    };
    tokio::pin!(talk);
    tokio::pin!(connection);
    tokio::select! {
        biased;
        answer = &mut talk => answer,
        ended = &mut connection => match ended {
            // The connection finished first (the server closed after answering): the answer
            // is complete or about to fail on its own.
            Ok(()) => talk.await,
            Err(e) => Err(broken(http_cause(&e))),
        },
    }
}

fn http_cause(e: &hyper::Error) -> HttpCause {
    if e.is_parse_too_large() {
        HttpCause::HeadTooLarge
    } else if e.is_parse() || e.is_parse_status() {
        HttpCause::Malformed
    } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        HttpCause::ClosedEarly
    } else {
        HttpCause::Protocol
    }
}

/// tokio-rustls reports handshake failures as I/O errors wrapping the rustls error.
pub fn tls_cause(e: &std::io::Error) -> TlsCause {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return TlsCause::Rustls(tls.clone());
    }
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => TlsCause::Closed,
        kind => TlsCause::Io(kind),
    }
}

fn without_fragment(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.to_string()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a method makes of a fetch's final response.
///
/// Bytes of the body echoed in `response_page` are at least the reference's 100, or the
/// challenge's length when that is longer (api.md).
pub const RESPONSE_PAGE_MIN_BYTES: usize = 100;

/// Fetches `<scheme>://<target><path>` for `method`, or returns the finished failed response.
pub(crate) async fn fetch_challenge(
    ctx: &DcvContext,
    method: ValidationMethod,
    target: &Target,
    scheme: &str,
    path: &str,
    headers: Option<&BTreeMap<String, String>>,
) -> Result<Fetched, Box<CheckResponse>> {
    let url = challenge_url(scheme, target, path)
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
    let result = fetch(&ctx.dns, &ctx.web, url, headers.unwrap_or(&empty))
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

/// The response of a method that judged `fetched` as `outcome`; `echo_len` is the challenge's
/// length, for `response_page`.
pub(crate) fn judged(
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

/// A final status the method does not accept: the server answered, so the check completed
/// and failed (reference behaviour).
pub(crate) fn wrong_status(fetched: &Fetched, wanted: &str) -> Outcome {
    Outcome::NotPassed(vec![Problem::new(
        ProblemKind::Http,
        format!(
            "{}: status {}, {wanted} is required",
            fetched.trail.final_url, fetched.status
        ),
    )])
}

/// A parameter the check could not use: not completed (requests are validated before; this
/// is defence in depth).
pub(crate) fn refused_parameter(method: ValidationMethod, message: String) -> CheckResponse {
    failed(method, &Failure::Parameter { message }, None)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A final response from `url` with `status` and `body`, no redirects.
    pub(crate) fn fetched(url: &str, status: u16, body: &str, truncated: bool) -> Fetched {
        Fetched {
            trail: Trail {
                original_url: url.to_owned(),
                final_url: url.to_owned(),
                history: Vec::new(),
                resolved_ip: None,
            },
            status,
            body: body.as_bytes().to_vec(),
            truncated,
        }
    }

    #[test]
    fn ports_table() {
        struct Case {
            name: &'static str,
            url: &'static str,
            ports: Ports,
            want: Result<u16, RedirectReason>,
        }
        let none = Ports::default();
        let test = Ports {
            danger_http: Some(5002),
            danger_https: Some(5003),
        };
        let cases = [
            Case {
                name: "http default",
                url: "http://example.com/x",
                ports: none,
                want: Ok(80),
            },
            Case {
                name: "https default",
                url: "https://example.com/x",
                ports: none,
                want: Ok(443),
            },
            Case {
                name: "explicit 80",
                url: "http://example.com:80/x",
                ports: none,
                want: Ok(80),
            },
            Case {
                name: "8080",
                url: "http://example.com:8080/x",
                ports: none,
                want: Err(RedirectReason::Port(8080)),
            },
            Case {
                name: "https on 80",
                url: "https://example.com:80/x",
                ports: none,
                want: Err(RedirectReason::Port(80)),
            },
            Case {
                name: "http on 443",
                url: "http://example.com:443/x",
                ports: none,
                want: Err(RedirectReason::Port(443)),
            },
            Case {
                name: "ftp",
                url: "ftp://example.com/x",
                ports: none,
                want: Err(RedirectReason::Scheme("ftp".into())),
            },
            Case {
                name: "file",
                url: "file:///etc/passwd",
                ports: none,
                want: Err(RedirectReason::Scheme("file".into())),
            },
            Case {
                name: "danger http maps 80",
                url: "http://example.com/x",
                ports: test,
                want: Ok(5002),
            },
            Case {
                name: "danger http allowed",
                url: "http://example.com:5002/x",
                ports: test,
                want: Ok(5002),
            },
            Case {
                name: "danger https maps 443",
                url: "https://example.com/x",
                ports: test,
                want: Ok(5003),
            },
            Case {
                name: "danger ports are per scheme",
                url: "http://example.com:5003/x",
                ports: test,
                want: Err(RedirectReason::Port(5003)),
            },
        ];
        for c in cases {
            let url = Url::parse(c.url).unwrap();
            assert_eq!(c.ports.dial_port(&url), c.want, "case {:?}", c.name);
        }
    }

    #[test]
    fn the_redirect_limit_is_the_setting() {
        struct Case {
            name: &'static str,
            max_redirects: usize,
            /// Redirects of the fetch so far, this one included.
            followed: usize,
            want: Result<&'static str, RedirectReason>,
        }
        let cases = [
            Case {
                name: "the compliance suite's 12 hops, default limit",
                max_redirects: DEFAULT_MAX_REDIRECTS,
                followed: 12,
                want: Ok("http://example.com/next"),
            },
            Case {
                name: "the 20th, default limit",
                max_redirects: DEFAULT_MAX_REDIRECTS,
                followed: 20,
                want: Ok("http://example.com/next"),
            },
            Case {
                name: "the 21st, default limit",
                max_redirects: DEFAULT_MAX_REDIRECTS,
                followed: 21,
                want: Err(RedirectReason::TooMany { max: 20 }),
            },
            Case {
                name: "limit 1, the first",
                max_redirects: 1,
                followed: 1,
                want: Ok("http://example.com/next"),
            },
            Case {
                name: "limit 1, the second",
                max_redirects: 1,
                followed: 2,
                want: Err(RedirectReason::TooMany { max: 1 }),
            },
            Case {
                name: "the largest limit, the 50th",
                max_redirects: MAX_REDIRECTS_LIMIT,
                followed: 50,
                want: Ok("http://example.com/next"),
            },
            Case {
                name: "the largest limit, the 51st",
                max_redirects: MAX_REDIRECTS_LIMIT,
                followed: 51,
                want: Err(RedirectReason::TooMany { max: 50 }),
            },
        ];
        let current = Url::parse("http://example.com/here").unwrap();
        let visited = [without_fragment(&current)];
        for c in cases {
            let redirect = Redirect {
                status: 302,
                location: Some(b"/next"),
                followed: c.followed,
            };
            let got = next_hop(
                &current,
                &redirect,
                &visited,
                &Ports::default(),
                c.max_redirects,
            );
            match (got, c.want) {
                (Ok(url), Ok(want)) => assert_eq!(url.as_str(), want, "case {:?}", c.name),
                (Err(refusal), Err(want)) => {
                    assert_eq!(refusal.reason, want, "case {:?}", c.name);
                    assert_eq!(
                        refusal.location.as_deref(),
                        Some("/next"),
                        "case {:?}",
                        c.name
                    );
                }
                (got, want) => panic!("case {:?}: {got:?}, want {want:?}", c.name),
            }
        }
    }

    #[test]
    fn challenge_urls_and_host_headers() {
        struct Case {
            target: &'static str,
            scheme: &'static str,
            want_url: &'static str,
            want_host: &'static str,
        }
        let cases = [
            Case {
                target: "Example.COM",
                scheme: "http",
                want_url: "http://example.com/.well-known/acme-challenge/tok",
                want_host: "example.com",
            },
            Case {
                target: "192.0.2.1",
                scheme: "http",
                want_url: "http://192.0.2.1/.well-known/acme-challenge/tok",
                want_host: "192.0.2.1",
            },
            Case {
                target: "2001:db8::1",
                scheme: "https",
                want_url: "https://[2001:db8::1]/.well-known/acme-challenge/tok",
                want_host: "[2001:db8::1]",
            },
            Case {
                target: "[2001:DB8::1]",
                scheme: "http",
                want_url: "http://[2001:db8::1]/.well-known/acme-challenge/tok",
                want_host: "[2001:db8::1]",
            },
        ];
        for c in cases {
            let target = Target::parse(c.target).unwrap();
            let url = challenge_url(c.scheme, &target, "/.well-known/acme-challenge/tok").unwrap();
            assert_eq!(url.as_str(), c.want_url, "{}", c.target);
            let hop = hop_target(&url, &Ports::default()).ok().unwrap();
            assert_eq!(hop.host_header, c.want_host, "{}", c.target);
            assert_eq!(hop.tls_name.is_some(), c.scheme == "https", "{}", c.target);
        }
        let url = Url::parse("http://example.com:5002/x").unwrap();
        let ports = Ports {
            danger_http: Some(5002),
            danger_https: None,
        };
        assert_eq!(
            hop_target(&url, &ports).ok().unwrap().host_header,
            "example.com:5002"
        );
    }

    #[test]
    fn redirect_hosts_must_be_valid_names() {
        for url in [
            "http://localhost/x",
            "http://under_score.example/x",
            "http://a..b/x",
        ] {
            let Ok(url) = Url::parse(url) else { continue };
            let got = hop_target(&url, &Ports::default()).err();
            assert!(
                matches!(got, Some(RedirectReason::Host(_))),
                "{url}: {got:?}"
            );
        }
    }
}
