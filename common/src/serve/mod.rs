//! Serving an axum router over TCP, with TLS (rustls) or, behind a `danger_` setting, in
//! plain HTTP, with bounds on what each connection may hold (architecture.md "Security
//! model") and a graceful drain on shutdown.
//!
//! Every listener applies [`ConnectionLimits`]: a header-read timeout (from the TLS
//! handshake's start or an HTTP/1.1 request's first byte), an idle timeout, a bound on
//! header bytes and on what an HTTP/1.1 connection buffers, a cap on open connections per
//! client address, and a total beyond which a new connection displaces the one idle longest
//! instead of waiting. Connections are never closed with a request in flight, except when
//! shutdown's drain deadline passes.

mod admission;
mod connection;
mod limits;
mod shutdown;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;

pub use limits::{ConnectionLimits, DEFAULT_MAX_OPEN};
pub use shutdown::{
    DEFAULT_PRE_STOP_DELAY_MS, DRAIN_MARGIN, Lifecycle, LifecycleMetrics, ShutdownSettings,
};

use admission::{Activity, Admission, Registry};
use connection::{Counted, Ending, Watched, drive};

/// How long open connections get to finish after shutdown begins, unless the service says
/// otherwise.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The most HTTP/2 streams a peer may have open on one connection (hyper's default, made
/// explicit: the coordinator puts at most this many calls on one connection to a perspective
/// and opens another when they run short, so that calls never queue as HTTP/2 streams).
pub const MAX_CONCURRENT_STREAMS: u32 = 200;

/// Who can open connections to a listener, which decides what HTTP/2 tolerates of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Anyone who reaches the port: the coordinator's API (API keys are checked per request,
    /// after the connection is up) and the operations listeners.
    Public,
    /// Peers authenticated by mutual TLS: the perspective's API, where a coordinator
    /// cancelling many calls once a verdict is settled is normal, not a rapid-reset attack.
    Authenticated,
}

/// How one listener serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The listener's name in logs and metrics (`api`, `ops`).
    pub name: &'static str,
    /// Bounds on its connections.
    pub limits: ConnectionLimits,
    /// Who can connect.
    pub exposure: Exposure,
    /// How long requests in flight get to finish once shutdown begins.
    pub drain_timeout: Duration,
    /// Where to count connections, if anywhere.
    pub metrics: Option<ConnectionMetrics>,
}

impl ServeOptions {
    /// Options with the given name, limits and exposure, the default drain and no metrics.
    pub fn new(name: &'static str, limits: ConnectionLimits, exposure: Exposure) -> ServeOptions {
        ServeOptions {
            name,
            limits,
            exposure,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            metrics: None,
        }
    }

    /// With connection metrics.
    pub fn with_metrics(mut self, metrics: &ConnectionMetrics) -> ServeOptions {
        self.metrics = Some(metrics.clone());
        self
    }

    /// With a drain deadline.
    pub fn with_drain_timeout(mut self, drain_timeout: Duration) -> ServeOptions {
        self.drain_timeout = drain_timeout;
        self
    }
}

/// Labels of the connection gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `api` or `ops`.
    pub listener: String,
}

/// Labels of the closed-connection counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    /// `api` or `ops`.
    pub listener: String,
    /// `client` (the client closed it or it failed), `header_timeout`, `idle_timeout`,
    /// `displaced` (a new connection took its place), `refused` (full, every connection
    /// busy), `handshake_failed`, `drained` or `cut` (shutdown).
    pub reason: String,
}

/// Connection metrics of a service, registered in its registry.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    /// `…_connections_open`.
    pub open: Family<ListenerLabels, Gauge>,
    /// `…_connections_closed_total`.
    pub closed: Family<ClosedLabels, Counter>,
}

