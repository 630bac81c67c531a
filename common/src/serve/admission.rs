//! Which connections a listener holds: the global and per-address caps, and which connection
//! makes room for a new one (the one idle longest; never one with a request in flight).
//!
//! A flood of connections that send nothing, or a few bytes, cannot lock clients out: each
//! new connection either finds room or displaces an idle one, and one address at its cap can
//! only displace its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

/// What a connection is doing, shared between its task, its requests and the registry.
/// Times are milliseconds since the registry's epoch, on tokio's clock (which tests pause).
#[derive(Debug)]
pub(crate) struct Activity {
    epoch: Instant,
    in_flight: AtomicU32,
    idle_since: AtomicU64,
    /// One more than the time the first byte of an unfinished HTTP/1.1 request head arrived;
    /// 0 when no head is being read.
    head_since: AtomicU64,
    /// Requests begun on the connection.
    begun: AtomicU64,
    evicted: AtomicBool,
    evict: Notify,
    /// Woken when a head begins, which brings the connection's next deadline closer.
    head_started: Notify,
}

/// A copy of [`Activity`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Requests being served.
    pub in_flight: u32,
    /// When the last request ended (or the connection was accepted).
    pub idle_since: u64,
    /// When the first byte of an unfinished request head arrived.
    pub head_since: Option<u64>,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        let now = millis_since(epoch);
        Activity {
            epoch,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(now),
            head_since: AtomicU64::new(0),
            begun: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
            head_started: Notify::new(),
        }
    }

    /// Milliseconds since the epoch.
    pub fn now(&self) -> u64 {
        millis_since(self.epoch)
    }

    /// The moment `ms` after the epoch.
    pub fn instant(&self, ms: u64) -> Instant {
        self.epoch + std::time::Duration::from_millis(ms)
    }

    pub fn snapshot(&self) -> Snapshot {
        let head = self.head_since.load(Ordering::Relaxed);
        Snapshot {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            idle_since: self.idle_since.load(Ordering::Relaxed),
            head_since: head.checked_sub(1),
        }
    }

    /// Bytes arrived: with no request in flight they begin a request head.
    pub fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == 0
        {
            self.head_since.store(self.now() + 1, Ordering::Relaxed);
            self.head_started.notify_one();
        }
    }

    /// Completes once a request head has begun since the last call.
    pub async fn head_started(&self) {
        self.head_started.notified().await;
    }

    /// A request's head is complete and it is being served.
    pub fn request_started(&self) {
        self.head_since.store(0, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.begun.fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests have begun on the connection.
    pub fn requests_begun(&self) -> u64 {
        self.begun.load(Ordering::Relaxed)
    }

    /// A request has been answered.
    pub fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since.store(self.now(), Ordering::Relaxed);
        }
    }

    /// Completes once the registry has displaced this connection.
    pub async fn evicted(&self) {
        loop {
            let notified = self.evict.notified();
            if self.evicted.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.evict.notify_waiters();
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Why a new connection may not simply be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Below both caps.
    Room,
    /// Its address is at its cap: it may displace one of that address's idle connections.
    DisplaceOwn,
    /// The listener is full: it may displace any idle connection.
    DisplaceAny,
}

/// Whether a connection from an address holding `from_peer` of `open` connections fits.
pub(crate) fn need(open: usize, from_peer: usize, max_open: usize, max_per_peer: usize) -> Need {
    if from_peer >= max_per_peer {
        Need::DisplaceOwn
    } else if open >= max_open {
        Need::DisplaceAny
    } else {
        Need::Room
    }
}

/// The connection to displace among `candidates` (id, snapshot): the one idle longest, the
/// older connection first on a tie; never one with a request in flight.
pub(crate) fn victim(candidates: impl IntoIterator<Item = (u64, Snapshot)>) -> Option<u64> {
    candidates
        .into_iter()
        .filter(|(_, s)| s.in_flight == 0)
        .min_by_key(|(id, s)| (s.idle_since, *id))
        .map(|(id, _)| id)
}

/// The connections of one listener.
#[derive(Debug)]
pub(crate) struct Registry {
    epoch: Instant,
    max_open: usize,
    max_per_peer: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, (IpAddr, Arc<Activity>)>,
    per_peer: HashMap<IpAddr, usize>,
}

/// How a new connection was admitted.
#[derive(Debug)]
pub(crate) enum Admission {
    /// It fits, possibly after displacing an idle one.
    Admitted(Ticket),
    /// No room and nothing idle to displace.
    Refused,
}

/// A connection's place in the registry; leaving it (dropping) frees the place.
#[derive(Debug)]
pub(crate) struct Ticket {
    registry: Arc<Registry>,
    id: u64,
    peer: IpAddr,
    pub activity: Arc<Activity>,
}

impl Registry {
    pub fn new(max_open: usize, max_per_peer: usize) -> Registry {
        Registry {
            epoch: Instant::now(),
            max_open: max_open.max(1),
            max_per_peer: max_per_peer.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Admits a connection from `peer`, displacing an idle one if the caps call for it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Admission {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let from_peer = inner.per_peer.get(&peer).copied().unwrap_or(0);
        let scope = need(
            inner.open.len(),
            from_peer,
            self.max_open,
            self.max_per_peer,
        );
        if scope != Need::Room {
            let candidates = inner
                .open
                .iter()
                .filter(|(_, (p, _))| scope == Need::DisplaceAny || *p == peer)
                .map(|(id, (_, a))| (*id, a.snapshot()));
            let Some(id) = victim(candidates) else {
                return Admission::Refused;
            };
            if let Some((p, activity)) = inner.open.remove(&id) {
                inner.leave(p);
                activity.evict();
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let activity = Arc::new(Activity::new(self.epoch));
        inner.open.insert(id, (peer, activity.clone()));
        *inner.per_peer.entry(peer).or_insert(0) += 1;
        Admission::Admitted(Ticket {
            registry: self.clone(),
            id,
            peer,
            activity,
        })
    }

    /// Connections held.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .open
            .len()
    }
}

impl Inner {
    fn leave(&mut self, peer: IpAddr) {
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // A displaced connection has already left.
        if inner.open.remove(&self.id).is_some() {
            inner.leave(self.peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(since: u64) -> Snapshot {
        Snapshot {
            in_flight: 0,
            idle_since: since,
            head_since: None,
        }
    }

    fn busy(since: u64) -> Snapshot {
        Snapshot {
            in_flight: 1,
            ..idle(since)
        }
    }

    #[test]
    fn need_applies_the_address_cap_before_the_total() {
        struct Case {
            name: &'static str,
            open: usize,
            from_peer: usize,
            want: Need,
        }
        let cases = [
            Case {
                name: "empty",
                open: 0,
                from_peer: 0,
                want: Need::Room,
            },
            Case {
                name: "below both",
                open: 9,
                from_peer: 3,
                want: Need::Room,
            },
            Case {
                name: "listener full",
                open: 10,
                from_peer: 3,
                want: Need::DisplaceAny,
            },
            Case {
                name: "address at its cap",
                open: 5,
                from_peer: 4,
                want: Need::DisplaceOwn,
            },
            Case {
                name: "both: the address displaces its own",
                open: 10,
                from_peer: 4,
                want: Need::DisplaceOwn,
            },
        ];
        for case in cases {
            assert_eq!(
                need(case.open, case.from_peer, 10, 4),
                case.want,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn the_victim_is_the_longest_idle_and_never_busy() {
        struct Case {
            name: &'static str,
            candidates: Vec<(u64, Snapshot)>,
            want: Option<u64>,
        }
        let cases = [
            Case {
                name: "none",
                candidates: vec![],
                want: None,
            },
            Case {
                name: "all busy",
                candidates: vec![(1, busy(0)), (2, busy(5))],
                want: None,
            },
            Case {
                name: "longest idle wins",
                candidates: vec![(1, idle(30)), (2, idle(10)), (3, idle(20))],
                want: Some(2),
            },
            Case {
                name: "a busy one idle longer is spared",
                candidates: vec![(1, busy(0)), (2, idle(10))],
                want: Some(2),
            },
            Case {
                name: "a tie goes to the older connection",
                candidates: vec![(7, idle(10)), (3, idle(10))],
                want: Some(3),
            },
            Case {
                name: "reading a head is not a request in flight",
                candidates: vec![(
                    4,
                    Snapshot {
                        head_since: Some(50),
                        ..idle(40)
                    },
                )],
                want: Some(4),
            },
        ];
        for case in cases {
            assert_eq!(victim(case.candidates), case.want, "{}", case.name);
        }
    }

    fn admitted(a: Admission) -> Ticket {
        match a {
            Admission::Admitted(ticket) => ticket,
            Admission::Refused => panic!("refused"),
        }
    }

    fn evicted(t: &Ticket) -> bool {
        t.activity.evicted.load(Ordering::Acquire)
    }

    #[test]
    fn a_full_registry_displaces_the_longest_idle_and_refuses_when_all_are_busy() {
        let registry = Arc::new(Registry::new(2, 2));
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let b: IpAddr = "192.0.2.2".parse().expect("address");
        let first = admitted(registry.admit(a));
        let second = admitted(registry.admit(b));
        // `first` was accepted first, so it has been idle at least as long.
        let third = admitted(registry.admit(b));
        assert!(evicted(&first));
        assert!(!evicted(&second));
        assert_eq!(registry.open(), 2);
        drop(first);
        assert_eq!(registry.open(), 2, "a displaced ticket leaves once");
        second.activity.request_started();
        third.activity.request_started();
        assert!(matches!(registry.admit(a), Admission::Refused));
        third.activity.request_ended();
        let _fourth = admitted(registry.admit(a));
        assert!(evicted(&third));
    }

    #[test]
    fn an_address_at_its_cap_displaces_only_its_own() {
        let registry = Arc::new(Registry::new(10, 2));
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let b: IpAddr = "192.0.2.2".parse().expect("address");
        let other = admitted(registry.admit(b));
        let own1 = admitted(registry.admit(a));
        let own2 = admitted(registry.admit(a));
        let own3 = admitted(registry.admit(a));
        assert!(!evicted(&other));
        assert!(evicted(&own1));
        own2.activity.request_started();
        // own3 is idle; own2 busy: the next displaces own3, never `other`.
        let _own4 = admitted(registry.admit(a));
        assert!(evicted(&own3));
        assert!(!evicted(&other));
        assert!(!evicted(&own2));
    }

    #[test]
    fn a_head_starts_only_between_requests() {
        let registry = Arc::new(Registry::new(1, 1));
        let ticket = admitted(registry.admit("192.0.2.1".parse().expect("address")));
        let activity = &ticket.activity;
        assert_eq!(activity.snapshot().head_since, None);
        activity.bytes_read();
        assert!(activity.snapshot().head_since.is_some());
        activity.request_started();
        assert_eq!(activity.snapshot().head_since, None);
        activity.bytes_read();
        assert_eq!(
            activity.snapshot().head_since,
            None,
            "body bytes are no head"
        );
        activity.request_ended();
        assert_eq!(activity.snapshot().in_flight, 0);
    }
}
