//! A fleet on loopback for the bench: the real release binaries `mpic-coordinator` and
//! `mpic-perspective`, each its own process (so memory is per process), mutual TLS between them
//! from freshly generated development certificates, and a local authoritative DNS:
//!
//! - [`DnsMode::Nsd`]: every perspective asks NSD directly (no recursion, no cache, no
//!   validation: the cheapest real DNS there is);
//! - [`DnsMode::Kit`]: the test kit's in-process server (`mpic_tests::dns::DnsServer`), inside
//!   the bench's own process;
//! - [`DnsMode::Unbound`]: one real validating Unbound per perspective in front of NSD, as in
//!   production (`mpic_tests::fixtures::DnsWorld`, whose test overlay disables Unbound's cache).
//!
//! For the `wan` scenario ([`FleetSpec::wan`]) a TCP relay in this process stands between the
//! coordinator(s) and each perspective, and a DNS relay between each perspective and the DNS
//! ([`crate::wan`]); the catalogue's URLs are the relays' (on 127.0.0.1, which the development
//! certificates carry). Several coordinators ([`FleetSpec::coordinators`]) share the
//! perspectives, the relays, the hash secret and the catalogue.
//!
//! Optionally one perspective is a black hole (it accepts connections and TLS, never answers)
//! and a web server serves http-01 key authorisations on loopback. Everything is torn down when
//! the [`Fleet`] is dropped (children are killed, the temporary directory removed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::routing::{any, get};
use mpic_common::devcerts::{DevPki, DevPkiFiles};
use mpic_tests::dns::{DnsServer, Zone};
use mpic_tests::fixtures::{DnsWorld, WorldSpec, ZoneSpec, free_port};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::load::{DirectTarget, Watched};
use crate::scenario;
use crate::wan::{Profile, WanRelays};

/// A place: code, RIR, latitude, longitude.
pub type Place = (&'static str, &'static str, f64, f64);

/// Far-apart places over the five RIRs (as `mpic dev` uses them); the first six make the
/// fleet, the sixth is the one black-holed when asked (the other five still cover every RIR).
pub const PLACES: [Place; 6] = [
    ("us-east", "ARIN", 38.9, -77.4),
    ("eu-west", "RIPE NCC", 53.3, -6.3),
    ("ap-northeast", "APNIC", 35.7, 139.7),
    ("sa-east", "LACNIC", -23.5, -46.6),
    ("af-south", "AFRINIC", -33.9, 18.4),
    ("us-west", "ARIN", 45.8, -119.7),
];

/// The API key of the bench's coordinator.
pub const API_KEY: &str = "bench-key-0123456789abcdef";
/// The cohort hash secret of the bench's coordinator.
const HASH_SECRET: &str = "bench-secret-0123456789abcdef";
/// How long a process may take to become healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(100);
/// How often the in-process DNS server's query log is emptied (it records every query).
const KIT_LOG_CLEAR_EVERY: Duration = Duration::from_secs(1);

/// Which DNS the perspectives ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsMode {
    /// NSD, asked directly.
    Nsd,
    /// The test kit's in-process server.
    Kit,
    /// One validating Unbound per perspective, in front of NSD.
    Unbound,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Where `mpic-coordinator` and `mpic-perspective` are.
    pub bin_dir: PathBuf,
    /// The DNS.
    pub dns: DnsMode,
    /// Make the last perspective a black hole.
    pub blackhole: bool,
    /// Start the http-01 web server and let the perspectives dial it on loopback.
    pub web: bool,
    /// Coordinator `timeouts.perspective_call_ms`.
    pub call_ms: u64,
    /// Coordinator `timeouts.request_ms`.
    pub request_ms: u64,
    /// Coordinator `timeouts.straggler_grace_ms`.
    pub grace_ms: u64,
    /// Coordinator `limits.max_concurrent_requests`.
    pub max_concurrent_requests: usize,
    /// `RUST_LOG` of the services.
    pub log_filter: String,
    /// Keep the temporary directory (configs, logs) after the run.
    pub keep_dir: bool,
    /// Extra environment of the services.
    pub env: Vec<(String, String)>,
    /// A command to start the coordinator under (empty: none).
    pub coordinator_wrapper: Vec<String>,
    /// The perspectives' places ([`PLACES`], or the wan scenario's).
    pub places: &'static [Place],
    /// Relays with this distance in front of every perspective and its DNS.
    pub wan: Option<Profile>,
    /// Coordinator replicas sharing the perspectives.
    pub coordinators: usize,
    /// Write each perspective's profile round trip as `rtt_ms` in the catalogue (wan only; a
    /// coordinator that does not know the key refuses to start).
    pub catalogue_rtt: bool,
    /// Perspective `resolver.retry_ms`, written only when set (the same caveat).
    pub dns_retry_ms: Option<u64>,
    /// Perspective `resolver.timeout_ms`.
    pub dns_timeout_ms: u64,
    /// Coordinator `limits.max_connections_per_perspective`, written only when set (the same
    /// caveat).
    pub max_connections_per_perspective: Option<usize>,
}

