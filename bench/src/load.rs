//! The load generators and what they record.
//!
//! - **Open loop** ([`open_loop`]): request `i` is due at `i / rate` ([`Schedule`]); latency
//!   runs from that intended time, so queueing anywhere (server or client) is counted. The
//!   requests in flight are capped (`max_in_flight`); a request due while the cap is reached is
//!   not sent and counted as `not_sent`, so a saturated client shows instead of hiding.
//! - **Closed loop** ([`closed_loop`]): `concurrency` workers, each sending its next request
//!   when the previous one is answered, for a fixed time: the maximum throughput.
//!
//! A [`Load`] may bound its connections ([`Load::connections`]), as a client's pool or wrk's
//! `-c` does: a request then waits in the client for a free one, and that wait counts as send
//! lag (and in the latency from the intended time).
//!
//! Both stop by themselves: a bounded number of requests, each under [`REQUEST_TIMEOUT`], and a
//! bounded drain.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::procfs;
use crate::scenario::{self, Prepared};
use crate::schedule::Schedule;
use crate::stats::Latency;

/// The longest the bench waits for one answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a phase waits for its last answers after the last request was sent (open loop) or
/// after its time is up (closed loop).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(35);
/// The most requests one closed-loop phase sends, whatever its duration.
pub const MAX_CLOSED_LOOP_REQUESTS: u64 = 20_000_000;
/// The header a perspective names itself in.
const PERSPECTIVE_HEADER: &str = "x-mpic-perspective";

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// `POST /mpic` on a coordinator.
    Coordinator {
        /// The clients, used in turn: one HTTP/1.1 client with a large keep-alive pool, or
        /// several HTTP/2 clients (a connection each).
        clients: Vec<reqwest::Client>,
        /// `…/mpic` of each coordinator replica, used in turn.
        urls: Vec<reqwest::Url>,
        /// `Bearer <key>`.
        authorization: HeaderValue,
    },
    /// The same checks sent straight to every perspective at once, over mutual TLS with the
    /// coordinator's certificate and a pooled client built like the coordinator's: what the
    /// perspectives cost without the coordinator.
    Direct {
        /// The pooled mutual-TLS client.
        client: reqwest::Client,
        /// Each perspective's `/caa` and `/dcv` URLs and its code.
        perspectives: Vec<DirectTarget>,
        /// Passes needed for a valid verdict.
        quorum: usize,
    },
}

/// One perspective called directly.
#[derive(Debug, Clone)]
pub struct DirectTarget {
    /// Its code (checked against `x-mpic-perspective`).
    pub code: String,
    /// `…/caa`.
    pub caa: reqwest::Url,
    /// `…/dcv`.
    pub dcv: reqwest::Url,
}

/// What one request gave.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Answer {
        valid: bool,
        incomplete: Vec<String>,
        timing: Option<scenario::CoordinatorTiming>,
        last_check_ns: Option<u64>,
        received_ns: u64,
    },
    Shed {
        retry_after: bool,
    },
    Error(String),
}

/// Everything a phase recorded.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answered requests (HTTP 200), from the intended send time.
    pub latency: Latency,
    /// Answered requests, from the actual send time.
    pub service: Latency,
    /// Actual minus intended send time (open loop): how far the client fell behind.
    pub send_lag: Latency,
    /// Shed requests (503), from the intended send time.
    pub shed_latency: Latency,
    /// `total − perspectives` of the coordinator's `Server-Timing`, when it sends one.
    pub coordinator_added: Latency,
    /// Answer received minus the last perspective's `timestamp_ns`: the coordinator's
    /// return path (perspective reply in flight, gather, response built, sent, read).
    pub after_last_check: Latency,
    /// Requests sent.
    pub sent: u64,
    /// HTTP 200 answers.
    pub ok: u64,
    /// 200 answers whose `is_valid` differs from the expected verdict.
    pub wrong: u64,
    /// Of those, `is_valid: true` where `false` was expected (the dangerous kind).
    pub false_valid: u64,
    /// Perspective checks that did not complete, by masked first error.
    pub incomplete_checks: BTreeMap<String, u64>,
    /// 503 answers.
    pub shed: u64,
    /// 503 answers without `Retry-After`.
    pub shed_without_retry_after: u64,
    /// Due while `max_in_flight` requests were outstanding: not sent.
    pub not_sent: u64,
    /// Other failures, by kind.
    pub errors: BTreeMap<String, u64>,
    /// From the first send to the last answer.
    pub elapsed: Duration,
}

