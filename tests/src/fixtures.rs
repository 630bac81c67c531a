//! Real `nsd` and `unbound` processes for end-to-end tests.
//!
//! [`DnsWorld::start`] builds a small DNS world on loopback from a [`WorldSpec`]:
//!
//! 1. every signed zone gets a fresh ECDSAP256SHA256 KSK and ZSK (`ldns-keygen`) and is signed
//!    with NSEC3 (`ldns-signzone -n -t 0`, no opt-out), with the signature validity of
//!    [`ZoneSpec::signature_validity`] when given; [`ZoneSpec::tamper`] edits are applied
//!    to the signed file afterwards, which makes the edited RRset bogus;
//! 2. one NSD serves every zone on `127.0.0.1:<free port>`;
//! 3. `resolvers` independent Unbound processes (one per perspective, each with its own cache)
//!    listen on `127.0.0.1:<free port>` each and reach NSD through one `stub-zone` per zone.
//!
//! # Zones and the chain of trust
//!
//! SOA, NS (`ns.<origin>`) and the `ns` A record (127.0.0.1) are added to every zone. When a
//! zone's origin lies below another zone of the spec, the nearest such zone is its *parent*:
//! the parent gets the delegation (NS plus glue) and, when the child is signed, the child's DS.
//!
//! * A signed zone with no signed parent gets a `trust-anchor-file` (its KSK's DS) in Unbound.
//! * An unsigned zone with no signed parent is declared `domain-insecure`, so it validates as
//!   insecure (AD=0).
//! * An unsigned zone *below a signed parent* gets no `domain-insecure`: Unbound proves it
//!   insecure from the parent's signed NSEC3 denial of DS, as it would on the Internet.
//!
//! A zone can also be *served elsewhere* ([`ZoneSpec::elsewhere`]): not by NSD but by a server
//! the test runs itself (say, a test-kit [`crate::dns::DnsServer`] that never answers, or
//! answers REFUSED, as a broken authoritative server would). Every Unbound gets a `stub-zone` to
//! its address; the parent gets the delegation unless its records hold NS for that name
//! already, and the DS records the test puts there (none are made: the fixture has no key for
//! such a zone). It gets neither a trust anchor nor `domain-insecure`: its status follows from
//! its parent, as on the Internet.
//!
//! Delegation glue can only carry an address (port 53 implied), while NSD runs on a free high
//! port. So each zone, child zones included, also gets its own `stub-zone` pointing at
//! `127.0.0.1@<nsd port>`; the DS (or the proof of its absence) still comes from the signed
//! parent, because NSD, authoritative for both sides of the cut, answers DS queries from the
//! parent zone (RFC 4035 §3.1.4.1), and the validator asks for it exactly as it would after a
//! referral.
//!
//! # The Unbound test overlay
//!
//! Each resolver's configuration is the production `unbound/unbound.conf` (compiled in with
//! `include_str!`) with every `server:` option the overlay sets removed, plus the overlay (see
//! [`TEST_OVERLAY_KEYS`]): loopback listener on the chosen port, no privilege drop and no chroot,
//! directory/pid file in the world's temporary directory, stderr logging, the test zones' trust
//! anchors instead of the root's (no Internet), `do-ip6: no`, no caching (`cache-max-ttl: 0`,
//! `cache-max-negative-ttl: 0`, `val-bogus-ttl: 0`), `do-not-query-localhost: no`,
//! `so-reuseport: no` (a port clash must fail, not silently share the port) and
//! `local-zone: "<name>." nodefault` for `test.` and every zone origin and its ancestors (so
//! RFC 6761/6303 default local zones like `test.` or `127.in-addr.arpa.` do not answer in place
//! of NSD). Every generated file is checked with `nsd-checkconf` / `unbound-checkconf` before the
//! process starts.
//!
//! # Processes
//!
//! Processes run in the foreground; stdout and stderr go to `<dir>/nsd.log` and
//! `<dir>/unbound-<i>.log`. Readiness is a real DNS query (SOA of the first zone, whose serial is
//! unique to this world), polled for up to 5 s; on failure the error carries the log's tail.
//! Dropping the [`DnsWorld`] kills (SIGKILL) and reaps every process, then removes the
//! temporary directory (kept when `MPIC_KEEP_DNSWORLD` is set, for debugging).
//! The binaries are looked up in `PATH`, then `/usr/sbin` and `/sbin`; when one is missing,
//! run `.ci/install-deps.sh`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// The production sidecar configuration, the base of every test resolver's configuration.
pub const PRODUCTION_UNBOUND_CONF: &str = include_str!("../../unbound/unbound.conf");

/// `server:` options that the test overlay sets itself; they are removed from the production
/// configuration before the overlay is appended (list-valued options such as `interface` or
/// `access-control` would otherwise accumulate).
pub const TEST_OVERLAY_KEYS: &[&str] = &[
    "interface",
    "port",
    "access-control",
    "username",
    "chroot",
    "directory",
    "pidfile",
    "use-syslog",
    "logfile",
    "do-ip6",
    "so-reuseport",
    "cache-max-ttl",
    "cache-max-negative-ttl",
    "val-bogus-ttl",
    "ede",
    "do-not-query-localhost",
    "auto-trust-anchor-file",
    "trust-anchor-file",
    "trust-anchor",
    "domain-insecure",
    "local-zone",
];

/// How long a server may take to answer its first readiness query.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait for one readiness answer before asking again.
const READY_QUERY_TIMEOUT: Duration = Duration::from_millis(250);
/// Attempts with a fresh port when a server dies during start-up (e.g. a port clash).
const START_ATTEMPTS: usize = 3;
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// TTL of every record the fixture adds itself.
const DEFAULT_TTL: u32 = 60;

/// What to build: the zones and the number of independent resolvers (perspectives).
#[derive(Debug, Clone, Default)]
pub struct WorldSpec {
    /// The zones NSD serves. The first zone's SOA is the readiness probe, so it must resolve
    /// (NOERROR) through Unbound: do not tamper with it.
    pub zones: Vec<ZoneSpec>,
    /// How many Unbound processes to start (at least 1).
    pub resolvers: usize,
}

