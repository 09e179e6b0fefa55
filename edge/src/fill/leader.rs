//! The fill leader: the one task per key that fetches from the origin, feeds the [`Fill`] its
//! waiters stream from, and stores the object when it is complete and storable.
//!
//! [`Filler::start`] joins the fill in flight for a request's fill key or starts one; the
//! leader runs in a task of its own, so the fetch finishes for the other waiters and for the
//! store even when the viewer who started it leaves.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use tracing::Instrument;

use super::{Fill, FillHead, Fills};
use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::forward;
use crate::freshness;
use crate::key::{self, Variants};
use crate::meta::CachedMeta;
use crate::metrics::Metrics;
use crate::store::{BodyLen, Fetch, Meta, Store, StoreError, Writer};
use crate::upstream::Upstream;

/// The stored copy a fill revalidates: its key, which stored content it is, and its meta.
#[derive(Debug, Clone)]
pub struct Revalidating {
    pub key: String,
    pub version: u64,
    pub meta: Arc<CachedMeta>,
}

/// What one fill fetches.
#[derive(Debug, Clone)]
pub struct FillRequest {
    /// The base cache key (before `Vary`).
    pub base: String,
    /// Path and query to ask the origin for.
    pub path: String,
    /// The viewer's request headers (for `Accept-Encoding`, and the `Vary` variant).
    pub headers: HeaderMap,
    /// The stored copy being revalidated (validators sent, refreshed on a 304).
    pub revalidating: Option<Revalidating>,
    /// A prefetch: not counted as a waiter, stored on probation.
    pub prefetch: bool,
    /// The viewer's address, for `X-Forwarded-For`.
    pub peer: Option<std::net::IpAddr>,
    /// A fill of its own: it joins no other viewer's fill and nobody joins it.
    pub private: bool,
    /// The request carries credentials (RFC 9111 §3.5, and those the operator names): its
    /// response is stored only when it says it may be shared.
    pub credentials: bool,
    /// A slice of a large object (`first..=last` byte): asked of the origin as a range, and
    /// its 206 stored under `base` (the slice's own key).
    pub slice: Option<(u64, u64)>,
}

/// Limits a fill keeps to.
#[derive(Debug, Clone, Copy)]
struct FillLimits {
    /// Larger bodies are streamed to their waiters but not stored.
    pub max_object_size: u64,
    /// A body that sends nothing for this long is abandoned.
    pub body_idle_timeout: Duration,
}

/// Starts and leads fills; shared by every request of one edge.
#[derive(Debug)]
pub struct Filler {
    fills: Fills,
    upstream: Upstream,
    store: Store<CachedMeta>,
    variants: Arc<Variants>,
    metrics: Metrics,
    limits: FillLimits,
    /// This edge's name, sent to the origin in the `meridian-edge` header.
    name_header: HeaderValue,
    /// This edge in `Via` (`1.1 <name>`).
    via: HeaderValue,
    /// Numbers private fills' keys.
    private_fills: std::sync::atomic::AtomicU64,
    /// Keys whose last response could not be stored: their requests fetch on their own for
    /// [`PASS_MEMORY`] instead of queueing behind a fill that will not be shared.
    passing: moka::sync::Cache<String, ()>,
}

/// Responses that will not be stored are still shared among the waiters of their fill, from
/// memory, up to this size (a `no-store` live playlist, an error page); larger or unknown-length
/// ones are passed to one viewer.
const SHARE_IN_MEMORY: u64 = 1 << 20;

/// A body written through to the store goes in writes of about this size.
const WRITE_BATCH: u64 = 256 << 10;

/// A storable body of unknown length is kept in memory up to this size (most segments), and
/// then written through into room reserved for the largest object it may be: reserving that
/// for every body would evict that much for each.
const UNKNOWN_LENGTH_IN_MEMORY: u64 = 8 << 20;

/// What a storable fill is stored as.
#[derive(Clone, Copy)]
struct Storing<'a> {
    /// `None`: not storable.
    key: Option<&'a str>,
    meta: &'a CachedMeta,
    /// This fetch, for the store (a removal meanwhile means nothing is stored).
    fetch: &'a Arc<Fetch<CachedMeta>>,
}

