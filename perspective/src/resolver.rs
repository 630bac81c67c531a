//! The DNS adapter: every lookup of a check goes to this perspective's own validating resolver
//! (the Unbound sidecar), never to the system's, under a deadline.
//!
//! We read the answer at the message level (hickory's low-level client, not its resolver)
//! because the checks report what the resolver said: the rcode, the AD flag (RFC 4035 3.2.3,
//! asked for with the AD bit in the query per RFC 6840 5.7), Extended DNS Errors (RFC 8914),
//! the records and the CNAME chain. No cache lives here: each perspective's only cache is its
//! own Unbound (requirements.md, "no two perspectives may share a resolver or a DNS cache").
//!
//! A lookup's steps that touch no socket are public functions, in the order a lookup runs
//! them: [`fqdn`], [`query_message`], [`answer_to`] (is this datagram the answer?),
//! [`interpret`] (the records at the end of the CNAME chain, the EDEs) and [`classify`]
//! (answer or failure). The fuzz targets (`fuzz/`) feed them raw datagrams.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use hickory_net::DnsHandle as _;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::xfer::DnsExchange;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tracing::Instrument as _;

mod udp;

pub use udp::answer_to;

/// A resolver client bound to one resolver address.
#[derive(Clone)]
pub struct DnsClient {
    server: SocketAddr,
    timeout: Duration,
    /// An unanswered UDP query is first sent again after this long at the soonest (then after
    /// twice the interval before each time).
    retry: Duration,
    udp: std::sync::Arc<udp::UdpPool>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl fmt::Debug for DnsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsClient")
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// What the resolver answered.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsAnswer {
    /// The queried name, lowercase, no trailing dot.
    pub name: String,
    /// The rcode (RFC 1035 4.1.1, extended by EDNS).
    pub rcode: ResponseCode,
    /// The AD flag: the resolver validated the answer (RFC 4035 3.2.3).
    pub authentic_data: bool,
    /// Records of the queried type found at the end of the CNAME chain.
    pub records: Vec<Record>,
    /// CNAME targets followed from the queried name, in order, with trailing dots.
    pub cname_chain: Vec<String>,
    /// Extended DNS Errors the resolver attached (RFC 8914).
    pub extended_errors: Vec<ExtendedDnsError>,
}

/// One Extended DNS Error (RFC 8914 section 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedDnsError {
    /// INFO-CODE.
    pub code: u16,
    /// EXTRA-TEXT, made valid UTF-8 and bounded.
    pub text: String,
}

impl ExtendedDnsError {
    /// RFC 8914 section 4: codes 1, 2 and 5–12 report a DNSSEC validation failure.
    pub fn is_dnssec(&self) -> bool {
        // 3 (Stale Answer) and 4 (Forged Answer) are not validation failures.
        matches!(self.code, 1 | 2 | 5..=12)
    }

    /// The registered name of the code (RFC 8914 section 5.2).
    pub fn code_name(&self) -> &'static str {
        match self.code {
            0 => "Other Error",
            1 => "Unsupported DNSKEY Algorithm",
            2 => "Unsupported DS Digest Type",
            3 => "Stale Answer",
            4 => "Forged Answer",
            5 => "DNSSEC Indeterminate",
            6 => "DNSSEC Bogus",
            7 => "Signature Expired",
            8 => "Signature Not Yet Valid",
            9 => "DNSKEY Missing",
            10 => "RRSIGs Missing",
            11 => "No Zone Key Bit Set",
            12 => "NSEC Missing",
            13 => "Cached Error",
            14 => "Not Ready",
            15 => "Blocked",
            16 => "Censored",
            17 => "Filtered",
            18 => "Prohibited",
            19 => "Stale NXDOMAIN Answer",
            20 => "Not Authoritative",
            21 => "Not Supported",
            22 => "No Reachable Authority",
            23 => "Network Error",
            24 => "Invalid Data",
            _ => "Unassigned",
        }
    }
}

