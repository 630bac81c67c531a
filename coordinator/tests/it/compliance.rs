//! Open MPIC's API compliance suite (`open-mpic/open-mpic-api-compliance`), offline: every case
//! restated in `tests/compliance/cases.yaml` is POSTed to `/mpic` of a fleet of the real
//! binaries, and its expected status, verdict and other assertions are checked, with the
//! response-shape requirements of the suite's generated client (`suite.implicit_response_checks`).
//!
//! The fixtures are built from the restated facts, nothing else:
//!
//! - **DNS** (`zones.yaml`): every published zone served by a real NSD, each perspective
//!   resolving through its own real, validating Unbound (the production configuration under
//!   the test overlay of [`mpic_tests::fixtures`]). `caatestsuite-dnssec.com` is signed, with
//!   keys of the fixture's own (the published private keys are not public) and the published DS
//!   records of its children. Its `blackhole`, `servfail` and `refused` children, whose servers
//!   never answer, answer SERVFAIL or answer REFUSED, are test-kit DNS servers that do exactly
//!   that, reached through a stub zone rather than the published addresses (nothing leaves
//!   loopback). Names no repository publishes (`com`, `org`, `example.com`, `open-mpic.org`) are
//!   empty zones: no CAA anywhere above the published data, as the suite assumes. SOA and apex
//!   NS records are the fixture's own; published DNSKEYs and deployment-only records are left
//!   out; the two web hosts' A records point at loopback.
//! - **Web** (`web.yaml`): the test kit's HTTP server answers every published path (files,
//!   the redirects, the 12-hop chain; anything else 404), and its TLS-ALPN server presents a
//!   certificate rebuilt from the published facts (SAN, CN, the critical acmeIdentifier with
//!   the published DER value), self-signed with a key of its own.
//! - **Fleet**: three perspectives (ARIN, RIPE NCC, APNIC) and a coordinator as processes of
//!   this workspace's binaries, mutual TLS between them; `policy: warn`, because the suite
//!   predates the BR's retirement of `ip-address`, which `enforce` would refuse; the
//!   perspectives dial loopback web servers only through their `danger_` test settings; the
//!   default CAA issuer domains are the reference deployment's (`example.com`, `example.org`);
//!   every perspective's answer is waited for (the straggler grace is the whole call deadline),
//!   so `perspectives[0]` is always a finished check, as in the suite's two-perspective
//!   deployment.
//!
//! What differs from the suite's own setting, case by case, is in [`OFFLINE`] and in
//! `tests/compliance/SOURCES.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use mpic_tests::dns::{Behaviour, DnsServer, Zone};
use mpic_tests::fixtures::{DnsWorld, WorldSpec, ZoneSpec, free_port};
use mpic_tests::process::{Server, workspace_bin};
use mpic_tests::web::{
    ACME_TLS_1, AcmeExtension, ChallengeCert, Reply, Routes, San, TlsAlpnServer, TlsVersions,
    WebServer, hex, key_authorization_digest,
};
use serde::Deserialize;
use serde_json::Value;

use crate::e2e::mtls_client;
use crate::support::{API_KEY, PLACES, SECRET, TempDir, pki};

/// Where the restated suite lives.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/compliance");
/// How many cases the suite has (SOURCES.md "Case count").
const CASES: usize = 109;
/// Perspectives of the fleet.
const PERSPECTIVES: usize = 3;
/// Cases in flight at once.
const CONCURRENCY: usize = 16;

