//! The HTTP client of website change and http-01: one GET per hop, redirects followed by this
//! code one at a time under the redirect policy of requirements.md "HTTP methods".
//!
//! Each hop is resolved through the perspective's resolver, checked against the address
//! policy and dialled by [`crate::net::connect`]; the request goes over that one connection
//! (hyper's HTTP/1.1 client, TLS by rustls without chain validation unless configured), so
//! there is no connection pool, no proxy and no second resolver anywhere. The body read is
//! capped; the whole fetch, redirects included, runs under one deadline.

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

use super::web::WebSettings;
use super::web_failure::{Failure, HttpCause, RedirectReason, RedirectRefusal, TlsCause};
use crate::dns::DnsClient;
use crate::net::{self, Host, NetError};

/// Most redirects followed (requirements.md "HTTP methods"; Boulder's limit too).
pub const MAX_REDIRECTS: usize = 10;

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
        let echo = location
            .as_deref()
            .map(|l| bytes_for_echo(l, MAX_LOCATION_ECHO_BYTES));
        let refuse = |reason| {
            Failure::Redirect(RedirectRefusal {
                status,
                location: echo.clone(),
                reason,
            })
        };
        if let Some(l) = &echo {
            progress.trail.history.push(RedirectResponse {
                status_code: status,
                url: l.clone(),
            });
        }
        if !FOLLOWED_REDIRECTS.contains(&status) {
            return Err(refuse(RedirectReason::StatusNotFollowed));
        }
        let Some(location) = location else {
            return Err(refuse(RedirectReason::MissingLocation));
        };
        if progress.trail.history.len() > MAX_REDIRECTS {
            return Err(refuse(RedirectReason::TooMany { max: MAX_REDIRECTS }));
        }
        let next = std::str::from_utf8(&location)
            .ok()
            .and_then(|l| url.join(l.trim()).ok())
            .ok_or_else(|| refuse(RedirectReason::InvalidLocation))?;
        hop_target(&next, &web.ports).map_err(refuse)?;
        let key = without_fragment(&next);
        if visited.contains(&key) {
            return Err(refuse(RedirectReason::Loop));
        }
        visited.push(key);
        url = next;
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
