//! The network edge of the HTTP and TLS-ALPN methods (requirements.md "HTTP methods"): which
//! addresses a perspective may dial, resolution of a host through the perspective's own
//! resolver, and dialling.
//!
//! What this module proves:
//!
//! - **No special-purpose address is ever dialled** (server-side request forgery protection):
//!   every address a host resolves to, and every IP literal, goes through
//!   [`AddressPolicy::check`] before a socket is opened. The table follows the IANA IPv4 and
//!   IPv6 Special-Purpose Address Registries (RFC 6890); the only relaxation is the loudly named
//!   `danger_allow_loopback_targets`, which admits loopback and nothing else.
//! - **Names are resolved by the perspective's own resolver** ([`DnsClient`]), AAAA and A asked
//!   in parallel, never by the system's.
//! - **Dialling is IPv6 first, with one IPv4 fallback on a dial error** (Boulder's behaviour),
//!   and the address actually connected is reported so that it can be recorded
//!   (`resolved_ip`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use tokio::net::TcpStream;

use crate::resolver::{DnsAnswer, DnsClient, LookupFailure};

/// Which addresses may be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// `web.danger_allow_loopback_targets`: admit 127.0.0.0/8 and ::1 (local tests only).
    /// Every other special-purpose range stays refused.
    pub danger_allow_loopback: bool,
}

/// A special-purpose range of the IANA registries, with the document that reserves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialRange {
    /// The first address of the range.
    pub network: IpAddr,
    /// The prefix length.
    pub prefix_len: u8,
    /// What the range is for, as the registry names it.
    pub name: &'static str,
    /// The RFC that reserves it.
    pub reference: &'static str,
}

impl fmt::Display for SpecialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}, {} ({})",
            self.network, self.prefix_len, self.name, self.reference
        )
    }
}

/// Why an address may not be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forbidden {
    /// The address as resolved (or as given in a URL).
    pub ip: IpAddr,
    /// For an IPv6 address that embeds an IPv4 address (NAT64, 6to4): the embedded address
    /// that fell in [`Forbidden::reason`].
    pub embedded: Option<Ipv4Addr>,
    /// Why.
    pub reason: ForbiddenReason,
}

/// The rule an address broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForbiddenReason {
    /// It lies in a special-purpose range.
    Special(SpecialRange),
    /// An IPv6 address outside 2000::/3, the only block IANA allocates global unicast
    /// addresses from (RFC 4291 section 2.4), and not in any named range.
    NotGlobalUnicast,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.ip)?;
        if let Some(v4) = self.embedded {
            write!(f, "embeds {v4}, which ")?;
        }
        match self.reason {
            ForbiddenReason::Special(range) => write!(f, "is in {range}")?,
            ForbiddenReason::NotGlobalUnicast => {
                f.write_str("is not a global unicast address (outside 2000::/3, RFC 4291)")?
            }
        }
        f.write_str("; such addresses are never dialled")
    }
}

impl AddressPolicy {
    /// `Ok(address to dial)` when `ip` may be dialled, else the rule it breaks.
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 section 2.5.5.2) is the IPv4
    /// address it maps: it is checked, and dialled, as that IPv4 address. Addresses of the
    /// NAT64 well-known prefix (64:ff9b::/96, RFC 6052) and of 6to4 (2002::/16, RFC 3056) reach
    /// the IPv4 address they embed, so that embedded address must pass the IPv4 rules too.
    pub fn check(&self, ip: IpAddr) -> Result<IpAddr, Forbidden> {
        let ip = ip.to_canonical();
        if self.danger_allow_loopback && ip.is_loopback() {
            return Ok(ip);
        }
        if let Some(range) = special_range(ip) {
            return Err(Forbidden {
                ip,
                embedded: None,
                reason: ForbiddenReason::Special(range),
            });
        }
        if let IpAddr::V6(v6) = ip {
            if let Some(v4) = embedded_ipv4(v6) {
                if let Some(range) = special_range(IpAddr::V4(v4)) {
                    return Err(Forbidden {
                        ip,
                        embedded: Some(v4),
                        reason: ForbiddenReason::Special(range),
                    });
                }
            } else if !in_prefix(ip, IpAddr::V6(GLOBAL_UNICAST.0), GLOBAL_UNICAST.1) {
                return Err(Forbidden {
                    ip,
                    embedded: None,
                    reason: ForbiddenReason::NotGlobalUnicast,
                });
            }
        }
        Ok(ip)
    }
}

