//! One accepted connection: its timers (header read, idle), the bookkeeping of its requests,
//! and how it ends (closed, GOAWAY, displaced, drained).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::admission::{Activity, Snapshot};
use super::{Phase, Protocol, Shared};

/// Why a connection was closed by us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// An HTTP/1.1 request head (or a TLS handshake) took longer than the header timeout.
    HeaderTimeout,
    /// No request in flight for the idle timeout.
    IdleTimeout,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
        }
    }
}

/// What to do about a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Nothing; look again at this time (milliseconds since the epoch).
    LookAt(u64),
    /// Close it.
    Close(CloseReason),
}

/// The decision for a connection in state `s` at time `now` (milliseconds): a request head
/// must complete within `header_ms` of its first byte; a connection with no request in flight
/// is closed `idle_ms` after its last request ended. Heads are only tracked for HTTP/1.1:
/// HTTP/2 frames arrive between requests too (PING, SETTINGS, WINDOW_UPDATE), and a HEADERS
/// frame is bounded by the header list size.
pub(crate) fn next(s: Snapshot, now: u64, header_ms: u64, idle_ms: u64) -> Next {
    if s.in_flight > 0 {
        // Requests have their own deadlines; look again later in case they end.
        return Next::LookAt(now + header_ms.min(idle_ms));
    }
    if let Some(head) = s.head_since {
        let due = head.saturating_add(header_ms);
        return if now >= due {
            Next::Close(CloseReason::HeaderTimeout)
        } else {
            Next::LookAt(due)
        };
    }
    let due = s.idle_since.saturating_add(idle_ms);
    if now >= due {
        Next::Close(CloseReason::IdleTimeout)
    } else {
        Next::LookAt(due)
    }
}

/// How long an HTTP/2 connection closed for idleness gets to deliver its GOAWAY.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Once the drain begins, how long a connection with no request in flight (HTTP/1.1, or one
/// still in its handshake) may still begin one, which is then served with
/// `Connection: close`. Closing it at once would cut a request its client has already sent:
/// after a connection is accepted, its first request follows within well under a millisecond
/// on a LAN.
pub(crate) const LAST_CALL_GRACE: Duration = Duration::from_secs(1);

/// How often an idle HTTP/1.1 connection is looked at during that grace.
const LAST_CALL_POLL: Duration = Duration::from_millis(5);

/// How a connection ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The client closed it, or it failed.
    Ended,
    /// We closed it.
    Closed(CloseReason),
    /// A new connection displaced it.
    Displaced,
    /// Shutdown drained it.
    Drained,
    /// Shutdown's deadline cut it with requests in flight.
    Cut,
    /// Its TLS handshake failed.
    HandshakeFailed,
}

impl Ending {
    /// The `reason` label of the closed-connection counter.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Ended => "client",
            Ending::Closed(reason) => reason.as_str(),
            Ending::Displaced => "displaced",
            Ending::Drained => "drained",
            Ending::Cut => "cut",
            Ending::HandshakeFailed => "handshake_failed",
        }
    }
}

/// Drives `conn` until it ends, applying the timers of `activity`, the registry's
/// displacement and the server's shutdown phases.
pub(crate) async fn drive<C>(
    conn: C,
    protocol: Protocol,
    activity: &Activity,
    limits: &super::ConnectionLimits,
    mut phase: watch::Receiver<Phase>,
    peer: std::net::SocketAddr,
) -> Ending
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let header_ms = limits.header_read_timeout_ms;
    let idle_ms = limits.idle_timeout_ms;
    let mut conn = std::pin::pin!(conn);
    let mut draining = false;
    // Set once an idle HTTP/2 connection has been sent its GOAWAY: why, and until when it
    // may still take to close.
    let mut closing: Option<(CloseReason, tokio::time::Instant)> = None;
    // Set when shutdown reaches an HTTP/1.1 connection with no request in flight: until when
    // a request may still begin, and how many had begun then.
    let mut last_call: Option<(tokio::time::Instant, u64)> = None;
    loop {
        if let Some((by, begun)) = last_call
            && (activity.requests_begun() != begun || tokio::time::Instant::now() >= by)
        {
            // A request came (its answer says `Connection: close`), or none did: the
            // connection is closed once idle.
            conn.as_mut().graceful_shutdown();
            last_call = None;
        }
        let look_at = if let Some((_, until)) = closing {
            until
        } else if last_call.is_some() {
            tokio::time::Instant::now() + LAST_CALL_POLL
        } else {
            let now = activity.now();
            let at = match next(activity.snapshot(), now, header_ms, idle_ms) {
                Next::LookAt(at) => at,
                Next::Close(reason) if protocol == Protocol::Http2 && !draining => {
                    tracing::debug!(peer = %peer, reason = reason.as_str(), "closing with GOAWAY");
                    conn.as_mut().graceful_shutdown();
                    closing = Some((reason, tokio::time::Instant::now() + GOAWAY_GRACE));
                    continue;
                }
                Next::Close(reason) => {
                    tracing::debug!(peer = %peer, reason = reason.as_str(), "closing");
                    return Ending::Closed(reason);
                }
            };
            activity.instant(at)
        };
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return match closing {
                    Some((reason, _)) => Ending::Closed(reason),
                    None if draining => Ending::Drained,
                    None => Ending::Ended,
                };
            }
            () = tokio::time::sleep_until(look_at) => {
                if let Some((reason, _)) = closing {
                    return Ending::Closed(reason);
                }
            }
            () = activity.evicted() => return Ending::Displaced,
            () = activity.head_started() => {}
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Cut };
                match now {
                    Phase::Serving => {}
                    Phase::Draining if !draining => {
                        draining = true;
                        if protocol == Protocol::Http1 && activity.snapshot().in_flight == 0 {
                            // No request in flight, but one may be on its way (a connection
                            // just accepted, or a pooled one the client is reusing): closing
                            // now would cut it.
                            last_call = Some((
                                tokio::time::Instant::now() + LAST_CALL_GRACE,
                                activity.requests_begun(),
                            ));
                        } else {
                            // HTTP/2: GOAWAY, and the streams opened before it are served;
                            // HTTP/1.1: `Connection: close` on the answer in flight.
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                    Phase::Draining => {}
                    Phase::Cut => {
                        return if activity.snapshot().in_flight > 0 {
                            Ending::Cut
                        } else {
                            Ending::Drained
                        };
                    }
                }
            }
        }
    }
}

