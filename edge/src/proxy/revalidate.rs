//! A stale stored object: ask the origin whether it is still current (a conditional fill),
//! then serve it refreshed (304), the new version (200), or the stale copy where the origin
//! failed and `stale-if-error` allows it.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use server_kit::Body;

use super::respond::error_response;
use super::{ERROR, Edge, MISS, REVALIDATED, STALE};
use crate::error::EdgeError;
use crate::fill::Revalidating;
use crate::meta::CachedMeta;
use crate::store::StoredObject;

impl Edge {
    pub(super) async fn revalidate(
        &self,
        request: &Request<Incoming>,
        base: &str,
        key: String,
        stale: StoredObject<CachedMeta>,
        if_error: bool,
    ) -> (Response<Body>, &'static str) {
        let revalidating = Revalidating {
            key: key.clone(),
            version: stale.version,
            meta: stale.meta.clone(),
        };
        let fill = self.fill_for(request, base, Some(revalidating));
        let age = || stale.meta.age(SystemTime::now());
        match fill.head().await {
            Ok(head) if head.status == StatusCode::NOT_MODIFIED => {
                self.revalidated(request, &key).await
            }
            Ok(head) if head.status.is_server_error() && if_error => {
                (self.stored_response(request, &stale, age(), STALE), STALE)
            }
            Ok(head) if fill.claim() => {
                (self.fill_response(request, &fill, &head, MISS).await, MISS)
            }
            // A new version that is not shared went to another viewer: fetch it again.
            Ok(_) => {
                let fill = self.fill_alone(request, base);
                fill.claim();
                match fill.head().await {
                    Ok(head) => (self.fill_response(request, &fill, &head, MISS).await, MISS),
                    Err(error) => (error_response(&error), ERROR),
                }
            }
            Err(error) if if_error => {
                tracing::warn!(%error, "origin failed; serving stale (stale-if-error)");
                (self.stored_response(request, &stale, age(), STALE), STALE)
            }
            Err(error) => (error_response(&error), ERROR),
        }
    }

    /// The origin said 304 and the fill refreshed the stored meta: serve the stored copy.
    pub(super) async fn revalidated(
        &self,
        request: &Request<Incoming>,
        key: &str,
    ) -> (Response<Body>, &'static str) {
        match self.cached(key).await {
            Some(object) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                let age = object.meta.age(SystemTime::now());
                (
                    self.stored_response(request, &object, age, REVALIDATED),
                    REVALIDATED,
                )
            }
            None => {
                let error =
                    EdgeError::Internal("the revalidated object was evicted meanwhile".into());
                (error_response(&error), ERROR)
            }
        }
    }
}
