//! The edge's request path, one step per module, read top to bottom:
//!
//! ```text
//! dispatch ─► lookup ─► fresh ───────────────────► hit          HIT
//!   (method,     │    ─► stale-while-revalidate ─► hit          STALE + background refresh
//!    drain,      │    ─► stale ──────────────────► revalidate   304: REVALIDATED │ 200: MISS
//!    PURGE)      │                                              │ error: STALE if allowed
//!                └────► not stored ──────────────► miss         join or lead a fill: MISS
//!        answers from the store or a fill ─► respond (200/206/304/412/416, HEAD)
//! ```
//!
//! - `dispatch`: one viewer request in: method, drain redirect, and the headers every answer
//!   carries (`X-Served-By`, `X-Cache`, `Age`, CORS), metrics and the request's span.
//! - `lookup`: the cache key, the store, and the freshness decision; starts prefetches.
//! - `hit`, `revalidate`, `miss`: the three ways an answer is made.
//! - `respond`: the responses themselves (from a stored object, from a fill, errors), with the
//!   viewer's conditionals and ranges.
//! - `slices`: ranges of objects too large to store whole, kept and combined in fixed slices.
//! - `pass`: every other method (POST, PUT, PATCH, DELETE, ...) to the origin and back,
//!   bodies streamed both ways, and what a successful one invalidates.
//! - `ops`: PURGE, the admin token check, drain mode and `/status`.
//!
//! Fetching from the origin is [`crate::fill`]'s job; this module only asks for fills.

mod dispatch;
mod hit;
mod lookup;
mod miss;
mod ops;
mod pass;
mod respond;
mod revalidate;
mod slices;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

use http::{HeaderValue, Request};

use crate::config::EdgeConfig;
use crate::error::EdgeError;
use crate::fill::{Fill, FillRequest, Filler, Revalidating};
use crate::key::Variants;
use crate::manifests::Manifests;
use crate::meta::CachedMeta;
use crate::metrics::Metrics;
use crate::prefetch::Prefetcher;
use crate::store::Store;

