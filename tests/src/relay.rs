//! A TCP relay on loopback that stands where a load balancer or a Kubernetes Service would:
//! each new connection goes to the backend of the moment, which a test can switch (a rolling
//! restart: new connections reach the new instance while the old one drains its own), and every
//! byte can be held for a fixed latency in each direction (the kernel here has no `netem`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

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
    latency: Duration,
    /// Connections relayed, per backend in the order they were set.
    connections: Mutex<Vec<(SocketAddr, Arc<AtomicUsize>)>>,
}

impl Relay {
    /// A relay on an ephemeral loopback port to `backend`, holding every byte `latency` in
    /// each direction.
    pub async fn start(backend: SocketAddr, latency: Duration) -> anyhow::Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            backend: Mutex::new(backend),
            latency,
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
                        relay(client, server, shared.latency).await;
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

/// Copies both ways until either side closes, each chunk delivered `latency` after it was read
/// (a delay line: the latency does not limit throughput).
async fn relay(client: TcpStream, server: TcpStream, latency: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        one_way(client_read, server_write, latency),
        one_way(server_read, client_write, latency),
    );
}

async fn one_way(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    latency: Duration,
) {
    let (line, mut arriving) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if line
                        .send((Instant::now() + latency, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping the sender tells the writer that the stream has ended.
    };
    let writing = async move {
        while let Some((due, chunk)) = arriving.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
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
}
