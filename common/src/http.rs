//! The HTTP envelope both services share, built in one place: the error bodies of api.md
//! ("Other statuses"), bounded JSON request bodies, and the metrics response.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::api::{ErrorBody, ValidationFailure, ValidationIssue};

/// `{"error": what}` with `status`.
pub fn error(status: StatusCode, what: &str) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: what.to_owned(),
        }),
    )
        .into_response()
}

/// The 400 body of api.md: every issue names the field.
pub fn bad_request(issues: Vec<ValidationIssue>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(ValidationFailure {
            error: "request-validation-failed".to_owned(),
            validation_issues: issues,
        }),
    )
        .into_response()
}

/// 503 with `Retry-After`: load is shed, never queued.
pub fn overloaded() -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// 408 (RFC 9110 section 15.5.9): the request's body did not arrive within its deadline.
pub fn request_timeout() -> Response {
    error(StatusCode::REQUEST_TIMEOUT, "request-timeout")
}

/// 404 with the JSON envelope.
pub async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not-found")
}

/// 405 with the JSON envelope.
pub async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed")
}

/// 500 with the JSON envelope, for a handler that panicked (the panic is logged by the layer).
pub fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal-error")
}

/// A `{"status": …}` body.
pub fn status(code: StatusCode, value: serde_json::Value) -> Response {
    (code, axum::Json(value)).into_response()
}

/// Reads a JSON body of at most `limit` bytes into `T`: 415 when the content type is given
/// and is not JSON, 413 when too large, 400 when its framing is malformed, 400 naming the
/// field when it does not parse.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, Response> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let json = ct
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
            ));
        }
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = e
            .into_inner()
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some();
        if too_large {
            error(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large")
        } else {
            // Malformed framing (a bad chunk size, a body cut short): the request, not its
            // size, is at fault.
            bad_request(vec![crate::validate::issue_at(
                crate::validate::issue::INVALID_JSON,
                "the body could not be read: its framing is malformed or it ended early",
            )])
        }
    })?;
    crate::validate::parse_json::<T>(&bytes).map_err(|issue| bad_request(vec![issue]))
}

/// `GET /metrics`: the registry in the text exposition format.
pub fn metrics(registry: &prometheus_client::registry::Registry) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(registry),
    )
        .into_response()
}