/// What stands in, offline, for what a case relies on that cannot be had here as published,
/// and what the test asserts beyond the suite's own checks because of it. Every other case
/// runs against fixtures that reproduce the published data as it is.
const OFFLINE: &[Offline] = &[
    Offline {
        short: "caa-basic-01",
        stand_in: "example.com and com are empty zones: no repository publishes them; the suite \
                   assumes the live example.com has no CAA",
        extra: Extra::None,
    },
    Offline {
        short: "caa-smime-03",
        stand_in: "open-mpic.org and org are empty zones (not published; the suite assumes no CAA)",
        extra: Extra::None,
    },
    Offline {
        short: "dcv-email-caa-15",
        stand_in: "open-mpic.org and org are empty zones (not published; the suite assumes no CAA)",
        extra: Extra::None,
    },
    Offline {
        short: "caa-deny-16",
        stand_in: "the IPv6-only name server is not reproduced: the resolvers have no IPv6 \
                   transport (do-ip6: no), the case the suite describes for deployments \
                   without IPv6, where the lookup fails; the CAA set behind it is not read",
        extra: Extra::LookupFailed,
    },
    Offline {
        short: "caa-deny-17",
        stand_in: "the never-answering server is a test-kit DNS server that drops every query, \
                   reached through a stub zone instead of the published address; the parent is \
                   signed with the fixture's own keys and carries the published DS",
        extra: Extra::LookupFailed,
    },
    Offline {
        short: "caa-deny-18",
        stand_in: "the server answering SERVFAIL is a test-kit DNS server doing so, reached \
                   through a stub zone; how the published servers come to SERVFAIL is not \
                   published",
        extra: Extra::LookupFailed,
    },
    Offline {
        short: "caa-deny-19",
        stand_in: "the server answering REFUSED is a test-kit DNS server doing so, reached \
                   through a stub zone instead of the published address",
        extra: Extra::LookupFailed,
    },
    Offline {
        short: "dcv-http01-06",
        stand_in: "nothing listens on :8080 offline; none is needed, since a redirect to a port \
                   other than 80 and 443 is refused before any connection, which is asserted",
        extra: Extra::RedirectRefused("port 8080"),
    },
    Offline {
        short: "dcv-website-04",
        stand_in: "nothing listens on :8080 offline; the redirect is refused before any \
                   connection, which is asserted",
        extra: Extra::RedirectRefused("port 8080"),
    },
    Offline {
        short: "dcv-website-03",
        stand_in: "none: the 12-hop chain is served as published; the twelve hops are asserted",
        extra: Extra::Redirects(12),
    },
    Offline {
        short: "dcv-tlsalpn-01",
        stand_in: "the certificate is rebuilt from the published facts with an ECDSA P-256 key \
                   (the published responder makes a fresh RSA-2048 key at each start) and \
                   without its extendedKeyUsage extension, which RFC 8737 does not look at",
        extra: Extra::None,
    },
];

/// One entry of [`OFFLINE`].
#[derive(Debug)]
struct Offline {
    /// The case's `short` id.
    short: &'static str,
    /// What stands in for what the suite relies on.
    stand_in: &'static str,
    /// What is asserted beyond the suite's checks.
    extra: Extra,
}

