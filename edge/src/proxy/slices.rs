//! Ranges of objects too large to store whole (over `max_object_size`), kept as partial content
//! (RFC 9111 §3.3) in fixed slices of `slice_size` bytes, and combined to answer any range
//! (§3.4). The first range request for such an object passes through and teaches the edge its
//! length; later ones are answered from slices: those stored and fresh are read, the others
//! fetched from the origin as ranges of their own (one fill per slice, so concurrent viewers
//! share them), and the answer streams one slice at a time.
//!
//! Only objects whose responses may be stored are sliced, and only unconditional ranges.
//! Slices are combined only under the same strong `ETag` (the first slice's); a range that
//! spans slices of an object without one passes through, and a slice whose tag differs
//! (the object changed meanwhile) ends the answer with an error and is dropped from the store.
//! Slices are stored under the object's key plus `\0slice=<n>`, so a PURGE or an invalidation
//! of the object removes them with it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use server_kit::Body;
use video_http::range::{self, RangeOutcome};

use super::{Edge, HIT, MISS};
use crate::error::EdgeError;
use crate::fill::{FillRequest, Filler};
use crate::freshness::{self, Freshness};
use crate::key::Variants;
use crate::meta::{self, CachedMeta};
use crate::store::Store;

/// How many large objects' lengths the edge remembers.
const KNOWN_LARGE: u64 = 10_000;

/// The lengths of objects known to be too large to store whole.
pub(super) fn known_large() -> moka::sync::Cache<String, u64> {
    moka::sync::Cache::builder()
        .max_capacity(KNOWN_LARGE)
        .time_to_idle(Duration::from_secs(3600))
        .build()
}

/// The store key of slice `n` of the object stored under `base`.
fn slice_key(base: &str, n: u64) -> String {
    format!("{base}\0slice={n}")
}

/// One slice as the answer uses it.
struct Slice {
    body: Bytes,
    headers: HeaderMap,
    age: u64,
    stored: bool,
}

/// What fetching a slice needs, owned, so the answer's body can fetch as it streams.
#[derive(Clone)]
struct Source {
    store: Store<CachedMeta>,
    filler: Arc<Filler>,
    variants: Arc<Variants>,
    base: String,
    path: String,
    headers: HeaderMap,
    peer: Option<std::net::IpAddr>,
    slice_size: u64,
    total: u64,
    /// False while purges this edge missed may still apply to what it stores.
    from_store: bool,
}

impl Source {
    /// The bytes of slice `n` (the last one may be short), stored or fetched.
    async fn slice(&self, n: u64) -> Result<Slice, EdgeError> {
        let base = slice_key(&self.base, n);
        let key = self.variants.key_for(&base, &self.headers);
        let start = n * self.slice_size;
        let end = (start + self.slice_size).min(self.total) - 1;
        let stored = match self.from_store {
            true => self.store.lookup(&key).await,
            false => None,
        };
        if let Some(object) = stored {
            let age = object.meta.age(SystemTime::now());
            // A slice of another length is of another version of the object: fetched again.
            if freshness::evaluate(&object.meta.policy, age) == Freshness::Fresh
                && object.body.len() == end - start + 1
                && let Ok(body) = object.body.bytes().await
            {
                return Ok(Slice {
                    body,
                    headers: object.meta.header_map(),
                    age: age.as_secs(),
                    stored: true,
                });
            }
        }
        let fill = self.filler.start(FillRequest {
            base,
            path: self.path.clone(),
            headers: self.headers.clone(),
            revalidating: None,
            prefetch: false,
            peer: self.peer,
            private: false,
            credentials: false,
            slice: Some((start, end)),
        });
        // A fill already complete is being written to the store: its bytes are the edge's own.
        let stored = fill.is_complete();
        let head = fill.head().await?;
        let asked = format!("bytes {start}-{end}/{}", self.total);
        let answered = head
            .headers
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok());
        // A slice the edge will not keep (the origin now marks it private, say) is not
        // sliced: the caller passes the range through.
        if !head.shared
            || head.status != StatusCode::PARTIAL_CONTENT
            || answered != Some(asked.as_str())
        {
            return Err(EdgeError::OriginBody(
                format!(
                    "asked for {asked}, the origin answered {} with Content-Range {answered:?}",
                    head.status
                )
                .into(),
            ));
        }
        let body = fill
            .body(0, None)
            .collect()
            .await
            .map_err(|e| EdgeError::OriginBody(e.to_string().into()))?
            .to_bytes();
        Ok(Slice {
            body,
            headers: head.headers.clone(),
            age: head.age,
            stored,
        })
    }
}

/// The strong entity tag of a slice, if it has one.
fn strong_etag(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|t| t.starts_with('"'))
}