/// One zone of a [`WorldSpec`].
#[derive(Debug, Clone)]
pub struct ZoneSpec {
    /// Zone apex without the trailing dot, e.g. `"mpic.test"` or `"2.0.192.in-addr.arpa"`.
    pub origin: String,
    /// Zone-file lines relative to the origin, e.g. `@ 60 IN CAA 0 issue "ca.example"` or
    /// `www 60 IN CNAME @`. SOA, apex NS and `ns` A are added (do not give an SOA; an apex NS
    /// or an `ns` owner of your own replaces the added one).
    pub records: Vec<String>,
    /// Sign the zone (ECDSAP256SHA256, NSEC3 with 0 iterations, no opt-out).
    pub signed: bool,
    /// After signing, replace the first occurrence of `.0` by `.1` in the signed zone file (the
    /// text as `ldns-signzone` writes it, e.g. `"will-be-tampered"`) so that RRset fails
    /// validation. Each `.0` must occur, or [`DnsWorld::start`] fails.
    pub tamper: Vec<(String, String)>,
    /// Signature validity for `ldns-signzone` as `(inception, expiration)`, each `YYYYMMDD` or
    /// `YYYYMMDDhhmmss` (UTC); `None` keeps ldns-signzone's default (from now, four weeks).
    /// A past expiration makes every RRset of the zone fail validation with "signature
    /// expired" (see [`ZoneSpec::with_signature_validity`]).
    pub signature_validity: Option<(String, String)>,
    /// Served by this server (UDP and TCP) instead of NSD; see [`ZoneSpec::elsewhere`].
    pub served_by: Option<SocketAddr>,
}

impl ZoneSpec {
    /// A zone signed with its own keys.
    pub fn signed<S: Into<String>>(origin: &str, records: impl IntoIterator<Item = S>) -> Self {
        Self {
            origin: origin.to_owned(),
            records: records.into_iter().map(Into::into).collect(),
            signed: true,
            tamper: Vec::new(),
            signature_validity: None,
            served_by: None,
        }
    }

    /// A zone served by `server` (UDP and TCP; e.g. a test-kit DNS server that misbehaves)
    /// rather than NSD: the resolvers send its queries there through a `stub-zone`; its parent,
    /// if the spec has one, delegates it and publishes whatever DS records the test gives it.
    pub fn elsewhere(origin: &str, server: SocketAddr) -> Self {
        Self {
            served_by: Some(server),
            ..Self::unsigned(origin, Vec::<String>::new())
        }
    }

    /// An unsigned zone.
    pub fn unsigned<S: Into<String>>(origin: &str, records: impl IntoIterator<Item = S>) -> Self {
        Self {
            signed: false,
            ..Self::signed(origin, records)
        }
    }

    /// Adds a tamper edit (see [`ZoneSpec::tamper`]).
    #[must_use]
    pub fn with_tamper(mut self, from: &str, to: &str) -> Self {
        self.tamper.push((from.to_owned(), to.to_owned()));
        self
    }

    /// Signs with this inception and expiration (ldns-signzone `-i` / `-e`, `YYYYMMDD` or
    /// `YYYYMMDDhhmmss`), e.g. `("20200101", "20200201")` for signatures that have expired.
    #[must_use]
    pub fn with_signature_validity(mut self, inception: &str, expiration: &str) -> Self {
        self.signature_validity = Some((inception.to_owned(), expiration.to_owned()));
        self
    }

    fn fqdn(&self) -> String {
        format!("{}.", self.origin)
    }
}

/// A DNSSEC-signed test world served by a real NSD and validated by real Unbound processes.
///
/// Files in [`DnsWorld::dir`]: `<origin>.zone` (unsigned input), `<origin>.zone.signed`,
/// `<origin>.ds` (the KSK's DS, Unbound's trust anchor), `<origin>.dnskey` (the DNSKEYs, for
/// a validator that wants DNSKEY anchors, e.g. hickory's), `nsd.conf`, `nsd.log`,
/// `unbound-<i>.conf`, `unbound-<i>.log`.
#[derive(Debug)]
pub struct DnsWorld {
    nsd: ServerProcess,
    nsd_addr: SocketAddr,
    resolvers: Vec<ServerProcess>,
    resolver_addrs: Vec<SocketAddr>,
    unbound_configs: Vec<PathBuf>,
    dir: TempDir,
}

impl DnsWorld {
    /// Signs the signed zones with `ldns-keygen`/`ldns-signzone` (ECDSAP256SHA256, NSEC3), serves
    /// all zones from one NSD on `127.0.0.1:<free port>`, and starts `spec.resolvers`
    /// independent Unbound processes on `127.0.0.1:<free ports>` (see the module docs for the
    /// configuration). Returns once NSD and every Unbound answer the SOA query of the first
    /// zone with NOERROR.
    pub async fn start(spec: WorldSpec) -> Result<DnsWorld> {
        ensure!(!spec.zones.is_empty(), "WorldSpec has no zones");
        ensure!(spec.resolvers > 0, "WorldSpec asks for no resolver");
        let tools = Tools::find()?;
        let dir = TempDir::new()?;
        let serial = unique_serial();
        let zones = prepare_zones(&spec, &tools, dir.path(), serial).await?;
        let probe = Name::from_ascii(zones[0].spec.fqdn())
            .with_context(|| format!("invalid zone origin {:?}", zones[0].spec.origin))?;

        let (nsd, nsd_addr) = start_nsd(&tools, dir.path(), &zones, &probe, serial).await?;

        let mut pending = Vec::with_capacity(spec.resolvers);
        for index in 0..spec.resolvers {
            pending.push(start_unbound(
                &tools,
                dir.path(),
                &zones,
                nsd_addr,
                index,
                &probe,
                serial,
            ));
        }
        let mut resolvers = Vec::with_capacity(spec.resolvers);
        let mut resolver_addrs = Vec::with_capacity(spec.resolvers);
        let mut unbound_configs = Vec::with_capacity(spec.resolvers);
        for started in join_all(pending).await {
            let (process, addr, config) = started?;
            resolvers.push(process);
            resolver_addrs.push(addr);
            unbound_configs.push(config);
        }
        Ok(DnsWorld {
            nsd,
            nsd_addr,
            resolvers,
            resolver_addrs,
            unbound_configs,
            dir,
        })
    }

    /// NSD's address (authoritative only, no recursion, no validation).
    pub fn nsd_addr(&self) -> SocketAddr {
        self.nsd_addr
    }

