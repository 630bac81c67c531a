//! Distance made in user space (the kernel here has no `netem`): a one-way delay, jitter, a
//! bandwidth limit and random loss, as the TCP [`relay`](crate::relay) and the DNS
//! [`dns_relay`](crate::dns_relay) apply them to each chunk or datagram they forward.
//!
//! A [`DelayLine`] keeps the order of a byte stream: a chunk is never due before the one read
//! before it, whatever the jitter drew (a TCP byte stream must not be reordered); datagrams
//! ([`DelayLine::due_datagram`]) may overtake each other. The bandwidth limit is a
//! serialization delay: a link of `rate` bytes per second is busy `len / rate` with each chunk,
//! and a chunk waits for the link to be free before its own delay starts.

use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

/// What one direction of a path does to what it carries.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Impairment {
    /// One-way delay.
    pub delay: Duration,
    /// Jitter: each chunk's delay is `delay` plus a uniform draw in `-jitter..=jitter` (never
    /// below zero, never before the chunk before it).
    pub jitter: Duration,
    /// Bytes per second, or `None` for no limit.
    pub bandwidth: Option<u64>,
    /// The probability that a datagram is lost (0..=1). Only datagrams are dropped: a TCP
    /// relay ignores it (TCP would send the lost segment again).
    pub loss: f64,
}

impl Impairment {
    /// A fixed one-way delay and nothing else.
    pub fn delay(delay: Duration) -> Impairment {
        Impairment {
            delay,
            ..Impairment::default()
        }
    }

    /// This chunk's delay for a uniform draw `u` in `0..1` (the jitter's share).
    pub fn delay_for(&self, u: f64) -> Duration {
        let jitter = self.jitter.as_secs_f64();
        let secs = self.delay.as_secs_f64() + jitter * (2.0 * u - 1.0);
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// How long the link is busy sending `len` bytes.
    pub fn serialization(&self, len: usize) -> Duration {
        match self.bandwidth {
            Some(rate) if rate > 0 => Duration::from_secs_f64(len as f64 / rate as f64),
            _ => Duration::ZERO,
        }
    }
}

/// Both directions of a path: towards the server (the backend, upstream) and back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Path {
    /// Client to server.
    pub to_server: Impairment,
    /// Server to client.
    pub to_client: Impairment,
}

impl Path {
    /// The same impairment both ways.
    pub fn symmetric(each_way: Impairment) -> Path {
        Path {
            to_server: each_way,
            to_client: each_way,
        }
    }

    /// A round trip of `rtt` (half of it each way), with `jitter` each way and `loss` each way.
    pub fn round_trip(rtt: Duration, jitter: Duration, loss: f64) -> Path {
        Path::symmetric(Impairment {
            delay: rtt / 2,
            jitter,
            bandwidth: None,
            loss,
        })
    }
}

/// A path that can be changed while it is in use (e.g. all delays off for a baseline phase).
#[derive(Debug, Default)]
pub struct Switch(RwLock<Path>);

impl Switch {
    /// Starts at `path`.
    pub fn new(path: Path) -> Switch {
        Switch(RwLock::new(path))
    }

    /// The path now.
    pub fn get(&self) -> Path {
        *self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes it; chunks read from now on see the new one.
    pub fn set(&self, path: Path) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = path;
    }
}

/// When each chunk (or datagram) of one direction is due.
#[derive(Debug, Default)]
pub struct DelayLine {
    /// When the previous chunk is due.
    last_due: Option<Instant>,
    /// When the link has finished sending what it was given (the bandwidth limit).
    link_free: Option<Instant>,
}

impl DelayLine {
    /// When a chunk of `len` bytes read at `now` is due, for the uniform draw `u` in `0..1`.
    pub fn due(&mut self, now: Instant, len: usize, impairment: &Impairment, u: f64) -> Instant {
        let due = self.due_datagram(now, len, impairment, u);
        let due = self.last_due.map_or(due, |last| last.max(due));
        self.last_due = Some(due);
        due
    }

    /// When a datagram of `len` bytes read at `now` is due, for the uniform draw `u`: as
    /// [`due`](Self::due) but free to overtake the datagram before it when jitter says so.
    pub fn due_datagram(
        &mut self,
        now: Instant,
        len: usize,
        impairment: &Impairment,
        u: f64,
    ) -> Instant {
        let start = self.link_free.map_or(now, |free| free.max(now));
        let sent = start + impairment.serialization(len);
        self.link_free = Some(sent);
        sent + impairment.delay_for(u)
    }
}