/// Batches a write-through may have queued for its writer: past them, the leader waits (memory
/// stays bounded when the disk is slower than the origin).
const THROUGH_QUEUE: usize = 8;

/// A record written through by a task of its own, fed batches of the body, so that the leader
/// never waits for the disk while the origin sends (nor do the waiters it feeds).
struct Through {
    tx: tokio::sync::mpsc::Sender<Vec<Bytes>>,
    task: tokio::task::JoinHandle<Result<Writer<CachedMeta>, StoreError>>,
}

impl Through {
    fn start(mut writer: Writer<CachedMeta>, fill: Arc<Fill>) -> Self {
        fill.write_through(writer.reader());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(THROUGH_QUEUE);
        let task = tokio::spawn(
            async move {
                while let Some(chunks) = rx.recv().await {
                    let written = tokio::task::spawn_blocking(move || {
                        let result = writer.write_chunks(&chunks);
                        (writer, result)
                    })
                    .await
                    .map_err(|e| StoreError::Write(std::io::Error::other(e.to_string())))?;
                    writer = written.0;
                    written.1?;
                    fill.stored(writer.written());
                }
                Ok(writer)
            }
            .instrument(tracing::Span::current()),
        );
        Self { tx, task }
    }

    /// Waits for the writer to have written everything sent; the record, ready to commit.
    async fn finish(self) -> Result<Writer<CachedMeta>, StoreError> {
        drop(self.tx);
        self.task
            .await
            .map_err(|e| StoreError::Write(std::io::Error::other(e.to_string())))?
    }
}

/// Where a fill's body goes besides its waiters.
enum Sink {
    /// Kept in memory (up to `SHARE_IN_MEMORY`), stored whole at the end if storable.
    Memory,
    /// Written through to the store.
    Through(Box<Through>),
    /// Storing stopped, or could not start (see `Fill::spill`).
    Spilled,
    /// Spilled, and nobody reads it any more: the rest is not fetched.
    Abandoned,
}

/// How long a key whose response could not be stored stays pass-through (Varnish's
/// hit-for-miss lasts 120 s by default too).
const PASS_MEMORY: std::time::Duration = std::time::Duration::from_secs(120);

impl Filler {
    /// The filler of an edge configured by `config`: its origins, limits and name.
    pub fn new(
        config: &EdgeConfig,
        store: Store<CachedMeta>,
        variants: Arc<Variants>,
        metrics: Metrics,
    ) -> Result<Self, EdgeError> {
        Ok(Self {
            fills: Fills::default(),
            upstream: Upstream::new(
                &config.origins,
                &config.origin_host,
                config.origin_ca_file.as_deref(),
                config.connect_timeout,
                config.first_byte_timeout,
            )?,
            store,
            variants,
            metrics,
            limits: FillLimits {
                max_object_size: config.max_object_size.0,
                body_idle_timeout: config.body_idle_timeout,
            },
            name_header: HeaderValue::from_str(&config.name)
                .map_err(|_| EdgeError::Internal("name is not a valid header value".into()))?,
            via: HeaderValue::from_str(&format!("1.1 {}", config.name))
                .map_err(|_| EdgeError::Internal("name is not a valid header value".into()))?,
            private_fills: std::sync::atomic::AtomicU64::new(0),
            passing: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(PASS_MEMORY)
                .build(),
        })
    }

    /// The origin client, for requests that are passed through rather than filled.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The headers a viewer's request sends on to the origin, this edge named in them.
    pub fn forwarded(&self, viewer: &HeaderMap, peer: Option<std::net::IpAddr>) -> HeaderMap {
        let mut headers = forward::to_origin(viewer, peer, &self.via);
        headers.insert(video_http::EDGE_NAME_HEADER, self.name_header.clone());
        headers
    }

    /// Joins the fill in flight for this request, or leads a new one.
    pub fn start(self: &Arc<Self>, request: FillRequest) -> Arc<Fill> {
        self.start_unless(request, || false)
            .unwrap_or_else(|| unreachable!("nothing said it was stored"))
    }

