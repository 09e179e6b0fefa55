//! The bearer token of operators' operations (PURGE, drain, fleet purges), checked the same way
//! by every server.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::{Body, body};

/// `None` when `headers` carry `Authorization: Bearer <token>`; else the refusal to send: 403
/// when no token is configured (the operation is off), 401 when it is missing or wrong.
pub fn refusal(headers: &HeaderMap, token: Option<&str>) -> Option<Response<Body>> {
    let Some(token) = token else {
        return Some(body::text(
            StatusCode::FORBIDDEN,
            "client error: this operation is disabled (no admin_token configured)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return None;
    }
    let mut response = body::text(
        StatusCode::UNAUTHORIZED,
        "client error: missing or wrong bearer token",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}

/// Equal, in a time that does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_token_passes_and_others_get_401_or_403() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            refusal(&headers, None).map(|r| r.status()),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            refusal(&headers, Some("t")).map(|r| r.status()),
            Some(StatusCode::UNAUTHORIZED)
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        assert!(refusal(&headers, Some("t")).is_none());
        assert!(refusal(&headers, Some("u")).is_some());
    }
}
