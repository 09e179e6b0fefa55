//! Hits: a fresh stored object, or a stale one served while it is refreshed in the background.

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use server_kit::Body;

use super::Edge;
use crate::meta::CachedMeta;
use crate::store::StoredObject;

impl Edge {
    /// A response from a stored object (read by the lookup, on the blocking pool; a large body
    /// is read there chunk by chunk as it is sent).
    pub(super) async fn hit(
        &self,
        request: &Request<Incoming>,
        object: &StoredObject<CachedMeta>,
        age: Duration,
        cache: &'static str,
    ) -> Response<Body> {
        self.stored_response(request, object, age, cache)
    }
}