    /// [`Filler::start`], except that it leads no fill when `stored` says the object is stored
    /// now (None: look it up again). See [`super::Fills::join_or_start_unless`].
    pub fn start_unless(
        self: &Arc<Self>,
        request: FillRequest,
        stored: impl FnOnce() -> bool,
    ) -> Option<Arc<Fill>> {
        let mut fill_key = key::fill_key(&request.base, &request.headers);
        if request.private {
            // A key nobody else can form (fill keys never contain a second NUL-private tag).
            let n = self
                .private_fills
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            fill_key.push_str(&format!("\0private={n}"));
        }
        let (fill, leader) = self.fills.join_or_start_unless(&fill_key, stored)?;
        if !leader {
            if !request.prefetch {
                self.metrics.coalesced_waiters.inc();
            }
            return Some(fill);
        }
        let filler = self.clone();
        let task_fill = fill.clone();
        tokio::spawn(
            async move {
                filler.lead(&task_fill, &request).await;
                filler.fills.remove(&fill_key, &task_fill);
            }
            .instrument(tracing::Span::current()),
        );
        Some(fill)
    }

    /// True when `base`'s last response could not be stored (for a while: hit-for-miss).
    pub fn is_passing(&self, base: &str) -> bool {
        self.passing.contains_key(base)
    }

    /// Forgets that `base` passes (its object was stored, purged or invalidated).
    pub fn forget_passing(&self, base: &str) {
        self.passing.invalidate(base);
    }

    /// True when a fill for `base` (with these request headers) is in flight.
    pub fn in_flight(&self, base: &str, headers: &HeaderMap) -> bool {
        self.fills.contains(&key::fill_key(base, headers))
    }

    /// Fills in flight now.
    pub fn in_flight_count(&self) -> usize {
        self.fills.len()
    }