impl Tally {
    /// All errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn record(
        &mut self,
        intended: Instant,
        sent: Instant,
        done: Instant,
        outcome: Outcome,
        expect_valid: bool,
    ) {
        self.sent += 1;
        self.send_lag
            .record(sent.saturating_duration_since(intended));
        match outcome {
            Outcome::Answer {
                valid,
                incomplete,
                timing,
                last_check_ns,
                received_ns,
            } => {
                self.ok += 1;
                self.wrong += u64::from(valid != expect_valid);
                self.false_valid += u64::from(valid && !expect_valid);
                for why in incomplete {
                    *self.incomplete_checks.entry(why).or_default() += 1;
                }
                self.latency
                    .record(done.saturating_duration_since(intended));
                self.service.record(done.saturating_duration_since(sent));
                if let Some(t) = timing {
                    self.coordinator_added.record_us(t.added_us());
                }
                if let Some(last) = last_check_ns
                    && received_ns > last
                {
                    self.after_last_check.record_us((received_ns - last) / 1000);
                }
            }
            Outcome::Shed { retry_after } => {
                self.shed += 1;
                if !retry_after {
                    self.shed_without_retry_after += 1;
                }
                self.shed_latency
                    .record(done.saturating_duration_since(intended));
            }
            Outcome::Error(kind) => *self.errors.entry(kind).or_default() += 1,
        }
    }
}

/// A load: an endpoint and the requests to cycle through.
#[derive(Debug)]
pub struct Load {
    /// Where to send.
    pub endpoint: Endpoint,
    /// What to send.
    pub requests: Vec<Prepared>,
    /// With HTTP/1.1 keep-alive, one connection carries one request at a time: at most this
    /// many requests are sent at once (`None`: no bound, a connection per request in flight).
    pub connections: Option<Arc<Semaphore>>,
}

impl Load {
    /// Waits for a connection, when the load bounds them; the request holds it until answered.
    async fn connection(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match &self.connections {
            Some(slots) => Arc::clone(slots).acquire_owned().await.ok(),
            None => None,
        }
    }

    /// Sends request `i`; returns what came back and the verdict it must carry.
    async fn one(&self, i: u64) -> (Outcome, bool) {
        let n = self.requests.len().max(1);
        let Some(prepared) = self.requests.get(usize::try_from(i).unwrap_or(0) % n) else {
            return (Outcome::Error("no request prepared".to_owned()), true);
        };
        let call = async {
            match &self.endpoint {
                Endpoint::Coordinator {
                    clients,
                    urls,
                    authorization,
                } => {
                    let i = usize::try_from(i).unwrap_or(0);
                    // Round robin over the replicas; the next client after each full round, so
                    // that every client (connection) reaches every replica.
                    let replicas = urls.len().max(1);
                    let (Some(url), Some(client)) = (
                        urls.get(i % replicas),
                        clients.get((i / replicas) % clients.len().max(1)),
                    ) else {
                        return Err("no client".to_owned());
                    };
                    coordinator_call(client, url, authorization, prepared).await
                }
                Endpoint::Direct {
                    client,
                    perspectives,
                    quorum,
                } => direct_fanout(client, perspectives, *quorum, prepared).await,
            }
        };
        let outcome = match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
            Ok(Ok(o)) => o,
            Ok(Err(kind)) => Outcome::Error(kind),
            Err(_) => Outcome::Error("timeout (bench)".to_owned()),
        };
        (outcome, prepared.expect_valid)
    }
}

