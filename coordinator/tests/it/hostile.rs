//! Hostile clients against the real `mpic-coordinator` binary: a flood of connections that
//! send a few bytes of a request head and hold them must not stop the service (issue:
//! "no unauthenticated denial of service").

use std::time::{Duration, Instant};

use mpic_tests::fixtures::free_port;
use mpic_tests::process::{Server, workspace_bin};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{API_KEY, FleetSpec, SECRET, TempDir, all_real, dns, fleet, get_text};

/// Connections the coordinator under attack may hold.
const MAX_OPEN: usize = 512;
/// Bytes of an unfinished request head each attacking connection sends: most of the
/// header bound, so that each makes the server buffer as much as it ever will.
const HEAD_BYTES: usize = 12 * 1024;
/// Its header bound.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// `MAX_OPEN` connections holding unfinished heads, then more arriving all the time: a new
/// client's `/healthz` and an authenticated `POST /mpic` are still answered within a second,
/// on the API port and on the operations listener; the coordinator's memory grows by at most
/// `MAX_OPEN` × (header bound + 16 KiB); and every attacking connection is closed, displaced
/// by the clients or at the header timeout. (Measured here: 24 MiB idle, 38 MiB holding 512
/// heads of 12 KiB.)
#[tokio::test]
async fn a_connection_flood_cannot_stop_the_coordinator() {
    let dns = dns().await;
    let f = fleet(FleetSpec::new(all_real(4), dns.addr())).await;
    let dir = TempDir::new();
    let keys = dir.0.join("api-keys");
    std::fs::write(&keys, format!("{API_KEY}\n")).unwrap();
    let (port, ops_port) = (free_port(), free_port());
    let mut config = serde_json::to_value(&f.config).unwrap();
    config["listen"] = json!(format!("127.0.0.1:{port}"));
    config["ops_listen"] = json!(format!("127.0.0.1:{ops_port}"));
    config["api_keys"] = json!({"file": keys});
    config["hash_secret"] = json!({"env": "MPIC_HASH_SECRET"});
    // Four perspectives: below the BR minimum from 2026-12-15, and this process runs on the
    // real date.
    config["policy"] = json!("warn");
    config["connections"] = json!({
        "max_open": MAX_OPEN,
        "max_per_peer": MAX_OPEN,
        "header_read_timeout_ms": 4000,
        "max_header_bytes": MAX_HEADER_BYTES,
    });
    let path = dir.0.join("coordinator.yaml");
    std::fs::write(&path, config.to_string()).unwrap();
    let coordinator = Server::start(
        &workspace_bin("mpic-coordinator"),
        &["--config", path.to_str().unwrap()],
        &[("MPIC_HASH_SECRET", SECRET)],
        &dir.0.join("coordinator.log"),
    );
    let api = format!("http://127.0.0.1:{port}");
    let ops = format!("http://127.0.0.1:{ops_port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    coordinator
        .wait_healthy(&client, &format!("{api}/readyz"))
        .await;
    let check = json!({"check_type": "caa", "domain_or_ip_target": "example.com"});
    let (status, _) = post(&client, &api, &check).await;
    assert_eq!(status, 200);
    let before = coordinator.rss_kib().unwrap();

    // The flood: every slot taken by a connection that sent most of a head and holds it.
    let head = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: {}",
        "a".repeat(HEAD_BYTES)
    );
    let mut attackers = Vec::new();
    for _ in 0..MAX_OPEN {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        attackers.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = coordinator.rss_kib().unwrap();
    eprintln!(
        "coordinator RSS: {before} KiB idle, {during} KiB with {MAX_OPEN} connections holding unfinished heads"
    );
    // The bound `connections.max_open` documents, with 4 MiB for the allocator's own slack.
    let bound_kib = (MAX_OPEN * (MAX_HEADER_BYTES + 16 * 1024) / 1024) as u64 + 4096;
    assert!(
        during.saturating_sub(before) <= bound_kib,
        "RSS {before} KiB → {during} KiB with {MAX_OPEN} connections holding {HEAD_BYTES}-byte heads (bound +{bound_kib} KiB)"
    );

    // More keep coming while clients are served.
    let flooding = tokio::spawn(async move {
        let mut more = Vec::new();
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await {
                let _ = s.write_all(b"G").await;
                more.push(s);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    for round in 0..3 {
        for url in [
            format!("{api}/healthz"),
            format!("{ops}/healthz"),
            format!("{ops}/readyz"),
        ] {
            let started = Instant::now();
            let r = client.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "round {round}: {url}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "round {round}: {url} took {:?}",
                started.elapsed()
            );
        }
        let started = Instant::now();
        let (status, body) = post(&client, &api, &check).await;
        assert_eq!(status, 200, "round {round}: {body}");
        assert_eq!(body["is_valid"], true, "round {round}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "round {round}: POST /mpic took {:?}",
            started.elapsed()
        );
    }
    flooding.abort();

    // Every attacking connection ends: displaced by the clients above, or closed at the
    // header timeout.
    let deadline = Instant::now() + Duration::from_secs(8);
    for (i, stream) in attackers.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut buf = [0u8; 512];
        let ended = tokio::time::timeout(left, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "attacking connection {i} still open");
    }
    let metrics = get_text(&client, &format!("{ops}/metrics")).await;
    for reason in ["displaced", "header_timeout"] {
        assert!(
            metrics.contains(&format!(
                r#"mpic_connections_closed_total{{listener="api",reason="{reason}"}}"#
            )),
            "{reason}: {metrics}"
        );
    }
}

async fn post(
    client: &reqwest::Client,
    api: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = client
        .post(format!("{api}/mpic"))
        .bearer_auth(API_KEY)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// At least a hundred hostile requests against the coordinator: each answered with the
/// status the contract demands, naming what is wrong; none a 5xx, none a pass.
#[tokio::test]
async fn hostile_requests_are_refused_with_what_is_wrong_named() {
    let dns = dns().await;
    let f = fleet(FleetSpec::new(all_real(4), dns.addr())).await;
    let addr: std::net::SocketAddr = f
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mpic")
        .parse()
        .unwrap();
    let cases = mpic_tests::hostile::cases(mpic_tests::hostile::Service::Coordinator, API_KEY);
    assert!(cases.len() >= 100, "{} cases", cases.len());
    mpic_tests::hostile::run(addr, &cases).await;
}
