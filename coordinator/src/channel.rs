//! The connection to one perspective: a single HTTP/2 connection over mutual TLS (ALPN `h2`),
//! every call of every request multiplexed on it as its own stream, dialled when first needed
//! and again after it closes (architecture.md, "no connection set-up per request").
//!
//! Built on the `h2` crate (hyper's HTTP/2) directly rather than a general-purpose client: the
//! coordinator talks to a fixed set of peers it knows speak HTTP/2, and a client's per-request
//! machinery (connection checkout, a spawned task to send each request and another to pipe its
//! body, channels between them) costs more memory and CPU per call than the call itself. Here
//! a call is one stream, driven by the call's own future; the connection is one task. A call
//! that is dropped (straggler cancellation, deadlines) resets its stream with `RST_STREAM`;
//! the connection stays up for the others.
//!
//! A connection is retired — no new call goes on it; it finishes the calls it carries, and
//! closes once they are done — when the coordinator's own certificate, key or CA bundle has
//! been swapped since it was dialled ([`Channel::retire_on`]), and after
//! [`MAX_CONNECTION_AGE`] in any case, so that no connection lives on forever authenticated
//! by material since replaced on either side.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Request, Uri};
use mpic_common::api::CheckType;
use mpic_common::reload::Generation;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The connection is pinged this often, so a peer that vanished without closing it is noticed
/// before the next request needs it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered before the connection is given up.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection is used for new calls: a perspective's rotated certificate (which
/// the coordinator cannot see) is what its connections are authenticated by within this
/// time, for one extra handshake an hour.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(3_600);
/// How much of one reply a perspective may send before we read it (its stream window), and of
/// all replies together (the connection window): the largest reply we accept, and a few.
const STREAM_WINDOW: u32 = 1 << 20;
/// See [`STREAM_WINDOW`].
const CONNECTION_WINDOW: u32 = 4 << 20;

/// Why a call produced no response; `Display` is what the CA reads in the failed entry.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
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

/// The handle of an open connection: what new streams are opened through, and whether the
/// connection still takes them.
#[derive(Clone)]
struct ConnectionHandle {
    sender: SendRequest<Bytes>,
    /// Set when the connection's task ends, or when a call finds that the connection no
    /// longer opens streams (the peer said GOAWAY).
    closed: Arc<AtomicBool>,
    /// The TLS material's generation when it was dialled.
    generation: u64,
    /// When it was dialled.
    dialled: Instant,
}

/// The connection to one perspective.
pub struct Channel {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// Moves when the TLS material is swapped ([`Channel::retire_on`]).
    generation: Generation,
    connect_timeout: Duration,
    /// The open connection, if any.
    current: Mutex<Option<ConnectionHandle>>,
    /// Held while dialling, so concurrent calls wait for one new connection instead of each
    /// opening their own.
    dialling: tokio::sync::Mutex<()>,
    /// One permit per HTTP/2 stream the perspective accepts at once: a call beyond that waits
    /// here (in order), as a small future, rather than as a stream queued in the connection.
    stream_slots: tokio::sync::Semaphore,
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

/// A slot for one HTTP/2 stream among those the perspective accepts at once (a permit of the
/// channel's semaphore), from [`Channel::stream_slot`]; held for the whole exchange, and given
/// back when dropped.
#[derive(Debug)]
pub struct StreamSlot<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
}

/// A failed attempt, and whether the perspective certainly did not process the request.
struct Failed {
    error: CallError,
    unprocessed: bool,
}

