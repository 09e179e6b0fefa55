//! The edge's request path: look up, decide freshness, serve from the store, revalidate, or
//! join (or lead) a coalesced origin fetch; plus PURGE.
//!
//! ```text
//! GET ──► key ──► store hit? ──fresh──────────────► HIT (ranges, HEAD, 304 to the viewer)
//!                     │      ──stale-while-reval.──► STALE now + background revalidation
//!                     │      ──stale─► revalidate ─► 304: REVALIDATED │ 200: MISS │ error: STALE if allowed
//!                     └─miss─► join or lead a fill ─► MISS, streamed as the origin sends it
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use server_kit::{Body, body};
use tracing::Instrument;
use video_http::range::{self, RangeOutcome};
use video_http::validators;

use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::fill::{Fill, FillHead, Fills};
use crate::freshness::{self, Freshness};
use crate::key;
use crate::meta::{self, CachedMeta};
use crate::metrics::Metrics;
use crate::prefetch::Prefetcher;
use crate::store::{Store, StoredObject};
use crate::upstream::Upstream;

/// The shared state of one edge.
#[derive(Debug)]
pub struct Edge {
    pub name: String,
    pub region: String,
    served_by: HeaderValue,
    /// This edge's name, sent to the origin in `meridian-edge` (see `start_fill_for`).
    name_header: HeaderValue,
    pub store: Store<CachedMeta>,
    fills: Fills,
    upstream: Upstream,
    pub metrics: Metrics,
    key_params: Vec<String>,
    max_object_size: u64,
    admin_token: Option<String>,
    drain_to: Option<String>,
    body_idle_timeout: Duration,
    /// Which header names each base key varies on, learnt from responses.
    vary: moka::sync::Cache<String, Arc<Vec<HeaderName>>>,
    pub prefetcher: Prefetcher,
    /// Operator drain (router and viewers are told; the process keeps serving).
    pub drain_mode: AtomicBool,
    pub max_requests: u32,
    lookups: AtomicU64,
    hits: AtomicU64,
    pub started: Instant,
}

/// Cache status labels, as sent in `X-Cache` and used in metrics.
const HIT: &str = "HIT";
const MISS: &str = "MISS";
const STALE: &str = "STALE";
const REVALIDATED: &str = "REVALIDATED";
const ERROR: &str = "ERROR";
const PASS: &str = "PASS";
const DRAIN: &str = "DRAIN";

