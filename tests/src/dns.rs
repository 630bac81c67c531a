//! In-process DNS server that stands in for a perspective's recursive resolver in component
//! tests.
//!
//! A [`Zone`] holds records (given inline with the builder methods) and per-name
//! [`Behaviour`]s (SERVFAIL, REFUSED, dropped queries, forced truncation, ...). A
//! [`DnsServer`] answers UDP and TCP queries on `127.0.0.1` from that zone as a recursive
//! resolver holding the whole namespace would: it follows CNAME chains, tells NXDOMAIN from
//! NODATA (empty non-terminals included), answers with an OPT record when the query carried
//! one, sets the AD flag as configured, and truncates UDP answers that do not fit the
//! client's payload size. Every query it receives is recorded ([`DnsServer::queries`]).
//!
//! Everything on the wire is encoded and decoded with `hickory-proto`.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use mpic_tests::dns::{Behaviour, DnsServer, Zone};
//!
//! let zone = Zone::new()
//!     .caa("example.test", 0, "issue", "ca.example")
//!     .cname("www.example.test", "example.test")
//!     .behave("broken.example.test", Behaviour::ServFail)
//!     .authentic_data(true);
//! let server = DnsServer::start(zone).await?;
//! let resolver_addr = server.addr(); // point the code under test here
//! # let _ = resolver_addr;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use hickory_proto::op::{Edns, Header, Message, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, CAA, CNAME, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};

/// TTL of the records created by the [`Zone`] builder methods (except [`Zone::record`], which
/// keeps the TTL of the record it is given) and of the negative-answer SOA.
pub const TTL: u32 = 60;

/// EDNS UDP payload size the server advertises in its OPT records.
pub const SERVER_EDNS_PAYLOAD: u16 = 1232;

/// Extended DNS Error option code (RFC 8914).
pub const EDE_OPTION_CODE: u16 = 15;

/// Most CNAME records followed for one query.
pub const MAX_CNAME_HOPS: usize = 8;

/// UDP payload limit for clients that send no EDNS OPT record (RFC 1035).
const CLASSIC_UDP_LIMIT: usize = 512;

/// How many times [`DnsServer::start`] tries to find a port free for both UDP and TCP.
const BIND_ATTEMPTS: usize = 16;

/// A misbehaviour for queries that reach a given name (see [`Zone::behave`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer SERVFAIL with an empty answer section.
    ServFail,
    /// Answer SERVFAIL and, if the query carried EDNS, an Extended DNS Error option
    /// (code 15: the 2-byte INFO-CODE, then `text` as UTF-8). For example `code: 6`,
    /// `text: "DNSSEC Bogus"`.
    ServFailWithEde {
        /// The EDE INFO-CODE (RFC 8914 section 4).
        code: u16,
        /// The EXTRA-TEXT.
        text: String,
    },
    /// Answer REFUSED with an empty answer section.
    Refused,
    /// Never answer (for timeout tests).
    Drop,
    /// Over UDP, answer with the TC flag set and no records; over TCP, answer normally.
    Truncate,
    /// Answer FORMERR with an empty answer section.
    FormErr,
}

/// Records and behaviours served by a [`DnsServer`]; a builder.
///
/// Names are case-insensitive and may be given with or without the trailing dot. The records
/// at a name are answered in the order they were added. Wildcards and DNAME are not
/// interpreted.
///
/// The builder methods panic if given a name that is not a valid DNS name: they are meant
/// for test set-up.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// Records by owner name key (see [`name_key`]), in insertion order.
    records: BTreeMap<String, Vec<Record>>,
    /// Behaviours by name key.
    behaviours: BTreeMap<String, Behaviour>,
    /// Default for the AD flag of NOERROR/NXDOMAIN answers.
    authentic_data: bool,
    /// Per-name overrides of `authentic_data`.
    authentic_data_at: BTreeMap<String, bool>,
    /// How long after its query every answer is sent.
    latency: Duration,
}

impl Zone {
    /// An empty zone: every name is NXDOMAIN, answers carry no AD flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends every answer `latency` after its query arrived (a distant resolver), without
    /// holding up the queries behind it.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Adds a CAA record with exactly these flags, tag and value bytes on the wire, even when
    /// they are not valid (flags `1`, a value such as `"%%%"`, ...).
    ///
    /// Note that hickory's decoder rejects tags that are longer than 15 bytes or not
    /// alphanumeric, so a hickory-based client cannot read such records.
    pub fn caa(self, name: &str, flags: u8, tag: &str, value: &str) -> Self {
        self.caa_bytes(name, flags, tag, value.as_bytes())
    }

    /// Like [`Zone::caa`], with an arbitrary byte string as the value.
    pub fn caa_bytes(self, name: &str, flags: u8, tag: &str, value: &[u8]) -> Self {
        let rdata = raw_caa(flags, tag, value);
        self.rdata(name, RData::CAA(rdata))
    }

    /// Adds one TXT record made of these character-strings (arbitrary bytes, NUL and
    /// invalid UTF-8 included; each at most 255 bytes, or the answers that include the record
    /// turn into SERVFAIL because they cannot be encoded).
    pub fn txt(self, name: &str, strings: &[&[u8]]) -> Self {
        self.rdata(name, RData::TXT(TXT::from_bytes(strings.to_vec())))
    }

    /// Adds a CNAME record from `name` to `target`.
    pub fn cname(self, name: &str, target: &str) -> Self {
        let target = parse_name(target);
        self.rdata(name, RData::CNAME(CNAME(target)))
    }

    /// Adds an A record.
    pub fn a(self, name: &str, addr: Ipv4Addr) -> Self {
        self.rdata(name, RData::A(A(addr)))
    }

    /// Adds an AAAA record.
    pub fn aaaa(self, name: &str, addr: Ipv6Addr) -> Self {
        self.rdata(name, RData::AAAA(AAAA(addr)))
    }

