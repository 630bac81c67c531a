//! Serving an axum router over TCP, with TLS (rustls) or, behind a `danger_` setting, in
//! plain HTTP; graceful shutdown on a signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The most HTTP/2 streams a peer may have open on one connection (hyper's default, made
/// explicit: the coordinator limits its calls to a perspective to the same number, so that
/// calls beyond it wait as small futures rather than as queued HTTP/2 streams).
pub const MAX_CONCURRENT_STREAMS: u32 = 200;

/// Open connections a service holds unless configured otherwise. Each costs tens of KiB (an
/// HTTP/1 connection: hyper's 8 KiB read and 8 KiB write buffers and its state); the limit
/// bounds the memory a connection flood can take.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Serves `router` on `listener` until `shutdown` completes: over TLS when `tls` is given,
/// else plain HTTP/1.1 and h2c. At `max_connections` open connections no more are accepted
/// until one closes: later clients wait in the kernel's accept queue, costing us nothing.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        // A clone of the router is a reference count; the routes are built once.
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        // Plain and TLS connections are separate tasks, each sized for its own path (a TLS
        // handshake's state is several KiB that a plain connection need not carry).
        match acceptor {
            None => tokio::spawn(async move {
                let _slot = slot;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, sniff(&tcp)).await {
                    Ok(Some(protocol)) => run(protocol, tcp, service, watcher, peer).await,
                    Ok(None) => {}
                    Err(_) => {
                        tracing::debug!(peer = %peer, "no request within the handshake timeout")
                    }
                }
            }),
            Some(acceptor) => tokio::spawn(async move {
                let _slot = slot;
                let stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(peer = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                // RFC 9113 3.2: over TLS, HTTP/2 is what ALPN agreed on; anything else is
                // HTTP/1.1.
                let protocol = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    Protocol::Http2
                } else {
                    Protocol::Http1
                };
                run(protocol, stream, service, watcher, peer).await;
            }),
        };
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after the drain timeout");
        }
    }
    Ok(())
}

/// The HTTP version of a connection, known before hyper reads from it.
///
/// Deciding up front, rather than letting hyper-util's automatic builder read the first bytes
/// to find out, matters for memory: that builder hands hyper its 24 sniffed bytes as a first
/// read of their own, after which hyper's HTTP/1 read buffer outgrew its 8 KiB and doubled on
/// every connection. It also lets each connection hold only its own protocol's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// The HTTP/2 connection preface (RFC 9113 3.4), with which an h2c client with prior
/// knowledge opens.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Looks at a plain connection's first bytes without consuming them: the HTTP/2 preface
/// means h2c, anything else HTTP/1.1. `None` if the client closed before sending anything.
async fn sniff(tcp: &TcpStream) -> Option<Protocol> {
    let mut first = [0u8; 3];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = tcp.peek(&mut first).await.ok()?;
        if n == 0 {
            return None;
        }
        match classify(&first[..n]) {
            Some(protocol) => return Some(protocol),
            // "P" or "PR" so far: wait for the third byte ("PRI" is not an HTTP/1 method).
            // Peeking returns at once while those bytes sit there, so back off: a client
            // that stalls here costs a few wake-ups a second until the handshake timeout.
            None => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// The protocol the first bytes of a plain connection announce, if they already tell.
fn classify(seen: &[u8]) -> Option<Protocol> {
    if !PREFACE.starts_with(seen) {
        Some(Protocol::Http1)
    } else if seen.len() >= 3 {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Serves one accepted connection (TLS or plain) in `protocol` until it ends or shutdown
/// drains it.
async fn run<I>(
    protocol: Protocol,
    io: I,
    service: TowerToHyperService<Router>,
    watcher: hyper_util::server::graceful::Watcher,
    peer: std::net::SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let io = TokioIo::new(io);
    // Boxed, so that a connection's task holds its own protocol's state and no more.
    let served: std::pin::Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>> =
        match protocol {
            Protocol::Http1 => {
                Box::pin(watcher.watch(
                    hyper::server::conn::http1::Builder::new().serve_connection(io, service),
                ))
            }
            Protocol::Http2 => Box::pin(
                watcher.watch(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                        // The peers are authenticated (mutual TLS or API keys): a coordinator
                        // cancelling many calls once a verdict is settled is normal, not a
                        // rapid-reset attack.
                        .max_pending_accept_reset_streams(Some(4096))
                        .serve_connection(io, service),
                ),
            ),
        };
    if let Err(e) = served.await {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A plain-HTTP server on loopback answering "ok", holding at most `max_connections`.
    async fn plain_server(max_connections: usize) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().fallback(|| async { "ok" });
        tokio::spawn(serve(
            listener,
            router,
            None,
            max_connections,
            std::future::pending(),
        ));
        addr
    }

    async fn get(stream: &mut tokio::net::TcpStream) -> std::io::Result<String> {
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await?;
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// RFC 9113 3.4: h2c with prior knowledge opens with the preface, whose method `PRI` no
    /// HTTP/1 request uses; every other opening is HTTP/1.1.
    #[test]
    fn the_first_bytes_tell_the_protocol() {
        let cases: [(&[u8], Option<Protocol>); 9] = [
            (b"POST /mpic HTTP/1.1\r\n", Some(Protocol::Http1)),
            (b"GET", Some(Protocol::Http1)),
            (b"PUT", Some(Protocol::Http1)),
            (b"PA", Some(Protocol::Http1)),
            (b"\x16\x03\x01", Some(Protocol::Http1)),
            (b"P", None),
            (b"PR", None),
            (b"PRI", Some(Protocol::Http2)),
            (PREFACE, Some(Protocol::Http2)),
        ];
        for (seen, want) in cases {
            assert_eq!(classify(seen), want, "{:?}", String::from_utf8_lossy(seen));
        }
    }

    /// A request whose first byte arrives alone ("P", which could begin the HTTP/2 preface)
    /// is still served once the rest comes.
    #[tokio::test]
    async fn a_request_split_after_its_first_byte_is_served() {
        let addr = plain_server(8).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"P").await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        stream
            .write_all(b"OST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    /// A plain listener serves HTTP/1.1 and h2c on the same port.
    #[tokio::test]
    async fn plain_connections_speak_http1_or_h2c() {
        let addr = plain_server(8).await;
        let mut http1 = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut http1).await.unwrap().starts_with("HTTP/1.1 200"));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = http::Request::get(format!("http://{addr}/"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
    }

    /// At the connection limit a new client waits (in the kernel's queue) until an open
    /// connection closes, then is served.
    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        let addr = plain_server(2).await;
        let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut first).await.unwrap().starts_with("HTTP/1.1 200"));
        assert!(get(&mut second).await.unwrap().starts_with("HTTP/1.1 200"));
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(300), get(&mut third)).await;
        assert!(waiting.is_err(), "served beyond the limit");
        drop(first);
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = vec![0u8; 1024];
            let n = third.read(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
