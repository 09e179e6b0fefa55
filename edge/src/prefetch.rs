//! Prefetch: when a viewer asks for segment N of a rendition, fetch N+1..N+K in the background.
//!
//! The edge learns which media playlist describes a folder when a playlist passes through it,
//! and reads that playlist from its own store (never from the origin) to find the next
//! segments. A segment is prefetched at most once (remembered for ten minutes), skipped when it
//! is stored or already being fetched, and stored without counting as a use, so prefetched
//! segments nobody plays are the first to be evicted rather than pushing out hot ones.
//! Outcomes are counted: `issued`, `used` (a viewer asked for it), `wasted` (forgotten unused).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request};
use moka::notification::RemovalCause;
use video_http::media::{self, MediaKind};

use crate::metrics::Metrics;
use crate::service::Edge;

/// Prefetch state of one edge.
#[derive(Debug)]
pub struct Prefetcher {
    depth: usize,
    metrics: Metrics,
    /// Folder key → key of the media playlist last seen for it.
    playlists: moka::sync::Cache<String, Arc<str>>,
    /// Keys prefetched and not yet asked for.
    pending: moka::sync::Cache<String, ()>,
}

impl Prefetcher {
    pub fn new(depth: usize, metrics: Metrics) -> Self {
        let wasted = metrics.clone();
        let pending = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(600))
            .eviction_listener(move |_key, _value, cause| {
                if cause != RemovalCause::Explicit && cause != RemovalCause::Replaced {
                    wasted.prefetch("wasted");
                }
            })
            .build();
        Self {
            depth,
            metrics,
            playlists: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            pending,
        }
    }

    /// Called for every GET/HEAD before it is served.
    pub fn on_request<B>(&self, edge: &Arc<Edge>, request: &Request<B>, base: &str) {
        if self.depth == 0 {
            return;
        }
        let Some((folder, _)) = base.rsplit_once('/') else {
            return;
        };
        let folder = format!("{folder}/");
        match media::classify(request.uri().path()).0 {
            MediaKind::Playlist if request.uri().path().ends_with(".m3u8") => {
                self.playlists.insert(folder, Arc::from(base));
            }
            MediaKind::Segment => {
                if let Some(playlist) = self.playlists.get(&folder) {
                    self.prefetch_after(edge, &playlist, &folder, base, request.headers());
                }
            }
            _ => {}
        }
    }

    fn prefetch_after(
        &self,
        edge: &Arc<Edge>,
        playlist: &str,
        folder: &str,
        base: &str,
        headers: &HeaderMap,
    ) {
        let Some(object) = edge.store.get(playlist) else {
            return;
        };
        let Ok(text) = std::str::from_utf8(&object.body) else {
            return;
        };
        let Some(host_end) = folder.find('/') else {
            return;
        };
        let host = &folder[..host_end];
        let segments: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("://"))
            .map(|uri| {
                let uri = uri.split('?').next().unwrap_or(uri);
                if uri.starts_with('/') {
                    format!("{host}{uri}")
                } else {
                    format!("{folder}{uri}")
                }
            })
            .collect();
        let Some(position) = segments.iter().position(|s| s == base) else {
            return;
        };
        for next in segments.iter().skip(position + 1).take(self.depth) {
            if self.pending.contains_key(next) || edge.has_or_fetching(next, headers) {
                continue;
            }
            self.pending.insert(next.clone(), ());
            self.metrics.prefetch("issued");
            let path = &next[host_end..];
            edge.start_fill_for(next, path, headers, None, true);
        }
    }

    /// A viewer asked for `key`: if it was prefetched, the prefetch was used.
    pub fn note_use(&self, key: &str) {
        if self.pending.remove(key).is_some() {
            self.metrics.prefetch("used");
        }
    }
}