impl Edge {
    pub fn new(
        config: &EdgeConfig,
        store: Store<CachedMeta>,
        metrics: Metrics,
    ) -> Result<Self, EdgeError> {
        let upstream = Upstream::new(
            &config.origins,
            config.connect_timeout,
            config.first_byte_timeout,
        )?;
        let served_by = HeaderValue::from_str(&format!("{};region={}", config.name, config.region))
            .map_err(|_| {
                EdgeError::Internal("name or region is not a valid header value".into())
            })?;
        let name_header = HeaderValue::from_str(&config.name)
            .map_err(|_| EdgeError::Internal("name is not a valid header value".into()))?;
        Ok(Self {
            name: config.name.clone(),
            region: config.region.clone(),
            served_by,
            name_header,
            store,
            fills: Fills::default(),
            upstream,
            prefetcher: Prefetcher::new(config.prefetch, metrics.clone()),
            metrics,
            key_params: config.key_query_params.clone(),
            max_object_size: config.max_object_size.0,
            admin_token: config.admin_token.clone(),
            drain_to: config
                .drain_to
                .as_ref()
                .map(|t| t.trim_end_matches('/').to_owned()),
            body_idle_timeout: config.body_idle_timeout,
            vary: moka::sync::Cache::new(100_000),
            drain_mode: AtomicBool::new(false),
            max_requests: config.max_requests,
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// Answers one viewer request.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), %peer);
        async move {
            let started = Instant::now();
            self.metrics.in_flight.inc();
            let (response, cache) = match *request.method() {
                Method::GET | Method::HEAD => match self.drain_redirect(&request) {
                    Some(response) => (response, DRAIN),
                    None => self.serve(&request).await,
                },
                Method::OPTIONS => (server_kit::cors::preflight(), PASS),
                _ if request.method().as_str() == "PURGE" => (self.purge(&request), PASS),
                _ => {
                    let mut r = body::text(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "client error: the edge serves GET and HEAD (and PURGE with a token)",
                    );
                    r.headers_mut().insert(
                        header::ALLOW,
                        HeaderValue::from_static("GET, HEAD, OPTIONS, PURGE"),
                    );
                    (r, PASS)
                }
            };
            self.metrics.in_flight.dec();
            let response = self.finish(response, cache);
            let status = response.status();
            self.metrics
                .request_done(cache, status, started.elapsed().as_secs_f64());
            if status.is_server_error() {
                tracing::error!(%status, cache, "request failed");
            } else {
                tracing::debug!(%status, cache, "answered");
            }
            response
        }
        .instrument(span)
        .await
    }

    fn finish(&self, response: Response<Body>, cache: &'static str) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        parts.headers.insert("x-served-by", self.served_by.clone());
        if !parts.headers.contains_key("x-cache") {
            parts
                .headers
                .insert("x-cache", HeaderValue::from_static(cache));
        }
        // Every response says how old it is; the edge's own answers (errors, redirects) are new.
        if !parts.headers.contains_key(header::AGE) {
            parts
                .headers
                .insert(header::AGE, HeaderValue::from_static("0"));
        }
        server_kit::cors::allow_any_origin(&mut parts.headers);
        let counter = self.metrics.bytes_sent(cache);
        let body = body
            .map_frame(move |frame| {
                if let Some(data) = frame.data_ref() {
                    counter.inc_by(data.len() as u64);
                }
                frame
            })
            .boxed_unsync();
        Response::from_parts(parts, body)
    }

    /// While the operator drains this edge, new requests go to the neighbour region's edge.
    /// Responses already streaming are not touched: they finish.
    fn drain_redirect(&self, request: &Request<Incoming>) -> Option<Response<Body>> {
        if !self.drain_mode.load(Ordering::Relaxed) {
            return None;
        }
        let to = self.drain_to.as_ref()?;
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let location = HeaderValue::from_str(&format!("{to}{path}")).ok()?;
        let mut response = body::text(
            StatusCode::FOUND,
            "this edge is draining; continue at the next region",
        );
        response.headers_mut().insert(header::LOCATION, location);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(response)
    }

    async fn serve(
        self: &Arc<Self>,
        request: &Request<Incoming>,
    ) -> (Response<Body>, &'static str) {
        let base = key::cache_key(request, &self.key_params);
        let key = match self.vary.get(&base) {
            Some(names) => key::variant_key(&base, &names, request.headers()),
            None => base.clone(),
        };
        self.lookups.fetch_add(1, Ordering::Relaxed);
        self.prefetcher.on_request(self, request, &base);
        if let Some(object) = self.store.get(&key) {
            self.prefetcher.note_use(&key);
            let age = object.meta.age(SystemTime::now());
            match freshness::evaluate(&object.meta.policy, age) {
                Freshness::Fresh => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    self.fault_in(&object.body).await;
                    return (self.store_response(request, &object, age, HIT), HIT);
                }
                Freshness::StaleWhileRevalidate => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    self.start_fill(request, &base, Some((key, object.meta.clone())), false);
                    return (self.store_response(request, &object, age, STALE), STALE);
                }
                Freshness::Stale { if_error } => {
                    return self.revalidate(request, &base, key, object, if_error).await;
                }
            }
        }
        let fill = self.start_fill(request, &base, None, false);
        // A fill that already completed is being written to the store: its bytes are the edge's
        // own, so this is a hit, not a trip to the origin.
        let cached = if fill.is_complete() { HIT } else { MISS };
        match fill.head().await {
            Ok(head) if head.status == StatusCode::NOT_MODIFIED => {
                self.after_revalidation(request, &key).await
            }
            Ok(head) => {
                if cached == HIT {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                }
                (self.fill_response(request, &fill, &head, cached), cached)
            }
            Err(error) => (error_response(&error), ERROR),
        }
    }

    async fn revalidate(
        self: &Arc<Self>,
        request: &Request<Incoming>,
        base: &str,
        key: String,
        stale: StoredObject<CachedMeta>,
        if_error: bool,
    ) -> (Response<Body>, &'static str) {
        let fill = self.start_fill(
            request,
            base,
            Some((key.clone(), stale.meta.clone())),
            false,
        );
        let age = || stale.meta.age(SystemTime::now());
        match fill.head().await {
            Ok(head) if head.status == StatusCode::NOT_MODIFIED => {
                self.after_revalidation(request, &key).await
            }
            Ok(head) if head.status.is_server_error() && if_error => {
                (self.store_response(request, &stale, age(), STALE), STALE)
            }
            Ok(head) => (self.fill_response(request, &fill, &head, MISS), MISS),
            Err(error) if if_error => {
                tracing::warn!(%error, "origin failed; serving stale (stale-if-error)");
                (self.store_response(request, &stale, age(), STALE), STALE)
            }
            Err(error) => (error_response(&error), ERROR),
        }
    }