async fn coordinator_call(
    client: &reqwest::Client,
    url: &reqwest::Url,
    authorization: &HeaderValue,
    prepared: &Prepared,
) -> Result<Outcome, String> {
    let response = client
        .post(url.clone())
        .header(AUTHORIZATION, authorization.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(prepared.body.clone())
        .send()
        .await
        .map_err(|e| transport_kind(&e))?;
    let status = response.status().as_u16();
    match status {
        200 => {
            let timing = response
                .headers()
                .get("server-timing")
                .and_then(|v| v.to_str().ok())
                .and_then(scenario::parse_server_timing);
            let body = response.bytes().await.map_err(|e| transport_kind(&e))?;
            let received_ns = wall_ns();
            let reply = scenario::parse_reply(&body)?;
            Ok(Outcome::Answer {
                valid: reply.is_valid,
                incomplete: reply.incomplete,
                timing,
                last_check_ns: reply.last_check_ns,
                received_ns,
            })
        }
        503 => {
            let retry_after = response.headers().contains_key(RETRY_AFTER);
            // Read the body so the connection can be reused.
            let _ = response.bytes().await;
            Ok(Outcome::Shed { retry_after })
        }
        other => {
            let _ = response.bytes().await;
            Err(format!("HTTP {other}"))
        }
    }
}

async fn direct_fanout(
    client: &reqwest::Client,
    perspectives: &[DirectTarget],
    quorum: usize,
    prepared: &Prepared,
) -> Result<Outcome, String> {
    let calls = perspectives.iter().map(|p| async move {
        let url = if prepared.caa { &p.caa } else { &p.dcv };
        let response = client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(prepared.perspective_body.clone())
            .send()
            .await
            .map_err(|e| transport_kind(&e))?;
        let status = response.status().as_u16();
        let named = response
            .headers()
            .get(PERSPECTIVE_HEADER)
            .is_some_and(|v| v.as_bytes() == p.code.as_bytes());
        let body = response.bytes().await.map_err(|e| transport_kind(&e))?;
        if status != 200 {
            return Err(format!("perspective HTTP {status}"));
        }
        if !named {
            return Err("perspective identity header missing".to_owned());
        }
        scenario::parse_check_passed(&body)
    });
    let mut passes = 0;
    for answer in join_all(calls).await {
        if answer? {
            passes += 1;
        }
    }
    Ok(Outcome::Answer {
        valid: passes >= quorum,
        incomplete: Vec::new(),
        timing: None,
        last_check_ns: None,
        received_ns: wall_ns(),
    })
}

fn transport_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "body".to_owned()
    } else {
        // The innermost cause says what went wrong (e.g. an HTTP/2 stream or connection error).
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        format!("transport ({cause})")
    }
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Sends `schedule.count()` requests at `schedule.rate_per_s()`, at most `max_in_flight` at
/// once.
pub async fn open_loop(load: Arc<Load>, schedule: Schedule, max_in_flight: usize) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let permits = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    // A little slack so the first requests are not late by construction.
    let start = Instant::now() + Duration::from_millis(5);
    let mut next = 0;
    while next < schedule.count() {
        let due_at = start + schedule.offset(next);
        let now = Instant::now();
        if due_at > now {
            tokio::time::sleep_until(due_at).await;
        }
        // Every request due by now goes out (the timer wakes about once a millisecond).
        let due = schedule.due_by(Instant::now().saturating_duration_since(start));
        while next < due {
            let i = next;
            next += 1;
            let intended = start + schedule.offset(i);
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                lock(&tally).not_sent += 1;
                continue;
            };
            let load = Arc::clone(&load);
            let tally = Arc::clone(&tally);
            tasks.spawn(async move {
                let connection = load.connection().await;
                let sent = Instant::now();
                let (outcome, expect_valid) = load.one(i).await;
                let done = Instant::now();
                drop(connection);
                lock(&tally).record(intended, sent, done, outcome, expect_valid);
                drop(permit);
            });
        }
        while tasks.try_join_next().is_some() {}
    }
    drain(&mut tasks, &tally, Instant::now() + DRAIN_TIMEOUT).await;
    let mut t = take(tally);
    t.elapsed = start.elapsed();
    t
}

/// `concurrency` workers for `duration`, each sending back to back.
pub async fn closed_loop(load: Arc<Load>, concurrency: usize, duration: Duration) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let load = Arc::clone(&load);
        let tally = Arc::clone(&tally);
        let counter = Arc::clone(&counter);
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= MAX_CLOSED_LOOP_REQUESTS {
                    break;
                }
                let asked = Instant::now();
                let connection = load.connection().await;
                let sent = Instant::now();
                let (outcome, expect_valid) = load.one(i).await;
                let done = Instant::now();
                drop(connection);
                lock(&tally).record(asked, sent, done, outcome, expect_valid);
            }
        });
    }
    // The workers stop sending at `deadline`; their last answers get the drain's time after it.
    drain(&mut tasks, &tally, deadline + DRAIN_TIMEOUT).await;
    let mut t = take(tally);
    t.elapsed = start.elapsed();
    t
}

