//! DNS over UDP to the resolver from a small pool of connected sockets.
//!
//! hickory's UDP client opens a fresh socket per query. Against our own sidecar that is most of
//! a lookup's cost (socket, bind, two epoll registrations and close per query) and, worse,
//! every query holds a kernel connection-tracking entry for 30 s: at a few thousand lookups a
//! second the table fills and lookups start failing. Here a socket is connected to the
//! resolver once (the kernel then drops datagrams from any other source), used for one
//! exchange at a time and put back when the exchange ends, answered, timed out or cancelled
//! (the CAA climb drops the lookups it no longer needs). A socket whose send or receive failed
//! is closed.
//!
//! Matching follows RFC 1035 7.3 and RFC 5452 9.1: an answer is taken only when it comes from
//! the resolver's address and port (the connected socket), carries the query's random ID, is a
//! response, and repeats the question; anything else (the late answer to an earlier, timed-out
//! or cancelled exchange on the same socket, say) is ignored and the wait goes on.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;

use hickory_proto::op::{Message, MessageType};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Idle sockets kept per resolver; more may be open while more lookups run at once, and
/// those are closed after use.
const MAX_IDLE: usize = 256;

/// Largest datagram we read: the EDNS payload we advertise is smaller, but a resolver that
/// ignores it must not get its answer cut short into a parse error.
const RECV_BUFFER: usize = 4096;

/// Connected UDP sockets to one resolver.
#[derive(Debug)]
pub(super) struct UdpPool {
    server: SocketAddr,
    idle: Mutex<Vec<UdpSocket>>,
    /// How long this resolver takes to answer, from the exchanges it answered.
    rtt: Mutex<RttEstimate>,
}

/// The resolver's smoothed answer time and its variation, RFC 6298 section 2 (gains 1/8 and
/// 1/4): a query is first sent again only after `srtt + 4 × rttvar`, and never before the
/// configured interval. When the resolver or this host is saturated, answers come late, not
/// lost; a fixed first resend below that lateness only multiplies the load (a saturated bench
/// fleet resent 30–45 of every 100 queries it sent), while the estimate rises with it.
///
/// Every answered exchange is a sample, measured from its last send (Karn's ambiguity: an
/// answer after a resend does not say which copy it answers). After a lost datagram the
/// answer is the resend's, and the sample is the round trip. From a resolver slower than the
/// resend the answer is an earlier copy's, and the sample understates; it still raises the
/// first resend past the one that caused it, later exchanges then wait for the answer itself,
/// and their samples take the estimate to the resolver's pace. Dropping resent samples
/// instead would leave the estimate below such a resolver for ever.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RttEstimate {
    /// Smoothed answer time, µs; 0 before the first sample.
    srtt_us: u64,
    /// Its mean deviation, µs.
    rttvar_us: u64,
}

impl RttEstimate {
    /// The estimate after an exchange answered `rtt` after its last send.
    fn sample(self, rtt: std::time::Duration) -> RttEstimate {
        let r = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        if self.srtt_us == 0 {
            return RttEstimate {
                srtt_us: r,
                rttvar_us: r / 2,
            };
        }
        RttEstimate {
            rttvar_us: (3 * self.rttvar_us + self.srtt_us.abs_diff(r)) / 4,
            srtt_us: (7 * self.srtt_us + r) / 8,
        }
    }

    /// When an unanswered query is first sent again: the estimate's timeout, at least `floor`.
    fn first_resend(self, floor: std::time::Duration) -> std::time::Duration {
        let estimate = self
            .srtt_us
            .saturating_add(self.rttvar_us.saturating_mul(4));
        floor.max(std::time::Duration::from_micros(estimate))
    }
}

/// Why a UDP exchange produced no answer (the caller words it).
#[derive(Debug)]
pub(super) enum UdpError {
    /// Nothing matching arrived before the deadline.
    Timeout,
    /// The socket could not be opened, or sending or receiving failed.
    Io(std::io::Error),
    /// The query could not be encoded.
    Encode(String),
    /// A datagram from the resolver carried this query's ID but could not be read as a DNS
    /// message (a record hickory cannot decode, say). Waiting on would only turn it into a
    /// timeout, so the exchange ends here; the caller treats it as a failure that never
    /// counts as a resolver outage.
    Undecodable(String),
}

/// What one exchange did besides its answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sent {
    /// Times the query was sent again.
    pub resends: u32,
}

impl UdpPool {
    pub(super) fn new(server: SocketAddr) -> UdpPool {
        UdpPool {
            server,
            idle: Mutex::new(Vec::new()),
            rtt: Mutex::new(RttEstimate::default()),
        }
    }

