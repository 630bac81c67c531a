//! `mpic caa` and `mpic dcv`: ask a coordinator, print a readable table (or the API body with
//! `--json`), exit 0 valid / 1 not valid / 2 error.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use mpic_common::api::MpicResponse;
use serde_json::{Map, Value, json};

/// Where the coordinator is and how to authenticate.
#[derive(Debug, Args)]
pub struct Target {
    /// The coordinator's base URL.
    #[arg(long, env = "MPIC_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The API key.
    #[arg(long, env = "MPIC_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Print the API's JSON body instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Cohort size.
    #[arg(long)]
    pub perspective_count: Option<i64>,
    /// Quorum.
    #[arg(long)]
    pub quorum_count: Option<i64>,
    /// Attempts over successive cohorts.
    #[arg(long)]
    pub max_attempts: Option<i64>,
    /// An opaque identifier echoed back and logged everywhere.
    #[arg(long)]
    pub trace_identifier: Option<String>,
}

/// `mpic caa`.
#[derive(Debug, Args)]
pub struct CaaArgs {
    /// The domain name (a leading `*.` for a wildcard) or IP address.
    pub domain: String,
    #[command(flatten)]
    pub target: Target,
    /// Issuer domain names of the CA (default: the perspectives' configured ones).
    #[arg(long = "caa-domain")]
    pub caa_domains: Vec<String>,
    /// An S/MIME certificate (issuemail governs) instead of a TLS server certificate.
    #[arg(long)]
    pub smime: bool,
    /// RFC 8657 account URI to match `accounturi`.
    #[arg(long)]
    pub account_uri: Option<String>,
    /// RFC 8657 method label to match `validationmethods` (e.g. dns-01).
    #[arg(long)]
    pub validation_method: Option<String>,
}

/// `mpic dcv`.
#[derive(Debug, Args)]
pub struct DcvArgs {
    /// The validation method (api.md), e.g. dns-change, acme-http-01, acme-dns-01.
    pub method: String,
    /// The domain name or IP address.
    pub domain: String,
    #[command(flatten)]
    pub target: Target,
    /// A method field as KEY=VALUE (VALUE parsed as JSON when it is JSON, else a string),
    /// e.g. --param challenge_value=abc --param dns_record_type=TXT. Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
}

/// Runs `mpic caa`.
pub async fn caa(args: CaaArgs) -> anyhow::Result<ExitCode> {
    let mut params = Map::new();
    if !args.caa_domains.is_empty() {
        params.insert("caa_domains".into(), json!(args.caa_domains));
    }
    if args.smime {
        params.insert("certificate_type".into(), json!("s-mime"));
    }
    if let Some(a) = &args.account_uri {
        params.insert("account_uri".into(), json!(a));
    }
    if let Some(m) = &args.validation_method {
        params.insert("validation_method".into(), json!(m));
    }
    let mut body = base(&args.target, "caa", &args.domain);
    body.insert("caa_check_parameters".into(), Value::Object(params));
    send(&args.target, Value::Object(body)).await
}

/// Runs `mpic dcv`.
pub async fn dcv(args: DcvArgs) -> anyhow::Result<ExitCode> {
    let mut params = Map::new();
    params.insert("validation_method".into(), json!(args.method));
    for p in &args.params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p:?}: expected KEY=VALUE");
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        params.insert(k.to_owned(), value);
    }
    let mut body = base(&args.target, "dcv", &args.domain);
    body.insert("dcv_check_parameters".into(), Value::Object(params));
    send(&args.target, Value::Object(body)).await
}

fn base(t: &Target, check_type: &str, domain: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("check_type".into(), json!(check_type));
    body.insert("domain_or_ip_target".into(), json!(domain));
    if let Some(id) = &t.trace_identifier {
        body.insert("trace_identifier".into(), json!(id));
    }
    let mut o = Map::new();
    for (k, v) in [
        ("perspective_count", t.perspective_count),
        ("quorum_count", t.quorum_count),
        ("max_attempts", t.max_attempts),
    ] {
        if let Some(v) = v {
            o.insert(k.into(), json!(v));
        }
    }
    if !o.is_empty() {
        body.insert("orchestration_parameters".into(), Value::Object(o));
    }
    body
}