/// Why a host could not be connected to. Display gives the message a user sees: it names the
/// host or the address that failed, never our internals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The resolver answered NXDOMAIN for both AAAA and A.
    #[error("{host}: no such domain name (NXDOMAIN)")]
    NoSuchName {
        /// The host.
        host: String,
    },
    /// The name exists but has no A or AAAA records.
    #[error("{host}: no A or AAAA records")]
    NoAddresses {
        /// The host.
        host: String,
    },
    /// The lookups failed (no answer, SERVFAIL, REFUSED, DNSSEC failure).
    #[error("{message}")]
    Lookup {
        /// The host.
        host: String,
        /// The resolver reported a DNSSEC validation failure.
        dnssec: bool,
        /// The resolver's words, naming the host (from [`LookupFailure`]).
        message: String,
    },
    /// An address the host resolved to, or the literal, is special-purpose.
    #[error("{0}")]
    Forbidden(Forbidden),
    /// Every dial attempt failed.
    #[error("{}", DialAttempts(.attempts))]
    Dial {
        /// In order: the IPv6 attempt, then the IPv4 fallback.
        attempts: Vec<DialAttempt>,
    },
}

impl NetError {
    /// The last address dialled, if any was.
    pub fn last_dialled(&self) -> Option<IpAddr> {
        match self {
            NetError::Dial { attempts } => attempts.last().map(|a| a.ip),
            _ => None,
        }
    }
}

/// One failed dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialAttempt {
    /// The address.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
    /// What happened.
    pub failure: DialFailure,
}

/// How a dial failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialFailure {
    /// No connection within the connect timeout.
    TimedOut {
        /// The timeout.
        ms: u64,
    },
    /// The operating system's answer (connection refused, network unreachable, …).
    Io(std::io::ErrorKind),
}

impl fmt::Display for DialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialFailure::TimedOut { ms } => write!(f, "connection timed out after {ms} ms"),
            // `ErrorKind`'s Display is the short lowercase description ("connection
            // refused"), with no OS error number or path in it.
            DialFailure::Io(kind) => write!(f, "{kind}"),
        }
    }
}

struct DialAttempts<'a>(&'a [DialAttempt]);

impl fmt::Display for DialAttempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no address to dial");
        }
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", a.ip, a.failure)?;
        }
        Ok(())
    }
}

/// Where to connect: a domain name to resolve, or an IP literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name (lowercase A-labels, no trailing dot).
    Domain(&'a str),
    /// An address literal.
    Ip(IpAddr),
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::Ip(ip) => ip.fmt(f),
        }
    }
}

/// A connection and the address it reached.
#[derive(Debug)]
pub struct Connected {
    /// The TCP stream.
    pub stream: TcpStream,
    /// The address connected to (`resolved_ip`).
    pub ip: IpAddr,
}

/// Resolves `host` (unless it is a literal), refuses it if any of its addresses is
/// special-purpose, and connects to `port`: the first IPv6 address first, then, only if that
/// dial fails, the first IPv4 address. Each dial is bounded by `connect_timeout`.
///
/// `on_dial` is told each address just before it is dialled, so that a caller whose deadline
/// cuts this short can still say which address it was talking to.
pub async fn connect(
    dns: &DnsClient,
    policy: AddressPolicy,
    host: Host<'_>,
    port: u16,
    connect_timeout: Duration,
    on_dial: &mut (dyn FnMut(IpAddr) + Send),
) -> Result<Connected, NetError> {
    let addresses = match host {
        Host::Ip(ip) => vec![ip],
        Host::Domain(name) => resolve(dns, name).await?,
    };
    let mut allowed = Vec::with_capacity(addresses.len());
    for ip in addresses {
        allowed.push(policy.check(ip).map_err(NetError::Forbidden)?);
    }
    let mut attempts = Vec::new();
    for ip in dial_order(&allowed) {
        on_dial(ip);
        let dial = TcpStream::connect(SocketAddr::new(ip, port));
        let failure = match tokio::time::timeout(connect_timeout, dial).await {
            Ok(Ok(stream)) => return Ok(Connected { stream, ip }),
            Ok(Err(e)) => DialFailure::Io(e.kind()),
            Err(_) => DialFailure::TimedOut {
                ms: u64::try_from(connect_timeout.as_millis()).unwrap_or(u64::MAX),
            },
        };
        attempts.push(DialAttempt { ip, port, failure });
    }
    Err(NetError::Dial { attempts })
}

