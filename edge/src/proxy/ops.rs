//! What operators and the router ask of an edge: PURGE (on the viewer listener, with the admin
//! token), the token check itself, drain mode, and the JSON of `/status`.

use std::sync::atomic::Ordering;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use server_kit::{Body, body};

use super::Edge;
use crate::key;

impl Edge {
    pub(super) async fn purge<B>(&self, request: &Request<B>) -> Response<Body> {
        if let Some(response) = self.refusal(request.headers()) {
            return response;
        }
        // Until the store has its index back, a purge could not be made to hold: asked again.
        if !self.store.is_ready() {
            return still_loading();
        }
        let base = key::cache_key(request, &self.key_params, self.canonical_host.as_deref());
        let purged = match base.strip_suffix('*') {
            // Keys are not kept in memory: every stored key is read, on the blocking pool.
            Some(prefix) => {
                let (store, prefix) = (self.store.clone(), prefix.to_owned());
                let removed = tokio::task::spawn_blocking(move || store.remove_prefix(&prefix))
                    .await
                    .ok()
                    .flatten();
                let Some(removed) = removed else {
                    return still_loading();
                };
                removed
            }
            None => self.invalidate(&base),
        };
        self.metrics.store(&self.store.stats());
        tracing::info!(key = %base, purged, "purged");
        body::json(&serde_json::json!({ "purged": purged }))
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
            Some(text_with(
                StatusCode::UNAUTHORIZED,
                "client error: missing or wrong bearer token",
                (header::WWW_AUTHENTICATE, "Bearer"),
            ))
        }
    }

    /// Turns the operator's drain on or off.
    pub fn set_draining(&self, on: bool) {
        self.drain_mode.store(on, Ordering::Relaxed);
    }

    /// True once the store has its index back (until then `/readyz` says 503 and `/status`
    /// `ready: false`, which keeps the router's viewers away).
    pub fn store_ready(&self) -> bool {
        self.store.is_ready()
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
            "ready": self.store.is_ready(),
            "name": self.name,
            "region": self.region,
            "capacity_bytes": stats.capacity,
            "used_bytes": stats.used,
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
