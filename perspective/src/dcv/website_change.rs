//! Website change, BR 3.2.2.4.18 (domains) and 3.2.2.5.1 (IP addresses):
//! `<scheme>://<host>/.well-known/pki-validation/<http_token_path>` must answer 2xx with a
//! body that contains `challenge_value` (case-sensitive unless `require_exact_case` is false)
//! and, when given, matches `match_regex`. The fetch is [`super::http_fetch`]'s; the judgement
//! is [`evaluate`], a pure function of the final response.

use mpic_common::api::{CheckResponse, UrlScheme, ValidationMethod, WebsiteChangeParameters};
use mpic_common::outcome::{Outcome, Problem, ProblemKind};
use mpic_common::target::Target;
use regex::Regex;

use super::DcvContext;
use super::http_fetch::{self, Fetched};

/// Where the website-change file lives (BR 3.2.2.4.18).
pub const WELL_KNOWN_PKI_VALIDATION: &str = "/.well-known/pki-validation/";

const METHOD: ValidationMethod = ValidationMethod::WebsiteChange;

/// Runs the check. Never fails: problems are a failed [`CheckResponse`].
pub async fn check(
    ctx: &DcvContext,
    target: &Target,
    p: &WebsiteChangeParameters,
) -> CheckResponse {
    let regex = match p.match_regex.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => match mpic_common::validate::match_regex(r) {
            Ok(regex) => Some(regex),
            // Requests are validated before; this is defence in depth.
            Err(e) => {
                return http_fetch::refused_parameter(
                    METHOD,
                    format!("field `dcv_check_parameters.match_regex`: {e}"),
                );
            }
        },
    };
    let scheme = match p.url_scheme {
        UrlScheme::Http => "http",
        UrlScheme::Https => "https",
    };
    let path = format!("{WELL_KNOWN_PKI_VALIDATION}{}", p.http_token_path);
    let headers = p.http_headers.as_ref();
    let fetched =
        match http_fetch::fetch_challenge(ctx, METHOD, target, scheme, &path, headers).await {
            Ok(f) => f,
            Err(response) => return *response,
        };
    let outcome = evaluate(p, regex.as_ref(), &fetched);
    http_fetch::judged(METHOD, outcome, &fetched, p.challenge_value.len())
}

/// The judgement of the final response: a 2xx status, the challenge value in the body
/// (surrounding whitespace trimmed, as the reference searches it; for a substring search that
/// changes nothing, for an anchored `match_regex` it does) and `regex`, when given, matching.
pub fn evaluate(p: &WebsiteChangeParameters, regex: Option<&Regex>, fetched: &Fetched) -> Outcome {
    if !(200..300).contains(&fetched.status) {
        return http_fetch::wrong_status(fetched, "a 2xx status");
    }
    let text = String::from_utf8_lossy(&fetched.body);
    let text = text.trim();
    let found = p.challenge_value.is_empty()
        || if p.require_exact_case {
            text.contains(p.challenge_value.as_str())
        } else {
            text.to_lowercase()
                .contains(&p.challenge_value.to_lowercase())
        };
    let regex_ok = regex.is_none_or(|r| r.is_match(text));
    if found && regex_ok {
        return Outcome::Passed;
    }
    let what = match (found, regex_ok) {
        (false, false) => "the challenge value was not found and match_regex did not match",
        (false, true) => "the challenge value was not found",
        _ => "match_regex did not match",
    };
    let scope = if fetched.truncated {
        format!(" (in the first {} bytes read)", fetched.body.len())
    } else {
        String::new()
    };
    Outcome::NotPassed(vec![Problem::new(
        ProblemKind::Http,
        format!("{}: {what}{scope}", fetched.trail.final_url),
    )])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::dcv::http_fetch::tests::fetched;

    fn params(challenge: &str, exact_case: bool, regex: Option<&str>) -> WebsiteChangeParameters {
        serde_json::from_value(serde_json::json!({
            "http_token_path": "t",
            "challenge_value": challenge,
            "require_exact_case": exact_case,
            "match_regex": regex,
        }))
        .unwrap()
    }

    #[test]
    fn evaluate_table() {
        struct Case {
            name: &'static str,
            params: WebsiteChangeParameters,
            status: u16,
            body: &'static str,
            truncated: bool,
            want: Result<(), &'static str>,
        }
        let url = "http://example.com/.well-known/pki-validation/t";
        let cases = [
            Case {
                name: "found",
                params: params("tok-123", true, None),
                status: 200,
                body: "<p>tok-123</p>",
                truncated: false,
                want: Ok(()),
            },
            Case {
                name: "any 2xx",
                params: params("tok-123", true, None),
                status: 204,
                body: "tok-123",
                truncated: false,
                want: Ok(()),
            },
            Case {
                name: "a 3xx that was not followed",
                params: params("tok-123", true, None),
                status: 304,
                body: "tok-123",
                truncated: false,
                want: Err("status 304, a 2xx status is required"),
            },
            Case {
                name: "case differs, exact case required",
                params: params("Tok-123", true, None),
                status: 200,
                body: "tok-123",
                truncated: false,
                want: Err("the challenge value was not found"),
            },
            Case {
                name: "case differs, any case allowed",
                params: params("Tok-123", false, None),
                status: 200,
                body: "TOK-123",
                truncated: false,
                want: Ok(()),
            },
            Case {
                name: "regex must match too",
                params: params("tok", true, Some("^tok-[0-9]+$")),
                status: 200,
                body: "  tok-123\n",
                truncated: false,
                want: Ok(()),
            },
            Case {
                name: "regex does not match",
                params: params("tok", true, Some("^x")),
                status: 200,
                body: "tok-123",
                truncated: false,
                want: Err("match_regex did not match"),
            },
            Case {
                name: "neither",
                params: params("zzz", true, Some("^x")),
                status: 200,
                body: "tok-123",
                truncated: false,
                want: Err("the challenge value was not found and match_regex did not match"),
            },
            Case {
                name: "not in what was read",
                params: params("zzz", true, None),
                status: 200,
                body: "tok-123",
                truncated: true,
                want: Err("the challenge value was not found (in the first 7 bytes read)"),
            },
        ];
        for case in cases {
            let regex = case
                .params
                .match_regex
                .as_deref()
                .map(|r| mpic_common::validate::match_regex(r).unwrap());
            let f = fetched(url, case.status, case.body, case.truncated);
            let got = evaluate(&case.params, regex.as_ref(), &f);
            match case.want {
                Ok(()) => assert_eq!(got, Outcome::Passed, "{}", case.name),
                Err(why) => assert_eq!(
                    got,
                    Outcome::NotPassed(vec![Problem::new(
                        ProblemKind::Http,
                        format!("{url}: {why}")
                    )]),
                    "{}",
                    case.name
                ),
            }
        }
    }
}