/// The addresses of `name`: AAAA and A asked in parallel through the perspective's resolver,
/// in answer order, IPv6 first.
///
/// A failed lookup of one family is tolerated when the other family has addresses (broken
/// AAAA handling at an authoritative server is common and is not the target's fault), except
/// for a DNSSEC validation failure, which always fails the resolution: a bogus answer may be
/// an attack, and which family it hit does not make it safer.
pub async fn resolve(dns: &DnsClient, name: &str) -> Result<Vec<IpAddr>, NetError> {
    let (aaaa, a) = tokio::join!(
        dns.lookup(name, RecordType::AAAA),
        dns.lookup(name, RecordType::A)
    );
    for failure in [&aaaa, &a].into_iter().filter_map(|r| r.as_ref().err()) {
        if failure.dnssec {
            return Err(lookup_error(name, failure));
        }
    }
    let addresses: Vec<IpAddr> = [&aaaa, &a]
        .into_iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(addresses_of)
        .collect();
    if !addresses.is_empty() {
        return Ok(addresses);
    }
    match (&aaaa, &a) {
        (Err(failure), _) | (_, Err(failure)) => Err(lookup_error(name, failure)),
        (Ok(x), Ok(y))
            if x.rcode == ResponseCode::NXDomain && y.rcode == ResponseCode::NXDomain =>
        {
            Err(NetError::NoSuchName {
                host: name.to_owned(),
            })
        }
        _ => Err(NetError::NoAddresses {
            host: name.to_owned(),
        }),
    }
}

/// The order in which addresses are dialled: the first IPv6 address, then the first IPv4
/// address (at most one of each: one fallback, requirements.md "HTTP methods").
pub fn dial_order(addresses: &[IpAddr]) -> Vec<IpAddr> {
    let v6 = addresses.iter().find(|ip| ip.is_ipv6());
    let v4 = addresses.iter().find(|ip| ip.is_ipv4());
    v6.into_iter().chain(v4).copied().collect()
}

/// The special-purpose range `ip` falls in, most specific first.
pub fn special_range(ip: IpAddr) -> Option<SpecialRange> {
    SPECIAL_RANGES
        .iter()
        .find(|r| in_prefix(ip, r.network, r.prefix_len))
        .copied()
}

fn lookup_error(name: &str, failure: &LookupFailure) -> NetError {
    NetError::Lookup {
        host: name.to_owned(),
        dnssec: failure.dnssec,
        message: failure.message.clone(),
    }
}

fn addresses_of(answer: &DnsAnswer) -> impl Iterator<Item = IpAddr> + '_ {
    answer.records.iter().filter_map(|r| match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    })
}

/// The IPv4 address an IPv6 address reaches through translation or tunnelling, if any:
/// the last 32 bits of the NAT64 well-known prefix 64:ff9b::/96 (RFC 6052 section 2.1), or
/// bits 16–47 of a 6to4 address in 2002::/16 (RFC 3056 section 2).
fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    if in_prefix(
        IpAddr::V6(ip),
        IpAddr::V6(NAT64_WELL_KNOWN.0),
        NAT64_WELL_KNOWN.1,
    ) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if in_prefix(IpAddr::V6(ip), IpAddr::V6(SIX_TO_FOUR.0), SIX_TO_FOUR.1) {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Whether `ip` lies in `network/len` (different families never match).
fn in_prefix(ip: IpAddr, network: IpAddr, len: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// 2000::/3: global unicast (RFC 4291 section 2.4; IANA IPv6 Address Space registry).
const GLOBAL_UNICAST: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3);
/// 64:ff9b::/96: the NAT64 well-known prefix (RFC 6052 section 2.1). IANA marks it globally
/// reachable; RFC 6052 section 3.1 forbids it to embed non-global IPv4 addresses, so the
/// embedded address is checked.
const NAT64_WELL_KNOWN: (Ipv6Addr, u8) = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);
/// 2002::/16: 6to4 (RFC 3056). Packets reach the embedded IPv4 address through a relay, so
/// that address is checked; a 6to4 address embedding a public IPv4 address is allowed.
const SIX_TO_FOUR: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16);

const fn v4(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    len: u8,
    name: &'static str,
    rfc: &'static str,
) -> SpecialRange {
    SpecialRange {
        network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        prefix_len: len,
        name,
        reference: rfc,
    }
}

