//! `mpic dev`: a whole fleet in one process for a first try — a coordinator and N
//! perspectives on loopback, mutual TLS between them with freshly generated certificates,
//! each perspective with its own resolver client. Not a BR-compliant deployment: every
//! perspective sits on this machine and asks the same resolver.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use mpic_common::config::Rir;
use mpic_coordinator::config::{
    CoordinatorConfig, Limits, PerspectiveEntry, PerspectiveTls, SecretSource, Timeouts,
};
use mpic_coordinator::policy::PolicyMode;
use mpic_coordinator::{Coordinator, Secrets};
use mpic_perspective::Perspective;
use mpic_perspective::config::{
    CaaConfig, Identity, PerspectiveConfig, ResolverConfig, TlsConfig, WebConfig,
};

/// `mpic dev` flags.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// How many perspectives (spread over the five RIRs, far apart on the map).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(2..=12))]
    pub perspectives: u32,
    /// The resolver every perspective asks (default: the first `nameserver` of
    /// /etc/resolv.conf). Production gives each perspective its own validating Unbound.
    #[arg(long, value_name = "HOST:PORT")]
    pub resolver: Option<SocketAddr>,
    /// Where the coordinator listens.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// The API key (default: a fresh random one, printed).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Issuer domain names of your CA, the perspectives' default for CAA (repeatable),
    /// e.g. --caa-domain letsencrypt.org.
    #[arg(long = "caa-domain", value_name = "NAME")]
    pub caa_domains: Vec<String>,
    /// Let HTTP and TLS-ALPN checks reach loopback targets (for testing against local
    /// servers; never in production).
    #[arg(long)]
    pub danger_allow_loopback_targets: bool,
    /// Dial this port instead of 80 for http (tests only).
    #[arg(long, value_name = "PORT")]
    pub danger_http_port: Option<u16>,
    /// Dial this port instead of 443 for https (tests only).
    #[arg(long, value_name = "PORT")]
    pub danger_https_port: Option<u16>,
    /// Dial this port instead of 443 for tls-alpn-01 (tests only).
    #[arg(long, value_name = "PORT")]
    pub danger_tls_alpn_port: Option<u16>,
}

/// Far-apart places over the five RIRs, in the order perspectives are added.
const PLACES: [(&str, &str, Rir, f64, f64); 12] = [
    ("us-east", "US East (Virginia)", Rir::Arin, 38.9, -77.4),
    ("eu-west", "Europe (Ireland)", Rir::RipeNcc, 53.3, -6.3),
    (
        "ap-northeast",
        "Asia Pacific (Tokyo)",
        Rir::Apnic,
        35.7,
        139.7,
    ),
    (
        "sa-east",
        "South America (São Paulo)",
        Rir::Lacnic,
        -23.5,
        -46.6,
    ),
    ("af-south", "Africa (Cape Town)", Rir::Afrinic, -33.9, 18.4),
    ("us-west", "US West (Oregon)", Rir::Arin, 45.8, -119.7),
    ("eu-central", "Europe (Frankfurt)", Rir::RipeNcc, 50.1, 8.7),
    (
        "ap-southeast",
        "Asia Pacific (Sydney)",
        Rir::Apnic,
        -33.9,
        151.2,
    ),
    ("ca-central", "Canada (Montreal)", Rir::Arin, 45.5, -73.6),
    ("ap-south", "Asia Pacific (Mumbai)", Rir::Apnic, 19.1, 72.9),
    (
        "me-central",
        "Middle East (Bahrain)",
        Rir::RipeNcc,
        26.1,
        50.6,
    ),
    (
        "mx-central",
        "Mexico (Querétaro)",
        Rir::Lacnic,
        20.6,
        -100.4,
    ),
];

