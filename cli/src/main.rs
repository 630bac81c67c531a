//! `mpic`: the command-line client for people, and the operator's tools (including `hold`, the
//! network-namespace holder of the compose fleet).
//!
//! Exit status: 0 when a check is valid (or a tool succeeded), 1 when a check is not valid,
//! 2 on any error (bad arguments, unreachable coordinator, non-200 answer).

mod client;
mod dev;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Multi-Perspective Issuance Corroboration: check CAA and domain control from several
/// network perspectives, run a local fleet, generate certificates, check configurations.
#[derive(Debug, Parser)]
#[command(name = "mpic", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole local fleet in one process: a coordinator and N perspectives on loopback,
    /// mutual TLS with fresh certificates, each perspective with its own resolver client.
    Dev(dev::DevArgs),
    /// Ask a coordinator for a CAA check.
    Caa(client::CaaArgs),
    /// Ask a coordinator for a domain-control check.
    Dcv(client::DcvArgs),
    /// Write a development CA, a coordinator client certificate and one server certificate
    /// per perspective (PEM). The CA's private key is not kept.
    Certs {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// A perspective, as CODE or CODE=NAME[,NAME...] (DNS names or IP addresses its
        /// certificate is valid for; default: CODE, localhost, 127.0.0.1). Repeatable.
        #[arg(long = "perspective", required = true)]
        perspectives: Vec<String>,
        /// Write nothing and succeed when every file already exists (so a restarted
        /// one-shot job keeps the CA the fleet trusts); fail when only some exist.
        #[arg(long)]
        keep_existing: bool,
    },
    /// Exit 0 when URL answers 2xx within the timeout, 1 otherwise: a health check for
    /// images without a shell. With --cert/--key/--ca it presents a client certificate and
    /// trusts only that CA (the perspectives' mutual TLS).
    Probe {
        /// The URL, e.g. https://127.0.0.1:8443/healthz; with --tcp, HOST:PORT.
        url: String,
        /// Only check that a TCP connection to HOST:PORT is accepted.
        #[arg(long, conflicts_with_all = ["ca", "cert", "key"])]
        tcp: bool,
        /// PEM CA certificate the server's certificate must chain to.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// PEM client certificate.
        #[arg(long, requires = "key")]
        cert: Option<PathBuf>,
        /// PEM client key.
        #[arg(long, requires = "cert")]
        key: Option<PathBuf>,
        /// Seconds to wait.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Do nothing until SIGTERM or SIGINT, then exit 0: the holder of a network namespace
    /// that other containers join (compose.yaml: each perspective's Unbound, perspective and
    /// demo web server), like a Kubernetes pod's pause container, so that restarting any of
    /// them leaves the others' network intact.
    Hold,
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a coordinator or perspective configuration file; for a coordinator, print the
    /// cohorts its catalogue yields, any pair of perspectives closer than 500 km, the dated BR
    /// rules in force and the next change, and whether the configuration survives it.
    Check {
        /// The YAML file.
        file: PathBuf,
        /// Apply the dated BR rules of this day (UTC) instead of today's.
        #[arg(long, value_name = "YYYY-MM-DD")]
        at: Option<mpic_coordinator::rules::Date>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mpic: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dev(args) => dev::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Caa(args) => client::caa(args).await,
            Command::Dcv(args) => client::dcv(args).await,
            Command::Certs {
                out,
                perspectives,
                keep_existing,
            } => certs(&out, &perspectives, keep_existing).map(|()| ExitCode::SUCCESS),
            Command::Config {
                command: ConfigCommand::Check { file, at },
            } => config_check(&file, at),
            Command::Hold => {
                // As a container's first process it must exit on SIGTERM by itself (the
                // kernel ignores signals a PID 1 has no handler for), or stopping it would
                // wait for the engine's kill.
                mpic_common::serve::shutdown_signal().await;
                Ok(ExitCode::SUCCESS)
            }
            Command::Probe {
                url,
                tcp: true,
                timeout,
                ..
            } => probe_tcp(&url, timeout).await,
            Command::Probe {
                url,
                ca,
                cert,
                key,
                timeout,
                tcp: false,
            } => {
                probe(
                    &url,
                    ca.as_deref(),
                    cert.as_deref().zip(key.as_deref()),
                    timeout,
                )
                .await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mpic: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether the certificate at `path` names the perspective `code` (urn:mpic:perspective:<code>).
fn names_itself(path: &std::path::Path, code: &str) -> bool {
    mpic_common::tls::load_certs("certificate", path)
        .ok()
        .and_then(|certs| certs.into_iter().next())
        .is_some_and(|cert| {
            mpic_common::tls::perspective_codes(&cert)
                .iter()
                .any(|c| c == code)
        })
}

fn certs(
    out: &std::path::Path,
    perspectives: &[String],
    keep_existing: bool,
) -> anyhow::Result<()> {
    let spec: Vec<(String, Vec<String>)> = perspectives
        .iter()
        .map(|p| match p.split_once('=') {
            Some((code, names)) => (
                code.to_owned(),
                names
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            None => (
                p.clone(),
                vec![p.clone(), "localhost".to_owned(), "127.0.0.1".to_owned()],
            ),
        })
        .collect();
    for (code, names) in &spec {
        anyhow::ensure!(
            !code.is_empty()
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
            "--perspective {code:?}: the code is letters, digits, '-', '_' or '.'"
        );
        anyhow::ensure!(
            !names.is_empty(),
            "--perspective {code}: give at least one name"
        );
    }
    if keep_existing {
        let mut wanted = vec![
            "ca.crt".to_owned(),
            "coordinator.crt".to_owned(),
            "coordinator.key".to_owned(),
        ];
        for (code, _) in &spec {
            wanted.push(format!("{code}.crt"));
            wanted.push(format!("{code}.key"));
        }
        let present = wanted.iter().filter(|f| out.join(f).exists()).count();
        // A set made before perspective identity: its perspective certificates do not name
        // their codes, which the coordinator requires. The CA key is never kept, so a new
        // set replaces it whole.
        let unnamed: Vec<&str> = spec
            .iter()
            .map(|(code, _)| code.as_str())
            .filter(|code| !names_itself(&out.join(format!("{code}.crt")), code))
            .collect();
        if present == wanted.len() && unnamed.is_empty() {
            println!(
                "{}: every certificate already exists, nothing written",
                out.display()
            );
            return Ok(());
        }
        if present == wanted.len() {
            println!(
                "{}: the certificates of {} do not name their perspective ({}<code>); writing a new set",
                out.display(),
                unnamed.join(", "),
                mpic_common::tls::PERSPECTIVE_URN_PREFIX
            );
        }
        anyhow::ensure!(
            present == 0 || present == wanted.len(),
            "{}: {present} of the {} files exist; remove them all (a new CA needs new certificates everywhere) or none",
            out.display(),
            wanted.len()
        );
    }
    let files = mpic_common::devcerts::DevPki::generate(&spec)?.write(out)?;
    println!(
        "wrote {} (CA), {} and {}",
        files.ca.display(),
        files.coordinator_cert.display(),
        files.coordinator_key.display()
    );
    for (code, cert, key) in &files.perspectives {
        println!("wrote {} and {} for {code}", cert.display(), key.display());
    }
    Ok(())
}

async fn probe_tcp(address: &str, timeout: u64) -> anyhow::Result<ExitCode> {
    let connect = tokio::net::TcpStream::connect(address);
    match tokio::time::timeout(std::time::Duration::from_secs(timeout), connect).await {
        Ok(Ok(_)) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => {
            eprintln!("mpic probe: {address}: {e}");
            Ok(ExitCode::from(1))
        }
        Err(_) => {
            eprintln!("mpic probe: {address}: no connection within {timeout} s");
            Ok(ExitCode::from(1))
        }
    }
}

async fn probe(
    url: &str,
    ca: Option<&std::path::Path>,
    identity: Option<(&std::path::Path, &std::path::Path)>,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    mpic_common::tls::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout))
        .no_proxy();
    match (ca, identity) {
        (Some(ca), Some((cert, key))) => {
            builder = builder
                .tls_backend_preconfigured(mpic_common::tls::mutual_client_config(cert, key, ca)?);
        }
        (Some(ca), None) => {
            let roots = mpic_common::tls::load_roots("--ca", ca)?;
            let config = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder = builder.tls_backend_preconfigured(config);
        }
        (None, Some(_)) => anyhow::bail!("--cert and --key need --ca"),
        (None, None) => {}
    }
    let client = builder.build()?;
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("mpic probe: {url}: HTTP {}", r.status().as_u16());
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("mpic probe: {url}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn config_check(
    file: &std::path::Path,
    at: Option<mpic_coordinator::rules::Date>,
) -> anyhow::Result<ExitCode> {
    use mpic_coordinator::rules::Clock as _;
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let value: serde_json::Value = mpic_common::config::parse_yaml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if value.get("perspectives").is_some() {
        let date = at.unwrap_or_else(|| mpic_coordinator::rules::SystemClock.today());
        let config = mpic_coordinator::config::CoordinatorConfig::load_at(file, date)?;
        println!(
            "{}: a valid coordinator configuration on {date}",
            file.display()
        );
        let members: Vec<_> = config.perspectives.iter().map(|p| p.member()).collect();
        let close = mpic_coordinator::cohort::incompatible_pairs(&members);
        for (a, b, km) in &close {
            println!("  not in one cohort: {a} and {b} ({km:.0} km apart, or listed as too close)");
        }
        let n = config.default_perspective_count as usize;
        let cohorts = mpic_coordinator::cohort::cohorts(&members, n, [0; 32]);
        println!(
            "  {} disjoint cohort(s) of {n} (one example ordering; each target gets its own):",
            cohorts.len()
        );
        for (i, cohort) in cohorts.iter().enumerate() {
            let codes: Vec<String> = cohort
                .iter()
                .map(|&m| format!("{} ({})", members[m].code, members[m].rir))
                .collect();
            println!("    {}: {}", i + 1, codes.join(", "));
        }
        print!(
            "{}",
            config.rules_policy().report(date, &config.rules_facts())
        );
        let findings = mpic_coordinator::distance::findings(&config);
        if !findings.is_empty() {
            println!("  at the catalogue's distances (rtt_ms):");
        }
        for f in findings {
            println!("    {}: {}: {}", f.severity.as_str(), f.field, f.text);
        }
    } else {
        mpic_perspective::config::PerspectiveConfig::load(file)?;
        println!("{}: a valid perspective configuration", file.display());
    }
    Ok(ExitCode::SUCCESS)
}