    /// The validating resolvers, one per perspective, in start order.
    pub fn resolver_addrs(&self) -> &[SocketAddr] {
        &self.resolver_addrs
    }

    /// The generated `unbound.conf` of resolver `i` (for debugging).
    ///
    /// # Panics
    /// If `i` is not below the number of resolvers.
    pub fn unbound_config_path(&self, i: usize) -> &Path {
        &self.unbound_configs[i]
    }

    /// The world's temporary directory (zone files, anchors, configurations, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file of DS records Unbound trusts for the signed zone `origin` (e.g. `"mpic.test"`),
    /// if that zone is signed.
    pub fn ds_anchor_path(&self, origin: &str) -> Option<PathBuf> {
        let path = self
            .dir
            .path()
            .join(format!("{}.ds", origin.trim_end_matches('.')));
        path.exists().then_some(path)
    }

    /// The file of DNSKEY records of the signed zone `origin`, if that zone is signed.
    pub fn dnskey_anchor_path(&self, origin: &str) -> Option<PathBuf> {
        let path = self
            .dir
            .path()
            .join(format!("{}.dnskey", origin.trim_end_matches('.')));
        path.exists().then_some(path)
    }

    /// Process ids of NSD (first) and the resolvers.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.nsd)
            .chain(&self.resolvers)
            .map(ServerProcess::pid)
            .collect()
    }
}

impl Drop for DnsWorld {
    fn drop(&mut self) {
        // Processes first (they hold files in the directory), then the directory (TempDir).
        for resolver in &mut self.resolvers {
            resolver.stop();
        }
        self.nsd.stop();
    }
}

/// A free TCP+UDP port on 127.0.0.1 (never the same one twice in this process).
///
/// The port is released before returning, so another process could take it before the caller
/// binds it; [`DnsWorld`] retries with a new port when a server fails to start.
///
/// # Panics
/// If no port can be found (see [`try_free_port`]).
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(err) => panic!("no free loopback port: {err:#}"),
    }
}

/// Like [`free_port`], but returns the error instead of panicking.
pub fn try_free_port() -> Result<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut last_err = None;
    for _ in 0..64 {
        let udp = match UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)) {
            Ok(socket) => socket,
            Err(err) => {
                last_err = Some(err);
                continue;
            }
        };
        let port = udp.local_addr()?.port();
        let tcp = match TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)) {
            Ok(listener) => listener,
            Err(err) => {
                last_err = Some(err);
                continue;
            }
        };
        drop((udp, tcp));
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(match last_err {
        Some(err) => anyhow!(err).context("binding 127.0.0.1:0 (UDP and TCP)"),
        None => anyhow!("every free port found was already handed out"),
    })
}

// ---------------------------------------------------------------------------------------------
// Tools

#[derive(Debug)]
struct Tools {
    ldns_keygen: PathBuf,
    ldns_signzone: PathBuf,
    nsd: PathBuf,
    nsd_checkconf: PathBuf,
    nsd_checkzone: PathBuf,
    unbound: PathBuf,
    unbound_checkconf: PathBuf,
}

impl Tools {
    fn find() -> Result<Self> {
        Ok(Self {
            ldns_keygen: find_binary("ldns-keygen")?,
            ldns_signzone: find_binary("ldns-signzone")?,
            nsd: find_binary("nsd")?,
            nsd_checkconf: find_binary("nsd-checkconf")?,
            nsd_checkzone: find_binary("nsd-checkzone")?,
            unbound: find_binary("unbound")?,
            unbound_checkconf: find_binary("unbound-checkconf")?,
        })
    }
}

/// Finds `name` in `PATH`, then in `/usr/sbin` and `/sbin` (where Debian puts nsd and unbound,
/// not on every user's `PATH`).
pub fn find_binary(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            anyhow!(
                "`{name}` not found in PATH, /usr/sbin or /sbin: run .ci/install-deps.sh \
                 (Debian packages unbound, nsd, ldnsutils, dns-root-data)"
            )
        })
}

/// Runs a short command to completion; fails with its output when it exits non-zero.
async fn run_tool(program: &Path, args: &[&str], cwd: &Path) -> Result<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {}", program.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "`{} {}` failed ({}):\n{}{}",
            program.display(),
            args.join(" "),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

// ---------------------------------------------------------------------------------------------
// Zones

#[derive(Debug)]
struct PreparedZone {
    spec: ZoneSpec,
    /// Index of the nearest enclosing zone of the spec.
    parent: Option<usize>,
    /// Whether some enclosing zone of the spec is signed.
    signed_ancestor: bool,
    /// The file NSD serves (relative to the world's directory).
    served_file: String,
}

#[derive(Debug)]
struct ZoneKeys {
    ksk: String,
    zsk: String,
    ds: String,
}

fn is_below(child: &str, parent: &str) -> bool {
    let child = child.trim_end_matches('.').to_ascii_lowercase();
    let parent = parent.trim_end_matches('.').to_ascii_lowercase();
    child.len() > parent.len() && child.ends_with(&format!(".{parent}"))
}

fn owner(line: &str) -> Option<&str> {
    if line.starts_with([' ', '\t']) {
        return None;
    }
    line.split_whitespace().next()
}

fn has_type(line: &str, rtype: &str) -> bool {
    line.split_whitespace()
        .any(|token| token.eq_ignore_ascii_case(rtype))
}