impl Failed {
    /// A failure of the stream or connection. RFC 9113 8.7: a stream refused with
    /// `REFUSED_STREAM`, or above the last stream a `GOAWAY` names, was not processed.
    fn of(e: &h2::Error, context: &str) -> Failed {
        let refused = e.is_reset() && e.reason() == Some(h2::Reason::REFUSED_STREAM);
        Failed {
            unprocessed: e.is_remote() && (refused || e.is_go_away()),
            error: CallError::Exchange(format!("{context}{}", describe(e))),
        }
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
            generation: Generation::default(),
            connect_timeout,
            current: Mutex::new(None),
            dialling: tokio::sync::Mutex::new(()),
            stream_slots: tokio::sync::Semaphore::new(
                mpic_common::serve::MAX_CONCURRENT_STREAMS as usize,
            ),
        })
    }

    /// Retires the open connection once `generation` moves (the client's TLS material was
    /// swapped): the next call dials with the new material.
    pub fn retire_on(mut self, generation: Generation) -> Channel {
        self.generation = generation;
        self
    }

    /// The perspective's URL for a check of `check_type`: `…/caa` or `…/dcv` (api.md section 2).
    pub fn check_uri(&self, check_type: CheckType) -> &Uri {
        match check_type {
            CheckType::Caa => &self.caa,
            CheckType::Dcv => &self.dcv,
        }
    }

    /// Sends `request` with `body` and reads the whole reply: [`stream_slot`](Self::stream_slot),
    /// then [`send`](Self::send).
    pub async fn exchange(
        &self,
        request: Request<()>,
        body: Bytes,
        max_body: usize,
    ) -> Result<Reply, CallError> {
        let slot = self.stream_slot().await?;
        self.send(slot, request, body, max_body).await
    }

    /// Waits for one of the streams the perspective accepts at once. Calls beyond the limit
    /// wait here, in order, before they build anything.
    pub async fn stream_slot(&self) -> Result<StreamSlot<'_>, CallError> {
        self.stream_slots
            .acquire()
            .await
            .map(|permit| StreamSlot { _permit: permit })
            .map_err(|_| CallError::Exchange("the channel is closed".to_owned()))
    }

    /// Sends `request` with `body` in the stream `slot` and reads the whole reply, at most `max_body`
    /// bytes of body. A request the perspective certainly did not process (the connection had
    /// closed, or the peer refused the stream or said GOAWAY before it) is sent again once, on
    /// a new connection if need be; checks are read-only, but a request is never repeated once
    /// it may have been processed.
    pub fn send<'a>(
        &'a self,
        slot: StreamSlot<'a>,
        request: Request<()>,
        body: Bytes,
        max_body: usize,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Reply, CallError>> + Send + 'a>> {
        // Boxed, so that a call waiting for its stream slot stays small; the slot is held until
        // the reply is read.
        Box::pin(async move {
            let reply = self.exchange_now(request, body, max_body).await;
            drop(slot);
            reply
        })
    }

    async fn exchange_now(
        &self,
        mut request: Request<()>,
        body: Bytes,
        max_body: usize,
    ) -> Result<Reply, CallError> {
        let mut retried = false;
        loop {
            let connection = match self.usable_connection() {
                Some(connection) => connection,
                // Boxed: the dial's state (TLS and HTTP/2 handshakes) is large and rare.
                None => Box::pin(self.redial()).await?,
            };
            // h2 takes the request even when it fails to send it; a retry needs its copy.
            let copy = (!retried).then(|| copy_of(&request));
            match attempt(&connection, request, &body, max_body).await {
                Ok(reply) => return Ok(reply),
                Err(failed) => match copy {
                    Some(copy) if failed.unprocessed => {
                        request = copy;
                        retried = true;
                    }
                    _ => return Err(failed.error),
                },
            }
        }
    }

    /// A new connection, unless another call made one meanwhile.
    async fn redial(&self) -> Result<ConnectionHandle, CallError> {
        let _dialling = self.dialling.lock().await;
        if let Some(connection) = self.usable_connection() {
            return Ok(connection);
        }
        let connection = tokio::time::timeout(self.connect_timeout, self.dial())
            .await
            .map_err(|_| {
                CallError::Connect(format!(
                    "no connection within {} ms",
                    self.connect_timeout.as_millis()
                ))
            })??;
        if let Ok(mut current) = self.current.lock() {
            *current = Some(connection.clone());
        }
        Ok(connection)
    }

    /// The open connection, unless it has closed or is retired (then forgotten, so the next
    /// call dials; a retired connection closes once the calls it carries are done, when the
    /// last handle to it is dropped).
    fn usable_connection(&self) -> Option<ConnectionHandle> {
        let mut current = self.current.lock().ok()?;
        let connection = current.as_ref()?;
        if connection.closed.load(Ordering::Acquire) {
            *current = None;
            return None;
        }
        let retired = if connection.generation != self.generation.current() {
            Some("the TLS certificate, key or CA bundle changed")
        } else if connection.dialled.elapsed() >= MAX_CONNECTION_AGE {
            Some("the connection reached its maximum age")
        } else {
            None
        };
        if let Some(why) = retired {
            tracing::info!(perspective.host = %self.host, reason = why, "retiring the connection to a perspective: the next call dials a new one");
            *current = None;
            return None;
        }
        Some(connection.clone())
    }

    async fn dial(&self) -> Result<ConnectionHandle, CallError> {
        // Read before the handshake: material swapped during it retires this connection.
        let generation = self.generation.current();
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
        let connection = match &self.tls {
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
                handshake(stream, peer.clone(), generation).await?
            }
            None => handshake(tcp, peer.clone(), generation).await?,
        };
        tracing::info!(perspective.address = %peer, "connected to a perspective");
        Ok(connection)
    }
}

