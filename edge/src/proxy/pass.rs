//! Requests that are not cached: POST, PUT, PATCH, DELETE and any other method the edge does
//! not answer itself go to the origin with their bodies streamed both ways. A body over
//! `max_request_body` gets 413; a request whose body has started to go out is never sent to a
//! second origin. A successful answer (2xx or 3xx) invalidates the stored copies of the target
//! URI and of a same-host `Location` or `Content-Location` (RFC 9111 §4.4).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use server_kit::{Body, body};

use super::respond::{error_response, passed_on};
use super::{ERROR, Edge, PASS};
use crate::key;

impl Edge {
    pub(super) async fn pass(&self, request: Request<Incoming>) -> (Response<Body>, &'static str) {
        let limit = self.max_request_body;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return (too_large(limit), PASS);
        }
        let base = key::cache_key(&request, &self.key_params, self.canonical_host.as_deref());
        let target_host = base.split('/').next().unwrap_or("").to_owned();
        let path = super::path_and_query(&request);
        let method = request.method().clone();
        let headers = self
            .filler
            .forwarded(request.headers(), super::peer(&request));
        // Counted before the limit, so that a body cut off by it is told from a broken origin.
        let seen = Arc::new(AtomicU64::new(0));
        let counter = seen.clone();
        let slow = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let timed = body::timed(
            request.into_body(),
            self.body_timeout,
            self.body_min_rate,
            slow.clone(),
        );
        let counted = timed.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        });
        let body = Limited::new(counted, limit as usize).boxed();
        let response = match self
            .filler
            .upstream()
            .send(method, &path, headers, body)
            .await
        {
            Ok(response) => response,
            Err(error) => {
                // A body that grew past the limit breaks the origin request: say why.
                if seen.load(Ordering::Relaxed) > limit {
                    return (too_large(limit), PASS);
                }
                if slow.load(Ordering::SeqCst) {
                    return (too_slow(), PASS);
                }
                tracing::warn!(%error, "passing the request to the origin failed");
                return (error_response(&error), ERROR);
            }
        };
        let (parts, incoming) = response.into_parts();
        if parts.status.is_success() || parts.status.is_redirection() {
            self.invalidate(&base);
            for name in [header::LOCATION, header::CONTENT_LOCATION] {
                if let Some(other) = parts
                    .headers
                    .get(&name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| same_host_key(v, &target_host))
                {
                    self.invalidate(&other);
                }
            }
        }
        (passed_on(parts, incoming), PASS)
    }
}

fn too_large(limit: u64) -> Response<Body> {
    let mut response = body::text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("client error: request bodies are limited to {limit} bytes on this edge"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn too_slow() -> Response<Body> {
    let mut response = body::text(
        StatusCode::REQUEST_TIMEOUT,
        "client error: the request body stalled or came too slowly; send it again",
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The base cache key a `Location` or `Content-Location` value names, if it is on `host` (a
/// path, or an absolute URL with that host): another host's copies are not ours to drop.
fn same_host_key(value: &str, host: &str) -> Option<String> {
    let uri: http::Uri = value.parse().ok()?;
    match uri.host() {
        Some(h) if !h.eq_ignore_ascii_case(host) => None,
        _ if uri.host().is_none() && !value.starts_with('/') => None,
        _ => Some(format!("{host}{}", uri.path())),
    }
}

#[cfg(test)]
mod tests {
    use super::same_host_key;

    #[test]
    fn only_the_same_host_is_invalidated() {
        assert_eq!(same_host_key("/a/b?x=1", "h").as_deref(), Some("h/a/b"));
        assert_eq!(same_host_key("http://H/a", "h").as_deref(), Some("h/a"));
        assert_eq!(same_host_key("http://other/a", "h"), None);
        assert_eq!(same_host_key("relative", "h"), None);
    }
}
