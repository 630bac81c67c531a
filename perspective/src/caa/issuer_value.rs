//! The `issue` / `issuewild` / `issuemail` property value grammar of RFC 8659 section 4.2,
//! with the parameters of RFC 8657.
//!
//! ```text
//! issue-value = *WSP [issuer-domain-name *WSP] [";" *WSP [parameters *WSP]]
//! issuer-domain-name = label *("." label)
//! label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))
//! parameters = (parameter *WSP ";" *WSP parameters) / parameter
//! parameter = tag *WSP "=" *WSP value
//! tag = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))
//! value = *(%x21-3A / %x3C-7E)
//! ```
//!
//! hickory parses these values too, but leniently; here a value that does not match the grammar
//! is reported as malformed, because a malformed value must not authorise anyone (RFC 8659 4.2,
//! requirements.md "CAA").

/// A parsed issuer value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerValue {
    /// The issuer domain name, lowercased; `None` for `";"` or an empty value, which
    /// authorise nobody.
    pub issuer: Option<String>,
    /// Parameters in order, tags lowercased (we compare tags case-insensitively so that an
    /// oddly cased restriction still restricts), values as written.
    pub parameters: Vec<(String, String)>,
}

impl IssuerValue {
    /// Every value of parameter `tag` (lowercase).
    pub fn parameter_values<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.parameters
            .iter()
            .filter(move |(t, _)| t == tag)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a value does not match the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerValueError {
    /// A byte outside the grammar at this offset.
    #[error("unexpected byte at offset {0}")]
    Unexpected(usize),
    /// The issuer domain name is not `label *("." label)`.
    #[error("malformed issuer domain name")]
    IssuerDomain,
    /// A parameter is not `tag = value`.
    #[error("malformed parameter at offset {0}")]
    Parameter(usize),
}

/// Parses an issuer property value.
pub fn parse(value: &[u8]) -> Result<IssuerValue, IssuerValueError> {
    let mut p = Parser { s: value, i: 0 };
    p.wsp();
    let start = p.i;
    while p.i < p.s.len() && !matches!(p.s[p.i], b';' | b' ' | b'\t') {
        p.i += 1;
    }
    let issuer = if p.i > start {
        let domain = &p.s[start..p.i];
        if !is_domain(domain) {
            return Err(IssuerValueError::IssuerDomain);
        }
        p.wsp();
        Some(String::from_utf8_lossy(domain).to_ascii_lowercase())
    } else {
        None
    };
    let mut parameters = Vec::new();
    if p.i == p.s.len() {
        return Ok(IssuerValue { issuer, parameters });
    }
    if p.s[p.i] != b';' {
        return Err(IssuerValueError::Unexpected(p.i));
    }
    p.i += 1;
    p.wsp();
    // [parameters *WSP]: zero or more parameters separated by ';'; no trailing ';'.
    if p.i == p.s.len() {
        return Ok(IssuerValue { issuer, parameters });
    }
    loop {
        let at = p.i;
        let tag_start = p.i;
        while p.i < p.s.len() && (p.s[p.i].is_ascii_alphanumeric() || p.s[p.i] == b'-') {
            p.i += 1;
        }
        let tag = &p.s[tag_start..p.i];
        if !is_label(tag) {
            return Err(IssuerValueError::Parameter(at));
        }
        p.wsp();
        if p.i >= p.s.len() || p.s[p.i] != b'=' {
            return Err(IssuerValueError::Parameter(at));
        }
        p.i += 1;
        p.wsp();
        let value_start = p.i;
        while p.i < p.s.len() && matches!(p.s[p.i], 0x21..=0x3a | 0x3c..=0x7e) {
            p.i += 1;
        }
        let value = &p.s[value_start..p.i];
        parameters.push((
            String::from_utf8_lossy(tag).to_ascii_lowercase(),
            String::from_utf8_lossy(value).into_owned(),
        ));
        p.wsp();
        if p.i == p.s.len() {
            return Ok(IssuerValue { issuer, parameters });
        }
        if p.s[p.i] != b';' {
            return Err(IssuerValueError::Unexpected(p.i));
        }
        p.i += 1;
        p.wsp();
        if p.i == p.s.len() {
            // "parameters" never ends in ';' (the grammar needs another parameter).
            return Err(IssuerValueError::Parameter(p.i));
        }
    }
}

/// RFC 8657 section 4: `validationmethods` value `[*(label ",") label]`, the labels as
/// written (they are compared exactly, BR 4.2.2.1.2).
pub fn parse_method_list(value: &str) -> Option<Vec<String>> {
    let labels: Vec<String> = value.split(',').map(str::to_owned).collect();
    labels
        .iter()
        .all(|l| is_label(l.as_bytes()))
        .then_some(labels)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn wsp(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t') {
            self.i += 1;
        }
    }
}

