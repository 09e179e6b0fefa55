//! CORS for browser players: every media response may be read from any origin, and players
//! may send the headers a video client needs (ranges and validators).

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::{Body, body};

/// Headers a player's script may read from our responses: lengths, validators, and which edge
/// served the bytes and how.
pub const EXPOSED: &str =
    "Content-Length, Content-Range, ETag, Last-Modified, Age, X-Cache, X-Served-By";

/// Marks a response readable from any origin.
pub fn allow_any_origin(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
}

/// The answer to a CORS preflight (`OPTIONS`).
pub fn preflight() -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Range, If-None-Match, If-Modified-Since, If-Range"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

/// The class of an HTTP status, as a bounded metric label value.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