    /// Adds a PTR record from `name` (e.g. `4.3.2.1.in-addr.arpa`) to `target`.
    pub fn ptr(self, name: &str, target: &str) -> Self {
        let target = parse_name(target);
        self.rdata(name, RData::PTR(PTR(target)))
    }

    /// Adds any record, as given (owner name, TTL and class included).
    pub fn record(mut self, record: Record) -> Self {
        let key = name_key(&record.name);
        self.records.entry(key).or_default().push(record);
        self
    }

    /// Makes queries misbehave when their name, or any name reached while following a CNAME
    /// chain from it, equals `name`. A later call for the same name replaces the behaviour.
    pub fn behave(mut self, name: &str, behaviour: Behaviour) -> Self {
        self.behaviours.insert(str_key(name), behaviour);
        self
    }

    /// Whether NOERROR and NXDOMAIN answers carry the AD flag (default: `false`), for the names
    /// without an [`Zone::authentic_data_at`] override.
    ///
    /// The flag is set on an answer only when every name on its CNAME chain (the query name
    /// included) is authentic, as a validating resolver would do. It does not depend on the
    /// query's AD or DO bits.
    pub fn authentic_data(mut self, ad: bool) -> Self {
        self.authentic_data = ad;
        self
    }

    /// Overrides [`Zone::authentic_data`] for one name.
    pub fn authentic_data_at(mut self, name: &str, ad: bool) -> Self {
        self.authentic_data_at.insert(str_key(name), ad);
        self
    }

    /// Adds a record with the builder TTL.
    fn rdata(self, name: &str, rdata: RData) -> Self {
        self.record(Record::from_rdata(parse_name(name), TTL, rdata))
    }

    /// Whether AD may be set for answers involving `key`.
    fn ad_at(&self, key: &str) -> bool {
        self.authentic_data_at
            .get(key)
            .copied()
            .unwrap_or(self.authentic_data)
    }

    /// Whether `key` exists: it owns records or is an ancestor of a name that does (an empty
    /// non-terminal).
    fn name_exists(&self, key: &str) -> bool {
        if self
            .records
            .get(key)
            .is_some_and(|records| !records.is_empty())
        {
            return true;
        }
        if key.is_empty() {
            return self.records.values().any(|records| !records.is_empty());
        }
        let suffix = format!(".{key}");
        self.records
            .iter()
            .any(|(owner, records)| owner.ends_with(&suffix) && !records.is_empty())
    }

    /// Resolves a query as a recursive resolver holding the whole zone would.
    fn resolve(&self, qname: &Name, qtype: RecordType, transport: Transport) -> Outcome {
        let mut answers = Vec::new();
        let mut visited: Vec<String> = Vec::new();
        let mut authentic = true;
        let mut key = name_key(qname);
        loop {
            match self.behaviours.get(&key) {
                Some(Behaviour::Truncate) if transport == Transport::Tcp => {}
                Some(behaviour) => return Outcome::Behave(behaviour.clone()),
                None => {}
            }
            authentic &= self.ad_at(&key);
            let here = self
                .records
                .get(&key)
                .map(Vec::as_slice)
                .unwrap_or_default();

            let matching = here
                .iter()
                .filter(|record| qtype == RecordType::ANY || record.record_type() == qtype)
                .cloned()
                .collect::<Vec<_>>();
            if !matching.is_empty() {
                answers.extend(matching);
                return Outcome::Answer {
                    rcode: ResponseCode::NoError,
                    answers,
                    negative: false,
                    authentic,
                };
            }

            let cname = here.iter().find_map(|record| match &record.data {
                RData::CNAME(target) if qtype != RecordType::CNAME => {
                    Some((record.clone(), target.0.clone()))
                }
                _ => None,
            });
            if let Some((record, target)) = cname {
                answers.push(record);
                visited.push(key);
                let next = name_key(&target);
                if visited.len() >= MAX_CNAME_HOPS || visited.contains(&next) {
                    // A loop or an overly long chain: stop with what we have.
                    return Outcome::Answer {
                        rcode: ResponseCode::NoError,
                        answers,
                        negative: false,
                        authentic,
                    };
                }
                key = next;
                continue;
            }

            let rcode = if self.name_exists(&key) {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            return Outcome::Answer {
                rcode,
                answers,
                negative: true,
                authentic,
            };
        }
    }
}

/// The transport a query arrived over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP (2-byte length-prefixed messages).
    Tcp,
}

/// A query received by a [`DnsServer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenQuery {
    /// The query name, lowercase, without the trailing dot (the root is `""`).
    pub name: String,
    /// The query type.
    pub record_type: RecordType,
    /// The transport the query arrived over.
    pub transport: Transport,
    /// Whether the query carried an EDNS OPT record.
    pub had_edns: bool,
    /// Whether the query had the AD flag set.
    pub ad_requested: bool,
}

/// State shared between the server handle and its tasks.
#[derive(Debug)]
struct Shared {
    zone: RwLock<Zone>,
    queries: Mutex<Vec<SeenQuery>>,
}

impl Shared {
    /// The zone's [`Zone::latency`].
    fn latency(&self) -> Duration {
        self.zone
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .latency
    }
}