impl ConnectionMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> ConnectionMetrics {
        let metrics = ConnectionMetrics::default();
        registry.register(
            "connections_open",
            "Client connections open, by listener",
            metrics.open.clone(),
        );
        registry.register(
            "connections_closed",
            "Client connections ended, by listener and reason",
            metrics.closed.clone(),
        );
        metrics
    }

    fn closed(&self, listener: &str, reason: &str) {
        self.closed
            .get_or_create(&ClosedLabels {
                listener: listener.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// Where the server's shutdown stands; each connection watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Serving,
    /// No new connections; open ones are told to finish (GOAWAY, `Connection: close`).
    Draining,
    /// The drain deadline has passed: whatever is still open is closed.
    Cut,
}

/// What all connections of one listener share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Requests being served.
    in_flight: AtomicUsize,
    /// Requests answered (or abandoned by their client) since the start.
    finished: AtomicU64,
    /// Connection tasks alive.
    live: AtomicUsize,
    /// Woken when `live` drops to zero.
    all_done: Notify,
    /// Set when the drain begins: HTTP/1.1 answers then say `Connection: close`.
    draining: std::sync::atomic::AtomicBool,
}

/// Everything a connection task needs.
#[derive(Debug)]
struct Context {
    name: &'static str,
    limits: ConnectionLimits,
    exposure: Exposure,
    router: Router,
    shared: Arc<Shared>,
    metrics: Option<ConnectionMetrics>,
    phase: watch::Receiver<Phase>,
}

/// Serves `router` on `listener` until `shutdown` completes: over TLS when `tls` is given,
/// else plain HTTP/1.1 and h2c. Then it stops accepting (the port closes), asks every open
/// connection to finish (HTTP/2 GOAWAY, HTTP/1.1 `Connection: close`), lets the requests in
/// flight finish within the drain deadline, closes what is left, and logs how many requests
/// finished and how many were cut.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let registry = Arc::new(Registry::new(
        options.limits.max_open,
        options.limits.max_per_peer,
    ));
    let (phase_tx, phase) = watch::channel(Phase::Serving);
    let context = Arc::new(Context {
        name: options.name,
        limits: options.limits,
        exposure: options.exposure,
        router,
        shared: Arc::new(Shared::default()),
        metrics: options.metrics.clone(),
        phase,
    });
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = context.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        admit(&context, &registry, acceptor.as_ref(), tcp, peer);
    }
    // Connections the kernel completed before the port closes wait in its accept queue;
    // closing the port would reset them, though their clients think they were accepted. Take
    // them first: they are served one request (or their HTTP/2 streams opened before GOAWAY).
    match listener.into_std() {
        Ok(listener) => {
            while let Ok((tcp, peer)) = listener.accept() {
                match tcp
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(tcp))
                {
                    Ok(tcp) => admit(&context, &registry, acceptor.as_ref(), tcp, peer),
                    Err(e) => tracing::debug!(peer = %peer, error = %e, "a queued connection lost"),
                }
            }
            drop(listener);
        }
        Err(e) => tracing::debug!(listener = context.name, error = %e, "accept queue not read"),
    }
    drain(&context, &phase_tx, options.drain_timeout).await;
    Ok(())
}

/// Admits one accepted connection under the listener's limits and serves it in its own task.
fn admit(
    context: &Arc<Context>,
    registry: &Arc<Registry>,
    acceptor: Option<&TlsAcceptor>,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
) {
    let ticket = match registry.admit(peer.ip()) {
        Admission::Admitted(ticket) => ticket,
        Admission::Refused => {
            // Every connection has a request in flight: closing this one at once tells its
            // client to try again, where waiting in the accept queue would not.
            tracing::debug!(listener = context.name, peer = %peer, "full: connection refused");
            if let Some(m) = &context.metrics {
                m.closed(context.name, "refused");
            }
            drop(tcp);
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    context.shared.live.fetch_add(1, Ordering::AcqRel);
    let task = Task {
        context: context.clone(),
        activity: ticket.activity.clone(),
        _ticket: ticket,
    };
    // Plain and TLS connections are separate tasks, each sized for its own path (a TLS
    // handshake's state is several KiB that a plain connection need not carry).
    match acceptor.cloned() {
        None => tokio::spawn(async move {
            let handshake = sniff(&tcp);
            let ending = match task.before_serving(handshake).await {
                Ok(Some(protocol)) => task.serve(protocol, tcp, peer).await,
                Ok(None) => Ending::Ended,
                Err(ending) => ending,
            };
            task.end(ending);
        }),
        Some(acceptor) => tokio::spawn(async move {
            let ending = match task.before_serving(acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    // RFC 9113 3.2: over TLS, HTTP/2 is what ALPN agreed on; anything else
                    // is HTTP/1.1.
                    let protocol = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        Protocol::Http2
                    } else {
                        Protocol::Http1
                    };
                    task.serve(protocol, stream, peer).await
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                    Ending::HandshakeFailed
                }
                Err(ending) => ending,
            };
            task.end(ending);
        }),
    };
}

