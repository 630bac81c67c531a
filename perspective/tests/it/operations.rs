//! What operators and probes see of a perspective: readiness follows the resolver, is kept
//! for a few seconds so probes cannot load the resolver, and says why it fails; the
//! operations router serves the health endpoints, `/metrics` and `/configz` without the
//! deployment's file paths.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mpic_perspective::config::TlsConfig;
use mpic_perspective::service::AppState;
use mpic_tests::dns::{DnsServer, Zone};
use tower::ServiceExt as _;

use crate::support::plain_config;

async fn get(app: &axum::Router, path: &str) -> (StatusCode, String) {
    let r = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn readiness_is_kept_between_probes() {
    let server = DnsServer::start(Zone::new()).await.unwrap();
    let app = mpic_common::operations::router(Arc::new(AppState::new(&plain_config(
        "p1",
        server.addr(),
    ))));
    for _ in 0..20 {
        let (status, body) = get(&app, "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, r#"{"status":"ready"}"#);
    }
    let probes = server
        .queries()
        .iter()
        .filter(|q| q.name == "localhost")
        .count();
    assert_eq!(
        probes, 1,
        "twenty readiness probes, one query to the resolver"
    );
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(metrics.contains("mpic_ready 1"), "{metrics}");
    assert!(
        metrics.contains(r#"mpic_resolver_probes_total{outcome="answered"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_silent_resolver_makes_the_perspective_not_ready_and_says_why() {
    // A UDP port nobody answers on.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let app = mpic_common::operations::router(Arc::new(AppState::new(&plain_config(
        "p1",
        silent.local_addr().unwrap(),
    ))));
    let (status, body) = get(&app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "not-ready");
    assert!(v["reason"].as_str().unwrap().contains("resolver"), "{body}");
    let (_, metrics) = get(&app, "/metrics").await;
    assert!(metrics.contains("mpic_ready 0"), "{metrics}");
    // Liveness is not readiness.
    assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn configz_shows_no_file_paths() {
    let server = DnsServer::start(Zone::new()).await.unwrap();
    let mut config = plain_config("p1", server.addr());
    config.danger_plain_http = false;
    config.tls = Some(TlsConfig {
        certificate: "/etc/mpic/tls/perspective.crt".into(),
        private_key: "/etc/mpic/tls/perspective.key".into(),
        client_ca: "/etc/mpic/tls/ca.crt".into(),
    });
    config.web.https_ca_file = Some("/etc/ssl/certs/roots.pem".into());
    let app = mpic_common::operations::router(Arc::new(AppState::new(&config)));
    let (status, body) = get(&app, "/configz").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("/etc/"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["config"]["tls"], true);
    assert_eq!(v["config"]["web"]["https_ca_file"], true);
    assert_eq!(v["config"]["perspective"]["code"], "p1");
    assert_eq!(
        get(&app, "/caa").await.0,
        StatusCode::NOT_FOUND,
        "no checks here"
    );
}