impl fmt::Display for ExtendedDnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EDE {} ({})", self.code, self.code_name())?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// A lookup that produced no answer message at all. An answer with a bad rcode is not an
/// error here: it is a [`DnsAnswer`] the caller classifies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// No answer within the deadline.
    #[error("no answer from the resolver {server} within {timeout_ms} ms")]
    Timeout {
        /// The resolver.
        server: SocketAddr,
        /// The deadline.
        timeout_ms: u64,
    },
    /// The resolver could not be reached or the exchange broke.
    #[error("resolver {server}: {detail}")]
    Transport {
        /// The resolver.
        server: SocketAddr,
        /// What broke.
        detail: String,
    },
    /// The resolver answered with a message that cannot be read (a record this client cannot
    /// decode, say). Not an outage: the resolver is there and said something we cannot check.
    #[error("resolver {server} sent an answer that cannot be read: {detail}")]
    Malformed {
        /// The resolver.
        server: SocketAddr,
        /// What could not be read.
        detail: String,
    },
    /// The name cannot be queried.
    #[error("invalid query name {name:?}: {detail}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        detail: String,
    },
}

/// A lookup that gave no usable answer: no answer message at all ([`DnsError`]), or an rcode
/// other than NOERROR and NXDOMAIN (SERVFAIL, REFUSED, …). The one place where both become
/// what a check reports; CAA and every DNS-based DCV method read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupFailure {
    /// The queried name.
    pub name: String,
    /// The resolver reported a DNSSEC validation failure (an Extended DNS Error with code 1–12,
    /// RFC 8914 section 4).
    pub dnssec: bool,
    /// The resolver answered, but with a message that cannot be read. Never taken for a
    /// resolver outage (so never for the permission a lookup failure may give, RFC 8659 3):
    /// the answer may hold a record that forbids issuance.
    pub malformed: bool,
    /// What happened, ready for an `error_message`: the rcode and every EDE, or the transport
    /// problem.
    pub message: String,
    /// The resolver's answer when there was one (a bad rcode), for the details.
    pub answer: Option<DnsAnswer>,
}

impl LookupFailure {
    /// The problem a check of `checker` reports for this failure: a DNSSEC failure or a
    /// lookup failure.
    pub fn problem(&self, checker: mpic_common::outcome::Checker) -> mpic_common::outcome::Problem {
        use mpic_common::outcome::{Problem, ProblemKind};
        let kind = if self.dnssec {
            ProblemKind::Dnssec(checker)
        } else {
            ProblemKind::Lookup(checker)
        };
        Problem::new(kind, self.message.clone())
    }

    /// No answer message: a timeout or a broken exchange.
    pub fn no_answer(name: &str, rtype: RecordType, error: &DnsError) -> LookupFailure {
        LookupFailure {
            name: name.to_owned(),
            dnssec: false,
            malformed: matches!(error, DnsError::Malformed { .. }),
            message: format!("{rtype} lookup for {name} failed: {error}"),
            answer: None,
        }
    }

    /// An answer whose rcode carries no records, with the resolver's Extended DNS Errors; a
    /// DNSSEC failure when one of them says so.
    pub fn bad_rcode(name: &str, rtype: RecordType, answer: DnsAnswer) -> LookupFailure {
        let dnssec = answer
            .extended_errors
            .iter()
            .any(ExtendedDnsError::is_dnssec);
        let mut message = format!(
            "{rtype} lookup for {name} failed: {}",
            rcode_text(answer.rcode)
        );
        for ede in &answer.extended_errors {
            message.push_str(&format!("; {ede}"));
        }
        if dnssec {
            message.push_str(" (DNSSEC validation failed)");
        }
        LookupFailure {
            name: name.to_owned(),
            dnssec,
            malformed: false,
            message,
            answer: Some(answer),
        }
    }
}

/// The rcode's mnemonic (RFC 1035 4.1.1, RFC 6895 2.3) and number.
pub fn rcode_text(rcode: ResponseCode) -> String {
    format!("{} (rcode {})", rcode_name(rcode), u16::from(rcode))
}

/// The rcode's mnemonic alone (`RCODE` for the rare ones), a bounded metric label.
pub fn rcode_name(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        _ => "RCODE",
    }
}

/// The UDP payload size we advertise (DNS Flag Day 2020 recommendation).
const EDNS_PAYLOAD: u16 = 1232;
/// The EDNS option code of Extended DNS Errors (RFC 8914).
const EDE_OPTION_CODE: u16 = 15;
/// Longest CNAME chain we follow in an answer (Unbound's own limit is similar).
const MAX_CNAME_CHAIN: usize = 16;
/// Longest EDE text we keep.
const MAX_EDE_TEXT_BYTES: usize = 256;