/// Shutdown: stops every connection gracefully, waits up to `deadline` for them, then cuts
/// what is left and logs the counts.
async fn drain(context: &Context, phase: &watch::Sender<Phase>, deadline: Duration) {
    let shared = &context.shared;
    let finished_before = shared.finished.load(Ordering::Relaxed);
    let in_flight = shared.in_flight.load(Ordering::Relaxed);
    tracing::info!(
        listener = context.name,
        connections = shared.live.load(Ordering::Acquire),
        requests_in_flight = in_flight,
        drain_timeout_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        "draining"
    );
    shared.draining.store(true, Ordering::Release);
    let _ = phase.send(Phase::Draining);
    let drained = tokio::time::timeout(deadline, all_done(shared))
        .await
        .is_ok();
    let cut = if drained {
        0
    } else {
        let cut = shared.in_flight.load(Ordering::Relaxed);
        let _ = phase.send(Phase::Cut);
        // The tasks stop at their next poll; give them a moment to do so.
        let _ = tokio::time::timeout(Duration::from_secs(1), all_done(shared)).await;
        cut
    };
    let finished = shared.finished.load(Ordering::Relaxed) - finished_before;
    let requests_finished = usize::try_from(finished).unwrap_or(usize::MAX);
    if cut == 0 {
        tracing::info!(
            listener = context.name,
            requests_finished,
            requests_cut = 0,
            "drained"
        );
    } else {
        tracing::warn!(
            listener = context.name,
            requests_finished,
            requests_cut = cut,
            "drain deadline passed: requests cut"
        );
    }
}

/// Completes once no connection task is left.
async fn all_done(shared: &Shared) {
    loop {
        let notified = shared.all_done.notified();
        if shared.live.load(Ordering::Acquire) == 0 {
            return;
        }
        notified.await;
    }
}

/// One connection's task.
#[derive(Debug)]
struct Task {
    context: Arc<Context>,
    activity: Arc<Activity>,
    _ticket: admission::Ticket,
}

impl Task {
    /// Runs `handshake` (TLS, or the look at a plain connection's first bytes) within the
    /// header timeout, unless the connection is displaced or shutdown begins first.
    async fn before_serving<T>(&self, handshake: impl Future<Output = T>) -> Result<T, Ending> {
        if let Some(m) = &self.context.metrics {
            m.open
                .get_or_create(&ListenerLabels {
                    listener: self.context.name.to_owned(),
                })
                .inc();
        }
        let mut phase = self.context.phase.clone();
        let timeout = self.context.limits.header_read_timeout();
        let handshake = tokio::time::timeout(timeout, handshake);
        let mut handshake = std::pin::pin!(handshake);
        let timed_out = |_| Ending::Closed(connection::CloseReason::HeaderTimeout);
        tokio::select! {
            done = &mut handshake => return done.map_err(timed_out),
            () = self.activity.evicted() => return Err(Ending::Displaced),
            _ = phase.wait_for(|p| *p != Phase::Serving) => {}
        }
        // Shutdown has begun, but the port accepted this connection: its client has a request
        // on the way, which closing it now would cut. It gets a short grace to finish the
        // handshake, and is then served as the drain says.
        tokio::select! {
            done = tokio::time::timeout(connection::LAST_CALL_GRACE, &mut handshake) => {
                match done {
                    Ok(done) => done.map_err(timed_out),
                    Err(_) => Err(Ending::Drained),
                }
            }
            () = self.activity.evicted() => Err(Ending::Displaced),
            _ = phase.wait_for(|p| *p == Phase::Cut) => Err(Ending::Drained),
        }
    }

