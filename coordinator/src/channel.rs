//! The connections to one perspective: HTTP/2 over mutual TLS (ALPN `h2`), every call of every
//! request multiplexed as its own stream, dialled when first needed and again after one closes
//! (architecture.md, "no connection set-up per request").
//!
//! A perspective accepts [`MAX_CONCURRENT_STREAMS`](mpic_common::serve::MAX_CONCURRENT_STREAMS)
//! streams per connection, so one connection caps the calls to it at that many per round trip:
//! 200 streams at 300 ms are about 670 calls a second, whatever the CPUs could do. A channel
//! therefore opens more connections, up to its `max_connections`, as the calls in flight need
//! them: each call takes the least-loaded connection with a free stream, and when less than a
//! quarter of a connection's streams are left free across all of them, a spare is dialled in
//! the background, so that a call seldom waits for a handshake (two or three round trips at
//! Internet distances). Calls beyond `max_connections` × the stream limit wait in order for a
//! stream, counted in `mpic_perspective_stream_waits_total`.
//!
//! Built on the `h2` crate (hyper's HTTP/2) directly rather than a general-purpose client: the
//! coordinator talks to a fixed set of peers it knows speak HTTP/2, and a client's per-request
//! machinery (connection checkout, a spawned task to send each request and another to pipe its
//! body, channels between them) costs more memory and CPU per call than the call itself. Here
//! a call is one stream, driven by the call's own future; each connection is one task. A call
//! that is dropped (straggler cancellation, deadlines) resets its stream with `RST_STREAM`;
//! the connection stays up for the others.
//!
//! A connection is retired — no new call goes on it; it finishes the calls it carries, and
//! closes once they are done — when the coordinator's own certificate, key or CA bundle has
//! been swapped since it was dialled ([`ChannelSettings::retire_on`]), and after
//! [`MAX_CONNECTION_AGE`] in any case, so that no connection lives on forever authenticated
//! by material since replaced on either side.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Request, Uri};
use mpic_common::api::CheckType;
use mpic_common::reload::Generation;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A connection is pinged this often, so a peer that vanished without closing it is noticed
/// before the next request needs it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered before the connection is given up: well above any
/// round trip between regions (a few hundred ms), so distance alone never ends a connection.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a connection is used for new calls: a perspective's rotated certificate (which
/// the coordinator cannot see) is what its connections are authenticated by within this
/// time, for one extra handshake an hour.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(3_600);
/// How much of one reply a perspective may send before we read it (its stream window): the
/// largest reply we accept ([`MAX_REPLY_BYTES`](crate::fanout)), so that any reply arrives in
/// one round trip, however far away the perspective is.
const STREAM_WINDOW: u32 = 1 << 20;
/// How much of all replies together may be on the way (the connection window). A connection
/// carries up to 200 streams; typical replies are 1–3 KB (about 0.6 MB at once) and a few may
/// be large: 4 MiB covers the bandwidth-delay product of a full connection of typical replies
/// plus three of the largest at any distance, and costs nothing until bytes are in flight.
const CONNECTION_WINDOW: u32 = 4 << 20;
/// How many streams a connection remembers having reset (the calls the gather cancels), and
/// for how long. A perspective's reply may already be on its way when our reset leaves, and
/// arrives up to a round trip later; while the stream is remembered its frames are dropped
/// (RFC 9113 section 5.1, "closed"). A forgotten stream's frames are a stream error that h2
/// answers with a reset of its own and counts towards a limit over the connection's life
/// (1,024 by default, the "MadeYouReset" defence), after which it closes the connection with
/// `ENHANCE_YOUR_CALM` and fails every call on it. h2's client remembers 50 for 1 s; a far
/// perspective whose calls end at the straggler grace can have its calls cancelled by the
/// hundred a second (a connection turns over 200 streams every grace), and at 200 remembered
/// a benchmark's connection closed itself every few seconds. 1,024 a second covers 200
/// streams cancelled every 200 ms; an entry is a few hundred bytes.
const RESET_STREAMS_REMEMBERED: usize = 1024;
const RESET_STREAM_MEMORY: Duration = Duration::from_secs(1);
/// The default most connections to one perspective: with 200 streams each, 3,200 calls in
/// flight to it, more than a coordinator's default `limits.max_concurrent_requests` (each
/// request has at most one call in flight to a perspective).
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

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

