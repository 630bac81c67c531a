//! One HTTP/1.1 request over a fresh TLS connection, telling which certificate the server
//! presented: for tests that rotate a server's certificate or the CA it trusts.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What a [`probe`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The server's end-entity certificate, DER.
    pub certificate: Vec<u8>,
    /// The response's status line, e.g. `HTTP/1.1 200 OK`.
    pub status: String,
}

/// Connects to `addr` as `localhost` with `config` (its ALPN set to HTTP/1.1), sends
/// `GET path` and reads the answer. An `Err` says why it failed; in TLS 1.3 a client
/// certificate the server refuses shows only on the first read, so it is an `Err` too.
pub async fn probe(
    addr: SocketAddr,
    mut config: rustls::ClientConfig,
    path: &str,
) -> Result<Probed, String> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&answer);
    Ok(Probed {
        certificate,
        status: answer.lines().next().unwrap_or_default().to_owned(),
    })
}
