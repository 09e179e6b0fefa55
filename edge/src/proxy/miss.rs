//! Nothing stored for the key: join the fill in flight, or lead a new one, and stream the
//! origin's answer to the viewer as it arrives.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use server_kit::{Body, body};

use super::respond::respond;
use super::{ERROR, Edge, HIT, MISS};
use crate::error::EdgeError;
use crate::fill::{Fill, FillHead};
use crate::meta;

impl Edge {
    pub(super) async fn miss(
        &self,
        request: &Request<Incoming>,
        base: &str,
        key: &str,
    ) -> (Response<Body>, &'static str) {
        let fill = self.fill_for(request, base, None);
        // A fill that already completed is being written to the store: its bytes are the edge's
        // own, so this is a hit, not a trip to the origin.
        let cached = if fill.is_complete() { HIT } else { MISS };
        match fill.head().await {
            Ok(head) if head.status == StatusCode::NOT_MODIFIED => self.revalidated(request, key),
            Ok(head) => {
                if cached == HIT {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                (fill_response(request, &fill, &head, cached), cached)
            }
            Err(error) => (error_response(&error), ERROR),
        }
    }
}

/// A response streamed from a fill.
pub(super) fn fill_response(
    request: &Request<Incoming>,
    fill: &Arc<Fill>,
    head: &FillHead,
    cache: &'static str,
) -> Response<Body> {
    let mut headers = HeaderMap::with_capacity(head.headers.len() + 3);
    for (name, value) in &head.headers {
        if !meta::is_not_stored(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(header::AGE, HeaderValue::from_static("0"));
    headers.insert("x-cache", HeaderValue::from_static(cache));
    respond(
        request,
        head.status,
        headers,
        head.content_length,
        |start, take| fill.body(start, take),
    )
}

/// What a viewer gets when the edge cannot answer: who failed, and what to do.
pub(super) fn error_response(error: &EdgeError) -> Response<Body> {
    body::text(error.status(), error.advice())
}