async fn prepare_zones(
    spec: &WorldSpec,
    tools: &Tools,
    dir: &Path,
    serial: u32,
) -> Result<Vec<PreparedZone>> {
    let mut origins = HashSet::new();
    for zone in &spec.zones {
        ensure!(
            !zone.origin.is_empty() && zone.origin != ".",
            "empty zone origin"
        );
        ensure!(
            origins.insert(zone.origin.trim_end_matches('.').to_ascii_lowercase()),
            "zone {} given twice",
            zone.origin
        );
        ensure!(
            !zone.records.iter().any(|line| has_type(line, "SOA")),
            "zone {}: do not give an SOA record, the fixture adds it",
            zone.origin
        );
    }
    ensure!(
        spec.zones[0].served_by.is_none(),
        "the first zone is the readiness probe: NSD must serve it"
    );
    for zone in spec.zones.iter().filter(|z| z.served_by.is_some()) {
        ensure!(
            !zone.signed && zone.records.is_empty() && zone.tamper.is_empty(),
            "zone {}: a zone served elsewhere has no records, keys or edits here",
            zone.origin
        );
    }

    let mut zones: Vec<PreparedZone> = spec
        .zones
        .iter()
        .map(|zone| {
            let mut zone = zone.clone();
            zone.origin = zone.origin.trim_end_matches('.').to_owned();
            PreparedZone {
                spec: zone,
                parent: None,
                signed_ancestor: false,
                served_file: String::new(),
            }
        })
        .collect();
    for i in 0..zones.len() {
        let origin = zones[i].spec.origin.clone();
        zones[i].parent = (0..zones.len())
            .filter(|&j| is_below(&origin, &zones[j].spec.origin))
            .max_by_key(|&j| zones[j].spec.origin.len());
        zones[i].signed_ancestor = zones
            .iter()
            .any(|other| other.spec.signed && is_below(&origin, &other.spec.origin));
    }

    // Keys first: a signed child's DS goes into its parent before the parent is signed.
    let mut keys: Vec<Option<ZoneKeys>> = Vec::with_capacity(zones.len());
    for zone in &zones {
        keys.push(if zone.spec.signed {
            Some(generate_keys(tools, dir, &zone.spec.origin).await?)
        } else {
            None
        });
    }

    let mut extra: Vec<Vec<String>> = vec![Vec::new(); zones.len()];
    for (i, zone) in zones.iter().enumerate() {
        let Some(parent) = zone.parent else { continue };
        let parent_origin = &zones[parent].spec.origin;
        let relative =
            zone.spec.origin[..zone.spec.origin.len() - parent_origin.len() - 1].to_owned();
        let absolute = format!("{}.", zone.spec.origin);
        let delegated = zones[parent].spec.records.iter().any(|line| {
            owner(line).is_some_and(|o| {
                o.eq_ignore_ascii_case(&relative) || o.eq_ignore_ascii_case(&absolute)
            }) && has_type(line, "NS")
        });
        let lines = &mut extra[parent];
        if !delegated {
            lines.push(format!(
                "{relative} {DEFAULT_TTL} IN NS ns.{}.",
                zone.spec.origin
            ));
            lines.push(format!("ns.{relative} {DEFAULT_TTL} IN A 127.0.0.1"));
        }
        if let Some(child_keys) = &keys[i] {
            lines.extend(
                child_keys
                    .ds
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(str::to_owned),
            );
        }
    }

    for (i, zone) in zones.iter_mut().enumerate() {
        if zone.spec.served_by.is_some() {
            continue;
        }
        let origin = zone.spec.origin.clone();
        let mut text = String::new();
        let _ = writeln!(text, "$ORIGIN {origin}.");
        let _ = writeln!(text, "$TTL {DEFAULT_TTL}");
        let _ = writeln!(
            text,
            "@ {DEFAULT_TTL} IN SOA ns.{origin}. hostmaster.{origin}. {serial} 3600 600 86400 {DEFAULT_TTL}"
        );
        let own_apex_ns = zone
            .spec
            .records
            .iter()
            .any(|line| matches!(owner(line), Some("@")) && has_type(line, "NS"));
        if !own_apex_ns {
            let _ = writeln!(text, "@ {DEFAULT_TTL} IN NS ns.{origin}.");
        }
        let own_ns_host = zone
            .spec
            .records
            .iter()
            .any(|line| matches!(owner(line), Some(o) if o.eq_ignore_ascii_case("ns")));
        if !own_ns_host {
            let _ = writeln!(text, "ns {DEFAULT_TTL} IN A 127.0.0.1");
        }
        for line in zone.spec.records.iter().chain(&extra[i]) {
            let _ = writeln!(text, "{line}");
        }
        let zone_file = format!("{origin}.zone");
        fs::write(dir.join(&zone_file), text).with_context(|| format!("writing {zone_file}"))?;

        zone.served_file = match &keys[i] {
            None => {
                ensure!(
                    zone.spec.tamper.is_empty(),
                    "zone {origin}: tamper edits need a signed zone"
                );
                ensure!(
                    zone.spec.signature_validity.is_none(),
                    "zone {origin}: a signature validity needs a signed zone"
                );
                zone_file
            }
            Some(zone_keys) => {
                let mut args: Vec<&str> = vec!["-n", "-t", "0"];
                if let Some((inception, expiration)) = &zone.spec.signature_validity {
                    args.extend(["-i", inception, "-e", expiration]);
                }
                args.extend(["-o", &origin, &zone_file, &zone_keys.ksk, &zone_keys.zsk]);
                run_tool(&tools.ldns_signzone, &args, dir).await?;
                let signed_file = format!("{zone_file}.signed");
                let signed_path = dir.join(&signed_file);
                let mut signed = fs::read_to_string(&signed_path)
                    .with_context(|| format!("reading {}", signed_path.display()))?;
                for (from, to) in &zone.spec.tamper {
                    ensure!(
                        signed.contains(from.as_str()),
                        "zone {origin}: tamper text {from:?} not found in the signed zone {}",
                        signed_path.display()
                    );
                    signed = signed.replacen(from.as_str(), to, 1);
                }
                fs::write(&signed_path, signed)?;
                signed_file
            }
        };
        run_tool(&tools.nsd_checkzone, &[&origin, &zone.served_file], dir)
            .await
            .with_context(|| format!("zone {origin} does not load"))?;
    }
    Ok(zones)
}

async fn generate_keys(tools: &Tools, dir: &Path, origin: &str) -> Result<ZoneKeys> {
    let ksk = run_tool(
        &tools.ldns_keygen,
        &["-a", "ECDSAP256SHA256", "-k", origin],
        dir,
    )
    .await?
    .trim()
    .to_owned();
    let zsk = run_tool(&tools.ldns_keygen, &["-a", "ECDSAP256SHA256", origin], dir)
        .await?
        .trim()
        .to_owned();
    ensure!(
        !ksk.is_empty() && !zsk.is_empty(),
        "ldns-keygen printed no key name for {origin}"
    );
    let ds = fs::read_to_string(dir.join(format!("{ksk}.ds")))
        .with_context(|| format!("reading the DS of {origin}'s KSK"))?;
    fs::write(dir.join(format!("{origin}.ds")), &ds)?;
    let mut dnskeys = String::new();
    for key in [&ksk, &zsk] {
        dnskeys.push_str(&fs::read_to_string(dir.join(format!("{key}.key")))?);
    }
    fs::write(dir.join(format!("{origin}.dnskey")), dnskeys)?;
    Ok(ZoneKeys { ksk, zsk, ds })
}