/// A DNS server on `127.0.0.1` answering from a [`Zone`] over UDP and TCP on the same port.
///
/// Its tasks stop when it is dropped.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds UDP and TCP on the same loopback port and starts answering from `zone`.
    ///
    /// Must be called within a tokio runtime.
    pub async fn start(zone: Zone) -> anyhow::Result<DnsServer> {
        let (udp, tcp) = bind_pair().await?;
        let addr = udp
            .local_addr()
            .context("reading the UDP socket's address")?;
        let shared = Arc::new(Shared {
            zone: RwLock::new(zone),
            queries: Mutex::new(Vec::new()),
        });
        let tasks = vec![
            tokio::spawn(serve_udp(Arc::clone(&shared), udp)),
            tokio::spawn(serve_tcp(Arc::clone(&shared), tcp)),
        ];
        Ok(DnsServer {
            addr,
            shared,
            tasks,
        })
    }

    /// The address the server listens on, for both UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every query received so far, in order of arrival. Messages that cannot be decoded, or
    /// that do not hold exactly one question, are not recorded.
    pub fn queries(&self) -> Vec<SeenQuery> {
        self.shared
            .queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the queries received so far.
    pub fn clear_queries(&self) {
        self.shared
            .queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Replaces the zone; queries received from now on are answered from `zone`.
    pub fn set_zone(&self, zone: Zone) {
        *self
            .shared
            .zone
            .write()
            .unwrap_or_else(PoisonError::into_inner) = zone;
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What the zone says about a query.
#[derive(Debug)]
enum Outcome {
    /// A behaviour overrides the answer.
    Behave(Behaviour),
    /// A regular answer.
    Answer {
        rcode: ResponseCode,
        answers: Vec<Record>,
        /// NXDOMAIN or NODATA: add the SOA to the authority section.
        negative: bool,
        authentic: bool,
    },
}

/// Binds a UDP socket on an ephemeral loopback port, then TCP on the same port.
pub(crate) async fn bind_pair() -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut last_error = None;
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding UDP on 127.0.0.1")?;
        let addr = udp
            .local_addr()
            .context("reading the UDP socket's address")?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last_error = Some(error),
        }
    }
    Err(anyhow::anyhow!(
        "no loopback port free for both UDP and TCP after {BIND_ATTEMPTS} attempts: {last_error:?}"
    ))
}

/// Answers UDP queries until aborted.
async fn serve_udp(shared: Arc<Shared>, socket: UdpSocket) {
    let socket = Arc::new(socket);
    let mut buf = vec![0_u8; 65_535];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(_) => {
                // E.g. ICMP errors reported on the socket: keep serving, without spinning.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let request = buf.get(..len).unwrap_or_default();
        if let Some(response) = handle(&shared, request, Transport::Udp) {
            let latency = shared.latency();
            if latency.is_zero() {
                let _ = socket.send_to(&response, peer).await;
            } else {
                let socket = Arc::clone(&socket);
                tokio::spawn(async move {
                    tokio::time::sleep(latency).await;
                    let _ = socket.send_to(&response, peer).await;
                });
            }
        }
    }
}

/// Accepts TCP connections until aborted; aborting also stops the connections' tasks.
async fn serve_tcp(shared: Arc<Shared>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_tcp_connection(Arc::clone(&shared), stream));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Answers the length-prefixed queries of one TCP connection until it closes.
async fn serve_tcp_connection(shared: Arc<Shared>, mut stream: TcpStream) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut request = vec![0_u8; usize::from(len)];
        if stream.read_exact(&mut request).await.is_err() {
            return;
        }
        let Some(response) = handle(&shared, &request, Transport::Tcp) else {
            continue;
        };
        tokio::time::sleep(shared.latency()).await;
        let Ok(response_len) = u16::try_from(response.len()) else {
            continue; // `encode` keeps TCP answers within 65,535 bytes.
        };
        let mut framed = Vec::with_capacity(2 + response.len());
        framed.extend_from_slice(&response_len.to_be_bytes());
        framed.extend_from_slice(&response);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// Answers one DNS message; `None` means no answer is sent. A panic while decoding or
/// answering (which would be a bug in hickory or here) drops the query instead of stopping the
/// server.
fn handle(shared: &Shared, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        answer(shared, request, transport)
    }))
    .unwrap_or(None)
}

/// Answers one DNS message; `None` means no answer is sent.
fn answer(shared: &Shared, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let query = match Message::from_vec(request) {
        Ok(query) => query,
        Err(_) => return form_error_for_undecodable(request),
    };
    if query.metadata.message_type != hickory_proto::op::MessageType::Query {
        return None;
    }

    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata = Metadata::response_from_request(&query.metadata);
    response.metadata.recursion_available = true;
    response.queries = query.queries.clone();
    if let Some(query_edns) = &query.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(SERVER_EDNS_PAYLOAD);
        edns.set_dnssec_ok(query_edns.flags().dnssec_ok);
        response.edns = Some(edns);
    }

    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => query.edns.as_ref().map_or(CLASSIC_UDP_LIMIT, |edns| {
            usize::from(edns.max_payload()).max(CLASSIC_UDP_LIMIT)
        }),
    };

    let [question] = query.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return encode(&response, limit);
    };
    shared
        .queries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(SeenQuery {
            name: name_key(&question.name),
            record_type: question.query_type,
            transport,
            had_edns: query.edns.is_some(),
            ad_requested: query.metadata.authentic_data,
        });
    if query.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return encode(&response, limit);
    }

    let outcome = shared
        .zone
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .resolve(&question.name, question.query_type, transport);
    match outcome {
        Outcome::Behave(Behaviour::Drop) => return None,
        Outcome::Behave(Behaviour::ServFail) => {
            response.metadata.response_code = ResponseCode::ServFail;
        }
        Outcome::Behave(Behaviour::ServFailWithEde { code, text }) => {
            response.metadata.response_code = ResponseCode::ServFail;
            if let Some(edns) = &mut response.edns {
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(text.as_bytes());
                edns.options_mut()
                    .insert(EdnsOption::Unknown(EDE_OPTION_CODE, payload));
            }
        }
        Outcome::Behave(Behaviour::Refused) => {
            response.metadata.response_code = ResponseCode::Refused;
        }
        Outcome::Behave(Behaviour::FormErr) => {
            response.metadata.response_code = ResponseCode::FormErr;
        }
        Outcome::Behave(Behaviour::Truncate) => {
            response.metadata.truncation = true;
        }
        Outcome::Answer {
            rcode,
            answers,
            negative,
            authentic,
        } => {
            response.metadata.response_code = rcode;
            response.metadata.authentic_data = authentic;
            response.answers = answers;
            if negative {
                response.authorities.push(negative_soa());
            }
        }
    }
    encode(&response, limit)
}