    /// Serves the connection in `protocol` until it ends.
    async fn serve<I>(&self, protocol: Protocol, io: I, peer: std::net::SocketAddr) -> Ending
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let context = &self.context;
        let limits = &context.limits;
        let service = Counted::new(
            // A clone of the router is a reference count; the routes are built once.
            TowerToHyperService::new(context.router.clone()),
            self.activity.clone(),
            context.shared.clone(),
            protocol == Protocol::Http1,
        );
        let phase = context.phase.clone();
        // Boxed, so that a connection's task holds its own protocol's state and no more.
        match protocol {
            Protocol::Http1 => {
                let io = TokioIo::new(Watched::new(io, self.activity.clone()));
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    // The header bound is also the read buffer's: request bodies stream
                    // through it in pieces, and a head longer than it is answered 431.
                    .max_buf_size(limits.max_header_bytes)
                    .max_header_size(limits.max_header_bytes);
                let conn = builder.serve_connection(io, service);
                Box::pin(drive(conn, protocol, &self.activity, limits, phase, peer)).await
            }
            Protocol::Http2 => {
                let io = TokioIo::new(io);
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder
                    .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                    .max_header_list_size(
                        u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX),
                    )
                    // What one connection buffers of request bodies: the peer may not send
                    // more than the windows allow before we read it.
                    .initial_connection_window_size(H2_CONNECTION_WINDOW)
                    .initial_stream_window_size(H2_STREAM_WINDOW)
                    .max_pending_accept_reset_streams(match context.exposure {
                        // h2's default, the rapid-reset bound (CVE-2023-44487).
                        Exposure::Public => Some(20),
                        Exposure::Authenticated => Some(4096),
                    });
                let conn = builder.serve_connection(io, service);
                Box::pin(drive(conn, protocol, &self.activity, limits, phase, peer)).await
            }
        }
    }

    /// Counts how the connection ended.
    fn end(self, ending: Ending) {
        let context = &self.context;
        if let Some(m) = &context.metrics {
            m.open
                .get_or_create(&ListenerLabels {
                    listener: context.name.to_owned(),
                })
                .dec();
            m.closed(context.name, ending.as_str());
        }
        drop(self._ticket);
        if context.shared.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            context.shared.all_done.notify_waiters();
        }
    }
}

/// An HTTP/2 connection's receive window: what a client may have sent and we not yet read,
/// over all its streams (hyper's default, made explicit).
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// An HTTP/2 stream's receive window: above the largest request body either service accepts
/// by default (64 KiB), so a body arrives in one round trip.
const H2_STREAM_WINDOW: u32 = 256 * 1024;

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

/// A service's listeners: its API and, when configured, its operations listener (`/healthz`,
/// `/readyz`, `/metrics`, `/configz` for probes and scrapers on a private network).
#[derive(Debug)]
pub struct Listeners {
    api: TcpListener,
    ops: Option<TcpListener>,
}