// ---------------------------------------------------------------------------------------------
// Servers

async fn start_nsd(
    tools: &Tools,
    dir: &Path,
    zones: &[PreparedZone],
    probe: &Name,
    serial: u32,
) -> Result<(ServerProcess, SocketAddr)> {
    let config_path = dir.join("nsd.conf");
    let log_path = dir.join("nsd.log");
    let d = dir.display();
    let mut last_err = None;
    for _ in 0..START_ATTEMPTS {
        let port = try_free_port()?;
        let mut conf = format!(
            "server:\n\
             \x20   ip-address: 127.0.0.1@{port}\n\
             \x20   port: {port}\n\
             \x20   do-ip6: no\n\
             \x20   username: \"\"\n\
             \x20   chroot: \"\"\n\
             \x20   zonesdir: \"{d}\"\n\
             \x20   database: \"\"\n\
             \x20   zonelistfile: \"{d}/nsd.zonelist\"\n\
             \x20   pidfile: \"{d}/nsd.pid\"\n\
             \x20   xfrdfile: \"{d}/nsd.xfrd.state\"\n\
             \x20   xfrdir: \"{d}\"\n\
             \x20   logfile: \"{}\"\n\
             \x20   server-count: 1\n\
             \x20   rrl-ratelimit: 0\n\
             \x20   verbosity: 1\n\
             \x20   hide-version: yes\n\
             remote-control:\n\
             \x20   control-enable: no\n",
            log_path.display()
        );
        for zone in zones.iter().filter(|z| z.spec.served_by.is_none()) {
            let _ = write!(
                conf,
                "zone:\n    name: \"{}\"\n    zonefile: \"{}\"\n",
                zone.spec.origin, zone.served_file
            );
        }
        fs::write(&config_path, conf)?;
        let config_arg = config_path.to_string_lossy().into_owned();
        run_tool(&tools.nsd_checkconf, &[&config_arg], dir).await?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut process = ServerProcess::spawn(
            "nsd",
            &tools.nsd,
            &["-d", "-c", &config_arg],
            dir,
            &log_path,
        )?;
        match wait_ready(&mut process, addr, probe, false, serial).await {
            Ok(()) => return Ok((process, addr)),
            Err(err) => {
                // Only a server that died during start-up (e.g. the port was taken in the
                // meantime) is retried on a new port; one that runs but does not answer is not.
                let exited = process.try_wait()?.is_some();
                process.stop();
                if !exited {
                    return Err(err);
                }
                last_err = Some(err);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("nsd did not start")))
}

/// Generates resolver `index`'s configuration for `port` (see the module docs).
fn unbound_config(
    dir: &Path,
    zones: &[PreparedZone],
    nsd: SocketAddr,
    index: usize,
    port: u16,
) -> String {
    let mut conf = String::from(
        "# Generated by mpic-tests fixtures: unbound/unbound.conf minus the options below, plus\n\
         # the test overlay.\n",
    );
    let mut clause = String::new();
    for raw in PRODUCTION_UNBOUND_CONF.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let key = line.split(':').next().unwrap_or_default().trim();
        if !raw.starts_with([' ', '\t']) && line.ends_with(':') {
            clause = key.to_owned();
            if clause != "server" {
                continue; // only the server clause is taken over
            }
            conf.push_str("server:\n");
            continue;
        }
        if clause == "server" && !TEST_OVERLAY_KEYS.contains(&key) {
            let _ = writeln!(conf, "    {line}");
        }
    }
    if !conf.contains("\nserver:\n") {
        conf.push_str("server:\n");
    }

    let d = dir.display();
    let _ = write!(
        conf,
        "    # --- test overlay ---\n\
         \x20   interface: 127.0.0.1@{port}\n\
         \x20   port: {port}\n\
         \x20   access-control: 0.0.0.0/0 refuse\n\
         \x20   access-control: 127.0.0.0/8 allow\n\
         \x20   username: \"\"\n\
         \x20   chroot: \"\"\n\
         \x20   directory: \"{d}\"\n\
         \x20   pidfile: \"{d}/unbound-{index}.pid\"\n\
         \x20   use-syslog: no\n\
         \x20   logfile: \"\"\n\
         \x20   do-ip6: no\n\
         \x20   so-reuseport: no\n\
         \x20   cache-max-ttl: 0\n\
         \x20   cache-max-negative-ttl: 0\n\
         \x20   val-bogus-ttl: 0\n\
         \x20   ede: yes\n\
         \x20   do-not-query-localhost: no\n"
    );
    let mut nodefault = vec!["test.".to_owned()];
    for zone in zones {
        let mut name = zone.spec.origin.as_str();
        loop {
            let fqdn = format!("{name}.");
            if !nodefault.contains(&fqdn) {
                nodefault.push(fqdn);
            }
            match name.split_once('.') {
                Some((_, rest)) if !rest.is_empty() => name = rest,
                _ => break,
            }
        }
    }
    for name in &nodefault {
        let _ = writeln!(conf, "    local-zone: \"{name}\" nodefault");
    }
    for zone in zones {
        if zone.spec.signed && !zone.signed_ancestor {
            let _ = writeln!(
                conf,
                "    trust-anchor-file: \"{d}/{}.ds\"",
                zone.spec.origin
            );
        }
        if !zone.spec.signed && !zone.signed_ancestor && zone.spec.served_by.is_none() {
            let _ = writeln!(conf, "    domain-insecure: \"{}\"", zone.spec.origin);
        }
    }
    conf.push_str("remote-control:\n    control-enable: no\n");
    for zone in zones {
        let server = zone.spec.served_by.unwrap_or(nsd);
        let _ = write!(
            conf,
            "stub-zone:\n    name: \"{}\"\n    stub-addr: {}@{}\n",
            zone.spec.origin,
            server.ip(),
            server.port()
        );
    }
    conf
}

