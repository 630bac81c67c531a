//! ACME http-01, BR 3.2.2.4.19 (domains) and 3.2.2.5.6 (IP addresses), RFC 8555 section 8.3,
//! RFC 8738 section 3: `http://<host>/.well-known/acme-challenge/<token>` must answer 200 (as
//! Boulder and the reference require) with a body that, with surrounding whitespace removed,
//! is exactly the key authorization. The fetch is [`super::http_fetch`]'s; the judgement is
//! [`evaluate`], a pure function of the final response.

use mpic_common::api::{AcmeHttp01Parameters, CheckResponse, ValidationMethod};
use mpic_common::outcome::{Outcome, Problem, ProblemKind};
use mpic_common::target::Target;

use super::DcvContext;
use super::http_fetch::{self, Fetched};

/// Where the http-01 resource lives (RFC 8555 section 8.3).
pub const WELL_KNOWN_ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

const METHOD: ValidationMethod = ValidationMethod::AcmeHttp01;

/// Runs the check. Never fails: problems are a failed [`CheckResponse`].
pub async fn check(ctx: &DcvContext, target: &Target, p: &AcmeHttp01Parameters) -> CheckResponse {
    let path = format!("{WELL_KNOWN_ACME_CHALLENGE}{}", p.token);
    let headers = p.http_headers.as_ref();
    let fetched =
        match http_fetch::fetch_challenge(ctx, METHOD, target, "http", &path, headers).await {
            Ok(f) => f,
            Err(response) => return *response,
        };
    let outcome = evaluate(p, &fetched);
    http_fetch::judged(METHOD, outcome, &fetched, p.key_authorization.len())
}

/// The judgement of the final response: status 200 and, whitespace around it removed, a
/// body that is the key authorization, read whole.
pub fn evaluate(p: &AcmeHttp01Parameters, fetched: &Fetched) -> Outcome {
    if fetched.status != 200 {
        return http_fetch::wrong_status(fetched, "200");
    }
    let passed =
        !fetched.truncated && String::from_utf8_lossy(&fetched.body).trim() == p.key_authorization;
    if passed {
        return Outcome::Passed;
    }
    let message = if fetched.truncated {
        format!(
            "{}: the body is longer than {} bytes, so it is not the key authorization",
            fetched.trail.final_url,
            fetched.body.len()
        )
    } else {
        format!(
            "{}: the body is not the key authorization",
            fetched.trail.final_url
        )
    };
    Outcome::NotPassed(vec![Problem::new(ProblemKind::Http, message)])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dcv::http_fetch::tests::fetched;

    #[test]
    fn evaluate_table() {
        let p: AcmeHttp01Parameters = serde_json::from_value(
            serde_json::json!({"token": "tok", "key_authorization": "tok.thumb"}),
        )
        .unwrap();
        let url = "http://example.com/.well-known/acme-challenge/tok";
        // name, status, body, read only in part, and the problem expected (none: passed).
        type Case = (
            &'static str,
            u16,
            &'static str,
            bool,
            Result<(), &'static str>,
        );
        let cases: [Case; 6] = [
            ("exact", 200, "tok.thumb", false, Ok(())),
            (
                "whitespace around is removed",
                200,
                " \ntok.thumb\r\n",
                false,
                Ok(()),
            ),
            (
                "another 2xx is not enough",
                201,
                "tok.thumb",
                false,
                Err("status 201, 200 is required"),
            ),
            (
                "case matters",
                200,
                "TOK.thumb",
                false,
                Err("the body is not the key authorization"),
            ),
            (
                "more than the key authorization",
                200,
                "tok.thumb tok",
                false,
                Err("the body is not the key authorization"),
            ),
            (
                "a body longer than what was read",
                200,
                "tok.thumb",
                true,
                Err("the body is longer than 9 bytes, so it is not the key authorization"),
            ),
        ];
        for (name, status, body, truncated, want) in cases {
            let got = evaluate(&p, &fetched(url, status, body, truncated));
            match want {
                Ok(()) => assert_eq!(got, Outcome::Passed, "{name}"),
                Err(why) => assert_eq!(
                    got,
                    Outcome::NotPassed(vec![Problem::new(
                        ProblemKind::Http,
                        format!("{url}: {why}")
                    )]),
                    "{name}"
                ),
            }
        }
    }
}