/// A running fleet.
#[derive(Debug)]
pub struct Fleet {
    /// `http://127.0.0.1:<port>/mpic` of each coordinator.
    pub urls: Vec<String>,
    /// The wan scenario's relays.
    pub wan: Option<WanRelays>,
    /// The perspectives as the bench calls them directly (the black hole excluded).
    pub direct: Vec<DirectTarget>,
    /// A client with the coordinator's certificate, for direct calls.
    pub direct_client: reqwest::Client,
    /// Ports the perspectives (black hole included) listen on.
    pub perspective_ports: Vec<u16>,
    /// The processes to watch.
    pub watched: Vec<Watched>,
    /// What the DNS is, for the report.
    pub dns_description: String,
    children: Vec<tokio::process::Child>,
    /// Process groups of the children started under a wrapper.
    wrapped: Vec<u32>,
    tasks: Vec<JoinHandle<()>>,
    _kit: Option<Arc<DnsServer>>,
    _world: Option<DnsWorld>,
    dir: TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // A wrapped service (heaptrack, perf) is its wrapper's child: it leads a process group
        // of its own, and the whole group is asked to stop, so that the service shuts down
        // and the wrapper writes its data.
        for pid in &self.wrapped {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", "--", &format!("-{pid}")])
                .status();
        }
        for c in &mut self.children {
            let _ = c.start_kill();
        }
    }
}