    /// The headers the origin is sent: the viewer's end-to-end ones without its own
    /// conditionals and range (a fill fetches the whole object, for every waiter and the
    /// store), and the edge's validators when it revalidates. The edge names itself: a
    /// steering origin puts the name into the steering server's URI in multivariant
    /// playlists, so the router knows which edge a player's first pathway is. Every edge has
    /// its own store, so the varying playlist is never shared.
    fn upstream_headers(&self, request: &FillRequest) -> HeaderMap {
        let mut headers = self.forwarded(&request.headers, request.peer);
        for name in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
        ] {
            headers.remove(name);
        }
        if let Some((first, last)) = request.slice
            && let Ok(range) = HeaderValue::from_str(&format!("bytes={first}-{last}"))
        {
            headers.insert(header::RANGE, range);
        }
        if let Some(Revalidating { meta, .. }) = &request.revalidating {
            let validator = |name| {
                meta.header(name)
                    .and_then(|v| HeaderValue::from_str(v).ok())
            };
            if let Some(etag) = validator("etag") {
                headers.insert(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = validator("last-modified") {
                headers.insert(header::IF_MODIFIED_SINCE, lm);
            }
        }
        headers
    }

    async fn lead(&self, fill: &Arc<Fill>, request: &FillRequest) {
        // Removals from here on (a purge while the origin answers) stop it being stored.
        let fetch = Arc::new(self.store.fetching(&request.base));
        let request_time = SystemTime::now();
        let response = match self
            .upstream
            .get(&request.path, &self.upstream_headers(request))
            .await
        {
            Ok(response) => response,
            Err(error) => {
                self.metrics.origin_fetch(error.label());
                tracing::warn!(%error, "origin fetch failed");
                fill.set_head(Err(error));
                return;
            }
        };
        let response_time = SystemTime::now();
        let (parts, body) = response.into_parts();
        if parts.status == StatusCode::NOT_MODIFIED
            && let Some(stale) = &request.revalidating
        {
            let refreshed = stale
                .meta
                .refreshed(&parts.headers, request_time, response_time);
            let fresh_until = refreshed.fresh_until();
            self.store.update_meta(&stale.key, stale.version, refreshed);
            self.metrics.origin_fetch("not_modified");
            fill.set_head(Ok(FillHead {
                status: parts.status,
                headers: parts.headers,
                content_length: Some(0),
                age: 0,
                request_headers: request.headers.clone(),
                shared: true,
                fresh_until,
            }));
            fill.finish(Ok(()));
            return;
        }
        let content_length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let decisive = crate::targeted::for_this_cache(&parts.headers);
        let cc = freshness::CacheControl::parse(&decisive);
        // A request with credentials the operator named gets what Authorization gets (RFC 9111
        // §3.5): stored only when the response says it may be shared.
        let shareable = !request.credentials || cc.allows_credentialed();
        // A slice is stored as the 206 it is when the same response as a 200 would be.
        let stored_status = match request.slice {
            Some(_) if parts.status == StatusCode::PARTIAL_CONTENT => StatusCode::OK,
            Some(_) => StatusCode::PARTIAL_CONTENT,
            None => parts.status,
        };
        let storable = shareable
            && freshness::storable(&request.headers, stored_status, &decisive, &cc)
            && content_length.is_none_or(|len| len <= self.limits.max_object_size);
        let mut head = FillHead {
            status: parts.status,
            headers: parts.headers.clone(),
            content_length,
            age: freshness::initial_age(&parts.headers, request_time, response_time),
            request_headers: request.headers.clone(),
            shared: true,
            // Set from the meta below: a passed response is never reused anyway.
            fresh_until: None,
        };
        // A slice is stored only as the range it was asked for: a shorter or other range
        // would be served in its place.
        let storable = storable
            && request.slice.is_none_or(|(first, last)| {
                parts
                    .headers
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(&format!("bytes {first}-{last}/")))
            });
        // Not kept: shared in memory only while small, and never when the response is one
        // viewer's. Otherwise one viewer streams it and the others fetch on their own.
        let personal = freshness::personal(&parts.headers, &cc);
        let large = content_length.is_none_or(|len| len > SHARE_IN_MEMORY);
        if !storable && (personal || large) {
            // Remembered as pass-through only for what the response itself says, never for
            // errors (a 404 for a live segment asked too early must not stop coalescing).
            let remember = (personal
                || content_length.is_some_and(|len| len > self.limits.max_object_size))
                && (parts.status.is_success() || parts.status.is_redirection())
                && !request.private
                && !request.prefetch
                && request.slice.is_none();
            if remember {
                self.passing.insert(request.base.clone(), ());
            }
            self.metrics.origin_fetch("passed");
            fill.set_passed(head, body, self.limits.body_idle_timeout);
            return;
        }
        let key = storable.then(|| {
            self.variants
                .learn(&request.base, &parts.headers, &request.headers)
        });
        let meta = CachedMeta::new(parts.status, &parts.headers, request_time, response_time);
        // What will not be stored is not reused either, whatever its lifetime says.
        head.fresh_until = meta.fresh_until().filter(|_| storable);
        // A large body writes through to the store as it arrives. One the store cannot take
        // now is still shared, its origin read at its slowest viewer's pace (a spilled fill).
        let mut sink = Sink::Memory;
        if let (Some(key), Some(len)) = (&key, content_length)
            && len > SHARE_IN_MEMORY
        {
            match self
                .begin(key, &meta, BodyLen::Exact(len), request, &fetch)
                .await
            {
                Ok(writer) => sink = Sink::Through(Box::new(Through::start(writer, fill.clone()))),
                Err(error) => {
                    tracing::info!(%error, "not stored; the fill keeps a window only");
                    self.spill(fill, request, false);
                    sink = Sink::Spilled;
                }
            }
        }
        fill.set_head(Ok(head));
        let storing = Storing {
            key: key.as_deref(),
            meta: &meta,
            fetch: &fetch,
        };
        let received = self
            .receive(fill, body, content_length, sink, &storing, request)
            .await;
        match received {
            Ok(Sink::Abandoned) => {
                self.metrics.origin_fetch("abandoned");
                tracing::info!("nobody reads a fill that cannot be stored; fetch stopped");
                fill.finish(Err(EdgeError::Internal(
                    "the fetch was stopped: nobody was reading it".into(),
                )));
            }
            Ok(sink) => {
                self.metrics.origin_fetch("ok");
                match (sink, key) {
                    // Committed before the fill ends: a viewer that joins a complete fill is
                    // told it is a hit, and reads the stored object.
                    (Sink::Through(through), Some(_)) => {
                        match through.finish().await {
                            Ok(writer) => self.commit(writer, request).await,
                            Err(error) => tracing::warn!(%error, "storing stopped; not stored"),
                        }
                        fill.finish(Ok(()));
                    }
                    (Sink::Memory, Some(key)) if fill.received() <= self.limits.max_object_size => {
                        fill.finish(Ok(()));
                        if let Some(chunks) = fill.chunks() {
                            self.store_object(request, key, meta, chunks, &fetch).await;
                        }
                    }
                    _ => fill.finish(Ok(())),
                }
            }
            Err(error) => {
                self.metrics.origin_fetch(error.label());
                tracing::warn!(%error, "origin body failed; nothing stored");
                fill.finish(Err(error));
            }
        }
    }

