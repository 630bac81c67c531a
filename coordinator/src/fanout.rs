//! Calling the perspectives: one pooled mutual-TLS client, concurrent calls each under the
//! per-perspective deadline, an early verdict with a short grace for stragglers, and every
//! failure turned into a failed entry (`mpic_error:coordinator:remote_check`). Nothing ever
//! turns a missing answer into a pass (api.md section 3).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use mpic_common::api::{
    CaaDetails, CheckDetails, CheckResponse, CheckType, MpicError, ValidationMethod, error_type,
};
use mpic_common::config::Rir;
use tokio::time::Instant;

use crate::channel::Channel;
use crate::quorum::{Outcome, settled};

/// The header a perspective names itself in (api.md section 2).
pub const PERSPECTIVE_HEADER: &str = "x-mpic-perspective";

/// Largest perspective reply we read.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// What a failed entry looks like for this request.
#[derive(Debug, Clone, Copy)]
pub struct EntryShape {
    /// CAA or DCV.
    pub check_type: CheckType,
    /// The DCV method, for the details shape.
    pub method: Option<ValidationMethod>,
}

impl EntryShape {
    /// A failed, not-completed entry with `message`.
    pub fn failed(self, message: impl AsRef<str>) -> CheckResponse {
        CheckResponse {
            check_type: self.check_type,
            check_completed: false,
            check_passed: false,
            errors: Some(vec![MpicError::new(
                error_type::COORDINATOR_REMOTE_CHECK,
                message,
            )]),
            timestamp_ns: crate::now_ns(),
            details: match self.method {
                Some(m) => CheckDetails::empty_for(m),
                None => CheckDetails::Caa(CaaDetails::default()),
            },
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
    /// The JSON body.
    pub body: Bytes,
    /// Forwarded trace identifier, if any.
    pub trace_identifier: Option<&'a str>,
}

/// Makes one call; every failure is a failed entry naming the perspective. Its time limit is
/// kept by [`gather`], which drops the call when it runs out.
pub async fn call(call: Call<'_>, shape: EntryShape) -> CheckResponse {
    match call_inner(&call, shape).await {
        Ok(response) => response,
        Err(message) => shape.failed(format!("perspective {}: {message}", call.code)),
    }
}

async fn call_inner(call: &Call<'_>, shape: EntryShape) -> Result<CheckResponse, String> {
    // A call waiting for its stream slot holds no headers yet.
    let slot = call
        .channel
        .stream_slot()
        .await
        .map_err(|e| e.to_string())?;
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
        .await
        .map_err(|e| e.to_string())?;
    let who = reply
        .headers
        .get(PERSPECTIVE_HEADER)
        .and_then(|v| v.to_str().ok());
    if who != Some(call.code) {
        return Err(format!(
            "the reply names itself {:?}, not {:?}: treated as a misconfiguration",
            who.unwrap_or_default(),
            call.code
        ));
    }
    if reply.status != http::StatusCode::OK {
        return Err(format!("answered HTTP {}", reply.status.as_u16()));
    }
    let body = reply.body;
    let parsed: CheckResponse = serde_json::from_slice(&body)
        .map_err(|e| format!("the reply is not a CheckResponse: {e}"))?;
    if parsed.check_type != shape.check_type {
        return Err(format!(
            "the reply is a {} check, not {}",
            parsed.check_type.as_str(),
            shape.check_type.as_str()
        ));
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It answered (or failed) on its own, this long after the attempt started.
    Finished(Duration),
    /// It was dropped after the verdict was settled and the grace ran out.
    Cancelled,
    /// It was dropped at the request deadline.
    Deadline,
}

/// One call of an attempt, for [`gather`].
#[derive(Debug)]
pub struct Pending<'a, F> {
    /// The perspective's RIR, for the tally.
    pub rir: Rir,
    /// The perspective's code, for the entry when it runs out of time.
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

/// Collects the answers of one attempt's calls (in cohort order). A call still pending after
/// `call_timeout` has failed (`no answer within … ms`), unless the request deadline comes
/// first or at the same time. Once the verdict is settled (no pending answer can change it),
/// stragglers get `grace`; then, or at the request deadline, every call still pending is
/// dropped (cancelled) and recorded as not completed.
///
/// One timer serves all the calls: thousands of calls may be in flight at once.
pub async fn gather<F>(
    calls: Vec<Pending<'_, F>>,
    quorum: u32,
    limits: Limits,
    shape: EntryShape,
) -> Vec<(CheckResponse, Fate)>
where
    F: Future<Output = CheckResponse>,
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
    let mut answers: Vec<Option<(CheckResponse, Duration)>> = vec![None; who.len()];
    let mut grace_until: Option<Instant> = None;
    while !pending.is_empty() {
        let wake = [grace_until, call_deadline]
            .into_iter()
            .flatten()
            .fold(deadline, Instant::min);
        tokio::select! {
            next = pending.next() => {
                if let Some((i, response)) = next {
                    answers[i] = Some((response, started.elapsed()));
                }
            }
            () = tokio::time::sleep_until(wake) => {
                if Some(wake) == call_deadline && grace_until.is_none_or(|g| g > wake) {
                    let took = started.elapsed();
                    for (answer, (_, code)) in answers.iter_mut().zip(&who) {
                        if answer.is_none() {
                            let message = format!(
                                "perspective {code}: no answer within {} ms",
                                limits.call_timeout.as_millis()
                            );
                            *answer = Some((shape.failed(message), took));
                        }
                    }
                }
                break;
            }
        }
        if grace_until.is_none() {
            let answered: Vec<Outcome> = answers
                .iter()
                .zip(&who)
                .filter_map(|(a, (rir, _))| a.as_ref().map(|(r, _)| outcome(*rir, r)))
                .collect();
            let waiting: Vec<Rir> = answers
                .iter()
                .zip(&who)
                .filter(|(a, _)| a.is_none())
                .map(|(_, (rir, _))| *rir)
                .collect();
            if settled(n, quorum, &answered, &waiting).is_some() {
                grace_until = Some(Instant::now() + limits.grace);
            }
        }
    }
    let (why, fate) = if grace_until.is_some() {
        (
            "cancelled: the verdict was settled before it answered",
            Fate::Cancelled,
        )
    } else {
        ("no answer within the request deadline", Fate::Deadline)
    };
    answers
        .into_iter()
        .map(|a| match a {
            Some((r, took)) => (r, Fate::Finished(took)),
            None => (shape.failed(why), fate),
        })
        .collect()
}

/// A response as the tally sees it.
pub fn outcome(rir: Rir, response: &CheckResponse) -> Outcome {
    Outcome {
        rir,
        completed: response.check_completed,
        passed: response.check_passed && response.check_completed,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shape() -> EntryShape {
        EntryShape {
            check_type: CheckType::Caa,
            method: None,
        }
    }

    fn pass() -> CheckResponse {
        CheckResponse {
            check_completed: true,
            check_passed: true,
            errors: None,
            ..shape().failed("")
        }
    }

    type Boxed = std::pin::Pin<Box<dyn Future<Output = CheckResponse> + Send>>;

    fn after(ms: u64, r: CheckResponse) -> Boxed {
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
        let out: Vec<CheckResponse> = gather(
            calls,
            4,
            limits(Duration::from_millis(250), start + Duration::from_secs(15)),
            shape(),
        )
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
        // Quorum 4 with two RIRs is reached at 40 ms; the grace runs to 290 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(290));
        assert_eq!(
            out.iter().filter(|r| r.check_passed).count(),
            5,
            "the fifth answered within the grace"
        );
        assert!(!out[5].check_completed && !out[5].check_passed);
        assert!(
            out[5].errors.as_ref().unwrap()[0]
                .error_message
                .contains("cancelled")
        );
        assert_eq!(
            out[5].errors.as_ref().unwrap()[0].error_type,
            error_type::COORDINATOR_REMOTE_CHECK
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_settled_failure_also_stops_early() {
        use Rir::*;
        let start = Instant::now();
        let fail = || shape().failed("x");
        let calls: Vec<Pending<'_, Boxed>> = pending(vec![
            (Arin, after(10, fail())),
            (RipeNcc, after(10, fail())),
            (Apnic, after(10, fail())),
            (Lacnic, never()),
            (Afrinic, never()),
            (Arin, never()),
        ]);
        let out: Vec<CheckResponse> = gather(
            calls,
            4,
            limits(Duration::from_millis(100), start + Duration::from_secs(15)),
            shape(),
        )
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
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
        let out: Vec<CheckResponse> = gather(
            calls,
            2,
            limits(Duration::from_millis(100), start + Duration::from_secs(2)),
            shape(),
        )
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(
            out[0].errors.as_ref().unwrap()[0]
                .error_message
                .contains("deadline")
        );
        assert!(out[2].check_passed);
    }

    #[tokio::test(start_paused = true)]
    async fn everyone_answering_needs_no_grace() {
        use Rir::*;
        let start = Instant::now();
        let calls: Vec<Pending<'_, Boxed>> =
            pending(vec![(Arin, after(5, pass())), (RipeNcc, after(7, pass()))]);
        let out: Vec<CheckResponse> = gather(
            calls,
            1,
            limits(Duration::from_millis(500), start + Duration::from_secs(2)),
            shape(),
        )
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
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
        let out = gather(calls, 3, limits, shape()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(out[0].0.check_passed);
        assert_eq!(out[0].1, Fate::Finished(Duration::from_millis(10)));
        for (i, code) in [(1, "b"), (2, "c")] {
            let (response, fate) = &out[i];
            assert!(!response.check_completed && !response.check_passed);
            let error = &response.errors.as_ref().unwrap()[0];
            assert_eq!(error.error_type, error_type::COORDINATOR_REMOTE_CHECK);
            assert_eq!(
                error.error_message,
                format!("perspective {code}: no answer within 1000 ms")
            );
            assert_eq!(*fate, Fate::Finished(Duration::from_secs(1)));
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
        let out = gather(calls, 2, limits, shape()).await;
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(out[2].1, Fate::Finished(Duration::from_millis(100)));
        assert!(
            out[2].0.errors.as_ref().unwrap()[0]
                .error_message
                .ends_with("no answer within 100 ms")
        );
    }

    /// Thousands of calls may be in flight (1,000 requests × 6 perspectives): each call's
    /// future must stay small, so the exchange (and the rare, large connection set-up in it)
    /// lives behind a box, allocated once the call has its stream.
    #[test]
    fn a_call_in_flight_is_small() {
        let channel =
            crate::channel::Channel::new("http://127.0.0.1:1", None, Duration::from_secs(1))
                .unwrap();
        let call = Call {
            uri: &channel.caa,
            channel: &channel,
            code: "",
            body: Bytes::new(),
            trace_identifier: None,
        };
        let future = super::call(call, shape());
        let size = std::mem::size_of_val(&future);
        assert!(size <= 512, "a call's future is {size} bytes");
    }
}