/// Runs the fleet until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let _telemetry = mpic_common::telemetry::init("mpic-dev");
    mpic_common::tls::install_crypto_provider();
    let resolver = match args.resolver {
        Some(r) => r,
        None => {
            system_resolver().context("no --resolver given and none found in /etc/resolv.conf")?
        }
    };
    let api_key = match args.api_key {
        Some(k) => k,
        None => random_hex(16)?,
    };
    let dir = TempDir::new()?;
    let n = args.perspectives as usize;
    let spec: Vec<(String, Vec<String>)> = PLACES[..n]
        .iter()
        .map(|(code, ..)| {
            (
                (*code).to_owned(),
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            )
        })
        .collect();
    let files = mpic_common::devcerts::DevPki::generate(&spec)?.write(&dir.0)?;

    let mut entries = Vec::new();
    for (i, (code, name, rir, lat, lon)) in PLACES[..n].iter().enumerate() {
        let (_, cert, key) = &files.perspectives[i];
        let config = PerspectiveConfig {
            listen: "127.0.0.1:0".parse()?,
            ops_listen: None,
            connections: Default::default(),
            perspective: Identity {
                code: (*code).to_owned(),
                rir: *rir,
            },
            resolver: ResolverConfig {
                address: resolver,
                timeout_ms: 3_000,
                retry_ms: None,
            },
            caa: CaaConfig {
                default_issuer_domains: args.caa_domains.clone(),
            },
            limits: mpic_perspective::config::Limits::default(),
            tls: Some(TlsConfig {
                certificate: cert.clone(),
                private_key: key.clone(),
                client_ca: files.ca.clone(),
            }),
            web: WebConfig {
                danger_allow_loopback_targets: args.danger_allow_loopback_targets,
                danger_http_port: args.danger_http_port,
                danger_https_port: args.danger_https_port,
                danger_tls_alpn_port: args.danger_tls_alpn_port,
                ..WebConfig::default()
            },
            reload: Default::default(),
            shutdown: Default::default(),
            danger_plain_http: false,
        };
        let perspective = Perspective::bind(&config)
            .await
            .with_context(|| format!("perspective {code}"))?;
        let addr = perspective.local_addr()?;
        tracing::info!(perspective.code = code, listen = %addr, "perspective serving");
        tokio::spawn(perspective.serve(std::future::pending()));
        entries.push(PerspectiveEntry {
            code: (*code).to_owned(),
            name: (*name).to_owned(),
            rir: *rir,
            latitude: *lat,
            longitude: *lon,
            url: format!("https://127.0.0.1:{}", addr.port()),
            too_close_codes: Vec::new(),
            rtt_ms: None,
        });
    }
    let config = CoordinatorConfig {
        listen: args.listen,
        ops_listen: None,
        connections: Default::default(),
        api_tls: None,
        // Named for the record; `mpic dev` hands the generated secrets over directly.
        api_keys: SecretSource {
            env: Some("MPIC_API_KEYS".to_owned()),
            file: None,
        },
        hash_secret: SecretSource {
            env: Some("MPIC_HASH_SECRET".to_owned()),
            file: None,
        },
        reload: Default::default(),
        default_perspective_count: args.perspectives.min(6),
        max_attempts: 3,
        timeouts: Timeouts::default(),
        // A laptop fleet may be smaller than today's BR minimum: warn, do not refuse.
        policy: PolicyMode::Warn,
        rules: Default::default(),
        limits: Limits::default(),
        perspective_tls: Some(PerspectiveTls {
            certificate: files.coordinator_cert.clone(),
            private_key: files.coordinator_key.clone(),
            ca: files.ca.clone(),
        }),
        // Nothing routes by readiness to a fleet in one process: Ctrl-C drains at once.
        shutdown: mpic_common::serve::ShutdownSettings {
            pre_stop_delay_ms: 0,
            drain_timeout_ms: None,
        },
        danger_plain_http_perspectives: false,
        perspectives: entries,
    };
    let secrets = Secrets {
        api_keys: vec![api_key.clone()],
        hash_secret: random_hex(32)?.into_bytes(),
    };
    let coordinator = Coordinator::bind(&config, secrets).await?;
    let url = format!("http://{}", coordinator.local_addr()?);
    println!("mpic dev: coordinator {url} with {n} perspectives (mutual TLS), resolver {resolver}");
    println!("API key: {api_key}");
    println!();
    println!(
        "  curl -s -H 'Authorization: Bearer {api_key}' -H 'content-type: application/json' \\"
    );
    println!(
        "    -d '{{\"check_type\":\"caa\",\"domain_or_ip_target\":\"example.com\"}}' {url}/mpic"
    );
    println!("  MPIC_URL={url} MPIC_API_KEY={api_key} mpic caa example.com");
    println!();
    println!("Serving until Ctrl-C.");
    coordinator
        .serve(mpic_common::serve::shutdown_signal())
        .await?;
    drop(dir);
    Ok(())
}

/// The first `nameserver` of /etc/resolv.conf, port 53.
fn system_resolver() -> anyhow::Result<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf")?;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver")
            && let Some(addr) = words.next()
            && let Ok(ip) = addr.parse::<std::net::IpAddr>()
        {
            return Ok(SocketAddr::new(ip, 53));
        }
    }
    bail!("no nameserver line")
}

/// `bytes` random bytes from the operating system, as hex.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The certificates' directory, removed on exit.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("mpic-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