/// An assertion beyond the suite's own, on every perspective's answer.
#[derive(Debug, Clone, Copy)]
enum Extra {
    None,
    /// The lookup failed: not completed, not passed.
    LookupFailed,
    /// The redirect was refused with `mpic_error:redirect:invalid`, naming this.
    RedirectRefused(&'static str),
    /// Passed after exactly this many redirects.
    Redirects(usize),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_mpic_compliance_suite_offline() {
    let started = Instant::now();
    let cases = load_cases();
    assert_eq!(cases.len(), CASES, "cases.yaml holds the whole suite");
    let shorts: BTreeSet<&str> = cases.iter().map(|c| c.short.as_str()).collect();
    assert_eq!(shorts.len(), CASES, "case ids are unique");
    for o in OFFLINE {
        assert!(
            shorts.contains(o.short),
            "OFFLINE names no case {}",
            o.short
        );
        assert!(!o.stand_in.is_empty());
    }

    let fixtures = Fixtures::start(PERSPECTIVES).await;
    let fleet = Fleet::start(&fixtures).await;
    let set_up = started.elapsed();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let fleet = Arc::new(fleet);
    let outcomes: Vec<Result<(), String>> = futures_util::stream::iter(cases)
        .map(|case| {
            let client = client.clone();
            let fleet = Arc::clone(&fleet);
            async move { run_case(&client, &fleet.url, &case).await }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let failures: Vec<String> = outcomes.into_iter().filter_map(Result::err).collect();
    eprintln!(
        "Open MPIC compliance: {} of {CASES} cases passed; fixtures and fleet up in {set_up:?}, \
         all in {:?}",
        CASES - failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {CASES} cases failed:\n{}\n\ncoordinator log:\n{}",
        failures.len(),
        failures.join("\n"),
        fleet.coordinator_log()
    );

    // The misbehaving servers were asked: the cases above went the way described.
    for (name, server) in &fixtures.broken_children {
        assert!(
            !server.queries().is_empty(),
            "nobody asked the server of {name}: the case did not reach it"
        );
    }
}

/// One case: the request as the suite sends it (with our API key), then every check.
async fn run_case(client: &reqwest::Client, url: &str, case: &Case) -> Result<(), String> {
    let fail = |why: String| Err(format!("{} ({}): {why}", case.short, case.id));
    let response = match client
        .post(url)
        .bearer_auth(API_KEY)
        .json(&case.request)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return fail(format!("no response: {e}")),
    };
    let status = response.status().as_u16();
    let body: Value = match response.json().await {
        Ok(b) => b,
        Err(e) => return fail(format!("status {status}, body not JSON: {e}")),
    };
    if status != case.expect.http_status {
        return fail(format!(
            "status {status}, want {}: {body}",
            case.expect.http_status
        ));
    }
    if let Err(why) = parseable(&case.request, &body) {
        return fail(format!(
            "the suite's client could not read it: {why}: {body}"
        ));
    }
    if body["is_valid"] != case.expect.is_valid {
        return fail(format!(
            "is_valid {}, want {}: {body}",
            body["is_valid"], case.expect.is_valid
        ));
    }
    for other in &case.expect.other {
        if let Other::Equals { path, equals } = other {
            let got = at_path(&body, path);
            if got != Some(equals) {
                return fail(format!("{path} is {got:?}, want {equals}: {body}"));
            }
        }
    }
    // Every perspective sees the same fixtures: none passes a failed case, and a valid one is
    // corroborated by a quorum.
    let perspectives = body["perspectives"].as_array().cloned().unwrap_or_default();
    let passed = perspectives
        .iter()
        .filter(|p| p["check_response"]["check_passed"] == true)
        .count();
    let quorum = body["actual_orchestration_parameters"]["quorum_count"]
        .as_u64()
        .unwrap_or(u64::MAX);
    let consistent = if case.expect.is_valid {
        u64::try_from(passed).unwrap_or(0) >= quorum
    } else {
        passed == 0
    };
    if !consistent {
        return fail(format!(
            "{passed} perspectives passed, quorum {quorum}: {body}"
        ));
    }
    let extra = OFFLINE
        .iter()
        .find(|o| o.short == case.short)
        .map_or(Extra::None, |o| o.extra);
    for p in &perspectives {
        let r = &p["check_response"];
        let errors: Vec<(&str, &str)> = r["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e["error_type"].as_str().unwrap_or(""),
                            e["error_message"].as_str().unwrap_or(""),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let holds = match extra {
            Extra::None => true,
            Extra::LookupFailed => {
                r["check_completed"] == false && r["check_passed"] == false && !errors.is_empty()
            }
            Extra::RedirectRefused(what) => errors
                .iter()
                .any(|(t, m)| *t == "mpic_error:redirect:invalid" && m.contains(what)),
            Extra::Redirects(n) => {
                r["check_passed"] == true
                    && r["details"]["response_history"]
                        .as_array()
                        .is_some_and(|h| h.len() == n)
            }
        };
        if !holds {
            return fail(format!("{extra:?} does not hold for {p}"));
        }
    }
    Ok(())
}

/// What the suite's generated client needs to read a 200 at all (`cases.yaml`
/// `suite.implicit_response_checks`), and this service's own OpenAPI document.
fn parseable(request: &Value, body: &Value) -> Result<(), String> {
    let check_type = request["check_type"].as_str().unwrap_or("caa");
    let need = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
    need(
        body["domain_or_ip_target"].is_string(),
        "domain_or_ip_target",
    )?;
    need(body["is_valid"].is_boolean(), "is_valid")?;
    need(body["mpic_completed"].is_boolean(), "mpic_completed")?;
    need(
        body.get("request_orchestration_parameters")
            .is_some_and(|v| v.is_null() || v.is_object()),
        "request_orchestration_parameters",
    )?;
    need(
        body["actual_orchestration_parameters"].is_object(),
        "actual_orchestration_parameters",
    )?;
    need(body["check_type"] == check_type, "check_type")?;
    match check_type {
        "caa" => need(
            body.get("caa_check_parameters").is_some(),
            "caa_check_parameters",
        )?,
        _ => need(
            body["dcv_check_parameters"]["validation_method"]
                == request["dcv_check_parameters"]["validation_method"],
            "dcv_check_parameters.validation_method",
        )?,
    }
    let perspectives = body["perspectives"]
        .as_array()
        .ok_or_else(|| "perspectives".to_owned())?;
    let method = request["dcv_check_parameters"]["validation_method"]
        .as_str()
        .unwrap_or("");
    let detail_keys: &[&str] = match (check_type, method) {
        ("caa", _) => &["caa_record_present", "found_at", "records_seen"],
        (_, "acme-http-01" | "website-change") => &[
            "response_history",
            "response_url",
            "response_status_code",
            "response_page",
        ],
        (_, "acme-tls-alpn-01") => &["common_name"],
        _ => &["records_seen", "response_code", "ad_flag", "found_at"],
    };
    for p in perspectives {
        need(p["perspective_code"].is_string(), "perspective_code")?;
        let r = &p["check_response"];
        need(r["check_passed"].is_boolean(), "check_passed")?;
        need(r["check_completed"].is_boolean(), "check_completed")?;
        need(r["timestamp_ns"].is_u64(), "timestamp_ns")?;
        need(r["check_type"] == check_type, "check_response.check_type")?;
        if let Some(errors) = r.get("errors").filter(|e| !e.is_null()) {
            let ok = errors.as_array().is_some_and(|errors| {
                errors
                    .iter()
                    .all(|e| e["error_type"].is_string() && e["error_message"].is_string())
            });
            need(ok, "errors")?;
        }
        for key in detail_keys {
            need(r["details"].get(*key).is_some(), &format!("details.{key}"))?;
        }
    }
    static SCHEMA: OnceLock<jsonschema::Validator> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| crate::observability::validator("MpicResponse"));
    let errors: Vec<String> = schema
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    need(
        errors.is_empty(),
        &format!("not an MpicResponse of our OpenAPI document: {errors:?}"),
    )
}

/// The value at `path` (`a.b[0].c`), if any.
fn at_path<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, part| {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        let v = v.get(key)?;
        match index {
            Some(i) => v.get(i),
            None => Some(v),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The restated suite (tests/compliance/*.yaml), read as this test needs it.

#[derive(Debug, Deserialize)]
struct CasesFile {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    id: String,
    short: String,
    request: Value,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
struct Expect {
    http_status: u16,
    is_valid: bool,
    #[serde(default)]
    other: Vec<Other>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Other {
    /// An explicit assertion of the suite.
    Equals { path: String, equals: Value },
    /// A requirement that follows from the case (checked by the case itself, or by
    /// [`OFFLINE`]).
    #[allow(dead_code, reason = "read to check the file's shape")]
    Implicit(String),
}

#[derive(Debug, Deserialize)]
struct ZonesFile {
    zones: Vec<ZoneData>,
    offline_address_overrides: Vec<AddressOverride>,
}

#[derive(Debug, Deserialize)]
struct ZoneData {
    zone: String,
    #[serde(default)]
    dnssec: Option<String>,
    #[serde(default)]
    special_behaviour: Option<String>,
    #[serde(default)]
    child_zone_behaviour: BTreeMap<String, String>,
    names: Vec<NameData>,
}

#[derive(Debug, Deserialize)]
struct NameData {
    name: String,
    #[serde(default)]
    records: Vec<RecordData>,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RecordData {
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: Option<u32>,
    rdata: String,
    /// A CAA record's fields, exact bytes.
    #[serde(default)]
    caa: Option<CaaData>,
    /// A TXT record's character-strings, exact bytes.
    #[serde(default)]
    txt: Option<Vec<String>>,
    #[serde(default)]
    generate: Option<Generate>,
}

#[derive(Debug, Deserialize)]
struct CaaData {
    flags: u8,
    tag: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct Generate {
    count: usize,
    flags: u8,
    tag: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct AddressOverride {
    name: String,
    offline: String,
}

#[derive(Debug, Deserialize)]
struct WebFile {
    web_hosts: Vec<WebHost>,
    tls_alpn: TlsAlpnData,
}

#[derive(Debug, Deserialize)]
struct WebHost {
    files: Vec<WebPath>,
    redirects: Vec<WebRedirect>,
    not_found_examples: Vec<WebNotFound>,
}

#[derive(Debug, Deserialize)]
struct WebPath {
    path: String,
    status: u16,
    content: String,
    length_bytes: usize,
}

#[derive(Debug, Deserialize)]
struct WebRedirect {
    path: String,
    status: u16,
    location: String,
}

#[derive(Debug, Deserialize)]
struct WebNotFound {
    path: String,
    status: u16,
}

#[derive(Debug, Deserialize)]
struct TlsAlpnData {
    host: String,
    certificate: CertificateData,
}

#[derive(Debug, Deserialize)]
struct CertificateData {
    self_signed: bool,
    subject: String,
    subject_alt_name: SubjectAltName,
    acme_identifier: AcmeIdentifierData,
}

#[derive(Debug, Deserialize)]
struct SubjectAltName {
    entries: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct AcmeIdentifierData {
    critical: bool,
    extn_value_der_hex: String,
    key_authorization: String,
    sha256_hex: String,
}

fn read_yaml<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = Path::new(DATA).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load_cases() -> Vec<Case> {
    read_yaml::<CasesFile>("cases.yaml").cases
}

// ---------------------------------------------------------------------------------------------
// Fixtures: DNS, web and TLS-ALPN servers from zones.yaml and web.yaml.

/// What the perspectives reach.
struct Fixtures {
    world: DnsWorld,
    /// The test-kit servers standing in for the broken children of `caatestsuite-dnssec.com`.
    broken_children: Vec<(String, DnsServer)>,
    web: WebServer,
    tls_alpn: TlsAlpnServer,
}

impl Fixtures {
    async fn start(resolvers: usize) -> Fixtures {
        let web = start_web().await;
        let tls_alpn = start_tls_alpn().await;
        let zones: ZonesFile = read_yaml("zones.yaml");
        let loopback: Vec<String> = zones
            .offline_address_overrides
            .iter()
            .filter(|o| o.offline.starts_with("a loopback address"))
            .map(|o| o.name.to_ascii_lowercase())
            .collect();
        assert_eq!(
            loopback,
            [
                "integration-testing.open-mpic.org.",
                "tls-alpn.integration-testing.open-mpic.org."
            ],
            "the web and TLS-ALPN hosts are the names moved to loopback"
        );

        // The synthetic names come first: the first zone is the readiness probe's.
        let mut specs = Vec::new();
        let mut published = Vec::new();
        let mut broken_children = Vec::new();
        let mut overridden = 0;
        for zone in &zones.zones {
            if zone.zone.starts_with("synthetic") {
                for name in &zone.names {
                    assert!(
                        name.records.is_empty(),
                        "{}: synthetic names hold nothing",
                        name.name
                    );
                    specs.push(ZoneSpec::unsigned(
                        name.name.trim_end_matches('.'),
                        Vec::<String>::new(),
                    ));
                }
                continue;
            }
            if let Some(behaviour) = &zone.special_behaviour {
                // ipv6only.caatestsuite.com: reachable over IPv6 only; the resolvers have no
                // IPv6 transport, so its delegation in the parent leads nowhere (OFFLINE).
                assert!(behaviour.contains("IPv6"), "{}: {behaviour}", zone.zone);
                continue;
            }
            let origin = zone.zone.trim_end_matches('.').to_ascii_lowercase();
            let mut lines = Vec::new();
            for name in &zone.names {
                if name.role.as_deref() == Some("deployment") {
                    continue;
                }
                let owner = name.name.to_ascii_lowercase();
                let apex = owner.trim_end_matches('.') == origin;
                for record in &name.records {
                    let rtype = record.rtype.to_ascii_uppercase();
                    // The fixture makes the SOA and the apex NS, and signs with its own keys.
                    if rtype == "SOA" || rtype == "DNSKEY" || (apex && rtype == "NS") {
                        continue;
                    }
                    let ttl = record.ttl.unwrap_or(60);
                    // CAA and TXT go in RFC 3597's generic form, built from their fields: the
                    // published bytes exactly (NUL bytes, upper-case and 25-character tags),
                    // which NSD's presentation parser would refuse or reinterpret.
                    if let Some(g) = &record.generate {
                        for n in 0..g.count {
                            let tag = g.tag.replace("{N}", &n.to_string());
                            let rdata = generic(&caa_rdata(g.flags, &tag, &g.value));
                            lines.push(format!("{owner} {ttl} IN CAA {rdata}"));
                        }
                        continue;
                    }
                    let rdata = match (&record.caa, &record.txt) {
                        (Some(c), _) => generic(&caa_rdata(c.flags, &c.tag, &c.value)),
                        (None, Some(strings)) => generic(&txt_rdata(strings)),
                        (None, None) if rtype == "A" && loopback.contains(&owner) => {
                            overridden += 1;
                            "127.0.0.1".to_owned()
                        }
                        (None, None) => record.rdata.clone(),
                    };
                    assert!(
                        (rtype == "CAA") == record.caa.is_some()
                            && (rtype == "TXT") == record.txt.is_some(),
                        "{owner} {rtype}: the fields of its type"
                    );
                    lines.push(format!("{owner} {ttl} IN {rtype} {rdata}"));
                }
            }
            let signed = zone
                .dnssec
                .as_deref()
                .is_some_and(|d| d.starts_with("signed"));
            published.push(if signed {
                ZoneSpec::signed(&origin, lines)
            } else {
                ZoneSpec::unsigned(&origin, lines)
            });
            for (child, behaviour) in &zone.child_zone_behaviour {
                let Some(behaviour) = child_behaviour(behaviour) else {
                    continue;
                };
                let child = child.trim_end_matches('.').to_owned();
                let server = DnsServer::start(Zone::new().behave(&child, behaviour))
                    .await
                    .unwrap();
                published.push(ZoneSpec::elsewhere(&child, server.addr()));
                broken_children.push((child, server));
            }
        }
        assert_eq!(overridden, loopback.len(), "each web host's A record moved");
        assert_eq!(broken_children.len(), 3, "blackhole, servfail and refused");
        specs.extend(published);
        let world = DnsWorld::start(WorldSpec {
            zones: specs,
            resolvers,
        })
        .await
        .unwrap();
        Fixtures {
            world,
            broken_children,
            web,
            tls_alpn,
        }
    }
}

/// RFC 8659 section 4.1: flags, tag length, tag, value.
fn caa_rdata(flags: u8, tag: &str, value: &str) -> Vec<u8> {
    let mut rdata = vec![flags, u8::try_from(tag.len()).unwrap()];
    rdata.extend_from_slice(tag.as_bytes());
    rdata.extend_from_slice(value.as_bytes());
    rdata
}

/// RFC 1035 section 3.3.14: length-prefixed character-strings.
fn txt_rdata(strings: &[String]) -> Vec<u8> {
    let mut rdata = Vec::new();
    for s in strings {
        rdata.push(u8::try_from(s.len()).unwrap());
        rdata.extend_from_slice(s.as_bytes());
    }
    rdata
}

/// RFC 3597 section 5: `\# <length> <hex>`.
fn generic(rdata: &[u8]) -> String {
    format!("\\# {} {}", rdata.len(), hex(rdata))
}

/// How a broken child zone of `zones.yaml` behaves, as a test-kit DNS server; `None` for the
/// children only the suite's disabled cases use.
fn child_behaviour(text: &str) -> Option<Behaviour> {
    match text {
        "no answer at all (timeout)" => Some(Behaviour::Drop),
        "SERVFAIL" => Some(Behaviour::ServFail),
        "REFUSED" => Some(Behaviour::Refused),
        other if other.contains("disabled cases only") => None,
        other => panic!("zones.yaml: a child zone behaviour this test does not know: {other:?}"),
    }
}

/// The web host of `web.yaml`: every file and redirect as published, 404 for the rest.
async fn start_web() -> WebServer {
    let web: WebFile = read_yaml("web.yaml");
    let [host] = &web.web_hosts[..] else {
        panic!("web.yaml: one web host expected");
    };
    let mut routes = Routes::new();
    for file in &host.files {
        assert_eq!(file.content.len(), file.length_bytes, "{}", file.path);
        routes = routes.route(&file.path, Reply::status(file.status, file.content.clone()));
    }
    for redirect in &host.redirects {
        routes = routes.route(
            &redirect.path,
            Reply::redirect(redirect.status, redirect.location.clone()),
        );
    }
    for missing in &host.not_found_examples {
        assert_eq!(missing.status, 404, "{}", missing.path);
        assert!(
            !host.files.iter().any(|f| f.path == missing.path),
            "{}",
            missing.path
        );
    }
    WebServer::start("127.0.0.1:0".parse().unwrap(), routes)
        .await
        .unwrap()
}

/// The TLS-ALPN responder of `web.yaml`: its certificate rebuilt from the published facts.
async fn start_tls_alpn() -> TlsAlpnServer {
    let web: WebFile = read_yaml("web.yaml");
    let cert = &web.tls_alpn.certificate;
    let acme = &cert.acme_identifier;
    assert!(cert.self_signed && acme.critical);
    let value = unhex(&acme.extn_value_der_hex);
    let digest = key_authorization_digest(&acme.key_authorization);
    assert_eq!(hex(&digest), acme.sha256_hex, "the published digest");
    assert_eq!(value[..2], [0x04, 0x20], "a DER OCTET STRING of 32 bytes");
    assert_eq!(value[2..], digest, "holding the digest");
    let sans = cert
        .subject_alt_name
        .entries
        .iter()
        .map(|e| {
            San::Dns(
                e.strip_prefix("DNS:")
                    .unwrap_or_else(|| panic!("{e}"))
                    .to_owned(),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(sans, [San::Dns(web.tls_alpn.host.clone())]);
    let challenge = ChallengeCert {
        sans,
        acme: AcmeExtension::RawCritical(value),
        common_name: Some(
            cert.subject
                .strip_prefix("CN=")
                .unwrap_or_else(|| panic!("{}", cert.subject))
                .to_owned(),
        ),
    };
    TlsAlpnServer::start(
        "127.0.0.1:0".parse().unwrap(),
        &challenge,
        &[ACME_TLS_1],
        TlsVersions::Both,
    )
    .await
    .unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The fleet: the workspace's binaries.

struct Fleet {
    url: String,
    coordinator_log: PathBuf,
    _servers: Vec<Server>,
    _dir: TempDir,
}

impl Fleet {
    async fn start(fixtures: &Fixtures) -> Fleet {
        mpic_common::tls::install_crypto_provider();
        let dir = TempDir::new();
        let files = pki(&dir.0.join("pki"));
        let perspective_bin = workspace_bin("mpic-perspective");
        let mut servers = Vec::new();
        let mut catalogue = String::new();
        for (i, resolver) in fixtures.world.resolver_addrs().iter().enumerate() {
            let (code, rir, lat, lon) = PLACES[i];
            let (_, cert, key) = files.perspectives.iter().find(|(c, ..)| c == code).unwrap();
            let port = free_port();
            let config = dir.0.join(format!("{code}.yaml"));
            std::fs::write(
                &config,
                format!(
                    "listen: 127.0.0.1:{port}\n\
                     perspective: {{code: {code}, rir: {rir}}}\n\
                     resolver: {{address: \"{resolver}\", timeout_ms: 2000}}\n\
                     caa: {{default_issuer_domains: [example.com, example.org]}}\n\
                     tls: {{certificate: {}, private_key: {}, client_ca: {}}}\n\
                     web:\n\
                     \x20 danger_allow_loopback_targets: true\n\
                     \x20 danger_http_port: {}\n\
                     \x20 danger_tls_alpn_port: {}\n",
                    cert.display(),
                    key.display(),
                    files.ca.display(),
                    fixtures.web.addr().port(),
                    fixtures.tls_alpn.addr().port(),
                ),
            )
            .unwrap();
            let server = Server::start(
                &perspective_bin,
                &["--config", config.to_str().unwrap()],
                &[],
                &dir.0.join(format!("{code}.log")),
            );
            server
                .wait_healthy(
                    &mtls_client(&files),
                    &format!("https://127.0.0.1:{port}/healthz"),
                )
                .await;
            servers.push(server);
            catalogue.push_str(&format!(
                "  - {{code: {code}, name: {code}, rir: {rir}, latitude: {lat}, longitude: {lon}, url: \"https://127.0.0.1:{port}\"}}\n"
            ));
        }
        let keys = dir.0.join("api-keys");
        std::fs::write(&keys, format!("{API_KEY}\n")).unwrap();
        let port = free_port();
        let config = dir.0.join("coordinator.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\n\
                 api_keys: {{file: {}}}\n\
                 hash_secret: {{env: MPIC_HASH_SECRET}}\n\
                 default_perspective_count: {PERSPECTIVES}\n\
                 policy: warn\n\
                 timeouts: {{perspective_call_ms: 12000, request_ms: 30000, straggler_grace_ms: 12000}}\n\
                 perspective_tls: {{certificate: {}, private_key: {}, ca: {}}}\n\
                 perspectives:\n{catalogue}",
                keys.display(),
                files.coordinator_cert.display(),
                files.coordinator_key.display(),
                files.ca.display()
            ),
        )
        .unwrap();
        let coordinator_log = dir.0.join("coordinator.log");
        let coordinator = Server::start(
            Path::new(env!("CARGO_BIN_EXE_mpic-coordinator")),
            &["--config", config.to_str().unwrap()],
            &[("MPIC_HASH_SECRET", SECRET)],
            &coordinator_log,
        );
        let base = format!("http://127.0.0.1:{port}");
        coordinator
            .wait_healthy(&reqwest::Client::new(), &format!("{base}/readyz"))
            .await;
        servers.push(coordinator);
        Fleet {
            url: format!("{base}/mpic"),
            coordinator_log,
            _servers: servers,
            _dir: dir,
        }
    }

    /// The last lines the coordinator logged.
    fn coordinator_log(&self) -> String {
        let log = std::fs::read_to_string(&self.coordinator_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}
