//! What the bench sends and what it must get back. Every request has a known expected verdict
//! (the zone and the web server are the bench's own), so a wrong `is_valid` is counted, never
//! assumed away. One request in [`INVALID_EVERY`] expects `false`, so a fleet that says "valid"
//! to everything is caught too.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

/// One request in this many expects `is_valid: false`.
pub const INVALID_EVERY: usize = 10;
/// Distinct request bodies per scenario (the bench cycles through them).
pub const VARIANTS: usize = 1000;

/// The zone every scenario resolves in (served by NSD, through Unbound, or by the in-process
/// kit server).
pub const ZONE: &str = "mpic.test";
/// The CA's issuer domain name: CAA at the apex authorises it.
pub const ISSUER: &str = "ca.example";
/// `_dc.mpic.test TXT` holds this (dns-change).
pub const DNS_CHANGE_VALUE: &str = "dc-value";
/// The http-01 target; it resolves to 127.0.0.1, where the bench's web server listens.
pub const WEB_HOST: &str = "web.mpic.test";
/// The account-key thumbprint of the http-01 key authorisations the web server serves.
pub const THUMBPRINT: &str = "bench-thumbprint";

/// The check a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// CAA (BR 3.2.2.8): `r<k>.mpic.test` is authorised by the apex record,
    /// `r<k>.deny.mpic.test` is not.
    Caa,
    /// dns-change with a TXT record at `_dc.mpic.test`.
    DnsChange,
    /// acme-http-01 against the bench's web server on loopback.
    Http01,
}

impl Check {
    /// Its name in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Caa => "caa",
            Check::DnsChange => "dns-change",
            Check::Http01 => "acme-http-01",
        }
    }
}

/// One prepared request.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The `POST /mpic` body.
    pub body: Bytes,
    /// The body a perspective gets for the same check (for direct calls).
    pub perspective_body: Bytes,
    /// `true` for `/caa`, `false` for `/dcv`.
    pub caa: bool,
    /// The verdict the fleet must return.
    pub expect_valid: bool,
}

/// The [`VARIANTS`] requests of `check`, serialised once.
pub fn requests(check: Check) -> Vec<Prepared> {
    (0..VARIANTS).map(|k| request(check, k)).collect()
}

/// Request number `k` of `check`.
pub fn request(check: Check, k: usize) -> Prepared {
    let expect_valid = k % INVALID_EVERY != INVALID_EVERY - 1;
    let trace = format!("bench-{k}");
    let (body, perspective_body, caa) = match check {
        Check::Caa => {
            let target = if expect_valid {
                format!("r{k}.{ZONE}")
            } else {
                format!("r{k}.deny.{ZONE}")
            };
            let params = json!({"certificate_type": "tls-server", "caa_domains": [ISSUER]});
            (
                json!({"check_type": "caa", "domain_or_ip_target": target, "trace_identifier": trace, "caa_check_parameters": params}),
                json!({"domain_or_ip_target": target, "trace_identifier": trace, "caa_check_parameters": params}),
                true,
            )
        }
        Check::DnsChange => {
            let value = if expect_valid {
                DNS_CHANGE_VALUE.to_owned()
            } else {
                format!("wrong-value-{k}")
            };
            let params = json!({"validation_method": "dns-change", "challenge_value": value, "dns_record_type": "TXT", "dns_name_prefix": "_dc"});
            (
                json!({"check_type": "dcv", "domain_or_ip_target": ZONE, "trace_identifier": trace, "dcv_check_parameters": params}),
                json!({"domain_or_ip_target": ZONE, "trace_identifier": trace, "dcv_check_parameters": params}),
                false,
            )
        }
        Check::Http01 => {
            let token = format!("tok{k}");
            let key_authorization = if expect_valid {
                http01_key_authorization(&token)
            } else {
                format!("{token}.another-thumbprint")
            };
            let params = json!({"validation_method": "acme-http-01", "token": token, "key_authorization": key_authorization});
            (
                json!({"check_type": "dcv", "domain_or_ip_target": WEB_HOST, "trace_identifier": trace, "dcv_check_parameters": params}),
                json!({"domain_or_ip_target": WEB_HOST, "trace_identifier": trace, "dcv_check_parameters": params}),
                false,
            )
        }
    };
    Prepared {
        body: Bytes::from(body.to_string()),
        perspective_body: Bytes::from(perspective_body.to_string()),
        caa,
        expect_valid,
    }
}

