//! `mpic-bench`: a load benchmark of an MPIC fleet that shows where the time goes.
//!
//! It starts (or points at, with `--url`) a coordinator, six perspectives and a local
//! authoritative DNS, drives `POST /mpic` open-loop at a fixed rate (latency from the intended
//! send time) and closed-loop at maximum, and reports throughput, latency percentiles, sheds,
//! errors, wrong verdicts, the peak RSS of every process, the connections the perspectives
//! accepted, and the targets met or missed. See bench/README.md.

mod fleet;
mod load;
mod metrics;
mod procfs;
mod report;
mod scenario;
mod schedule;
mod stats;
mod wan;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;

use crate::fleet::{DnsMode, Fleet, FleetSpec};
use crate::load::{Endpoint, Load, Monitor, Watched};
use crate::metrics::Scrape;
use crate::report::{Cohorts, PhaseReport, Report};
use crate::scenario::Check;
use crate::schedule::Schedule;

/// Load benchmark of an MPIC fleet (coordinator + perspectives + local DNS on this machine).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// What to run (each a preset of phases; see the README).
    #[arg(long, value_enum, default_value_t = Scenario::Caa)]
    scenario: Scenario,
    /// The DNS the perspectives ask: nsd directly, the in-process test-kit server, or one
    /// validating unbound per perspective in front of nsd.
    #[arg(long, value_enum, default_value_t = DnsMode::Nsd)]
    dns: DnsMode,
    /// `preset` runs the scenario's phases; `open` or `closed` run one phase of that kind
    /// (with --rate or --concurrency, and --duration).
    #[arg(long, value_enum, default_value_t = Mode::Preset)]
    mode: Mode,
    /// The base open-loop rate, requests per second. Presets default to 1500 for CAA without
    /// Unbound (the target), 200 for blackhole (below what this fleet serves on two cores, so
    /// the grace mechanism is measured, not CPU queueing), 100 % of the measured maximum for
    /// overload (which sends 10×), otherwise 80 % of the closed-loop maximum they measure first.
    #[arg(long)]
    rate: Option<u64>,
    /// Closed-loop workers (--mode closed).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// How --mode open/closed connects to the coordinator: `http1`, a keep-alive pool with a
    /// connection per request in flight (the presets' default), or `http2` (h2c with prior
    /// knowledge), --h2-connections connections each carrying many requests.
    #[arg(long, value_enum, default_value_t = Client::Http1)]
    client: Client,
    /// HTTP/2 connections to the coordinator (each takes up to 200 concurrent requests, the
    /// coordinator's stream limit).
    #[arg(long, default_value_t = 8)]
    h2_connections: usize,
    /// Length of the one phase of --mode open/closed, seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Override every preset phase's length, seconds (for a quick look).
    #[arg(long)]
    phase_seconds: Option<u64>,
    /// Unrecorded closed-loop warm-up before the phases, seconds (0: none).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// HTTP/1.1 connections to the coordinator, at most (a client's pool, like wrk's `-c`): a
    /// request sent while all are busy waits in the bench for one, and the wait counts in its
    /// latency. 0: no bound, a connection per request in flight.
    #[arg(long, default_value_t = 1024)]
    http1_connections: usize,
    /// The most open-loop requests in flight; a request due beyond it is not sent (counted).
    #[arg(long, default_value_t = 16_000)]
    max_in_flight: usize,
    /// Drive an existing coordinator instead of starting a fleet (`…/mpic`); its DNS must
    /// serve the bench zone (see the README).
    #[arg(long, requires = "api_key")]
    url: Option<String>,
    /// The API key for --url.
    #[arg(long, env = "MPIC_API_KEY")]
    api_key: Option<String>,
    /// With --url: processes whose memory to sample, as NAME=PID (repeatable).
    #[arg(long = "pid", value_name = "NAME=PID")]
    pids: Vec<String>,
    /// Where the release binaries are (default: next to this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Coordinator `timeouts.straggler_grace_ms`.
    #[arg(long, default_value_t = 250)]
    grace_ms: u64,
    /// Coordinator `timeouts.perspective_call_ms`.
    #[arg(long, default_value_t = 5_000)]
    call_ms: u64,
    /// Coordinator `timeouts.request_ms`.
    #[arg(long, default_value_t = 15_000)]
    request_ms: u64,
    /// Coordinator `limits.max_concurrent_requests`. Default: the coordinator's own default
    /// (256) for the overload scenario, which measures shedding; 2048 otherwise, so that the
    /// "1000 in flight" phase is not shed.
    #[arg(long)]
    max_concurrent_requests: Option<usize>,
    /// `RUST_LOG` of the services (their audit and check logs go to files in the run's
    /// directory; `info` is production's level).
    #[arg(long, default_value = "info")]
    log_filter: String,
    /// Extra environment of the coordinator and perspectives, as KEY=VALUE (repeatable), e.g.
    /// `_RJEM_MALLOC_CONF=narenas:2` (the coordinator's jemalloc) or `MALLOC_ARENA_MAX=1`
    /// (the perspectives' glibc malloc) to try another allocator setting.
    #[arg(long = "service-env", value_name = "KEY=VALUE")]
    service_env: Vec<String>,
    /// Start the coordinator under this command (split on spaces), e.g.
    /// `heaptrack -o /tmp/coordinator` (with a coordinator built with `--no-default-features`,
    /// since heaptrack sees only malloc) or `perf record -g -o /tmp/c.data --`. Memory is then
    /// the wrapper's.
    #[arg(long, value_name = "COMMAND")]
    coordinator_wrapper: Option<String>,
    /// Keep the run's directory (configs and logs).
    #[arg(long)]
    keep_dir: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    json_out: Option<PathBuf>,
    /// Coordinator replicas sharing the perspectives (and relays); requests go to them in
    /// turn, and before the load each is asked the same requests to compare their cohorts.
    #[arg(long, default_value_t = 1)]
    coordinators: usize,
    /// Targets of the cohort identity check across replicas (--coordinators 2 or more).
    #[arg(long, default_value_t = 50)]
    cohort_sample: usize,
    /// wan: round trip coordinator to perspective, ms, as CODE=MS (comma-separated or
    /// repeated); the places not named keep the default profile's.
    #[arg(long = "wan-rtt", value_name = "CODE=MS")]
    wan_rtt: Vec<String>,
    /// wan: jitter of each direction coordinator to perspective, ± ms (uniform).
    #[arg(long, default_value_t = wan::DEFAULT_JITTER_MS)]
    wan_jitter_ms: u64,
    /// wan: bandwidth of each direction coordinator to perspective, bytes per second
    /// (default: none).
    #[arg(long, value_name = "BYTES_PER_S")]
    wan_bandwidth: Option<u64>,
    /// wan: round trip perspective to authoritative DNS, ms, as CODE=MS.
    #[arg(long = "dns-rtt", value_name = "CODE=MS")]
    dns_rtt: Vec<String>,
    /// wan: DNS datagrams lost, each direction on its own (0..=1).
    #[arg(long, default_value_t = wan::DEFAULT_DNS_LOSS)]
    dns_loss: f64,
    /// wan: jitter of each direction perspective to DNS, ± ms.
    #[arg(long, default_value_t = wan::DEFAULT_DNS_JITTER_MS)]
    dns_jitter_ms: u64,
    /// wan: seed of the relays' jitter and losses (default: from the clock).
    #[arg(long)]
    wan_seed: Option<u64>,
    /// wan: every delay and loss zero, the relays still in place (the same build's loopback
    /// maximum).
    #[arg(long)]
    wan_zero: bool,
    /// wan: closed-loop workers of the max phases (enough for Little's law at WAN latency, and
    /// below the perspectives' `max_concurrent_checks`, beyond which they refuse calls).
    #[arg(long, default_value_t = 1000)]
    wan_concurrency: usize,
    /// wan: the zero-delay baseline (answers per second) from an earlier run; without it the
    /// preset measures it first with the relays' delays off.
    #[arg(long)]
    wan_baseline_ok_per_s: Option<f64>,
    /// wan: write each perspective's profile round trip as `rtt_ms` in the coordinator's
    /// catalogue (a coordinator that does not know the key refuses to start).
    #[arg(long)]
    catalogue_rtt: bool,
    /// Perspective `resolver.retry_ms`: when an unanswered UDP query is sent again (written
    /// only when given; a perspective that does not know the key refuses to start).
    #[arg(long)]
    dns_retry_ms: Option<u64>,
    /// Perspective `resolver.timeout_ms`.
    #[arg(long, default_value_t = 2000)]
    dns_timeout_ms: u64,
    /// Coordinator `limits.max_connections_per_perspective` (written only when given; 1 is the
    /// single connection per perspective of earlier builds).
    #[arg(long)]
    max_connections_per_perspective: Option<usize>,
}

