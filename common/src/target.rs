//! Target normalisation: the `domain_or_ip_target` of a request (api.md section 1) becomes a
//! [`Target`], a value that can only hold a name or address a CA may validate.
//!
//! What a [`Target`] proves once parsed:
//!
//! * **An IP address** is a strict literal: IPv4 in dotted-quad form with exactly four decimal
//!   parts and no leading zeros (what [`std::net::Ipv4Addr`]'s parser accepts), or IPv6 as
//!   [`std::net::Ipv6Addr`] parses it, optionally in brackets (`[2001:db8::1]`). Zone
//!   identifiers (`fe80::1%eth0`, RFC 4007 §11) are refused: they name a link of the sending
//!   host and mean nothing to a perspective. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`,
//!   RFC 4291 §2.5.5.2) stays IPv6: the caller asked about that literal, and converting it would
//!   silently change the reverse zone (`ip6.arpa` versus `in-addr.arpa`) and the connection
//!   family. The text form is the RFC 5952 canonical one (the `Display` of `Ipv6Addr`).
//! * **A domain name** is in A-label form (RFC 5890 §2.3.2.1), lowercase, without the trailing
//!   dot, with at least two labels, and every label is either a Non-Reserved LDH label or a
//!   P-Label (an `xn--` label whose Punycode, RFC 3492, decodes to a U-label that is valid under
//!   UTS-46 / IDNA2008 and re-encodes to the same label). Those are the labels the Baseline
//!   Requirements allow in a `dNSName` (BR §7.1.2.7.12, §7.1.4.2 before BR 2.0.0; we add the
//!   IDNA validity of the U-label), so a name that passes here can appear in a certificate.
//!   Underscores are therefore refused: they are fine in DNS owner names (RFC 2181 §11) but
//!   not in a host name.
//! * **A wildcard** is one leading `*.` label in front of such a domain name; nothing else.
//!
//! Input is taken as given: no trimming. Whitespace and control characters anywhere are an
//! error. One trailing ASCII dot (the root, RFC 1035 §3.1) is accepted and removed.
//!
//! Unicode input is converted with UTS-46 (Unicode IDNA Compatibility Processing,
//! <https://www.unicode.org/reports/tr46/>) using *non-transitional* processing, as IDNA2008
//! (RFC 5891 §5) does: `faß.de` becomes `xn--fa-hia.de`, not `fass.de`. The UTS-46 mapping
//! step applies, so case folding and width folding happen (`ＥＸＡＭＰＬＥ.com` is
//! `example.com`), and code points UTS-46 marks *ignored* (such as U+200B ZERO WIDTH SPACE or
//! U+00AD SOFT HYPHEN) disappear. Emoji and other symbols follow the `idna` crate's UTS-46 data:
//! it implements UTS-46 without the optional IDNA2008-only exclusions, so a label such as `☕`
//! is accepted and becomes `xn--53h`. IDNA2008 alone (RFC 5892) would refuse it; we follow
//! UTS-46 because api.md prescribes it and the WHATWG URL Standard (so every browser) uses it,
//! and the tests pin the behaviour. Policy on such names belongs to the CA, not to this parser.
//!
//! [`reverse_name`] builds the `in-addr.arpa` / `ip6.arpa` name of an address (RFC 1035 §3.5,
//! RFC 3596 §2.5) and [`parse_name_prefix`] / [`prefixed_name`] build the owner names of DNS
//! validation methods (`_acme-challenge.<name>` and the like).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// A validated, normalised check target: what `domain_or_ip_target` names once parsed.
///
/// Build one with [`Target::parse`] (or `str::parse`, or serde from a JSON string); its
/// [`Display`](fmt::Display) form is the normalised text (`*.example.com`, `example.com`,
/// `192.0.2.1`, `2001:db8::1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A domain name, possibly a wildcard.
    Domain(DomainTarget),
    /// An IP address literal (BR §3.2.2.5 validates these).
    Ip(IpAddr),
}

/// A domain name target in A-label form, possibly with a leading wildcard label.
///
/// Invariants (set by [`Target::parse`], the only constructor): the name is ASCII, lowercase,
/// has no trailing dot, at least two labels, labels of 1–63 octets that are Non-Reserved LDH
/// labels or valid P-Labels, a last label that is not all-numeric, and is at most 253 octets
/// long counting the `*.` of a wildcard (RFC 1035 §2.3.4; 255 octets on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainTarget {
    /// The name without the `*.` wildcard prefix.
    name: String,
    wildcard: bool,
}

impl DomainTarget {
    /// The name in A-labels, lowercase, without a trailing dot and **without** the `*.` of a
    /// wildcard: the name whose DNS records the checks read.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the target was given as `*.<name>` (a Wildcard Domain Name, BR §1.6.1).
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The labels of [`name`](Self::name), leftmost first; the wildcard label is not included.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.name.split('.')
    }

    /// The name and each parent down to (excluding) the root, closest first:
    /// `a.b.example.com` gives `["a.b.example.com", "b.example.com", "example.com", "com"]`.
    ///
    /// This is the order in which CAA climbs the tree (RFC 8659 §3, BR §3.2.2.8).
    pub fn self_and_ancestors(&self) -> Vec<&str> {
        let mut names = vec![self.name.as_str()];
        names.extend(
            self.name
                .match_indices('.')
                .filter_map(|(dot, _)| self.name.get(dot + 1..)),
        );
        names
    }
}

/// The normalised text: `*.example.com` for a wildcard, `example.com` otherwise.
impl fmt::Display for DomainTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str(WILDCARD_PREFIX)?;
        }
        f.write_str(&self.name)
    }
}