    /// Sends `query` and waits until `deadline` for its answer, sending it again after `retry`
    /// (or later, when the resolver has been answering slower: [`RttEstimate`]) and then
    /// after twice the interval before each time (a lost datagram costs one interval, not the
    /// lookup). `sent` counts the resends, whatever the result.
    ///
    /// The interval doubles because an answer that is late, not lost, is the common case
    /// when the resolver or this host is saturated: resending at a fixed interval then
    /// multiplies the load at the worst moment (at a fixed 250 ms a saturated bench fleet sent
    /// 45 resends for every 100 queries), while doubling bounds the resends of one lookup by
    /// the logarithm of the deadline over the interval (RFC 6298 section 5 backs off the same
    /// way).
    pub(super) async fn exchange(
        &self,
        query: &Message,
        deadline: Instant,
        retry: std::time::Duration,
        sent: &mut Sent,
    ) -> Result<Message, UdpError> {
        let bytes = query
            .to_vec()
            .map_err(|e| UdpError::Encode(e.to_string()))?;
        let mut lease = Lease {
            pool: self,
            socket: Some(self.take().await.map_err(UdpError::Io)?),
        };
        let estimate = self.rtt.lock().map(|e| *e).unwrap_or_default();
        let result = lease
            .exchange(query, &bytes, deadline, estimate.first_resend(retry), sent)
            .await;
        let result = result.map(|(answer, last_sent)| {
            if let Ok(mut e) = self.rtt.lock() {
                *e = e.sample(last_sent.elapsed());
            }
            answer
        });
        if matches!(result, Err(UdpError::Io(_))) {
            lease.socket = None;
        }
        result
    }

    async fn take(&self) -> std::io::Result<UdpSocket> {
        let pooled = self.idle.lock().map(|mut idle| idle.pop()).ok().flatten();
        if let Some(socket) = pooled {
            return Ok(socket);
        }
        // Port 0: the kernel picks a random ephemeral source port (RFC 5452 section 10).
        let local: SocketAddr = if self.server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(self.server).await?;
        Ok(socket)
    }

    fn give_back(&self, socket: UdpSocket) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(socket);
        }
    }
}

/// A socket taken from the pool for one exchange; it goes back when the lease is dropped,
/// whether the exchange finished or its future was dropped.
struct Lease<'a> {
    pool: &'a UdpPool,
    socket: Option<UdpSocket>,
}

impl Lease<'_> {
    async fn exchange(
        &self,
        query: &Message,
        bytes: &[u8],
        deadline: Instant,
        retry: std::time::Duration,
        sent: &mut Sent,
    ) -> Result<(Message, Instant), UdpError> {
        let Some(socket) = &self.socket else {
            return Err(UdpError::Io(std::io::ErrorKind::NotConnected.into()));
        };
        socket.send(bytes).await.map_err(UdpError::Io)?;
        let mut last_sent = Instant::now();
        // At least a millisecond apart, whatever the setting.
        let mut retry = retry.max(std::time::Duration::from_millis(1));
        let mut resend_at = Instant::now() + retry;
        loop {
            let wake = resend_at.min(deadline);
            // The exchange waits for the socket to be readable and only then reads into a
            // buffer on the stack: a waiting exchange holds no receive buffer, so memory does
            // not grow with the lookups in flight (thousands at Internet distances).
            match tokio::time::timeout_at(wake, socket.readable()).await {
                Err(_) if wake >= deadline => return Err(UdpError::Timeout),
                Err(_) => {
                    socket.send(bytes).await.map_err(UdpError::Io)?;
                    last_sent = Instant::now();
                    sent.resends += 1;
                    retry = retry.saturating_mul(2);
                    resend_at += retry;
                }
                Ok(Err(e)) => return Err(UdpError::Io(e)),
                Ok(Ok(())) => {
                    let mut buffer = [0u8; RECV_BUFFER];
                    let reply = match socket.try_recv(&mut buffer) {
                        Ok(n) => read_reply(query, &buffer[..n]),
                        // Readiness was stale; the next wait clears it.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Reply::Stray,
                        Err(e) => return Err(UdpError::Io(e)),
                    };
                    match reply {
                        Reply::Answer(answer) => return Ok((answer, last_sent)),
                        Reply::Undecodable(why) => return Err(UdpError::Undecodable(why)),
                        Reply::Stray => {}
                    }
                }
            }
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(socket) = self.socket.take() {
            self.pool.give_back(socket);
        }
    }
}