impl DnsClient {
    /// A client for the resolver at `server`; each lookup (UDP, and TCP after a truncated
    /// answer) must complete within `timeout`. An unanswered UDP query is sent again once, at
    /// half the timeout, unless [`with_retry`](Self::with_retry) says otherwise.
    pub fn new(server: SocketAddr, timeout: Duration) -> DnsClient {
        DnsClient {
            server,
            timeout,
            retry: timeout / 2,
            udp: std::sync::Arc::new(udp::UdpPool::new(server)),
            metrics: None,
        }
    }

    /// The same client, sending an unanswered UDP query again after `retry`, then after twice
    /// the interval before each time, until the lookup's deadline (a lost datagram then costs
    /// `retry`, not half the deadline).
    pub fn with_retry(mut self, retry: Duration) -> DnsClient {
        self.retry = retry;
        self
    }

    /// The same client, counting its lookups in `metrics`.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> DnsClient {
        self.metrics = Some(metrics);
        self
    }

    /// The metrics this client reports to, if any.
    pub fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.metrics.as_deref()
    }

    /// The resolver address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Asks the resolver for `name`/`rtype` (recursion desired, AD requested, EDNS on), over
    /// UDP, repeating over TCP when the answer is truncated; the whole exchange is bounded by
    /// the client's timeout.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<DnsAnswer, DnsError> {
        let span = mpic_common::detail_span!(
            "dns.lookup",
            otel.name = %format!("DNS {rtype}"),
            dns.name = name,
            dns.type = %rtype,
            dns.rcode = tracing::field::Empty,
            dns.ad = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let result = self.query_inner(name, rtype).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(a) => {
                span.record("dns.rcode", u16::from(a.rcode));
                span.record("dns.ad", a.authentic_data);
                rcode_name(a.rcode)
            }
            Err(DnsError::Timeout { .. }) => "TIMEOUT",
            Err(DnsError::Malformed { .. }) => "MALFORMED",
            Err(_) => "TRANSPORT",
        };
        if let Some(m) = &self.metrics {
            m.dns(&rtype.to_string(), outcome, started.elapsed());
        }
        result
    }

    async fn query_inner(&self, name: &str, rtype: RecordType) -> Result<DnsAnswer, DnsError> {
        let fqdn = fqdn(name)?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let run = async {
            let first = self.exchange_udp(&fqdn, rtype, deadline).await?;
            if !first.metadata.truncation {
                return Ok(first);
            }
            // The exchange's background task lives in the provider's task set: keep the
            // provider alive until the answer is in.
            let provider = TokioRuntimeProvider::new();
            let tcp =
                TcpClientStream::exchange(self.server, None, self.timeout, None, provider.clone())
                    .await
                    .map_err(|e| self.transport(format!("TCP after a truncated answer: {e}")))?;
            let answer = self.exchange_tcp(&tcp, &fqdn, rtype).await;
            drop(provider);
            answer
        };
        let message = tokio::time::timeout_at(deadline, run)
            .await
            .map_err(|_| self.timeout_error())??;
        Ok(interpret(name, &fqdn, rtype, message))
    }

    /// [`query`](Self::query), sorted the way every check reads a lookup: NOERROR and NXDOMAIN
    /// are answers (possibly without records: a name or type that does not exist is a normal
    /// result, not an outage); no answer at all or any other rcode is a [`LookupFailure`].
    pub async fn lookup(&self, name: &str, rtype: RecordType) -> Result<DnsAnswer, LookupFailure> {
        classify(name, rtype, self.query(name, rtype).await)
    }

    async fn exchange_udp(
        &self,
        fqdn: &Name,
        rtype: RecordType,
        deadline: tokio::time::Instant,
    ) -> Result<Message, DnsError> {
        let mut sent = udp::Sent::default();
        let result = self
            .udp
            .exchange(&query_message(fqdn, rtype), deadline, self.retry, &mut sent)
            .await;
        if let Some(m) = &self.metrics
            && sent.resends > 0
        {
            m.dns_retries.inc_by(u64::from(sent.resends));
        }
        match result {
            Ok(answer) => Ok(answer),
            Err(udp::UdpError::Timeout) => Err(self.timeout_error()),
            Err(udp::UdpError::Undecodable(detail)) => Err(DnsError::Malformed {
                server: self.server,
                detail: mpic_common::text::truncate_for_echo(&detail, 256),
            }),
            Err(udp::UdpError::Io(e)) => Err(self.transport(format!("UDP: {e}"))),
            Err(udp::UdpError::Encode(e)) => {
                Err(self.transport(format!("encoding the query: {e}")))
            }
        }
    }

    async fn exchange_tcp(
        &self,
        handle: &DnsExchange<TokioRuntimeProvider>,
        fqdn: &Name,
        rtype: RecordType,
    ) -> Result<Message, DnsError> {
        let message = query_message(fqdn, rtype);
        let mut options = DnsRequestOptions::default();
        options.use_edns = true;
        options.recursion_desired = true;
        let mut responses = handle.send(DnsRequest::new(message, options));
        match responses.next().await {
            Some(Ok(response)) => Ok(response.into_message()),
            Some(Err(e)) => {
                let text = e.to_string();
                if text.contains("timed out") || text.contains("timeout") {
                    Err(self.timeout_error())
                } else {
                    Err(self.transport(text))
                }
            }
            // hickory ends the response stream without an item when its own deadline passes.
            None => Err(self.timeout_error()),
        }
    }

    fn timeout_error(&self) -> DnsError {
        DnsError::Timeout {
            server: self.server,
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn transport(&self, detail: String) -> DnsError {
        DnsError::Transport {
            server: self.server,
            detail: mpic_common::text::truncate_for_echo(&detail, 256),
        }
    }
}

/// How every check reads the result of [`DnsClient::query`] for `name`/`rtype`: NOERROR and
/// NXDOMAIN are answers, anything else a [`LookupFailure`] (see [`DnsClient::lookup`]).
#[allow(
    clippy::result_large_err,
    reason = "the result `lookup` returns, which every check takes by value"
)]
pub fn classify(
    name: &str,
    rtype: RecordType,
    result: Result<DnsAnswer, DnsError>,
) -> Result<DnsAnswer, LookupFailure> {
    match result {
        Err(e) => Err(LookupFailure::no_answer(name, rtype, &e)),
        Ok(answer) => match answer.rcode {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer),
            _ => Err(LookupFailure::bad_rcode(name, rtype, answer)),
        },
    }
}