/// What the web server answers for `token` (RFC 8555 8.3: `token || '.' || thumbprint`).
pub fn http01_key_authorization(token: &str) -> String {
    format!("{token}.{THUMBPRINT}")
}

/// The zone-file lines of [`ZONE`] (relative names), for NSD.
pub fn zone_records() -> Vec<String> {
    vec![
        format!(r#"@ 60 IN CAA 0 issue "{ISSUER}""#),
        r#"deny 60 IN CAA 0 issue "other.example""#.to_owned(),
        format!(r#"_dc 60 IN TXT "{DNS_CHANGE_VALUE}""#),
        "web 60 IN A 127.0.0.1".to_owned(),
    ]
}

/// The parts of a `POST /mpic` answer the bench reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The verdict.
    pub is_valid: bool,
    /// The latest `timestamp_ns` among the perspectives' answers (when the slowest one finished
    /// its check, on this machine's clock).
    pub last_check_ns: Option<u64>,
    /// Why perspectives did not complete their check, one entry per such perspective (the
    /// first error, numbers masked so alike failures group).
    pub incomplete: Vec<String>,
}

/// Reads a 200 body.
pub fn parse_reply(body: &[u8]) -> Result<Reply, String> {
    #[derive(Deserialize)]
    struct Wire {
        is_valid: bool,
        #[serde(default)]
        perspectives: Vec<WirePerspective>,
    }
    #[derive(Deserialize)]
    struct WirePerspective {
        check_response: WireCheck,
    }
    #[derive(Deserialize)]
    struct WireCheck {
        #[serde(default)]
        timestamp_ns: u64,
        #[serde(default)]
        check_completed: bool,
        #[serde(default)]
        errors: Option<Vec<WireError>>,
    }
    #[derive(Deserialize)]
    struct WireError {
        #[serde(default)]
        error_type: String,
        #[serde(default)]
        error_message: String,
    }
    let wire: Wire = serde_json::from_slice(body).map_err(|e| format!("unreadable 200: {e}"))?;
    Ok(Reply {
        is_valid: wire.is_valid,
        last_check_ns: wire
            .perspectives
            .iter()
            .filter(|p| p.check_response.check_completed)
            .map(|p| p.check_response.timestamp_ns)
            .max(),
        incomplete: wire
            .perspectives
            .iter()
            .filter(|p| !p.check_response.check_completed)
            .map(|p| {
                let first = p.check_response.errors.as_ref().and_then(|e| e.first());
                first.map_or_else(
                    || "(no error given)".to_owned(),
                    |e| mask(&format!("{}: {}", e.error_type, e.error_message)),
                )
            })
            .collect(),
    })
}

/// `body` (a `POST /mpic` request) with `orchestration_parameters.perspective_count` set, for
/// the cohort identity check across replicas.
pub fn with_perspective_count(body: &[u8], perspective_count: usize) -> Bytes {
    let mut request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    request["orchestration_parameters"] = json!({"perspective_count": perspective_count});
    Bytes::from(request.to_string())
}

/// The perspectives a 200 answer names (`perspectives[].perspective_code`), sorted: the cohort
/// of the returned attempt.
pub fn parse_cohort(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Wire {
        perspectives: Vec<WirePerspective>,
    }
    #[derive(Deserialize)]
    struct WirePerspective {
        perspective_code: String,
    }
    let wire: Wire = serde_json::from_slice(body).map_err(|e| format!("unreadable 200: {e}"))?;
    let mut codes: Vec<String> = wire
        .perspectives
        .into_iter()
        .map(|p| p.perspective_code)
        .collect();
    codes.sort_unstable();
    Ok(codes)
}

/// At most 120 characters of `text` with every run of digits replaced by `#`, so that
/// "127.0.0.1:5353 within 2000 ms" and "127.0.0.1:5354 within 2000 ms" count as one failure.
pub fn mask(text: &str) -> String {
    let mut out = String::new();
    let mut in_digits = false;
    for c in text.chars().take(120) {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Whether a perspective's direct answer passed (`check_passed` of a `CheckResponse`).
pub fn parse_check_passed(body: &[u8]) -> Result<bool, String> {
    #[derive(Deserialize)]
    struct Wire {
        check_passed: bool,
    }
    serde_json::from_slice::<Wire>(body)
        .map(|w| w.check_passed)
        .map_err(|e| format!("unreadable CheckResponse: {e}"))
}

/// The coordinator's own account of a request, from its `Server-Timing` header (W3C Server
/// Timing; durations in milliseconds): `total` (request in, response built) and `perspectives`
/// (time spent waiting on the perspectives' calls), e.g.
/// `total;dur=12.410, perspectives;dur=11.930`. `slowest-call` is read as a synonym of
/// `perspectives`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinatorTiming {
    /// `total`, in µs.
    pub total_us: u64,
    /// `perspectives` (or `slowest-call`), in µs.
    pub slowest_call_us: u64,
}

impl CoordinatorTiming {
    /// What the coordinator added: its time minus the time it waited on perspectives.
    pub fn added_us(&self) -> u64 {
        self.total_us.saturating_sub(self.slowest_call_us)
    }
}

/// Reads `total` and `perspectives` (or `slowest-call`) from a `Server-Timing` value; `None`
/// unless both are there.
pub fn parse_server_timing(value: &str) -> Option<CoordinatorTiming> {
    let mut total = None;
    let mut slowest = None;
    for metric in value.split(',') {
        let mut parts = metric.split(';').map(str::trim);
        let name = parts.next()?;
        let dur = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("dur"))
            .and_then(|(_, v)| v.trim().trim_matches('"').parse::<f64>().ok())
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| (ms * 1000.0).round() as u64);
        match name {
            "total" => total = dur,
            "perspectives" | "slowest-call" => slowest = dur,
            _ => {}
        }
    }
    Some(CoordinatorTiming {
        total_us: total?,
        slowest_call_us: slowest?,
    })
}