const fn v6(segments: [u16; 8], len: u8, name: &'static str, rfc: &'static str) -> SpecialRange {
    let [a, b, c, d, e, f, g, h] = segments;
    SpecialRange {
        network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
        prefix_len: len,
        name,
        reference: rfc,
    }
}

/// The ranges never dialled: the IANA IPv4 and IPv6 Special-Purpose Address Registries
/// (RFC 6890) and the non-unicast blocks, most specific first within a block.
///
/// Deliberately stricter than "globally reachable = false": 192.0.0.0/24 and 2001::/23 are
/// refused whole, although IANA marks a few anycast services inside them as globally
/// reachable (PCP and TURN anycast, RFC 7723 and RFC 8155; AMT, AS112-v6, ORCHIDv2, DRIP
/// DETs). None of them hosts a website or a TLS server whose control is being validated.
/// AS112 (192.31.196.0/24, 192.175.48.0/24) and AMT (192.52.193.0/24) are globally reachable
/// unicast and are not listed.
///
/// Teredo (2001::/32, RFC 4380) is refused with the rest of 2001::/23: its traffic reaches
/// the client through a relay at an address that cannot be checked here. 6to4 and the NAT64
/// well-known prefix are handled by checking the IPv4 address they embed (see
/// [`AddressPolicy::check`]); IPv4-mapped addresses are checked as IPv4.
// A data table: one range per line reads better than rustfmt's layout.
#[rustfmt::skip]
pub const SPECIAL_RANGES: &[SpecialRange] = &[
    // IPv4 (IANA IPv4 Special-Purpose Address Registry, and the non-unicast blocks)
    v4(0, 0, 0, 0, 8,             "\"this network\"",                      "RFC 791 section 3.2"),
    v4(10, 0, 0, 0, 8,            "private-use",                           "RFC 1918"),
    v4(100, 64, 0, 0, 10,         "shared address space (carrier-grade NAT)", "RFC 6598"),
    v4(127, 0, 0, 0, 8,           "loopback",                              "RFC 1122 section 3.2.1.3"),
    v4(169, 254, 0, 0, 16,        "link-local",                            "RFC 3927"),
    v4(172, 16, 0, 0, 12,         "private-use",                           "RFC 1918"),
    v4(192, 0, 0, 0, 24,          "IETF protocol assignments",             "RFC 6890 section 2.1"),
    v4(192, 0, 2, 0, 24,          "documentation (TEST-NET-1)",            "RFC 5737"),
    v4(192, 88, 99, 0, 24,        "deprecated 6to4 relay anycast",         "RFC 7526"),
    v4(192, 168, 0, 0, 16,        "private-use",                           "RFC 1918"),
    v4(198, 18, 0, 0, 15,         "benchmarking",                          "RFC 2544"),
    v4(198, 51, 100, 0, 24,       "documentation (TEST-NET-2)",            "RFC 5737"),
    v4(203, 0, 113, 0, 24,        "documentation (TEST-NET-3)",            "RFC 5737"),
    v4(224, 0, 0, 0, 4,           "multicast",                             "RFC 5771"),
    v4(255, 255, 255, 255, 32,    "limited broadcast",                     "RFC 919 section 7"),
    v4(240, 0, 0, 0, 4,           "reserved for future use",               "RFC 1112 section 4"),
    // IPv6 (IANA IPv6 Special-Purpose Address Registry, and the non-unicast blocks)
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128,            "loopback",                        "RFC 4291"),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128,            "unspecified address",             "RFC 4291"),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96,             "deprecated IPv4-compatible",      "RFC 4291 section 2.5.5.1"),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48,     "local-use IPv4/IPv6 translation", "RFC 8215"),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64,         "discard-only",                    "RFC 6666"),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32,        "Teredo",                          "RFC 4380"),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48,        "benchmarking",                    "RFC 5180"),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23,        "IETF protocol assignments",       "RFC 2928"),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32,    "documentation",                   "RFC 3849"),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20,        "documentation",                   "RFC 9637"),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16,        "segment routing (SRv6) SIDs",     "RFC 9602"),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7,         "unique-local",                    "RFC 4193"),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10,        "link-local unicast",              "RFC 4291"),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10,        "deprecated site-local",           "RFC 3879"),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8,         "multicast",                       "RFC 4291"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn address_policy_table() {
        struct Case {
            name: &'static str,
            ip: &'static str,
            /// The prefix of the range that refuses it, or `None` when it may be dialled.
            want: Option<&'static str>,
        }
        let refused = |name, ip, range| Case {
            name,
            ip,
            want: Some(range),
        };
        let allowed = |name, ip| Case {
            name,
            ip,
            want: None,
        };
        let cases = [
            refused("this network", "0.1.2.3", "0.0.0.0/8"),
            refused("rfc 1918 10/8", "10.0.0.1", "10.0.0.0/8"),
            refused("rfc 1918 172.16/12", "172.31.255.254", "172.16.0.0/12"),
            refused("rfc 1918 192.168/16", "192.168.1.1", "192.168.0.0/16"),
            refused("cgnat", "100.64.0.1", "100.64.0.0/10"),
            refused("cgnat top", "100.127.255.255", "100.64.0.0/10"),
            allowed("just above cgnat", "100.128.0.1"),
            refused("loopback v4", "127.0.0.1", "127.0.0.0/8"),
            refused("loopback v4 anywhere in /8", "127.53.0.9", "127.0.0.0/8"),
            refused("link-local v4", "169.254.169.254", "169.254.0.0/16"),
            refused("ietf protocol assignments", "192.0.0.8", "192.0.0.0/24"),
            refused(
                "pcp anycast refused with its block",
                "192.0.0.9",
                "192.0.0.0/24",
            ),
            refused("test-net-1", "192.0.2.1", "192.0.2.0/24"),
            refused("6to4 relay anycast", "192.88.99.1", "192.88.99.0/24"),
            refused("benchmarking", "198.19.0.1", "198.18.0.0/15"),
            refused("test-net-2", "198.51.100.7", "198.51.100.0/24"),
            refused("test-net-3", "203.0.113.5", "203.0.113.0/24"),
            refused("multicast v4", "224.0.0.251", "224.0.0.0/4"),
            refused("reserved", "240.0.0.1", "240.0.0.0/4"),
            refused("broadcast", "255.255.255.255", "255.255.255.255/32"),
            allowed("public v4", "8.8.8.8"),
            allowed("as112 is global unicast", "192.31.196.1"),
            allowed("just below rfc 1918 172", "172.15.255.255"),
            refused("loopback v6", "::1", "::1/128"),
            refused("unspecified v6", "::", "::/128"),
            refused("ipv4-compatible", "::10.0.0.1", "::/96"),
            refused("ipv4-mapped private", "::ffff:10.0.0.1", "10.0.0.0/8"),
            refused("ipv4-mapped loopback", "::ffff:127.0.0.1", "127.0.0.0/8"),
            allowed("ipv4-mapped public", "::ffff:8.8.8.8"),
            refused("nat64 of private", "64:ff9b::10.1.2.3", "10.0.0.0/8"),
            allowed("nat64 of public", "64:ff9b::8.8.4.4"),
            refused("nat64 local use", "64:ff9b:1::1", "64:ff9b:1::/48"),
            refused("discard-only", "100::1", "100::/64"),
            refused("teredo", "2001:0:4136:e378::1", "2001::/32"),
            refused("benchmarking v6", "2001:2::1", "2001:2::/48"),
            refused("ietf protocol assignments v6", "2001:1::1", "2001::/23"),
            refused("documentation v6", "2001:db8::1", "2001:db8::/32"),
            refused("documentation 3fff", "3fff:1::1", "3fff::/20"),
            refused("6to4 of private", "2002:c0a8:101::1", "192.168.0.0/16"),
            allowed("6to4 of public", "2002:808:808::1"),
            refused("srv6", "5f00::1", "5f00::/16"),
            refused("unique-local fc", "fc00::1", "fc00::/7"),
            refused("unique-local fd", "fd12:3456::1", "fc00::/7"),
            refused("link-local v6", "fe80::1", "fe80::/10"),
            refused("site-local", "fec0::1", "fec0::/10"),
            refused("multicast v6", "ff02::1", "ff00::/8"),
            allowed("public v6", "2606:4700::1111"),
        ];
        let policy = AddressPolicy::default();
        for c in cases {
            let ip: IpAddr = c.ip.parse().unwrap();
            let got = policy.check(ip).map_err(|f| match f.reason {
                ForbiddenReason::Special(r) => format!("{}/{}", r.network, r.prefix_len),
                ForbiddenReason::NotGlobalUnicast => "not global unicast".to_owned(),
            });
            match c.want {
                None => assert_eq!(got, Ok(ip.to_canonical()), "case {:?}", c.name),
                Some(range) => assert_eq!(got, Err(range.to_owned()), "case {:?}", c.name),
            }
        }
    }

    #[test]
    fn ipv6_outside_global_unicast_is_refused() {
        for ip in ["4000::1", "1::1", "8000::1"] {
            let got = AddressPolicy::default().check(ip.parse().unwrap());
            assert_eq!(
                got.map_err(|f| f.reason),
                Err(ForbiddenReason::NotGlobalUnicast),
                "{ip}"
            );
        }
    }

    #[test]
    fn the_danger_setting_admits_loopback_and_nothing_else() {
        let danger = AddressPolicy {
            danger_allow_loopback: true,
        };
        for (ip, want) in [
            ("127.0.0.1", Some("127.0.0.1")),
            ("127.0.0.53", Some("127.0.0.53")),
            ("::1", Some("::1")),
            ("::ffff:127.0.0.1", Some("127.0.0.1")),
            ("10.0.0.1", None),
            ("169.254.169.254", None),
            ("fc00::1", None),
            ("::", None),
            ("0.0.0.0", None),
        ] {
            let got = danger.check(ip.parse().unwrap()).ok();
            assert_eq!(got, want.map(|w| w.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn refusals_name_the_address_and_the_rule() {
        let policy = AddressPolicy::default();
        let cases = [
            (
                "203.0.113.5",
                "203.0.113.5: is in 203.0.113.0/24, documentation (TEST-NET-3) (RFC 5737); such addresses are never dialled",
            ),
            (
                "64:ff9b::a00:1",
                "64:ff9b::a00:1: embeds 10.0.0.1, which is in 10.0.0.0/8, private-use (RFC 1918); such addresses are never dialled",
            ),
            (
                "4000::1",
                "4000::1: is not a global unicast address (outside 2000::/3, RFC 4291); such addresses are never dialled",
            ),
        ];
        for (ip, want) in cases {
            let err = policy.check(ip.parse().unwrap()).unwrap_err();
            assert_eq!(err.to_string(), want, "{ip}");
        }
    }

    #[test]
    fn every_range_is_in_canonical_form() {
        // A network address with host bits set would never match what its text claims.
        for r in SPECIAL_RANGES {
            assert!(in_prefix(r.network, r.network, r.prefix_len), "{r}");
            let host_bits_clear = match r.network {
                IpAddr::V4(a) => {
                    u32::from(a)
                        & !u32::MAX
                            .checked_shl(32 - u32::from(r.prefix_len))
                            .unwrap_or(0)
                        == 0
                }
                IpAddr::V6(a) => {
                    u128::from(a)
                        & !u128::MAX
                            .checked_shl(128 - u32::from(r.prefix_len))
                            .unwrap_or(0)
                        == 0
                }
            };
            assert!(host_bits_clear, "{r}");
        }
    }

    #[test]
    fn dial_order_is_one_ipv6_then_one_ipv4() {
        let ips = |s: &[&str]| -> Vec<IpAddr> { s.iter().map(|x| x.parse().unwrap()).collect() };
        let cases: [(&[&str], &[&str]); 4] = [
            (
                &["192.0.2.1", "2001:db8::1", "192.0.2.2", "2001:db8::2"],
                &["2001:db8::1", "192.0.2.1"],
            ),
            (&["192.0.2.1", "192.0.2.2"], &["192.0.2.1"]),
            (&["2001:db8::1"], &["2001:db8::1"]),
            (&[], &[]),
        ];
        for (input, want) in cases {
            assert_eq!(dial_order(&ips(input)), ips(want), "{input:?}");
        }
    }

    #[test]
    fn dial_errors_name_each_address() {
        let err = NetError::Dial {
            attempts: vec![
                DialAttempt {
                    ip: "2001:db8::1".parse().unwrap(),
                    port: 80,
                    failure: DialFailure::Io(std::io::ErrorKind::NetworkUnreachable),
                },
                DialAttempt {
                    ip: "203.0.113.5".parse().unwrap(),
                    port: 80,
                    failure: DialFailure::Io(std::io::ErrorKind::ConnectionRefused),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "2001:db8::1: network unreachable; 203.0.113.5: connection refused"
        );
        let timeout = DialFailure::TimedOut { ms: 3000 };
        assert_eq!(timeout.to_string(), "connection timed out after 3000 ms");
    }
}