    async fn after_revalidation(
        &self,
        request: &Request<Incoming>,
        key: &str,
    ) -> (Response<Body>, &'static str) {
        match self.store.get(key) {
            Some(object) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                let age = object.meta.age(SystemTime::now());
                (
                    self.store_response(request, &object, age, REVALIDATED),
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

    /// Joins or leads the fill for this request. `revalidating` carries the stored copy's key
    /// and meta, to send its validators and refresh it on a 304.
    pub(crate) fn start_fill(
        self: &Arc<Self>,
        request: &Request<Incoming>,
        base: &str,
        revalidating: Option<(String, Arc<CachedMeta>)>,
        prefetch: bool,
    ) -> Arc<Fill> {
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        self.start_fill_for(base, &path, request.headers(), revalidating, prefetch)
    }

    pub(crate) fn start_fill_for(
        self: &Arc<Self>,
        base: &str,
        path: &str,
        request_headers: &HeaderMap,
        revalidating: Option<(String, Arc<CachedMeta>)>,
        prefetch: bool,
    ) -> Arc<Fill> {
        let fill_key = key::fill_key(base, request_headers);
        let (fill, leader) = self.fills.join_or_start(&fill_key);
        if !leader {
            if !prefetch {
                self.metrics.coalesced_waiters.inc();
            }
            return fill;
        }
        let mut headers = HeaderMap::new();
        // The edge names itself: a steering origin puts the name into the steering server's URI
        // in multivariant playlists, so the router knows which edge a player's first pathway
        // is. Every edge has its own store, so the varying playlist is never shared.
        headers.insert("meridian-edge", self.name_header.clone());
        if let Some(ae) = request_headers.get(header::ACCEPT_ENCODING) {
            headers.insert(header::ACCEPT_ENCODING, ae.clone());
        }
        if let Some((_, meta)) = &revalidating {
            if let Some(etag) = meta
                .header("etag")
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = meta
                .header("last-modified")
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                headers.insert(header::IF_MODIFIED_SINCE, lm);
            }
        }
        let edge = self.clone();
        let task = FillTask {
            fill: fill.clone(),
            fill_key,
            base: base.to_owned(),
            path: path.to_owned(),
            request_headers: request_headers.clone(),
            upstream_headers: headers,
            revalidating,
            prefetch,
        };
        tokio::spawn(async move { edge.run_fill(task).await }.instrument(tracing::Span::current()));
        fill
    }

    async fn run_fill(self: Arc<Self>, task: FillTask) {
        let FillTask {
            fill,
            fill_key,
            base,
            path,
            request_headers,
            upstream_headers,
            revalidating,
            prefetch,
        } = task;
        let request_time = SystemTime::now();
        match self.upstream.get(&path, &upstream_headers).await {
            Err(error) => {
                self.metrics.origin_fetch(error.label());
                tracing::warn!(%error, "origin fetch failed");
                fill.set_head(Err(error));
            }
            Ok(response) => {
                let response_time = SystemTime::now();
                let (parts, mut body) = response.into_parts();
                if parts.status == StatusCode::NOT_MODIFIED
                    && let Some((key, old)) = &revalidating
                {
                    self.store.update_meta(
                        key,
                        old.refreshed(&parts.headers, request_time, response_time),
                    );
                    self.metrics.origin_fetch("not_modified");
                    fill.set_head(Ok(FillHead {
                        status: parts.status,
                        headers: parts.headers,
                        content_length: Some(0),
                    }));
                    fill.finish(Ok(()));
                } else {
                    let content_length = parts
                        .headers
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    let cc = freshness::CacheControl::parse(&parts.headers);
                    let mut storable =
                        freshness::storable(&request_headers, parts.status, &parts.headers, &cc)
                            && content_length.is_none_or(|len| len <= self.max_object_size);
                    fill.set_head(Ok(FillHead {
                        status: parts.status,
                        headers: parts.headers.clone(),
                        content_length,
                    }));
                    let end = loop {
                        match tokio::time::timeout(self.body_idle_timeout, body.frame()).await {
                            Ok(Some(Ok(frame))) => {
                                if let Ok(data) = frame.into_data() {
                                    fill.push(data);
                                    if fill.received() > self.max_object_size {
                                        storable = false;
                                    }
                                }
                            }
                            Ok(Some(Err(error))) => {
                                break Err(EdgeError::OriginBody(error.to_string().into()));
                            }
                            Ok(None) => match content_length {
                                Some(len) if len != fill.received() => {
                                    break Err(EdgeError::OriginBody(
                                        format!("body ended at {} of {len} bytes", fill.received())
                                            .into(),
                                    ));
                                }
                                _ => break Ok(()),
                            },
                            Err(_) => break Err(EdgeError::OriginBody("the body stalled".into())),
                        }
                    };
                    match end {
                        Ok(()) => {
                            self.metrics.origin_fetch("ok");
                            fill.finish(Ok(()));
                            if storable {
                                let meta = CachedMeta::new(
                                    parts.status,
                                    &parts.headers,
                                    request_time,
                                    response_time,
                                );
                                self.store_object(
                                    &base,
                                    &parts.headers,
                                    &request_headers,
                                    meta,
                                    fill.chunks(),
                                    prefetch,
                                )
                                .await;
                            }
                        }
                        Err(error) => {
                            self.metrics.origin_fetch(error.label());
                            tracing::warn!(%error, "origin body failed; nothing stored");
                            fill.finish(Err(error));
                        }
                    }
                }
            }
        }
        self.fills.remove(&fill_key, &fill);
    }

    async fn store_object(
        &self,
        base: &str,
        response_headers: &HeaderMap,
        request_headers: &HeaderMap,
        meta: CachedMeta,
        chunks: Vec<Bytes>,
        prefetch: bool,
    ) {
        let key = match key::vary_names(response_headers) {
            Some(names) => {
                let key = key::variant_key(base, &names, request_headers);
                self.vary.insert(base.to_owned(), Arc::new(names));
                key
            }
            None => {
                self.vary.invalidate(base);
                base.to_owned()
            }
        };
        let store = self.store.clone();
        let inserted =
            tokio::task::spawn_blocking(move || store.insert(&key, &meta, &chunks, !prefetch))
                .await;
        match inserted {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "not stored"),
            Err(error) => tracing::error!(%error, "internal: store task failed"),
        }
        self.metrics.store(&self.store.stats());
    }

    /// Makes sure a stored body's pages are in memory before it is sent, so that a cold object
    /// never stalls a runtime worker on disk reads. Measured with `cargo bench -p edge --bench
    /// store` on this 2-core machine: a `mincore` residency check costs 1.5 µs for 1 MiB; a cold
    /// 1 MiB read costs about 1.0 ms touched plainly and 0.8 ms after `MADV_WILLNEED`. So hot
    /// bodies go straight out, and cold ones get `MADV_WILLNEED` plus a pre-touch on the
    /// blocking pool, which takes that millisecond off the async workers.
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

    /// A response from a stored object: validators, ranges and HEAD are answered here.
    fn store_response(
        &self,
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

    /// A response streamed from a fill.
    fn fill_response(
        &self,
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

    fn purge(&self, request: &Request<Incoming>) -> Response<Body> {
        if let Some(response) = self.refusal(request.headers()) {
            return response;
        }
        let base = key::cache_key(request, &self.key_params);
        let purged = match base.strip_suffix('*') {
            Some(prefix) => self.store.remove_prefix(prefix),
            None => {
                self.vary.invalidate(&base);
                usize::from(self.store.remove(&base))
                    + self.store.remove_prefix(&format!("{base}\0"))
            }
        };
        self.metrics.store(&self.store.stats());
        tracing::info!(key = %base, purged, "purged");
        let mut response = Response::new(body::full(format!("{{\"purged\":{purged}}}\n")));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }

    /// Checks the bearer token of an admin operation: `None` when authorized, else the
    /// refusal to send.
    pub fn refusal(&self, headers: &HeaderMap) -> Option<Response<Body>> {
        let Some(token) = &self.admin_token else {
            return Some(body::text(
                StatusCode::FORBIDDEN,
                "client error: this operation is disabled (no admin_token configured)",
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            None
        } else {
            let mut response = body::text(
                StatusCode::UNAUTHORIZED,
                "client error: missing or wrong bearer token",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(response)
        }
    }

    /// The JSON for `/status`.
    pub fn status(&self, shutting_down: bool) -> serde_json::Value {
        let stats = self.store.stats();
        let lookups = self.lookups.load(Ordering::Relaxed);
        let hits = self.hits.load(Ordering::Relaxed);
        // The gauge is the one count of requests in flight; /status and /metrics agree.
        let in_flight = self.metrics.in_flight.get().max(0) as u64;
        serde_json::json!({
            "service": "edge",
            "name": self.name,
            "region": self.region,
            "capacity_bytes": stats.capacity,
            "used_bytes": stats.used,
            "objects": stats.objects,
            "hit_ratio": if lookups == 0 { 0.0 } else { hits as f64 / lookups as f64 },
            "requests_in_flight": in_flight,
            "max_requests": self.max_requests,
            "load": in_flight as f64 / f64::from(self.max_requests),
            "draining": shutting_down || self.drain_mode.load(Ordering::Relaxed),
            "fills_in_flight": self.fills.len(),
            "uptime_seconds": self.started.elapsed().as_secs(),
        })
    }

    /// True when `key` is stored or being fetched (prefetch skips those).
    pub(crate) fn has_or_fetching(&self, key: &str, request_headers: &HeaderMap) -> bool {
        self.store.contains(key) || self.fills.contains(&key::fill_key(key, request_headers))
    }
}

struct FillTask {
    fill: Arc<Fill>,
    fill_key: String,
    base: String,
    path: String,
    request_headers: HeaderMap,
    upstream_headers: HeaderMap,
    revalidating: Option<(String, Arc<CachedMeta>)>,
    prefetch: bool,
}

/// Builds a response of `status` with `headers` for `request`: answers the viewer's own
/// conditionals and ranges (for 200 responses of known length) and HEAD. `body(start, take)`
/// produces the bytes.
fn respond(
    request: &Request<Incoming>,
    status: StatusCode,
    mut headers: HeaderMap,
    len: Option<u64>,
    body: impl FnOnce(u64, Option<u64>) -> Body,
) -> Response<Body> {
    let head_only = request.method() == Method::HEAD;
    let mut response = Response::new(body::empty());
    if status == StatusCode::OK {
        if not_modified(request.headers(), &headers) {
            headers.remove(header::CONTENT_LENGTH);
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            *response.headers_mut() = headers;
            return response;
        }
        if let Some(len) = len {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            let outcome = match request
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
            {
                Some(value) if if_range_holds(request.headers(), &headers) => {
                    range::evaluate(value, len)
                }
                _ => RangeOutcome::Full,
            };
            match outcome {
                RangeOutcome::Unsatisfiable => {
                    headers.insert(
                        header::CONTENT_RANGE,
                        header_value(range::unsatisfied_content_range(len)),
                    );
                    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                    *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                    *response.headers_mut() = headers;
                    return response;
                }
                RangeOutcome::Partial(span) => {
                    headers.insert(
                        header::CONTENT_RANGE,
                        header_value(range::content_range(&span, len)),
                    );
                    headers.insert(
                        header::CONTENT_LENGTH,
                        HeaderValue::from(span.end - span.start),
                    );
                    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                    if !head_only {
                        *response.body_mut() = body(span.start, Some(span.end - span.start));
                    }
                    *response.headers_mut() = headers;
                    return response;
                }
                RangeOutcome::Full => {}
            }
        }
    }
    match len {
        Some(len) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        None => {
            headers.remove(header::CONTENT_LENGTH);
        }
    }
    *response.status_mut() = status;
    if !head_only {
        *response.body_mut() = body(0, None);
    }
    *response.headers_mut() = headers;
    response
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn not_modified(request: &HeaderMap, response: &HeaderMap) -> bool {
    let get = |h: &HeaderMap, n: header::HeaderName| {
        h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    if let Some(inm) = get(request, header::IF_NONE_MATCH) {
        return get(response, header::ETAG)
            .is_some_and(|etag| validators::none_match_hits(&inm, &etag));
    }
    match (
        get(request, header::IF_MODIFIED_SINCE),
        get(response, header::LAST_MODIFIED),
    ) {
        (Some(ims), Some(lm)) => {
            httpdate::parse_http_date(&lm).is_ok_and(|lm| validators::not_modified_since(&ims, lm))
        }
        _ => false,
    }
}

fn if_range_holds(request: &HeaderMap, response: &HeaderMap) -> bool {
    let Some(value) = request.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let etag = response
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let modified = response
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match modified {
        Some(modified) => validators::if_range_holds(value, etag, modified),
        None => !etag.is_empty() && validators::if_range_holds(value, etag, SystemTime::UNIX_EPOCH),
    }
}

fn error_response(error: &EdgeError) -> Response<Body> {
    body::text(error.status(), error.advice())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
