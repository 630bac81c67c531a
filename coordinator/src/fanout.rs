//! Calling the perspectives: one pooled mutual-TLS client, concurrent calls each under the
//! per-perspective deadline, an early verdict with a short grace for stragglers, and every
//! failure turned into a failed entry (`mpic_error:coordinator:remote_check`) through the one
//! check-result model (`mpic_common::outcome`). Nothing ever turns a missing answer into a
//! pass (api.md section 3).
//!
//! What became of each call is a [`CallResult`]: the perspective's own check response, or a
//! [`RemoteFailure`] with the failed entry that stands for it:
//!
//! | what happened | [`RemoteFailure`] | the entry's message |
//! |---|---|---|
//! | no connection: refused, unreachable, TLS or HTTP/2 handshake failed | `Unreachable` | `perspective X: could not connect: …` |
//! | no answer within the call's limit | `Timeout` | `perspective X: no answer within N ms` |
//! | no answer by the request deadline | `Timeout` | `no answer within the request deadline` |
//! | the exchange broke, or a status other than 200 | `Exchange` | `perspective X: …`, `perspective X: answered HTTP N` |
//! | a reply too large, not a `CheckResponse`, or of the other check type | `Malformed` | `perspective X: the reply is not a CheckResponse: …`, … |
//! | a certificate that does not name the perspective (`urn:mpic:perspective:X`) | `Unreachable` | `perspective X: could not connect: … the certificate does not name perspective X …` |
//! | a reply naming another perspective in `x-mpic-perspective`, or another RIR than the catalogue's in `x-mpic-perspective-rir` | `WrongIdentity` | `perspective X: the reply names itself …`, `perspective X: the reply says its RIR is …` |
//! | dropped once the verdict was settled and the grace ran out | `Cancelled` | `cancelled: the verdict was settled before it answered` |

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use mpic_common::api::{CaaDetails, CheckDetails, CheckResponse, CheckType, ValidationMethod};
use mpic_common::config::Rir;
use mpic_common::outcome::{Outcome, Problem, ProblemKind, RemoteFailure};
use tokio::time::Instant;

use crate::channel::{CallError, Channel};
use crate::quorum::{self, settled};

/// The header a perspective names itself in (api.md section 2).
pub const PERSPECTIVE_HEADER: &str = "x-mpic-perspective";
/// The header a perspective names its RIR in; it must be the catalogue's (BR 3.2.2.9 counts
/// RIRs, so a perspective whose network moved must not be counted where it was).
pub const RIR_HEADER: &str = "x-mpic-perspective-rir";

/// What a request checks: CAA, or domain control by one method; taken once, when the request
/// is validated. It decides the perspective path called, the check type a reply must carry
/// and the details of a failed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// CAA (BR 3.2.2.8).
    Caa,
    /// Domain or IP address control by this method (BR 3.2.2.4 / 3.2.2.5).
    Dcv(ValidationMethod),
}

impl Check {
    /// `caa` or `dcv`.
    pub fn check_type(self) -> CheckType {
        match self {
            Check::Caa => CheckType::Caa,
            Check::Dcv(_) => CheckType::Dcv,
        }
    }

    /// The DCV method; none for CAA.
    pub fn method(self) -> Option<ValidationMethod> {
        match self {
            Check::Caa => None,
            Check::Dcv(method) => Some(method),
        }
    }

    /// The DCV method's wire name; empty for CAA (the `method` of the request metric and of
    /// the audit event).
    pub fn method_name(self) -> &'static str {
        self.method().map_or("", ValidationMethod::as_str)
    }

    /// The details of an entry without an answer: the check's shape, nothing found.
    fn empty_details(self) -> CheckDetails {
        match self {
            Check::Caa => CheckDetails::Caa(CaaDetails::default()),
            Check::Dcv(method) => CheckDetails::empty_for(method),
        }
    }
}