impl Listeners {
    /// Binds `listen` and, if given, `ops_listen`; an error names the configuration key.
    pub async fn bind(
        listen: std::net::SocketAddr,
        ops_listen: Option<std::net::SocketAddr>,
    ) -> std::io::Result<Listeners> {
        let bind = |key: &'static str, addr: std::net::SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("{key}: cannot bind {addr}: {e}"))
            })
        };
        let api = bind("listen", listen).await?;
        let ops = match ops_listen {
            Some(addr) => Some(bind("ops_listen", addr).await?),
            None => None,
        };
        Ok(Listeners { api, ops })
    }

    /// The API's bound address.
    pub fn api_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.api.local_addr()
    }

    /// The operations listener's bound address, if there is one.
    pub fn ops_addr(&self) -> Option<std::net::SocketAddr> {
        self.ops.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves `api` (over `tls` when given) and `ops` on the operations listener until
    /// `signal`, then shuts down as `lifecycle` says: readiness false at once, the pre-stop
    /// delay, the API's drain, and only then the operations listener's, so that probes and
    /// scrapers see the drain through. `api` is exposed as `exposure`, the operations
    /// listener publicly with [`ConnectionLimits::for_operations`].
    pub async fn serve(
        self,
        api: (Router, Option<Arc<ServerConfig>>, Exposure),
        ops: Router,
        limits: ConnectionLimits,
        metrics: &ConnectionMetrics,
        lifecycle: &Lifecycle,
        signal: Shutdown,
    ) -> std::io::Result<()> {
        let (router, tls, exposure) = api;
        let options = ServeOptions::new("api", limits, exposure)
            .with_metrics(metrics)
            .with_drain_timeout(lifecycle.drain_timeout());
        let close = lifecycle.clone().stop_after(signal.wait());
        let api = serve(self.api, router, tls, options, close);
        match self.ops {
            Some(listener) => {
                let (api_drained, ops_close) = tokio::sync::oneshot::channel::<()>();
                let api = async move {
                    let served = api.await;
                    let _ = api_drained.send(());
                    served
                };
                let options = ServeOptions::new("ops", limits.for_operations(), Exposure::Public)
                    .with_metrics(metrics)
                    .with_drain_timeout(OPS_DRAIN_TIMEOUT);
                let ops = serve(listener, ops, None, options, async move {
                    let _ = ops_close.await;
                });
                let (api, ops) = tokio::join!(api, ops);
                api.and(ops)
            }
            None => api.await,
        }
    }
}