/// Waits for `tasks` until `deadline`; those still running then are aborted and counted.
async fn drain(tasks: &mut JoinSet<()>, tally: &Mutex<Tally>, deadline: Instant) {
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            () = tokio::time::sleep_until(deadline) => {
                let left = u64::try_from(tasks.len()).unwrap_or(u64::MAX);
                tasks.abort_all();
                *lock(tally).errors.entry("unfinished at drain".to_owned()).or_default() += left;
                break;
            }
        }
    }
}

fn lock(t: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

fn take(t: Arc<Mutex<Tally>>) -> Tally {
    std::mem::take(&mut *lock(&t))
}

/// A process whose memory is sampled.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Its name in the report, e.g. `coordinator` or `perspective us-east`.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Whether the bench started it (only then is its peak reset per phase).
    pub owned: bool,
    /// Count the CPU of its direct children too (NSD answers from forked servers).
    pub with_children: bool,
}

/// The memory of one process over a phase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MemoryReport {
    /// The process.
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// Peak RSS in the phase (`VmHWM` after a reset at the phase start, or the highest sampled
    /// `VmRSS` when the reset is not possible), KiB.
    pub peak_kib: u64,
    /// `VmRSS` when a quarter of the phase had passed, KiB.
    pub rss_quarter_kib: u64,
    /// `VmRSS` at the end of the phase, KiB.
    pub rss_end_kib: u64,
    /// Whether the peak is this phase's own (the reset worked).
    pub peak_is_per_phase: bool,
    /// CPU time (user + system) used during the phase, milliseconds.
    pub cpu_ms: u64,
}

/// Connections observed during a phase.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ConnectionReport {
    /// Connections to the perspectives' ports made during the phase (any state, `TIME_WAIT`
    /// included, so one closed within the phase still counts).
    pub perspective_connections_seen: usize,
    /// Connections to the perspectives established at the end of the phase (older ones too).
    pub perspective_connections_established_end: usize,
    /// Distinct connections seen before the phase began (they are excluded above).
    pub preexisting: usize,
    /// Client connections to the coordinator established at the end of the phase (`None` when
    /// the coordinator is not on this machine).
    pub coordinator_connections_end: Option<usize>,
    /// Highest number of entries in the kernel's connection-tracking table during the phase,
    /// and its size (`None` without netfilter).
    pub conntrack_peak: Option<(u64, u64)>,
}

/// Samples memory and sockets while a phase runs.
#[derive(Debug)]
pub struct Monitor {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<(Vec<MemoryReport>, ConnectionReport)>,
}

/// How often the monitor samples.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// The longest a monitor runs, whatever happens.
const MONITOR_LIMIT: Duration = Duration::from_secs(3600);