/// Rounds of [`cpu_reference_ns`]: the best is kept, so a busy moment does not count.
const REFERENCE_ROUNDS: u32 = 20;
/// JSON round trips per round.
const REFERENCE_TRIPS: u32 = 20_000;

/// One core's speed on work like the services': nanoseconds to parse `body` as JSON and
/// serialize it again, the best of a few rounds. Results of runs on different machines compare
/// only through it.
pub fn cpu_reference_ns(body: &[u8]) -> u64 {
    (0..REFERENCE_ROUNDS)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..REFERENCE_TRIPS {
                let value: serde_json::Value =
                    serde_json::from_slice(std::hint::black_box(body)).unwrap_or_default();
                std::hint::black_box(serde_json::to_vec(&value).unwrap_or_default());
            }
            u64::try_from(start.elapsed().as_nanos() / u128::from(REFERENCE_TRIPS))
                .unwrap_or(u64::MAX)
        })
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cohort_requests_and_answers() {
        let body = with_perspective_count(&request(Check::Caa, 3).body, 4);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["orchestration_parameters"]["perspective_count"], 4);
        assert_eq!(v["domain_or_ip_target"], "r3.mpic.test");
        struct Case {
            name: &'static str,
            body: &'static str,
            want: Result<Vec<&'static str>, ()>,
        }
        let cases = [
            Case {
                name: "sorted",
                body: r#"{"is_valid": true, "perspectives": [{"perspective_code": "eu-west", "check_response": {}}, {"perspective_code": "af-south"}]}"#,
                want: Ok(vec!["af-south", "eu-west"]),
            },
            Case {
                name: "no perspectives listed",
                body: r#"{"is_valid": true}"#,
                want: Err(()),
            },
        ];
        for c in cases {
            let got = parse_cohort(c.body.as_bytes()).map_err(|_| ());
            let want = c.want.map(|v| v.into_iter().map(str::to_owned).collect());
            assert_eq!(got, want, "{}", c.name);
        }
    }

    #[test]
    fn the_cpu_reference_times_a_json_round_trip() {
        let body = &requests(Check::Caa)[0].body;
        let ns = cpu_reference_ns(body);
        // A round trip of a few hundred bytes takes microseconds, not nothing and not seconds.
        assert!((100..1_000_000).contains(&ns), "{ns} ns");
    }

    #[test]
    fn one_in_ten_expects_invalid_and_every_body_is_json() {
        for check in [Check::Caa, Check::DnsChange, Check::Http01] {
            let all = requests(check);
            assert_eq!(all.len(), VARIANTS);
            let invalid = all.iter().filter(|r| !r.expect_valid).count();
            assert_eq!(invalid, VARIANTS / INVALID_EVERY, "{}", check.as_str());
            for r in &all {
                let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                let p: serde_json::Value = serde_json::from_slice(&r.perspective_body).unwrap();
                assert_eq!(body["domain_or_ip_target"], p["domain_or_ip_target"]);
                assert_eq!(r.caa, check == Check::Caa);
            }
        }
    }

    #[test]
    fn expected_verdicts_follow_the_zone_and_the_web_server() {
        struct Case {
            name: &'static str,
            check: Check,
            k: usize,
            want_valid: bool,
            field: &'static str,
            want: &'static str,
        }
        let cases = [
            Case {
                name: "caa permitted by the apex",
                check: Check::Caa,
                k: 0,
                want_valid: true,
                field: "/domain_or_ip_target",
                want: "r0.mpic.test",
            },
            Case {
                name: "caa denied below deny",
                check: Check::Caa,
                k: 9,
                want_valid: false,
                field: "/domain_or_ip_target",
                want: "r9.deny.mpic.test",
            },
            Case {
                name: "dns-change right value",
                check: Check::DnsChange,
                k: 1,
                want_valid: true,
                field: "/dcv_check_parameters/challenge_value",
                want: "dc-value",
            },
            Case {
                name: "dns-change wrong value",
                check: Check::DnsChange,
                k: 19,
                want_valid: false,
                field: "/dcv_check_parameters/challenge_value",
                want: "wrong-value-19",
            },
            Case {
                name: "http-01 served key authorisation",
                check: Check::Http01,
                k: 2,
                want_valid: true,
                field: "/dcv_check_parameters/key_authorization",
                want: "tok2.bench-thumbprint",
            },
            Case {
                name: "http-01 other thumbprint",
                check: Check::Http01,
                k: 29,
                want_valid: false,
                field: "/dcv_check_parameters/key_authorization",
                want: "tok29.another-thumbprint",
            },
        ];
        for c in cases {
            let r = request(c.check, c.k);
            assert_eq!(r.expect_valid, c.want_valid, "{}", c.name);
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body.pointer(c.field).unwrap(), c.want, "{}", c.name);
        }
    }

    #[test]
    fn replies() {
        let body = br#"{"is_valid": true, "mpic_completed": true, "perspectives": [
            {"perspective_code": "a", "check_response": {"check_completed": true, "timestamp_ns": 5}},
            {"perspective_code": "b", "check_response": {"check_completed": true, "timestamp_ns": 9}},
            {"perspective_code": "c", "check_response": {"check_completed": false, "timestamp_ns": 99,
              "errors": [{"error_type": "mpic_error:coordinator:remote_check", "error_message": "perspective c: no answer within 5000 ms"}]}}]}"#;
        assert_eq!(
            parse_reply(body).unwrap(),
            Reply {
                is_valid: true,
                last_check_ns: Some(9),
                incomplete: vec![
                    "mpic_error:coordinator:remote_check: perspective c: no answer within # ms"
                        .to_owned()
                ],
            },
            "a cancelled straggler's timestamp is the coordinator's, not a check's"
        );
        assert!(parse_reply(b"{\"error\": \"overloaded\"}").is_err());
        assert!(parse_check_passed(br#"{"check_passed": false, "x": 1}"#) == Ok(false));
    }

    #[test]
    fn server_timing() {
        struct Case {
            name: &'static str,
            header: &'static str,
            want: Option<(u64, u64)>,
        }
        let cases = [
            Case {
                name: "both metrics",
                header: "total;dur=12.41, slowest-call;dur=11.93",
                want: Some((12_410, 11_930)),
            },
            Case {
                name: "other metrics, descriptions and quoted durations",
                header: r#"db;dur=1, slowest-call;desc="p3";dur="2.5", total;dur=3"#,
                want: Some((3_000, 2_500)),
            },
            Case {
                name: "the coordinator's own names",
                header: "total;dur=4.212, perspectives;dur=3.900",
                want: Some((4_212, 3_900)),
            },
            Case {
                name: "one missing",
                header: "total;dur=3",
                want: None,
            },
            Case {
                name: "not a number",
                header: "total;dur=x, slowest-call;dur=1",
                want: None,
            },
        ];
        for c in cases {
            let got = parse_server_timing(c.header).map(|t| (t.total_us, t.slowest_call_us));
            assert_eq!(got, c.want, "{}", c.name);
        }
        let t = parse_server_timing("total;dur=12.41, slowest-call;dur=11.93").unwrap();
        assert_eq!(t.added_us(), 480);
    }
}