impl Target {
    /// Parses and normalises a `domain_or_ip_target`.
    ///
    /// In order: the input must be non-empty and free of whitespace and control characters; a
    /// leading `*.` marks a wildcard; then a bracketed literal or anything with a colon must be
    /// an IPv6 address and a strict dotted quad is an IPv4 address (either is refused after a
    /// wildcard); otherwise one trailing dot is dropped and the name goes through UTS-46
    /// ToASCII (non-transitional, UseSTD3ASCIIRules, CheckHyphens, VerifyDnsLength; RFC 5891
    /// §5) followed by our own label checks. The module documentation lists what the result
    /// guarantees.
    ///
    /// # Errors
    ///
    /// A [`TargetError`] naming the offending label or literal.
    pub fn parse(input: &str) -> Result<Self, TargetError> {
        if input.is_empty() {
            return Err(TargetError::Empty);
        }
        reject_invisible(input)?;
        let (wildcard, rest) = match input.strip_prefix(WILDCARD_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        match parse_ip_literal(rest) {
            Some(Ok(_)) if wildcard => return Err(TargetError::WildcardIp),
            Some(ip) => return ip.map(Target::Ip),
            None => {}
        }

        let base = rest.strip_suffix('.').unwrap_or(rest);
        // "*" alone, "**.b", "*a.b", "a.*.b" and "*.*.b" all leave a '*' in the base name.
        if base.contains('*') {
            return Err(TargetError::WildcardMisplaced);
        }
        if base.is_empty() {
            return Err(if wildcard {
                TargetError::TooFewLabels {
                    name: input.to_owned(),
                }
            } else {
                TargetError::Empty
            });
        }

        let name = to_a_labels(base)?;
        check_name_shape(&name, wildcard)?;
        Ok(Target::Domain(DomainTarget { name, wildcard }))
    }

    /// Whether this is a wildcard domain target (`*.example.com`). IP targets never are.
    pub fn is_wildcard(&self) -> bool {
        match self {
            Target::Domain(domain) => domain.is_wildcard(),
            Target::Ip(_) => false,
        }
    }

    /// The domain target, if this is one.
    pub fn as_domain(&self) -> Option<&DomainTarget> {
        match self {
            Target::Domain(domain) => Some(domain),
            Target::Ip(_) => None,
        }
    }

    /// The address, if this is an IP target.
    pub fn as_ip(&self) -> Option<IpAddr> {
        match self {
            Target::Domain(_) => None,
            Target::Ip(ip) => Some(*ip),
        }
    }
}

/// The normalised text form: `*.example.com`, `example.com`, `192.0.2.1`, or `2001:db8::1`
/// (IPv6 without brackets, in the RFC 5952 canonical form that `Ipv6Addr`'s `Display` writes).
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Domain(domain) => domain.fmt(f),
            Target::Ip(ip) => ip.fmt(f),
        }
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Target::parse(input)
    }
}

/// Serialises as the normalised text form.
impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Deserialises from a string through [`Target::parse`]; the error message is the
/// [`TargetError`] message.
impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(deserializer)?;
        Target::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The reverse-mapping name of an address, without a trailing dot.
///
/// IPv4 (RFC 1035 §3.5): the four octets in reverse order under `in-addr.arpa`, so
/// `192.0.2.1` gives `1.2.0.192.in-addr.arpa`. IPv6 (RFC 3596 §2.5): the 32 nibbles in
/// reverse order, lowercase hex, under `ip6.arpa`, so `2001:db8::1` gives
/// `1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa`.
/// An IPv4-mapped IPv6 address stays under `ip6.arpa` (see the module documentation).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{IPV4_REVERSE_ZONE}")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(IPV6_REVERSE_NAME_LEN);
            for byte in v6.octets().iter().rev() {
                name.push(hex_digit(byte & 0x0f));
                name.push('.');
                name.push(hex_digit(byte >> 4));
                name.push('.');
            }
            name.push_str(IPV6_REVERSE_ZONE);
            name
        }
    }
}

/// Parses a DNS label prefix that a validation method puts in front of the target name, such
/// as `_acme-challenge`, `_validation-persist` or `sub._foo` (the `dns_name_prefix` of
/// api.md), and returns it lowercased (DNS names compare case-insensitively, RFC 4343).
///
/// A prefix is one or more dot-separated labels of 1–63 octets (RFC 1035 §2.3.4) made of
/// ASCII letters, digits, `-` and `_`. Unlike target labels, underscores are allowed (these are
/// owner names of records, not host names: RFC 2181 §11, RFC 8552) and hyphen positions are
/// not restricted. No leading, trailing or doubled dot. The length of the whole name is checked
/// by [`prefixed_name`].
///
/// # Errors
///
/// [`TargetError::Empty`], [`TargetError::LabelEmpty`], [`TargetError::LabelTooLong`],
/// [`TargetError::InvalidCharacter`], or [`TargetError::TooLong`] if the prefix alone exceeds
/// 253 octets.
pub fn parse_name_prefix(prefix: &str) -> Result<String, TargetError> {
    if prefix.is_empty() {
        return Err(TargetError::Empty);
    }
    for label in prefix.split('.') {
        if label.is_empty() {
            return Err(TargetError::LabelEmpty);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(TargetError::LabelTooLong {
                label: label.to_owned(),
                len: label.len(),
            });
        }
        if let Some(character) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(TargetError::InvalidCharacter {
                label: label.to_owned(),
                character,
            });
        }
    }
    if prefix.len() > MAX_NAME_LEN {
        return Err(TargetError::TooLong { len: prefix.len() });
    }
    Ok(prefix.to_ascii_lowercase())
}

/// `<prefix>.<name>`: the owner name a DNS validation method queries, such as
/// `_acme-challenge.example.com`.
///
/// `prefix` goes through [`parse_name_prefix`]. `name` is taken as already normalised: pass
/// [`DomainTarget::name`] or the output of [`reverse_name`]. The result must fit in 253 octets
/// (RFC 1035 §2.3.4: 255 on the wire).
///
/// # Errors
///
/// Any error of [`parse_name_prefix`]; [`TargetError::Empty`] for an empty `name`;
/// [`TargetError::TooLong`] when the joined name is longer than 253 octets.
pub fn prefixed_name(prefix: &str, name: &str) -> Result<String, TargetError> {
    let prefix = parse_name_prefix(prefix)?;
    if name.is_empty() {
        return Err(TargetError::Empty);
    }
    let joined = format!("{prefix}.{name}");
    if joined.len() > MAX_NAME_LEN {
        return Err(TargetError::TooLong { len: joined.len() });
    }
    Ok(joined)
}