/// A connection's byte stream, telling its [`Activity`] when bytes arrive (HTTP/1.1 only, to
/// time request heads).
#[derive(Debug)]
pub(crate) struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I> Watched<I> {
    pub fn new(inner: I, activity: Arc<Activity>) -> Watched<I> {
        Watched { inner, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The service of one connection: counts its requests in the connection's [`Activity`] and in
/// the server's in-flight total; once the drain has begun, HTTP/1.1 answers say
/// `Connection: close`, so that the client sends no further request on the connection.
#[derive(Debug, Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
    http1: bool,
}

impl<S> Counted<S> {
    pub fn new(inner: S, activity: Arc<Activity>, shared: Arc<Shared>, http1: bool) -> Counted<S> {
        Counted {
            inner,
            activity,
            shared,
            http1,
        }
    }
}

/// Ends a request's bookkeeping when dropped: answered, failed or cancelled alike.
struct InFlight {
    activity: Arc<Activity>,
    shared: Arc<Shared>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.request_ended();
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.shared.finished.fetch_add(1, Ordering::Relaxed);
    }
}

impl<S, B> hyper::service::Service<http::Request<Incoming>> for Counted<S>
where
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight {
            activity: self.activity.clone(),
            shared: self.shared.clone(),
        };
        let answer = self.inner.call(request);
        let http1 = self.http1;
        let shared = self.shared.clone();
        Box::pin(async move {
            let mut answered = answer.await;
            if http1
                && shared.draining.load(Ordering::Acquire)
                && let Ok(response) = &mut answered
            {
                // Hyper closes the connection after an answer that says so (RFC 9112 9.6).
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            drop(guard);
            answered
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_applies_the_header_and_idle_timers() {
        struct Case {
            name: &'static str,
            s: Snapshot,
            now: u64,
            want: Next,
        }
        let idle = |since| Snapshot {
            in_flight: 0,
            idle_since: since,
            head_since: None,
        };
        let cases = [
            Case {
                name: "fresh connection, idle timer running",
                s: idle(1_000),
                now: 1_000,
                want: Next::LookAt(61_000),
            },
            Case {
                name: "idle for exactly the idle timeout",
                s: idle(1_000),
                now: 61_000,
                want: Next::Close(CloseReason::IdleTimeout),
            },
            Case {
                name: "a head begun: the header timer replaces the idle timer",
                s: Snapshot {
                    head_since: Some(5_000),
                    ..idle(1_000)
                },
                now: 6_000,
                want: Next::LookAt(15_000),
            },
            Case {
                name: "a head not finished in time",
                s: Snapshot {
                    head_since: Some(5_000),
                    ..idle(1_000)
                },
                now: 15_000,
                want: Next::Close(CloseReason::HeaderTimeout),
            },
            Case {
                name: "a head begun late in an idle period is still timed from its first byte",
                s: Snapshot {
                    head_since: Some(59_000),
                    ..idle(0)
                },
                now: 61_000,
                want: Next::LookAt(69_000),
            },
            Case {
                name: "a request in flight is never timed out here",
                s: Snapshot {
                    in_flight: 2,
                    ..idle(0)
                },
                now: 1_000_000,
                want: Next::LookAt(1_010_000),
            },
        ];
        for case in cases {
            assert_eq!(
                next(case.s, case.now, 10_000, 60_000),
                case.want,
                "{}",
                case.name
            );
        }
    }
}