impl Fleet {
    /// The directory with configurations and logs.
    pub fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// Starts DNS, perspectives and coordinator; returns once the coordinator is ready.
    pub async fn start(spec: &FleetSpec) -> anyhow::Result<Fleet> {
        mpic_common::tls::install_crypto_provider();
        let coordinator_bin = binary(&spec.bin_dir, "mpic-coordinator")?;
        let perspective_bin = binary(&spec.bin_dir, "mpic-perspective")?;
        let dir = TempDir::new(spec.keep_dir)?;
        let places = spec.places;
        let pki_spec: Vec<(String, Vec<String>)> = places
            .iter()
            .map(|(code, ..)| {
                (
                    (*code).to_owned(),
                    vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
                )
            })
            .collect();
        let files = DevPki::generate(&pki_spec)
            .context("generating certificates")?
            .write(&dir.path.join("pki"))
            .context("writing certificates")?;
        let direct_client = mtls_client(&files)?;

        let mut tasks = Vec::new();
        let mut watched = Vec::new();
        let mut children = Vec::new();
        let mut wrapped = Vec::new();
        let (resolvers, kit, world, dns_description) = start_dns(spec, &mut tasks).await?;
        if let Some(w) = &world {
            let nsd = restart_nsd_without_rate_limit(w).await?;
            watched.push(Watched {
                name: "nsd".to_owned(),
                pid: nsd.id().unwrap_or(0),
                owned: true,
                with_children: true,
            });
            children.push(nsd);
            for (i, pid) in w.pids().iter().enumerate().skip(1) {
                // Started by the fixture: watched, peak not reset.
                watched.push(Watched {
                    name: format!("unbound {}", i - 1),
                    pid: *pid,
                    owned: false,
                    with_children: false,
                });
            }
        }
        let web_port = if spec.web {
            let (port, task) = start_web().await?;
            tasks.push(task);
            Some(port)
        } else {
            None
        };

        let mut catalogue = Vec::new();
        let mut direct = Vec::new();
        let mut perspective_ports = Vec::new();
        let mut wan = match &spec.wan {
            Some(profile) => Some(WanRelays {
                profile: profile.clone(),
                tcp: Vec::new(),
                dns: start_dns_relays(profile, &resolvers, places.len()).await?,
            }),
            None => None,
        };
        for (i, (code, rir, lat, lon)) in places.iter().enumerate() {
            let (_, cert, key) = files
                .perspectives
                .iter()
                .find(|(c, ..)| c == code)
                .context("a certificate per place")?;
            let port;
            if spec.blackhole && i == places.len() - 1 {
                let (p, task) = start_blackhole(cert, key, &files.ca).await?;
                port = p;
                tasks.push(task);
            } else {
                port = free_port();
                let mut web = json!({});
                if let Some(p) = web_port {
                    web = json!({"danger_allow_loopback_targets": true, "danger_http_port": p});
                }
                let resolver = match &wan {
                    Some(w) => w
                        .dns
                        .get(i)
                        .map(|r| r.addr())
                        .context("a DNS relay per place")?,
                    None => resolvers[i % resolvers.len()],
                };
                let mut resolver =
                    json!({"address": resolver.to_string(), "timeout_ms": spec.dns_timeout_ms});
                if let Some(retry) = spec.dns_retry_ms {
                    resolver["retry_ms"] = json!(retry);
                }
                let config = json!({
                    "listen": format!("127.0.0.1:{port}"),
                    "perspective": {"code": code, "rir": rir},
                    "resolver": resolver,
                    "caa": {"default_issuer_domains": [scenario::ISSUER]},
                    "web": web,
                    "tls": {"certificate": cert, "private_key": key, "client_ca": files.ca},
                });
                let path = dir.path.join(format!("{code}.yaml"));
                // JSON is YAML: the services read it as their YAML configuration.
                std::fs::write(&path, config.to_string())?;
                let child = spawn(
                    &[],
                    &perspective_bin,
                    &path,
                    &spec.env,
                    &dir.path.join(format!("{code}.log")),
                    &spec.log_filter,
                )?;
                watched.push(Watched {
                    name: format!("perspective {code}"),
                    pid: child.id().unwrap_or(0),
                    owned: true,
                    with_children: false,
                });
                children.push(child);
                let base = format!("https://127.0.0.1:{port}");
                direct.push(DirectTarget {
                    code: (*code).to_owned(),
                    caa: reqwest::Url::parse(&format!("{base}/caa"))?,
                    dcv: reqwest::Url::parse(&format!("{base}/dcv"))?,
                });
            }
            perspective_ports.push(port);
            let mut url_port = port;
            let mut entry =
                json!({"code": code, "name": code, "rir": rir, "latitude": lat, "longitude": lon});
            if let Some(w) = &mut wan {
                let relay = mpic_tests::relay::Relay::with_path(
                    SocketAddr::from(([127, 0, 0, 1], port)),
                    w.profile.perspective_path(i),
                )
                .await?;
                url_port = relay.addr().port();
                w.tcp.push(relay);
                if spec.catalogue_rtt {
                    entry["rtt_ms"] = json!(w.profile.paths.get(i).map_or(0, |p| p.rtt_ms));
                }
            }
            entry["url"] = json!(format!("https://127.0.0.1:{url_port}"));
            catalogue.push(entry);
        }
        for t in &direct {
            let url = t.caa.join("/healthz")?;
            wait_ok(&direct_client, url.as_str(), &dir.path, &t.code).await?;
        }

        let keys = dir.path.join("api-keys");
        std::fs::write(&keys, format!("{API_KEY}\n"))?;
        let mut env = spec.env.clone();
        env.push(("MPIC_HASH_SECRET".to_owned(), HASH_SECRET.to_owned()));
        let mut urls = Vec::new();
        for k in 0..spec.coordinators.max(1) {
            // The first keeps the names a single coordinator always had.
            let (name, file) = match k {
                0 => ("coordinator".to_owned(), "coordinator".to_owned()),
                _ => (
                    format!("coordinator {}", k + 1),
                    format!("coordinator-{}", k + 1),
                ),
            };
            let port = free_port();
            let mut limits = json!({"max_concurrent_requests": spec.max_concurrent_requests});
            if let Some(n) = spec.max_connections_per_perspective {
                limits["max_connections_per_perspective"] = json!(n);
            }
            let config = json!({
                "listen": format!("127.0.0.1:{port}"),
                "api_keys": {"file": keys},
                "hash_secret": {"env": "MPIC_HASH_SECRET"},
                "default_perspective_count": places.len(),
                "max_attempts": 3,
                "timeouts": {
                    "perspective_call_ms": spec.call_ms,
                    "request_ms": spec.request_ms,
                    "straggler_grace_ms": spec.grace_ms,
                },
                "limits": limits,
                // Every load connection comes from this one loopback address.
                "connections": {"max_per_peer": mpic_common::serve::DEFAULT_MAX_OPEN},
                "perspective_tls": {
                    "certificate": files.coordinator_cert,
                    "private_key": files.coordinator_key,
                    "ca": files.ca,
                },
                "perspectives": catalogue,
            });
            let path = dir.path.join(format!("{file}.yaml"));
            std::fs::write(&path, config.to_string())?;
            let child = spawn(
                &spec.coordinator_wrapper,
                &coordinator_bin,
                &path,
                &env,
                &dir.path.join(format!("{file}.log")),
                &spec.log_filter,
            )?;
            watched.insert(
                k,
                Watched {
                    name,
                    pid: child.id().unwrap_or(0),
                    owned: true,
                    with_children: false,
                },
            );
            if !spec.coordinator_wrapper.is_empty() {
                wrapped.extend(child.id());
            }
            children.push(child);
            let base = format!("http://127.0.0.1:{port}");
            // /readyz needs a default cohort among the perspectives answering /healthz: with a
            // black hole that is 5 of 6, which cannot form a cohort of 6, so wait for /healthz
            // then.
            let probe = if spec.blackhole { "healthz" } else { "readyz" };
            wait_ok(
                &reqwest::Client::new(),
                &format!("{base}/{probe}"),
                &dir.path,
                &file,
            )
            .await?;
            urls.push(format!("{base}/mpic"));
        }
        watched.push(Watched {
            name: "bench (this process)".to_owned(),
            pid: std::process::id(),
            owned: false,
            with_children: false,
        });
        Ok(Fleet {
            urls,
            wan,
            direct,
            direct_client,
            perspective_ports,
            watched,
            dns_description,
            children,
            wrapped,
            tasks,
            _kit: kit,
            _world: world,
            dir,
        })
    }
}