/// FORMERR for a message hickory cannot decode, if at least its ID can be read.
fn form_error_for_undecodable(request: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = BinDecoder::new(request);
    let mut response = match Header::read(&mut decoder) {
        Ok(header) => {
            if header.metadata.message_type != hickory_proto::op::MessageType::Query {
                return None;
            }
            let mut response = Message::error_msg(
                header.metadata.id,
                header.metadata.op_code,
                ResponseCode::FormErr,
            );
            response.metadata = Metadata::response_from_request(&header.metadata);
            response.metadata.response_code = ResponseCode::FormErr;
            response
        }
        Err(_) => {
            let id = BinDecoder::new(request).read_u16().ok()?.unverified(/* any ID */);
            Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
        }
    };
    response.metadata.recursion_available = true;
    response.to_vec().ok()
}

/// Encodes `response`, truncating it (TC=1, no records) if it exceeds `limit` bytes; a
/// response that cannot be encoded turns into SERVFAIL.
fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    match response.to_vec() {
        Ok(bytes) if bytes.len() <= limit => Some(bytes),
        Ok(_) => response.truncate().to_vec().ok(),
        Err(_) => {
            let mut failure = response.truncate();
            failure.metadata.truncation = false;
            failure.metadata.authentic_data = false;
            failure.metadata.response_code = ResponseCode::ServFail;
            failure.to_vec().ok()
        }
    }
}

/// The SOA record of negative answers.
fn negative_soa() -> Record {
    let soa = SOA::new(
        parse_name("ns.test."),
        parse_name("hostmaster.test."),
        1,
        3600,
        600,
        86_400,
        TTL,
    );
    Record::from_rdata(parse_name("test."), TTL, RData::SOA(soa))
}

/// CAA rdata with exactly these flags, tag and value on the wire.
///
/// hickory emits `flags()`, i.e. `reserved_flags & 0x7f` plus `0x80` if `issuer_critical`,
/// then the tag and the value as stored, without validating them.
fn raw_caa(flags: u8, tag: &str, value: &[u8]) -> CAA {
    // `CAA` is `#[non_exhaustive]`: start from a constructor, then set the public fields.
    let mut caa = CAA::new_issue(false, None, Vec::new());
    caa.issuer_critical = flags & 0b1000_0000 != 0;
    caa.reserved_flags = flags & 0b0111_1111;
    caa.tag = tag.to_owned();
    caa.value = value.to_vec();
    caa
}

/// Parses a name given to the builder, with or without the trailing dot.
fn parse_name(name: &str) -> Name {
    let fqdn = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&fqdn)
        .or_else(|_| Name::from_utf8(&fqdn))
        .unwrap_or_else(|error| panic!("invalid DNS name {name:?} in a test zone: {error}"))
}

/// The lookup key of a name: lowercase presentation form without the trailing dot.
fn name_key(name: &Name) -> String {
    let ascii = name.to_lowercase().to_ascii();
    match ascii.strip_suffix('.') {
        Some(stripped) => stripped.to_owned(),
        None => ascii,
    }
}