/// Why a target, a name prefix or a prefixed name was refused. The messages name the
/// offending label as the caller wrote it where that is possible, and are meant for the
/// `validation_issues` of a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Nothing to parse (also a lone `.`, the root).
    #[error("the name is empty")]
    Empty,
    /// More than 253 octets in A-label form without the trailing dot (RFC 1035 §2.3.4).
    #[error("the name is {len} octets long in A-label form; the limit is 253 (RFC 1035 §2.3.4)")]
    TooLong {
        /// Length of the name in octets.
        len: usize,
    },
    /// `..`, a leading dot, or a dot after the one trailing dot allowed.
    #[error("the name has an empty label (\"..\", a leading dot, or more than one trailing dot)")]
    LabelEmpty,
    /// A label longer than 63 octets in A-label form (RFC 1035 §2.3.4).
    #[error(
        "label {label:?} is {len} octets long in A-label form; the limit is 63 (RFC 1035 §2.3.4)"
    )]
    LabelTooLong {
        /// The label as given.
        label: String,
        /// Its length in octets in A-label form.
        len: usize,
    },
    /// A character outside the allowed set: letters, digits and hyphen in a target label
    /// (BR §7.1.2.7.12: LDH labels only, so no underscore), plus underscore in a name prefix.
    /// Whitespace and control characters are reported here too.
    #[error(
        "label {label:?} contains the character {character:?} (U+{:04X}), which is not allowed here",
        u32::from(*.character)
    )]
    InvalidCharacter {
        /// The label as given.
        label: String,
        /// The first character refused.
        character: char,
    },
    /// A label that starts or ends with a hyphen (RFC 1123 §2.1, RFC 5891 §4.2.3.1).
    #[error("label {label:?} starts or ends with a hyphen")]
    LabelHyphen {
        /// The label as given.
        label: String,
    },
    /// A label with `--` in positions 3 and 4 that is not an `xn--` label: a Reserved LDH
    /// label (RFC 5890 §2.3.1), which the BRs do not allow in a certificate, or a U-label
    /// shaped so (RFC 5891 §4.2.3.1).
    #[error(
        "label {label:?} has \"--\" in the third and fourth positions, which only an xn-- \
         A-label may have (RFC 5890 §2.3.1)"
    )]
    ReservedHyphens {
        /// The label as given.
        label: String,
    },
    /// An `xn--` label that is not a valid A-label (RFC 5890 §2.3.2.1): its remainder is not
    /// Punycode (RFC 3492), decodes to nothing or to plain ASCII, does not re-encode to the
    /// same label (so it is not a P-Label, BR §1.6.1), or decodes to a U-label that UTS-46 /
    /// IDNA2008 refuses (RFC 5891 §5.4), for example one with uppercase or control characters.
    #[error(
        "label {label:?} starts with xn-- but is not a valid A-label: it must be Punycode \
         (RFC 3492) of a valid internationalised label that re-encodes to the same text"
    )]
    InvalidPunycode {
        /// The label as given.
        label: String,
    },
    /// A label given in Unicode that UTS-46 processing refuses: a disallowed code point, a
    /// leading combining mark (RFC 5891 §5.4), a failed CONTEXTJ rule (RFC 5892), a mix of
    /// left-to-right and right-to-left characters (RFC 5893), and so on.
    #[error(
        "label {label:?} is not a valid internationalised label under UTS-46 / IDNA2008 (RFC 5891 §5)"
    )]
    Idna {
        /// The label as given.
        label: String,
    },
    /// UTS-46 refuses the name although each label alone passes: in practice the Bidi rule
    /// (RFC 5893), which looks at all labels together.
    #[error(
        "{name:?} is not a valid internationalised domain name under UTS-46 / IDNA2008 \
         (for example the RFC 5893 Bidi rule)"
    )]
    IdnaName {
        /// The name as given (without a wildcard prefix).
        name: String,
    },
    /// A `*` anywhere but as the whole leftmost label.
    #[error("a wildcard is only allowed as the whole leftmost label, as in \"*.example.com\"")]
    WildcardMisplaced,
    /// `*.` in front of an IP address.
    #[error("an IP address cannot be a wildcard")]
    WildcardIp,
    /// A single label (a bare TLD such as `com`), also after the `*.` of a wildcard.
    #[error("{name:?} has fewer than two labels; a bare top-level domain is not a target")]
    TooFewLabels {
        /// The name in A-labels (as given when nothing follows the `*.`).
        name: String,
    },
    /// The last label is all digits, as in `1.2.3` or `example.123`: not a strict IPv4
    /// literal, and not a domain name either (no TLD is numeric; RFC 1123 §2.1, RFC 3696 §2).
    #[error(
        "the last label {label:?} is all-numeric: the name is neither a domain name nor a \
         dotted-quad IPv4 address"
    )]
    NumericTld {
        /// The last label as given.
        label: String,
    },
    /// Something bracketed or with a colon that is not an IPv6 address, such as `[1.2.3.4]`.
    #[error("{input:?} is not a valid IP address literal")]
    InvalidIp {
        /// The literal as given.
        input: String,
    },
    /// An IPv6 address with a zone identifier (RFC 4007 §11), such as `fe80::1%eth0`.
    #[error("{input:?} has an IPv6 zone identifier, which a target cannot have")]
    IpZoneId {
        /// The literal as given.
        input: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Refuses whitespace and control characters anywhere (the input is not trimmed), naming the
/// label that holds the first one. UTS-46 with STD3 rules would refuse them too, but this way
/// the message says which character it was.
fn reject_invisible(input: &str) -> Result<(), TargetError> {
    for label in input.split('.') {
        if let Some(character) = label.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(TargetError::InvalidCharacter {
                label: label.to_owned(),
                character,
            });
        }
    }
    Ok(())
}

/// `Some` when `input` is, or is meant as, an IP literal: bracketed or containing a colon
/// (IPv6; a domain name can hold neither) or a strict dotted quad (IPv4). `None` means "treat
/// it as a domain name", which also refuses `1.2.3` and `01.2.3.4` through the numeric-TLD rule.
fn parse_ip_literal(input: &str) -> Option<Result<IpAddr, TargetError>> {
    if let Some(inner) = input.strip_prefix('[') {
        return Some(match inner.strip_suffix(']') {
            Some(inner) => parse_ipv6(inner, input),
            None => Err(TargetError::InvalidIp {
                input: input.to_owned(),
            }),
        });
    }
    if input.contains(':') {
        return Some(parse_ipv6(input, input));
    }
    // std's parser is strict: exactly four decimal parts of 0–255, no leading zeros, no
    // shorthand forms (unlike inet_aton, which reads "1.2.3" or "0x7f.1").
    input.parse::<Ipv4Addr>().ok().map(|v4| Ok(IpAddr::V4(v4)))
}

fn parse_ipv6(text: &str, input: &str) -> Result<IpAddr, TargetError> {
    match text.parse::<Ipv6Addr>() {
        Ok(v6) => Ok(IpAddr::V6(v6)),
        Err(_) if text.contains('%') => Err(TargetError::IpZoneId {
            input: input.to_owned(),
        }),
        Err(_) => Err(TargetError::InvalidIp {
            input: input.to_owned(),
        }),
    }
}

/// UTS-46 ToASCII of a name (without wildcard and trailing dot) and our label checks on the
/// result; returns the lowercase A-label form.
///
/// The strict UTS-46 run (STD3 deny list, CheckHyphens, VerifyDnsLength: the IDNA2008
/// registration-like profile of `idna::domain_to_ascii_strict`) decides; its error carries no
/// detail, so on failure [`diagnose`] works out which label broke which rule.
fn to_a_labels(name: &str) -> Result<String, TargetError> {
    let Some(ascii) = strict_to_ascii(name) else {
        return Err(diagnose(name));
    };
    let mut ascii = ascii.into_owned();
    // ToASCII already lowercases; this only guards the invariant.
    ascii.make_ascii_lowercase();
    check_labels(&ascii, name)?;
    Ok(ascii)
}

/// The most specific reason the strict UTS-46 run refused `name`.
///
/// A lenient run (no deny list, no hyphen or length checks) still does the mapping and the
/// IDNA validity checks. If it fails, the first input label that fails alone is the culprit.
/// If it succeeds, the structural label checks on its output find the LDH, hyphen or length
/// problem, or else the strict run on each label alone finds a U-label rule (such as hyphens
/// in positions 3–4 of a label given in Unicode). What remains is a rule across labels (Bidi).
fn diagnose(name: &str) -> TargetError {
    let Some(ascii) = lenient_to_ascii(name) else {
        return name
            .split(UTS46_DOTS)
            .find(|label| !label.is_empty() && lenient_to_ascii(label).is_none())
            .map_or_else(|| idna_name_error(name), label_idna_error);
    };
    if let Err(e) = check_labels(&ascii, name) {
        return e;
    }
    ascii
        .split('.')
        .zip(shown_labels(&ascii, name))
        .find(|(label, _)| strict_to_ascii(label).is_none())
        .map_or_else(
            || idna_name_error(name),
            |(label, shown)| u_label_error(label, shown),
        )
}

