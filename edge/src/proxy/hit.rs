//! Answers from a stored object (fresh, or stale while it is refreshed in the background).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use server_kit::{Body, body};

use super::Edge;
use super::respond::respond;
use crate::meta::CachedMeta;
use crate::store::StoredObject;

impl Edge {
    /// A response from a stored object, its pages in memory first.
    pub(super) async fn hit(
        &self,
        request: &Request<Incoming>,
        object: &StoredObject<CachedMeta>,
        age: Duration,
        cache: &'static str,
    ) -> Response<Body> {
        self.fault_in(&object.body).await;
        stored_response(request, object, age, cache)
    }

    /// Makes sure a stored body's pages are in memory before it is sent, so that a cold object
    /// never stalls a runtime worker on disk reads: hot bodies go straight out (a `mincore`
    /// check), cold ones get `MADV_WILLNEED` plus a pre-touch on the blocking pool. The costs
    /// behind that choice are measured by `cargo bench -p edge --bench store`.
    async fn fault_in(&self, body: &Bytes) {
        if body.len() < 64 * 1024 || self.store.is_resident(body) {
            return;
        }
        self.store.will_need(body);
        let body = body.clone();
        let _ = tokio::task::spawn_blocking(move || {
            body.iter().step_by(4096).fold(0u8, |acc, &b| acc ^ b)
        })
        .await;
    }
}

/// A stored object as this request gets it: validators, ranges and HEAD are answered here.
pub(super) fn stored_response(
    request: &Request<Incoming>,
    object: &StoredObject<CachedMeta>,
    age: Duration,
    cache: &'static str,
) -> Response<Body> {
    let mut headers = object.meta.header_map();
    let status = StatusCode::from_u16(object.meta.status).unwrap_or(StatusCode::OK);
    headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
    headers.insert("x-cache", HeaderValue::from_static(cache));
    let len = object.body.len() as u64;
    respond(request, status, headers, Some(len), |start, take| {
        let end = take.map_or(len, |t| start + t);
        body::full(object.body.slice(start as usize..end as usize))
    })
}