    /// Moves the origin's body into the fill until it ends, breaks off or stalls, writing it
    /// through to the store (`sink`) when it is large. Returns where the body went.
    async fn receive(
        &self,
        fill: &Arc<Fill>,
        mut body: hyper::body::Incoming,
        content_length: Option<u64>,
        mut sink: Sink,
        storing: &Storing<'_>,
        request: &FillRequest,
    ) -> Result<Sink, EdgeError> {
        let Storing { key, meta, fetch } = *storing;
        let mut pending: Vec<Bytes> = Vec::new();
        loop {
            let frame =
                match tokio::time::timeout(self.limits.body_idle_timeout, body.frame()).await {
                    Ok(Some(Ok(frame))) => frame,
                    Ok(Some(Err(error))) => {
                        return Err(EdgeError::OriginBody(error.to_string().into()));
                    }
                    Ok(None) => break,
                    Err(_) => return Err(EdgeError::OriginBody("the body stalled".into())),
                };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            // The last bytes of a body of known length mark it whole as they are pushed, before
            // a viewer can have them: a request its viewer sends next, at once, is then told it
            // is a hit (the origin's end of body is one more read away).
            let last = content_length == Some(fill.received() + data.len() as u64);
            fill.push(data.clone(), last);
            match &sink {
                // A body of unknown length kept in memory until it is large: then it writes
                // through, into room reserved for the largest object it may be.
                Sink::Memory
                    if key.is_some()
                        && fill.received()
                            > UNKNOWN_LENGTH_IN_MEMORY.min(self.limits.max_object_size) =>
                {
                    let most = self
                        .limits
                        .max_object_size
                        .min(self.store.max_body(meta.encode().len() as u64 + 4096));
                    let key = key.unwrap_or_default();
                    let began = if fill.received() > most {
                        Err(EdgeError::Internal(
                            "the body is larger than max_object_size".into(),
                        ))
                    } else {
                        self.begin(key, meta, BodyLen::AtMost(most), request, fetch)
                            .await
                    };
                    match began {
                        Ok(writer) => {
                            pending = fill.chunks().unwrap_or_default();
                            sink = Sink::Through(Box::new(Through::start(writer, fill.clone())));
                        }
                        Err(error) => {
                            tracing::info!(%error, "not stored; the fill keeps a window only");
                            self.spill(fill, request, fill.received() > most);
                            sink = Sink::Spilled;
                        }
                    }
                }
                Sink::Through(_) => pending.push(data),
                _ => {}
            }
            if matches!(sink, Sink::Spilled) {
                fill.keep_pace(self.limits.body_idle_timeout).await;
                // Nobody reads it, nor holds it to read later: the only holders left are this
                // task and, unless another fill took its place, the fills in flight.
                let holders = 1 + usize::from(self.fills.holds(fill));
                if fill.readers() == 0 && Arc::strong_count(fill) <= holders {
                    return Ok(Sink::Abandoned);
                }
            }
            let batch: u64 = pending.iter().map(|c| c.len() as u64).sum();
            if batch >= WRITE_BATCH {
                sink = self.write(sink, &mut pending, fill, request).await;
            }
        }
        if let Some(len) = content_length
            && len != fill.received()
        {
            return Err(EdgeError::OriginBody(
                format!("body ended at {} of {len} bytes", fill.received()).into(),
            ));
        }
        // Whole: a viewer joining from here on is a hit (its bytes are the edge's own).
        fill.all_received();
        Ok(self.write(sink, &mut pending, fill, request).await)
    }

