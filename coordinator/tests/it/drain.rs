//! A perspective's rolling restart costs no call (RFC 9113 6.8, architecture.md
//! "Operations"): while the coordinator keeps sending checks, one perspective instance drains
//! (GOAWAY, its calls in flight finish) and a new one takes the new connections, as behind a
//! Kubernetes Service. Every request still gets every perspective's pass: the streams the
//! draining instance did not take are sent again on a new connection, none fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use mpic_coordinator::Coordinator;
use mpic_coordinator::config::PerspectiveEntry;
use mpic_perspective::Perspective;
use mpic_tests::relay::Relay;
use serde_json::{Value, json};

use crate::support::{
    API_KEY, FleetSpec, PLACES, TempDir, certificate_of, coordinator_config, perspective_config,
    pki, secrets,
};

/// What the services logged, as JSON lines.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// How long each byte between the coordinator and the draining perspective takes, each way:
/// the coordinator opens streams there after the perspective has said GOAWAY.
const LATENCY: Duration = Duration::from_millis(20);
/// How long the resolver takes to answer.
const RESOLVER_LATENCY: Duration = Duration::from_millis(150);
/// How long the draining instance's own resolver takes to answer: the test sees a lookup
/// arrive there and sends the SIGTERM while that check waits for its answer.
const DRAINING_RESOLVER_LATENCY: Duration = Duration::from_millis(600);
/// Requests in flight at once.
const CONCURRENCY: usize = 12;

