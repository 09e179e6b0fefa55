//! The first step of every GET and HEAD: the cache key, the stored copy if any, and what its
//! freshness allows. Here too the prefetches a segment request implies are started.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use http::{Request, Response};
use hyper::body::Incoming;
use server_kit::Body;

use super::{Edge, HIT, STALE};
use crate::fill::{FillRequest, Revalidating};
use crate::freshness::{self, Freshness};
use crate::key;
use crate::meta::CachedMeta;

/// May a stored response answer a request with credentials (RFC 9111 §3.5)?
fn shared_with_credentials(meta: &CachedMeta) -> bool {
    let cc = freshness::CacheControl::parse(&meta.header_map());
    cc.allows_credentialed()
}

/// The answer to `only-if-cached` when nothing usable is stored (RFC 9111 §5.2.1.7).
fn only_if_cached() -> Response<Body> {
    server_kit::body::text(
        http::StatusCode::GATEWAY_TIMEOUT,
        "client error: only-if-cached, and this edge has no usable copy",
    )
}

impl Edge {
    /// Serves a GET or HEAD: looks it up, then answers from the store, after a revalidation,
    /// or from a fill.
    pub(super) async fn serve(
        &self,
        request: &Request<Incoming>,
    ) -> (Response<Body>, &'static str) {
        let base = key::cache_key(request, &self.key_params, self.canonical_host.as_deref());
        let key = self.variants.key_for(&base, request.headers());
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.start_prefetches(request, &base).await;
        let private = self.has_credentials(request.headers());
        let asked = crate::request_cc::RequestCacheControl::parse(request.headers());
        // Looked up a second time only when the object was stored between the first lookup
        // and the miss (a fill ended meanwhile).
        let mut look_again = true;
        let object = loop {
            let object = self
                .cached(&key)
                .await
                .filter(|object| !private || shared_with_credentials(&object.meta));
            match object {
                Some(object) => break object,
                None if asked.only_if_cached => return (only_if_cached(), super::ERROR),
                None => match self.miss(request, &base, &key, look_again).await {
                    Some(answer) => return answer,
                    None => look_again = false,
                },
            }
        };
        self.prefetcher.note_use(&key);
        let age = object.meta.age(SystemTime::now());
        let verdict = asked.evaluate(&object.meta.policy, age, self.ignore_client_no_cache);
        if asked.only_if_cached && matches!(verdict, Freshness::Stale { .. }) {
            return (only_if_cached(), super::ERROR);
        }
        match verdict {
            Freshness::Fresh => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                (self.hit(request, &object, age, HIT).await, HIT)
            }
            Freshness::StaleWhileRevalidate => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                // Refreshed in the background: the fill outlives this request.
                let stale = Revalidating {
                    key,
                    version: object.version,
                    meta: object.meta.clone(),
                };
                self.fill_for(request, &base, Some(stale));
                (self.hit(request, &object, age, STALE).await, STALE)
            }
            Freshness::Stale { if_error } => {
                self.revalidate(request, &base, key, object, if_error).await
            }
        }
    }

    async fn start_prefetches(&self, request: &Request<Incoming>, base: &str) {
        // A viewer's credentials never go into a fetch that others may join.
        if self.has_credentials(request.headers()) {
            return;
        }
        let path = request.uri().path();
        let client = super::peer(request);
        let manifest = match self.prefetcher.playlist_key(path, base) {
            Some(key) if self.prefetcher.may_prefetch(client) => match self.cached(&key).await {
                Some(object) => object.body.bytes().await.ok().map(|text| (key, text)),
                None => None,
            },
            _ => None,
        };
        let next = crate::cmcd::Cmcd::of(request.uri().query(), request.headers()).next_object();
        let viewer = crate::prefetch::Viewer {
            client,
            next: next.as_deref(),
        };
        let plan = self.prefetcher.plan(
            path,
            base,
            viewer,
            // Read as a viewer gets it: a packager's absolute URLs are CDN paths there.
            // Only the manifest read above: the folder's may have changed since.
            |key| {
                manifest
                    .filter(|(read, _)| **read == *key)
                    .map(|(_, text)| self.manifests.with_cdn_paths(text))
            },
            |key| self.store.contains(key) || self.filler.in_flight(key, request.headers()),
        );
        // Prefetches are fills of their own (not a viewer's: `fill_for` is for those).
        for prefetch in plan {
            self.filler.start(FillRequest {
                base: prefetch.key,
                path: prefetch.path,
                headers: request.headers().clone(),
                revalidating: None,
                prefetch: true,
                peer: super::peer(request),
                private: false,
                credentials: false,
                slice: None,
            });
        }
    }
}