    /// Reserves the object's record in the store (on the blocking pool).
    async fn begin(
        &self,
        key: &str,
        meta: &CachedMeta,
        len: BodyLen,
        request: &FillRequest,
        fetch: &Arc<Fetch<CachedMeta>>,
    ) -> Result<Writer<CachedMeta>, EdgeError> {
        let (store, key, meta) = (self.store.clone(), key.to_owned(), meta.clone());
        let counts_as_use = !request.prefetch;
        let fetch = fetch.clone();
        tokio::task::spawn_blocking(move || {
            store.begin(&key, &meta, len, counts_as_use, Some(&fetch))
        })
        .await
        .map_err(|e| EdgeError::Internal(format!("store task failed: {e}").into()))?
        .map_err(|e| EdgeError::Internal(e.to_string().into()))
    }

    /// Hands the pending chunks to the record's writer; if it stopped (a failed write, or a
    /// body longer than its room), the fill spills.
    async fn write(
        &self,
        sink: Sink,
        pending: &mut Vec<Bytes>,
        fill: &Fill,
        request: &FillRequest,
    ) -> Sink {
        let Sink::Through(through) = sink else {
            pending.clear();
            return sink;
        };
        if pending.is_empty() {
            return Sink::Through(through);
        }
        if through.tx.send(std::mem::take(pending)).await.is_ok() {
            return Sink::Through(through);
        }
        let error = match through.finish().await {
            Err(error) => error,
            Ok(_) => StoreError::Write(std::io::Error::other("the writer stopped")),
        };
        let too_large = matches!(error, StoreError::TooLarge(_));
        tracing::warn!(%error, "storing stopped; the fill keeps a window only");
        self.spill(fill, request, too_large);
        Sink::Spilled
    }

    /// Storing stopped halfway: nobody new joins the fill (they fetch on their own), and one
    /// too large to store is remembered as pass-through.
    fn spill(&self, fill: &Fill, request: &FillRequest, too_large: bool) {
        fill.spill();
        if too_large && !request.private && !request.prefetch && request.slice.is_none() {
            self.passing.insert(request.base.clone(), ());
        }
    }

    /// Commits a record written through (on the blocking pool).
    async fn commit(&self, writer: Writer<CachedMeta>, request: &FillRequest) {
        let committed = tokio::task::spawn_blocking(move || writer.commit()).await;
        self.stored(committed, request);
    }

    /// Notes how storing an object went.
    fn stored(
        &self,
        outcome: Result<Result<(), StoreError>, tokio::task::JoinError>,
        request: &FillRequest,
    ) {
        match outcome {
            Ok(Ok(())) => self.passing.invalidate(&request.base),
            Ok(Err(error @ (StoreError::Removed | StoreError::Closing))) => {
                tracing::info!(%error, "not stored")
            }
            Ok(Err(error)) => tracing::warn!(%error, "not stored"),
            Err(error) => tracing::error!(%error, "internal: store task failed"),
        }
        self.metrics.store(&self.store.stats());
    }

    async fn store_object(
        &self,
        request: &FillRequest,
        key: String,
        meta: CachedMeta,
        chunks: Vec<Bytes>,
        fetch: &Arc<Fetch<CachedMeta>>,
    ) {
        let store = self.store.clone();
        let counts_as_use = !request.prefetch;
        let fetch = fetch.clone();
        let inserted = tokio::task::spawn_blocking(move || {
            store.insert_fetched(&key, &meta, &chunks, counts_as_use, Some(&fetch))
        })
        .await;
        self.stored(inserted, request);
    }
}