async fn send(t: &Target, body: Value) -> anyhow::Result<ExitCode> {
    mpic_common::tls::install_crypto_provider();
    let url = format!("{}/mpic", t.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let response = client
        .post(&url)
        .bearer_auth(&t.api_key)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    if !status.is_success() {
        bail!("POST {url}: HTTP {}: {text}", status.as_u16());
    }
    let parsed: MpicResponse = serde_json::from_str(&text)
        .with_context(|| format!("the answer is not an MPIC response: {text}"))?;
    if t.json {
        println!("{text}");
    } else {
        print!("{}", render(&parsed));
    }
    Ok(if parsed.is_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The readable form: a table of perspectives, then the verdict.
pub fn render(r: &MpicResponse) -> String {
    let mut out = String::new();
    let kind = match &r.parameters {
        mpic_common::api::EchoedParameters::Caa(_) => "caa".to_owned(),
        mpic_common::api::EchoedParameters::Dcv(p) => format!("dcv {}", p.method().as_str()),
    };
    out.push_str(&format!("{kind} {}\n\n", r.domain_or_ip_target));
    let rows: Vec<[String; 5]> = r
        .perspectives
        .iter()
        .map(|p| {
            let c = &p.check_response;
            let result = match (c.check_completed, c.check_passed) {
                (true, true) => "passed",
                (true, false) => "failed",
                (false, _) => "error",
            };
            let errors = c
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.error_type, e.error_message))
                .collect::<Vec<_>>()
                .join("; ");
            [
                p.perspective_code.clone(),
                p.rir.map_or_else(|| "-".to_owned(), |rir| rir.to_string()),
                result.to_owned(),
                p.latency_ms
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms} ms")),
                errors,
            ]
        })
        .collect();
    let header = ["PERSPECTIVE", "RIR", "RESULT", "LATENCY", "ERRORS"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row).take(4) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let text = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        format!("{}\n", text.trim_end())
    };
    out.push_str(&line(header));
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    let attempts = r
        .actual_orchestration_parameters
        .map_or(1, |a| a.attempt_count);
    let quorum = r
        .actual_orchestration_parameters
        .map_or(0, |a| a.quorum_count);
    out.push_str(&format!(
        "\n{}: {} corroborated (quorum {quorum}), attempt {attempts}{}\n",
        if r.is_valid { "VALID" } else { "NOT VALID" },
        r.quorum_result,
        if r.mpic_completed {
            ""
        } else {
            ", not completed"
        },
    ));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn readable_output_snapshot() {
        let body = json!({
            "mpic_completed": true,
            "request_orchestration_parameters": null,
            "actual_orchestration_parameters": {"perspective_count": 3, "quorum_count": 2, "attempt_count": 1},
            "check_type": "caa",
            "domain_or_ip_target": "example.com",
            "trace_identifier": null,
            "is_valid": true,
            "caa_check_parameters": {"certificate_type": "tls-server", "caa_domains": null, "allow_lookup_failure": false, "account_uri": null, "validation_method": null},
            "perspectives": [
                {"perspective_code": "us-east", "rir": "ARIN", "latency_ms": 12, "check_response": {"check_type": "caa", "check_completed": true, "check_passed": true, "errors": null, "timestamp_ns": 1_700_000_000_123_000_000u64,
                    "details": {"caa_record_present": true, "found_at": "example.com", "records_seen": [], "ad_flag": false, "reason": "issuer-authorised", "lookup_failure": null}}},
                {"perspective_code": "eu-west", "rir": "RIPE NCC", "latency_ms": 85, "check_response": {"check_type": "caa", "check_completed": true, "check_passed": true, "errors": null, "timestamp_ns": 1_700_000_000_456_000_000u64,
                    "details": {"caa_record_present": true, "found_at": "example.com", "records_seen": [], "ad_flag": false, "reason": "issuer-authorised", "lookup_failure": null}}},
                {"perspective_code": "ap-northeast", "rir": "APNIC", "latency_ms": null, "check_response": {"check_type": "caa", "check_completed": false, "check_passed": false,
                    "errors": [{"error_type": "mpic_error:coordinator:remote_check", "error_message": "perspective ap-northeast: no answer within 5000 ms"}], "timestamp_ns": 1_700_000_005_000_000_000u64,
                    "details": {"caa_record_present": null, "found_at": null, "records_seen": null, "ad_flag": null, "reason": null, "lookup_failure": null}}}
            ],
            "previous_attempt_results": null,
            "quorum_result": "2/3"
        });
        let r: MpicResponse = serde_json::from_value(body).unwrap();
        let want = "\
caa example.com

PERSPECTIVE   RIR       RESULT  LATENCY  ERRORS
us-east       ARIN      passed    12 ms
eu-west       RIPE NCC  passed    85 ms
ap-northeast  APNIC     error         -  mpic_error:coordinator:remote_check: perspective ap-northeast: no answer within 5000 ms

VALID: 2/3 corroborated (quorum 2), attempt 1
";
        assert_eq!(render(&r), want);
    }
}