// One thread: every service of the test runs on it, so its log lines reach `Logs`.
#[tokio::test]
async fn a_perspective_draining_under_load_costs_no_call() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    mpic_common::tls::install_crypto_provider();
    let resolver = |latency| async move {
        let zone = mpic_tests::dns::Zone::new().caa("example.com", 0, "issue", "ca.example");
        mpic_tests::dns::DnsServer::start(zone.latency(latency))
            .await
            .unwrap()
    };
    let dns = resolver(RESOLVER_LATENCY).await;
    let draining_dns = resolver(DRAINING_RESOLVER_LATENCY).await;
    let dir = TempDir::new();
    let files = pki(&dir.0.join("pki"));
    let tls_of = |code: &str| {
        let (cert, key) = certificate_of(&files, code);
        (cert, key, files.ca.clone())
    };

    // Three perspectives; the first is reached through the relay, where its old instance
    // drains and its new one takes over.
    let mut entries = Vec::new();
    let mut old = None;
    let mut relay = None;
    for (i, (code, rir, latitude, longitude)) in PLACES[..3].iter().copied().enumerate() {
        let resolver = if i == 0 {
            draining_dns.addr()
        } else {
            dns.addr()
        };
        let mut config = perspective_config(code, rir, tls_of(code), resolver);
        config.resolver.timeout_ms = 3_000;
        // No pre-stop delay: the relay has already stopped sending it new connections, and
        // the drain begins the moment the test says so, while its checks are in flight.
        config.shutdown.pre_stop_delay_ms = 0;
        let p = Perspective::bind(&config).await.unwrap();
        let addr = p.local_addr().unwrap();
        let url = if i == 0 {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(p.serve(async move {
                let _ = stopped.await;
            }));
            let r = Relay::start(addr, LATENCY).await.unwrap();
            let url = format!("https://127.0.0.1:{}", r.addr().port());
            old = Some((addr, stop, serving));
            relay = Some(r);
            url
        } else {
            tokio::spawn(p.serve(std::future::pending()));
            format!("https://127.0.0.1:{}", addr.port())
        };
        entries.push(PerspectiveEntry {
            code: code.to_owned(),
            name: code.to_owned(),
            rir,
            latitude,
            longitude,
            url,
            too_close_codes: Vec::new(),
            rtt_ms: None,
        });
    }
    let (old_addr, stop_old, old_serving) = old.unwrap();
    let relay = relay.unwrap();
    let (draining_code, draining_rir, ..) = PLACES[0];

    let mut spec = FleetSpec::new(vec![], dns.addr());
    spec.default_perspective_count = 3;
    // Three perspectives, below today's BR minimum: a test, not a fleet.
    spec.policy = mpic_coordinator::policy::PolicyMode::Warn;
    // Deadlines far above the calls' time, so that a stalled machine cannot fail a call.
    spec.timeouts.perspective_call_ms = 20_000;
    spec.timeouts.request_ms = 30_000;
    // Every call is waited for (none is cancelled as a straggler once two have passed), so
    // that 3/3 in every answer means no call failed.
    spec.timeouts.straggler_grace_ms = spec.timeouts.perspective_call_ms;
    let coordinator = Coordinator::bind(&coordinator_config(entries, &files, &spec), secrets())
        .await
        .unwrap();
    let url = format!("http://{}/mpic", coordinator.local_addr().unwrap());
    tokio::spawn(coordinator.serve(std::future::pending()));

    // The load: CONCURRENCY clients, each sending the next request once it has its answer.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let answers: Arc<Mutex<Vec<(StatusCode, Value)>>> = Arc::default();
    let clients: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let (client, url, running, answers) = (
                client.clone(),
                url.clone(),
                running.clone(),
                answers.clone(),
            );
            tokio::spawn(async move {
                // Spread over one request's time, so that the perspective always has some.
                let step = (DRAINING_RESOLVER_LATENCY + 2 * LATENCY) / CONCURRENCY as u32;
                tokio::time::sleep(step * i as u32).await;
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = client
                        .post(&url)
                        .bearer_auth(API_KEY)
                        .json(&json!({"domain_or_ip_target": "example.com"}))
                        .send()
                        .await
                        .unwrap();
                    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                    let body: Value = r.json().await.unwrap();
                    answers.lock().unwrap().push((status, body));
                }
            })
        })
        .collect();

    // Every client has had answers before the drain.
    wait_for_answers(&answers, CONCURRENCY).await;
    // The rolling restart: a new instance, new connections to it, then the old one's SIGTERM.
    let mut config = perspective_config(
        draining_code,
        draining_rir,
        tls_of(draining_code),
        dns.addr(),
    );
    config.shutdown.pre_stop_delay_ms = 0;
    let new = Perspective::bind(&config).await.unwrap();
    let new_addr = new.local_addr().unwrap();
    tokio::spawn(new.serve(std::future::pending()));
    relay.set_backend(new_addr);
    // The SIGTERM comes while the old instance has a check in flight: a lookup of it has
    // reached its resolver, which answers DRAINING_RESOLVER_LATENCY later. Nothing else runs
    // between seeing the lookup and the signal (one thread, no await), and the drain is woken
    // before any answer can be, so that check is still in flight when the drain begins,
    // however the clients have bunched up on a stalled machine.
    draining_dns.clear_queries();
    while !draining_dns
        .queries()
        .iter()
        .any(|q| q.name == "example.com")
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop_old.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), old_serving)
        .await
        .expect("the old instance drains within its deadline")
        .unwrap()
        .unwrap();
    // As many answers again after the drain: the new instance carries the load.
    let after_drain = answers.lock().unwrap().len() + 2 * CONCURRENCY;
    wait_for_answers(&answers, after_drain).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    let answers = answers.lock().unwrap();
    for (status, body) in answers.iter() {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["quorum_result"], "3/3", "no call failed: {body}");
    }
    assert_eq!(relay.connections_to(old_addr), 1);
    assert!(
        relay.connections_to(new_addr) >= 1,
        "the calls after the GOAWAY went to the new instance"
    );
    // The old instance's drain, as logged: calls were in flight, all finished, none cut.
    let lines = logs.lines();
    let draining = lines
        .iter()
        .find(|l| l["message"] == "draining" && l["listener"] == "api")
        .unwrap_or_else(|| panic!("no draining line in {lines:?}"));
    let warnings: Vec<&Value> = lines.iter().filter(|l| l["level"] != "INFO").collect();
    assert!(
        draining["requests_in_flight"].as_u64().unwrap() > 0,
        "calls were in flight when the drain began: {draining}; warnings: {warnings:?}"
    );
    let drained = lines
        .iter()
        .find(|l| l["message"] == "drained" && l["listener"] == "api")
        .unwrap_or_else(|| panic!("no drained line in {lines:?}"));
    assert_eq!(drained["requests_cut"], 0, "{drained}");
    assert!(
        drained["requests_finished"].as_u64().unwrap() > 0,
        "{drained}"
    );
}

/// Waits until `answers` holds at least `n`, for at most a minute.
async fn wait_for_answers(answers: &Mutex<Vec<(StatusCode, Value)>>, n: usize) {
    let waiting = async {
        while answers.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .unwrap_or_else(|_| panic!("fewer than {n} answers within a minute"));
}
