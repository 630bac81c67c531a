//! The connection to one perspective: a single HTTP/2 connection over mutual TLS (ALPN `h2`),
//! every call of every request multiplexed on it as its own stream, dialled when first needed
//! and again after it closes (architecture.md, "no connection set-up per request").
//!
//! Built on hyper's HTTP/2 connection directly rather than a general-purpose client: the
//! coordinator talks to a fixed set of peers it knows speak HTTP/2, and a pooled client's
//! per-request machinery (connection checkout, body pipe task, redirect and proxy layers)
//! costs the coordinator more memory and CPU per call than the call itself. A call that
//! is dropped (straggler cancellation, deadlines) resets its stream with `RST_STREAM`; the
//! connection stays up for the others.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// An idle connection is pinged this often, so a peer that vanished without closing it is
/// noticed before the next request needs it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered before the connection is given up.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call produced no response; `Display` is what the CA reads in the failed entry.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection could be made.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection failed or closed during the exchange, or the peer reset the stream.
    #[error("{0}")]
    Exchange(String),
    /// The reply's body was larger than allowed.
    #[error("reply larger than {0} bytes")]
    TooLarge(usize),
}

/// A whole reply.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: http::StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// The connection to one perspective.
pub struct Channel {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    /// The live connection's handle, if any.
    current: Mutex<Option<SendRequest<Full<Bytes>>>>,
    /// Held while dialling, so concurrent calls wait for one new connection instead of each
    /// opening their own.
    dialling: tokio::sync::Mutex<()>,
    /// One permit per HTTP/2 stream the perspective accepts at once: a call beyond that waits
    /// here (in order), as a small future, rather than as a queued stream with its own task.
    streams: tokio::sync::Semaphore,
    /// `…/caa`, `…/dcv` and `…/healthz` of the perspective.
    pub caa: Uri,
    /// See [`caa`](Self::caa).
    pub dcv: Uri,
    /// See [`caa`](Self::caa).
    pub healthz: Uri,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Channel {
    /// A channel to the perspective at `base_url` (`https://host[:port][/prefix]`, or `http://`
    /// when `tls` is `None`). Nothing is dialled yet.
    pub fn new(
        base_url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_timeout: Duration,
    ) -> Result<Channel, String> {
        let base: Uri = base_url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let secure = match base.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("the scheme must be https (or http for tests)".to_owned()),
        };
        if secure != tls.is_some() {
            return Err(if secure {
                "an https:// URL needs perspective_tls".to_owned()
            } else {
                "an http:// URL needs danger_plain_http_perspectives".to_owned()
            });
        }
        let authority = base.authority().ok_or("the URL has no host")?.clone();
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority
            .port_u16()
            .unwrap_or(if secure { 443 } else { 80 });
        let prefix = base.path().trim_end_matches('/').to_owned();
        let join = |path: &str| -> Result<Uri, String> {
            Uri::builder()
                .scheme(if secure { "https" } else { "http" })
                .authority(authority.clone())
                .path_and_query(format!("{prefix}/{path}"))
                .build()
                .map_err(|e| format!("not a URL: {e}"))
        };
        let tls = match tls {
            Some(config) => {
                let mut config = (*config).clone();
                // This client speaks HTTP/2 only; a peer that cannot is refused at the handshake.
                config.alpn_protocols = vec![b"h2".to_vec()];
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| format!("not a host name or address: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
            }
            None => None,
        };
        Ok(Channel {
            caa: join("caa")?,
            dcv: join("dcv")?,
            healthz: join("healthz")?,
            host,
            port,
            tls,
            connect_timeout,
            current: Mutex::new(None),
            dialling: tokio::sync::Mutex::new(()),
            streams: tokio::sync::Semaphore::new(
                mpic_common::serve::MAX_CONCURRENT_STREAMS as usize,
            ),
        })
    }

    /// Sends one request and reads the whole reply, at most `max_body` bytes of body. A
    /// request the connection never took (it had closed, or the peer refused the stream before
    /// processing it) is sent again once on a new connection; checks are read-only, but a
    /// request is never repeated once it may have reached the perspective.
    pub async fn exchange(
        &self,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
        max_body: usize,
    ) -> Result<Reply, CallError> {
        // Held until the reply is read, when the stream is done. Calls beyond the limit wait
        // here; the state of a running exchange is boxed so that a waiting call stays small.
        let _stream = self
            .streams
            .acquire()
            .await
            .map_err(|_| CallError::Exchange("the channel is closed".to_owned()))?;
        Box::pin(self.exchange_now(method, uri, headers, body, max_body)).await
    }

    async fn exchange_now(
        &self,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
        max_body: usize,
    ) -> Result<Reply, CallError> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri.clone())
            .body(Full::new(body))
            .map_err(|e| CallError::Exchange(format!("building the request: {e}")))?;
        *request.headers_mut() = headers;
        let mut retried = false;
        let response = loop {
            let mut sender = match self.live() {
                Some(s) => s,
                // Boxed: the dial's state (TLS and HTTP/2 handshakes) is large and rare.
                None => Box::pin(self.redial()).await?,
            };
            match sender.try_send_request(request).await {
                Ok(response) => break response,
                Err(mut e) => match e.take_message() {
                    // `live` drops the connection from use if it has closed.
                    Some(unsent) if !retried => {
                        request = unsent;
                        retried = true;
                    }
                    _ => return Err(CallError::Exchange(describe(&e.into_error()))),
                },
            }
        };
        let (head, body) = response.into_parts();
        let body = Limited::new(body, max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    CallError::TooLarge(max_body)
                } else {
                    CallError::Exchange(format!("the reply broke off: {}", describe(&*e)))
                }
            })?
            .to_bytes();
        Ok(Reply {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    /// A new connection, unless another call made one meanwhile.
    async fn redial(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let _dialling = self.dialling.lock().await;
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let sender = tokio::time::timeout(self.connect_timeout, self.dial())
            .await
            .map_err(|_| {
                CallError::Connect(format!(
                    "no connection within {} ms",
                    self.connect_timeout.as_millis()
                ))
            })??;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(sender.clone());
        }
        Ok(sender)
    }

    fn live(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut current = self.current.lock().ok()?;
        match current.as_ref() {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                *current = None;
                None
            }
            None => None,
        }
    }

    async fn dial(&self) -> Result<SendRequest<Full<Bytes>>, CallError> {
        let tcp = match self.host.parse::<IpAddr>() {
            Ok(ip) => TcpStream::connect(SocketAddr::new(ip, self.port)).await,
            Err(_) => TcpStream::connect((self.host.as_str(), self.port)).await,
        }
        .map_err(|e| CallError::Connect(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| CallError::Connect(e.to_string()))?;
        let peer = tcp
            .peer_addr()
            .map_or_else(|_| self.host.clone(), |a| a.to_string());
        let sender = match &self.tls {
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| CallError::Connect(format!("TLS handshake: {e}")))?;
                if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Err(CallError::Connect(
                        "the perspective did not agree to HTTP/2 (ALPN h2)".to_owned(),
                    ));
                }
                handshake(stream, &peer).await?
            }
            None => handshake(tcp, &peer).await?,
        };
        tracing::info!(perspective.address = %peer, "connected to a perspective");
        Ok(sender)
    }
}