/// A small seedable generator (SplitMix64): deterministic tests without a dependency. Not for
/// anything that needs unpredictability.
#[derive(Debug)]
pub struct Rng(Mutex<u64>);

impl Rng {
    /// Seeded: the same seed gives the same draws.
    pub fn seeded(seed: u64) -> Rng {
        Rng(Mutex::new(seed))
    }

    /// Seeded from the clock.
    pub fn from_clock() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Rng::seeded(nanos as u64 ^ u64::from(std::process::id()))
    }

    /// A uniform draw in `0..1`.
    pub fn uniform(&self) -> f64 {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits make an f64 in [0, 1).
        (z >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// Whether a datagram is lost under `loss`.
    pub fn lost(&self, loss: f64) -> bool {
        loss > 0.0 && self.uniform() < loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_keeps_order_adds_delay_and_serializes() {
        struct Case {
            name: &'static str,
            impairment: Impairment,
            /// (read at ms, bytes, draw) per chunk.
            chunks: &'static [(u64, usize, f64)],
            /// Due at ms.
            want: &'static [u64],
        }
        let ms = Duration::from_millis;
        let cases = [
            Case {
                name: "fixed delay",
                impairment: Impairment::delay(ms(40)),
                chunks: &[(0, 10, 0.5), (5, 10, 0.5)],
                want: &[40, 45],
            },
            Case {
                name: "jitter never delivers before the chunk before",
                impairment: Impairment {
                    delay: ms(40),
                    jitter: ms(10),
                    ..Impairment::default()
                },
                // The first draws +10 ms, the second -10 ms: it would be due at 31 ms.
                chunks: &[(0, 10, 1.0), (1, 10, 0.0)],
                want: &[50, 50],
            },
            Case {
                name: "jitter below the delay is clamped at zero",
                impairment: Impairment {
                    delay: ms(5),
                    jitter: ms(10),
                    ..Impairment::default()
                },
                chunks: &[(0, 10, 0.0)],
                want: &[0],
            },
            Case {
                name: "1000 bytes/s: 100 bytes take 100 ms on the link, the next waits",
                impairment: Impairment {
                    delay: ms(10),
                    bandwidth: Some(1000),
                    ..Impairment::default()
                },
                chunks: &[(0, 100, 0.5), (0, 100, 0.5), (500, 100, 0.5)],
                want: &[110, 210, 610],
            },
        ];
        for c in cases {
            let t0 = Instant::now();
            let mut line = DelayLine::default();
            let got: Vec<u64> = c
                .chunks
                .iter()
                .map(|&(at, len, u)| {
                    let due = line.due(t0 + ms(at), len, &c.impairment, u);
                    due.duration_since(t0).as_millis() as u64
                })
                .collect();
            assert_eq!(got, c.want, "{}", c.name);
        }
    }

    #[test]
    fn a_datagram_may_overtake_the_one_before_but_not_the_link() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let jittery = Impairment {
            delay: ms(40),
            jitter: ms(10),
            ..Impairment::default()
        };
        let mut line = DelayLine::default();
        // +10 ms, then -10 ms a millisecond later: the second is due first.
        let first = line.due_datagram(t0, 10, &jittery, 1.0);
        let second = line.due_datagram(t0 + ms(1), 10, &jittery, 0.0);
        assert_eq!((first - t0, second - t0), (ms(50), ms(31)));
        // The link still sends one datagram after the other.
        let slow = Impairment {
            bandwidth: Some(1000),
            ..Impairment::default()
        };
        let mut line = DelayLine::default();
        let a = line.due_datagram(t0, 100, &slow, 0.5);
        let b = line.due_datagram(t0, 100, &slow, 0.5);
        assert_eq!((a - t0, b - t0), (ms(100), ms(200)));
    }

    #[test]
    fn the_generator_is_uniform_enough_and_seeded() {
        let (a, b) = (Rng::seeded(7), Rng::seeded(7));
        let draws: Vec<f64> = (0..10_000).map(|_| a.uniform()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        assert_eq!(draws[..5], (0..5).map(|_| b.uniform()).collect::<Vec<_>>());
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
        let lost = (0..10_000).filter(|_| a.lost(0.01)).count();
        assert!((50..=150).contains(&lost), "1 % of 10,000: {lost}");
        assert_eq!((0..1000).filter(|_| a.lost(0.0)).count(), 0);
        assert_eq!((0..1000).filter(|_| a.lost(1.0)).count(), 1000);
    }
}