impl Monitor {
    /// Starts sampling `watched` and the connections to `perspective_ports` (and at the end to
    /// `coordinator_ports`); `expected` is the phase's planned duration (for the quarter-time
    /// sample).
    pub fn start(
        watched: Vec<Watched>,
        perspective_ports: Vec<u16>,
        coordinator_ports: Option<Vec<u16>>,
        expected: Duration,
    ) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = tokio::spawn(async move {
            let per_phase: Vec<bool> = watched
                .iter()
                .map(|w| w.owned && procfs::reset_peak(w.pid))
                .collect();
            let before = procfs::accepted_connections(&procfs::tcp_sockets(), &perspective_ports);
            let cpu_before: Vec<Option<u64>> = watched
                .iter()
                .map(|w| procfs::cpu_ticks(w.pid, w.with_children))
                .collect();
            let mut peaks = vec![0_u64; watched.len()];
            let mut quarter = vec![None; watched.len()];
            let mut last = vec![0_u64; watched.len()];
            let start = Instant::now();
            let mut conntrack_peak: Option<(u64, u64)> = None;
            loop {
                let done = flag.load(Ordering::Relaxed) || start.elapsed() > MONITOR_LIMIT;
                if let Some((count, max)) = procfs::conntrack() {
                    let peak = conntrack_peak.map_or(count, |(c, _)| c.max(count));
                    conntrack_peak = Some((peak, max));
                }
                for (i, w) in watched.iter().enumerate() {
                    if let Some(m) = procfs::memory(w.pid) {
                        peaks[i] = peaks[i].max(m.rss_kib);
                        if per_phase[i] {
                            peaks[i] = peaks[i].max(m.hwm_kib);
                        }
                        if quarter[i].is_none() && start.elapsed() >= expected / 4 {
                            quarter[i] = Some(m.rss_kib);
                        }
                        last[i] = m.rss_kib;
                    }
                }
                if done {
                    break;
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            // /proc/net/tcp walks the kernel's whole socket table (milliseconds of the bench's
            // CPU per read under load): read it only at both ends of the phase.
            let sockets = procfs::tcp_sockets();
            let seen: Vec<_> = procfs::accepted_connections(&sockets, &perspective_ports)
                .difference(&before)
                .copied()
                .collect();
            let established = |ports: &[u16]| {
                sockets
                    .iter()
                    .filter(|s| s.state == procfs::TCP_ESTABLISHED && ports.contains(&s.local_port))
                    .count()
            };
            let memory = watched
                .iter()
                .enumerate()
                .map(|(i, w)| MemoryReport {
                    cpu_ms: match (cpu_before[i], procfs::cpu_ticks(w.pid, w.with_children)) {
                        (Some(a), Some(b)) => b.saturating_sub(a) * 1000 / procfs::TICKS_PER_S,
                        _ => 0,
                    },
                    name: w.name.clone(),
                    pid: w.pid,
                    peak_kib: peaks[i],
                    rss_quarter_kib: quarter[i].unwrap_or(last[i]),
                    rss_end_kib: last[i],
                    peak_is_per_phase: per_phase[i],
                })
                .collect();
            (
                memory,
                ConnectionReport {
                    perspective_connections_seen: seen.len(),
                    perspective_connections_established_end: established(&perspective_ports),
                    coordinator_connections_end: coordinator_ports.map(|p| established(&p)),
                    preexisting: before.len(),
                    conntrack_peak,
                },
            )
        });
        Monitor { stop, handle }
    }

    /// Takes a last sample and returns what was seen.
    pub async fn finish(self) -> (Vec<MemoryReport>, ConnectionReport) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.unwrap_or_else(|_| {
            (
                Vec::new(),
                ConnectionReport {
                    perspective_connections_seen: 0,
                    perspective_connections_established_end: 0,
                    coordinator_connections_end: None,
                    preexisting: 0,
                    conntrack_peak: None,
                },
            )
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::post;

    use crate::scenario::{Check, requests};

    /// A stand-in coordinator on loopback: answers like the real one would for the bench's
    /// zone (or, with `lie`, says "valid" to everything), and sheds every `shed_every`-th
    /// request with 503.
    async fn fake(lie: bool, shed_every: u64) -> (reqwest::Url, tokio::task::JoinHandle<()>) {
        let counter = Arc::new(AtomicU64::new(0));
        let router = Router::new().route(
            "/mpic",
            post(move |body: bytes::Bytes| {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                async move {
                    if shed_every > 0 && n.is_multiple_of(shed_every) {
                        return (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", "1")],
                            "{\"error\":\"overloaded\"}".to_owned(),
                        )
                            .into_response();
                    }
                    let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let target = request["domain_or_ip_target"].as_str().unwrap_or("");
                    let valid = lie || !target.contains("deny");
                    let reply = serde_json::json!({"is_valid": valid, "perspectives": [
                        {"check_response": {"check_completed": true, "timestamp_ns": 1}}]});
                    (
                        [("server-timing", "total;dur=2.5, perspectives;dur=2")],
                        reply.to_string(),
                    )
                        .into_response()
                }
            }),
        );
        serve(router).await
    }

    /// Serves `router` on loopback; returns its `/mpic` URL and the server's task.
    async fn serve(router: Router) -> (reqwest::Url, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (
            reqwest::Url::parse(&format!("http://{addr}/mpic")).unwrap(),
            task,
        )
    }

    fn load(url: reqwest::Url) -> Arc<Load> {
        mpic_common::tls::install_crypto_provider();
        Arc::new(Load {
            endpoint: Endpoint::Coordinator {
                clients: vec![reqwest::Client::builder().no_proxy().build().unwrap()],
                urls: vec![url],
                authorization: HeaderValue::from_static("Bearer k"),
            },
            requests: requests(Check::Caa),
            connections: None,
        })
    }

    #[tokio::test]
    async fn open_loop_counts_answers_sheds_and_server_timing() {
        let (url, server) = fake(false, 7).await;
        let t = open_loop(
            load(url),
            Schedule::new(200, Duration::from_millis(500)),
            1000,
        )
        .await;
        server.abort();
        assert_eq!(t.sent, 100);
        assert_eq!(t.ok + t.shed, 100, "{:?}", t.errors);
        assert_eq!(t.shed, 14, "every 7th is shed");
        assert_eq!(t.shed_without_retry_after, 0);
        assert_eq!((t.wrong, t.not_sent, t.error_count()), (0, 0, 0));
        assert_eq!(t.latency.count(), t.ok);
        assert_eq!(t.coordinator_added.count(), t.ok);
        assert_eq!(t.coordinator_added.quantile_us(0.5), 500);
        assert!(
            t.elapsed >= Duration::from_millis(495),
            "the schedule paces: {:?}",
            t.elapsed
        );
    }

    #[tokio::test]
    async fn a_fleet_that_says_valid_to_everything_is_caught() {
        let (url, server) = fake(true, 0).await;
        let t = closed_loop(load(url), 4, Duration::from_millis(300)).await;
        server.abort();
        assert!(t.sent >= 10, "sent {}", t.sent);
        assert_eq!(t.ok, t.sent);
        // Requests 0..n in order; every tenth expects "invalid".
        assert_eq!(t.wrong, t.sent / 10, "sent {}", t.sent);
        assert_eq!(t.false_valid, t.wrong);
    }

    #[tokio::test]
    async fn bounded_connections_queue_in_the_client_and_the_wait_is_lag() {
        // A server that takes 50 ms per request and notes how many it holds at once.
        let holding = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let (h, m) = (Arc::clone(&holding), Arc::clone(&most));
        let router = Router::new().route(
            "/mpic",
            post(move || {
                let (h, m) = (Arc::clone(&h), Arc::clone(&m));
                async move {
                    m.fetch_max(h.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    h.fetch_sub(1, Ordering::SeqCst);
                    r#"{"is_valid": true, "perspectives": []}"#
                }
            }),
        );
        let (url, server) = serve(router).await;
        let mut bounded = Arc::into_inner(load(url)).unwrap();
        bounded.connections = Some(Arc::new(Semaphore::new(2)));
        // 20 requests due within 200 ms; two at a time, 50 ms each, take 500 ms.
        let t = open_loop(
            Arc::new(bounded),
            Schedule::new(100, Duration::from_millis(200)),
            1000,
        )
        .await;
        server.abort();
        assert_eq!(
            (t.sent, t.not_sent, t.error_count()),
            (20, 0, 0),
            "{:?}",
            t.errors
        );
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "never more than two at once"
        );
        assert!(
            t.send_lag.quantile_us(1.0) >= 250_000,
            "the last ones waited for a connection: {} us",
            t.send_lag.quantile_us(1.0)
        );
        assert!(t.latency.quantile_us(1.0) >= t.send_lag.quantile_us(1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn the_drain_waits_until_its_deadline_and_counts_what_is_left() {
        // Work that ends 40 s from now: a closed loop longer than the drain's own time.
        let spawn = || {
            let mut tasks = JoinSet::new();
            for _ in 0..3 {
                tasks.spawn(tokio::time::sleep(Duration::from_secs(40)));
            }
            tasks
        };
        let tally = Mutex::new(Tally::default());
        drain(
            &mut spawn(),
            &tally,
            Instant::now() + Duration::from_secs(45),
        )
        .await;
        assert_eq!(lock(&tally).error_count(), 0);
        drain(
            &mut spawn(),
            &tally,
            Instant::now() + Duration::from_secs(35),
        )
        .await;
        assert_eq!(lock(&tally).errors.get("unfinished at drain"), Some(&3));
    }

    #[tokio::test]
    async fn the_in_flight_cap_counts_what_could_not_be_sent() {
        // Nothing listens: every request fails to connect, quickly.
        let url = reqwest::Url::parse("http://127.0.0.1:9/mpic").unwrap();
        let t = open_loop(load(url), Schedule::new(100, Duration::from_millis(200)), 1).await;
        assert_eq!(t.sent + t.not_sent, 20);
        assert_eq!(t.error_count(), t.sent);
        assert_eq!(t.ok, 0);
    }
}