/// One try of a request on `connection`: open a stream, send the body, read the whole reply.
async fn attempt(
    connection: &ConnectionHandle,
    request: Request<()>,
    body: &Bytes,
    max_body: usize,
) -> Result<Reply, Failed> {
    // Opening the stream failed, so nothing was sent. If the connection is what failed (it
    // broke, or the peer said GOAWAY), it opens no more streams: the next call dials a new one
    // and this request may go there. A request h2 refuses to send is not tried again.
    let unopened = |e: h2::Error| {
        let broken = e.is_io() || e.is_go_away() || e.reason().is_some();
        if broken {
            connection.closed.store(true, Ordering::Release);
        }
        Failed {
            unprocessed: broken,
            error: CallError::Exchange(describe(&e)),
        }
    };
    let mut sender = connection.sender.clone().ready().await.map_err(unopened)?;
    let (response, mut send) = sender
        .send_request(request, body.is_empty())
        .map_err(unopened)?;
    if !body.is_empty() {
        // Queued whole; the connection sends it as the perspective's flow control allows.
        send.send_data(body.clone(), true)
            .map_err(|e| Failed::of(&e, ""))?;
    }
    let (head, mut received) = response.await.map_err(|e| Failed::of(&e, ""))?.into_parts();
    let broke_off = |e: h2::Error| Failed::of(&e, "the reply broke off: ");
    // Most replies are one DATA frame, kept as it came; more are joined.
    let mut whole = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(chunk) = received.data().await {
        let chunk = chunk.map_err(broke_off)?;
        let _ = received.flow_control().release_capacity(chunk.len());
        let so_far = joined.as_ref().map_or(whole.len(), BytesMut::len);
        if so_far + chunk.len() > max_body {
            return Err(Failed {
                error: CallError::TooLarge(max_body),
                unprocessed: false,
            });
        }
        match &mut joined {
            None if whole.is_empty() => whole = chunk,
            None => {
                let mut j = BytesMut::from(&whole[..]);
                j.extend_from_slice(&chunk);
                joined = Some(j);
            }
            Some(j) => j.extend_from_slice(&chunk),
        }
    }
    Ok(Reply {
        status: head.status,
        headers: head.headers,
        body: joined.map_or(whole, BytesMut::freeze),
    })
}

/// A copy of a bodiless request's method, URI and headers.
fn copy_of(request: &Request<()>) -> Request<()> {
    let mut copy = Request::new(());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// The HTTP/2 handshake on `io`; the connection then runs as its own task, pinged every
/// [`KEEPALIVE_INTERVAL`], until it closes or a ping goes unanswered.
async fn handshake<T>(io: T, peer: String, generation: u64) -> Result<ConnectionHandle, CallError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // Calls the gather cancels reset their streams; remember as many as may be open, so
        // that their late frames are recognised and ignored.
        .max_concurrent_reset_streams(mpic_common::serve::MAX_CONCURRENT_STREAMS as usize)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| CallError::Connect(format!("HTTP/2 handshake: {}", describe(&e))))?;
    let closed = Arc::new(AtomicBool::new(false));
    let done = closed.clone();
    let ping_pong = connection.ping_pong();
    tokio::spawn(async move {
        let keepalive = async move {
            let Some(mut ping_pong) = ping_pong else {
                return std::future::pending().await;
            };
            loop {
                tokio::time::sleep(KEEPALIVE_INTERVAL).await;
                match tokio::time::timeout(KEEPALIVE_TIMEOUT, ping_pong.ping(h2::Ping::opaque()))
                    .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return describe(&e),
                    Err(_) => {
                        return format!(
                            "no answer to a ping within {} s",
                            KEEPALIVE_TIMEOUT.as_secs()
                        );
                    }
                }
            }
        };
        tokio::select! {
            ended = &mut connection => {
                if let Err(e) = ended {
                    tracing::warn!(perspective.address = %peer, error = %describe(&e), "connection to a perspective failed");
                }
            }
            why = keepalive => {
                tracing::warn!(perspective.address = %peer, error = %why, "connection to a perspective given up");
            }
        }
        done.store(true, Ordering::Release);
        // Dropping the connection fails the streams still open on it.
    });
    Ok(ConnectionHandle {
        sender,
        closed,
        generation,
        dialled: Instant::now(),
    })
}