/// The presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 1: CAA, six perspectives, all passing (with --dns nsd, kit or unbound).
    Caa,
    /// 2: dns-change TXT.
    DnsChange,
    /// 3: acme-http-01 against the bench's web server on loopback.
    #[value(name = "http-01")]
    Http01,
    /// 4: CAA with one perspective black-holed (accepts, never answers).
    Blackhole,
    /// 5: CAA at ten times the sustainable rate for 30 s.
    Overload,
    /// CAA with real distance: relays delay the coordinator's calls and the perspectives' DNS.
    Wan,
}

impl Scenario {
    fn check(self) -> Check {
        match self {
            Scenario::DnsChange => Check::DnsChange,
            Scenario::Http01 => Check::Http01,
            Scenario::Caa | Scenario::Blackhole | Scenario::Overload | Scenario::Wan => Check::Caa,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scenario::Caa => "caa",
            Scenario::DnsChange => "dns-change",
            Scenario::Http01 => "http-01",
            Scenario::Blackhole => "blackhole",
            Scenario::Overload => "overload",
            Scenario::Wan => "wan",
        }
    }
}

/// How the bench connects to the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Client {
    /// HTTP/1.1 keep-alive: one connection per request in flight, up to
    /// `--http1-connections`.
    Http1,
    /// HTTP/2 with prior knowledge (h2c): a few connections, many streams each.
    Http2,
}

/// Where a phase sends its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// To the coordinator over this kind of connection.
    Coordinator(Client),
    /// The same checks straight to the perspectives.
    Direct,
}

/// Preset or a single phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The scenario's phases.
    Preset,
    /// One open-loop phase at --rate.
    Open,
    /// One closed-loop phase with --concurrency.
    Closed,
}

/// An open-loop rate: the run's base rate × num / den.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Times(u64, u64);

/// How a phase loads the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drive {
    /// Open loop at base rate × num / den.
    Open(Times),
    /// Open loop at the throughput of the `max` phase × num / den (what the fleet really
    /// sustains here, whatever the base rate).
    OpenOfMax(Times),
    /// Closed loop with this many workers.
    Closed(usize),
}

/// One planned phase.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PhaseSpec {
    name: &'static str,
    drive: Drive,
    /// Coordinator (and how) or the perspectives directly.
    route: Route,
    duration: Duration,
    /// A warm-up is not reported.
    recorded: bool,
    /// wan: the relays' delays and losses are off during this phase.
    zero_delay: bool,
}