/// The operations listener's drain: its requests (probes, scrapes) are quick.
const OPS_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A shutdown signal that several listeners and tasks can wait for.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Fires when `signal` completes.
    pub fn new(signal: impl Future<Output = ()> + Send + 'static) -> Shutdown {
        let (fire, fired) = watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                () = signal => {
                    let _ = fire.send(true);
                }
                // Everyone waiting has gone.
                () = fire.closed() => {}
            }
        });
        Shutdown(fired)
    }

    /// Completes once the signal has fired.
    pub async fn wait(mut self) {
        if self.0.wait_for(|fired| *fired).await.is_err() {
            // The signal's task is gone without firing (its runtime is shutting down).
            std::future::pending::<()>().await;
        }
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

    /// Limits small enough for a test.
    fn limits(max_open: usize, max_per_peer: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_open,
            max_per_peer,
            header_read_timeout_ms: 2_000,
            idle_timeout_ms: 30_000,
            max_header_bytes: 8 * 1024,
        }
    }

    /// A router answering "ok" on `/` and, on `/slow`, once `release` is notified.
    fn router(release: Arc<Notify>) -> Router {
        Router::new()
            .route(
                "/slow",
                axum::routing::get(move || {
                    let release = release.clone();
                    async move {
                        release.notified().await;
                        "slow"
                    }
                }),
            )
            .fallback(|| async { "ok" })
    }

    /// A plain-HTTP server on loopback with `limits`; the sender starts its shutdown.
    async fn server_with(
        limits: ConnectionLimits,
        router: Router,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let options = ServeOptions::new("api", limits, Exposure::Public)
            .with_drain_timeout(Duration::from_secs(5));
        let server = tokio::spawn(serve(listener, router, None, options, async move {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    async fn plain_server(max_open: usize) -> std::net::SocketAddr {
        let (addr, stop, _) = server_with(limits(max_open, max_open), router(Arc::default())).await;
        std::mem::forget(stop);
        addr
    }

    async fn connect_from(source: &str, addr: std::net::SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(addr).await.unwrap()
    }

    async fn get_path(stream: &mut TcpStream, path: &str) -> std::io::Result<String> {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
            .await?;
        read_some(stream).await
    }

    async fn get(stream: &mut TcpStream) -> std::io::Result<String> {
        get_path(stream, "/").await
    }

    async fn read_some(stream: &mut TcpStream) -> std::io::Result<String> {
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// `answer` is a 200 that tells the client to close the connection (the drain's answer).
    fn assert_closing_200(answer: &str) {
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }

    /// Waits for `server` to return, at most 5 s, and that it returned `Ok`.
    async fn returns(server: tokio::task::JoinHandle<std::io::Result<()>>) {
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    /// True once the server has closed `stream` (end of file or reset).
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
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
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"P").await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        stream
            .write_all(b"OST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), read_some(&mut stream))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    /// A plain listener serves HTTP/1.1 and h2c on the same port.
    #[tokio::test]
    async fn plain_connections_speak_http1_or_h2c() {
        let addr = plain_server(8).await;
        let mut http1 = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut http1).await.unwrap().starts_with("HTTP/1.1 200"));
        let tcp = TcpStream::connect(addr).await.unwrap();
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

    /// At the connection limit a new client is served at once: the connection idle longest
    /// makes room.
    #[tokio::test]
    async fn a_full_listener_displaces_its_longest_idle_connection() {
        let addr = plain_server(2).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut first).await.unwrap().starts_with("HTTP/1.1 200"));
        let mut second = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut second).await.unwrap().starts_with("HTTP/1.1 200"));
        let mut third = TcpStream::connect(addr).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), get(&mut third))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            tokio::time::timeout(Duration::from_secs(5), closed(&mut first))
                .await
                .unwrap(),
            "the longest idle is closed"
        );
        assert!(get(&mut second).await.unwrap().starts_with("HTTP/1.1 200"));
    }

    /// A connection with a request in flight is never displaced: when every one is busy, a
    /// new connection is closed at once instead of waiting unseen in the accept queue.
    #[tokio::test]
    async fn a_full_listener_of_busy_connections_refuses_new_ones() {
        let release = Arc::new(Notify::new());
        let (addr, _stop, _) = server_with(limits(2, 2), router(release.clone())).await;
        let mut busy = Vec::new();
        for _ in 0..2 {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            busy.push(stream);
        }
        // Let both requests reach the handler.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut refused = TcpStream::connect(addr).await.unwrap();
        let _ = refused
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        assert!(
            tokio::time::timeout(Duration::from_secs(5), closed(&mut refused))
                .await
                .unwrap()
        );
        release.notify_waiters();
        for stream in &mut busy {
            let answer = read_some(stream).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
    }

    /// One address at its cap displaces its own idle connections, never another address's.
    #[tokio::test]
    async fn an_address_at_its_cap_displaces_only_its_own() {
        let (addr, _stop, _) = server_with(limits(16, 2), router(Arc::default())).await;
        let mut other = connect_from("127.0.0.2", addr).await;
        assert!(get(&mut other).await.unwrap().starts_with("HTTP/1.1 200"));
        let mut own = Vec::new();
        for _ in 0..3 {
            let mut stream = connect_from("127.0.0.3", addr).await;
            assert!(get(&mut stream).await.unwrap().starts_with("HTTP/1.1 200"));
            own.push(stream);
        }
        assert!(
            tokio::time::timeout(Duration::from_secs(5), closed(&mut own[0]))
                .await
                .unwrap()
        );
        assert!(get(&mut other).await.unwrap().starts_with("HTTP/1.1 200"));
        assert!(get(&mut own[2]).await.unwrap().starts_with("HTTP/1.1 200"));
    }

    /// A request head that has not finished within the header timeout closes the connection
    /// (slowloris), and so does a connection that never sends a byte.
    #[tokio::test(start_paused = true)]
    async fn an_unfinished_head_is_closed_at_the_header_timeout() {
        let (addr, _stop, _) = server_with(limits(8, 8), router(Arc::default())).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let started = tokio::time::Instant::now();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        assert!(closed(&mut slow).await);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(2_000) && waited < Duration::from_millis(3_000),
            "{waited:?}"
        );
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(closed(&mut silent).await);
        assert!(started.elapsed() < Duration::from_millis(3_000));
    }

    /// A keep-alive connection is closed once idle for the idle timeout (not the header
    /// timeout), and its next head is timed from its own first byte.
    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
        let (addr, _stop, _) = server_with(limits(8, 8), router(Arc::default())).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut stream).await.unwrap().starts_with("HTTP/1.1 200"));
        let started = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(20_000)).await;
        assert!(get(&mut stream).await.unwrap().starts_with("HTTP/1.1 200"));
        assert!(closed(&mut stream).await);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(50_000) && waited < Duration::from_millis(51_000),
            "{waited:?}"
        );
    }

    /// An idle HTTP/2 connection is sent GOAWAY at the idle timeout.
    #[tokio::test(start_paused = true)]
    async fn an_idle_h2_connection_gets_goaway() {
        let (addr, _stop, _) = server_with(limits(8, 8), router(Arc::default())).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        let request = http::Request::get(format!("http://{addr}/"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        assert_eq!(
            sender.send_request(request).await.unwrap().status(),
            http::StatusCode::OK
        );
        let started = tokio::time::Instant::now();
        // The client's connection ends cleanly once the server's GOAWAY arrives.
        assert!(connection.await.unwrap().is_ok());
        assert!(started.elapsed() >= Duration::from_millis(30_000));
    }

    /// A head longer than the bound is refused with 431, before it is all buffered.
    #[tokio::test]
    async fn a_head_over_the_bound_is_answered_431() {
        let addr = plain_server(8).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let filler = "a".repeat(16 * 1024);
        let _ = stream
            .write_all(
                format!("GET / HTTP/1.1\r\nhost: x\r\nx-filler: {filler}\r\n\r\n").as_bytes(),
            )
            .await;
        let answer = read_some(&mut stream).await.unwrap_or_default();
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }

    /// Shutdown: the port closes at once, a request in flight still gets its answer (with
    /// `Connection: close`), and the server returns once it has.
    #[tokio::test]
    async fn shutdown_closes_the_port_and_lets_requests_in_flight_finish() {
        let release = Arc::new(Notify::new());
        let (addr, stop, server) = server_with(limits(8, 8), router(release.clone())).await;
        let mut in_flight = TcpStream::connect(addr).await.unwrap();
        in_flight
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the port is closed"
        );
        assert!(!server.is_finished());
        release.notify_waiters();
        let answer = read_some(&mut in_flight).await.unwrap();
        assert_closing_200(&answer);
        returns(server).await;
    }

    /// A request still in flight at the drain deadline is cut, and the server returns.
    #[tokio::test(start_paused = true)]
    async fn the_drain_deadline_cuts_what_is_left() {
        let release = Arc::new(Notify::new());
        let (addr, stop, server) = server_with(limits(8, 8), router(release)).await;
        let mut in_flight = TcpStream::connect(addr).await.unwrap();
        in_flight
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = tokio::time::Instant::now();
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_secs(5));
        assert!(closed(&mut in_flight).await);
    }

    /// A connection the kernel accepted just before the port closed is served, not reset:
    /// its request gets its answer, then the connection closes.
    #[tokio::test]
    async fn a_connection_accepted_as_the_port_closes_is_served() {
        let (addr, stop, server) = server_with(limits(8, 8), router(Arc::default())).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut first).await.unwrap().starts_with("HTTP/1.1 200"));
        stop.send(()).unwrap();
        // On loopback the handshake completes inside connect(): the connection is in the
        // accept queue whether or not the server has closed its port yet.
        let mut late = TcpStream::connect(addr).await.unwrap();
        let answer = get(&mut late).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        // Answered with `Connection: close`, or before the drain reached it and then closed.
        assert!(closed(&mut late).await);
        returns(server).await;
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the port is closed"
        );
    }

    /// A connection accepted before shutdown whose request had not arrived yet (none of it,
    /// or part of its head) is served once it does, within the grace; one that sends
    /// nothing is closed when the grace ends, well before the drain deadline.
    #[tokio::test(start_paused = true)]
    async fn a_request_on_its_way_at_shutdown_is_served() {
        let (addr, stop, server) = server_with(limits(8, 8), router(Arc::default())).await;
        let mut silent_so_far = TcpStream::connect(addr).await.unwrap();
        let mut half_a_head = TcpStream::connect(addr).await.unwrap();
        half_a_head.write_all(b"GET / HT").await.unwrap();
        let mut never = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        half_a_head
            .write_all(b"TP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_some(&mut half_a_head).await.unwrap();
        assert_closing_200(&answer);
        let answer = get(&mut silent_so_far).await.unwrap();
        assert_closing_200(&answer);
        assert!(closed(&mut never).await);
        server.await.unwrap().unwrap();
        let took = started.elapsed();
        assert!(
            took >= connection::LAST_CALL_GRACE && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    /// The operations endpoints of a service that is always ready on its own.
    #[derive(Debug)]
    struct AlwaysReady {
        lifecycle: Lifecycle,
        registry: prometheus_client::registry::Registry,
        configz: serde_json::Value,
    }

    impl crate::operations::Operations for AlwaysReady {
        async fn readiness(&self) -> (bool, serde_json::Value) {
            (true, serde_json::json!({"status": "ready"}))
        }
        fn registry(&self) -> &prometheus_client::registry::Registry {
            &self.registry
        }
        fn configz(&self) -> std::borrow::Cow<'_, serde_json::Value> {
            std::borrow::Cow::Borrowed(&self.configz)
        }
        fn lifecycle(&self) -> &Lifecycle {
            &self.lifecycle
        }
    }

    /// `GET path` on a new connection; the status code and the whole answer.
    async fn get_once(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok((status, answer))
    }

    /// SIGTERM, in order: readiness false at once (with the reason) while the API still
    /// serves through the pre-stop delay; then the API port closes (a new connection is
    /// refused) while the request in flight completes with `Connection: close`; the
    /// operations listener answers until the API has drained, then closes too.
    #[tokio::test(start_paused = true)]
    async fn sigterm_turns_readiness_false_then_closes_and_drains() {
        let lifecycle = Lifecycle::new(Duration::from_secs(2), Duration::from_secs(5));
        let ops_state = Arc::new(AlwaysReady {
            lifecycle: lifecycle.clone(),
            registry: prometheus_client::registry::Registry::default(),
            configz: serde_json::json!({}),
        });
        let listeners = Listeners::bind(
            "127.0.0.1:0".parse().unwrap(),
            Some("127.0.0.1:0".parse().unwrap()),
        )
        .await
        .unwrap();
        let api = listeners.api_addr().unwrap();
        let ops = listeners.ops_addr().unwrap();
        let release = Arc::new(Notify::new());
        let (fire, fired) = tokio::sync::oneshot::channel::<()>();
        let signal = Shutdown::new(async move {
            let _ = fired.await;
        });
        let served = {
            let lifecycle = lifecycle.clone();
            let release = release.clone();
            tokio::spawn(async move {
                listeners
                    .serve(
                        (router(release), None, Exposure::Public),
                        crate::operations::router(ops_state),
                        limits(8, 8),
                        &ConnectionMetrics::default(),
                        &lifecycle,
                        signal,
                    )
                    .await
            })
        };
        assert_eq!(get_once(ops, "/readyz").await.unwrap().0, 200);
        let mut in_flight = TcpStream::connect(api).await.unwrap();
        in_flight
            .write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        let signalled = tokio::time::Instant::now();
        fire.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (status, answer) = get_once(ops, "/readyz").await.unwrap();
        assert_eq!(status, 503, "not ready at once: {answer}");
        assert!(answer.contains("shutting down"), "{answer}");
        assert!(lifecycle.is_stopping());
        // The pre-stop delay: still served, so that a load balancer has time to stop sending.
        assert_eq!(get_once(api, "/").await.unwrap().0, 200);

        tokio::time::sleep_until(signalled + Duration::from_millis(2_100)).await;
        assert!(
            TcpStream::connect(api).await.is_err(),
            "after the pre-stop delay the API port is closed"
        );
        assert_eq!(
            get_once(ops, "/readyz").await.unwrap().0,
            503,
            "the operations listener still answers during the drain"
        );
        assert!(!served.is_finished());

        release.notify_waiters();
        let answer = read_some(&mut in_flight).await.unwrap();
        assert_closing_200(&answer);
        returns(served).await;
        assert!(
            TcpStream::connect(ops).await.is_err(),
            "the operations listener closes last"
        );
    }
}
