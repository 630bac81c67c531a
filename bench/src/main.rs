//! `mpic-bench`: a load benchmark of an MPIC fleet that shows where the time goes.
//!
//! It starts (or points at, with `--url`) a coordinator, six perspectives and a local
//! authoritative DNS, drives `POST /mpic` open-loop at a fixed rate (latency from the intended
//! send time) and closed-loop at maximum, and reports throughput, latency percentiles, sheds,
//! errors, wrong verdicts, the peak RSS of every process, the connections the perspectives
//! accepted, and the targets met or missed. See bench/README.md.

mod fleet;
mod load;
mod procfs;
mod report;
mod scenario;
mod schedule;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};
use reqwest::header::HeaderValue;
use tokio::sync::Semaphore;

use crate::fleet::{DnsMode, Fleet, FleetSpec};
use crate::load::{Endpoint, Load, Monitor, Watched};
use crate::report::{PhaseReport, Report};
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
}

impl Scenario {
    fn check(self) -> Check {
        match self {
            Scenario::DnsChange => Check::DnsChange,
            Scenario::Http01 => Check::Http01,
            Scenario::Caa | Scenario::Blackhole | Scenario::Overload => Check::Caa,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scenario::Caa => "caa",
            Scenario::DnsChange => "dns-change",
            Scenario::Http01 => "http-01",
            Scenario::Blackhole => "blackhole",
            Scenario::Overload => "overload",
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
        });
    }
    let phase = |name, drive, route, duration| PhaseSpec {
        name,
        drive,
        route,
        duration,
        recorded: true,
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
    let (fleet, url, api_key, watched, dns) = match &args.url {
        Some(url) => {
            let watched = parse_pids(&args.pids)?;
            let key = args
                .api_key
                .clone()
                .context("--api-key is required with --url")?;
            notes.push("external fleet: its configuration is not the bench's; no direct phase, no connection count".to_owned());
            (None, url.clone(), key, watched, "external".to_owned())
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
                fleet.url,
                fleet.dir().display()
            );
            let (url, watched, dns) = (
                fleet.url.clone(),
                fleet.watched.clone(),
                fleet.dns_description.clone(),
            );
            (Some(fleet), url, fleet::API_KEY.to_owned(), watched, dns)
        }
    };
    if args.dns == DnsMode::Kit && fleet.is_some() {
        notes.push(
            "the kit DNS server runs inside the bench process: its CPU and memory are the bench's"
                .to_owned(),
        );
    }
    let url = reqwest::Url::parse(&url).context("--url")?;
    let authorization = HeaderValue::from_str(&format!("Bearer {api_key}"))?;
    let coordinator = |clients, connections| {
        Arc::new(Load {
            endpoint: Endpoint::Coordinator {
                clients,
                url: url.clone(),
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
    // One client is one HTTP/2 connection (hyper multiplexes a host's requests on one).
    let http2 = coordinator(
        (0..args.h2_connections.max(1))
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
                quorum: fleet::PLACES.len() - 2,
            },
            requests: requests.clone(),
            connections: None,
        })
    });
    let perspective_ports = fleet
        .as_ref()
        .map(|f| f.perspective_ports.clone())
        .unwrap_or_default();

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
                fleet.as_ref().and(url.port()),
                spec.duration,
            )
        });
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
        let phase = PhaseReport::new(
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

    let targets = targets(args, &reports);
    if fleet.is_some() {
        notes.push(format!(
            "coordinator, {} perspectives, DNS and this bench share the machine's {} CPUs; the machine may be shared with other work (see the load averages)",
            fleet::PLACES.len() - usize::from(args.scenario == Scenario::Blackhole),
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
            perspectives: fleet::PLACES.len(),
            straggler_grace_ms: args.grace_ms,
            perspective_call_ms: args.call_ms,
            max_concurrent_requests: max_concurrent_requests(args),
        },
        machine: report::Machine {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            loadavg_start,
            cpu_reference_ns,
            loadavg_end: std::fs::read_to_string("/proc/loadavg").unwrap_or_default(),
        },
        phases: reports,
        targets,
        notes,
    })
}

/// The targets this run can speak to.
fn targets(args: &Args, phases: &[PhaseReport]) -> Vec<report::TargetCheck> {
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
    if phases.iter().any(|p| p.connections.is_some()) {
        out.push(report::check_connections(phases, fleet::PLACES.len()));
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