/// The HTTP/2 handshake on `io`; the connection then runs as its own task until it closes.
async fn handshake<T>(io: T, peer: &str) -> Result<SendRequest<Full<Bytes>>, CallError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| CallError::Connect(format!("HTTP/2 handshake: {}", describe(&e))))?;
    let peer = peer.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(perspective.address = %peer, error = %describe(&e), "connection to a perspective failed");
        }
    });
    Ok(sender)
}

/// What the CA sees of a transport error: the kind and the innermost cause, never a stack of
/// internals.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut root = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        root = s.to_string();
        source = s.source();
    }
    let kind = match e.downcast_ref::<hyper::Error>() {
        Some(h) if h.is_timeout() => "timed out",
        Some(h) if h.is_closed() || h.is_canceled() => "the connection closed",
        Some(h) if h.is_body_write_aborted() || h.is_incomplete_message() => "the reply broke off",
        _ => "the exchange failed",
    };
    let root = mpic_common::text::truncate_for_echo(&root, 200);
    if root.is_empty() || root == kind {
        kind.to_owned()
    } else {
        format!("{kind}: {root}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::Response;
    use hyper::body::Incoming;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A plain-HTTP server on loopback answering every request with its path, counting the
    /// connections it accepts; `close_after` makes it close each connection after that many
    /// requests (a peer that restarts or says GOAWAY).
    async fn server(close_after: Option<usize>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let served = Arc::new(AtomicUsize::new(0));
                let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
                let service = hyper::service::service_fn(move |r: Request<Incoming>| {
                    let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                    if close_after == Some(n) {
                        let _ = tx.try_send(());
                    }
                    let path = r.uri().path().to_owned();
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            path,
                        ))))
                    }
                });
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = rx.recv() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn body(r: Reply) -> String {
        String::from_utf8(r.body.to_vec()).unwrap()
    }

    fn channel(addr: SocketAddr) -> Channel {
        Channel::new(
            &format!("http://{addr}/base/"),
            None,
            Duration::from_secs(2),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn every_call_shares_one_connection() {
        let (addr, accepted) = server(None).await;
        let c = Arc::new(channel(addr));
        let calls = (0..50).map(|i| {
            let c = c.clone();
            async move {
                let uri = if i % 2 == 0 { &c.caa } else { &c.dcv };
                body(
                    c.exchange(Method::POST, uri, HeaderMap::new(), Bytes::from("{}"), 100)
                        .await
                        .unwrap(),
                )
                .await
            }
        });
        let paths = futures_util::future::join_all(calls).await;
        assert_eq!(paths[0], "/base/caa");
        assert_eq!(paths[1], "/base/dcv");
        for _ in 0..10 {
            c.exchange(Method::GET, &c.healthz, HeaderMap::new(), Bytes::new(), 100)
                .await
                .unwrap();
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for 60 calls"
        );
    }

    #[tokio::test]
    async fn a_closed_connection_is_dialled_again() {
        let (addr, accepted) = server(Some(3)).await;
        let c = channel(addr);
        for _ in 0..10 {
            let r = c
                .exchange(Method::GET, &c.healthz, HeaderMap::new(), Bytes::new(), 100)
                .await
                .unwrap();
            assert_eq!(body(r).await, "/base/healthz");
            // Let the server's GOAWAY and close reach us.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Each connection serves three requests (one more may slip in before the GOAWAY
        // reaches us, more on a loaded machine), and every one of the ten succeeded.
        let n = accepted.load(Ordering::SeqCst);
        assert!(n >= 2, "a new connection after a close: {n} accepted");
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = channel(addr);
        let e = c
            .exchange(Method::GET, &c.healthz, HeaderMap::new(), Bytes::new(), 100)
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Connect(_)), "{e}");
        assert!(e.to_string().starts_with("could not connect"), "{e}");
    }

    #[test]
    fn urls_are_checked_against_the_tls_setting() {
        let t = Duration::from_secs(1);
        assert!(Channel::new("ftp://x", None, t).is_err());
        assert!(Channel::new("https://p.example:8443", None, t).is_err());
        let c = Channel::new("http://[::1]:8080", None, t).unwrap();
        assert_eq!(c.caa, "http://[::1]:8080/caa");
        assert_eq!(c.port, 8080);
        assert_eq!(c.host, "::1");
    }
}
