//! A DNS relay on loopback that puts distance between a resolver and a DNS server (the kernel
//! here has no `netem`): each UDP datagram is delayed one way in each direction, with jitter,
//! and lost at random (independently per direction, [`Impairment::loss`]); TCP on the same port
//! number (for truncated answers) goes through a [`Relay`] with the same delays and no loss.
//!
//! It forwards the way a DNS forwarder does: every query goes upstream from one socket under an
//! ID of the relay's own, and the answer goes back to the client that asked, under the client's
//! ID. A socket per client would hold an ephemeral port per resolver socket for as long as it
//! might still be answered, and a resolver that opens sockets as its lookups need them (ours
//! does, above its idle pool) would then exhaust the machine's ports under load. A query whose
//! answer never comes (lost, or never answered) is forgotten after [`FORGET`]. Datagrams may
//! overtake each other when jitter says so, as datagrams do.
//!
//! Counters say how many datagrams went each way and how many were dropped
//! ([`DnsRelay::counts`]). The path can be changed while in use ([`DnsRelay::set_path`]); a
//! seed makes the losses repeatable.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::impair::{DelayLine, Impairment, Path, Rng, Switch};
use crate::relay::Relay;

/// A running DNS relay; it stops when dropped.
#[derive(Debug)]
pub struct DnsRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tcp: Relay,
    tasks: Vec<JoinHandle<()>>,
}

/// Datagrams forwarded and dropped, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsRelayCounts {
    /// Queries passed on to the server.
    pub to_server_forwarded: u64,
    /// Queries dropped.
    pub to_server_dropped: u64,
    /// Answers passed back to the client.
    pub to_client_forwarded: u64,
    /// Answers dropped.
    pub to_client_dropped: u64,
}

impl DnsRelayCounts {
    /// Dropped both ways.
    pub fn dropped(&self) -> u64 {
        self.to_server_dropped + self.to_client_dropped
    }

    /// What happened since `earlier`.
    pub fn since(&self, earlier: &DnsRelayCounts) -> DnsRelayCounts {
        DnsRelayCounts {
            to_server_forwarded: self.to_server_forwarded - earlier.to_server_forwarded,
            to_server_dropped: self.to_server_dropped - earlier.to_server_dropped,
            to_client_forwarded: self.to_client_forwarded - earlier.to_client_forwarded,
            to_client_dropped: self.to_client_dropped - earlier.to_client_dropped,
        }
    }
}

/// One direction's counters.
#[derive(Debug, Default)]
struct Way {
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    path: Switch,
    rng: Rng,
    to_server: Way,
    to_client: Way,
    /// Queries sent upstream and not yet answered, by the relay's ID.
    pending: Mutex<Pending>,
}

/// A datagram on its way: when it is due, what, and where to.
type Outgoing = (Instant, Vec<u8>, SocketAddr);

/// How long an unanswered query's ID stays taken (far longer than any resolver waits).
pub const FORGET: Duration = Duration::from_secs(10);
/// The largest UDP datagram relayed whole, bytes: EDNS buffer sizes stop at 4,096 in practice
/// (and the DNS Flag Day 2020 value is 1,232); a larger one arrives cut.
const MAX_DATAGRAM: usize = 4096;
/// A DNS header: the ID is its first two bytes.
const HEADER: usize = 12;

/// The relay's IDs of queries in flight upstream.
#[derive(Debug, Default)]
struct Pending {
    next: u16,
    /// Relay ID → (client, client's ID, sent at).
    by_id: HashMap<u16, (SocketAddr, u16, Instant)>,
    /// When IDs older than [`FORGET`] were last given back.
    swept: Option<Instant>,
}

impl Pending {
    /// A free relay ID for `client`'s query `id`, or `None` when all 65,536 are in flight.
    fn assign(&mut self, client: SocketAddr, id: u16, now: Instant) -> Option<u16> {
        if self.swept.is_none_or(|at| now.duration_since(at) >= FORGET) {
            self.by_id
                .retain(|_, (_, _, sent)| now.duration_since(*sent) < FORGET);
            self.swept = Some(now);
        }
        if self.by_id.len() > usize::from(u16::MAX) {
            return None;
        }
        loop {
            let ours = self.next;
            self.next = self.next.wrapping_add(1);
            if let std::collections::hash_map::Entry::Vacant(e) = self.by_id.entry(ours) {
                e.insert((client, id, now));
                return Some(ours);
            }
        }
    }

