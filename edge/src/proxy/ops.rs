//! What operators and the router ask of an edge: PURGE (on the viewer listener, with the admin
//! token), the token check itself, drain mode, and the JSON of `/status`.

use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use server_kit::{Body, body};

use super::Edge;
use crate::key;
use crate::purges::Push;

impl Edge {
    pub(super) async fn purge<B>(&self, request: &Request<B>) -> Response<Body> {
        if let Some(response) = self.refusal(request.headers()) {
            return response;
        }
        let base = key::cache_key(request, &self.key_params, self.canonical_host.as_deref());
        match self.purge_key(&base).await {
            Some(purged) => body::json(&serde_json::json!({ "purged": purged })),
            None => still_loading(),
        }
    }

    /// Drops `base` (every variant), or every key it is a prefix of when it ends with `*`;
    /// returns how many objects went, or `None` while the store loads its index (a purge could
    /// not be made to hold then: asked again).
    async fn purge_key(&self, base: &str) -> Option<usize> {
        if !self.store.is_ready() {
            return None;
        }
        let purged = match base.strip_suffix('*') {
            // Keys are not kept in memory: every stored key is read, on the blocking pool.
            Some(prefix) => {
                let (store, prefix) = (self.store.clone(), prefix.to_owned());
                tokio::task::spawn_blocking(move || store.remove_prefix(&prefix))
                    .await
                    .ok()
                    .flatten()?
            }
            None => self.invalidate(base),
        };
        self.metrics.store(&self.store.stats());
        tracing::info!(key = %base, purged, "purged");
        Some(purged)
    }

    /// Removes every stored key under each of `prefixes` in one pass (on the blocking pool);
    /// `None` while the store is starting.
    async fn purge_prefixes(&self, prefixes: Vec<String>) -> Option<Vec<usize>> {
        let store = self.store.clone();
        let counts = tokio::task::spawn_blocking(move || {
            let counts = store.remove_prefixes(&prefixes);
            (prefixes, counts)
        })
        .await
        .ok()?;
        let (prefixes, counts) = counts;
        let counts = counts?;
        self.metrics.store(&self.store.stats());
        for (prefix, purged) in prefixes.iter().zip(&counts) {
            tracing::info!(key = %format!("{prefix}*"), purged, "purged");
        }
        Some(counts)
    }

