//! A TCP relay on loopback that stands where a load balancer or a Kubernetes Service would:
//! each new connection goes to the backend of the moment, which a test can switch (a rolling
//! restart: new connections reach the new instance while the old one drains its own), and every
//! byte can be held for a latency in each direction (the kernel here has no `netem`), with
//! jitter and a bandwidth limit per direction ([`Path`], switchable while connections are open:
//! [`Relay::set_path`]). Jitter never reorders a connection's bytes ([`DelayLine`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::impair::{DelayLine, Impairment, Path, Rng, Switch};

/// A running relay; it stops when dropped.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    backend: Mutex<SocketAddr>,
    path: Switch,
    rng: Rng,
    /// Connections relayed, per backend in the order they were set.
    connections: Mutex<Vec<(SocketAddr, Arc<AtomicUsize>)>>,
}

impl Relay {
    /// A relay on an ephemeral loopback port to `backend`, holding every byte `latency` in
    /// each direction.
    pub async fn start(backend: SocketAddr, latency: Duration) -> anyhow::Result<Relay> {
        let path = Path::symmetric(Impairment::delay(latency));
        Relay::start_on(TcpListener::bind("127.0.0.1:0").await?, backend, path)
    }

    /// A relay on an ephemeral loopback port to `backend` over `path`.
    pub async fn with_path(backend: SocketAddr, path: Path) -> anyhow::Result<Relay> {
        Relay::start_on(TcpListener::bind("127.0.0.1:0").await?, backend, path)
    }