/// A DNS relay per place, in front of the DNS the perspectives would otherwise ask.
async fn start_dns_relays(
    profile: &Profile,
    resolvers: &[SocketAddr],
    places: usize,
) -> anyhow::Result<Vec<mpic_tests::dns_relay::DnsRelay>> {
    let mut relays = Vec::new();
    for i in 0..places {
        let upstream = resolvers
            .get(i % resolvers.len().max(1))
            .copied()
            .context("no DNS to relay to")?;
        // Each relay draws its own losses: the same seed would drop the same datagrams
        // everywhere.
        let seed = profile.seed.map(|s| s.wrapping_add(i as u64));
        relays.push(
            mpic_tests::dns_relay::DnsRelay::start(upstream, profile.dns_path(i), seed).await?,
        );
    }
    Ok(relays)
}

type Dns = (
    Vec<SocketAddr>,
    Option<Arc<DnsServer>>,
    Option<DnsWorld>,
    String,
);

async fn start_dns(spec: &FleetSpec, tasks: &mut Vec<JoinHandle<()>>) -> anyhow::Result<Dns> {
    match spec.dns {
        DnsMode::Kit => {
            let zone = Zone::new()
                .caa(scenario::ZONE, 0, "issue", scenario::ISSUER)
                .caa(
                    &format!("deny.{}", scenario::ZONE),
                    0,
                    "issue",
                    "other.example",
                )
                .txt(
                    &format!("_dc.{}", scenario::ZONE),
                    &[scenario::DNS_CHANGE_VALUE.as_bytes()],
                )
                .a(scenario::WEB_HOST, std::net::Ipv4Addr::LOCALHOST)
                .authentic_data(true);
            let server = Arc::new(DnsServer::start(zone).await?);
            let addr = server.addr();
            let s = Arc::clone(&server);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(KIT_LOG_CLEAR_EVERY);
                loop {
                    tick.tick().await;
                    s.clear_queries();
                }
            }));
            Ok((
                vec![addr],
                Some(server),
                None,
                format!("test-kit DnsServer in the bench process ({addr})"),
            ))
        }
        DnsMode::Nsd | DnsMode::Unbound => {
            let resolvers = if spec.dns == DnsMode::Unbound {
                spec.places.len()
            } else {
                // The fixture always starts at least one Unbound; it stays idle.
                1
            };
            let world = DnsWorld::start(WorldSpec {
                zones: vec![
                    mpic_tests::process::test_tld_zone(),
                    ZoneSpec::signed(scenario::ZONE, scenario::zone_records()),
                ],
                resolvers,
            })
            .await
            .context("starting nsd/unbound (run .ci/install-deps.sh if they are missing)")?;
            let (addrs, description) = if spec.dns == DnsMode::Unbound {
                (
                    world.resolver_addrs().to_vec(),
                    format!(
                        "one unbound per perspective (no cache: the test overlay) -> nsd {}",
                        world.nsd_addr()
                    ),
                )
            } else {
                (
                    vec![world.nsd_addr()],
                    format!("nsd {} asked directly", world.nsd_addr()),
                )
            };
            Ok((addrs, None, Some(world), description))
        }
    }
}