/// What a channel counts, for one perspective.
#[derive(Debug, Clone, Default)]
pub struct ChannelMetrics {
    /// `mpic_perspective_connections`: connections open now (retired ones that still carry
    /// calls included).
    pub connections: Gauge,
    /// `mpic_perspective_stream_waits_total`: calls that found no free stream and waited.
    pub stream_waits: Counter,
}

/// How a channel connects.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Bound of one dial (TCP, TLS and HTTP/2 handshakes).
    pub connect_timeout: Duration,
    /// The most connections open for new calls.
    pub max_connections: usize,
    /// Streams the perspective accepts at once on one connection.
    pub streams_per_connection: usize,
    /// Moves when the client's TLS material is swapped: connections dialled before are
    /// retired.
    pub generation: Generation,
    /// Where the channel counts.
    pub metrics: ChannelMetrics,
}

impl ChannelSettings {
    /// Defaults, with `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> ChannelSettings {
        ChannelSettings {
            connect_timeout,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            streams_per_connection: mpic_common::serve::MAX_CONCURRENT_STREAMS as usize,
            generation: Generation::default(),
            metrics: ChannelMetrics::default(),
        }
    }

    /// Retires every open connection once `generation` moves (the client's TLS material was
    /// swapped): the next calls dial with the new material.
    pub fn retire_on(mut self, generation: Generation) -> ChannelSettings {
        self.generation = generation;
        self
    }
}

/// Where a new call goes, given the streams each open connection carries ([`choose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The connection to use (an index into the loads), or `None` when every one is full
    /// (or none is open) and the call must dial.
    pub connection: Option<usize>,
    /// Whether to dial a spare connection in the background now.
    pub dial_spare: bool,
}

/// Picks the least-loaded connection with a free stream (the oldest among equals), and asks
/// for a spare when, with this call placed, fewer than a quarter of one connection's streams
/// are left free across all of them and another connection is allowed. Nothing open: the call
/// dials (no spare).
pub fn choose(loads: &[usize], per_connection: usize, max_connections: usize) -> Choice {
    let connection = loads
        .iter()
        .enumerate()
        .filter(|(_, load)| **load < per_connection)
        .min_by_key(|(i, load)| (**load, *i))
        .map(|(i, _)| i);
    let free =
        free_streams(loads, per_connection).saturating_sub(usize::from(connection.is_some()));
    Choice {
        connection,
        dial_spare: connection.is_some()
            && loads.len() < max_connections
            && free < per_connection.div_ceil(4),
    }
}

/// Whether a spare is still wanted when its dial may start: the connections open now leave
/// fewer than a quarter of one connection's streams free, and another is allowed.
pub fn spare_wanted(loads: &[usize], per_connection: usize, max_connections: usize) -> bool {
    loads.len() < max_connections
        && free_streams(loads, per_connection) < per_connection.div_ceil(4)
}

fn free_streams(loads: &[usize], per_connection: usize) -> usize {
    loads
        .iter()
        .map(|load| per_connection.saturating_sub(*load))
        .sum()
}

/// One open connection: what new streams are opened through, and whether it still takes them.
struct Connection {
    sender: SendRequest<Bytes>,
    /// Set when the connection's task ends, or when a call finds that the connection no
    /// longer opens streams (the peer said GOAWAY).
    closed: Arc<AtomicBool>,
    /// The TLS material's generation when it was dialled.
    generation: u64,
    /// When it was dialled.
    dialled: Instant,
    /// Calls on it now.
    in_flight: AtomicUsize,
}

/// A connection taken for one call; the call's stream is given back when dropped.
struct InUse(Arc<Connection>);