/// What the CA sees of an HTTP/2 error: what happened, never a stack of internals.
fn describe(e: &h2::Error) -> String {
    let text = if let Some(io) = e.get_io() {
        format!("the connection failed: {io}")
    } else if e.is_go_away() {
        format!(
            "the connection closed (GOAWAY {})",
            e.reason().map_or_else(String::new, |r| r.to_string())
        )
    } else if e.is_reset() {
        format!(
            "the stream was reset ({})",
            e.reason().map_or_else(String::new, |r| r.to_string())
        )
    } else {
        format!("the exchange failed: {e}")
    };
    mpic_common::text::truncate_for_echo(&text, 240)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::{Method, Response};
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo};
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

    fn request(method: Method, uri: &Uri) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        request
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
                    c.exchange(request(Method::POST, uri), Bytes::from("{}"), 100)
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
            c.exchange(request(Method::GET, &c.healthz), Bytes::new(), 100)
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
                .exchange(request(Method::GET, &c.healthz), Bytes::new(), 100)
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

    /// RFC 9113 8.7: a stream the peer refused with `REFUSED_STREAM` was not processed and is
    /// sent again; after any other reset it may have been, and it is not.
    #[tokio::test]
    async fn a_refused_stream_is_sent_again_other_resets_are_not() {
        let cases = [
            (h2::Reason::REFUSED_STREAM, Some("second"), 2),
            (h2::Reason::INTERNAL_ERROR, None, 1),
        ];
        for (reason, answer, requests) in cases {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let seen = Arc::new(AtomicUsize::new(0));
            let count = seen.clone();
            tokio::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut connection = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((_, mut respond))) = connection.accept().await {
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        respond.send_reset(reason);
                    } else {
                        let mut body = respond.send_response(Response::new(()), false).unwrap();
                        body.send_data(Bytes::from("second"), true).unwrap();
                    }
                }
            });
            let c = channel(addr);
            let got = c
                .exchange(request(Method::POST, &c.caa), Bytes::from("{}"), 100)
                .await;
            match answer {
                Some(text) => assert_eq!(body(got.unwrap()).await, text),
                None => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains("reset"), "{reason:?}: {e}");
                }
            }
            assert_eq!(seen.load(Ordering::SeqCst), requests, "{reason:?}");
        }
    }

    /// HTTP/2 forbids connection-specific headers (RFC 9113 8.2.2): h2 refuses to send such a
    /// request. That is the request's fault, not the connection's: it is not sent again, and
    /// the next call uses the same connection.
    #[tokio::test]
    async fn a_request_h2_will_not_send_fails_alone() {
        let (addr, accepted) = server(None).await;
        let c = channel(addr);
        let ok = c
            .exchange(request(Method::GET, &c.healthz), Bytes::new(), 100)
            .await
            .unwrap();
        assert_eq!(body(ok).await, "/base/healthz");
        let mut bad = request(Method::GET, &c.healthz);
        bad.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        assert!(c.exchange(bad, Bytes::new(), 100).await.is_err());
        let ok = c
            .exchange(request(Method::GET, &c.caa), Bytes::new(), 100)
            .await
            .unwrap();
        assert_eq!(body(ok).await, "/base/caa");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection throughout"
        );
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = channel(addr);
        let e = c
            .exchange(request(Method::GET, &c.healthz), Bytes::new(), 100)
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