/// One perspective call to make: where, who must answer, what to send. Borrowed from the
/// orchestrator and the request, since thousands of calls may wait at once.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The perspective's connection.
    pub channel: &'a Channel,
    /// The full URL (`…/caa` or `…/dcv`).
    pub uri: &'a http::Uri,
    /// The code that must come back in `x-mpic-perspective`.
    pub code: &'a str,
    /// The RIR that must come back in `x-mpic-perspective-rir` (the catalogue's).
    pub rir: Rir,
    /// The JSON body.
    pub body: Bytes,
    /// Forwarded trace identifier, if any.
    pub trace_identifier: Option<&'a str>,
}

/// Why a call gave no usable answer. `Display` is what the CA reads in the failed entry, after
/// the perspective's code; the messages say what happened, never our internals.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// The channel could not carry the exchange.
    #[error(transparent)]
    Channel(#[from] CallError),
    /// No answer within the call's own limit.
    #[error("no answer within {} ms", .0.as_millis())]
    OutOfTime(Duration),
    /// The reply names another perspective than the one called (api.md section 2): a
    /// misconfiguration, never counted.
    #[error("the reply names itself {named:?}, not {expected:?}: treated as a misconfiguration")]
    WrongIdentity {
        /// The code the reply gave, empty when none.
        named: String,
        /// The code called.
        expected: String,
    },
    /// The reply's RIR is not the catalogue's.
    #[error(
        "the reply says its RIR is {named:?}, the catalogue says {expected}: treated as a misconfiguration"
    )]
    WrongRir {
        /// The RIR the reply gave, empty when none.
        named: String,
        /// The catalogue's.
        expected: Rir,
    },
    /// A status other than 200: a perspective answers 200 whenever the check ran (api.md
    /// section 2).
    #[error("answered HTTP {}", .0.as_u16())]
    Status(http::StatusCode),
    /// The body is not a `CheckResponse`.
    #[error("the reply is not a CheckResponse: {0}")]
    NotACheckResponse(String),
    /// A `CheckResponse` of the other check type.
    #[error("the reply is a {} check, not {}", .got.as_str(), .want.as_str())]
    WrongCheckType {
        /// The reply's.
        got: CheckType,
        /// The request's.
        want: CheckType,
    },
}

impl CallFailure {
    /// Its kind, as the module's table says.
    pub fn kind(&self) -> RemoteFailure {
        match self {
            CallFailure::Channel(CallError::Connect(_)) => RemoteFailure::Unreachable,
            CallFailure::Channel(CallError::Exchange(_)) | CallFailure::Status(_) => {
                RemoteFailure::Exchange
            }
            // A check response is far smaller than the limit: a reply over it is not one.
            CallFailure::Channel(CallError::TooLarge(_))
            | CallFailure::NotACheckResponse(_)
            | CallFailure::WrongCheckType { .. } => RemoteFailure::Malformed,
            CallFailure::OutOfTime(_) => RemoteFailure::Timeout,
            CallFailure::WrongIdentity { .. } | CallFailure::WrongRir { .. } => {
                RemoteFailure::WrongIdentity
            }
        }
    }
}

/// Makes one call and checks that the reply is the called perspective's check response of the
/// request's type. Its time limit is kept by [`gather`], which drops the call when it runs out.
pub async fn call(call: Call<'_>, check: Check) -> Result<CheckResponse, CallFailure> {
    // A call waiting for its stream slot holds no headers yet.
    let slot = call.channel.stream_slot().await?;
    let mut request = http::Request::new(());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = call.uri.clone();
    let headers = request.headers_mut();
    mpic_common::telemetry::inject(&tracing::Span::current(), headers);
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(t) = call.trace_identifier
        && let Ok(value) = http::HeaderValue::from_str(&sanitize_header(t))
    {
        headers.insert("x-mpic-trace-identifier", value);
    }
    let reply = call
        .channel
        .send(slot, request, call.body.clone(), MAX_REPLY_BYTES)
        .await?;
    let who = reply
        .headers
        .get(PERSPECTIVE_HEADER)
        .and_then(|v| v.to_str().ok());
    if who != Some(call.code) {
        return Err(CallFailure::WrongIdentity {
            named: who.unwrap_or_default().to_owned(),
            expected: call.code.to_owned(),
        });
    }
    let rir = reply.headers.get(RIR_HEADER).and_then(|v| v.to_str().ok());
    if rir != Some(call.rir.as_str()) {
        return Err(CallFailure::WrongRir {
            named: rir.unwrap_or_default().to_owned(),
            expected: call.rir,
        });
    }
    if reply.status != http::StatusCode::OK {
        return Err(CallFailure::Status(reply.status));
    }
    let parsed: CheckResponse = serde_json::from_slice(&reply.body)
        .map_err(|e| CallFailure::NotACheckResponse(e.to_string()))?;
    if parsed.check_type != check.check_type() {
        return Err(CallFailure::WrongCheckType {
            got: parsed.check_type,
            want: check.check_type(),
        });
    }
    Ok(parsed)
}

