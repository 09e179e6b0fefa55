//! Nothing stored for the key: join the fill in flight, or lead a new one, and stream the
//! origin's answer to the viewer as it arrives. A joined fill's answer is checked once its head
//! is known: a waiter whose request differs in a field the response varies on, that joined a
//! fill already complete whose response may not be reused (not storable, or not fresh), or
//! whose fill's response is not shared (passed to one viewer), gets a fetch of its own.

use std::sync::atomic::Ordering;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use server_kit::Body;

use super::respond::{error_response, passed_on};
use super::{ERROR, Edge, HIT, MISS};
use crate::fill::FillHead;
use crate::freshness;
use crate::key;

impl Edge {
    pub(super) async fn miss(
        &self,
        request: &Request<Incoming>,
        base: &str,
        key: &str,
        look_again: bool,
    ) -> Option<(Response<Body>, &'static str)> {
        // A manifest's ranges are of the bytes this edge writes, so it is fetched whole.
        if request.method() == http::Method::GET
            && request.headers().contains_key(http::header::RANGE)
            && !self.filler.in_flight(base, request.headers())
            && !self.manifests.may_rewrite(request.uri().path())
        {
            if let Some(answer) = self.sliced(request, base).await {
                return Some(answer);
            }
            return Some(self.range_miss(request, base, key).await);
        }
        self.fill_miss(request, base, key, look_again).await
    }

    /// Joins or leads the fill for this request and answers from it. With `look_again`, None
    /// when the object was stored since the caller looked it up (look it up again).
    async fn fill_miss(
        &self,
        request: &Request<Incoming>,
        base: &str,
        key: &str,
        look_again: bool,
    ) -> Option<(Response<Body>, &'static str)> {
        // A key whose last response could not be stored is fetched on its own for a while.
        let mut fill = if self.filler.is_passing(base) {
            self.fill_alone(request, base)
        } else if look_again {
            self.fill_unless_stored(request, base, key)?
        } else {
            self.fill_for(request, base, None)
        };
        // A fill that already completed is being written to the store: its bytes are the edge's
        // own, so this is a hit, not a trip to the origin, if the response may be reused.
        let mut cached = if fill.is_complete() { HIT } else { MISS };
        let mut head = fill.head().await;
        // A response that is not shared goes to one viewer only (`claim`); the rest fetch too.
        if let Ok(h) = &head
            && (!(shareable(request, h) && (cached == MISS || reusable(request, h)))
                || !fill.claim())
        {
            fill = self.fill_alone(request, base);
            cached = MISS;
            head = fill.head().await;
            fill.claim();
        }
        Some(match head {
            Ok(head) if head.status == StatusCode::NOT_MODIFIED => {
                self.revalidated(request, key).await
            }
            Ok(head) => {
                if cached == HIT {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                (
                    self.fill_response(request, &fill, &head, cached).await,
                    cached,
                )
            }
            Err(error) => (error_response(&error), ERROR),
        })
    }
}

impl Edge {
    /// A range of an object nobody is fetching: the range alone is asked of the origin, so a
    /// viewer seeking into a large file never waits for (nor costs) the bytes before it, and
    /// the edge learns the object's length (a large one's later ranges come from `slices`). When
    /// the whole object is small enough to store, a fill of it starts beside, so the next
    /// request is a hit: the first range of a small object costs two origin requests, the
    /// price of never fetching a large one whole.
    async fn range_miss(
        &self,
        request: &Request<Incoming>,
        base: &str,
        key: &str,
    ) -> (Response<Body>, &'static str) {
        let path = super::path_and_query(request);
        let headers = self
            .filler
            .forwarded(request.headers(), super::peer(request));
        let response = match self.filler.upstream().get(&path, &headers).await {
            Ok(response) => response,
            Err(error) => return (error_response(&error), ERROR),
        };
        if response.status() == StatusCode::OK {
            // The origin ignored the range: fetch the object as a fill, which answers ranges.
            drop(response);
            return self
                .fill_miss(request, base, key, false)
                .await
                .unwrap_or_else(|| unreachable!("a fill is always led without look_again"));
        }
        let (parts, body) = response.into_parts();
        let whole = match parts.status {
            StatusCode::PARTIAL_CONTENT => parts
                .headers
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, total)| total.parse::<u64>().ok()),
            _ => None,
        };
        if let Some(len) = whole {
            self.note_large(base, len, &parts.headers);
        }
        if whole.is_some_and(|len| len <= self.max_object_size)
            && !self.has_credentials(request.headers())
        {
            // Runs on its own; the store gets the object when it is complete.
            drop(self.fill_for(request, base, None));
        }
        let age = freshness::age_value(&parts.headers);
        let mut out = passed_on(parts, body);
        out.headers_mut()
            .insert(http::header::AGE, http::HeaderValue::from(age));
        (out, MISS)
    }
}

/// May this request be given the response its fill got for another (the leader's) request?
/// Not when the response varies on a field in which the two requests differ.
fn shareable<B>(request: &Request<B>, head: &FillHead) -> bool {
    if key::varies_on_everything(&head.headers) {
        return request.headers() == &head.request_headers;
    }
    match key::vary_names(&head.headers) {
        Some(names) => {
            key::variant_key("", &names, request.headers())
                == key::variant_key("", &names, &head.request_headers)
        }
        None => true,
    }
}

/// May a complete fill's response answer a request that arrived after it (as a stored one
/// would)? Only if it is fresh (the fill's one rule, `FillHead::fresh_until`) and this
/// request's own headers would let it be stored.
fn reusable<B>(request: &Request<B>, head: &FillHead) -> bool {
    let decisive = crate::targeted::for_this_cache(&head.headers);
    let cc = freshness::CacheControl::parse(&decisive);
    head.fresh_until
        .is_some_and(|until| std::time::SystemTime::now() < until)
        && freshness::storable(request.headers(), head.status, &decisive, &cc)
}