async fn start_unbound(
    tools: &Tools,
    dir: &Path,
    zones: &[PreparedZone],
    nsd: SocketAddr,
    index: usize,
    probe: &Name,
    serial: u32,
) -> Result<(ServerProcess, SocketAddr, PathBuf)> {
    let config_path = dir.join(format!("unbound-{index}.conf"));
    let log_path = dir.join(format!("unbound-{index}.log"));
    let config_arg = config_path.to_string_lossy().into_owned();
    let mut last_err = None;
    for _ in 0..START_ATTEMPTS {
        let port = try_free_port()?;
        fs::write(&config_path, unbound_config(dir, zones, nsd, index, port))?;
        run_tool(&tools.unbound_checkconf, &[&config_arg], dir).await?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut process = ServerProcess::spawn(
            &format!("unbound-{index}"),
            &tools.unbound,
            &["-d", "-c", &config_arg],
            dir,
            &log_path,
        )?;
        match wait_ready(&mut process, addr, probe, true, serial).await {
            Ok(()) => return Ok((process, addr, config_path)),
            Err(err) => {
                // Only a server that died during start-up (e.g. the port was taken in the
                // meantime) is retried on a new port; one that runs but does not answer is not.
                let exited = process.try_wait()?.is_some();
                process.stop();
                if !exited {
                    return Err(err);
                }
                last_err = Some(err);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("unbound-{index} did not start")))
}

/// Polls `addr` with `SOA probe` until it answers NOERROR with this world's SOA serial (so a
/// foreign server that happens to hold the port does not count), the process exits, or
/// [`READY_TIMEOUT`] passes.
async fn wait_ready(
    process: &mut ServerProcess,
    addr: SocketAddr,
    probe: &Name,
    recursion: bool,
    serial: u32,
) -> Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = process.try_wait()? {
            bail!(
                "{} exited during start-up ({status}); log {}:\n{}",
                process.name,
                process.log.display(),
                log_tail(&process.log)
            );
        }
        let last =
            match query_udp(addr, probe, RecordType::SOA, recursion, READY_QUERY_TIMEOUT).await {
                Ok(response) if response.metadata.response_code == ResponseCode::NoError => {
                    let ours = response.answers.iter().any(
                        |record| matches!(&record.data, RData::SOA(soa) if soa.serial == serial),
                    );
                    if ours && process.try_wait()?.is_none() {
                        return Ok(());
                    }
                    format!("answer without this world's SOA serial {serial}")
                }
                Ok(response) => format!("rcode {}", response.metadata.response_code),
                Err(err) => format!("{err:#}"),
            };
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "{} on {addr} not ready after {:?} (last: {last}); log {}:\n{}",
                process.name,
                READY_TIMEOUT,
                process.log.display(),
                log_tail(&process.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One DNS query over UDP (EDNS, DO and AD set, as a perspective asks): returns the response.
async fn query_udp(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    recursion: bool,
    timeout: Duration,
) -> Result<Message> {
    let mut msg = Message::query();
    msg.add_query(Query::query(name.clone(), rtype));
    msg.metadata.recursion_desired = recursion;
    msg.metadata.authentic_data = true;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    msg.set_edns(edns);
    let id = msg.metadata.id;
    let bytes = msg.to_vec()?;

    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(server).await?;
    socket.send(&bytes).await?;
    let mut buf = vec![0_u8; 65535];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let len = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| anyhow!("no answer from {server} within {timeout:?}"))??;
        let response = Message::from_vec(&buf[..len])
            .map_err(|err| anyhow!("undecodable answer from {server}: {err}"))?;
        if response.metadata.id == id {
            return Ok(response);
        }
    }
}

fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    // Small and dependency-free: poll every future in turn until all are done.
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// A foreground server process, killed and reaped on drop.
#[derive(Debug)]
struct ServerProcess {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl ServerProcess {
    fn spawn(name: &str, program: &Path, args: &[&str], cwd: &Path, log: &Path) -> Result<Self> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(program)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            stopped: false,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// SIGTERM (through `kill(1)`: this crate forbids `unsafe`, so no libc) and up to 3 s for a
    /// clean exit, which lets NSD stop its forked children; SIGKILL after that or when `kill`
    /// is unavailable. Always reaps the process.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if matches!(self.child.try_wait(), Ok(None)) {
            let terminated = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if terminated {
                let deadline = Instant::now() + STOP_TIMEOUT;
                while Instant::now() < deadline {
                    if !matches!(self.child.try_wait(), Ok(None)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A uniquely named directory under the system temp dir, removed on drop (unless
/// `MPIC_KEEP_DNSWORLD` is set).
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "mpic-dnsworld-{}-{}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MPIC_KEEP_DNSWORLD").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// An SOA serial unique to this world (time, pid and a counter mixed), never 0.
fn unique_serial() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mixed = (nanos as u32)
        ^ std::process::id().rotate_left(16)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9);
    mixed.max(1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

    fn world_spec() -> WorldSpec {
        WorldSpec {
            zones: vec![
                ZoneSpec::signed(
                    "mpic.test",
                    [
                        r#"@ 60 IN CAA 0 issue "ca.example""#,
                        r#"bogus 60 IN TXT "will-be-tampered""#,
                        "www 60 IN CNAME @",
                        // An unsigned child whose parent nevertheless publishes a DS: must
                        // be bogus, which proves the chain is followed through the parent.
                        "lying 60 IN DS 12345 13 2 \
                         0000000000000000000000000000000000000000000000000000000000000000",
                    ],
                )
                .with_tamper(r#""will-be-tampered""#, r#""tampered-after-signing""#),
                ZoneSpec::unsigned(
                    "insecure.mpic.test",
                    [r#"@ 60 IN CAA 0 issue "ca.example""#],
                ),
                ZoneSpec::unsigned("lying.mpic.test", [r#"@ 60 IN CAA 0 issue "ca.example""#]),
                ZoneSpec::unsigned("plain.test", [r#"@ 60 IN CAA 0 issue "ca.example""#]),
                // A signed child: secure through the DS the fixture puts into mpic.test.
                ZoneSpec::signed("signed.mpic.test", [r#"@ CAA 0 issue "ca.example""#]),
                // A reverse zone: RFC 6303 default local zones must not answer instead of NSD.
                ZoneSpec::unsigned("2.0.192.in-addr.arpa", ["10 PTR www.mpic.test."]),
            ],
            resolvers: 2,
        }
    }

    async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
        let name = Name::from_ascii(name).unwrap();
        query_udp(server, &name, rtype, true, Duration::from_secs(5))
            .await
            .unwrap()
    }

    fn ede(response: &Message) -> Option<(u16, String)> {
        let edns = response.edns.as_ref()?;
        edns.options()
            .options
            .iter()
            .find_map(|(code, option)| match (code, option) {
                (EdnsCode::Unknown(15), EdnsOption::Unknown(15, data)) if data.len() >= 2 => {
                    Some((
                        u16::from_be_bytes([data[0], data[1]]),
                        String::from_utf8_lossy(&data[2..]).into_owned(),
                    ))
                }
                _ => None,
            })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn world_validates_signed_insecure_and_bogus() {
        let started = Instant::now();
        let world = DnsWorld::start(world_spec()).await.unwrap();
        eprintln!("DnsWorld::start took {:?}", started.elapsed());
        assert_eq!(world.resolver_addrs().len(), 2);
        assert_ne!(world.resolver_addrs()[0], world.resolver_addrs()[1]);
        let conf = fs::read_to_string(world.unbound_config_path(0)).unwrap();
        assert!(conf.contains("domain-insecure: \"plain.test\""), "{conf}");
        assert!(
            !conf.contains("domain-insecure: \"insecure.mpic.test\""),
            "{conf}"
        );
        assert!(conf.contains("harden-algo-downgrade: yes"), "{conf}");
        assert!(world.ds_anchor_path("mpic.test").is_some());
        assert!(conf.contains("mpic.test.ds"), "{conf}");
        assert!(!conf.contains("signed.mpic.test.ds"), "{conf}");
        assert!(world.dnskey_anchor_path("plain.test").is_none());

        for &resolver in world.resolver_addrs() {
            let secure = ask(resolver, "mpic.test.", RecordType::CAA).await;
            assert_eq!(secure.metadata.response_code, ResponseCode::NoError);
            assert!(secure.metadata.authentic_data, "mpic.test CAA: {secure:?}");
            assert!(
                secure
                    .answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::CAA),
                "{secure:?}"
            );

            let cname = ask(resolver, "www.mpic.test.", RecordType::CAA).await;
            assert_eq!(cname.metadata.response_code, ResponseCode::NoError);
            assert!(cname.metadata.authentic_data, "www CAA: {cname:?}");

            let bogus = ask(resolver, "bogus.mpic.test.", RecordType::TXT).await;
            assert_eq!(bogus.metadata.response_code, ResponseCode::ServFail);
            assert!(!bogus.metadata.authentic_data);
            let (code, text) = ede(&bogus).unwrap_or_else(|| panic!("no EDE in {bogus:?}"));
            assert_eq!(code, 6, "EDE {code} {text}");
            eprintln!("bogus EDE: {code} {text}");

            let insecure = ask(resolver, "insecure.mpic.test.", RecordType::CAA).await;
            assert_eq!(
                insecure.metadata.response_code,
                ResponseCode::NoError,
                "{insecure:?}"
            );
            assert!(!insecure.metadata.authentic_data, "{insecure:?}");
            assert!(
                insecure
                    .answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::CAA),
                "{insecure:?}"
            );

            let lying = ask(resolver, "lying.mpic.test.", RecordType::CAA).await;
            assert_eq!(
                lying.metadata.response_code,
                ResponseCode::ServFail,
                "a DS in the parent must make the unsigned child bogus: {lying:?}"
            );

            let plain = ask(resolver, "plain.test.", RecordType::CAA).await;
            assert_eq!(plain.metadata.response_code, ResponseCode::NoError);
            assert!(!plain.metadata.authentic_data, "{plain:?}");
            assert!(!plain.answers.is_empty(), "{plain:?}");

            let child = ask(resolver, "signed.mpic.test.", RecordType::CAA).await;
            assert_eq!(child.metadata.response_code, ResponseCode::NoError);
            assert!(child.metadata.authentic_data, "{child:?}");

            let ptr = ask(resolver, "10.2.0.192.in-addr.arpa.", RecordType::PTR).await;
            assert_eq!(ptr.metadata.response_code, ResponseCode::NoError, "{ptr:?}");
            assert!(!ptr.metadata.authentic_data, "{ptr:?}");
            assert!(!ptr.answers.is_empty(), "{ptr:?}");

            let nx = ask(resolver, "nx.mpic.test.", RecordType::CAA).await;
            assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
            assert!(nx.metadata.authentic_data, "{nx:?}");
        }

        let pids = world.pids();
        assert_eq!(pids.len(), 3);
        for pid in &pids {
            assert!(Path::new(&format!("/proc/{pid}")).exists());
        }
        let dir = world.dir().to_owned();
        drop(world);
        for pid in &pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "process {pid} still exists after drop"
            );
        }
        // NSD forks helpers (xfrd, server children): none may outlive the world either.
        let needle = dir.to_string_lossy().into_owned();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                assert!(
                    !cmdline.contains(&needle),
                    "process {:?} still runs after drop: {cmdline}",
                    entry.file_name()
                );
            }
        }
        if std::env::var_os("MPIC_KEEP_DNSWORLD").is_none() {
            assert!(!dir.exists(), "{} not removed", dir.display());
        }
    }

    /// Zones served elsewhere: a test-kit server that answers, below a signed parent without a
    /// DS (insecure, as the parent's signed denial of DS proves), and one that answers REFUSED
    /// (the resolver fails the lookup, as it would with a broken authoritative server).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn zones_served_elsewhere() {
        use crate::dns::{Behaviour, DnsServer, Zone};
        let answering =
            DnsServer::start(Zone::new().caa("kit.mpic.test", 0, "issue", "kit-ca.example"))
                .await
                .unwrap();
        let refusing =
            DnsServer::start(Zone::new().behave("refused.mpic.test", Behaviour::Refused))
                .await
                .unwrap();
        let spec = WorldSpec {
            zones: vec![
                ZoneSpec::signed(
                    "mpic.test",
                    [
                        r#"@ 60 IN CAA 0 issue "ca.example""#,
                        // The parent's own delegation of one of them, kept as written.
                        "refused 60 IN NS ns.refused.example.",
                    ],
                ),
                ZoneSpec::elsewhere("kit.mpic.test", answering.addr()),
                ZoneSpec::elsewhere("refused.mpic.test", refusing.addr()),
            ],
            resolvers: 1,
        };
        let world = DnsWorld::start(spec).await.unwrap();
        let conf = fs::read_to_string(world.unbound_config_path(0)).unwrap();
        assert!(
            conf.contains(&format!(
                "name: \"kit.mpic.test\"\n    stub-addr: 127.0.0.1@{}",
                answering.addr().port()
            )),
            "{conf}"
        );
        assert!(
            !conf.contains("domain-insecure: \"kit.mpic.test\""),
            "{conf}"
        );
        let parent = fs::read_to_string(world.dir().join("mpic.test.zone")).unwrap();
        assert!(
            parent.contains("kit 60 IN NS ns.kit.mpic.test."),
            "{parent}"
        );
        assert!(
            !parent.contains("refused 60 IN NS ns.refused.mpic.test."),
            "{parent}"
        );
        assert!(!world.dir().join("kit.mpic.test.zone").exists());

        let resolver = world.resolver_addrs()[0];
        let kit = ask(resolver, "kit.mpic.test.", RecordType::CAA).await;
        assert_eq!(kit.metadata.response_code, ResponseCode::NoError, "{kit:?}");
        assert!(!kit.metadata.authentic_data, "{kit:?}");
        assert_eq!(kit.answers.len(), 1, "{kit:?}");
        let refused = ask(resolver, "refused.mpic.test.", RecordType::CAA).await;
        assert_eq!(
            refused.metadata.response_code,
            ResponseCode::ServFail,
            "{refused:?}"
        );
        assert!(
            refusing
                .queries()
                .iter()
                .any(|q| q.name == "refused.mpic.test"),
            "{:?}",
            refusing.queries()
        );
    }

    #[tokio::test]
    async fn broken_zone_spec_is_rejected() {
        let spec = WorldSpec {
            zones: vec![ZoneSpec::signed("x.test", ["@ 60 IN TXT \"a\""]).with_tamper("nope", "x")],
            resolvers: 1,
        };
        let err = DnsWorld::start(spec).await.unwrap_err();
        assert!(format!("{err:#}").contains("tamper text"), "{err:#}");
    }

    #[tokio::test]
    async fn zone_that_does_not_load_is_reported() {
        let spec = WorldSpec {
            zones: vec![ZoneSpec::unsigned("x.test", ["@ 60 IN BOGUSTYPE x"])],
            resolvers: 1,
        };
        let err = format!("{:#}", DnsWorld::start(spec).await.unwrap_err());
        assert!(err.contains("zone x.test does not load"), "{err}");
        assert!(err.contains("BOGUSTYPE"), "{err}");
    }

    #[test]
    fn free_ports_are_distinct() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }

    /// `unbound/unbound.conf` passes `unbound-checkconf`. The production anchor path
    /// (`/var/lib/unbound/root.key`) exists only inside the image, and checkconf insists that
    /// an `auto-trust-anchor-file` exists: the test copies the configuration into a temp dir,
    /// rewrites only that path to a copy of Debian's `/usr/share/dns/root.key` (package
    /// dns-root-data), runs `unbound-checkconf`, and reads back the security-relevant options
    /// with `unbound-checkconf -o`.
    #[tokio::test]
    async fn production_config_passes_checkconf() {
        const ANCHOR: &str = "\"/var/lib/unbound/root.key\"";
        assert_eq!(PRODUCTION_UNBOUND_CONF.matches(ANCHOR).count(), 1);
        let checkconf = find_binary("unbound-checkconf").unwrap();
        let dir = TempDir::new().unwrap();
        let root_key = dir.path().join("root.key");
        fs::copy("/usr/share/dns/root.key", &root_key)
            .context("missing /usr/share/dns/root.key: run .ci/install-deps.sh")
            .unwrap();
        let conf = PRODUCTION_UNBOUND_CONF.replace(ANCHOR, &format!("\"{}\"", root_key.display()));
        let conf_path = dir.path().join("unbound.conf");
        fs::write(&conf_path, conf).unwrap();
        let conf_arg = conf_path.to_string_lossy().into_owned();
        run_tool(&checkconf, &[&conf_arg], dir.path())
            .await
            .unwrap();

        let option = |name: &'static str| {
            let checkconf = checkconf.clone();
            let conf_arg = conf_arg.clone();
            let cwd = dir.path().to_owned();
            async move {
                run_tool(&checkconf, &["-o", name, &conf_arg], &cwd)
                    .await
                    .unwrap()
                    .trim()
                    .to_owned()
            }
        };
        assert_eq!(option("module-config").await, "validator iterator");
        assert_eq!(
            option("auto-trust-anchor-file").await,
            root_key.display().to_string()
        );
        assert_eq!(option("trust-anchor-file").await, "");
        assert_eq!(option("domain-insecure").await, "");
        assert_eq!(option("val-permissive-mode").await, "no");
        assert_eq!(option("harden-dnssec-stripped").await, "yes");
        assert_eq!(option("ede").await, "yes");
        assert_eq!(option("val-log-level").await, "2");
        assert_eq!(option("serve-expired").await, "no");
        assert_eq!(option("do-daemonize").await, "no");
        assert_eq!(option("interface").await, "127.0.0.1\n::1");
        assert_eq!(option("control-enable").await, "no");
        // No negative trust anchor or permissive switch hides in the file itself.
        for line in PRODUCTION_UNBOUND_CONF.lines() {
            let line = line.split('#').next().unwrap().trim();
            for forbidden in [
                "domain-insecure",
                "val-permissive-mode: yes",
                "trust-anchor-file",
            ] {
                assert!(!line.starts_with(forbidden), "{line}");
            }
        }
    }

    #[test]
    fn overlay_drops_production_listeners() {
        let zones = vec![PreparedZone {
            spec: ZoneSpec::unsigned("2.0.192.in-addr.arpa", Vec::<String>::new()),
            parent: None,
            signed_ancestor: false,
            served_file: "x".into(),
        }];
        let conf = unbound_config(
            Path::new("/tmp/x"),
            &zones,
            "127.0.0.1:5300".parse().unwrap(),
            0,
            5353,
        );
        assert!(!conf.contains("interface: ::1"), "{conf}");
        assert!(!conf.contains("auto-trust-anchor-file"), "{conf}");
        assert!(conf.contains("interface: 127.0.0.1@5353"), "{conf}");
        assert!(conf.contains("local-zone: \"2.0.192.in-addr.arpa.\" nodefault"));
        assert!(conf.contains("stub-addr: 127.0.0.1@5300"));
        assert_eq!(conf.matches("server:").count(), 1, "{conf}");
    }
}
