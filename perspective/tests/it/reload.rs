//! A perspective's certificate, key and client CA reload while it serves: its TLS files live
//! in a directory updated as Kubernetes updates a mounted Secret (`..data` swapped), and each
//! new handshake sees the material in use — the new pair after a rotation, either CA while the
//! bundle holds both, the old pair still when the new key does not match.

use std::net::SocketAddr;
use std::path::Path;

use mpic_common::devcerts::{DevPki, DevPkiFiles};
use mpic_perspective::config::TlsConfig;
use mpic_tests::dns::{DnsServer, Zone};
use mpic_tests::process::wait_for_metric;
use mpic_tests::temp::TempDir;
use mpic_tests::tls_probe::probe;
use mpic_tests::volume::SecretVolume;

use crate::support::plain_config;

/// A development PKI for perspective `p1`, valid until 1 January of `year`, written to `dir`.
fn pki(dir: &Path, year: i32) -> (DevPki, DevPkiFiles) {
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let pki = DevPki::generate_until(&[("p1".to_owned(), names)], year).unwrap();
    let files = pki.write(dir).unwrap();
    (pki, files)
}

/// `tls.crt`, `tls.key` and `ca.crt` of a perspective's Secret.
fn secret<'a>(pki: &'a DevPki, key_of: &'a DevPki, ca: &'a str) -> [(&'a str, &'a [u8]); 3] {
    [
        ("tls.crt", pki.perspectives[0].1.cert_pem.as_bytes()),
        ("tls.key", key_of.perspectives[0].1.key_pem.as_bytes()),
        ("ca.crt", ca.as_bytes()),
    ]
}

/// Opens a connection as the coordinator of `client` trusting `trust` and asks `/healthz`:
/// the perspective's certificate, or why it failed.
async fn handshake(
    addr: SocketAddr,
    client: &DevPkiFiles,
    trust: &Path,
) -> Result<Vec<u8>, String> {
    let config = mpic_common::tls::mutual_client_config(
        &client.coordinator_cert,
        &client.coordinator_key,
        trust,
    )
    .unwrap();
    let probed = probe(addr, config, "/healthz").await?;
    assert_eq!(probed.status, "HTTP/1.1 200 OK");
    Ok(probed.certificate)
}

fn der(pki: &DevPki) -> Vec<u8> {
    mpic_common::reload::tls::certificates(pki.perspectives[0].1.cert_pem.as_bytes())
        .unwrap()
        .0[0]
        .to_vec()
}

#[tokio::test]
async fn a_rotation_through_a_kubernetes_secret_reaches_new_handshakes() {
    mpic_common::tls::install_crypto_provider();
    let dir = TempDir::new();
    let (old, old_files) = pki(&dir.0.join("old"), 2040);
    let (new, new_files) = pki(&dir.0.join("new"), 2041);
    let both = format!("{}{}", old.ca_pem, new.ca_pem);
    let trust_both = dir.0.join("both.crt");
    std::fs::write(&trust_both, &both).unwrap();
    let mut volume =
        SecretVolume::create(&dir.0.join("secret"), &secret(&old, &old, &old.ca_pem)).unwrap();

    let resolver = DnsServer::start(Zone::new()).await.unwrap();
    let mut config = plain_config("p1", resolver.addr());
    config.danger_plain_http = false;
    config.ops_listen = Some("127.0.0.1:0".parse().unwrap());
    config.reload.interval_ms = 100;
    config.tls = Some(TlsConfig {
        certificate: volume.path("tls.crt"),
        private_key: volume.path("tls.key"),
        client_ca: volume.path("ca.crt"),
    });
    let perspective = mpic_perspective::Perspective::bind(&config).await.unwrap();
    let (addr, ops) = (
        perspective.local_addr().unwrap(),
        perspective.ops_addr().unwrap(),
    );
    tokio::spawn(perspective.serve(std::future::pending()));
    let metrics = format!("http://{ops}/metrics");

    assert_eq!(
        handshake(addr, &old_files, &old_files.ca).await,
        Ok(der(&old))
    );
    let refused = handshake(addr, &new_files, &trust_both).await;
    assert!(
        refused.is_err(),
        "a client of the new CA before the bundle has it"
    );

    // The new pair and a bundle of both CAs, swapped in at once.
    volume.update(&secret(&new, &new, &both)).unwrap();
    wait_for_metric(
        &metrics,
        r#"mpic_tls_reload_applied_total{role="server"}"#,
        1,
    )
    .await;
    let text = wait_for_metric(
        &metrics,
        r#"mpic_tls_reload_applied_total{role="client_ca"}"#,
        1,
    )
    .await;
    assert_eq!(
        handshake(addr, &old_files, &trust_both).await,
        Ok(der(&new))
    );
    assert_eq!(
        handshake(addr, &new_files, &new_files.ca).await,
        Ok(der(&new))
    );
    assert!(
        text.contains(r#"mpic_tls_certificate_not_after_seconds{role="server",subject="CN=p1""#)
            && text.contains("} 2240611200\n"),
        "the new certificate's notAfter (2041-01-01): {text}"
    );

    // A key that does not match its certificate is refused; the pair in use stays.
    volume.update(&secret(&new, &old, &both)).unwrap();
    wait_for_metric(
        &metrics,
        r#"mpic_tls_reload_refused_total{role="server"}"#,
        1,
    )
    .await;
    assert_eq!(
        handshake(addr, &new_files, &new_files.ca).await,
        Ok(der(&new))
    );

    // The old CA leaves the bundle: its clients are refused from the next handshake on.
    volume.update(&secret(&new, &new, &new.ca_pem)).unwrap();
    wait_for_metric(
        &metrics,
        r#"mpic_tls_reload_applied_total{role="client_ca"}"#,
        2,
    )
    .await;
    assert!(handshake(addr, &old_files, &trust_both).await.is_err());
    assert_eq!(
        handshake(addr, &new_files, &new_files.ca).await,
        Ok(der(&new))
    );
}