/// `datagram` parsed, when it answers `query`: same ID, a response, the same question.
pub fn answer_to(query: &Message, datagram: &[u8]) -> Option<Message> {
    match read_reply(query, datagram) {
        Reply::Answer(answer) => Some(answer),
        Reply::Undecodable(_) | Reply::Stray => None,
    }
}

/// What a datagram from the resolver is to the exchange of `query`.
#[derive(Debug)]
enum Reply {
    /// Its answer: same ID, a response, the same question.
    Answer(Message),
    /// It carries the query's ID and is long enough to be a DNS message, but does not parse.
    Undecodable(String),
    /// Anything else: another ID (a late answer to an earlier exchange), our own query echoed,
    /// another question. Skipped.
    Stray,
}

/// The length of a DNS header (RFC 1035 4.1.1).
const HEADER_LEN: usize = 12;

fn read_reply(query: &Message, datagram: &[u8]) -> Reply {
    // The ID first, before parsing anything (cheap, and most strays fail here).
    let Some(id) = datagram
        .first_chunk::<2>()
        .map(|id| u16::from_be_bytes(*id))
    else {
        return Reply::Stray;
    };
    if id != query.metadata.id || datagram.len() < HEADER_LEN {
        return Reply::Stray;
    }
    match Message::from_vec(datagram) {
        Ok(answer)
            if answer.metadata.message_type == MessageType::Response
                && answer.queries == query.queries =>
        {
            Reply::Answer(answer)
        }
        Ok(_) => Reply::Stray,
        // The QR bit (RFC 1035 4.1.1, the first bit of the third byte): only a response that
        // cannot be read ends the exchange.
        Err(e) if datagram[2] & 0x80 != 0 => Reply::Undecodable(e.to_string()),
        Err(_) => Reply::Stray,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use std::sync::Arc;
    use std::time::Duration;

    fn query(name: &str) -> Message {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::CAA,
        ));
        m
    }

    /// A resolver on loopback that sends, for the `n`-th datagram it gets (from 1), the
    /// datagrams `script` returns, in order.
    async fn scripted_resolver(
        mut script: impl FnMut(&Message, usize) -> Vec<Vec<u8>> + Send + 'static,
    ) -> SocketAddr {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            for seen in 1.. {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                let q = Message::from_vec(&buf[..n]).unwrap();
                for datagram in script(&q, seen) {
                    server.send_to(&datagram, from).await.unwrap();
                }
            }
        });
        addr
    }

    fn every(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn response_to(q: &Message) -> Message {
        let mut r = Message::response(q.metadata.id, q.metadata.op_code);
        r.queries = q.queries.clone();
        r
    }

    #[test]
    fn only_an_answer_to_this_query_is_taken() {
        let q = query("example.com.");
        let good = response_to(&q);
        assert!(answer_to(&q, &good.to_vec().unwrap()).is_some());

        let mut wrong_id = response_to(&q);
        wrong_id.metadata.id = q.metadata.id.wrapping_add(1);
        assert!(answer_to(&q, &wrong_id.to_vec().unwrap()).is_none());

        let mut other_question = response_to(&q);
        other_question.queries = query("example.net.").queries;
        assert!(answer_to(&q, &other_question.to_vec().unwrap()).is_none());

        // Our own query echoed back is not an answer.
        assert!(answer_to(&q, &q.to_vec().unwrap()).is_none());
        assert!(answer_to(&q, &[]).is_none());
        assert!(answer_to(&q, &q.metadata.id.to_be_bytes()).is_none());
    }

    /// RFC 6298 section 2 with its gains: the first sample sets the variation to half of it;
    /// later ones move the average by an eighth and the variation by a quarter; the first
    /// resend is the average plus four variations, never below the configured interval.
    #[test]
    fn the_first_resend_follows_the_answer_time() {
        let ms = Duration::from_millis;
        let none = RttEstimate::default();
        assert_eq!(
            none.first_resend(ms(200)),
            ms(200),
            "no sample: the setting"
        );
        let one = none.sample(ms(100));
        assert_eq!(
            one,
            RttEstimate {
                srtt_us: 100_000,
                rttvar_us: 50_000
            }
        );
        assert_eq!(one.first_resend(ms(200)), ms(300), "100 + 4 x 50");
        assert_eq!(
            one.first_resend(ms(1000)),
            ms(1000),
            "never below the setting"
        );
        // A steady 150 ms resolver: the variation decays and the setting rules again.
        let steady = (0..40).fold(none, |e, _| e.sample(ms(150)));
        assert_eq!(steady.srtt_us, 150_000);
        assert!(steady.rttvar_us < 1_000, "{steady:?}");
        assert_eq!(steady.first_resend(ms(200)), ms(200));
        // Saturation: answers slow to 600 ms; within a few dozen answers no query is sent
        // again before 600 ms.
        let slow = (0..30).fold(steady, |e, _| e.sample(ms(600)));
        assert!(slow.first_resend(ms(200)) >= ms(600), "{slow:?}");
        // And back: fast answers bring the first resend back down to the setting.
        let fast = (0..80).fold(slow, |e, _| e.sample(ms(150)));
        assert_eq!(fast.first_resend(ms(200)), ms(200), "{fast:?}");
    }

    /// A resolver that answers every query 300 ms late: the first exchanges send their query
    /// again at the 50 ms setting, later ones learn to wait.
    #[tokio::test]
    async fn a_slow_resolver_is_not_sent_copies_for_ever() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let server = Arc::new(server);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            let mut seen = std::collections::HashSet::new();
            loop {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                let q = Message::from_vec(&buf[..n]).unwrap();
                // Only the first copy of each query is answered, 300 ms after it came.
                if !seen.insert(q.metadata.id) {
                    continue;
                }
                let answer = response_to(&q).to_vec().unwrap();
                let server = server.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let _ = server.send_to(&answer, from).await;
                });
            }
        });
        let pool = UdpPool::new(addr);
        let mut resends = Vec::new();
        for i in 0..12 {
            let mut sent = Sent::default();
            pool.exchange(
                &query(&format!("q{i}.example.")),
                Instant::now() + Duration::from_secs(5),
                every(50),
                &mut sent,
            )
            .await
            .unwrap();
            resends.push(sent.resends);
        }
        assert!(resends[0] >= 2, "the first exchange resends: {resends:?}");
        assert_eq!(resends[11], 0, "the last ones wait: {resends:?}");
    }

    /// A waiting exchange holds no receive buffer: its future stays far below the 4 KiB a
    /// buffer kept across the wait would add (thousands wait at once at Internet distances).
    #[test]
    fn a_waiting_exchange_is_small() {
        let pool = UdpPool::new(SocketAddr::from((Ipv4Addr::LOCALHOST, 53)));
        let q = query("example.com.");
        let mut sent = Sent::default();
        let exchange = pool.exchange(&q, Instant::now(), every(1), &mut sent);
        let size = std::mem::size_of_val(&exchange);
        assert!(size < 1024, "a UDP exchange's future is {size} bytes");
    }

    /// A resolver on loopback that answers each query twice, the first time with a wrong ID:
    /// the stray is skipped, sockets are reused, and a late duplicate left on a pooled socket
    /// does not answer the next query.
    #[tokio::test]
    async fn strays_are_skipped_and_sockets_reused() {
        let addr = scripted_resolver(|q, _| {
            let mut stray = response_to(q);
            stray.metadata.id = q.metadata.id ^ 0xffff;
            let answer = response_to(q).to_vec().unwrap();
            // A late duplicate of the answer follows, as after a retransmission.
            vec![stray.to_vec().unwrap(), answer.clone(), answer]
        })
        .await;
        let pool = UdpPool::new(addr);
        let deadline = || Instant::now() + Duration::from_secs(2);
        let mut ports = std::collections::HashSet::new();
        for name in ["a.example.", "b.example.", "c.example."] {
            let q = query(name);
            let answer = pool
                .exchange(&q, deadline(), every(1_000), &mut Sent::default())
                .await
                .unwrap();
            assert_eq!(answer.queries, q.queries);
            assert_eq!(answer.metadata.id, q.metadata.id);
            let idle = pool.idle.lock().unwrap();
            assert_eq!(idle.len(), 1, "the socket went back to the pool");
            ports.insert(idle[0].local_addr().unwrap().port());
        }
        assert_eq!(ports.len(), 1, "one socket served every lookup");
    }

    #[tokio::test]
    async fn silence_is_a_timeout_after_one_resend() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let pool = UdpPool::new(server.local_addr().unwrap());
        let q = query("example.com.");
        let started = Instant::now();
        let mut sent = Sent::default();
        let result = pool
            .exchange(
                &q,
                Instant::now() + Duration::from_millis(200),
                every(100),
                &mut sent,
            )
            .await;
        assert!(matches!(result, Err(UdpError::Timeout)));
        assert!(started.elapsed() >= Duration::from_millis(200));
        // The query was sent twice: once, and again at half the deadline.
        assert_eq!(sent.resends, 1);
        let mut buf = vec![0u8; 512];
        for _ in 0..2 {
            let n = server.recv(&mut buf).await.unwrap();
            assert_eq!(Message::from_vec(&buf[..n]).unwrap().queries, q.queries);
        }
        assert_eq!(pool.idle.lock().unwrap().len(), 1, "the socket went back");
    }

    /// A resolver that drops the first three copies of every query: the copies go out after
    /// 50, 100 and 200 ms more (the interval doubles), and the fourth is answered well within
    /// the deadline.
    #[tokio::test]
    async fn each_resend_waits_twice_as_long_as_the_one_before() {
        let addr = scripted_resolver(|q, seen| {
            if seen > 3 {
                vec![response_to(q).to_vec().unwrap()]
            } else {
                Vec::new()
            }
        })
        .await;
        let pool = UdpPool::new(addr);
        let q = query("example.com.");
        let mut sent = Sent::default();
        let started = Instant::now();
        let answer = pool
            .exchange(
                &q,
                Instant::now() + Duration::from_secs(5),
                every(50),
                &mut sent,
            )
            .await
            .unwrap();
        assert_eq!(answer.metadata.id, q.metadata.id);
        assert_eq!(sent.resends, 3);
        // 50 + 100 + 200 ms; a fixed interval would have taken 150.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(350), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    /// An answer with the query's ID that cannot be decoded ends the exchange at once: it is
    /// not waited out until the deadline, and not mistaken for silence.
    #[tokio::test]
    async fn an_undecodable_answer_ends_the_exchange() {
        let addr = scripted_resolver(|q, _| {
            let mut bytes = response_to(q).to_vec().unwrap();
            // Claim one answer record that is not there.
            bytes[7] = 1;
            vec![bytes]
        })
        .await;
        let pool = UdpPool::new(addr);
        let q = query("example.com.");
        let started = Instant::now();
        let result = pool
            .exchange(
                &q,
                Instant::now() + Duration::from_secs(5),
                every(2_500),
                &mut Sent::default(),
            )
            .await;
        assert!(
            matches!(result, Err(UdpError::Undecodable(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn what_a_datagram_is_to_the_exchange() {
        let q = query("example.com.");
        let good = response_to(&q).to_vec().unwrap();
        let mut truncated_record = good.clone();
        truncated_record[7] = 1;
        let mut other_id = truncated_record.clone();
        other_id[0] ^= 0xff;
        let mut not_a_response = truncated_record.clone();
        not_a_response[2] &= 0x7f;
        let cases: [(&str, &[u8], &str); 6] = [
            ("the answer", &good, "answer"),
            (
                "a response that does not parse",
                &truncated_record,
                "undecodable",
            ),
            ("another exchange's broken answer", &other_id, "stray"),
            ("a broken query, not a response", &not_a_response, "stray"),
            ("the ID alone", &good[..2], "stray"),
            ("nothing", &[], "stray"),
        ];
        for (name, datagram, want) in cases {
            let got = match read_reply(&q, datagram) {
                Reply::Answer(_) => "answer",
                Reply::Undecodable(_) => "undecodable",
                Reply::Stray => "stray",
            };
            assert_eq!(got, want, "{name}");
        }
    }

    /// The late answer to a timed-out query waits on the pooled socket; the next exchange on
    /// that socket must skip it and take its own.
    #[tokio::test]
    async fn a_late_answer_does_not_answer_the_next_query() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let pool = UdpPool::new(server.local_addr().unwrap());
        let first = query("example.com.");
        let lost = pool
            .exchange(
                &first,
                Instant::now() + Duration::from_millis(50),
                every(25),
                &mut Sent::default(),
            )
            .await;
        assert!(matches!(lost, Err(UdpError::Timeout)));
        let mut buf = vec![0u8; 512];
        let (_, client) = server.recv_from(&mut buf).await.unwrap();
        server
            .send_to(&response_to(&first).to_vec().unwrap(), client)
            .await
            .unwrap();
        let second = query("example.com.");
        let mut sent = Sent::default();
        let exchange = pool.exchange(
            &second,
            Instant::now() + Duration::from_secs(2),
            every(1_000),
            &mut sent,
        );
        let answer_second = async {
            loop {
                let n = server.recv(&mut buf).await.unwrap();
                let q = Message::from_vec(&buf[..n]).unwrap();
                if q.metadata.id == second.metadata.id {
                    let mut r = response_to(&q);
                    r.metadata.authoritative = true;
                    server.send_to(&r.to_vec().unwrap(), client).await.unwrap();
                    return;
                }
            }
        };
        let (answer, ()) = tokio::join!(exchange, answer_second);
        let answer = answer.unwrap();
        assert_eq!(answer.metadata.id, second.metadata.id);
        assert!(
            answer.metadata.authoritative,
            "the second query's own answer"
        );
    }
}