fn sanitize_header(value: &str) -> String {
    mpic_common::text::truncate_for_echo(
        &value
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect::<String>(),
        256,
    )
}

/// What became of one call of an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum CallResult {
    /// The perspective answered with its check response, this long after the attempt started.
    Answered {
        /// The perspective's own answer.
        response: CheckResponse,
        /// From the attempt's start to the answer.
        took: Duration,
    },
    /// No usable answer.
    Failed {
        /// Why.
        failure: RemoteFailure,
        /// The failed entry that stands for the perspective: not completed, with the failure
        /// as its one error (api.md section 3), stamped when the call failed.
        entry: CheckResponse,
        /// From the attempt's start to the failure, when the call failed on its own or ran out
        /// of its time; none when it was dropped (cancelled, or at the request deadline).
        took: Option<Duration>,
    },
}

impl CallResult {
    /// The entry of the response: the perspective's answer, or the failed entry.
    pub fn response(&self) -> &CheckResponse {
        match self {
            CallResult::Answered { response, .. } => response,
            CallResult::Failed { entry, .. } => entry,
        }
    }

    /// See [`response`](Self::response).
    pub fn into_response(self) -> CheckResponse {
        match self {
            CallResult::Answered { response, .. } => response,
            CallResult::Failed { entry, .. } => entry,
        }
    }

    /// From the attempt's start to the answer or failure; none for a dropped call.
    pub fn took(&self) -> Option<Duration> {
        match self {
            CallResult::Answered { took, .. } => Some(*took),
            CallResult::Failed { took, .. } => *took,
        }
    }

    /// How the tally counts it, for a perspective of `rir`: only an answer can pass.
    pub fn vote(&self, rir: Rir) -> quorum::Vote {
        let answer = match self {
            CallResult::Answered { response, .. } => Some(response),
            CallResult::Failed { .. } => None,
        };
        let completed = answer.is_some_and(|r| r.check_completed);
        quorum::Vote {
            rir,
            completed,
            passed: completed && answer.is_some_and(|r| r.check_passed),
        }
    }

    /// A failed call, its entry built through the check-result model.
    fn failed(
        check: Check,
        failure: RemoteFailure,
        message: String,
        took: Option<Duration>,
    ) -> CallResult {
        let problem = Problem::new(ProblemKind::Remote(failure), message);
        CallResult::Failed {
            failure,
            entry: Outcome::NotCompleted(problem).into_response(check.empty_details()),
            took,
        }
    }

    /// A call that failed on its own or ran out of its time; the message names the perspective.
    fn call_failed(check: Check, code: &str, failure: &CallFailure, took: Duration) -> CallResult {
        let message = format!("perspective {code}: {failure}");
        CallResult::failed(check, failure.kind(), message, Some(took))
    }
}

/// One call of an attempt, for [`gather`].
#[derive(Debug)]
pub struct Pending<'a, F> {
    /// The perspective's RIR, for the tally.
    pub rir: Rir,
    /// The perspective's code, for the entry when the call fails.
    pub code: &'a str,
    /// The call.
    pub answer: F,
}

/// The time limits of one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Each call's own limit, from the start of the attempt.
    pub call_timeout: Duration,
    /// How long stragglers get once the verdict is settled.
    pub grace: Duration,
    /// The request's deadline: nothing runs past it.
    pub deadline: Instant,
}