/// Why the strict run refuses a label that the lenient run converted to `a_label`: the
/// RFC 5891 §4.2.3.1 hyphen rules on the U-label, which only CheckHyphens applies, or else a
/// generic IDNA error.
fn u_label_error(a_label: &str, shown: &str) -> TargetError {
    let u_label = a_label
        .strip_prefix(ACE_PREFIX)
        .and_then(idna::punycode::decode_to_string);
    if let Some(u_label) = u_label {
        if u_label.starts_with('-') || u_label.ends_with('-') {
            return TargetError::LabelHyphen {
                label: shown.to_owned(),
            };
        }
        if u_label.chars().skip(2).take(2).eq("--".chars()) {
            return TargetError::ReservedHyphens {
                label: shown.to_owned(),
            };
        }
    }
    label_idna_error(shown)
}

/// UTS-46 ToASCII with the strict options (see [`to_a_labels`]).
fn strict_to_ascii(name: &str) -> Option<Cow<'_, str>> {
    Uts46::new()
        .to_ascii(
            name.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            DnsLength::Verify,
        )
        .ok()
}

/// UTS-46 ToASCII with mapping and IDNA validity only: no STD3 deny list, no hyphen checks, no
/// length checks. Used to explain a strict failure, never to accept a name.
fn lenient_to_ascii(name: &str) -> Option<String> {
    Uts46::new()
        .to_ascii(
            name.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .ok()
        .map(Cow::into_owned)
}

/// The error for one label UTS-46 refuses: an `xn--` label is not a valid A-label, anything
/// else is not a valid U-label.
fn label_idna_error(label: &str) -> TargetError {
    let label = label.to_owned();
    if label
        .get(..ACE_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(ACE_PREFIX))
    {
        TargetError::InvalidPunycode { label }
    } else {
        TargetError::Idna { label }
    }
}

fn idna_name_error(name: &str) -> TargetError {
    TargetError::IdnaName {
        name: name.to_owned(),
    }
}

/// The labels to name in errors, index for index with the labels of `ascii`: the labels as the
/// caller wrote them when input and output have the same number of labels (UTS-46 mapping can
/// add dots, for example from U+3002 IDEOGRAPHIC FULL STOP), otherwise the A-labels.
fn shown_labels<'a>(ascii: &'a str, input: &'a str) -> Vec<&'a str> {
    let given: Vec<&str> = input.split('.').collect();
    if given.len() == ascii.split('.').count() {
        given
    } else {
        ascii.split('.').collect()
    }
}

/// Label rules on the ASCII output of ToASCII, then the total length. Errors name the label
/// as the caller wrote it where possible (see [`shown_labels`]).
fn check_labels(ascii: &str, input: &str) -> Result<(), TargetError> {
    for (label, shown) in ascii.split('.').zip(shown_labels(ascii, input)) {
        check_label(label, shown)?;
    }
    if ascii.len() > MAX_NAME_LEN {
        return Err(TargetError::TooLong { len: ascii.len() });
    }
    Ok(())
}

/// One A-label: 1–63 octets (RFC 1035 §2.3.4), LDH only (RFC 1123 §2.1, BR §7.1.2.7.12), no
/// hyphen at either end, `--` in positions 3–4 only in an `xn--` label (RFC 5890 §2.3.1), and
/// every `xn--` label a P-Label.
fn check_label(label: &str, shown: &str) -> Result<(), TargetError> {
    if label.is_empty() {
        return Err(TargetError::LabelEmpty);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(TargetError::LabelTooLong {
            label: shown.to_owned(),
            len: label.len(),
        });
    }
    if let Some(character) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(TargetError::InvalidCharacter {
            label: shown.to_owned(),
            character,
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(TargetError::LabelHyphen {
            label: shown.to_owned(),
        });
    }
    let is_ace = label.starts_with(ACE_PREFIX);
    if label.get(2..4) == Some("--") && !is_ace {
        return Err(TargetError::ReservedHyphens {
            label: shown.to_owned(),
        });
    }
    if is_ace && !is_p_label(label) {
        return Err(TargetError::InvalidPunycode {
            label: shown.to_owned(),
        });
    }
    Ok(())
}

/// Whether a lowercase `xn--` label is a P-Label (BR §1.6.1): the rest decodes as Punycode
/// (RFC 3492 §6.2), the result is not pure ASCII (an A-label stands for a U-label, RFC 5890
/// §2.3.2.1; RFC 5891 §5.4 requires the decoded label to re-encode), and encoding it again
/// (RFC 3492 §6.3) gives back exactly the same label. IDNA validity of the decoded U-label is
/// checked by the UTS-46 run, not here.
fn is_p_label(label: &str) -> bool {
    let Some(encoded) = label.strip_prefix(ACE_PREFIX) else {
        return false;
    };
    let Some(decoded) = idna::punycode::decode_to_string(encoded) else {
        return false;
    };
    !decoded.is_ascii() && idna::punycode::encode_str(&decoded).as_deref() == Some(encoded)
}

/// Rules on the whole A-label name: at least two labels, a last label that is not all-numeric,
/// and at most 253 octets counting the `*.` of a wildcard (the wildcard form is itself a domain
/// name, RFC 4592 §2.1.1, so it must fit too).
fn check_name_shape(name: &str, wildcard: bool) -> Result<(), TargetError> {
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.len() == name.len() {
        return Err(TargetError::TooFewLabels {
            name: name.to_owned(),
        });
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::NumericTld {
            label: last.to_owned(),
        });
    }
    let full_len = name.len() + if wildcard { WILDCARD_PREFIX.len() } else { 0 };
    if full_len > MAX_NAME_LEN {
        return Err(TargetError::TooLong { len: full_len });
    }
    Ok(())
}

fn hex_digit(nibble: u8) -> char {
    char::from(HEX_DIGITS[usize::from(nibble & 0x0f)])
}

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/// RFC 1035 §2.3.4: 255 octets on the wire, which is 253 in text without the trailing dot
/// (one length octet per label plus the root's zero octet).
const MAX_NAME_LEN: usize = 253;

/// RFC 1035 §2.3.4: labels are 63 octets or less.
const MAX_LABEL_LEN: usize = 63;

/// The ACE prefix of an A-label (RFC 5890 §2.3.2.5), compared after lowercasing.
const ACE_PREFIX: &str = "xn--";

/// The only wildcard form allowed: one leftmost `*` label (BR §1.6.1 Wildcard Domain Name).
const WILDCARD_PREFIX: &str = "*.";

/// The characters UTS-46 maps to a label separator (UTS-46 §2.3): FULL STOP, IDEOGRAPHIC FULL
/// STOP, FULLWIDTH FULL STOP, HALFWIDTH IDEOGRAPHIC FULL STOP.
const UTS46_DOTS: [char; 4] = ['.', '\u{3002}', '\u{FF0E}', '\u{FF61}'];

/// RFC 1035 §3.5.
const IPV4_REVERSE_ZONE: &str = "in-addr.arpa";

/// RFC 3596 §2.5.
const IPV6_REVERSE_ZONE: &str = "ip6.arpa";

/// 32 nibbles with a dot each, then `ip6.arpa`.
const IPV6_REVERSE_NAME_LEN: usize = 32 * 2 + IPV6_REVERSE_ZONE.len();

/// Lowercase, as RFC 3596 §2.5 writes the nibbles.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What parsing a target should give.
    #[derive(Debug)]
    enum Want {
        /// A non-wildcard domain with this name.
        Domain(String),
        /// A wildcard whose base name is this.
        Wildcard(String),
        /// An IP address whose text form is this.
        Ip(String),
        Err(TargetError),
    }

    fn domain(name: impl Into<String>) -> Want {
        Want::Domain(name.into())
    }

    fn wildcard(name: impl Into<String>) -> Want {
        Want::Wildcard(name.into())
    }

    fn ip(text: &str) -> Want {
        Want::Ip(text.to_owned())
    }

    struct Case {
        name: &'static str,
        input: String,
        want: Want,
    }

    fn case(name: &'static str, input: impl Into<String>, want: Want) -> Case {
        Case {
            name,
            input: input.into(),
            want,
        }
    }

    fn label(len: usize) -> String {
        "a".repeat(len)
    }

    /// A name of exactly `len` octets: labels of 63 `a`s, then a shorter one, ending in `.com`.
    fn name_of_len(len: usize) -> String {
        let mut name = String::from("com");
        while name.len() < len {
            let part = (len - name.len() - 1).min(MAX_LABEL_LEN);
            assert!(part > 0, "helper cannot build a name of {len} octets");
            name = format!("{}.{name}", "a".repeat(part));
        }
        assert_eq!(name.len(), len, "helper built a name of the wrong length");
        name
    }

    fn s(text: &str) -> String {
        text.to_owned()
    }

    fn target_cases() -> Vec<Case> {
        use TargetError as E;
        use Want::Err;
        vec![
            // Plain ASCII names.
            case("lowercased", "Example.COM", domain("example.com")),
            case("simple", "example.com", domain("example.com")),
            case("deep", "a.b.c.example.com", domain("a.b.c.example.com")),
            case(
                "digits and hyphen",
                "a-1.example.com",
                domain("a-1.example.com"),
            ),
            case("trailing dot", "example.com.", domain("example.com")),
            case("two trailing dots", "example.com..", Err(E::LabelEmpty)),
            case("double dot", "a..b", Err(E::LabelEmpty)),
            case("leading dot", ".example.com", Err(E::LabelEmpty)),
            case("empty", "", Err(E::Empty)),
            case("root only", ".", Err(E::Empty)),
            case("bare tld", "com", Err(E::TooFewLabels { name: s("com") })),
            case(
                "bare tld with dot",
                "com.",
                Err(E::TooFewLabels { name: s("com") }),
            ),
            // Whitespace and control characters.
            case(
                "inner space",
                "exa mple.com",
                Err(E::InvalidCharacter {
                    label: s("exa mple"),
                    character: ' ',
                }),
            ),
            case(
                "leading space",
                " example.com",
                Err(E::InvalidCharacter {
                    label: s(" example"),
                    character: ' ',
                }),
            ),
            case(
                "trailing newline",
                "example.com\n",
                Err(E::InvalidCharacter {
                    label: s("com\n"),
                    character: '\n',
                }),
            ),
            case(
                "ideographic space",
                "exa\u{3000}mple.com",
                Err(E::InvalidCharacter {
                    label: s("exa\u{3000}mple"),
                    character: '\u{3000}',
                }),
            ),
            case(
                "nul",
                "exa\0mple.com",
                Err(E::InvalidCharacter {
                    label: s("exa\0mple"),
                    character: '\0',
                }),
            ),
            // Label and name lengths.
            case(
                "63-octet label",
                format!("{}.com", label(63)),
                domain(format!("{}.com", label(63))),
            ),
            case(
                "64-octet label",
                format!("{}.com", label(64)),
                Err(E::LabelTooLong {
                    label: label(64),
                    len: 64,
                }),
            ),
            case("253-octet name", name_of_len(253), domain(name_of_len(253))),
            case(
                "253-octet name with trailing dot",
                format!("{}.", name_of_len(253)),
                domain(name_of_len(253)),
            ),
            case(
                "254-octet name",
                name_of_len(254),
                Err(E::TooLong { len: 254 }),
            ),
            case(
                "wildcard of a 251-octet name",
                format!("*.{}", name_of_len(251)),
                wildcard(name_of_len(251)),
            ),
            case(
                "wildcard of a 252-octet name",
                format!("*.{}", name_of_len(252)),
                Err(E::TooLong { len: 254 }),
            ),
            // LDH and hyphen rules.
            case(
                "leading hyphen",
                "-a.com",
                Err(E::LabelHyphen { label: s("-a") }),
            ),
            case(
                "trailing hyphen",
                "a-.com",
                Err(E::LabelHyphen { label: s("a-") }),
            ),
            case(
                "reserved hyphens",
                "ab--c.com",
                Err(E::ReservedHyphens { label: s("ab--c") }),
            ),
            case(
                "reserved hyphens keep input case",
                "AB--C.com",
                Err(E::ReservedHyphens { label: s("AB--C") }),
            ),
            case("hyphens elsewhere", "a--b.com", domain("a--b.com")),
            case(
                "underscore label",
                "_acme.example.com",
                Err(E::InvalidCharacter {
                    label: s("_acme"),
                    character: '_',
                }),
            ),
            case(
                "inner underscore",
                "ex_ample.com",
                Err(E::InvalidCharacter {
                    label: s("ex_ample"),
                    character: '_',
                }),
            ),
            case(
                "slash",
                "example.com/path",
                Err(E::InvalidCharacter {
                    label: s("com/path"),
                    character: '/',
                }),
            ),
            case(
                "at sign",
                "user@example.com",
                Err(E::InvalidCharacter {
                    label: s("user@example"),
                    character: '@',
                }),
            ),
            case(
                "unicode label with underscore names the label as given",
                "b\u{fc}_x.example",
                Err(E::InvalidCharacter {
                    label: s("b\u{fc}_x"),
                    character: '_',
                }),
            ),
            // Numeric final label.
            case(
                "numeric tld",
                "example.123",
                Err(E::NumericTld { label: s("123") }),
            ),
            case(
                "numeric inner label",
                "123.example.com",
                domain("123.example.com"),
            ),
            case("alphanumeric tld", "example.a1", domain("example.a1")),
            // IDNA: UTS-46 mapping and non-transitional processing.
            case(
                "u-label converted",
                "b\u{fc}cher.example",
                domain("xn--bcher-kva.example"),
            ),
            case(
                "a-label accepted",
                "xn--bcher-kva.example",
                domain("xn--bcher-kva.example"),
            ),
            case(
                "uppercase a-label lowercased",
                "XN--BCHER-KVA.example",
                domain("xn--bcher-kva.example"),
            ),
            case("muenchen", "m\u{fc}nchen.de", domain("xn--mnchen-3ya.de")),
            case(
                "uppercase u-label folded",
                "M\u{dc}NCHEN.DE",
                domain("xn--mnchen-3ya.de"),
            ),
            case(
                "sharp s non-transitional",
                "fa\u{df}.de",
                domain("xn--fa-hia.de"),
            ),
            case(
                "fullwidth letters mapped",
                "\u{ff25}\u{ff38}\u{ff21}\u{ff2d}\u{ff30}\u{ff2c}\u{ff25}.com",
                domain("example.com"),
            ),
            case(
                "ideographic full stop is a dot",
                "example\u{3002}com",
                domain("example.com"),
            ),
            case(
                "zero width space is ignored by UTS-46",
                "exa\u{200b}mple.com",
                domain("example.com"),
            ),
            case("japanese", "\u{4f8b}\u{3048}.jp", domain("xn--r8jz45g.jp")),
            case(
                "emoji accepted per UTS-46",
                "\u{2615}.example",
                domain("xn--53h.example"),
            ),
            case(
                "emoji a-label accepted per UTS-46",
                "xn--53h.example",
                domain("xn--53h.example"),
            ),
            case(
                "empty punycode",
                "xn--.com",
                Err(E::InvalidPunycode { label: s("xn--") }),
            ),
            case(
                "punycode decoding to a control character",
                "xn--a.com",
                Err(E::InvalidPunycode { label: s("xn--a") }),
            ),
            case(
                "punycode garbage",
                "xn--zz-9999999999.com",
                Err(E::InvalidPunycode {
                    label: s("xn--zz-9999999999"),
                }),
            ),
            case(
                "punycode of plain ascii",
                "xn--abc-.com",
                Err(E::InvalidPunycode {
                    label: s("xn--abc-"),
                }),
            ),
            case(
                "punycode decoding to uppercase",
                // Valid Punycode of "b\u{dc}cher" (uppercase U+00DC): UTS-46 maps it to
                // lowercase, so it is not a U-label in normalised form.
                "xn--bcher-2pa.example",
                Err(E::InvalidPunycode {
                    label: s("xn--bcher-2pa"),
                }),
            ),
            case(
                "disallowed code point",
                "exa\u{2028}mple.com",
                Err(E::InvalidCharacter {
                    label: s("exa\u{2028}mple"),
                    character: '\u{2028}',
                }),
            ),
            case(
                "leading combining mark",
                "\u{301}a.com",
                Err(E::Idna {
                    label: s("\u{301}a"),
                }),
            ),
            case(
                "u-label with reserved hyphens",
                "\u{fc}b--c.com",
                Err(E::ReservedHyphens {
                    label: s("\u{fc}b--c"),
                }),
            ),
            case(
                "u-label with leading hyphen",
                "-\u{fc}.com",
                Err(E::LabelHyphen {
                    label: s("-\u{fc}"),
                }),
            ),
            case(
                "u-label with trailing hyphen",
                "\u{fc}-.com",
                Err(E::LabelHyphen {
                    label: s("\u{fc}-"),
                }),
            ),
            case(
                "zero width joiner outside its context (RFC 5892 CONTEXTJ)",
                "a\u{200d}b.com",
                Err(E::Idna {
                    label: s("a\u{200d}b"),
                }),
            ),
            case(
                "label mixing left-to-right and right-to-left (RFC 5893)",
                "a\u{5d0}.com",
                Err(E::Idna {
                    label: s("a\u{5d0}"),
                }),
            ),
            case(
                "bidi rule across labels (RFC 5893)",
                "\u{5d0}.1com",
                Err(E::IdnaName {
                    name: s("\u{5d0}.1com"),
                }),
            ),
            case(
                "hebrew label",
                "\u{5d0}\u{5d1}.example",
                domain("xn--4dbc.example"),
            ),
            case(
                "compatibility mapping to a disallowed ascii character",
                "\u{2474}.com",
                Err(E::InvalidCharacter {
                    label: s("\u{2474}"),
                    character: '(',
                }),
            ),
            case(
                "fullwidth asterisk is not a wildcard",
                "\u{ff0a}.example.com",
                Err(E::InvalidCharacter {
                    label: s("\u{ff0a}"),
                    character: '*',
                }),
            ),
            case(
                "only an ascii trailing dot is dropped",
                "example.com\u{3002}",
                Err(E::LabelEmpty),
            ),
            case(
                "error names the a-label when mapping added a dot",
                "a\u{ff0e}b_c.com",
                Err(E::InvalidCharacter {
                    label: s("b_c"),
                    character: '_',
                }),
            ),
            case(
                "soft hyphen is ignored by UTS-46",
                "exam\u{ad}ple.com",
                domain("example.com"),
            ),
            case(
                "emoji from the supplementary planes",
                "\u{1f600}.com",
                domain("xn--e28h.com"),
            ),
            case(
                "unicode right after the ace prefix",
                "xn--\u{fc}.com",
                Err(E::InvalidPunycode {
                    label: s("xn--\u{fc}"),
                }),
            ),
            case(
                "unicode mixed into an a-label",
                "xn--bcher-kva\u{fc}.example",
                Err(E::InvalidPunycode {
                    label: s("xn--bcher-kva\u{fc}"),
                }),
            ),
            // Wildcards.
            case("wildcard", "*.example.com", wildcard("example.com")),
            case(
                "wildcard trailing dot",
                "*.Example.com.",
                wildcard("example.com"),
            ),
            case(
                "wildcard idn",
                "*.b\u{fc}cher.example",
                wildcard("xn--bcher-kva.example"),
            ),
            case("star alone", "*", Err(E::WildcardMisplaced)),
            case("star dot", "*.", Err(E::TooFewLabels { name: s("*.") })),
            case("inner star", "a.*.com", Err(E::WildcardMisplaced)),
            case("partial star", "*a.b.com", Err(E::WildcardMisplaced)),
            case("double star", "**.example.com", Err(E::WildcardMisplaced)),
            case(
                "two wildcards",
                "*.*.example.com",
                Err(E::WildcardMisplaced),
            ),
            case(
                "wildcard of tld",
                "*.com",
                Err(E::TooFewLabels { name: s("com") }),
            ),
            case(
                "wildcard with nothing after",
                "*..",
                Err(E::TooFewLabels { name: s("*..") }),
            ),
            case("wildcard ipv4", "*.1.2.3.4", Err(E::WildcardIp)),
            case("wildcard ipv6", "*.[2001:db8::1]", Err(E::WildcardIp)),
            // IP literals.
            case("ipv4", "1.2.3.4", ip("1.2.3.4")),
            case("ipv4 doc", "192.0.2.1", ip("192.0.2.1")),
            case("ipv6", "2001:db8::1", ip("2001:db8::1")),
            case("ipv6 bracketed", "[2001:db8::1]", ip("2001:db8::1")),
            case("ipv6 uppercase", "2001:DB8::1", ip("2001:db8::1")),
            case(
                "ipv6 rfc 5952 canonical form",
                "2001:0db8:0000:0000:0001:0000:0000:0001",
                ip("2001:db8::1:0:0:1"),
            ),
            case(
                "ipv6 single zero group not compressed",
                "2001:db8:0:1:1:1:1:1",
                ip("2001:db8:0:1:1:1:1:1"),
            ),
            case(
                "ipv4-mapped stays ipv6",
                "::ffff:192.0.2.1",
                ip("::ffff:192.0.2.1"),
            ),
            case(
                "bracketed ipv4",
                "[1.2.3.4]",
                Err(E::InvalidIp {
                    input: s("[1.2.3.4]"),
                }),
            ),
            case(
                "unclosed bracket",
                "[2001:db8::1",
                Err(E::InvalidIp {
                    input: s("[2001:db8::1"),
                }),
            ),
            case(
                "bad ipv6",
                "2001:db8:::1",
                Err(E::InvalidIp {
                    input: s("2001:db8:::1"),
                }),
            ),
            case(
                "host and port",
                "example.com:443",
                Err(E::InvalidIp {
                    input: s("example.com:443"),
                }),
            ),
            case(
                "zone id",
                "fe80::1%eth0",
                Err(E::IpZoneId {
                    input: s("fe80::1%eth0"),
                }),
            ),
            case(
                "bracketed zone id",
                "[fe80::1%25eth0]",
                Err(E::IpZoneId {
                    input: s("[fe80::1%25eth0]"),
                }),
            ),
            case(
                "three-part ipv4",
                "1.2.3",
                Err(E::NumericTld { label: s("3") }),
            ),
            case(
                "leading zero ipv4",
                "01.2.3.4",
                Err(E::NumericTld { label: s("4") }),
            ),
            case(
                "octet too large",
                "256.1.1.1",
                Err(E::NumericTld { label: s("1") }),
            ),
            case(
                "ipv4 trailing dot",
                "1.2.3.4.",
                Err(E::NumericTld { label: s("4") }),
            ),
            case(
                "ipv4 five parts",
                "1.2.3.4.5",
                Err(E::NumericTld { label: s("5") }),
            ),
        ]
    }

    #[test]
    fn target_parse_table() {
        let cases = target_cases();
        assert!(cases.len() >= 40, "expected at least 40 cases");
        for c in cases {
            let got = Target::parse(&c.input);
            match (&c.want, got) {
                (Want::Domain(want), Ok(Target::Domain(d))) => {
                    assert_eq!(d.name(), want, "case {:?}: name", c.name);
                    assert!(!d.is_wildcard(), "case {:?}: not a wildcard", c.name);
                    assert_eq!(&d.to_string(), want, "case {:?}: display", c.name);
                }
                (Want::Wildcard(want), Ok(Target::Domain(d))) => {
                    assert_eq!(d.name(), want, "case {:?}: name", c.name);
                    assert!(d.is_wildcard(), "case {:?}: a wildcard", c.name);
                    assert_eq!(
                        d.to_string(),
                        format!("*.{want}"),
                        "case {:?}: display",
                        c.name
                    );
                }
                (Want::Ip(want), Ok(Target::Ip(ip))) => {
                    assert_eq!(&ip.to_string(), want, "case {:?}: address", c.name);
                }
                (Want::Err(want), Err(got)) => {
                    assert_eq!(&got, want, "case {:?}: error", c.name);
                }
                (want, got) => panic!("case {:?}: want {want:?}, got {got:?}", c.name),
            }
        }
    }

    /// Whatever parses must parse again to itself: the text form is a fixed point.
    #[test]
    fn normalised_form_is_stable() {
        for c in target_cases() {
            if let Ok(target) = Target::parse(&c.input) {
                let again = Target::parse(&target.to_string());
                assert_eq!(again.as_ref(), Ok(&target), "case {:?}", c.name);
            }
        }
    }

    #[test]
    fn target_accessors() {
        struct Case {
            name: &'static str,
            input: &'static str,
            wildcard: bool,
            ip: Option<IpAddr>,
            display: &'static str,
        }
        let cases = [
            Case {
                name: "domain",
                input: "Example.com",
                wildcard: false,
                ip: None,
                display: "example.com",
            },
            Case {
                name: "wildcard",
                input: "*.example.com",
                wildcard: true,
                ip: None,
                display: "*.example.com",
            },
            Case {
                name: "ipv4",
                input: "192.0.2.1",
                wildcard: false,
                ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                display: "192.0.2.1",
            },
            Case {
                name: "ipv6 bracketed",
                input: "[2001:DB8::1]",
                wildcard: false,
                ip: Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))),
                display: "2001:db8::1",
            },
        ];
        for c in cases {
            let target: Target = c.input.parse().unwrap();
            assert_eq!(target.is_wildcard(), c.wildcard, "case {:?}", c.name);
            assert_eq!(target.as_ip(), c.ip, "case {:?}", c.name);
            assert_eq!(
                target.as_domain().is_some(),
                c.ip.is_none(),
                "case {:?}",
                c.name
            );
            assert_eq!(target.to_string(), c.display, "case {:?}", c.name);
        }
    }

    #[test]
    fn labels_and_ancestors() {
        struct Case {
            name: &'static str,
            input: &'static str,
            labels: &'static [&'static str],
            ancestors: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "deep",
                input: "a.b.example.com",
                labels: &["a", "b", "example", "com"],
                ancestors: &["a.b.example.com", "b.example.com", "example.com", "com"],
            },
            Case {
                name: "two labels",
                input: "example.com.",
                labels: &["example", "com"],
                ancestors: &["example.com", "com"],
            },
            Case {
                name: "wildcard excludes the star",
                input: "*.b\u{fc}cher.example",
                labels: &["xn--bcher-kva", "example"],
                ancestors: &["xn--bcher-kva.example", "example"],
            },
        ];
        for c in cases {
            let target = Target::parse(c.input).unwrap();
            let domain = target.as_domain().unwrap();
            assert_eq!(
                domain.labels().collect::<Vec<_>>(),
                c.labels,
                "case {:?}",
                c.name
            );
            assert_eq!(
                domain.self_and_ancestors(),
                c.ancestors,
                "case {:?}",
                c.name
            );
        }
    }

    #[test]
    fn reverse_name_table() {
        struct Case {
            name: &'static str,
            ip: &'static str,
            want: &'static str,
        }
        let cases = [
            Case {
                name: "ipv4 documentation",
                ip: "192.0.2.1",
                want: "1.2.0.192.in-addr.arpa",
            },
            Case {
                name: "ipv4 private",
                ip: "10.0.0.1",
                want: "1.0.0.10.in-addr.arpa",
            },
            Case {
                name: "ipv6 loopback",
                ip: "::1",
                want: "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
            },
            Case {
                name: "ipv6 documentation",
                ip: "2001:db8::567:89ab",
                want: "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
            },
            Case {
                name: "rfc 3596 section 2.5 example",
                ip: "4321:0:1:2:3:4:567:89ab",
                want: "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa",
            },
            Case {
                name: "ipv4-mapped stays in ip6.arpa",
                ip: "::ffff:192.0.2.1",
                want: "1.0.2.0.0.0.0.c.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa",
            },
        ];
        for c in cases {
            let ip: IpAddr = c.ip.parse().unwrap();
            let got = reverse_name(ip);
            assert_eq!(got, c.want, "case {:?}", c.name);
            assert!(got.len() <= MAX_NAME_LEN, "case {:?}: length", c.name);
        }
    }

    #[test]
    fn name_prefix_table() {
        use TargetError as E;
        struct Case {
            name: &'static str,
            prefix: String,
            want: Result<String, TargetError>,
        }
        let cases = [
            Case {
                name: "acme",
                prefix: s("_acme-challenge"),
                want: Ok(s("_acme-challenge")),
            },
            Case {
                name: "persist",
                prefix: s("_validation-persist"),
                want: Ok(s("_validation-persist")),
            },
            Case {
                name: "two labels",
                prefix: s("a._b"),
                want: Ok(s("a._b")),
            },
            Case {
                name: "lowercased",
                prefix: s("Sub._Foo"),
                want: Ok(s("sub._foo")),
            },
            Case {
                name: "63-octet label",
                prefix: label(63),
                want: Ok(label(63)),
            },
            Case {
                name: "empty",
                prefix: s(""),
                want: Err(E::Empty),
            },
            Case {
                name: "leading dot",
                prefix: s(".x"),
                want: Err(E::LabelEmpty),
            },
            Case {
                name: "trailing dot",
                prefix: s("x."),
                want: Err(E::LabelEmpty),
            },
            Case {
                name: "double dot",
                prefix: s("a..b"),
                want: Err(E::LabelEmpty),
            },
            Case {
                name: "space",
                prefix: s("a b"),
                want: Err(E::InvalidCharacter {
                    label: s("a b"),
                    character: ' ',
                }),
            },
            Case {
                name: "non-ascii",
                prefix: s("_b\u{fc}"),
                want: Err(E::InvalidCharacter {
                    label: s("_b\u{fc}"),
                    character: '\u{fc}',
                }),
            },
            Case {
                name: "star",
                prefix: s("*"),
                want: Err(E::InvalidCharacter {
                    label: s("*"),
                    character: '*',
                }),
            },
            Case {
                name: "64-octet label",
                prefix: label(64),
                want: Err(E::LabelTooLong {
                    label: label(64),
                    len: 64,
                }),
            },
            Case {
                name: "prefix alone too long",
                prefix: [label(63), label(63), label(63), label(63)].join("."),
                want: Err(E::TooLong { len: 255 }),
            },
        ];
        for c in cases {
            assert_eq!(parse_name_prefix(&c.prefix), c.want, "case {:?}", c.name);
        }
    }

    #[test]
    fn prefixed_name_table() {
        use TargetError as E;
        struct Case {
            name: &'static str,
            prefix: String,
            base: String,
            want: Result<String, TargetError>,
        }
        let cases = [
            Case {
                name: "acme",
                prefix: s("_acme-challenge"),
                base: s("example.com"),
                want: Ok(s("_acme-challenge.example.com")),
            },
            Case {
                name: "account label",
                prefix: s("_UJMMOVF2VN55TGOX._acme-challenge"),
                base: s("example.com"),
                want: Ok(s("_ujmmovf2vn55tgox._acme-challenge.example.com")),
            },
            Case {
                name: "reverse name",
                prefix: s("_foo"),
                base: reverse_name(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                want: Ok(s("_foo.1.2.0.192.in-addr.arpa")),
            },
            Case {
                name: "exactly 253",
                prefix: s("_p"),
                base: name_of_len(250),
                want: Ok(format!("_p.{}", name_of_len(250))),
            },
            Case {
                name: "total over 253",
                prefix: s("_p"),
                base: name_of_len(251),
                want: Err(E::TooLong { len: 254 }),
            },
            Case {
                name: "bad prefix",
                prefix: s("x."),
                base: s("example.com"),
                want: Err(E::LabelEmpty),
            },
            Case {
                name: "empty name",
                prefix: s("_p"),
                base: s(""),
                want: Err(E::Empty),
            },
        ];
        for c in cases {
            assert_eq!(
                prefixed_name(&c.prefix, &c.base),
                c.want,
                "case {:?}",
                c.name
            );
        }
    }

    #[test]
    fn error_messages_name_the_label() {
        struct Case {
            name: &'static str,
            input: &'static str,
            want: &'static str,
        }
        let cases = [
            Case {
                name: "underscore",
                input: "ex_ample.com",
                want: "label \"ex_ample\" contains the character '_' (U+005F), which is not \
                       allowed here",
            },
            Case {
                name: "punycode",
                input: "xn--a.com",
                want: "label \"xn--a\" starts with xn-- but is not a valid A-label: it must be \
                       Punycode (RFC 3492) of a valid internationalised label that re-encodes to \
                       the same text",
            },
            Case {
                name: "numeric tld",
                input: "1.2.3",
                want: "the last label \"3\" is all-numeric: the name is neither a domain name \
                       nor a dotted-quad IPv4 address",
            },
            Case {
                name: "zone id",
                input: "fe80::1%eth0",
                want: "\"fe80::1%eth0\" has an IPv6 zone identifier, which a target cannot have",
            },
        ];
        for c in cases {
            let err = Target::parse(c.input).unwrap_err();
            assert_eq!(err.to_string(), c.want, "case {:?}", c.name);
        }
    }

    #[test]
    fn serde_round_trip() {
        struct Case {
            name: &'static str,
            json: &'static str,
            want: Result<&'static str, &'static str>,
        }
        let cases = [
            Case {
                name: "domain normalised",
                json: "\"*.B\u{fc}cher.example.\"",
                want: Ok("\"*.xn--bcher-kva.example\""),
            },
            Case {
                name: "ipv6 bracketed",
                json: "\"[2001:DB8::1]\"",
                want: Ok("\"2001:db8::1\""),
            },
            Case {
                name: "invalid target",
                json: "\"com\"",
                want: Err("\"com\" has fewer than two labels"),
            },
        ];
        for c in cases {
            let got = serde_json::from_str::<Target>(c.json);
            match (c.want, got) {
                (Ok(want), Ok(target)) => {
                    assert_eq!(
                        serde_json::to_string(&target).unwrap(),
                        want,
                        "case {:?}",
                        c.name
                    );
                }
                (Err(want), Err(err)) => {
                    assert!(
                        err.to_string().starts_with(want),
                        "case {:?}: {err}",
                        c.name
                    );
                }
                (want, got) => panic!("case {:?}: want {want:?}, got {got:?}", c.name),
            }
        }
    }
}
