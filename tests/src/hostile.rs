//! Hostile requests, as raw HTTP/1.1 messages, for both services: malformed JSON in every
//! way, every field wrong-typed, oversized or missing, framing errors, and (for the
//! coordinator) the API key in every wrong form. Each case says the status the contract
//! (api.md "Other statuses") demands and what the answer must name; [`run`] sends them to a
//! real server on loopback and asserts both, and that nothing is ever a 5xx or a pass.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The service under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `POST /mpic` with an API key.
    Coordinator,
    /// `POST /caa`, `POST /dcv` (plain HTTP in the test).
    Perspective,
}

/// One hostile request.
#[derive(Debug, Clone)]
pub struct Case {
    /// What it tries.
    pub name: String,
    /// The whole HTTP/1.1 message.
    pub request: Vec<u8>,
    /// The status the contract demands.
    pub status: u16,
    /// Text the answer's body must contain (the field named, or the problem).
    pub names: String,
    /// Whether the client half-closes its side after the request (a body cut short).
    pub half_close: bool,
}

/// The largest body either service accepts by default.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The cases for `service`; `key` is a valid API key of the coordinator.
pub fn cases(service: Service, key: &str) -> Vec<Case> {
    let t = Table { service, key };
    let mut cases = Vec::new();
    t.body_level(&mut cases);
    t.shared_fields(&mut cases);
    t.dcv_fields(&mut cases);
    if service == Service::Coordinator {
        t.coordinator_fields(&mut cases);
        t.auth(&mut cases);
    }
    t.framing(&mut cases);
    cases
}

/// A field of a parameter set and the value to put there (`None`: remove it).
type Break = (&'static str, Option<Value>);

struct Table<'a> {
    service: Service,
    key: &'a str,
}

