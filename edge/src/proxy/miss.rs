//! Nothing stored for the key: join the fill in flight, or lead a new one, and stream the
//! origin's answer to the viewer as it arrives.

use std::sync::atomic::Ordering;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use server_kit::Body;

use super::respond::{error_response, fill_response};
use super::{ERROR, Edge, HIT, MISS};

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