impl Edge {
    /// Remembers that `base` is `total` bytes, too large to store whole: its ranges are sliced,
    /// if its response (`headers`, of a 206) could be stored.
    pub(super) fn note_large(&self, base: &str, total: u64, headers: &HeaderMap) {
        let decisive = crate::targeted::for_this_cache(headers);
        let cc = freshness::CacheControl::parse(&decisive);
        if total > self.max_object_size
            && freshness::storable(&HeaderMap::new(), StatusCode::OK, &decisive, &cc)
        {
            self.large_objects.insert(base.to_owned(), total);
        }
    }

    /// A GET range of an object known to be too large to store, answered from slices; `None`
    /// when this request is not one slices answer (the caller passes it through): not a single
    /// satisfiable range, a conditional range, credentials, or a range over several slices of
    /// an object without a strong `ETag`.
    pub(super) async fn sliced(
        &self,
        request: &Request<Incoming>,
        base: &str,
    ) -> Option<(Response<Body>, &'static str)> {
        let total = self.large_objects.get(base)?;
        let headers = request.headers();
        // Conditional ranges pass through: the origin answers them against the object itself.
        let conditional = [
            header::IF_RANGE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
        ]
        .iter()
        .any(|h| headers.contains_key(h));
        if request.method() != http::Method::GET || conditional || self.has_credentials(headers) {
            return None;
        }
        let asked = headers.get(header::RANGE)?.to_str().ok()?;
        let RangeOutcome::Partial(span) = range::evaluate(asked, total) else {
            return None;
        };
        let source = Source {
            from_store: self.purge_sync.synced(),
            store: self.store.clone(),
            filler: self.filler.clone(),
            variants: self.variants.clone(),
            base: base.to_owned(),
            path: super::path_and_query(request),
            headers: headers.clone(),
            peer: super::peer(request),
            slice_size: self.slice_size,
            total,
        };
        let first_n = span.start / self.slice_size;
        let last_n = (span.end - 1) / self.slice_size;
        let first = match source.slice(first_n).await {
            Ok(slice) => slice,
            Err(error) => {
                tracing::warn!(%error, "slice fetch failed; passing the range through");
                // The origin may have changed the object: learn its length again.
                self.large_objects.invalidate(base);
                return None;
            }
        };
        let etag = strong_etag(&first.headers).map(str::to_owned);
        if last_n > first_n && etag.is_none() {
            return None;
        }
        let cache = if first.stored { HIT } else { MISS };
        let mut out = HeaderMap::with_capacity(first.headers.len() + 4);
        for (name, value) in &crate::forward::end_to_end(&first.headers) {
            if !meta::is_not_stored(name) && name != header::CONTENT_RANGE {
                out.append(name.clone(), value.clone());
            }
        }
        out.insert(header::AGE, HeaderValue::from(first.age));
        out.insert("x-cache", HeaderValue::from_static(cache));
        out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Ok(value) = HeaderValue::from_str(&range::content_range(&span, total)) {
            out.insert(header::CONTENT_RANGE, value);
        }
        out.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(span.end - span.start),
        );
        if cache == HIT {
            self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let body = self.combined(source, span, first, etag, first_n, last_n);
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        *response.headers_mut() = out;
        Some((response, cache))
    }

    /// The bytes of `span`, slice after slice, from `first` (slice `first_n`) to `last_n`.
    fn combined(
        &self,
        source: Source,
        span: std::ops::Range<u64>,
        first: Slice,
        etag: Option<String>,
        first_n: u64,
        last_n: u64,
    ) -> Body {
        let size = self.slice_size;
        let store = self.store.clone();
        let (start, end) = (span.start, span.end);
        let piece = move |n: u64, body: &Bytes| {
            let at = n * size;
            let from = start.max(at) - at;
            let to = (end.min(at + size) - at).min(body.len() as u64);
            body.slice(from.min(to) as usize..to as usize)
        };
        let state = (Some(first), first_n, source, etag, store);
        let stream = futures_util::stream::unfold(
            state,
            move |(mut ready, n, source, etag, store)| async move {
                if n > last_n {
                    return None;
                }
                let slice = match ready.take() {
                    Some(slice) => Ok(slice),
                    None => source.slice(n).await,
                };
                let result = match slice {
                    Ok(slice) if strong_etag(&slice.headers) == etag.as_deref() => {
                        Ok(Frame::data(piece(n, &slice.body)))
                    }
                    Ok(_) => {
                        // Stored slices of another version: drop them; this answer cannot
                        // be completed from one version, so it ends with an error.
                        store.remove_family(&source.base);
                        Err(std::io::Error::other(
                            "the object changed while its slices were combined",
                        ))
                    }
                    Err(error) => Err(std::io::Error::other(error.to_string())),
                };
                let next = if result.is_ok() { n + 1 } else { last_n + 1 };
                Some((result, (None, next, source, etag, store)))
            },
        );
        http_body_util::StreamBody::new(stream).boxed_unsync()
    }
}