/// The query for `fqdn`/`rtype`: a random ID, recursion desired, AD set (RFC 6840 5.7: that
/// asks for AD in the answer without DO, so the resolver reports validation while the answer
/// stays free of RRSIGs), EDNS with our payload size.
pub fn query_message(fqdn: &Name, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.add_query(Query::query(fqdn.clone(), rtype));
    message.metadata.recursion_desired = true;
    message.metadata.authentic_data = true;
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    message
}

/// `name` as an absolute DNS name.
pub fn fqdn(name: &str) -> Result<Name, DnsError> {
    let absolute = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&absolute).map_err(|e| DnsError::InvalidName {
        name: mpic_common::text::truncate_for_echo(name, 256),
        detail: e.to_string(),
    })
}

/// Reads the parts of an answer the checks use: follows the CNAME chain from the queried name
/// through the answer section and keeps the records of `rtype` at its end.
pub fn interpret(name: &str, fqdn: &Name, rtype: RecordType, message: Message) -> DnsAnswer {
    let mut current = fqdn.clone();
    let mut cname_chain = Vec::new();
    for _ in 0..MAX_CNAME_CHAIN {
        if rtype == RecordType::CNAME {
            break;
        }
        let next = message.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == current => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(target) => {
                cname_chain.push(target.to_ascii().to_ascii_lowercase());
                current = target;
            }
            None => break,
        }
    }
    let records = message
        .answers
        .iter()
        .filter(|r| r.record_type() == rtype && r.name == current)
        .cloned()
        .collect();
    let extended_errors = message
        .edns
        .as_ref()
        .map(|edns| {
            edns.options()
                .get_all(EdnsCode::Unknown(EDE_OPTION_CODE))
                .into_iter()
                .filter_map(|option| match option {
                    EdnsOption::Unknown(_, bytes) if bytes.len() >= 2 => Some(ExtendedDnsError {
                        code: u16::from_be_bytes([bytes[0], bytes[1]]),
                        text: mpic_common::text::bytes_for_echo(&bytes[2..], MAX_EDE_TEXT_BYTES),
                    }),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    DnsAnswer {
        name: name.trim_end_matches('.').to_ascii_lowercase(),
        rcode: message.metadata.response_code,
        authentic_data: message.metadata.authentic_data,
        records,
        cname_chain,
        extended_errors,
    }
}