/// Where the base rate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    /// Given.
    Fixed(u64),
    /// A fraction (percent) of the throughput of the phase named `max`, measured first.
    PercentOfMax(u64),
}

/// The phase with 1,000 requests in flight over HTTP/2 connections.
const IN_FLIGHT_H2: &str = "1000 in flight, h2";
/// The phase with 1,000 requests in flight over as many HTTP/1.1 connections.
const IN_FLIGHT_H1: &str = "1000 in flight";
/// The overload phases: as HTTP/2 clients send it (a few connections), then as HTTP/1.1
/// clients must (a connection per request in flight, from a pool of `--http1-connections`, as
/// a CA backend's client or wrk's `-c` bounds it; without a bound an open-loop client opens
/// ever more connections while the coordinator is saturated, up to `max_connections`, and the
/// bench spends the shared cores on connection attempts instead of requests).
const OVERLOAD_H2: &str = "overload 10x, h2";
const OVERLOAD_H1: &str = "overload 10x";
/// The wan preset's baseline: its maximum with the relays in place and every delay zero.
const WAN_ZERO_MAX: &str = "max, zero delay";
/// The wan preset's phase at 90 % of its maximum.
const WAN_NINETY: &str = "90% rate";

/// The base rate and phases of a run.
fn plan(args: &Args) -> (Base, Vec<PhaseSpec>) {
    let secs = |preset: u64| Duration::from_secs(args.phase_seconds.unwrap_or(preset));
    let mut phases = Vec::new();
    if args.warmup > 0 {
        phases.push(PhaseSpec {
            name: "warm-up",
            drive: Drive::Closed(32),
            route: Route::Coordinator(Client::Http1),
            duration: Duration::from_secs(args.warmup),
            recorded: false,
            zero_delay: false,
        });
    }
    let phase = |name, drive, route, duration| PhaseSpec {
        name,
        drive,
        route,
        duration,
        recorded: true,
        zero_delay: false,
    };
    let one = Times(1, 1);
    let (h1, h2) = (
        Route::Coordinator(Client::Http1),
        Route::Coordinator(Client::Http2),
    );
    match args.mode {
        Mode::Open => {
            phases.push(phase(
                "open",
                Drive::Open(one),
                Route::Coordinator(args.client),
                Duration::from_secs(args.duration),
            ));
            return (Base::Fixed(args.rate.unwrap_or(1500)), phases);
        }
        Mode::Closed => {
            phases.push(phase(
                "closed",
                Drive::Closed(args.concurrency),
                Route::Coordinator(args.client),
                Duration::from_secs(args.duration),
            ));
            return (Base::Fixed(args.rate.unwrap_or(0)), phases);
        }
        Mode::Preset => {}
    }
    let max = |s| phase("max", Drive::Closed(64), h1, secs(s));
    let base = match (args.rate, args.scenario, args.dns) {
        (Some(r), ..) => Base::Fixed(r),
        (None, Scenario::Caa, DnsMode::Nsd | DnsMode::Kit) => Base::Fixed(1500),
        (None, Scenario::Blackhole, _) => Base::Fixed(200),
        (None, Scenario::Overload, _) => Base::PercentOfMax(100),
        (None, Scenario::Wan, _) => Base::PercentOfMax(50),
        (None, ..) => Base::PercentOfMax(80),
    };
    match args.scenario {
        Scenario::Caa => {
            // Lightest first: a process's RSS seldom shrinks after a peak (the allocator keeps
            // its pages), so a heavy phase would inflate the memory of every phase after it.
            phases.push(max(15));
            // "Half the sustained rate": half of what this fleet served at most.
            let half = Drive::OpenOfMax(Times(1, 2));
            phases.push(phase("half rate", half, h1, secs(15)));
            phases.push(phase("half rate", half, Route::Direct, secs(15)));
            // 1,000 requests in flight as an HTTP/2 client sends them (a few connections),
            // then as HTTP/1.1 clients must (a connection each, which costs the coordinator
            // hyper's per-connection buffers on top).
            let in_flight = Drive::Closed(1000);
            phases.push(phase(IN_FLIGHT_H2, in_flight, h2, secs(10)));
            phases.push(phase(IN_FLIGHT_H1, in_flight, h1, secs(10)));
            phases.push(phase("sustained", Drive::Open(one), h1, secs(20)));
        }
        Scenario::DnsChange | Scenario::Http01 => {
            phases.push(max(15));
            phases.push(phase("sustained", Drive::Open(one), h1, secs(20)));
        }
        Scenario::Blackhole => {
            phases.push(phase("blackhole", Drive::Open(one), h1, secs(20)));
        }
        Scenario::Overload => {
            phases.push(max(10));
            // The issue fixes the overload at 30 s. Each overload is followed by a phase at
            // half the measured maximum, which must be served as if nothing had happened.
            let overload = Duration::from_secs(args.phase_seconds.unwrap_or(30));
            for (name, route) in [(OVERLOAD_H2, h2), (OVERLOAD_H1, h1)] {
                phases.push(phase(name, Drive::Open(Times(10, 1)), route, overload));
                phases.push(phase("recovery", Drive::Open(Times(1, 2)), h1, secs(10)));
            }
        }
        Scenario::Wan => {
            // Little's law: at half a second per request, 1,000 answers a second need 500 in
            // flight; the max phases hold --wan-concurrency over HTTP/2.
            let most = Drive::Closed(args.wan_concurrency);
            if args.wan_baseline_ok_per_s.is_none() && !args.wan_zero {
                phases.push(PhaseSpec {
                    zero_delay: true,
                    ..phase(WAN_ZERO_MAX, most, h2, secs(10))
                });
            }
            phases.push(phase("max", most, h2, secs(15)));
            // The p99 target's phase, then one nearer the maximum.
            phases.push(phase(
                "half rate",
                Drive::OpenOfMax(Times(1, 2)),
                h2,
                secs(15),
            ));
            phases.push(phase(
                WAN_NINETY,
                Drive::OpenOfMax(Times(9, 10)),
                h2,
                secs(10),
            ));
        }
    }
    (base, phases)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // Ctrl-C returns from main, so the fleet is dropped and its processes are killed.
    let outcome = tokio::select! {
        r = run(&args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match outcome {
        Ok(report) => {
            if let Some(path) = &args.json_out {
                let written = serde_json::to_string_pretty(&report)
                    .map_err(anyhow::Error::from)
                    .and_then(|s| std::fs::write(path, s).map_err(anyhow::Error::from));
                if let Err(e) = written {
                    eprintln!("mpic-bench: {}: {e}", path.display());
                }
            }
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("mpic-bench: {e}"),
                }
            } else {
                print!("{}", report::render(&report));
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpic-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    // reqwest is built without a default crypto provider; ring is the workspace's.
    mpic_common::tls::install_crypto_provider();
    let loadavg_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let check = args.scenario.check();
    let requests = scenario::requests(check);
    let cpu_reference_ns = requests
        .first()
        .map_or(0, |r| scenario::cpu_reference_ns(&r.body));
    let mut notes = Vec::new();
    let wan_profile = (args.scenario == Scenario::Wan)
        .then(|| {
            wan::Profile::from_flags(&wan::ProfileFlags {
                rtt: &args.wan_rtt,
                dns_rtt: &args.dns_rtt,
                jitter_ms: args.wan_jitter_ms,
                bandwidth: args.wan_bandwidth,
                dns_jitter_ms: args.dns_jitter_ms,
                dns_loss: args.dns_loss,
                seed: args.wan_seed,
                zero: args.wan_zero,
            })
        })
        .transpose()?;
    if args.scenario == Scenario::Wan && (args.url.is_some() || args.dns == DnsMode::Unbound) {
        bail!(
            "--scenario wan starts its own fleet with a DNS relay per perspective in front of nsd or the kit server; --url and --dns unbound are not supported with it"
        );
    }
    if args.catalogue_rtt && wan_profile.is_none() {
        bail!("--catalogue-rtt writes the wan profile's round trips: use it with --scenario wan");
    }
    let places: &'static [fleet::Place] = if wan_profile.is_some() {
        &wan::WAN_PLACES
    } else {
        &fleet::PLACES
    };
    let (fleet, urls, api_key, watched, dns) = match &args.url {
        Some(url) => {
            let watched = parse_pids(&args.pids)?;
            let key = args
                .api_key
                .clone()
                .context("--api-key is required with --url")?;
            notes.push("external fleet: its configuration is not the bench's; no direct phase, no connection count".to_owned());
            (None, vec![url.clone()], key, watched, "external".to_owned())
        }
        None => {
            let bin_dir = match &args.bin_dir {
                Some(d) => d.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .map(PathBuf::from)
                    .context("no directory for the binaries")?,
            };
            let spec = FleetSpec {
                bin_dir,
                dns: args.dns,
                blackhole: args.scenario == Scenario::Blackhole,
                web: check == Check::Http01,
                call_ms: args.call_ms,
                request_ms: args.request_ms,
                grace_ms: args.grace_ms,
                max_concurrent_requests: max_concurrent_requests(args),
                log_filter: args.log_filter.clone(),
                keep_dir: args.keep_dir,
                env: parse_pairs(&args.service_env, "--service-env")?,
                coordinator_wrapper: args
                    .coordinator_wrapper
                    .as_deref()
                    .map(|w| w.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default(),
                places,
                wan: wan_profile.clone(),
                coordinators: args.coordinators,
                catalogue_rtt: args.catalogue_rtt,
                dns_retry_ms: args.dns_retry_ms,
                dns_timeout_ms: args.dns_timeout_ms,
                max_connections_per_perspective: args.max_connections_per_perspective,
            };
            if !spec.env.is_empty() || !spec.coordinator_wrapper.is_empty() {
                notes.push(format!(
                    "services started with env {:?}, coordinator wrapper {:?}",
                    args.service_env, args.coordinator_wrapper
                ));
            }
            eprintln!(
                "mpic-bench: starting the fleet ({} DNS)...",
                format!("{:?}", args.dns).to_lowercase()
            );
            let fleet = Fleet::start(&spec).await?;
            eprintln!(
                "mpic-bench: fleet ready at {} (configs and logs in {})",
                fleet.urls.join(", "),
                fleet.dir().display()
            );
            let (urls, watched, mut dns) = (
                fleet.urls.clone(),
                fleet.watched.clone(),
                fleet.dns_description.clone(),
            );
            if let Some(w) = &fleet.wan {
                dns = format!("{dns}, through a DNS relay per perspective");
                notes.push(w.profile.describe());
                notes.push(
                    "the relays run inside the bench process: their CPU and memory are the bench's"
                        .to_owned(),
                );
            }
            (Some(fleet), urls, fleet::API_KEY.to_owned(), watched, dns)
        }
    };
    if args.dns == DnsMode::Kit && fleet.is_some() {
        notes.push(
            "the kit DNS server runs inside the bench process: its CPU and memory are the bench's"
                .to_owned(),
        );
    }
    let urls = urls
        .iter()
        .map(|u| reqwest::Url::parse(u).context("--url"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))?;
    let coordinator = |clients, connections| {
        Arc::new(Load {
            endpoint: Endpoint::Coordinator {
                clients,
                urls: urls.clone(),
                authorization: authorization.clone(),
            },
            requests: requests.clone(),
            connections,
        })
    };
    let http1 = coordinator(
        vec![
            reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(args.max_in_flight)
                .pool_idle_timeout(Duration::from_secs(30))
                .tcp_nodelay(true)
                .no_proxy()
                .build()?,
        ],
        (args.http1_connections > 0).then(|| Arc::new(Semaphore::new(args.http1_connections))),
    );
    // One client is one HTTP/2 connection (hyper multiplexes a host's requests on one). The
    // wan preset holds --wan-concurrency requests at once: at most 150 on each connection
    // (the coordinator allows 200 streams on one).
    let h2_connections = match wan_profile {
        Some(_) => args.h2_connections.max(args.wan_concurrency.div_ceil(150)),
        None => args.h2_connections,
    };
    if wan_profile.is_some() {
        notes.push(format!(
            "wan phases go over {h2_connections} HTTP/2 connections to each coordinator"
        ));
    }
    let http2 = coordinator(
        (0..h2_connections.max(1))
            .map(|_| {
                reqwest::Client::builder()
                    .http2_prior_knowledge()
                    .tcp_nodelay(true)
                    .no_proxy()
                    .build()
            })
            .collect::<Result<_, _>>()?,
        None,
    );
    if args.client == Client::Http2 && args.mode != Mode::Preset {
        notes.push(format!(
            "requests sent over {} HTTP/2 connections",
            args.h2_connections.max(1)
        ));
    }
    let direct = fleet.as_ref().map(|f| {
        Arc::new(Load {
            endpoint: Endpoint::Direct {
                client: f.direct_client.clone(),
                perspectives: f.direct.clone(),
                quorum: places.len() - 2,
            },
            requests: requests.clone(),
            connections: None,
        })
    });
    let perspective_ports = fleet
        .as_ref()
        .map(|f| f.perspective_ports.clone())
        .unwrap_or_default();

    let cohorts = match &fleet {
        Some(_) if urls.len() > 1 => {
            let c = cohort_check(&urls, &authorization, args.cohort_sample, COHORT_SIZE).await;
            eprintln!(
                "mpic-bench: identical cohorts: {}/{} across {} coordinators",
                c.identical,
                c.sampled,
                urls.len()
            );
            Some(c)
        }
        _ => None,
    };
    let scrape_client = reqwest::Client::builder()
        .no_proxy()
        .timeout(SCRAPE_TIMEOUT)
        .build()?;
    let scrape_now = || async {
        match &fleet {
            Some(f) if f.wan.is_some() => {
                Some(scrape(f, &urls, &scrape_client, &authorization).await)
            }
            _ => None,
        }
    };

    let (base, phases) = plan(args);
    let mut base_rate = match base {
        Base::Fixed(r) => Some(r),
        Base::PercentOfMax(_) => None,
    };
    let mut measured_max: Option<u64> = None;
    let mut reports: Vec<PhaseReport> = Vec::new();
    for spec in &phases {
        let load = match spec.route {
            Route::Direct => match &direct {
                Some(d) => Arc::clone(d),
                None => continue,
            },
            Route::Coordinator(Client::Http1) => Arc::clone(&http1),
            Route::Coordinator(Client::Http2) => Arc::clone(&http2),
        };
        let monitor = spec.recorded.then(|| {
            Monitor::start(
                watched.clone(),
                perspective_ports.clone(),
                fleet
                    .as_ref()
                    .map(|_| urls.iter().filter_map(reqwest::Url::port).collect()),
                spec.duration,
            )
        });
        if let Some(w) = fleet.as_ref().and_then(|f| f.wan.as_ref()) {
            w.apply(&if spec.zero_delay {
                w.profile.zero()
            } else {
                w.profile.clone()
            });
        }
        let before = match spec.recorded {
            true => scrape_now().await,
            false => None,
        };
        let dns_before = fleet
            .as_ref()
            .and_then(|f| f.wan.as_ref())
            .map(wan::WanRelays::dns_counts);
        let (mode, offered, concurrency, tally) = match spec.drive {
            Drive::Closed(c) => {
                eprintln!(
                    "mpic-bench: {} closed loop, {c} workers, {} s",
                    spec.name,
                    spec.duration.as_secs()
                );
                let t = load::closed_loop(load, c, spec.duration).await;
                ("closed", None, Some(c), t)
            }
            Drive::Open(Times(num, den)) | Drive::OpenOfMax(Times(num, den)) => {
                let from = match spec.drive {
                    Drive::OpenOfMax(_) => measured_max,
                    _ => base_rate,
                };
                let Some(base) = from else {
                    bail!(
                        "phase {}: no rate to start from (no max phase ran first)",
                        spec.name
                    );
                };
                let rate = (base * num / den.max(1)).max(1);
                eprintln!(
                    "mpic-bench: {}{} open loop, {rate}/s, {} s",
                    spec.name,
                    if spec.route == Route::Direct {
                        " (direct)"
                    } else {
                        ""
                    },
                    spec.duration.as_secs()
                );
                let t =
                    load::open_loop(load, Schedule::new(rate, spec.duration), args.max_in_flight)
                        .await;
                ("open", Some(rate), None, t)
            }
        };
        let (memory, connections) = match monitor {
            Some(m) => {
                let (mem, conns) = m.finish().await;
                (mem, (!perspective_ports.is_empty()).then_some(conns))
            }
            None => (Vec::new(), None),
        };
        if !spec.recorded {
            continue;
        }
        let after = scrape_now().await;
        let mut phase = PhaseReport::new(
            spec.name,
            if spec.route == Route::Direct {
                "direct"
            } else {
                "coordinator"
            },
            mode,
            offered,
            concurrency,
            &tally,
            memory,
            connections,
        );
        if let (Some(start), Some(end), Some(f)) = (&before, &after, &fleet) {
            let codes: Vec<String> = f.direct.iter().map(|d| d.code.clone()).collect();
            let dns_after = f.wan.as_ref().map(wan::WanRelays::dns_counts);
            let dns: Vec<Option<(u64, u64)>> = codes
                .iter()
                .map(|code| {
                    let count =
                        |all: &Option<Vec<(String, mpic_tests::dns_relay::DnsRelayCounts)>>| {
                            all.as_ref()?
                                .iter()
                                .find(|(c, _)| c == code)
                                .map(|(_, n)| *n)
                        };
                    let d = count(&dns_after)?.since(&count(&dns_before)?);
                    Some((d.dropped(), d.to_server_forwarded))
                })
                .collect();
            phase.wan = Some(metrics::wan_phase(
                &codes,
                start,
                end,
                &dns,
                phase.ok_per_s,
                phase.latency.mean_us,
            ));
        }
        eprintln!(
            "mpic-bench:   {:.0} ok/s, p50 {} ms, p99 {} ms, {} shed, {} errors, {} wrong",
            phase.ok_per_s,
            stats::ms(phase.latency.p50_us),
            stats::ms(phase.latency.p99_us),
            phase.shed,
            tally.error_count(),
            phase.wrong_verdicts
        );
        if spec.name == "max" {
            measured_max = Some(phase.ok_per_s as u64);
            if let Base::PercentOfMax(pct) = base {
                // Round down to a multiple of 50 requests per second.
                let r = (phase.ok_per_s as u64 * pct / 100) / 50 * 50;
                base_rate = Some(r.max(50));
            }
        }
        reports.push(phase);
    }

    let targets = targets(args, &reports, wan_profile.as_ref(), cohorts.as_ref());
    if fleet.is_some() {
        notes.push(format!(
            "coordinator, {} perspectives, DNS and this bench share the machine's {} CPUs; the machine may be shared with other work (see the load averages)",
            places.len() - usize::from(args.scenario == Scenario::Blackhole),
            std::thread::available_parallelism().map_or(0, usize::from)
        ));
    }
    if reports.iter().all(|p| p.coordinator_added.is_none()) {
        notes.push("the coordinator sends no Server-Timing: coordinator-added latency is estimated against direct calls".to_owned());
    }
    drop(fleet);
    Ok(Report {
        scenario: args.scenario.as_str().to_owned(),
        check: check.as_str().to_owned(),
        dns,
        settings: report::Settings {
            perspectives: places.len(),
            straggler_grace_ms: args.grace_ms,
            perspective_call_ms: args.call_ms,
            max_concurrent_requests: max_concurrent_requests(args),
            coordinators: urls.len(),
        },
        machine: report::Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            loadavg_start,
            cpu_reference_ns,
            loadavg_end: std::fs::read_to_string("/proc/loadavg").unwrap_or_default(),
        },
        phases: reports,
        targets,
        cohorts,
        notes,
    })
}

/// The targets this run can speak to.
fn targets(
    args: &Args,
    phases: &[PhaseReport],
    wan: Option<&wan::Profile>,
    cohorts: Option<&Cohorts>,
) -> Vec<report::TargetCheck> {
    let mut out = Vec::new();
    let find = |name: &str, endpoint: &str| {
        phases
            .iter()
            .find(|p| p.name == name && p.endpoint == endpoint)
    };
    let no_unbound = matches!(args.dns, DnsMode::Nsd | DnsMode::Kit);
    if args.scenario == Scenario::Caa && no_unbound {
        if let Some(p) = find("sustained", "coordinator") {
            out.push(report::check_sustained(p, 1500));
        }
        if let Some(p) = find("half rate", "coordinator") {
            out.push(report::check_coordinator_added(
                p,
                find("half rate", "direct"),
                1000,
            ));
        }
    }
    let h2 = format!("over {} HTTP/2 connections", args.h2_connections.max(1));
    let h1 = |in_flight: usize| match args.http1_connections {
        0 => "over HTTP/1.1, a connection per request in flight".to_owned(),
        n => format!("over {} HTTP/1.1 connections", n.min(in_flight)),
    };
    let (h1_in_flight, h1_overload) = (h1(1000), h1(usize::MAX));
    for (name, over) in [
        (IN_FLIGHT_H2, h2.as_str()),
        (IN_FLIGHT_H1, h1_in_flight.as_str()),
    ] {
        if let Some(p) = find(name, "coordinator") {
            out.push(report::check_memory(p, over, 30, 50));
        }
    }
    if let Some(p) = find("blackhole", "coordinator") {
        out.push(report::check_blackhole(p, args.grace_ms, args.call_ms));
    }
    for (name, over) in [
        (OVERLOAD_H2, h2.as_str()),
        (OVERLOAD_H1, h1_overload.as_str()),
    ] {
        if let Some(p) = find(name, "coordinator") {
            out.push(report::check_overload(p, over, args.request_ms));
        }
    }
    if let Some(profile) = wan {
        out.extend(wan_targets(args, phases, profile));
    }
    if phases.iter().any(|p| p.connections.is_some()) {
        out.push(report::check_connections(
            phases,
            fleet::PLACES.len() * args.coordinators.max(1),
            args.max_connections_per_perspective
                .unwrap_or(COORDINATOR_MAX_CONNECTIONS_PER_PERSPECTIVE),
        ));
    }
    if args.coordinators > 1 {
        let all: Vec<&PhaseReport> = phases.iter().collect();
        out.push(report::check_replicas(&all, cohorts, args.coordinators));
    }
    out
}

/// The wan preset's targets.
fn wan_targets(
    args: &Args,
    phases: &[PhaseReport],
    profile: &wan::Profile,
) -> Vec<report::TargetCheck> {
    let mut out = Vec::new();
    let find = |name: &str| phases.iter().find(|p| p.name == name);
    let distance: Vec<&PhaseReport> = phases.iter().filter(|p| p.name != WAN_ZERO_MAX).collect();
    let baseline = match args.wan_baseline_ok_per_s {
        Some(b) => Some((b, "given by --wan-baseline-ok-per-s")),
        None => find(WAN_ZERO_MAX).map(|p| (p.ok_per_s, "measured first in this run")),
    };
    if let Some((baseline, from)) = baseline
        && !args.wan_zero
    {
        if let Some(max) = find("max") {
            out.push(report::check_wan_throughput(max, baseline, from));
        }
        out.push(report::check_wan_no_shed(&distance, baseline));
    }
    if let Some(half) = find("half rate") {
        let quorum = profile.paths.len().saturating_sub(2);
        let (slowest, quorum_th) = profile.p99_limits_ms(quorum, args.grace_ms, WAN_P99_SLACK_MS);
        out.push(report::check_wan_p99(
            half,
            "the slowest path + 25 ms",
            slowest,
        ));
        out.push(report::check_wan_p99(
            half,
            "the quorum-th fastest path + grace + 25 ms",
            quorum_th,
        ));
    }
    // Judged at the offered rates (open loop); the closed-loop maxima saturate the cores.
    let (rates, saturated): (Vec<&PhaseReport>, Vec<&PhaseReport>) =
        phases.iter().partition(|p| p.offered_per_s.is_some());
    out.push(report::check_wan_not_completed(
        &rates,
        &saturated,
        profile.paths.len(),
    ));
    out.push(report::check_wan_memory(&rates, &saturated, 64, 40));
    out
}

/// The coordinator's default `limits.max_connections_per_perspective`.
const COORDINATOR_MAX_CONNECTIONS_PER_PERSPECTIVE: usize = 16;
/// The slack of the wan p99 target over the simulated paths, ms.
const WAN_P99_SLACK_MS: u64 = 25;
/// The cohort size of the identity check (smaller than the catalogue, so that a cohort is
/// chosen).
const COHORT_SIZE: usize = 4;
/// How long a `/metrics` scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Every coordinator's and perspective's `/metrics` now: the coordinators' on their API port
/// with the API key, the perspectives' on theirs with the coordinator's client certificate
/// (straight, not through the relays).
async fn scrape(
    fleet: &Fleet,
    urls: &[reqwest::Url],
    client: &reqwest::Client,
    authorization: &HeaderValue,
) -> Scrape {
    let get = |client: &reqwest::Client, url: Option<reqwest::Url>, auth: Option<HeaderValue>| {
        let request = url.map(|u| {
            let r = client.get(u).timeout(SCRAPE_TIMEOUT);
            match auth {
                Some(a) => r.header(reqwest::header::AUTHORIZATION, a),
                None => r,
            }
        });
        async move {
            let response = request?.send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            Some(metrics::parse(&response.text().await.ok()?))
        }
    };
    let coordinators = urls
        .iter()
        .map(|u| get(client, u.join("/metrics").ok(), Some(authorization.clone())));
    let perspectives = fleet
        .direct
        .iter()
        .map(|d| get(&fleet.direct_client, d.caa.join("/metrics").ok(), None));
    let (coordinators, perspectives) = tokio::join!(
        futures_util::future::join_all(coordinators),
        futures_util::future::join_all(perspectives)
    );
    Scrape {
        coordinators,
        perspectives,
    }
}

/// Sends the same CAA requests, with a cohort smaller than the catalogue, to every replica and
/// compares the perspectives each names in its answer.
async fn cohort_check(
    urls: &[reqwest::Url],
    authorization: &HeaderValue,
    sample: usize,
    perspective_count: usize,
) -> Cohorts {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(load::REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default();
    let mut out = Cohorts {
        sampled: sample,
        perspective_count,
        ..Cohorts::default()
    };
    for k in 0..sample {
        let body = scenario::with_perspective_count(
            &scenario::request(Check::Caa, k).body,
            perspective_count,
        );
        let answers = futures_util::future::join_all(urls.iter().map(|url| {
            let request = client
                .post(url.clone())
                .header(reqwest::header::AUTHORIZATION, authorization.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            async move {
                let response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                scenario::parse_cohort(&bytes)
            }
        }))
        .await;
        let first = answers.first().cloned();
        let same = matches!(&first, Some(Ok(c)) if c.len() == perspective_count)
            && answers.iter().all(|a| *a == answers[0]);
        if same {
            out.identical += 1;
        } else if out.mismatches.len() < 5 {
            let each: Vec<String> = answers
                .iter()
                .map(|a| match a {
                    Ok(codes) => codes.join("+"),
                    Err(e) => e.clone(),
                })
                .collect();
            out.mismatches
                .push(format!("request {k}: {}", each.join(" vs ")));
        }
    }
    out
}

fn parse_pids(list: &[String]) -> anyhow::Result<Vec<Watched>> {
    parse_pairs(list, "--pid")?
        .into_iter()
        .map(|(name, pid)| {
            Ok(Watched {
                pid: pid
                    .parse()
                    .with_context(|| format!("--pid {name}={pid}: not a pid"))?,
                name,
                owned: false,
                with_children: false,
            })
        })
        .collect()
}

/// `KEY=VALUE` arguments.
fn parse_pairs(list: &[String], flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    list.iter()
        .map(|s| {
            let (k, v) = s
                .split_once('=')
                .with_context(|| format!("{flag} {s}: expected KEY=VALUE"))?;
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The coordinator's `limits.max_concurrent_requests` for this run (see the flag).
fn max_concurrent_requests(args: &Args) -> usize {
    args.max_concurrent_requests
        .unwrap_or(if args.scenario == Scenario::Overload {
            256
        } else {
            2_048
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("mpic-bench").chain(line.iter().copied())).unwrap()
    }

    #[test]
    fn presets() {
        struct Case {
            name: &'static str,
            line: &'static [&'static str],
            base: Base,
            phases: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "caa without unbound aims at the target rate",
                line: &[],
                base: Base::Fixed(1500),
                phases: &[
                    "warm-up",
                    "max",
                    "half rate",
                    "half rate",
                    "1000 in flight, h2",
                    "1000 in flight",
                    "sustained",
                ],
            },
            Case {
                name: "caa through unbound measures its own rate",
                line: &["--dns", "unbound"],
                base: Base::PercentOfMax(80),
                phases: &[
                    "warm-up",
                    "max",
                    "half rate",
                    "half rate",
                    "1000 in flight, h2",
                    "1000 in flight",
                    "sustained",
                ],
            },
            Case {
                name: "dns-change",
                line: &["--scenario", "dns-change", "--warmup", "0"],
                base: Base::PercentOfMax(80),
                phases: &["max", "sustained"],
            },
            Case {
                name: "blackhole",
                line: &["--scenario", "blackhole"],
                base: Base::Fixed(200),
                phases: &["warm-up", "blackhole"],
            },
            Case {
                name: "overload at ten times the measured maximum",
                line: &["--scenario", "overload"],
                base: Base::PercentOfMax(100),
                phases: &[
                    "warm-up",
                    "max",
                    OVERLOAD_H2,
                    "recovery",
                    OVERLOAD_H1,
                    "recovery",
                ],
            },
            Case {
                name: "wan measures its zero-delay baseline first",
                line: &["--scenario", "wan"],
                base: Base::PercentOfMax(50),
                phases: &["warm-up", WAN_ZERO_MAX, "max", "half rate", WAN_NINETY],
            },
            Case {
                name: "wan with a given baseline",
                line: &[
                    "--scenario",
                    "wan",
                    "--wan-baseline-ok-per-s",
                    "2000",
                    "--warmup",
                    "0",
                ],
                base: Base::PercentOfMax(50),
                phases: &["max", "half rate", WAN_NINETY],
            },
            Case {
                name: "one open phase",
                line: &["--mode", "open", "--rate", "300", "--warmup", "0"],
                base: Base::Fixed(300),
                phases: &["open"],
            },
        ];
        for c in cases {
            let (base, phases) = plan(&args(c.line));
            assert_eq!(base, c.base, "{}", c.name);
            let names: Vec<&str> = phases.iter().map(|p| p.name).collect();
            assert_eq!(names, c.phases, "{}", c.name);
        }
    }

    #[test]
    fn preset_phase_details() {
        let (_, phases) = plan(&args(&["--phase-seconds", "2"]));
        let half: Vec<&PhaseSpec> = phases.iter().filter(|p| p.name == "half rate").collect();
        assert_eq!(half.len(), 2);
        assert_eq!(half[0].route, Route::Coordinator(Client::Http1));
        assert_eq!(half[1].route, Route::Direct);
        let h2 = phases.iter().find(|p| p.name == IN_FLIGHT_H2).unwrap();
        assert_eq!(
            (h2.route, h2.drive),
            (Route::Coordinator(Client::Http2), Drive::Closed(1000))
        );
        assert_eq!(half[0].drive, Drive::OpenOfMax(Times(1, 2)));
        assert!(
            phases[1..]
                .iter()
                .all(|p| p.duration == Duration::from_secs(2))
        );
        assert!(!phases[0].recorded, "the warm-up is not reported");
        let (_, phases) = plan(&args(&["--scenario", "overload", "--phase-seconds", "2"]));
        for (name, client) in [(OVERLOAD_H2, Client::Http2), (OVERLOAD_H1, Client::Http1)] {
            let overload = phases.iter().find(|p| p.name == name).unwrap();
            assert_eq!(
                (overload.drive, overload.route),
                (Drive::Open(Times(10, 1)), Route::Coordinator(client))
            );
        }
    }

    #[test]
    fn wan_phase_details() {
        let (_, phases) = plan(&args(&["--scenario", "wan", "--wan-concurrency", "3000"]));
        let zero = phases.iter().find(|p| p.name == WAN_ZERO_MAX).unwrap();
        assert!(zero.zero_delay);
        assert_eq!(zero.drive, Drive::Closed(3000));
        let max = phases.iter().find(|p| p.name == "max").unwrap();
        assert!(!max.zero_delay);
        assert_eq!(max.route, Route::Coordinator(Client::Http2));
        let half = phases.iter().find(|p| p.name == "half rate").unwrap();
        assert_eq!(half.drive, Drive::OpenOfMax(Times(1, 2)));
        let (_, phases) = plan(&args(&["--scenario", "wan", "--wan-zero"]));
        assert!(
            phases.iter().all(|p| !p.zero_delay),
            "all of it is zero already"
        );
    }

    #[test]
    fn pids() {
        let w = parse_pids(&["coordinator=12".to_owned()]).unwrap();
        assert_eq!(
            (w[0].name.as_str(), w[0].pid, w[0].owned),
            ("coordinator", 12, false)
        );
        assert!(parse_pids(&["12".to_owned()]).is_err());
        assert!(parse_pids(&["c=x".to_owned()]).is_err());
        assert_eq!(
            parse_pairs(&["LD_PRELOAD=/a=b".to_owned()], "--service-env").unwrap(),
            vec![("LD_PRELOAD".to_owned(), "/a=b".to_owned())]
        );
    }
}