    /// Applies what a router pushed (`POST /purges`): every purge of `push` this edge has not
    /// applied yet, in order; records them in the state file; notes a complete push. Answers
    /// each purge's count and what the edge has applied now.
    pub async fn apply_purges(&self, push: Push) -> Response<Body> {
        if !self.store.is_ready() {
            return still_loading();
        }
        let mut applied = self.state.get().purges;
        if push
            .reset
            .iter()
            .any(|(origin, &first)| applied.get(origin).is_none_or(|a| a.through + 1 < first))
        {
            // The router no longer holds purges this edge never applied: whatever they named
            // may be stored here, so nothing stored is kept.
            tracing::warn!(router = %push.router, "purges missed beyond the routers' logs: emptying the store");
            if self.purge_key("*").await.is_none() {
                return still_loading();
            }
            for (origin, &first) in &push.reset {
                applied.entry(origin.clone()).or_default().skip_to(first);
            }
        }
        let empty = self.store.stats().objects == 0;
        let mut entries = push.entries;
        entries.sort_by(|a, b| (&a.origin, a.seq).cmp(&(&b.origin, b.seq)));
        entries.retain(|e| !applied.get(&e.origin).is_some_and(|a| a.has(e.seq)));
        let bases: Vec<Result<String, String>> = entries
            .iter()
            .map(|e| purge_base(&e.url, &self.key_params, self.canonical_host.as_deref()))
            .collect();
        // Every prefix of the push in one pass over the store: each pass reads every stored
        // key. Nothing stored, nothing to look through.
        let prefixes: Vec<String> = bases
            .iter()
            .filter_map(|b| b.as_ref().ok()?.strip_suffix('*').map(str::to_owned))
            .collect();
        let mut prefix_counts = match prefixes.is_empty() || empty {
            true => vec![0; prefixes.len()],
            false => match self.purge_prefixes(prefixes).await {
                Some(counts) => counts,
                None => return still_loading(),
            },
        }
        .into_iter();
        let mut results = Vec::new();
        for (entry, base) in entries.into_iter().zip(bases) {
            let outcome = match base {
                Err(problem) => serde_json::json!({ "error": problem }),
                Ok(base) if base.ends_with('*') => {
                    serde_json::json!({ "purged": prefix_counts.next().unwrap_or(0) })
                }
                Ok(_) if empty => serde_json::json!({ "purged": 0 }),
                Ok(base) => match self.purge_key(&base).await {
                    Some(purged) => serde_json::json!({ "purged": purged }),
                    None => return still_loading(),
                },
            };
            applied
                .entry(entry.origin.clone())
                .or_default()
                .mark(entry.seq);
            results.push(serde_json::json!({
                "origin": entry.origin, "seq": entry.seq, "url": entry.url, "result": outcome,
            }));
        }
        let saved = self.state.update(|state| state.purges = applied.clone());
        if let Err(error) = saved {
            // Applied but not recorded: the routers send them again, which purges nothing new.
            tracing::error!(%error, "purges applied but not recorded");
            return body::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server error: the purges were applied but the edge's state file cannot be written; see its log",
            );
        }
        if push.complete {
            self.purge_sync
                .complete_from(&push.router, push.routers_configured);
        }
        body::json(&serde_json::json!({
            "results": results,
            "purges": self.purge_sync.to_json(&applied),
        }))
    }

    /// Drops every stored copy of `base` (each `Vary` variant too); returns how many.
    pub(super) fn invalidate(&self, base: &str) -> usize {
        self.variants.forget(base);
        self.filler.forget_passing(base);
        usize::from(self.store.remove(base)) + self.store.remove_family(base)
    }

    /// Checks the bearer token of an admin operation: `None` when authorized, else the
    /// refusal to send.
    pub fn refusal(&self, headers: &HeaderMap) -> Option<Response<Body>> {
        server_kit::auth::refusal(headers, self.admin_token.as_deref())
    }

    /// Turns the operator's drain on or off, and records it so that it outlives a restart.
    pub fn set_draining(&self, on: bool) -> Result<(), crate::state::StateError> {
        self.state.update(|state| state.draining = on)?;
        self.drain_mode.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// True once the store has its index back and, in a fleet, the routers have sent the
    /// purges missed (until then `/readyz` says 503 and `/status` `ready: false`, which keeps
    /// the router's viewers away).
    pub fn ready(&self) -> bool {
        self.store.is_ready() && self.purge_sync.synced()
    }

    /// A stored object for `key`, unless purges missed may still apply to it (then: a miss).
    pub(super) async fn cached(
        &self,
        key: &str,
    ) -> Option<crate::store::StoredObject<crate::meta::CachedMeta>> {
        if !self.purge_sync.synced() {
            return None;
        }
        self.store.lookup(key).await
    }

    /// Asks whether any origin answers, for `/status`'s `origin_reachable`.
    pub async fn check_origins(&self) {
        let up = self
            .filler
            .upstream()
            .reachable(std::time::Duration::from_secs(2))
            .await;
        if self.origin_reachable.swap(up, Ordering::Relaxed) != up {
            tracing::warn!(reachable = up, "origin reachability changed");
        }
    }

    /// The JSON for `/status`.
    pub fn status(&self, shutting_down: bool) -> serde_json::Value {
        let stats = self.store.stats();
        let lookups = self.lookups.load(Ordering::Relaxed);
        let hits = self.hits.load(Ordering::Relaxed);
        // The gauge is the one count of responses in progress; /status and /metrics agree.
        let in_flight = self.metrics.in_flight.get().max(0) as u64;
        let load = self.load.now();
        let capacity = self.load.capacity();
        serde_json::json!({
            "service": "edge",
            "ready": self.ready(),
            "purges": self.purge_sync.to_json(&self.state.get().purges),
            "name": self.name,
            "region": self.region,
            "capacity_bytes": stats.capacity,
            "used_bytes": stats.used,
            "memory_bytes": stats.memory,
            "objects": stats.objects,
            "hit_ratio": if lookups == 0 { 0.0 } else { hits as f64 / lookups as f64 },
            "responses_in_progress": in_flight,
            "load": load.load,
            "load_parts": {
                "egress_bits_per_second": load.egress_bits_per_second,
                "connections": load.connections,
                "responses": load.responses,
            },
            "capacity": {
                "egress_mbps": capacity.egress_mbps,
                "connections": capacity.connections,
                "responses": capacity.responses,
            },
            "draining": shutting_down || self.drain_mode.load(Ordering::Relaxed),
            "origin_reachable": self.origin_reachable.load(Ordering::Relaxed),
            "fills_in_flight": self.filler.in_flight_count(),
            "store_start": self.store.recovered().map(|r| serde_json::json!({
                "objects": r.objects,
                "from_checkpoint": r.from_checkpoint,
                "caught_up_entries": r.caught_up,
                "ms": r.ms,
            })),
            "uptime_seconds": self.started.elapsed().as_secs(),
        })
    }
}

/// The cache key (with a trailing `*` for a prefix) a router's purge URL names.
fn purge_base(url: &str, ignore: &[String], canonical: Option<&str>) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let (Some(authority), Some(path)) = (uri.authority(), uri.path_and_query()) else {
        return Err(format!("{url:?} is not an absolute URL"));
    };
    let request = Request::builder()
        .uri(path.as_str())
        .header(header::HOST, authority.as_str())
        .body(())
        .map_err(|e| format!("{url:?}: {e}"))?;
    Ok(key::cache_key(&request, ignore, canonical))
}

/// The answer to a purge while the store loads its index.
fn still_loading() -> Response<Body> {
    text_with(
        StatusCode::SERVICE_UNAVAILABLE,
        "server error: the store is still loading its index; retry the purge",
        (header::RETRY_AFTER, "1"),
    )
}

/// A text answer with one more header.
fn text_with(
    status: StatusCode,
    text: &'static str,
    (name, value): (header::HeaderName, &'static str),
) -> Response<Body> {
    let mut response = body::text(status, text);
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    response
}