    /// A relay accepting on `listener` (e.g. bound to the port of a UDP relay) to `backend`
    /// over `path`. Must be called within a tokio runtime.
    pub fn start_on(
        listener: TcpListener,
        backend: SocketAddr,
        path: Path,
    ) -> anyhow::Result<Relay> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            backend: Mutex::new(backend),
            path: Switch::new(path),
            rng: Rng::from_clock(),
            connections: Mutex::new(vec![(backend, Arc::default())]),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let (backend, count) = shared.current();
                    if let Ok(server) = TcpStream::connect(backend).await {
                        count.fetch_add(1, Ordering::SeqCst);
                        relay(client, server, &shared).await;
                    }
                });
            }
        });
        Ok(Relay { addr, shared, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the path; bytes read from now on, on open connections too, take the new one.
    pub fn set_path(&self, path: Path) {
        self.shared.path.set(path);
    }

    /// The path now.
    pub fn path(&self) -> Path {
        self.shared.path.get()
    }

    /// Sends new connections to `backend`; open ones stay where they are.
    pub fn set_backend(&self, backend: SocketAddr) {
        if let Ok(mut current) = self.shared.backend.lock() {
            *current = backend;
        }
        if let Ok(mut connections) = self.shared.connections.lock() {
            connections.push((backend, Arc::default()));
        }
    }

    /// Connections relayed to `backend` so far.
    pub fn connections_to(&self, backend: SocketAddr) -> usize {
        self.shared.connections.lock().map_or(0, |c| {
            c.iter()
                .filter(|(b, _)| *b == backend)
                .map(|(_, n)| n.load(Ordering::SeqCst))
                .sum()
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn current(&self) -> (SocketAddr, Arc<AtomicUsize>) {
        let backend = self.backend.lock().map_or_else(|e| *e.into_inner(), |b| *b);
        let count = self
            .connections
            .lock()
            .ok()
            .and_then(|c| {
                c.iter()
                    .rev()
                    .find(|(b, _)| *b == backend)
                    .map(|(_, n)| n.clone())
            })
            .unwrap_or_default();
        (backend, count)
    }
}

/// Copies both ways until either side closes, each chunk delivered when the path's direction
/// says (a delay line: the delay does not limit throughput; the bandwidth does).
async fn relay(client: TcpStream, server: TcpStream, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        one_way(client_read, server_write, shared, |p| p.to_server),
        one_way(server_read, client_write, shared, |p| p.to_client),
    );
}

async fn one_way(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: &Shared,
    direction: fn(&Path) -> Impairment,
) {
    let (line, mut arriving) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut delays = DelayLine::default();
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let impairment = direction(&shared.path.get());
                    let u = if impairment.jitter.is_zero() {
                        0.5
                    } else {
                        shared.rng.uniform()
                    };
                    let due = delays.due(Instant::now(), n, &impairment, u);
                    if line.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping the sender tells the writer that the stream has ended.
    };
    let writing = async move {
        // A chunk read while the one before was being written, and not yet due.
        let mut held = None;
        let mut out = Vec::new();
        loop {
            let next = match held.take() {
                Some(chunk) => Some(chunk),
                None => arriving.recv().await,
            };
            let Some((due, chunk)) = next else {
                break;
            };
            tokio::time::sleep_until(due).await;
            // Whatever else is due by now goes in the same write: one system call, not one a
            // chunk, when many are queued (the relay's CPU is the bench's, not the fleet's).
            out.clear();
            out.extend_from_slice(&chunk);
            let now = Instant::now();
            while let Ok((due, chunk)) = arriving.try_recv() {
                if due > now {
                    held = Some((due, chunk));
                    break;
                }
                out.extend_from_slice(&chunk);
            }
            if to.write_all(&out).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn bytes_arrive_late_and_new_connections_follow_the_backend() {
        let (first, second) = (echo().await, echo().await);
        let relay = Relay::start(first, Duration::from_millis(50))
            .await
            .unwrap();
        let mut c = TcpStream::connect(relay.addr()).await.unwrap();
        let started = std::time::Instant::now();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "there and back"
        );
        relay.set_backend(second);
        let mut d = TcpStream::connect(relay.addr()).await.unwrap();
        d.write_all(b"pong").await.unwrap();
        d.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        assert_eq!(relay.connections_to(first), 1);
        assert_eq!(relay.connections_to(second), 1);
    }

    #[tokio::test]
    async fn a_round_trip_takes_both_delays() {
        let path = Path {
            to_server: Impairment::delay(Duration::from_millis(30)),
            to_client: Impairment::delay(Duration::from_millis(50)),
        };
        let relay = Relay::with_path(echo().await, path).await.unwrap();
        let mut c = TcpStream::connect(relay.addr()).await.unwrap();
        for _ in 0..3 {
            let started = std::time::Instant::now();
            c.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).await.unwrap();
            assert!(
                started.elapsed() >= Duration::from_millis(80),
                "30 ms there and 50 ms back: {:?}",
                started.elapsed()
            );
        }
        // Switched off on the open connection.
        relay.set_path(Path::default());
        let started = std::time::Instant::now();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(60),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn jitter_never_reorders_a_connection() {
        let jittery = Impairment {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(20),
            ..Impairment::default()
        };
        let relay = Relay::with_path(echo().await, Path::symmetric(jittery))
            .await
            .unwrap();
        let c = TcpStream::connect(relay.addr()).await.unwrap();
        c.set_nodelay(true).unwrap();
        let (mut r, mut w) = c.into_split();
        const N: u32 = 200;
        let writer = tokio::spawn(async move {
            for i in 0..N {
                w.write_all(&i.to_be_bytes()).await.unwrap();
                // Separate reads in the relay, so each chunk draws its own jitter.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            w
        });
        for want in 0..N {
            let mut buf = [0u8; 4];
            r.read_exact(&mut buf).await.unwrap();
            assert_eq!(u32::from_be_bytes(buf), want, "bytes out of order");
        }
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_bandwidth_limit_slows_a_large_transfer() {
        const SIZE: usize = 256 * 1024;
        const RATE: u64 = 1024 * 1024;
        let path = Path {
            to_server: Impairment {
                bandwidth: Some(RATE),
                ..Impairment::default()
            },
            to_client: Impairment::default(),
        };
        let relay = Relay::with_path(echo().await, path).await.unwrap();
        let c = TcpStream::connect(relay.addr()).await.unwrap();
        let (mut r, mut w) = c.into_split();
        let started = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            w.write_all(&vec![7u8; SIZE]).await.unwrap();
            w
        });
        let mut back = vec![0u8; SIZE];
        r.read_exact(&mut back).await.unwrap();
        let elapsed = started.elapsed();
        drop(writer.await.unwrap());
        assert!(back.iter().all(|&b| b == 7));
        let floor = Duration::from_secs_f64(SIZE as f64 / RATE as f64);
        assert!(elapsed >= floor, "{elapsed:?} < {floor:?} (size / rate)");
    }
}
