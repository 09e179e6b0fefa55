//! Prefetch: when a viewer asks for segment N of a rendition, fetch N+1..N+K in the background.
//!
//! The edge learns which media playlist describes a folder when a playlist passes through it,
//! and reads that playlist from its own store (never from the origin) to find the next
//! segments. A segment is prefetched at most once (remembered for ten minutes), skipped when it
//! is stored or already being fetched, and stored without counting as a use, so prefetched
//! segments nobody plays are the first to be evicted rather than pushing out hot ones.
//! Outcomes are counted: `issued`, `used` (a viewer asked for it), `wasted` (forgotten unused).
//!
//! This module decides and fetches nothing: [`Prefetcher::plan`] says which segments to fetch
//! (keeping its own bookkeeping of playlists seen and segments issued), and the request path
//! starts those fills.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::notification::RemovalCause;
use video_http::media::{self, MediaKind};

use crate::key;
use crate::metrics::Metrics;

/// One segment to prefetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefetch {
    /// Its base cache key.
    pub key: String,
    /// The path to ask the origin for.
    pub path: String,
}

/// Prefetch state of one edge.
#[derive(Debug)]
pub struct Prefetcher {
    depth: usize,
    /// Query parameters left out of cache keys (as the request path leaves them out).
    key_ignore: Vec<String>,
    metrics: Metrics,
    /// Folder key → key of the media playlist last seen for it.
    playlists: moka::sync::Cache<String, Arc<str>>,
    /// Keys prefetched and not yet asked for.
    pending: moka::sync::Cache<String, ()>,
}

impl Prefetcher {
    pub fn new(depth: usize, key_ignore: Vec<String>, metrics: Metrics) -> Self {
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
            key_ignore,
            metrics,
            playlists: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            pending,
        }
    }

    /// The stored playlist `plan` will read for a viewer of `path` (base key `base`), if any:
    /// read it first (on the blocking pool) and hand it to `plan`.
    pub fn playlist_key(&self, path: &str, base: &str) -> Option<Arc<str>> {
        if self.depth == 0 || media::classify(path).0 != MediaKind::Segment {
            return None;
        }
        let base_path = base.split('?').next().unwrap_or(base);
        let (folder, _) = base_path.rsplit_once('/')?;
        self.playlists.get(&format!("{folder}/"))
    }

    /// Called for every GET/HEAD before it is served: the segments to fetch next for a viewer
    /// of `path` (base key `base`). `playlist` reads a stored playlist by key; `skip` says a
    /// key is stored or being fetched already. The caller fetches what is returned.
    pub fn plan(
        &self,
        path: &str,
        base: &str,
        playlist: impl FnOnce(&str) -> Option<Bytes>,
        skip: impl Fn(&str) -> bool,
    ) -> Vec<Prefetch> {
        if self.depth == 0 {
            return Vec::new();
        }
        let base_path = base.split('?').next().unwrap_or(base);
        let Some((folder, _)) = base_path.rsplit_once('/') else {
            return Vec::new();
        };
        let folder = format!("{folder}/");
        match media::classify(path).0 {
            MediaKind::Playlist if path.ends_with(".m3u8") => {
                self.playlists.insert(folder, Arc::from(base));
                Vec::new()
            }
            MediaKind::Segment => {
                let Some(key) = self.playlists.get(&folder) else {
                    return Vec::new();
                };
                let Some(text) = playlist(&key) else {
                    return Vec::new();
                };
                self.after(&text, &folder, base, skip)
            }
            _ => Vec::new(),
        }
    }

    fn after(
        &self,
        playlist: &[u8],
        folder: &str,
        base: &str,
        skip: impl Fn(&str) -> bool,
    ) -> Vec<Prefetch> {
        let Ok(text) = std::str::from_utf8(playlist) else {
            return Vec::new();
        };
        let Some(host_end) = folder.find('/') else {
            return Vec::new();
        };
        let host = &folder[..host_end];
        // Each segment as (cache key, what to ask the origin for): the key is made from the
        // URI as a viewer's request for it would be.
        let mut segments = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.contains("://"))
            .map(|uri| {
                let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
                let full = if path.starts_with('/') {
                    format!("{host}{uri}")
                } else {
                    format!("{folder}{uri}")
                };
                let key_path = &full[..full.len() - uri.len() + path.len()];
                let key = format!("{key_path}{}", key::key_query(query, &self.key_ignore));
                (key, full[host_end..].to_owned())
            });
        // Made lazily: only up to the viewer's segment and the few after it.
        if !segments.any(|(key, _)| key == base) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (key, path) in segments.take(self.depth) {
            if self.pending.contains_key(&key) || skip(&key) {
                continue;
            }
            self.pending.insert(key.clone(), ());
            self.metrics.prefetch("issued");
            out.push(Prefetch { key, path });
        }
        out
    }

    /// A viewer asked for `key`: if it was prefetched, the prefetch was used.
    pub fn note_use(&self, key: &str) {
        if self.pending.remove(key).is_some() {
            self.metrics.prefetch("used");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefetcher(depth: usize) -> Prefetcher {
        let mut registry = prometheus_client::registry::Registry::default();
        Prefetcher::new(
            depth,
            vec!["token".into()],
            Metrics::register(&mut registry),
        )
    }

    const PLAYLIST: &str = "#EXTM3U\n#EXTINF:2,\nseg_1.m4s\n#EXTINF:2,\nseg_2.m4s?t=1\n\
                            #EXTINF:2,\n/vod/a/720p/seg_3.m4s\n#EXTINF:2,\nseg_4.m4s?token=abc\n";

    #[test]
    fn plans_the_next_segments_once_and_skips_what_is_there() {
        let p = prefetcher(2);
        let playlist = |key: &str| {
            assert_eq!(key, "h/vod/a/720p/index.m3u8");
            Some(Bytes::from_static(PLAYLIST.as_bytes()))
        };
        // Nothing is known before the playlist passed through.
        assert!(
            p.plan(
                "/vod/a/720p/seg_1.m4s",
                "h/vod/a/720p/seg_1.m4s",
                playlist,
                |_| false
            )
            .is_empty()
        );
        assert!(
            p.plan(
                "/vod/a/720p/index.m3u8",
                "h/vod/a/720p/index.m3u8",
                playlist,
                |_| false
            )
            .is_empty()
        );
        let plan = p.plan(
            "/vod/a/720p/seg_1.m4s",
            "h/vod/a/720p/seg_1.m4s",
            playlist,
            |key| key.ends_with("seg_2.m4s?t=1"),
        );
        assert_eq!(
            plan,
            vec![Prefetch {
                key: "h/vod/a/720p/seg_3.m4s".into(),
                path: "/vod/a/720p/seg_3.m4s".into()
            }]
        );
        // Issued once: asked again, only what was not issued yet; the key leaves the token
        // out, the fetch keeps it.
        let again = p.plan(
            "/vod/a/720p/seg_2.m4s",
            "h/vod/a/720p/seg_2.m4s?t=1",
            playlist,
            |_| false,
        );
        assert_eq!(
            again,
            vec![Prefetch {
                key: "h/vod/a/720p/seg_4.m4s".into(),
                path: "/vod/a/720p/seg_4.m4s?token=abc".into()
            }]
        );
        assert!(
            prefetcher(0)
                .plan("/x.m3u8", "h/x.m3u8", playlist, |_| false)
                .is_empty()
        );
    }
}