/// `label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))`
fn is_label(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_domain(b: &[u8]) -> bool {
    b.split(|c| *c == b'.').all(is_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(issuer: Option<&str>, params: &[(&str, &str)]) -> Result<IssuerValue, IssuerValueError> {
        Ok(IssuerValue {
            issuer: issuer.map(str::to_owned),
            parameters: params
                .iter()
                .map(|(t, v)| ((*t).to_owned(), (*v).to_owned()))
                .collect(),
        })
    }

    #[test]
    fn rfc8659_grammar() {
        struct Case {
            name: &'static str,
            input: &'static [u8],
            want: Result<IssuerValue, IssuerValueError>,
        }
        let cases = [
            Case { name: "plain", input: b"ca.example", want: ok(Some("ca.example"), &[]) },
            Case { name: "upper case", input: b"CA.Example", want: ok(Some("ca.example"), &[]) },
            Case { name: "surrounding space", input: b"  ca.example \t", want: ok(Some("ca.example"), &[]) },
            Case { name: "semicolon only", input: b";", want: ok(None, &[]) },
            Case { name: "empty", input: b"", want: ok(None, &[]) },
            Case { name: "spaces only", input: b"   ", want: ok(None, &[]) },
            Case { name: "trailing semicolon, no parameters", input: b"ca.example;", want: ok(Some("ca.example"), &[]) },
            Case { name: "one parameter", input: b"ca.example; account=123", want: ok(Some("ca.example"), &[("account", "123")]) },
            Case { name: "parameter without space", input: b"ca.example;account=123", want: ok(Some("ca.example"), &[("account", "123")]) },
            Case { name: "space around equals", input: b"ca.example; a = b", want: ok(Some("ca.example"), &[("a", "b")]) },
            Case {
                name: "rfc8657 example",
                input: b"example.net; accounturi=https://example.net/account/1234; validationmethods=dns-01",
                want: ok(Some("example.net"), &[("accounturi", "https://example.net/account/1234"), ("validationmethods", "dns-01")]),
            },
            Case { name: "empty parameter value", input: b"ca.example; a=", want: ok(Some("ca.example"), &[("a", "")]) },
            Case { name: "tag case folded", input: b"ca.example; AccountURI=x", want: ok(Some("ca.example"), &[("accounturi", "x")]) },
            Case { name: "parameters without issuer", input: b"; a=b", want: ok(None, &[("a", "b")]) },
            Case { name: "digit label", input: b"1ca.example", want: ok(Some("1ca.example"), &[]) },
            Case { name: "inner double hyphen", input: b"c--a.example", want: ok(Some("c--a.example"), &[]) },
            // Malformed values.
            Case { name: "trailing dot", input: b"ca.example.", want: Err(IssuerValueError::IssuerDomain) },
            Case { name: "leading hyphen", input: b"-ca.example", want: Err(IssuerValueError::IssuerDomain) },
            Case { name: "trailing hyphen label", input: b"ca-.example", want: Err(IssuerValueError::IssuerDomain) },
            Case { name: "empty label", input: b"ca..example", want: Err(IssuerValueError::IssuerDomain) },
            Case { name: "underscore", input: b"ca_x.example", want: Err(IssuerValueError::IssuerDomain) },
            Case { name: "percent", input: b"%%%", want: Err(IssuerValueError::IssuerDomain) },
            Case { name: "two names", input: b"ca.example other.example", want: Err(IssuerValueError::Unexpected(11)) },
            Case { name: "parameter without equals", input: b"ca.example; account", want: Err(IssuerValueError::Parameter(12)) },
            Case { name: "parameter with empty tag", input: b"ca.example; =1", want: Err(IssuerValueError::Parameter(12)) },
            Case { name: "trailing semicolon after parameter", input: b"ca.example; a=b;", want: Err(IssuerValueError::Parameter(16)) },
            Case { name: "space inside value", input: b"ca.example; a=b c", want: Err(IssuerValueError::Unexpected(16)) },
            Case { name: "semicolon in value impossible", input: b"ca.example; a=b;;", want: Err(IssuerValueError::Parameter(16)) },
            Case { name: "non-ascii issuer", input: "cä.example".as_bytes(), want: Err(IssuerValueError::IssuerDomain) },
            Case { name: "non-ascii value", input: "ca.example; a=ä".as_bytes(), want: Err(IssuerValueError::Unexpected(14)) },
            Case { name: "nul byte", input: b"ca.example\0", want: Err(IssuerValueError::IssuerDomain) },
            Case { name: "tag with hyphen at end", input: b"ca.example; a-=b", want: Err(IssuerValueError::Parameter(12)) },
        ];
        for c in cases {
            assert_eq!(parse(c.input), c.want, "{}", c.name);
        }
    }

    #[test]
    fn method_lists() {
        assert_eq!(parse_method_list("dns-01"), Some(vec!["dns-01".to_owned()]));
        assert_eq!(
            parse_method_list("dns-01,HTTP-01"),
            Some(vec!["dns-01".to_owned(), "HTTP-01".to_owned()]),
            "kept as written: labels are compared exactly"
        );
        for bad in ["", "dns-01,", ",dns-01", "dns 01", "dns-01;http-01", "-x"] {
            assert_eq!(parse_method_list(bad), None, "{bad:?}");
        }
    }
}