impl InUse {
    fn take(connection: &Arc<Connection>) -> InUse {
        connection.in_flight.fetch_add(1, Ordering::AcqRel);
        InUse(connection.clone())
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Everything a dial needs, shared with the background task that dials a spare.
struct Dialer {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    settings: ChannelSettings,
    /// The connections open for new calls, oldest first.
    pool: Mutex<Vec<Arc<Connection>>>,
    /// Held while dialling, so that calls finding every connection full wait for one new
    /// connection instead of each opening their own.
    dialling: tokio::sync::Mutex<()>,
    /// A spare is being dialled.
    spare: AtomicBool,
}

/// The connections to one perspective.
pub struct Channel {
    dialer: Arc<Dialer>,
    /// One permit per stream the channel may have open at once (`max_connections` × the
    /// streams of one): a call beyond that waits here (in order), as a small future.
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
            .field("host", &self.dialer.host)
            .field("port", &self.dialer.port)
            .field("tls", &self.dialer.tls.is_some())
            .field("max_connections", &self.dialer.settings.max_connections)
            .finish()
    }
}

/// A slot for one HTTP/2 stream among those the channel may have open at once (a permit of the
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
        settings: ChannelSettings,
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
        if settings.max_connections == 0 || settings.streams_per_connection == 0 {
            return Err("a channel needs at least one connection and one stream".to_owned());
        }
        let slots = settings
            .max_connections
            .saturating_mul(settings.streams_per_connection)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        Ok(Channel {
            caa: join("caa")?,
            dcv: join("dcv")?,
            healthz: join("healthz")?,
            dialer: Arc::new(Dialer {
                host,
                port,
                tls,
                settings,
                pool: Mutex::new(Vec::new()),
                dialling: tokio::sync::Mutex::new(()),
                spare: AtomicBool::new(false),
            }),
            stream_slots: tokio::sync::Semaphore::new(slots),
        })
    }

    /// The perspective's URL for a check of `check_type`: `…/caa` or `…/dcv` (api.md section 2).
    pub fn check_uri(&self, check_type: CheckType) -> &Uri {
        match check_type {
            CheckType::Caa => &self.caa,
            CheckType::Dcv => &self.dcv,
        }
    }

    /// Connections open for new calls now (not counting retired ones that finish their calls).
    pub fn open_connections(&self) -> usize {
        self.dialer.pool.lock().map_or(0, |pool| pool.len())
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

    /// Waits for one of the streams the channel may have open at once. Calls beyond the limit
    /// wait here, in order, before they build anything; each that waits is counted.
    pub async fn stream_slot(&self) -> Result<StreamSlot<'_>, CallError> {
        let permit = match self.stream_slots.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(tokio::sync::TryAcquireError::Closed) => Err(()),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                self.dialer.settings.metrics.stream_waits.inc();
                self.stream_slots.acquire().await.map_err(drop)
            }
        }
        .map_err(|()| CallError::Exchange("the channel is closed".to_owned()))?;
        Ok(StreamSlot { _permit: permit })
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
            let connection = match self.dialer.pick() {
                Some(connection) => connection,
                // Boxed: the dial's state (TLS and HTTP/2 handshakes) is large and rare.
                None => Box::pin(self.dialer.dial_for_call()).await?,
            };
            // h2 takes the request even when it fails to send it; a retry needs its copy.
            let copy = (!retried).then(|| copy_of(&request));
            match attempt(&connection.0, request, &body, max_body).await {
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
}

impl Dialer {
    /// A connection for a new call ([`choose`]), and a spare dialled in the background when
    /// they run short; `None` when every open connection is full or none is open.
    fn pick(self: &Arc<Self>) -> Option<InUse> {
        let (in_use, dial_spare) = {
            let mut pool = self.pool.lock().ok()?;
            self.forget_unusable(&mut pool);
            let loads: Vec<usize> = pool
                .iter()
                .map(|c| c.in_flight.load(Ordering::Acquire))
                .collect();
            let choice = choose(
                &loads,
                self.settings.streams_per_connection,
                self.settings.max_connections,
            );
            (
                choice.connection.map(|i| InUse::take(&pool[i])),
                choice.dial_spare,
            )
        };
        if dial_spare && !self.spare.swap(true, Ordering::AcqRel) {
            let dialer = self.clone();
            tokio::spawn(async move {
                dialer.dial_spare().await;
                dialer.spare.store(false, Ordering::Release);
            });
        }
        in_use
    }