/// The shared state of one edge.
#[derive(Debug)]
pub struct Edge {
    name: String,
    region: String,
    served_by: HeaderValue,
    store: Store<CachedMeta>,
    filler: Arc<Filler>,
    variants: Arc<Variants>,
    metrics: Metrics,
    /// Query parameters left out of cache keys.
    key_params: Vec<String>,
    admin_token: Option<String>,
    drain_to: Option<String>,
    prefetcher: Prefetcher,
    manifests: Manifests,
    /// Operator drain (router and viewers are told; the process keeps serving). Kept in
    /// `state` too, so that it survives a restart.
    drain_mode: AtomicBool,
    state: crate::state::StateFile,
    /// Whether the routers have brought this edge's purges up to date since it started.
    purge_sync: crate::purges::Sync,
    /// The edge's load, sampled in the background (see `load`).
    pub(crate) load: Arc<crate::load::Meter>,
    /// Whether some origin answered the last reachability check (`check_origins`).
    origin_reachable: AtomicBool,
    max_request_body: u64,
    /// One JSON line per request, if configured.
    access_log: Option<Arc<crate::access_log::AccessLog>>,
    /// The hosts served (lower case; empty: any), and the one objects are keyed under.
    hosts: Vec<String>,
    canonical_host: Option<String>,
    /// Signed URLs, when configured.
    signed: Option<crate::signed::SignedUrls>,
    /// How slowly a request body may come: no bytes for this long, or under this many bytes
    /// per second on average (`[connections]`).
    body_timeout: std::time::Duration,
    body_min_rate: u64,
    max_object_size: u64,
    /// Objects over `max_object_size` are kept in slices of this size (`slices`).
    slice_size: u64,
    /// Lengths of objects known to be over `max_object_size`.
    large_objects: moka::sync::Cache<String, u64>,
    ignore_client_no_cache: bool,
    credential_headers: Vec<String>,
    credential_cookies: Vec<String>,
    answer_cors_preflight: bool,
    lookups: AtomicU64,
    hits: AtomicU64,
    started: Instant,
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
        state: crate::state::StateFile,
        store: Store<CachedMeta>,
        metrics: Metrics,
        access_log: Option<Arc<crate::access_log::AccessLog>>,
        load: Arc<crate::load::Meter>,
    ) -> Result<Self, EdgeError> {
        let served_by = HeaderValue::from_str(&format!("{};region={}", config.name, config.region))
            .map_err(|_| {
                EdgeError::Internal("name or region is not a valid header value".into())
            })?;
        let variants = Arc::new(Variants::default());
        let filler = Filler::new(config, store.clone(), variants.clone(), metrics.clone())?;
        Ok(Self {
            name: config.name.clone(),
            region: config.region.clone(),
            served_by,
            store,
            filler: Arc::new(filler),
            variants,
            prefetcher: Prefetcher::new(
                config.prefetch,
                config.key_ignore_params.clone(),
                metrics.clone(),
            ),
            manifests: Manifests::new(config),
            metrics,
            key_params: config.key_ignore_params.clone(),
            admin_token: config.admin_token.clone(),
            drain_to: config
                .drain_to
                .as_ref()
                .map(|t| t.trim_end_matches('/').to_owned()),
            drain_mode: AtomicBool::new(state.get().draining),
            state,
            purge_sync: crate::purges::Sync::new(config.await_purges),
            load,
            origin_reachable: AtomicBool::new(true),
            max_request_body: config.max_request_body.0,
            body_timeout: config.connections.body_timeout,
            body_min_rate: config.connections.body_min_rate,
            max_object_size: config.max_object_size.0,
            slice_size: config.slice_size.0.min(config.max_object_size.0).max(1),
            large_objects: slices::known_large(),
            ignore_client_no_cache: config.ignore_client_no_cache,
            credential_headers: config
                .credential_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            credential_cookies: config.credential_cookies.clone(),
            answer_cors_preflight: config.answer_cors_preflight,
            lookups: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            started: Instant::now(),
            access_log,
            signed: crate::signed::SignedUrls::new(&config.signed_urls)
                .map_err(|e| EdgeError::Internal(format!("signed_urls: {e}").into()))?,
            hosts: config
                .hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            canonical_host: config
                .canonical_host
                .as_ref()
                .map(|h| h.to_ascii_lowercase()),
        })
    }

    /// A fill for this request alone: nobody else joins it, and it joins no other.
    fn fill_alone<B>(&self, request: &Request<B>, base: &str) -> Arc<Fill> {
        let credentials = self.has_credentials(request.headers());
        self.filler
            .start(viewer_fill(request, base, None, true, credentials))
    }

    /// Joins or leads the fill for a viewer's request that found nothing stored under `key`;
    /// None when the object was stored since (a fill ended meanwhile): look it up again.
    fn fill_unless_stored<B>(
        &self,
        request: &Request<B>,
        base: &str,
        key: &str,
    ) -> Option<Arc<Fill>> {
        let credentials = self.has_credentials(request.headers());
        self.filler.start_unless(
            viewer_fill(request, base, None, credentials, credentials),
            || self.purge_sync.synced() && self.store.contains(key),
        )
    }

    /// Joins or leads the fill for a viewer's request. `revalidating` carries the stored copy's
    /// key and meta, to send its validators and refresh it on a 304.
    fn fill_for<B>(
        &self,
        request: &Request<B>,
        base: &str,
        revalidating: Option<Revalidating>,
    ) -> Arc<Fill> {
        let credentials = self.has_credentials(request.headers());
        self.filler.start(viewer_fill(
            request,
            base,
            revalidating,
            credentials,
            credentials,
        ))
    }
}

/// The fill a viewer's request asks for.
fn viewer_fill<B>(
    request: &Request<B>,
    base: &str,
    revalidating: Option<Revalidating>,
    private: bool,
    credentials: bool,
) -> FillRequest {
    FillRequest {
        base: base.to_owned(),
        path: path_and_query(request),
        headers: request.headers().clone(),
        revalidating,
        prefetch: false,
        peer: peer(request),
        private,
        credentials,
        slice: None,
    }
}

/// What to ask the origin for: the request's path and query.
fn path_and_query<B>(request: &Request<B>) -> String {
    request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into())
}

/// The viewer's address, as dispatch recorded it.
fn peer<B>(request: &Request<B>) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<crate::forward::Peer>()
        .map(|p| p.0)
}

impl Edge {
    /// A request with credentials (RFC 9111 §3.5): `Authorization`, or a header or cookie the
    /// operator named. It is answered only from what its own fetch says may be shared.
    fn has_credentials(&self, headers: &http::HeaderMap) -> bool {
        headers.contains_key(http::header::AUTHORIZATION)
            || self
                .credential_headers
                .iter()
                .any(|name| headers.contains_key(name.as_str()))
            || (!self.credential_cookies.is_empty()
                && headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .filter_map(|pair| pair.split('=').next())
                    .any(|name| self.credential_cookies.iter().any(|c| c == name.trim())))
    }
}