    /// Who asked the query the relay sent as `ours`, under which ID; forgets it.
    fn answered(&mut self, ours: u16) -> Option<(SocketAddr, u16)> {
        self.by_id.remove(&ours).map(|(client, id, _)| (client, id))
    }
}

impl DnsRelay {
    /// A relay on an ephemeral loopback port (UDP and TCP) to the DNS server at `upstream`,
    /// over `path`; with `seed`, the jitter and losses are the same on every run. Must be called
    /// within a tokio runtime.
    pub async fn start(
        upstream: SocketAddr,
        path: Path,
        seed: Option<u64>,
    ) -> anyhow::Result<DnsRelay> {
        let (udp, tcp) = crate::dns::bind_pair().await?;
        let addr = udp.local_addr()?;
        let tcp = Relay::start_on(tcp, upstream, path)?;
        let forwarding = UdpSocket::bind("127.0.0.1:0").await?;
        forwarding.connect(upstream).await?;
        let shared = Arc::new(Shared {
            path: Switch::new(path),
            rng: seed.map_or_else(Rng::from_clock, Rng::seeded),
            to_server: Way::default(),
            to_client: Way::default(),
            pending: Mutex::new(Pending::default()),
        });
        let (listening, forwarding) = (Arc::new(udp), Arc::new(forwarding));
        let (queries, queued) = mpsc::unbounded_channel();
        let (answers, answered) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(take_queries(
                Arc::clone(&shared),
                Arc::clone(&listening),
                queries,
                upstream,
            )),
            tokio::spawn(take_answers(
                Arc::clone(&shared),
                Arc::clone(&forwarding),
                answers,
            )),
            tokio::spawn(deliver(forwarding, queued)),
            tokio::spawn(deliver(listening, answered)),
        ];
        Ok(DnsRelay {
            addr,
            shared,
            tcp,
            tasks,
        })
    }

    /// Where resolvers send their queries (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the path for datagrams (and TCP bytes) read from now on.
    pub fn set_path(&self, path: Path) {
        self.shared.path.set(path);
        self.tcp.set_path(path);
    }

    /// The path now.
    pub fn path(&self) -> Path {
        self.shared.path.get()
    }

    /// Datagrams forwarded and dropped so far.
    pub fn counts(&self) -> DnsRelayCounts {
        let s = &self.shared;
        DnsRelayCounts {
            to_server_forwarded: s.to_server.forwarded.load(Ordering::Relaxed),
            to_server_dropped: s.to_server.dropped.load(Ordering::Relaxed),
            to_client_forwarded: s.to_client.forwarded.load(Ordering::Relaxed),
            to_client_dropped: s.to_client.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for DnsRelay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    /// Whether a datagram of `len` bytes read now in this direction is lost; if not, when it
    /// is due.
    fn schedule(
        &self,
        way: &Way,
        direction: fn(&Path) -> Impairment,
        link: &mut DelayLine,
        len: usize,
    ) -> Option<Instant> {
        let impairment = direction(&self.path.get());
        if self.rng.lost(impairment.loss) {
            way.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        way.forwarded.fetch_add(1, Ordering::Relaxed);
        let u = if impairment.jitter.is_zero() {
            0.5
        } else {
            self.rng.uniform()
        };
        Some(link.due_datagram(Instant::now(), len, &impairment, u))
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads the clients' queries until aborted: each one not lost goes upstream under a relay ID
/// when due.
async fn take_queries(
    shared: Arc<Shared>,
    listening: Arc<UdpSocket>,
    queries: mpsc::UnboundedSender<Outgoing>,
    upstream: SocketAddr,
) {
    let mut link = DelayLine::default();
    let mut buf = vec![0_u8; MAX_DATAGRAM];
    loop {
        let Ok((len, client)) = listening.recv_from(&mut buf).await else {
            // E.g. ICMP errors reported on the socket: keep serving, without spinning.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        if len < HEADER {
            continue;
        }
        let Some(due) = shared.schedule(&shared.to_server, |p| p.to_server, &mut link, len) else {
            continue;
        };
        let theirs = u16::from_be_bytes([buf[0], buf[1]]);
        let Some(ours) = shared.pending().assign(client, theirs, Instant::now()) else {
            continue;
        };
        let mut query = buf[..len].to_vec();
        query[..2].copy_from_slice(&ours.to_be_bytes());
        if queries.send((due, query, upstream)).is_err() {
            return;
        }
    }
}

/// Reads the server's answers until aborted: each one not lost goes back, under the client's
/// ID, to the client that asked, when due. Answers to no query in flight are dropped.
async fn take_answers(
    shared: Arc<Shared>,
    forwarding: Arc<UdpSocket>,
    answers: mpsc::UnboundedSender<Outgoing>,
) {
    let mut link = DelayLine::default();
    let mut buf = vec![0_u8; MAX_DATAGRAM];
    loop {
        let Ok(len) = forwarding.recv(&mut buf).await else {
            // E.g. "connection refused" from a server not (yet) listening.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        if len < HEADER {
            continue;
        }
        let ours = u16::from_be_bytes([buf[0], buf[1]]);
        let Some((client, theirs)) = shared.pending().answered(ours) else {
            continue;
        };
        let Some(due) = shared.schedule(&shared.to_client, |p| p.to_client, &mut link, len) else {
            continue;
        };
        let mut answer = buf[..len].to_vec();
        answer[..2].copy_from_slice(&theirs.to_be_bytes());
        if answers.send((due, answer, client)).is_err() {
            return;
        }
    }
}

/// Sends each datagram from `socket` when it is due, earliest first, until its senders are
/// gone and nothing waits.
async fn deliver(socket: Arc<UdpSocket>, mut arriving: mpsc::UnboundedReceiver<Outgoing>) {
    // By due time, then arrival (the counter), so that equal times keep their order.
    type Waiting = Reverse<(Instant, u64, Vec<u8>, SocketAddr)>;
    let mut waiting: BinaryHeap<Waiting> = BinaryHeap::new();
    let mut arrivals = 0_u64;
    let mut open = true;
    while open || !waiting.is_empty() {
        let next = waiting.peek().map(|Reverse((due, ..))| *due);
        tokio::select! {
            got = arriving.recv(), if open => match got {
                Some((due, datagram, to)) => {
                    arrivals += 1;
                    waiting.push(Reverse((due, arrivals, datagram, to)));
                }
                None => open = false,
            },
            () = sleep_until_some(next) => {
                let now = Instant::now();
                while waiting.peek().is_some_and(|Reverse((due, ..))| *due <= now) {
                    if let Some(Reverse((_, _, datagram, to))) = waiting.pop() {
                        let _ = socket.send_to(&datagram, to).await;
                    }
                }
            }
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::dns::{DnsServer, Zone};

    async fn server() -> DnsServer {
        DnsServer::start(Zone::new().txt("a.test.", &[b"hello"]))
            .await
            .unwrap()
    }

    fn query(id: u16) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.add_query(Query::query(
            Name::from_ascii("a.test.").unwrap(),
            RecordType::TXT,
        ));
        m.to_vec().unwrap()
    }

    /// Sends `n` queries from one socket, then waits `wait` for answers; returns the ids
    /// answered and when the first answer came.
    async fn ask(relay: &DnsRelay, n: u16, wait: Duration) -> (Vec<u16>, Option<Duration>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(relay.addr()).await.unwrap();
        let started = std::time::Instant::now();
        for id in 0..n {
            socket.send(&query(id)).await.unwrap();
        }
        let mut ids = Vec::new();
        let mut first = None;
        let mut buf = vec![0_u8; 4096];
        let deadline = Instant::now() + wait;
        while let Ok(Ok(len)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            first.get_or_insert_with(|| started.elapsed());
            ids.push(Message::from_vec(&buf[..len]).unwrap().metadata.id);
            if ids.len() == usize::from(n) {
                break;
            }
        }
        ids.sort_unstable();
        (ids, first)
    }

    #[tokio::test]
    async fn answers_come_back_after_the_round_trip() {
        let dns = server().await;
        let path = Path::round_trip(Duration::from_millis(80), Duration::ZERO, 0.0);
        let relay = DnsRelay::start(dns.addr(), path, Some(1)).await.unwrap();
        let (ids, first) = ask(&relay, 3, Duration::from_secs(2)).await;
        assert_eq!(ids, vec![0, 1, 2]);
        let first = first.unwrap();
        assert!(
            first >= Duration::from_millis(80) && first < Duration::from_millis(500),
            "{first:?}"
        );
        let c = relay.counts();
        assert_eq!(
            (c.to_server_forwarded, c.to_client_forwarded, c.dropped()),
            (3, 3, 0)
        );
        // Two clients, each its own answers.
        let (a, b) = tokio::join!(
            ask(&relay, 5, Duration::from_secs(2)),
            ask(&relay, 7, Duration::from_secs(2))
        );
        assert_eq!(
            a.0,
            (0..5).collect::<Vec<u16>>(),
            "each client its own answers"
        );
        assert_eq!(
            b.0,
            (0..7).collect::<Vec<u16>>(),
            "each client its own answers"
        );
    }

    #[tokio::test]
    async fn with_total_loss_nothing_arrives_and_without_loss_everything_does() {
        let dns = server().await;
        let lossy = Path::round_trip(Duration::from_millis(10), Duration::ZERO, 1.0);
        let relay = DnsRelay::start(dns.addr(), lossy, Some(2)).await.unwrap();
        let (ids, _) = ask(&relay, 20, Duration::from_millis(300)).await;
        assert!(ids.is_empty(), "{ids:?}");
        assert_eq!(relay.counts().to_server_dropped, 20);
        assert!(dns.queries().is_empty(), "no query reached the server");

        relay.set_path(Path::round_trip(
            Duration::from_millis(10),
            Duration::from_millis(5),
            0.0,
        ));
        let (ids, _) = ask(&relay, 100, Duration::from_secs(2)).await;
        assert_eq!(ids, (0..100).collect::<Vec<u16>>());
        assert_eq!(relay.counts().dropped(), 20);
    }

    #[tokio::test]
    async fn answers_alone_can_be_lost() {
        let dns = server().await;
        let path = Path {
            to_server: Impairment::default(),
            to_client: Impairment {
                loss: 1.0,
                ..Impairment::default()
            },
        };
        let relay = DnsRelay::start(dns.addr(), path, Some(3)).await.unwrap();
        let (ids, _) = ask(&relay, 10, Duration::from_millis(300)).await;
        assert!(ids.is_empty());
        assert_eq!(dns.queries().len(), 10, "the queries got through");
        let c = relay.counts();
        assert_eq!((c.to_server_forwarded, c.to_client_dropped), (10, 10));
    }

    #[tokio::test]
    async fn tcp_goes_through_on_the_same_port() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let dns = server().await;
        let path = Path::round_trip(Duration::from_millis(40), Duration::ZERO, 1.0);
        let relay = DnsRelay::start(dns.addr(), path, None).await.unwrap();
        let mut c = tokio::net::TcpStream::connect(relay.addr()).await.unwrap();
        let q = query(9);
        let started = std::time::Instant::now();
        let mut framed = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        c.write_all(&framed).await.unwrap();
        let mut len = [0_u8; 2];
        c.read_exact(&mut len).await.unwrap();
        let mut answer = vec![0_u8; usize::from(u16::from_be_bytes(len))];
        c.read_exact(&mut answer).await.unwrap();
        assert_eq!(Message::from_vec(&answer).unwrap().metadata.id, 9);
        assert!(started.elapsed() >= Duration::from_millis(40));
    }
}