    /// A connection for a call that found none free: a new one (other calls meanwhile wait
    /// for it rather than dial their own), or one that became free during the wait. At the
    /// limit of connections, the least-loaded (h2 then queues the stream until one ends; the
    /// channel's stream slots make that rare).
    async fn dial_for_call(self: &Arc<Self>) -> Result<InUse, CallError> {
        let _dialling = self.dialling.lock().await;
        if let Some(connection) = self.pick() {
            return Ok(connection);
        }
        if let Ok(pool) = self.pool.lock() {
            if !pool.is_empty() {
                self.settings.metrics.stream_waits.inc();
            }
            if pool.len() >= self.settings.max_connections
                && let Some(least) = pool
                    .iter()
                    .min_by_key(|c| c.in_flight.load(Ordering::Acquire))
            {
                return Ok(InUse::take(least));
            }
        }
        let connection = self.dial_within_timeout().await?;
        let in_use = InUse::take(&connection);
        if let Ok(mut pool) = self.pool.lock() {
            pool.push(connection);
        }
        Ok(in_use)
    }

    /// Dials one more connection if, by the time the dial may start, calls still need it.
    async fn dial_spare(&self) {
        let _dialling = self.dialling.lock().await;
        let needed = self.pool.lock().is_ok_and(|pool| {
            let loads: Vec<usize> = pool
                .iter()
                .map(|c| c.in_flight.load(Ordering::Acquire))
                .collect();
            spare_wanted(
                &loads,
                self.settings.streams_per_connection,
                self.settings.max_connections,
            )
        });
        if !needed {
            return;
        }
        match self.dial_within_timeout().await {
            Ok(connection) => {
                if let Ok(mut pool) = self.pool.lock() {
                    pool.push(connection);
                }
            }
            Err(e) => {
                tracing::debug!(perspective.host = %self.host, error = %e, "a spare connection to a perspective could not be made");
            }
        }
    }

    /// Forgets the connections that have closed or are retired (a retired connection closes
    /// once the calls it carries are done, when the last handle to it is dropped).
    fn forget_unusable(&self, pool: &mut Vec<Arc<Connection>>) {
        pool.retain(|connection| {
            if connection.closed.load(Ordering::Acquire) {
                return false;
            }
            let retired = if connection.generation != self.settings.generation.current() {
                Some("the TLS certificate, key or CA bundle changed")
            } else if connection.dialled.elapsed() >= MAX_CONNECTION_AGE {
                Some("the connection reached its maximum age")
            } else {
                None
            };
            if let Some(why) = retired {
                tracing::info!(perspective.host = %self.host, reason = why, "retiring a connection to a perspective: new calls go to another");
            }
            retired.is_none()
        });
    }

    async fn dial_within_timeout(&self) -> Result<Arc<Connection>, CallError> {
        let timeout = self.settings.connect_timeout;
        tokio::time::timeout(timeout, self.dial())
            .await
            .map_err(|_| {
                CallError::Connect(format!("no connection within {} ms", timeout.as_millis()))
            })?
    }

    async fn dial(&self) -> Result<Arc<Connection>, CallError> {
        // Read before the handshake: material swapped during it retires this connection.
        let generation = self.settings.generation.current();
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
        let gauge = self.settings.metrics.connections.clone();
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
                handshake(stream, peer.clone(), generation, gauge).await?
            }
            None => handshake(tcp, peer.clone(), generation, gauge).await?,
        };
        let open = self.pool.lock().map_or(0, |pool| pool.len()) + 1;
        tracing::info!(perspective.address = %peer, connections = open, "connected to a perspective");
        Ok(Arc::new(connection))
    }
}

