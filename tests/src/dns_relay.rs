//! A DNS relay on loopback that puts distance between a resolver and a DNS server (the kernel
//! here has no `netem`): each UDP datagram is delayed one way in each direction, with jitter,
//! and lost at random (independently per direction, [`Impairment::loss`]); TCP on the same port
//! number (for truncated answers) goes through a [`Relay`] with the same delays and no loss.
//!
//! Each client address gets its own upstream socket, so a reply goes back to the client that
//! asked; a client's socket is closed after [`IDLE`] without traffic. Counters say how many
//! datagrams went each way and how many were dropped ([`DnsRelay::counts`]). The path can be
//! changed while in use ([`DnsRelay::set_path`]); a seed makes the losses repeatable.

use std::collections::HashMap;
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
    task: JoinHandle<()>,
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
    upstream: SocketAddr,
    path: Switch,
    rng: Rng,
    to_server: Way,
    to_client: Way,
}

/// A datagram on its way, and when it is due.
type Line = mpsc::UnboundedSender<(Instant, Vec<u8>)>;

/// A client's upstream: where its queries go, and their delay line.
#[derive(Debug)]
struct Client {
    queries: Line,
    delays: DelayLine,
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
        let shared = Arc::new(Shared {
            upstream,
            path: Switch::new(path),
            rng: seed.map_or_else(Rng::from_clock, Rng::seeded),
            to_server: Way::default(),
            to_client: Way::default(),
        });
        let task = tokio::spawn(serve(Arc::clone(&shared), Arc::new(udp)));
        Ok(DnsRelay {
            addr,
            shared,
            tcp,
            task,
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
        self.task.abort();
    }
}

impl Shared {
    /// Whether a datagram of `len` bytes read now in this direction is lost; if not, when it
    /// is due on `delays`.
    fn schedule(
        &self,
        way: &Way,
        direction: fn(&Path) -> Impairment,
        delays: &mut DelayLine,
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
        Some(delays.due(Instant::now(), len, &impairment, u))
    }
}

/// Reads queries until aborted; each client's own task (aborted with this one's `JoinSet`)
/// carries them upstream and its answers back.
async fn serve(shared: Arc<Shared>, listening: Arc<UdpSocket>) {
    let mut clients: HashMap<SocketAddr, Client> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let closed = Arc::new(Mutex::new(Vec::<SocketAddr>::new()));
    let mut buf = vec![0_u8; 65_535];
    loop {
        let Ok((len, peer)) = listening.recv_from(&mut buf).await else {
            // E.g. ICMP errors reported on the socket: keep serving, without spinning.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        for gone in std::mem::take(&mut *closed.lock().unwrap_or_else(PoisonError::into_inner)) {
            clients.remove(&gone);
        }
        while tasks.try_join_next().is_some() {}
        let client = match clients.entry(peer) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let Ok(upstream) = UdpSocket::bind("127.0.0.1:0").await else {
                    continue;
                };
                if upstream.connect(shared.upstream).await.is_err() {
                    continue;
                }
                let (queries, arriving) = mpsc::unbounded_channel();
                tasks.spawn(carry(
                    Arc::clone(&shared),
                    Arc::clone(&listening),
                    Arc::new(upstream),
                    peer,
                    arriving,
                    Arc::clone(&closed),
                ));
                e.insert(Client {
                    queries,
                    delays: DelayLine::default(),
                })
            }
        };
        let Some(due) =
            shared.schedule(&shared.to_server, |p| p.to_server, &mut client.delays, len)
        else {
            continue;
        };
        if client.queries.send((due, buf[..len].to_vec())).is_err() {
            // Its task ended (idle) between two queries: this one is lost, the next one opens
            // a new upstream.
            clients.remove(&peer);
        }
    }
}

/// One client's traffic: its queries to the server when due, the server's answers back to it
/// when due; ends after [`IDLE`] without an answer and no query waiting.
async fn carry(
    shared: Arc<Shared>,
    listening: Arc<UdpSocket>,
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    mut queries: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    closed: Arc<Mutex<Vec<SocketAddr>>>,
) {
    let (answers, mut answering) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let sending = {
        let upstream = Arc::clone(&upstream);
        async move {
            while let Some((due, query)) = queries.recv().await {
                tokio::time::sleep_until(due).await;
                let _ = upstream.send(&query).await;
            }
        }
    };
    let receiving = async move {
        let mut delays = DelayLine::default();
        let mut buf = vec![0_u8; MAX_ANSWER];
        loop {
            match tokio::time::timeout(IDLE, upstream.recv(&mut buf)).await {
                Err(_) => break,
                // E.g. "connection refused" from a server not (yet) listening.
                Ok(Err(_)) => continue,
                Ok(Ok(len)) => {
                    let Some(due) =
                        shared.schedule(&shared.to_client, |p| p.to_client, &mut delays, len)
                    else {
                        continue;
                    };
                    if answers.send((due, buf[..len].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let replying = async move {
        while let Some((due, answer)) = answering.recv().await {
            tokio::time::sleep_until(due).await;
            let _ = listening.send_to(&answer, client).await;
        }
    };
    // Idle: the receiver gave up; the answers already due still go out.
    tokio::select! {
        () = sending => {}
        ((), ()) = async { tokio::join!(receiving, replying) } => {}
    }
    closed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(client);
}

/// How long a client's upstream socket stays open without traffic (longer than a resolver
/// usually waits for an answer). A resolver that asks from a new port each time holds
/// (queries per second × this) sockets and tasks here.
pub const IDLE: Duration = Duration::from_secs(5);
/// The largest UDP answer relayed whole, bytes: EDNS buffer sizes stop at 4,096 in practice
/// (and the DNS Flag Day 2020 value is 1,232); a larger one arrives cut. Kept small because
/// each client's task holds a buffer of it.
const MAX_ANSWER: usize = 4096;

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
        assert_eq!((a.0.len(), b.0.len()), (5, 7));
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