impl Table<'_> {
    fn caa_base(&self) -> Value {
        match self.service {
            Service::Coordinator => {
                json!({"check_type": "caa", "domain_or_ip_target": "example.com"})
            }
            Service::Perspective => json!({"domain_or_ip_target": "example.com"}),
        }
    }

    fn dcv_base(&self, params: Value) -> Value {
        match self.service {
            Service::Coordinator => {
                json!({"check_type": "dcv", "domain_or_ip_target": "example.com", "dcv_check_parameters": params})
            }
            Service::Perspective => {
                json!({"domain_or_ip_target": "example.com", "dcv_check_parameters": params})
            }
        }
    }

    fn path(&self, dcv: bool) -> &'static str {
        match (self.service, dcv) {
            (Service::Coordinator, _) => "/mpic",
            (Service::Perspective, false) => "/caa",
            (Service::Perspective, true) => "/dcv",
        }
    }

    /// A POST of `body` with the right headers (and the API key for the coordinator).
    fn post(&self, path: &str, body: &[u8]) -> Vec<u8> {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        if self.service == Service::Coordinator {
            head.push_str(&format!("authorization: Bearer {}\r\n", self.key));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        request
    }

    fn bad(
        &self,
        cases: &mut Vec<Case>,
        name: impl Into<String>,
        dcv: bool,
        body: &[u8],
        names: &str,
    ) {
        cases.push(Case {
            name: name.into(),
            request: self.post(self.path(dcv), body),
            status: 400,
            names: names.to_owned(),
            half_close: false,
        });
    }

    /// `base` with the value at `path` (dot-separated) set to `value`, or removed when `None`.
    fn edit(base: &Value, path: &str, value: Option<Value>) -> Vec<u8> {
        let mut body = base.clone();
        let mut at = &mut body;
        let parts: Vec<&str> = path.split('.').collect();
        for part in &parts[..parts.len() - 1] {
            at = at
                .as_object_mut()
                .map(|o| o.entry(part.to_string()).or_insert(json!({})))
                .unwrap_or_else(|| panic!("{path}: not an object on the way"));
        }
        let last = parts[parts.len() - 1];
        let object = at
            .as_object_mut()
            .unwrap_or_else(|| panic!("{path}: not an object"));
        match value {
            Some(v) => {
                object.insert(last.to_owned(), v);
            }
            None => {
                object.remove(last);
            }
        }
        body.to_string().into_bytes()
    }

    fn body_level(&self, cases: &mut Vec<Case>) {
        let base = self.caa_base().to_string();
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let raw: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty body", b"".to_vec(), "not valid JSON"),
            ("whitespace only", b"  \n ".to_vec(), "not valid JSON"),
            (
                "form encoding",
                b"domain_or_ip_target=example.com".to_vec(),
                "not valid JSON",
            ),
            (
                "cut short",
                br#"{"domain_or_ip_target": "exa"#.to_vec(),
                "not valid JSON",
            ),
            (
                "single quotes",
                b"{'domain_or_ip_target': 'example.com'}".to_vec(),
                "not valid JSON",
            ),
            (
                "a comment",
                b"{/* x */\"domain_or_ip_target\": \"example.com\"}".to_vec(),
                "not valid JSON",
            ),
            (
                "a trailing comma",
                br#"{"domain_or_ip_target": "example.com",}"#.to_vec(),
                "not valid JSON",
            ),
            (
                "NaN",
                br#"{"domain_or_ip_target": NaN}"#.to_vec(),
                "not valid JSON",
            ),
            (
                "invalid UTF-8 in a string",
                b"{\"domain_or_ip_target\": \"ex\xffample.com\"}".to_vec(),
                "not valid JSON",
            ),
            (
                "a lone surrogate escape",
                br#"{"domain_or_ip_target": "\ud800"}"#.to_vec(),
                "not valid JSON",
            ),
            ("nested 200 deep", deep.into_bytes(), "not valid JSON"),
            ("null", b"null".to_vec(), "invalid field"),
            ("true", b"true".to_vec(), "invalid field"),
            ("a number", b"5".to_vec(), "invalid field"),
            ("a string", b"\"example.com\"".to_vec(), "invalid field"),
            ("an empty array", b"[]".to_vec(), "invalid field"),
            (
                "an array of the fields",
                br#"["caa","example.com"]"#.to_vec(),
                "invalid field",
            ),
            (
                "an array holding the object",
                format!("[{base}]").into_bytes(),
                "invalid field",
            ),
            (
                "a second object after the first",
                format!("{base}{base}").into_bytes(),
                "more than one JSON value",
            ),
            (
                "garbage after the object",
                format!("{base} x").into_bytes(),
                "more than one JSON value",
            ),
            (
                "a second value after a newline",
                format!("{base}\n1").into_bytes(),
                "more than one JSON value",
            ),
            ("an empty object", b"{}".to_vec(), "domain_or_ip_target"),
        ];
        for (name, body, names) in raw {
            self.bad(cases, format!("body: {name}"), false, &body, names);
        }
        let dup = br#"{"domain_or_ip_target":"a.example","domain_or_ip_target":"b.example"}"#;
        self.bad(
            cases,
            "body: a duplicate key",
            false,
            dup,
            "duplicate key `domain_or_ip_target`",
        );
        cases.push(Case {
            name: "body: over the size limit".into(),
            request: self.post(
                self.path(false),
                format!(
                    r#"{{"domain_or_ip_target":"example.com","trace_identifier":"{}"}}"#,
                    "x".repeat(MAX_BODY_BYTES)
                )
                .as_bytes(),
            ),
            status: 413,
            names: "payload-too-large".into(),
            half_close: false,
        });
        let mut wrong_type = self.post(self.path(false), base.as_bytes());
        let text = String::from_utf8_lossy(&wrong_type).replace("application/json", "text/plain");
        wrong_type = text.into_bytes();
        cases.push(Case {
            name: "body: not JSON by its content type".into(),
            request: wrong_type,
            status: 415,
            names: "unsupported-media-type".into(),
            half_close: false,
        });
    }

    fn shared_fields(&self, cases: &mut Vec<Case>) {
        let base = self.caa_base();
        let long = "a".repeat(1025);
        let wrong: Vec<(&str, Option<Value>, &str)> = vec![
            ("domain_or_ip_target", Some(json!(5)), "domain_or_ip_target"),
            (
                "domain_or_ip_target",
                Some(json!(true)),
                "domain_or_ip_target",
            ),
            (
                "domain_or_ip_target",
                Some(json!([])),
                "domain_or_ip_target",
            ),
            (
                "domain_or_ip_target",
                Some(json!({})),
                "domain_or_ip_target",
            ),
            (
                "domain_or_ip_target",
                Some(json!(null)),
                "domain_or_ip_target",
            ),
            (
                "domain_or_ip_target",
                Some(json!("")),
                "domain_or_ip_target",
            ),
            (
                "domain_or_ip_target",
                Some(json!("exa mple.com")),
                "domain_or_ip_target",
            ),
            (
                "domain_or_ip_target",
                Some(json!("*.*.example.com")),
                "domain_or_ip_target",
            ),
            (
                "domain_or_ip_target",
                Some(json!(format!("{}.com", "a".repeat(64)))),
                "domain_or_ip_target",
            ),
            (
                "domain_or_ip_target",
                Some(json!(long)),
                "domain_or_ip_target",
            ),
            ("domain_or_ip_target", None, "domain_or_ip_target"),
            ("trace_identifier", Some(json!(5)), "trace_identifier"),
            ("trace_identifier", Some(json!([])), "trace_identifier"),
            ("trace_identifier", Some(json!({})), "trace_identifier"),
            (
                "trace_identifier",
                Some(json!("t".repeat(257))),
                "trace_identifier",
            ),
            ("colour", Some(json!("red")), "colour"),
            (
                "caa_check_parameters",
                Some(json!(5)),
                "caa_check_parameters",
            ),
            (
                "caa_check_parameters",
                Some(json!("tls-server")),
                "caa_check_parameters",
            ),
            (
                "caa_check_parameters",
                Some(json!(["tls-server", null, true])),
                "caa_check_parameters",
            ),
            (
                "caa_check_parameters.certificate_type",
                Some(json!(1)),
                "caa_check_parameters.certificate_type",
            ),
            (
                "caa_check_parameters.certificate_type",
                Some(json!("tls")),
                "caa_check_parameters.certificate_type",
            ),
            (
                "caa_check_parameters.certificate_type",
                Some(json!([])),
                "caa_check_parameters.certificate_type",
            ),
            (
                "caa_check_parameters.caa_domains",
                Some(json!("ca.example")),
                "caa_check_parameters.caa_domains",
            ),
            (
                "caa_check_parameters.caa_domains",
                Some(json!([5])),
                "caa_check_parameters.caa_domains",
            ),
            (
                "caa_check_parameters.caa_domains",
                Some(json!([{}])),
                "caa_check_parameters.caa_domains",
            ),
            (
                "caa_check_parameters.caa_domains",
                Some(json!(["not a domain!"])),
                "caa_domains",
            ),
            (
                "caa_check_parameters.caa_domains",
                Some(json!(
                    (0..33)
                        .map(|i| format!("ca{i}.example"))
                        .collect::<Vec<_>>()
                )),
                "caa_domains",
            ),
            (
                "caa_check_parameters.allow_lookup_failure",
                Some(json!("true")),
                "caa_check_parameters.allow_lookup_failure",
            ),
            (
                "caa_check_parameters.allow_lookup_failure",
                Some(json!(1)),
                "caa_check_parameters.allow_lookup_failure",
            ),
            (
                "caa_check_parameters.account_uri",
                Some(json!(5)),
                "caa_check_parameters.account_uri",
            ),
            (
                "caa_check_parameters.account_uri",
                Some(json!(long)),
                "caa_check_parameters.account_uri",
            ),
            (
                "caa_check_parameters.validation_method",
                Some(json!(5)),
                "caa_check_parameters.validation_method",
            ),
            (
                "caa_check_parameters.validation_method",
                Some(json!([])),
                "caa_check_parameters.validation_method",
            ),
            ("caa_check_parameters.colour", Some(json!("red")), "colour"),
        ];
        for (path, value, names) in wrong {
            let shown = value.as_ref().map_or("missing".to_owned(), |v| {
                let s = v.to_string();
                if s.len() > 40 {
                    format!("{}…", &s[..40])
                } else {
                    s
                }
            });
            let body = Self::edit(&base, path, value);
            self.bad(cases, format!("{path} = {shown}"), false, &body, names);
        }
        let dup = match self.service {
            Service::Coordinator => br#"{"check_type":"caa","domain_or_ip_target":"example.com","caa_check_parameters":{"caa_domains":["a.example"],"caa_domains":["b.example"]}}"#.as_slice(),
            Service::Perspective => br#"{"domain_or_ip_target":"example.com","caa_check_parameters":{"caa_domains":["a.example"],"caa_domains":["b.example"]}}"#.as_slice(),
        };
        self.bad(
            cases,
            "caa_check_parameters: a duplicate key",
            false,
            dup,
            "duplicate key `caa_domains`",
        );
    }

    fn dcv_fields(&self, cases: &mut Vec<Case>) {
        let hash43 = "sYAwVrqDtVOuJZvAHurSAYPoEt5fFV_C4bdSOOW-o5Y";
        let long = "a".repeat(1025);
        // A valid parameter set of each method, and what to break in it.
        let methods: Vec<(Value, Vec<Break>)> = vec![
            (
                json!({"validation_method": "website-change", "http_token_path": "p", "challenge_value": "c"}),
                vec![
                    ("http_token_path", Some(json!(5))),
                    ("http_token_path", None),
                    ("challenge_value", Some(json!(5))),
                    ("challenge_value", None),
                    ("url_scheme", Some(json!("ftp"))),
                    ("url_scheme", Some(json!(5))),
                    ("match_regex", Some(json!(5))),
                    ("match_regex", Some(json!("("))),
                    ("http_headers", Some(json!([]))),
                    ("http_headers", Some(json!({"X-A": 5}))),
                    ("http_headers", Some(json!({"Host": "other.example"}))),
                    ("require_exact_case", Some(json!("yes"))),
                ],
            ),
            (
                json!({"validation_method": "acme-http-01", "token": "tok", "key_authorization": "tok.k"}),
                vec![
                    ("token", Some(json!(5))),
                    ("token", None),
                    ("token", Some(json!(long.clone()))),
                    ("key_authorization", Some(json!([]))),
                    ("key_authorization", None),
                    ("key_authorization", Some(json!(long.clone()))),
                    ("http_headers", Some(json!("x"))),
                ],
            ),
            (
                json!({"validation_method": "acme-dns-01", "key_authorization_hash": hash43}),
                vec![
                    ("key_authorization_hash", Some(json!(5))),
                    ("key_authorization_hash", None),
                    ("dns_record_type", Some(json!("A"))),
                    ("dns_name_prefix", Some(json!("_other"))),
                ],
            ),
            (
                json!({"validation_method": "acme-tls-alpn-01", "key_authorization_hash": "ab".repeat(32)}),
                vec![
                    ("key_authorization_hash", Some(json!(5))),
                    ("key_authorization_hash", None),
                    ("key_authorization_hash", Some(json!("zz"))),
                ],
            ),
            (
                json!({"validation_method": "dns-change", "challenge_value": "v", "dns_record_type": "TXT"}),
                vec![
                    ("challenge_value", Some(json!(5))),
                    ("challenge_value", None),
                    ("dns_record_type", Some(json!("MX"))),
                    ("dns_record_type", Some(json!(16))),
                    ("dns_record_type", None),
                    ("dns_name_prefix", Some(json!(5))),
                    ("dns_name_prefix", Some(json!("bad prefix!"))),
                    ("require_exact_match", Some(json!("no"))),
                ],
            ),
            (
                json!({"validation_method": "dns-persistent", "issuer_domain_names": ["ca.example"], "expected_account_uri": "https://ca.example/acct/1"}),
                vec![
                    ("issuer_domain_names", Some(json!([]))),
                    ("issuer_domain_names", Some(json!("ca.example"))),
                    ("issuer_domain_names", Some(json!([5]))),
                    ("expected_account_uri", Some(json!(5))),
                    ("expected_account_uri", None),
                ],
            ),
            (
                json!({"validation_method": "dns-account-01", "account_uri": "https://ca.example/acct/1", "key_authorization_hash": hash43}),
                vec![
                    ("account_uri", Some(json!(5))),
                    ("account_uri", None),
                    ("key_authorization_hash", None),
                ],
            ),
            (
                json!({"validation_method": "contact-email-txt", "challenge_value": "a@example.com"}),
                vec![
                    ("challenge_value", Some(json!(5))),
                    ("challenge_value", None),
                ],
            ),
            (
                json!({"validation_method": "contact-phone-caa", "challenge_value": "+1 555 0100"}),
                vec![
                    ("challenge_value", None),
                    ("dns_name_prefix", Some(json!(5))),
                ],
            ),
            (
                json!({"validation_method": "ip-address", "challenge_value": "192.0.2.1", "dns_record_type": "A"}),
                vec![
                    ("dns_record_type", Some(json!("TXT"))),
                    ("dns_record_type", None),
                ],
            ),
            (
                json!({"validation_method": "reverse-address-lookup", "challenge_value": "host.example."}),
                vec![
                    ("challenge_value", Some(json!(5))),
                    ("challenge_value", None),
                ],
            ),
        ];
        for (params, breaks) in methods {
            let method = params["validation_method"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let base = self.dcv_base(params);
            for (field, value) in breaks {
                let shown = value.as_ref().map_or("missing".to_owned(), |v| {
                    let s = v.to_string();
                    if s.len() > 40 {
                        format!("{}…", &s[..40])
                    } else {
                        s
                    }
                });
                let body = Self::edit(&base, &format!("dcv_check_parameters.{field}"), value);
                self.bad(
                    cases,
                    format!("{method}: {field} = {shown}"),
                    true,
                    &body,
                    field,
                );
            }
        }
        let base = self.dcv_base(
            json!({"validation_method": "acme-dns-01", "key_authorization_hash": hash43}),
        );
        for (value, name) in [
            (Some(json!(5)), "a number"),
            (Some(json!("nope")), "unknown"),
            (Some(json!([])), "an array"),
            (None, "missing"),
        ] {
            let body = Self::edit(&base, "dcv_check_parameters.validation_method", value);
            self.bad(
                cases,
                format!("validation_method: {name}"),
                true,
                &body,
                "validation_method",
            );
        }
        for (value, name) in [
            (json!(5), "a number"),
            (json!("x"), "a string"),
            (json!([]), "an array"),
        ] {
            let body = Self::edit(&base, "dcv_check_parameters", Some(value));
            self.bad(
                cases,
                format!("dcv_check_parameters: {name}"),
                true,
                &body,
                "dcv_check_parameters",
            );
        }
        let dup = match self.service {
            Service::Coordinator => br#"{"check_type":"dcv","domain_or_ip_target":"example.com","dcv_check_parameters":{"validation_method":"acme-http-01","token":"a","token":"b","key_authorization":"k"}}"#.as_slice(),
            Service::Perspective => br#"{"domain_or_ip_target":"example.com","dcv_check_parameters":{"validation_method":"acme-http-01","token":"a","token":"b","key_authorization":"k"}}"#.as_slice(),
        };
        self.bad(
            cases,
            "dcv_check_parameters: a duplicate key",
            true,
            dup,
            "duplicate key `token`",
        );
        let body = Self::edit(&self.dcv_base(json!({"validation_method": "acme-http-01", "token": "t", "key_authorization": "t.k"})), "domain_or_ip_target", Some(json!("*.example.com")));
        self.bad(
            cases,
            "acme-http-01 for a wildcard",
            true,
            &body,
            "domain_or_ip_target",
        );
    }

    fn coordinator_fields(&self, cases: &mut Vec<Case>) {
        let base = self.caa_base();
        let wrong: Vec<(&str, Option<Value>, &str)> = vec![
            ("check_type", Some(json!(5)), "check_type"),
            ("check_type", Some(json!("dns")), "check_type"),
            ("check_type", Some(json!([])), "check_type"),
            (
                "orchestration_parameters",
                Some(json!(5)),
                "orchestration_parameters",
            ),
            (
                "orchestration_parameters",
                Some(json!([2, 1])),
                "orchestration_parameters",
            ),
            (
                "orchestration_parameters",
                Some(json!("x")),
                "orchestration_parameters",
            ),
            (
                "orchestration_parameters.perspective_count",
                Some(json!("3")),
                "orchestration_parameters.perspective_count",
            ),
            (
                "orchestration_parameters.perspective_count",
                Some(json!(2.5)),
                "orchestration_parameters.perspective_count",
            ),
            (
                "orchestration_parameters.perspective_count",
                Some(json!(1)),
                "invalid-perspective-count",
            ),
            (
                "orchestration_parameters.perspective_count",
                Some(json!(99)),
                "invalid-perspective-count",
            ),
            (
                "orchestration_parameters.quorum_count",
                Some(json!("x")),
                "orchestration_parameters.quorum_count",
            ),
            (
                "orchestration_parameters.quorum_count",
                Some(json!(0)),
                "invalid-quorum-count",
            ),
            (
                "orchestration_parameters.max_attempts",
                Some(json!("x")),
                "orchestration_parameters.max_attempts",
            ),
            (
                "orchestration_parameters.cohort_for_single_attempt",
                Some(json!([])),
                "orchestration_parameters.cohort_for_single_attempt",
            ),
            ("orchestration_parameters.colour", Some(json!(1)), "colour"),
            (
                "dcv_check_parameters",
                Some(json!({"validation_method": "acme-dns-01", "key_authorization_hash": "x"})),
                "dcv_check_parameters",
            ),
        ];
        for (path, value, names) in wrong {
            let shown = value
                .as_ref()
                .map_or("missing".to_owned(), Value::to_string);
            let body = Self::edit(&base, path, value);
            self.bad(cases, format!("{path} = {shown}"), false, &body, names);
        }
        let dcv = json!({"check_type": "dcv", "domain_or_ip_target": "example.com"});
        self.bad(
            cases,
            "a dcv check without dcv_check_parameters",
            true,
            dcv.to_string().as_bytes(),
            "dcv_check_parameters",
        );
    }

    fn auth(&self, cases: &mut Vec<Case>) {
        let body = self.caa_base().to_string();
        let key = self.key;
        let forms = [
            ("no key", String::new()),
            ("an empty bearer", "authorization: Bearer\r\n".to_owned()),
            (
                "a wrong key",
                "authorization: Bearer wrong-key-0123456789abcdef\r\n".to_owned(),
            ),
            (
                "the key with Basic",
                format!("authorization: Basic {key}\r\n"),
            ),
            (
                "the key without a scheme",
                format!("authorization: {key}\r\n"),
            ),
            (
                "the key with another scheme",
                format!("authorization: Token {key}\r\n"),
            ),
            (
                "the key cut short",
                format!("authorization: Bearer {}\r\n", &key[..key.len() - 1]),
            ),
            (
                "the key with a character added",
                format!("authorization: Bearer {key}x\r\n"),
            ),
            ("an empty x-api-key", "x-api-key: \r\n".to_owned()),
            (
                "a wrong x-api-key",
                "x-api-key: wrong-key-0123456789abcdef\r\n".to_owned(),
            ),
            ("the key in another header", format!("x-key: {key}\r\n")),
            ("the key in the query", String::new()),
        ];
        for (name, header) in forms {
            let path = if name == "the key in the query" {
                format!("/mpic?api_key={key}")
            } else {
                "/mpic".to_owned()
            };
            let request = format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{header}\r\n{body}",
                body.len()
            );
            cases.push(Case {
                name: format!("auth: {name}"),
                request: request.into_bytes(),
                status: 401,
                names: "unauthorized".into(),
                half_close: false,
            });
        }
    }

    /// Framing errors, each a 400. (Content-Length together with Transfer-Encoding is not
    /// among them: RFC 9112 6.3 has chunked win, and hyper then closes the connection after
    /// the answer, so nothing can be smuggled behind it.)
    fn framing(&self, cases: &mut Vec<Case>) {
        let path = self.path(false);
        let auth = if self.service == Service::Coordinator {
            format!("authorization: Bearer {}\r\n", self.key)
        } else {
            String::new()
        };
        let head = |extra: &str| {
            format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\n{auth}{extra}\r\n"
            )
        };
        let body = self.caa_base().to_string();
        let framed: Vec<(&str, String, &str)> = vec![
            (
                "a chunk size that is not hex",
                format!(
                    "{}zz\r\n{body}\r\n0\r\n\r\n",
                    head("transfer-encoding: chunked\r\n")
                ),
                "",
            ),
            (
                "a chunk longer than its size",
                format!(
                    "{}4\r\n{body}\r\n0\r\n\r\n",
                    head("transfer-encoding: chunked\r\n")
                ),
                "",
            ),
            (
                "a content length that is not a number",
                format!("{}{body}", head("content-length: abc\r\n")),
                "",
            ),
            (
                "two different content lengths",
                format!(
                    "{}{body}",
                    head(&format!(
                        "content-length: {}\r\ncontent-length: 3\r\n",
                        body.len()
                    ))
                ),
                "",
            ),
        ];
        for (name, request, names) in framed {
            cases.push(Case {
                name: format!("framing: {name}"),
                request: request.into_bytes(),
                status: 400,
                names: names.to_owned(),
                half_close: false,
            });
        }
        // A body that ends before its declared length: the client half-closes after it.
        cases.push(Case {
            name: "framing: a body shorter than its content length".into(),
            request: format!(
                "{}{}",
                head(&format!("content-length: {}\r\n", body.len() + 50)),
                body
            )
            .into_bytes(),
            status: 400,
            names: String::new(),
            half_close: true,
        });
    }
}

/// Sends every case to `addr` (one connection each) and asserts its status and named text; nothing may be a 5xx or a pass. Returns
/// how many ran.
pub async fn run(addr: SocketAddr, cases: &[Case]) -> usize {
    let mut failures = Vec::new();
    for case in cases {
        let answer = exchange(addr, &case.request, case.half_close).await;
        let (status, body) = match answer {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{}: {e}", case.name));
                continue;
            }
        };
        if status != case.status || !body.contains(&case.names) {
            failures.push(format!(
                "{}: {status} {body} (want {} naming {:?})",
                case.name, case.status, case.names
            ));
        }
        if status >= 500
            || body.contains("\"check_passed\":true")
            || body.contains("\"is_valid\":true")
        {
            failures.push(format!("{}: a 5xx or a pass: {status} {body}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

/// One request on its own connection: the status and the body (as text).
async fn exchange(
    addr: SocketAddr,
    request: &[u8],
    half_close: bool,
) -> Result<(u16, String), String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    if half_close {
        let _ = stream.shutdown().await;
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}
