//! Hits: a fresh stored object, or a stale one served while it is refreshed in the background,
//! with its pages brought into memory first.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use server_kit::Body;

use super::Edge;
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
        self.stored_response(request, object, age, cache)
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