/// The lookup key of a name given as a string.
fn str_key(name: &str) -> String {
    name_key(&parse_name(name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use hickory_proto::op::Query;

    /// How long the helpers wait for an answer.
    const WAIT: Duration = Duration::from_secs(2);

    /// Options of a test query.
    #[derive(Clone, Copy)]
    struct Ask {
        edns: bool,
        ad: bool,
    }

    const WITH_EDNS: Ask = Ask {
        edns: true,
        ad: true,
    };
    const WITHOUT_EDNS: Ask = Ask {
        edns: false,
        ad: false,
    };

    fn query(name: &str, record_type: RecordType, ask: Ask) -> Message {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.metadata.authentic_data = ask.ad;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
        if ask.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            message.set_edns(edns);
        }
        message
    }

    /// Sends raw bytes over UDP; returns the raw answer, if one arrives within `wait`.
    async fn udp_raw(addr: SocketAddr, request: &[u8], wait: Duration) -> Option<Vec<u8>> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        socket.send_to(request, addr).await.unwrap();
        let mut buf = vec![0_u8; 65_535];
        let (len, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        buf.truncate(len);
        Some(buf)
    }

    async fn udp(addr: SocketAddr, request: &Message) -> (Message, Vec<u8>) {
        let raw = udp_raw(addr, &request.to_vec().unwrap(), WAIT)
            .await
            .expect("no UDP answer");
        let response = Message::from_vec(&raw).unwrap();
        assert_eq!(response.metadata.id, request.metadata.id);
        (response, raw)
    }

    /// Sends the messages over one TCP connection and reads as many answers.
    async fn tcp_many(addr: SocketAddr, requests: &[Message]) -> Vec<Message> {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut answers = Vec::new();
        for request in requests {
            let bytes = request.to_vec().unwrap();
            stream
                .write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&bytes).await.unwrap();
            let len = tokio::time::timeout(WAIT, stream.read_u16())
                .await
                .expect("no TCP answer")
                .unwrap();
            let mut buf = vec![0_u8; usize::from(len)];
            stream.read_exact(&mut buf).await.unwrap();
            let response = Message::from_vec(&buf).unwrap();
            assert_eq!(response.metadata.id, request.metadata.id);
            answers.push(response);
        }
        answers
    }

    async fn tcp(addr: SocketAddr, request: &Message) -> Message {
        tcp_many(addr, std::slice::from_ref(request))
            .await
            .pop()
            .unwrap()
    }

    fn txt_strings(record: &Record) -> Vec<Vec<u8>> {
        match &record.data {
            RData::TXT(txt) => txt.txt_data.iter().map(|s| s.to_vec()).collect(),
            other => panic!("not TXT: {other:?}"),
        }
    }

    fn ede(response: &Message) -> Option<Vec<u8>> {
        let edns = response.edns.as_ref()?;
        edns.options()
            .as_ref()
            .iter()
            .find_map(|(_, option)| match option {
                EdnsOption::Unknown(EDE_OPTION_CODE, payload) => Some(payload.clone()),
                _ => None,
            })
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[tokio::test]
    async fn caa_records_arrive_byte_exact() {
        let cases: &[(u8, &str, &str)] = &[
            (128, "tbs", "unknown critical"),
            (0, "issue", "ca.example; account=42"),
            (1, "issue", ";"),
            (0, "issuewild", "%%%"),
            (255, "Issue", ""),
            (64, "iodef", "mailto:security@example.test"),
        ];
        for &(flags, tag, value) in cases {
            let server = DnsServer::start(Zone::new().caa("example.test", flags, tag, value))
                .await
                .unwrap();
            let (response, raw) = udp(
                server.addr(),
                &query("example.test.", RecordType::CAA, WITH_EDNS),
            )
            .await;
            assert_eq!(response.metadata.response_code, ResponseCode::NoError);
            assert_eq!(response.answers.len(), 1, "{flags} {tag} {value}");

            // Byte-exact: RDLENGTH, flags, tag length, tag, value.
            let mut rdata = vec![flags, u8::try_from(tag.len()).unwrap()];
            rdata.extend_from_slice(tag.as_bytes());
            rdata.extend_from_slice(value.as_bytes());
            let mut expected = u16::try_from(rdata.len()).unwrap().to_be_bytes().to_vec();
            expected.extend_from_slice(&rdata);
            assert!(
                raw.windows(expected.len()).any(|w| w == expected),
                "{flags} {tag} {value}: {raw:?} lacks {expected:?}"
            );

            let RData::CAA(caa) = &response.answers[0].data else {
                panic!("not CAA: {:?}", response.answers[0]);
            };
            assert_eq!(caa.flags(), flags);
            assert_eq!(caa.tag, tag);
            assert_eq!(caa.value, value.as_bytes());
            assert_eq!(response.answers[0].ttl, TTL);
        }
    }

    #[tokio::test]
    async fn txt_strings_are_arbitrary_bytes() {
        let strings: &[&[u8]] = &[b"v=spf1", b"\0nul", b"\xff\xfe invalid utf-8", b""];
        let server = DnsServer::start(Zone::new().txt("_x.example.test", strings))
            .await
            .unwrap();
        let (response, _) = udp(
            server.addr(),
            &query("_X.Example.TEST", RecordType::TXT, WITHOUT_EDNS),
        )
        .await;
        assert_eq!(response.answers.len(), 1);
        let expected: Vec<Vec<u8>> = strings.iter().map(|s| s.to_vec()).collect();
        assert_eq!(txt_strings(&response.answers[0]), expected);
    }

    #[tokio::test]
    async fn cname_chain_is_followed() {
        let zone = Zone::new()
            .cname("a.test", "b.test.")
            .cname("B.test", "c.test")
            .txt("c.test.", &[b"at c"])
            .a("c.test", Ipv4Addr::new(192, 0, 2, 1));
        let server = DnsServer::start(zone).await.unwrap();

        let (response, _) = udp(server.addr(), &query("a.test.", RecordType::TXT, WITH_EDNS)).await;
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        let answers = &response.answers;
        assert_eq!(answers.len(), 3, "{response}");
        assert_eq!(answers[0].name, name("a.test."));
        assert_eq!(answers[0].data, RData::CNAME(CNAME(name("b.test."))));
        assert_eq!(answers[1].name, name("b.test."));
        assert_eq!(answers[1].data, RData::CNAME(CNAME(name("c.test."))));
        assert_eq!(answers[2].name, name("c.test."));
        assert_eq!(txt_strings(&answers[2]), vec![b"at c".to_vec()]);

        // A CNAME query answers the CNAME itself.
        let (response, _) = udp(
            server.addr(),
            &query("a.test.", RecordType::CNAME, WITH_EDNS),
        )
        .await;
        assert_eq!(response.answers.len(), 1);
        assert_eq!(
            response.answers[0].data,
            RData::CNAME(CNAME(name("b.test.")))
        );
    }

    #[tokio::test]
    async fn cname_loops_stop() {
        let zone = Zone::new()
            .cname("loop1.test", "loop2.test")
            .cname("loop2.test", "loop1.test");
        let server = DnsServer::start(zone).await.unwrap();
        let (response, _) = udp(
            server.addr(),
            &query("loop1.test.", RecordType::A, WITH_EDNS),
        )
        .await;
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(response.answers.len(), 2);

        let mut zone = Zone::new();
        for i in 0..20 {
            zone = zone.cname(&format!("h{i}.test"), &format!("h{}.test", i + 1));
        }
        server.set_zone(zone);
        let (response, _) = udp(server.addr(), &query("h0.test.", RecordType::A, WITH_EDNS)).await;
        assert_eq!(response.answers.len(), MAX_CNAME_HOPS);
    }

    #[tokio::test]
    async fn nxdomain_nodata_and_empty_non_terminals() {
        let zone = Zone::new()
            .txt("deep.x.y.test", &[b"leaf"])
            .a("host.test", Ipv4Addr::new(192, 0, 2, 7))
            .cname("alias.test", "missing.test")
            .cname("alias2.test", "host.test");
        let server = DnsServer::start(zone).await.unwrap();

        // (name, type, rcode, answer count)
        let cases: &[(&str, RecordType, ResponseCode, usize)] = &[
            ("deep.x.y.test.", RecordType::TXT, ResponseCode::NoError, 1),
            ("x.y.test.", RecordType::TXT, ResponseCode::NoError, 0),
            ("y.test.", RecordType::CAA, ResponseCode::NoError, 0),
            ("test.", RecordType::CAA, ResponseCode::NoError, 0),
            ("nope.test.", RecordType::CAA, ResponseCode::NXDomain, 0),
            (
                "z.deep.x.y.test.",
                RecordType::TXT,
                ResponseCode::NXDomain,
                0,
            ),
            ("host.test.", RecordType::AAAA, ResponseCode::NoError, 0),
            ("host.test.", RecordType::A, ResponseCode::NoError, 1),
            ("alias.test.", RecordType::A, ResponseCode::NXDomain, 1),
            ("alias2.test.", RecordType::AAAA, ResponseCode::NoError, 1),
            ("alias2.test.", RecordType::A, ResponseCode::NoError, 2),
        ];
        for &(qname, qtype, rcode, count) in cases {
            let (response, _) = udp(server.addr(), &query(qname, qtype, WITH_EDNS)).await;
            let context = format!("{qname} {qtype}: {response}");
            assert_eq!(response.metadata.response_code, rcode, "{context}");
            assert_eq!(response.answers.len(), count, "{context}");
            let final_answer = response
                .answers
                .last()
                .is_some_and(|r| r.record_type() == qtype);
            let has_soa = response
                .authorities
                .iter()
                .any(|r| r.record_type() == RecordType::SOA);
            assert_eq!(has_soa, !final_answer, "{context}");
        }
    }

    #[tokio::test]
    async fn behaviours_override_answers() {
        let zone = Zone::new()
            .txt("fail.test", &[b"hidden"])
            .cname("to-fail.test", "fail.test")
            .cname("via-refused.test", "refused.test")
            .txt("refused.test", &[b"hidden"])
            .behave("fail.test", Behaviour::ServFail)
            .behave("refused.test.", Behaviour::Refused)
            .behave("FORMERR.test", Behaviour::FormErr)
            .behave(
                "bogus.test",
                Behaviour::ServFailWithEde {
                    code: 6,
                    text: "DNSSEC Bogus".to_owned(),
                },
            );
        let server = DnsServer::start(zone).await.unwrap();

        let cases: &[(&str, ResponseCode)] = &[
            ("fail.test.", ResponseCode::ServFail),
            ("to-fail.test.", ResponseCode::ServFail),
            ("refused.test.", ResponseCode::Refused),
            ("via-refused.test.", ResponseCode::Refused),
            ("formerr.test.", ResponseCode::FormErr),
            ("bogus.test.", ResponseCode::ServFail),
        ];
        for &(qname, rcode) in cases {
            for ask in [WITH_EDNS, WITHOUT_EDNS] {
                let (response, _) = udp(server.addr(), &query(qname, RecordType::TXT, ask)).await;
                assert_eq!(response.metadata.response_code, rcode, "{qname}");
                assert!(response.answers.is_empty(), "{qname}");
                assert!(!response.metadata.authentic_data, "{qname}");
                assert_eq!(response.edns.is_some(), ask.edns, "{qname}");
                if qname != "bogus.test." {
                    assert_eq!(ede(&response), None, "{qname}");
                }
            }
        }
    }

    #[tokio::test]
    async fn servfail_with_ede_carries_option_15() {
        let zone = Zone::new().behave(
            "bogus.test",
            Behaviour::ServFailWithEde {
                code: 6,
                text: "DNSSEC Bogus".to_owned(),
            },
        );
        let server = DnsServer::start(zone).await.unwrap();

        let (response, raw) = udp(
            server.addr(),
            &query("bogus.test.", RecordType::CAA, WITH_EDNS),
        )
        .await;
        assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
        let mut expected = vec![0, 6];
        expected.extend_from_slice(b"DNSSEC Bogus");
        assert_eq!(ede(&response), Some(expected.clone()));
        // On the wire: option code 15, option length, payload.
        let mut option = vec![0, 15, 0, u8::try_from(expected.len()).unwrap()];
        option.extend_from_slice(&expected);
        assert!(raw.windows(option.len()).any(|w| w == option));

        let response = tcp(
            server.addr(),
            &query("bogus.test.", RecordType::CAA, WITH_EDNS),
        )
        .await;
        assert_eq!(ede(&response), Some(expected));

        // Without EDNS in the query: no OPT, hence no EDE.
        let (response, _) = udp(
            server.addr(),
            &query("bogus.test.", RecordType::CAA, WITHOUT_EDNS),
        )
        .await;
        assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
        assert!(response.edns.is_none());
    }

    #[tokio::test]
    async fn truncate_behaviour_sets_tc_over_udp_only() {
        let zone = Zone::new()
            .txt("tc.test", &[b"over tcp"])
            .cname("to-tc.test", "tc.test")
            .behave("tc.test", Behaviour::Truncate);
        let server = DnsServer::start(zone).await.unwrap();

        for ask in [WITH_EDNS, WITHOUT_EDNS] {
            let (response, _) = udp(server.addr(), &query("tc.test.", RecordType::TXT, ask)).await;
            assert!(response.metadata.truncation);
            assert!(response.answers.is_empty());
            assert_eq!(response.metadata.response_code, ResponseCode::NoError);

            let response = tcp(server.addr(), &query("tc.test.", RecordType::TXT, ask)).await;
            assert!(!response.metadata.truncation);
            assert_eq!(response.answers.len(), 1);
            assert_eq!(
                txt_strings(&response.answers[0]),
                vec![b"over tcp".to_vec()]
            );
        }

        // Reached through a CNAME.
        let (response, _) = udp(
            server.addr(),
            &query("to-tc.test.", RecordType::TXT, WITH_EDNS),
        )
        .await;
        assert!(response.metadata.truncation);
        let response = tcp(
            server.addr(),
            &query("to-tc.test.", RecordType::TXT, WITH_EDNS),
        )
        .await;
        assert_eq!(response.answers.len(), 2);
    }

    #[tokio::test]
    async fn drop_never_answers() {
        let zone = Zone::new()
            .txt("silent.test", &[b"x"])
            .behave("silent.test", Behaviour::Drop);
        let server = DnsServer::start(zone).await.unwrap();

        let request = query("silent.test.", RecordType::TXT, WITH_EDNS);
        let answer = udp_raw(
            server.addr(),
            &request.to_vec().unwrap(),
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(answer, None);

        // Over TCP too, and the connection stays usable.
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        let bytes = request.to_vec().unwrap();
        stream
            .write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read_u16()).await;
        assert!(read.is_err(), "unexpected TCP answer");
        assert_eq!(server.queries().len(), 2);
    }

    #[tokio::test]
    async fn large_rrset_is_truncated_over_udp_and_complete_over_tcp() {
        let mut zone = Zone::new();
        for i in 0..1000 {
            zone = zone.txt("big.test", &[format!("record {i:04}").as_bytes()]);
        }
        let server = DnsServer::start(zone).await.unwrap();

        for ask in [WITH_EDNS, WITHOUT_EDNS] {
            let (response, raw) =
                udp(server.addr(), &query("big.test.", RecordType::TXT, ask)).await;
            assert!(response.metadata.truncation);
            assert!(response.answers.is_empty());
            assert!(raw.len() <= 512);
            assert_eq!(response.edns.is_some(), ask.edns);

            let response = tcp(server.addr(), &query("big.test.", RecordType::TXT, ask)).await;
            assert!(!response.metadata.truncation);
            assert_eq!(response.answers.len(), 1000);
            assert_eq!(
                txt_strings(&response.answers[999]),
                vec![b"record 0999".to_vec()]
            );
        }
    }

    #[tokio::test]
    async fn udp_limit_follows_the_advertised_payload() {
        // About 700 bytes of answer: too big for 512, fits in 1232.
        let mut zone = Zone::new();
        for i in 0..10 {
            zone = zone.txt("mid.test", &[format!("{i:060}").as_bytes()]);
        }
        let server = DnsServer::start(zone).await.unwrap();

        let (response, raw) = udp(
            server.addr(),
            &query("mid.test.", RecordType::TXT, WITH_EDNS),
        )
        .await;
        assert!(!response.metadata.truncation);
        assert_eq!(response.answers.len(), 10);
        assert!(raw.len() > 512);

        let (response, _) = udp(
            server.addr(),
            &query("mid.test.", RecordType::TXT, WITHOUT_EDNS),
        )
        .await;
        assert!(response.metadata.truncation);
        assert!(response.answers.is_empty());
    }

    #[tokio::test]
    async fn header_and_opt_of_answers() {
        let server = DnsServer::start(Zone::new().a("h.test", Ipv4Addr::new(192, 0, 2, 9)))
            .await
            .unwrap();

        let request = query("h.test.", RecordType::A, WITH_EDNS);
        let (response, _) = udp(server.addr(), &request).await;
        let metadata = response.metadata;
        assert_eq!(
            metadata.message_type,
            hickory_proto::op::MessageType::Response
        );
        assert_eq!(metadata.op_code, OpCode::Query);
        assert!(metadata.recursion_desired);
        assert!(metadata.recursion_available);
        assert!(!metadata.truncation);
        assert_eq!(response.queries, request.queries);
        let edns = response.edns.as_ref().unwrap();
        assert_eq!(edns.max_payload(), SERVER_EDNS_PAYLOAD);
        assert_eq!(response.answers[0].data, RData::A(A::new(192, 0, 2, 9)));

        let mut request = query("h.test.", RecordType::A, WITHOUT_EDNS);
        request.metadata.recursion_desired = false;
        let (response, _) = udp(server.addr(), &request).await;
        assert!(!response.metadata.recursion_desired);
        assert!(response.edns.is_none());
    }

    #[tokio::test]
    async fn authentic_data_flag() {
        let zone = Zone::new()
            .a("secure.test", Ipv4Addr::new(192, 0, 2, 1))
            .a("insecure.test", Ipv4Addr::new(192, 0, 2, 2))
            .cname("to-insecure.test", "insecure.test")
            .behave("fail.test", Behaviour::ServFail)
            .authentic_data(true)
            .authentic_data_at("insecure.test", false);
        let server = DnsServer::start(zone.clone()).await.unwrap();

        // (name, AD expected)
        let cases: &[(&str, bool)] = &[
            ("secure.test.", true),
            ("missing.test.", true),
            ("insecure.test.", false),
            ("to-insecure.test.", false),
            ("fail.test.", false),
        ];
        for &(qname, ad) in cases {
            let (response, _) = udp(server.addr(), &query(qname, RecordType::A, WITH_EDNS)).await;
            assert_eq!(response.metadata.authentic_data, ad, "{qname}");
        }

        server.set_zone(zone.authentic_data(false));
        let (response, _) = udp(
            server.addr(),
            &query("secure.test.", RecordType::A, WITH_EDNS),
        )
        .await;
        assert!(!response.metadata.authentic_data);
        let (response, _) = udp(
            server.addr(),
            &query("insecure.test.", RecordType::A, WITH_EDNS),
        )
        .await;
        assert!(!response.metadata.authentic_data);
    }

    #[tokio::test]
    async fn queries_are_recorded() {
        let server = DnsServer::start(Zone::new().txt("r.test", &[b"x"]))
            .await
            .unwrap();

        udp(server.addr(), &query("R.Test.", RecordType::TXT, WITH_EDNS)).await;
        udp(
            server.addr(),
            &query("other.test.", RecordType::CAA, WITHOUT_EDNS),
        )
        .await;
        tcp_many(
            server.addr(),
            &[
                query("r.test.", RecordType::A, WITH_EDNS),
                query("WWW.r.test", RecordType::AAAA, WITHOUT_EDNS),
            ],
        )
        .await;

        let seen = |name: &str, record_type, transport, ask: Ask| SeenQuery {
            name: name.to_owned(),
            record_type,
            transport,
            had_edns: ask.edns,
            ad_requested: ask.ad,
        };
        assert_eq!(
            server.queries(),
            vec![
                seen("r.test", RecordType::TXT, Transport::Udp, WITH_EDNS),
                seen("other.test", RecordType::CAA, Transport::Udp, WITHOUT_EDNS),
                seen("r.test", RecordType::A, Transport::Tcp, WITH_EDNS),
                seen("www.r.test", RecordType::AAAA, Transport::Tcp, WITHOUT_EDNS),
            ]
        );
        server.clear_queries();
        assert!(server.queries().is_empty());
    }

    #[tokio::test]
    async fn set_zone_replaces_data() {
        let server = DnsServer::start(Zone::new().a("x.test", Ipv4Addr::new(192, 0, 2, 1)))
            .await
            .unwrap();
        let (response, _) = udp(server.addr(), &query("x.test.", RecordType::A, WITH_EDNS)).await;
        assert_eq!(response.answers.len(), 1);

        server.set_zone(Zone::new().aaaa("x.test", Ipv6Addr::LOCALHOST));
        let (response, _) = udp(server.addr(), &query("x.test.", RecordType::A, WITH_EDNS)).await;
        assert!(response.answers.is_empty());
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        let (response, _) = udp(
            server.addr(),
            &query("x.test.", RecordType::AAAA, WITH_EDNS),
        )
        .await;
        assert_eq!(
            response.answers[0].data,
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))
        );
    }

    #[tokio::test]
    async fn ptr_and_generic_records() {
        let mx = Record::from_rdata(
            name("Mail.test."),
            300,
            RData::MX(hickory_proto::rr::rdata::MX::new(10, name("mx.test."))),
        );
        let zone = Zone::new()
            .ptr("1.2.0.192.in-addr.arpa", "host.test")
            .record(mx);
        let server = DnsServer::start(zone).await.unwrap();

        let (response, _) = udp(
            server.addr(),
            &query("1.2.0.192.in-addr.arpa.", RecordType::PTR, WITH_EDNS),
        )
        .await;
        assert_eq!(
            response.answers[0].data,
            RData::PTR(PTR(name("host.test.")))
        );

        let (response, _) = udp(
            server.addr(),
            &query("mail.test.", RecordType::MX, WITH_EDNS),
        )
        .await;
        assert_eq!(response.answers.len(), 1);
        assert_eq!(response.answers[0].ttl, 300);
    }

    #[tokio::test]
    async fn malformed_queries_get_formerr_or_nothing() {
        let server = DnsServer::start(Zone::new()).await.unwrap();

        // A header claiming one question that is missing.
        let garbage = [0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
        let raw = udp_raw(server.addr(), &garbage, WAIT).await.unwrap();
        let response = Message::from_vec(&raw).unwrap();
        assert_eq!(response.metadata.id, 0x1234);
        assert_eq!(response.metadata.response_code, ResponseCode::FormErr);

        // Only an ID.
        let raw = udp_raw(server.addr(), &[0xab, 0xcd, 0x01], WAIT)
            .await
            .unwrap();
        let response = Message::from_vec(&raw).unwrap();
        assert_eq!(response.metadata.id, 0xabcd);
        assert_eq!(response.metadata.response_code, ResponseCode::FormErr);

        // Not even an ID.
        assert_eq!(
            udp_raw(server.addr(), &[0xab], Duration::from_millis(200)).await,
            None
        );

        // No question.
        let mut empty = Message::query();
        empty.metadata.recursion_desired = true;
        let (response, _) = udp(server.addr(), &empty).await;
        assert_eq!(response.metadata.response_code, ResponseCode::FormErr);

        // The server still works, over TCP too.
        let response = tcp(server.addr(), &query("x.test.", RecordType::A, WITH_EDNS)).await;
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(server.queries().len(), 1);
    }

    #[tokio::test]
    async fn mangled_queries_do_not_break_the_server() {
        let server = DnsServer::start(
            Zone::new()
                .txt("m.test", &[b"x"])
                .caa("m.test", 0, "issue", "ca"),
        )
        .await
        .unwrap();
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let valid = query("m.test.", RecordType::CAA, WITH_EDNS)
            .to_vec()
            .unwrap();
        // A small deterministic xorshift generator drives the mutations.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000_u64 {
            let mut bytes = valid.clone();
            for _ in 0..=(next() % 4) {
                let at = usize::try_from(next() % bytes.len() as u64).unwrap();
                bytes[at] = u8::try_from(next() & 0xff).unwrap();
            }
            if round % 3 == 0 {
                bytes.truncate(usize::try_from(next() % bytes.len() as u64).unwrap());
            }
            socket.send_to(&bytes, server.addr()).await.unwrap();
        }
        // Still answering, over both transports.
        let (response, _) = udp(server.addr(), &query("m.test.", RecordType::TXT, WITH_EDNS)).await;
        assert_eq!(response.answers.len(), 1);
        let response = tcp(server.addr(), &query("m.test.", RecordType::CAA, WITH_EDNS)).await;
        assert_eq!(response.answers.len(), 1);
    }

    #[tokio::test]
    async fn tasks_stop_on_drop() {
        let server = DnsServer::start(Zone::new()).await.unwrap();
        let addr = server.addr();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        drop(server);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The open connection is closed and the port no longer accepts connections.
        let mut byte = [0_u8; 1];
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)));
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