/// Collects what becomes of one attempt's calls (in cohort order), each once. A call still
/// pending after `call_timeout` has failed (`no answer within … ms`), unless the request
/// deadline comes first or at the same time. Once the verdict is settled (no pending answer can
/// change it), stragglers get `grace`; then, or at the request deadline, every call still
/// pending is dropped (cancelled) and recorded as not completed.
///
/// One timer serves all the calls: thousands of calls may be in flight at once.
pub async fn gather<F>(
    calls: Vec<Pending<'_, F>>,
    quorum: u32,
    limits: Limits,
    check: Check,
) -> Gathered
where
    F: Future<Output = Result<CheckResponse, CallFailure>>,
{
    let n = u32::try_from(calls.len()).unwrap_or(u32::MAX);
    let who: Vec<(Rir, &str)> = calls.iter().map(|c| (c.rir, c.code)).collect();
    let mut pending: FuturesUnordered<_> = calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| async move { (i, c.answer.await) })
        .collect();
    let started = Instant::now();
    let deadline = limits.deadline;
    // At the request deadline the request's own rule wins: the call did not run out of its time.
    let call_deadline = Some(started + limits.call_timeout).filter(|&c| c < deadline);
    let mut results: Vec<Option<CallResult>> = who.iter().map(|_| None).collect();
    // The tally of the calls that ended, kept as they end.
    let mut ended = Vec::with_capacity(who.len());
    let mut grace_until: Option<Instant> = None;
    let mut settled_at: Option<Instant> = None;
    while !pending.is_empty() {
        let wake = [grace_until, call_deadline]
            .into_iter()
            .flatten()
            .fold(deadline, Instant::min);
        tokio::select! {
            next = pending.next() => {
                if let Some((i, answer)) = next {
                    let took = started.elapsed();
                    let (rir, code) = who[i];
                    let result = match answer {
                        Ok(response) => CallResult::Answered { response, took },
                        Err(failure) => CallResult::call_failed(check, code, &failure, took),
                    };
                    ended.push(result.vote(rir));
                    results[i] = Some(result);
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if Some(wake) == call_deadline && grace_until.is_none_or(|g| g > wake) {
                    let took = started.elapsed();
                    let failure = CallFailure::OutOfTime(limits.call_timeout);
                    for (result, (_, code)) in results.iter_mut().zip(&who) {
                        if result.is_none() {
                            *result = Some(CallResult::call_failed(check, code, &failure, took));
                        }
                    }
                }
                break;
            }
        }
        if grace_until.is_none() {
            let waiting: Vec<Rir> = results
                .iter()
                .zip(&who)
                .filter(|(r, _)| r.is_none())
                .map(|(_, (rir, _))| *rir)
                .collect();
            if settled(n, quorum, &ended, &waiting).is_some() {
                let now = Instant::now();
                settled_at = Some(now);
                grace_until = Some(now + limits.grace);
            }
        }
    }
    let (dropped, why) = if grace_until.is_some() {
        (RemoteFailure::Cancelled, CANCELLED)
    } else {
        (RemoteFailure::Timeout, AT_DEADLINE)
    };
    Gathered {
        results: results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| CallResult::failed(check, dropped, why.to_owned(), None)))
            .collect(),
        settled_for: settled_at.map(|at| at.elapsed()),
    }
}

/// What [`gather`] collected.
#[derive(Debug)]
pub struct Gathered {
    /// What became of each call, in cohort order.
    pub results: Vec<CallResult>,
    /// From the answer that settled the verdict to the end of the gather (the grace used
    /// waiting for stragglers); `None` when the verdict was never settled before the end.
    pub settled_for: Option<Duration>,
}