/// Replaces the fixture's NSD by one with the same configuration and zones on the same port,
/// but without response rate limiting. NSD limits answers to 200 per second per /24 by
/// default (`rrl-ratelimit: 200`, then drops or truncates), which a load test from 127.0.0.1
/// exceeds within a second: every perspective lookup would then time out. The fixture's
/// Unbounds keep asking the same address.
async fn restart_nsd_without_rate_limit(world: &DnsWorld) -> anyhow::Result<tokio::process::Child> {
    let dir = world.dir();
    let addr = world.nsd_addr();
    let old = world
        .pids()
        .first()
        .copied()
        .context("the fixture has no nsd")?;
    let conf = std::fs::read_to_string(dir.join("nsd.conf"))?
        .replacen(
            "server:\n",
            "server:\n    rrl-ratelimit: 0\n    rrl-whitelist-ratelimit: 0\n",
            1,
        )
        .replace("nsd.pid", "nsd-bench.pid")
        .replace("nsd.log", "nsd-bench.log");
    let path = dir.join("nsd-bench.conf");
    std::fs::write(&path, conf)?;
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &old.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if !stopped {
        bail!("cannot stop the fixture's nsd (pid {old})");
    }
    // Wait until the port is free (NSD closes its sockets on exit).
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while std::net::UdpSocket::bind(addr).is_err() {
        if tokio::time::Instant::now() > deadline {
            bail!("nsd did not release {addr}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let nsd = mpic_tests::fixtures::find_binary("nsd")?;
    let child = tokio::process::Command::new(nsd)
        .args(["-d", "-c"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting nsd")?;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            bail!("nsd did not come back on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

/// Serves `/.well-known/acme-challenge/tok<k>` with its key authorisation on a loopback port.
async fn start_web() -> anyhow::Result<(u16, JoinHandle<()>)> {
    let router = Router::new().route(
        "/.well-known/acme-challenge/{token}",
        get(|UrlPath(token): UrlPath<String>| async move {
            if token.starts_with("tok") && token.len() <= 16 {
                (StatusCode::OK, scenario::http01_key_authorization(&token))
            } else {
                (StatusCode::NOT_FOUND, String::new())
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((port, task))
}

/// Accepts connections and TLS with the perspective's certificate, reads requests, never
/// answers (each request's handler waits until the coordinator gives up and resets it).
async fn start_blackhole(
    cert: &Path,
    key: &Path,
    ca: &Path,
) -> anyhow::Result<(u16, JoinHandle<()>)> {
    let tls = mpic_common::tls::mutual_server_config(cert, key, ca)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let router = Router::new().fallback(any(std::future::pending::<StatusCode>));
    let task = tokio::spawn(async move {
        let _ = mpic_common::serve::serve(
            listener,
            router,
            Some(tls),
            mpic_common::serve::ServeOptions::new(
                "api",
                mpic_common::serve::ConnectionLimits::default(),
                mpic_common::serve::Exposure::Authenticated,
            ),
            std::future::pending(),
        )
        .await;
    });
    Ok((port, task))
}

fn binary(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found: build the services first (`cargo build --release --locked`) or pass --bin-dir",
            path.display()
        );
    }
    Ok(path)
}

fn spawn(
    wrapper: &[String],
    binary: &Path,
    config: &Path,
    env: &[(String, String)],
    log: &Path,
    log_filter: &str,
) -> anyhow::Result<tokio::process::Child> {
    let file = std::fs::File::create(log).with_context(|| log.display().to_string())?;
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(binary).process_group(0);
            c
        }
        None => tokio::process::Command::new(binary),
    };
    command
        .arg("--config")
        .arg(config)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

async fn wait_ok(client: &reqwest::Client, url: &str, dir: &Path, who: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Ok(r)) = tokio::time::timeout(READY_POLL * 10, client.get(url).send()).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(READY_POLL).await;
    }
    let log = std::fs::read_to_string(dir.join(format!("{who}.log"))).unwrap_or_default();
    let tail: String = log
        .lines()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    bail!("{who} did not become ready at {url}; its log ends:\n{tail}")
}

/// A client like the coordinator's towards its perspectives: the coordinator's certificate,
/// pooled, HTTP/2 when offered.
fn mtls_client(files: &DevPkiFiles) -> anyhow::Result<reqwest::Client> {
    let tls = mpic_common::tls::mutual_client_config(
        &files.coordinator_cert,
        &files.coordinator_key,
        &files.ca,
    )?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .no_proxy()
        .build()?)
}

/// The run's directory, removed on drop unless kept.
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn new(keep: bool) -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "mpic-bench-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir { path, keep })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
