//! The redirect policy of the HTTP methods ([`http_fetch::next_hop`]) on a `Location` from a
//! hostile server. The first bytes pick the status, the test ports (none, or 8080 / 8443 as
//! `danger_http_port` / `danger_https_port`), the URL being fetched, how many redirects
//! came before and the configured limit (`web.max_redirects`: the default 20, or 1..=50); the
//! rest is the `Location` value.
//!
//! Invariants: a followed redirect had status 301, 302, 307 or 308 and was within the limit
//! (a refusal for the count names the limit);
//! it leads to an http or https URL on port 80 or 443 or a configured test port for its scheme,
//! with a host that is an IP address or a valid domain name in normal form, and not to a URL
//! already fetched; following its own text again gives the same URL; a refusal carries the
//! status and a bounded echo of the `Location`.

use mpic_common::target::Target;
use mpic_perspective::dcv::http_fetch::{
    self, DEFAULT_MAX_REDIRECTS, FOLLOWED_REDIRECTS, MAX_REDIRECTS_LIMIT, Ports, Redirect,
};
use mpic_perspective::dcv::web_failure::RedirectReason;
use url::Url;

use crate::input::Input;

/// Fragments of URLs.
pub const DICTIONARY: &[&[u8]] = &[
    b"http://",
    b"https://",
    b"//",
    b"/",
    b"../",
    b"?",
    b"#",
    b"@",
    b":",
    b":80",
    b":443",
    b":8080",
    b":8443",
    b":0",
    b":65536",
    b"example.com",
    b"localhost",
    b"127.0.0.1",
    b"[::1]",
    b"[2001:db8::1]",
    b"0x7f.1",
    b"xn--53h.example",
    b"%2e",
    b"%00",
    b"\\",
    b"file:",
    b"ftp://",
    b"javascript:",
    b" ",
    b"\t",
    b"\n",
];

const STATUSES: [u16; 10] = [301, 302, 307, 308, 300, 303, 305, 306, 399, 200];
const CURRENT: [&str; 5] = [
    "http://example.com/.well-known/acme-challenge/token",
    "https://example.com/.well-known/pki-validation/file.txt",
    "http://192.0.2.1/x",
    "https://[2001:db8::1]/a/b?c=d",
    "http://sub.example.com:8080/x#frag",
];

/// The target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let status = input.pick(&STATUSES);
    let port_flags = input.byte();
    let ports = Ports {
        danger_http: (port_flags & 1 != 0).then_some(8080),
        danger_https: (port_flags & 2 != 0).then_some(8443),
    };
    let Ok(current) = Url::parse(input.pick(&CURRENT)) else {
        panic!("a URL of CURRENT does not parse");
    };
    // Bit 3 chooses a configured limit (1..=50) over the default.
    let max_redirects = if port_flags & 8 == 0 {
        DEFAULT_MAX_REDIRECTS
    } else {
        1 + usize::from(input.byte()) % MAX_REDIRECTS_LIMIT
    };
    let followed = usize::from(input.byte()) % (MAX_REDIRECTS_LIMIT + 3);
    let location = (port_flags & 4 == 0).then_some(input.rest());
    let visited = vec![without_fragment(&current)];
    let redirect = Redirect {
        status,
        location,
        followed,
    };
    match http_fetch::next_hop(&current, &redirect, &visited, &ports, max_redirects) {
        Ok(next) => {
            assert!(redirect.followed <= max_redirects);
            check_followed(&current, &redirect, &next, &visited, &ports, max_redirects);
        }
        Err(refusal) => {
            if let RedirectReason::TooMany { max } = refusal.reason {
                assert_eq!(max, max_redirects);
                assert!(redirect.followed > max_redirects);
            }
            assert_eq!(refusal.status, status);
            assert_eq!(refusal.location.is_some(), location.is_some());
            if let Some(echo) = &refusal.location {
                assert!(echo.len() <= 512 + 16, "echo of {} bytes", echo.len());
            }
            if !FOLLOWED_REDIRECTS.contains(&status) {
                assert_eq!(refusal.reason, RedirectReason::StatusNotFollowed);
            }
            assert!(!refusal.to_string().is_empty());
        }
    }
}

fn check_followed(
    current: &Url,
    redirect: &Redirect<'_>,
    next: &Url,
    visited: &[String],
    ports: &Ports,
    max_redirects: usize,
) {
    assert!(FOLLOWED_REDIRECTS.contains(&redirect.status));
    let port = next.port_or_known_default();
    match next.scheme() {
        "http" => assert!(
            port == Some(80) || (port.is_some() && port == ports.danger_http),
            "{next}"
        ),
        "https" => assert!(
            port == Some(443) || (port.is_some() && port == ports.danger_https),
            "{next}"
        ),
        other => panic!("followed to scheme {other:?}: {next}"),
    }
    assert!(ports.dial_port(next).is_ok(), "{next}");
    match next.host() {
        Some(url::Host::Domain(name)) => match Target::parse(name) {
            Ok(Target::Domain(d)) => assert!(!d.is_wildcard() && d.name() == name, "{next}"),
            other => panic!("followed to host {name:?}: {other:?}"),
        },
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {}
        None => panic!("followed to a URL without a host: {next}"),
    }
    assert!(!visited.contains(&without_fragment(next)), "loop to {next}");
    let again = Redirect {
        location: Some(next.as_str().as_bytes()),
        ..*redirect
    };
    assert_eq!(
        http_fetch::next_hop(current, &again, visited, ports, max_redirects).as_ref(),
        Ok(next),
        "following {next} again"
    );
}

fn without_fragment(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.to_string()
}