/// Largest perspective reply we read.
const MAX_REPLY_BYTES: usize = 1 << 20;
/// The message of a call dropped once the verdict was settled and the grace ran out.
const CANCELLED: &str = "cancelled: the verdict was settled before it answered";
/// The message of a call dropped at the request deadline.
const AT_DEADLINE: &str = "no answer within the request deadline";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use mpic_common::api::error_type;

    fn pass() -> Result<CheckResponse, CallFailure> {
        Ok(Outcome::Passed.into_response(CheckDetails::Caa(CaaDetails::default())))
    }

    type Boxed = std::pin::Pin<Box<dyn Future<Output = Result<CheckResponse, CallFailure>> + Send>>;

    fn after(ms: u64, r: Result<CheckResponse, CallFailure>) -> Boxed {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            r
        })
    }

    fn never() -> Boxed {
        Box::pin(std::future::pending())
    }

    const CODES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

    /// The calls, coded "a", "b", … in order.
    fn pending(calls: Vec<(Rir, Boxed)>) -> Vec<Pending<'static, Boxed>> {
        calls
            .into_iter()
            .zip(CODES)
            .map(|((rir, answer), code)| Pending { rir, code, answer })
            .collect()
    }

    /// No call limit of its own before the request deadline.
    fn limits(grace: Duration, deadline: Instant) -> Limits {
        Limits {
            call_timeout: deadline - Instant::now(),
            grace,
            deadline,
        }
    }

    /// A call limit of `call_timeout`, well inside a 15 s request deadline; a grace of 250 ms.
    fn call_limited(call_timeout: Duration) -> Limits {
        Limits {
            call_timeout,
            grace: Duration::from_millis(250),
            deadline: Instant::now() + Duration::from_secs(15),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn early_verdict_returns_after_the_grace_not_the_deadline() {
        use Rir::*;
        let start = Instant::now();
        let calls: Vec<Pending<'_, Boxed>> = pending(vec![
            (Arin, after(10, pass())),
            (RipeNcc, after(20, pass())),
            (Apnic, after(30, pass())),
            (Lacnic, after(40, pass())),
            (Afrinic, after(50, pass())),
            (Arin, never()),
        ]);
        let results = gather(
            calls,
            4,
            limits(Duration::from_millis(250), start + Duration::from_secs(15)),
            Check::Caa,
        )
        .await
        .results;
        let out: Vec<CheckResponse> = results.into_iter().map(CallResult::into_response).collect();
        // Quorum 4 with two RIRs is reached at 40 ms; the grace runs to 290 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(290));
        assert_eq!(
            out.iter().filter(|r| r.check_passed).count(),
            5,
            "the fifth answered within the grace"
        );
        assert!(!out[5].check_completed && !out[5].check_passed);
        assert!(out[5].errors[0].error_message.contains("cancelled"));
        assert_eq!(
            out[5].errors[0].error_type,
            error_type::COORDINATOR_REMOTE_CHECK
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_settled_failure_also_stops_early() {
        use Rir::*;
        let start = Instant::now();
        let fail = || Err(CallFailure::Status(http::StatusCode::INTERNAL_SERVER_ERROR));
        let calls: Vec<Pending<'_, Boxed>> = pending(vec![
            (Arin, after(10, fail())),
            (RipeNcc, after(10, fail())),
            (Apnic, after(10, fail())),
            (Lacnic, never()),
            (Afrinic, never()),
            (Arin, never()),
        ]);
        let results = gather(
            calls,
            4,
            limits(Duration::from_millis(100), start + Duration::from_secs(15)),
            Check::Caa,
        )
        .await
        .results;
        let out: Vec<CheckResponse> = results.into_iter().map(CallResult::into_response).collect();
        assert_eq!(start.elapsed(), Duration::from_millis(110));
        assert!(out.iter().all(|r| !r.check_passed));
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_deadline_bounds_everything() {
        use Rir::*;
        let start = Instant::now();
        let calls: Vec<Pending<'_, Boxed>> = pending(vec![
            (Arin, never()),
            (RipeNcc, never()),
            (Apnic, after(5, pass())),
        ]);
        let results = gather(
            calls,
            2,
            limits(Duration::from_millis(100), start + Duration::from_secs(2)),
            Check::Caa,
        )
        .await
        .results;
        let out: Vec<CheckResponse> = results.into_iter().map(CallResult::into_response).collect();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(out[0].errors[0].error_message.contains("deadline"));
        assert!(out[2].check_passed);
    }

    #[tokio::test(start_paused = true)]
    async fn everyone_answering_needs_no_grace() {
        use Rir::*;
        let start = Instant::now();
        let calls: Vec<Pending<'_, Boxed>> =
            pending(vec![(Arin, after(5, pass())), (RipeNcc, after(7, pass()))]);
        let results = gather(
            calls,
            1,
            limits(Duration::from_millis(500), start + Duration::from_secs(2)),
            Check::Caa,
        )
        .await
        .results;
        let out: Vec<CheckResponse> = results.into_iter().map(CallResult::into_response).collect();
        assert_eq!(start.elapsed(), Duration::from_millis(7));
        assert!(out.iter().all(|r| r.check_passed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_out_of_its_time_fails_and_names_its_limit() {
        use Rir::*;
        let start = Instant::now();
        let calls = pending(vec![
            (Arin, after(10, pass())),
            (RipeNcc, never()),
            (Apnic, after(3000, pass())),
        ]);
        let limits = call_limited(Duration::from_secs(1));
        let out = gather(calls, 3, limits, Check::Caa).await.results;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(out[0].response().check_passed);
        assert_eq!(out[0].took(), Some(Duration::from_millis(10)));
        for (i, code) in [(1, "b"), (2, "c")] {
            let response = out[i].response();
            assert!(!response.check_completed && !response.check_passed);
            let error = &response.errors[0];
            assert_eq!(error.error_type, error_type::COORDINATOR_REMOTE_CHECK);
            assert_eq!(
                error.error_message,
                format!("perspective {code}: no answer within 1000 ms")
            );
            assert_eq!(out[i].took(), Some(Duration::from_secs(1)));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_call_limit_inside_the_grace_fails_the_stragglers() {
        use Rir::*;
        let start = Instant::now();
        let calls = pending(vec![
            (Arin, after(10, pass())),
            (RipeNcc, after(20, pass())),
            (Apnic, never()),
        ]);
        let limits = call_limited(Duration::from_millis(100));
        // Quorum 2 of 3 is settled at 20 ms; the call limit (100 ms) ends before the grace.
        let out = gather(calls, 2, limits, Check::Caa).await.results;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(out[2].took(), Some(Duration::from_millis(100)));
        assert!(
            out[2].response().errors[0]
                .error_message
                .ends_with("no answer within 100 ms")
        );
    }

    /// What became of each call, as the metrics and the entries read it: the failure's kind (none
    /// for an answer) and the time taken (none for a dropped call).
    fn became(r: &CallResult) -> (Option<RemoteFailure>, Option<Duration>) {
        match r {
            CallResult::Answered { took, .. } => (None, Some(*took)),
            CallResult::Failed { failure, took, .. } => (Some(*failure), *took),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_call_says_what_became_of_it() {
        use Rir::*;
        let ms = Duration::from_millis;
        let start = Instant::now();
        let unavailable = Err(CallFailure::Status(http::StatusCode::SERVICE_UNAVAILABLE));
        let calls = pending(vec![
            (Arin, after(10, pass())),
            (RipeNcc, after(20, unavailable)),
            (Apnic, after(30, pass())),
            (Lacnic, never()),
        ]);
        // Quorum 2 from two RIRs is settled at 30 ms; the last call is cancelled at 280 ms.
        let out = gather(calls, 2, limits(ms(250), start + ms(15_000)), Check::Caa)
            .await
            .results;
        let got: Vec<_> = out.iter().map(became).collect();
        assert_eq!(
            got,
            [
                (None, Some(ms(10))),
                (Some(RemoteFailure::Exchange), Some(ms(20))),
                (None, Some(ms(30))),
                (Some(RemoteFailure::Cancelled), None),
            ]
        );

        let start = Instant::now();
        let out = gather(
            pending(vec![(Arin, never())]),
            1,
            limits(ms(250), start + ms(2_000)),
            Check::Caa,
        )
        .await
        .results;
        assert_eq!(became(&out[0]), (Some(RemoteFailure::Timeout), None));
    }

    /// One place maps what went wrong in a call to the entry the CA reads: its kind, and its
    /// message after the perspective's code.
    #[test]
    fn each_call_failure_has_its_kind_and_message() {
        use RemoteFailure as K;
        struct Case {
            name: &'static str,
            failure: CallFailure,
            kind: RemoteFailure,
            message: &'static str,
        }
        let cases = [
            Case {
                name: "refused",
                failure: CallError::Connect("connection refused".into()).into(),
                kind: K::Unreachable,
                message: "could not connect: connection refused",
            },
            Case {
                name: "no connection in time",
                failure: CallError::Connect("no connection within 1000 ms".into()).into(),
                kind: K::Unreachable,
                message: "could not connect: no connection within 1000 ms",
            },
            Case {
                name: "reset",
                failure: CallError::Exchange("the stream was reset (INTERNAL_ERROR)".into()).into(),
                kind: K::Exchange,
                message: "the stream was reset (INTERNAL_ERROR)",
            },
            Case {
                name: "too large",
                failure: CallError::TooLarge(1 << 20).into(),
                kind: K::Malformed,
                message: "reply larger than 1048576 bytes",
            },
            Case {
                name: "out of time",
                failure: CallFailure::OutOfTime(Duration::from_millis(1500)),
                kind: K::Timeout,
                message: "no answer within 1500 ms",
            },
            Case {
                name: "another perspective",
                failure: CallFailure::WrongIdentity {
                    named: "someone-else".into(),
                    expected: "a".into(),
                },
                kind: K::WrongIdentity,
                message: r#"the reply names itself "someone-else", not "a": treated as a misconfiguration"#,
            },
            Case {
                name: "no name",
                failure: CallFailure::WrongIdentity {
                    named: String::new(),
                    expected: "a".into(),
                },
                kind: K::WrongIdentity,
                message: r#"the reply names itself "", not "a": treated as a misconfiguration"#,
            },
            Case {
                name: "error status",
                failure: CallFailure::Status(http::StatusCode::INTERNAL_SERVER_ERROR),
                kind: K::Exchange,
                message: "answered HTTP 500",
            },
            Case {
                name: "not a check response",
                failure: CallFailure::NotACheckResponse("expected value at line 1 column 1".into()),
                kind: K::Malformed,
                message: "the reply is not a CheckResponse: expected value at line 1 column 1",
            },
            Case {
                name: "the other check type",
                failure: CallFailure::WrongCheckType {
                    got: CheckType::Caa,
                    want: CheckType::Dcv,
                },
                kind: K::Malformed,
                message: "the reply is a caa check, not dcv",
            },
        ];
        let check = Check::Dcv(ValidationMethod::AcmeDns01);
        for c in cases {
            let took = Duration::from_millis(7);
            let result = CallResult::call_failed(check, "a", &c.failure, took);
            assert_eq!(became(&result), (Some(c.kind), Some(took)), "{}", c.name);
            let entry = result.into_response();
            assert_eq!(
                (entry.check_type, entry.check_completed, entry.check_passed),
                (CheckType::Dcv, false, false),
                "{}",
                c.name
            );
            assert_eq!(
                entry.details,
                CheckDetails::empty_for(ValidationMethod::AcmeDns01),
                "{}",
                c.name
            );
            assert_eq!(
                entry.errors,
                vec![mpic_common::api::MpicError::new(
                    error_type::COORDINATOR_REMOTE_CHECK,
                    format!("perspective a: {}", c.message)
                )],
                "{}",
                c.name
            );
        }
    }

    /// Thousands of calls may be in flight (1,000 requests × 6 perspectives): each call's
    /// future must stay small, so the exchange (and the rare, large connection set-up in it)
    /// lives behind a box, allocated once the call has its stream.
    #[test]
    fn a_call_in_flight_is_small() {
        let channel = crate::channel::Channel::new(
            "http://127.0.0.1:1",
            None,
            crate::channel::ChannelSettings::new(Duration::from_secs(1)),
        )
        .unwrap();
        let call = Call {
            uri: &channel.caa,
            channel: &channel,
            code: "",
            rir: Rir::Arin,
            body: Bytes::new(),
            trace_identifier: None,
        };
        let future = super::call(call, Check::Caa);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 512, "a call's future is {size} bytes");
    }
}