/// One try of a request on `connection`: open a stream, send the body, read the whole reply.
async fn attempt(
    connection: &Connection,
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
async fn handshake<T>(
    io: T,
    peer: String,
    generation: u64,
    open: Gauge,
) -> Result<Connection, CallError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // Calls the gather cancels reset their streams; their late frames are recognised and
        // dropped (see RESET_STREAMS_REMEMBERED).
        .max_concurrent_reset_streams(RESET_STREAMS_REMEMBERED)
        .reset_stream_duration(RESET_STREAM_MEMORY)
        // Beyond that memory a late frame costs one RST_STREAM back (no amplification), from a
        // peer authenticated by its certificate; the lifetime limit would instead close a
        // connection that lives up to MAX_CONNECTION_AGE after its 1,024th late reply, with
        // every call on it.
        .max_local_error_reset_streams(None)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| CallError::Connect(format!("HTTP/2 handshake: {}", describe(&e))))?;
    let closed = Arc::new(AtomicBool::new(false));
    let done = closed.clone();
    let ping_pong = connection.ping_pong();
    open.inc();
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
        open.dec();
        // Dropping the connection fails the streams still open on it.
    });
    Ok(Connection {
        sender,
        closed,
        generation,
        dialled: Instant::now(),
        in_flight: AtomicUsize::new(0),
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

    /// A plain-HTTP server on loopback answering every request with its path after `delay`,
    /// counting the connections it accepts; `close_after` makes it close each connection after
    /// that many requests (a peer that restarts or says GOAWAY).
    async fn server(close_after: Option<usize>, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
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
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            path,
                        ))))
                    }
                });
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(TEST_STREAMS)
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

    /// Streams the test server accepts at once on one connection.
    const TEST_STREAMS: u32 = 4;

    #[test]
    fn where_a_new_call_goes() {
        struct Case {
            name: &'static str,
            loads: &'static [usize],
            max: usize,
            want: Choice,
        }
        let go = |i: usize, spare: bool| Choice {
            connection: Some(i),
            dial_spare: spare,
        };
        let dial = Choice {
            connection: None,
            dial_spare: false,
        };
        // 8 streams a connection: a spare is wanted when fewer than 2 stay free.
        let cases = [
            Case {
                name: "nothing open: the call dials",
                loads: &[],
                max: 4,
                want: dial,
            },
            Case {
                name: "plenty free",
                loads: &[3],
                max: 4,
                want: go(0, false),
            },
            Case {
                name: "the last free streams: use one, dial a spare",
                loads: &[6],
                max: 4,
                want: go(0, true),
            },
            Case {
                name: "the last free streams, but no more connections allowed",
                loads: &[6],
                max: 1,
                want: go(0, false),
            },
            Case {
                name: "the least loaded, the oldest among equals",
                loads: &[5, 2, 2],
                max: 4,
                want: go(1, false),
            },
            Case {
                name: "a full one is skipped",
                loads: &[8, 7],
                max: 4,
                want: go(1, true),
            },
            Case {
                name: "every one full: the call dials",
                loads: &[8, 8],
                max: 4,
                want: dial,
            },
            Case {
                name: "every one full at the limit: the call waits in dial_for_call",
                loads: &[8, 8],
                max: 2,
                want: dial,
            },
            Case {
                name: "over-full (streams the peer queues) counts as full",
                loads: &[9, 0],
                max: 4,
                want: go(1, false),
            },
        ];
        for c in cases {
            assert_eq!(choose(c.loads, 8, c.max), c.want, "{}", c.name);
        }
        // Whether the spare is still wanted when its dial starts: nothing open is the
        // calls' own dial; the calls that asked may have ended meanwhile.
        for (loads, max, want) in [
            (&[][..], 4, true),
            (&[7][..], 4, true),
            (&[8, 8][..], 4, true),
            (&[8, 8][..], 2, false),
            (&[3][..], 4, false),
            (&[8, 1][..], 4, false),
        ] {
            assert_eq!(spare_wanted(loads, 8, max), want, "{loads:?} of {max}");
        }
    }

    /// Calls beyond one connection's streams open more connections, up to the limit, and
    /// every call is answered; calls beyond the limit's streams wait for one, counted.
    #[tokio::test]
    async fn connections_open_on_demand_up_to_the_limit() {
        let (addr, accepted) = server(None, Duration::from_millis(150)).await;
        let mut settings = ChannelSettings::new(Duration::from_secs(2));
        settings.max_connections = 3;
        settings.streams_per_connection = TEST_STREAMS as usize;
        let metrics = settings.metrics.clone();
        let c = Arc::new(Channel::new(&format!("http://{addr}"), None, settings).unwrap());
        // 3 connections × 4 streams = 12 at once; 20 calls: 8 wait for a stream.
        let calls = (0..20).map(|_| {
            let c = c.clone();
            async move {
                c.exchange(request(Method::POST, &c.caa), Bytes::from("{}"), 100)
                    .await
                    .map(|r| r.status)
            }
        });
        let statuses = futures_util::future::join_all(calls).await;
        assert!(
            statuses
                .iter()
                .all(|s| s.as_ref().is_ok_and(|s| s.is_success()))
        );
        let n = accepted.load(Ordering::SeqCst);
        assert!((2..=3).contains(&n), "{n} connections for 20 calls");
        assert_eq!(c.open_connections(), n);
        assert_eq!(metrics.connections.get(), i64::try_from(n).unwrap());
        assert!(
            metrics.stream_waits.get() >= 8,
            "{}",
            metrics.stream_waits.get()
        );
    }

    /// A connection's calls approaching its stream limit bring a spare, dialled in the
    /// background: the next calls find it open.
    #[tokio::test]
    async fn a_spare_is_dialled_before_it_is_needed() {
        let (addr, accepted) = server(None, Duration::from_millis(300)).await;
        let mut settings = ChannelSettings::new(Duration::from_secs(2));
        settings.streams_per_connection = TEST_STREAMS as usize;
        let c = Arc::new(Channel::new(&format!("http://{addr}"), None, settings).unwrap());
        let first = {
            let c = c.clone();
            tokio::spawn(async move {
                c.exchange(request(Method::GET, &c.healthz), Bytes::new(), 100)
                    .await
                    .unwrap()
            })
        };
        // Wait for the first connection, then fill its four streams: the fourth call leaves
        // fewer than a quarter of them (one) free, and a spare is dialled.
        while c.open_connections() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let more: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move {
                    c.exchange(request(Method::GET, &c.healthz), Bytes::new(), 100)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let waited = tokio::time::timeout(Duration::from_secs(2), async {
            while c.open_connections() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "no spare while calls were still running");
        first.await.unwrap();
        for m in more {
            m.await.unwrap();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// Calls cancelled while their replies are on the way, by the hundred a second for
    /// seconds (a far perspective whose calls the straggler grace ends): the late replies are
    /// dropped, the one connection stays open, and a call after them is answered on it. h2's
    /// defaults closed such a connection (`ENHANCE_YOUR_CALM`) after 1,024 late replies.
    #[tokio::test]
    async fn late_replies_to_cancelled_calls_do_not_close_the_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(|_: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        "answered",
                    ))))
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(256)
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        // 100 ms each way: a reply comes 200 ms after its call, which is cancelled at 150.
        let relay = mpic_tests::relay::Relay::start(server_addr, Duration::from_millis(100))
            .await
            .unwrap();
        let addr = relay.addr();
        let mut settings = ChannelSettings::new(Duration::from_secs(5));
        settings.max_connections = 1;
        let c = Arc::new(Channel::new(&format!("http://{addr}"), None, settings).unwrap());
        let until = Instant::now() + Duration::from_secs(3);
        let cancelled = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..100)
            .map(|_| {
                let (c, cancelled) = (c.clone(), cancelled.clone());
                tokio::spawn(async move {
                    while Instant::now() < until {
                        let call = c.exchange(request(Method::POST, &c.caa), Bytes::new(), 100);
                        match tokio::time::timeout(Duration::from_millis(150), call).await {
                            Err(_) => cancelled.fetch_add(1, Ordering::SeqCst),
                            Ok(r) => panic!("a call ended before it was cancelled: {r:?}"),
                        };
                    }
                })
            })
            .collect();
        for caller in callers {
            caller.await.unwrap();
        }
        let cancelled = cancelled.load(Ordering::SeqCst);
        assert!(cancelled > 1_100, "only {cancelled} calls were cancelled");
        let r = c
            .exchange(request(Method::GET, &c.healthz), Bytes::new(), 100)
            .await
            .unwrap();
        assert_eq!(body(r).await, "answered");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the connection was re-made"
        );
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
            ChannelSettings::new(Duration::from_secs(2)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn every_call_shares_one_connection() {
        let (addr, accepted) = server(None, Duration::ZERO).await;
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
        let (addr, accepted) = server(Some(3), Duration::ZERO).await;
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
        let (addr, accepted) = server(None, Duration::ZERO).await;
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
        let t = || ChannelSettings::new(Duration::from_secs(1));
        assert!(Channel::new("ftp://x", None, t()).is_err());
        assert!(Channel::new("https://p.example:8443", None, t()).is_err());
        let c = Channel::new("http://[::1]:8080", None, t()).unwrap();
        assert_eq!(c.caa, "http://[::1]:8080/caa");
        assert_eq!(c.dialer.port, 8080);
        assert_eq!(c.dialer.host, "::1");
    }
}
