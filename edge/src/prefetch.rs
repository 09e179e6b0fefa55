//! Prefetch: when a viewer asks for segment N of a rendition, fetch N+1..N+K in the background.
//!
//! The edge learns which manifest describes a folder when one passes through it (an HLS media
//! playlist, or a DASH MPD whose `SegmentTemplate` numbers segments in the folder or below it,
//! see `video_http::numbered`), and reads that manifest from its own store (never from the
//! origin) to find the next segments. A segment is prefetched at most once (remembered for ten minutes), skipped when it
//! is stored or already being fetched, and stored without counting as a use, so prefetched
//! segments nobody plays are the first to be evicted rather than pushing out hot ones.
//! Outcomes are counted: `issued`, `used` (a viewer asked for it), `wasted` (forgotten unused),
//! `not_named` (a player's next object that its playlist does not name), `limited` (over the
//! client's rate).
//!
//! **A player that says what it wants next** (CMCD `nor`, see `cmcd`) gets exactly that object
//! prefetched, not the next `depth` segments: nothing is fetched that the player will not ask
//! for unless it leaves. Its `nor` is input, not an order: it is prefetched only when the
//! playlist the edge holds for that folder names it, so a viewer cannot make the edge fetch
//! arbitrary paths; and each client (by address) gets at most `CLIENT_BURST` prefetches at once
//! and `CLIENT_RATE` a second after that.
//!
//! This module decides and fetches nothing: [`Prefetcher::plan`] says which segments to fetch
//! (keeping its own bookkeeping of playlists seen and segments issued), and the request path
//! starts those fills.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Each client's prefetch allowance.
    clients: moka::sync::Cache<IpAddr, Arc<Mutex<Allowance>>>,
}

/// The prefetches one client may start at once, and how many a second after that.
const CLIENT_BURST: f64 = 16.0;
const CLIENT_RATE: f64 = 2.0;

/// How far past the viewer's own segment a player's `nor` may point in a live MPD.
const LIVE_AHEAD: u64 = 2;

/// A token bucket.
#[derive(Debug)]
struct Allowance {
    tokens: f64,
    at: Instant,
}

impl Allowance {
    fn peek(&self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * CLIENT_RATE;
        self.tokens + refill >= 1.0
    }

    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * CLIENT_RATE;
        self.tokens = (self.tokens + refill).min(CLIENT_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
            clients: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }

    /// True when `client` may start one more prefetch now (and it is counted).
    fn allowed(&self, client: Option<IpAddr>) -> bool {
        let allowance = self.clients.get_with(bucket(client), || {
            Arc::new(Mutex::new(Allowance {
                tokens: CLIENT_BURST,
                at: Instant::now(),
            }))
        });
        let mut allowance = allowance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        allowance.take(Instant::now())
    }

    /// True when `client` has a prefetch left now (none is spent; a refusal is counted as
    /// `limited`): checked before the manifest is read, so requests past the rate cost no
    /// reading.
    pub fn may_prefetch(&self, client: Option<IpAddr>) -> bool {
        if self.depth == 0 {
            return false;
        }
        let left = match self.clients.get(&bucket(client)) {
            None => true,
            Some(allowance) => allowance
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .peek(Instant::now()),
        };
        if !left {
            self.metrics.prefetch("limited");
        }
        left
    }

    /// The stored manifest `plan` will read for a viewer of `path` (base key `base`), if any:
    /// read it first (on the blocking pool) and hand it to `plan`.
    pub fn playlist_key(&self, path: &str, base: &str) -> Option<Arc<str>> {
        if self.depth == 0 || media::classify(path).0 != MediaKind::Segment {
            return None;
        }
        let base_path = base.split('?').next().unwrap_or(base);
        let (folder, _) = base_path.rsplit_once('/')?;
        self.manifest_for(&format!("{folder}/")).map(|(_, key)| key)
    }

    /// The manifest seen for `folder` or, for a DASH MPD's representations in folders of their
    /// own, for one of the two folders above it: (its folder, its key).
    fn manifest_for(&self, folder: &str) -> Option<(String, Arc<str>)> {
        let mut at = folder.to_owned();
        for _ in 0..3 {
            if let Some(key) = self.playlists.get(&at) {
                return Some((at, key));
            }
            let parent = at.trim_end_matches('/').rsplit_once('/')?.0;
            at = format!("{parent}/");
        }
        None
    }

    /// Called for every GET/HEAD before it is served: the segments to fetch next for a viewer
    /// (`client`) of `path` (base key `base`) whose player said it will ask for `next` (CMCD
    /// `nor`, relative to `path`) if it did. `playlist` reads a stored playlist by key; `skip`
    /// says a key is stored or being fetched already. The caller fetches what is returned.
    pub fn plan(
        &self,
        path: &str,
        base: &str,
        viewer: Viewer<'_>,
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
            MediaKind::Playlist if path.ends_with(".m3u8") || path.ends_with(".mpd") => {
                // A request is not yet a manifest (it may be a 404): it does not displace
                // one the edge holds for the folder.
                let held = self
                    .playlists
                    .get(&folder)
                    .is_some_and(|key| &*key != base && skip(&key));
                if !held {
                    self.playlists.insert(folder, Arc::from(base));
                }
                Vec::new()
            }
            MediaKind::Segment => {
                let Some((manifest_folder, key)) = self.manifest_for(&folder) else {
                    return Vec::new();
                };
                let Some(text) = playlist(&key) else {
                    return Vec::new();
                };
                // A player that names its next object is asked for nothing else, even when
                // what it names is not ours to fetch (another host, outside the root).
                let next = match viewer.next.map(|nor| resolve(path, nor)) {
                    Some(None) => {
                        self.metrics.prefetch("not_named");
                        return Vec::new();
                    }
                    Some(Some(next)) => Some(next),
                    None => None,
                };
                let wanted = match key.split('?').next().is_some_and(|k| k.ends_with(".mpd")) {
                    true => self.in_mpd(&text, &manifest_folder, base, next.as_deref()),
                    false if manifest_folder == folder => {
                        self.in_playlist(&text, &folder, base, next.as_deref())
                    }
                    false => Vec::new(),
                };
                self.issue(wanted, base, viewer.client, skip)
            }
            _ => Vec::new(),
        }
    }

    /// The segments to prefetch after `base`, as (key, path), from the media playlist of
    /// `folder`: the player's `next` if the playlist names it, else the next `depth`.
    fn in_playlist(
        &self,
        playlist: &[u8],
        folder: &str,
        base: &str,
        next: Option<&str>,
    ) -> Vec<(String, String)> {
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
                let uri = uri.split('#').next().unwrap_or(uri);
                let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
                let from_root = match path.starts_with('/') {
                    true => path.to_owned(),
                    false => format!("{}{path}", &folder[host_end..]),
                };
                // In normal form, as a viewer's request for it is keyed.
                let path = key::normalize_path(&from_root).unwrap_or(from_root);
                let key = format!("{host}{path}{}", key::key_query(query, &self.key_ignore));
                match query.is_empty() {
                    true => (key, path),
                    false => (key, format!("{path}?{query}")),
                }
            });
        match next {
            // The player's own next object, if its playlist names it.
            Some(next) => {
                let (path, query) = next.split_once('?').unwrap_or((next, ""));
                let key = format!("{host}{path}{}", key::key_query(query, &self.key_ignore));
                match segments.find(|(k, _)| *k == key) {
                    Some(named) => {
                        self.metrics.prefetch("named");
                        vec![named]
                    }
                    None => {
                        self.metrics.prefetch("not_named");
                        Vec::new()
                    }
                }
            }
            // Made lazily: only up to the viewer's segment and the few after it.
            None => {
                if !segments.any(|(key, _)| key == base) {
                    return Vec::new();
                }
                segments.take(self.depth).collect()
            }
        }
    }

    /// The same from the MPD of `folder` (its numbered segments, in the folder or below).
    /// Without the player's `next`, only a static MPD's segments are run ahead to: a live
    /// one's next segment may not exist yet.
    fn in_mpd(
        &self,
        mpd: &[u8],
        folder: &str,
        base: &str,
        next: Option<&str>,
    ) -> Vec<(String, String)> {
        let (Ok(text), Some(host_end)) = (std::str::from_utf8(mpd), folder.find('/')) else {
            return Vec::new();
        };
        let host = &folder[..host_end];
        let segments = video_http::numbered::Segments::of(text);
        let entry = |rel: String| {
            (
                format!("{folder}{rel}"),
                format!("{}{rel}", &folder[host_end..]),
            )
        };
        let base_path = base.split('?').next().unwrap_or(base);
        let current = base_path
            .strip_prefix(folder)
            .and_then(|rel| segments.find(rel));
        if let Some(next) = next {
            // Queries are not part of what a template names.
            let (path, _) = next.split_once('?').unwrap_or((next, ""));
            let key = format!("{host}{path}");
            // A live template names every number: only the next few after the viewer's own
            // segment are ones a player could mean (a switch of rendition keeps the number).
            let near = |named: &video_http::numbered::Named| {
                segments.bounded(named)
                    || current.as_ref().is_some_and(|c| {
                        named.number > c.number && named.number - c.number <= LIVE_AHEAD
                    })
            };
            let named = key
                .strip_prefix(folder)
                .and_then(|rel| segments.find(rel))
                .filter(near);
            return match named {
                Some(_) => {
                    self.metrics.prefetch("named");
                    vec![entry(key[folder.len()..].to_owned())]
                }
                None => {
                    self.metrics.prefetch("not_named");
                    Vec::new()
                }
            };
        }
        let Some(mut named) = current else {
            return Vec::new();
        };
        if !segments.bounded(&named) {
            return Vec::new();
        }
        let mut out = Vec::new();
        while out.len() < self.depth {
            let Some(rel) = segments.next(&named) else {
                break;
            };
            named = match segments.find(&rel) {
                Some(n) => n,
                None => break,
            };
            out.push(entry(rel));
        }
        out
    }

    /// Starts what `wanted` lists, but not the viewer's own object, what is stored or in
    /// flight or issued already, or more than the client's rate allows.
    fn issue(
        &self,
        wanted: Vec<(String, String)>,
        base: &str,
        client: Option<IpAddr>,
        skip: impl Fn(&str) -> bool,
    ) -> Vec<Prefetch> {
        let mut out = Vec::new();
        for (key, path) in wanted {
            if key == base || self.pending.contains_key(&key) || skip(&key) {
                continue;
            }
            if !self.allowed(client) {
                self.metrics.prefetch("limited");
                break;
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

/// Who asks, as prefetch sees them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Viewer<'a> {
    /// The client's address (for its rate).
    pub client: Option<IpAddr>,
    /// The next object its player named (CMCD `nor`), relative to the request's path.
    pub next: Option<&'a str>,
}

/// True when `next`, relative to `path`, has more `..` segments than there are folders to
/// leave (normalizing would clamp them at the root, a path the player cannot have meant).
fn climbs_above_root(path: &str, next: &str) -> bool {
    let mut depth: i64 = match next.starts_with('/') {
        true => 0,
        false => path.split('/').filter(|s| !s.is_empty()).count() as i64 - 1,
    };
    for segment in next.split('?').next().unwrap_or(next).split('/') {
        match segment {
            ".." => depth -= 1,
            "" | "." => {}
            _ => depth += 1,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Whose allowance a client spends: its address, an IPv6 client's /64 (one host may hold all
/// of it), and one shared for clients of no known address.
fn bucket(client: Option<IpAddr>) -> IpAddr {
    match client {
        None => IpAddr::from([0u8; 16]),
        Some(IpAddr::V6(v6)) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        Some(v4) => v4,
    }
}

/// `next` (relative to the request path `path`, as CMCD's `nor` is) as a path from the root,
/// in normal form; `None` for an absolute URL or one that leaves the root.
fn resolve(path: &str, next: &str) -> Option<String> {
    let next = next.split('#').next().unwrap_or(next);
    if next.contains("://") || next.starts_with("//") || climbs_above_root(path, next) {
        return None;
    }
    let joined = match next.strip_prefix('/') {
        Some(_) => next.to_owned(),
        None => format!("{}/{next}", path.rsplit_once('/')?.0),
    };
    let (p, query) = match joined.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (joined.clone(), None),
    };
    let normal = key::normalize_path(&p).unwrap_or(p);
    Some(match query {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    })
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
                Viewer::default(),
                playlist,
                |_| false
            )
            .is_empty()
        );
        assert!(
            p.plan(
                "/vod/a/720p/index.m3u8",
                "h/vod/a/720p/index.m3u8",
                Viewer::default(),
                playlist,
                |_| false
            )
            .is_empty()
        );
        let plan = p.plan(
            "/vod/a/720p/seg_1.m4s",
            "h/vod/a/720p/seg_1.m4s",
            Viewer::default(),
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
            Viewer::default(),
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
        // Depth 0 is off: the playlist is known, the segment plans nothing.
        let off = prefetcher(0);
        off.plan(
            "/vod/a/720p/index.m3u8",
            "h/vod/a/720p/index.m3u8",
            Viewer::default(),
            playlist,
            |_| false,
        );
        assert!(
            off.plan(
                "/vod/a/720p/seg_1.m4s",
                "h/vod/a/720p/seg_1.m4s",
                Viewer::default(),
                playlist,
                |_| false
            )
            .is_empty()
        );
    }

    #[test]
    fn a_players_next_object_is_prefetched_only_if_its_playlist_names_it() {
        let p = prefetcher(2);
        let playlist = |_: &str| Some(Bytes::from_static(PLAYLIST.as_bytes()));
        p.plan(
            "/vod/a/720p/index.m3u8",
            "h/vod/a/720p/index.m3u8",
            Viewer::default(),
            playlist,
            |_| false,
        );
        let client = Some(IpAddr::from([192, 0, 2, 1]));
        let asking = |next| Viewer {
            client,
            next: Some(next),
        };
        let plan = |p: &Prefetcher, next| {
            p.plan(
                "/vod/a/720p/seg_1.m4s",
                "h/vod/a/720p/seg_1.m4s",
                asking(next),
                playlist,
                |_| false,
            )
        };
        // Exactly the object named, not the next two, however it is spelled.
        assert_eq!(
            plan(&p, "../720p/./seg_3.m4s"),
            vec![Prefetch {
                key: "h/vod/a/720p/seg_3.m4s".into(),
                path: "/vod/a/720p/seg_3.m4s".into()
            }]
        );
        // Not in the playlist, elsewhere, or another host: nothing is fetched.
        for next in [
            "seg_9.m4s",
            "/etc/passwd",
            "../../secret.m4s",
            "http://other/seg_2.m4s",
            "//other/x",
        ] {
            assert!(plan(&p, next).is_empty(), "{next}");
        }
        // A client gets a burst, then its rate.
        let fresh = prefetcher(2);
        let lines: String = (0..20)
            .map(|n| format!("#EXTINF:2,\nseg_{n}.m4s\n"))
            .collect();
        let long = Bytes::from(format!("#EXTM3U\n{lines}"));
        fresh.plan(
            "/v/index.m3u8",
            "h/v/index.m3u8",
            Viewer::default(),
            |_| Some(long.clone()),
            |_| false,
        );
        let started = Instant::now();
        let issued = (1..20)
            .filter(|n| {
                let next = format!("seg_{n}.m4s");
                !fresh
                    .plan(
                        "/v/seg_0.m4s",
                        "h/v/seg_0.m4s",
                        Viewer {
                            client,
                            next: Some(&next),
                        },
                        |_| Some(long.clone()),
                        |_| false,
                    )
                    .is_empty()
            })
            .count();
        assert!(fresh.may_prefetch(Some(IpAddr::from([192, 0, 2, 99]))));
        // The burst, and what the rate refilled while the loop ran (nothing, unless this
        // machine stalled the test for half a second).
        let refilled = (started.elapsed().as_secs_f64() * CLIENT_RATE).floor() as usize;
        assert!(
            (CLIENT_BURST as usize..=CLIENT_BURST as usize + refilled).contains(&issued),
            "{issued} issued, {refilled} refilled"
        );
        // Spent: the next request reads no manifest (unless the rate refilled one meanwhile).
        let spent = fresh.may_prefetch(client);
        if started.elapsed() < Duration::from_millis(400) {
            assert!(!spent);
        }
    }

    #[test]
    fn a_next_object_resolves_against_the_request_path_and_never_above_the_root() {
        let at = "/vod/a/720p/seg_1.m4s";
        assert_eq!(
            resolve(at, "seg_2.m4s").as_deref(),
            Some("/vod/a/720p/seg_2.m4s")
        );
        assert_eq!(
            resolve(at, "../480p/./seg_2.m4s?t=1#x").as_deref(),
            Some("/vod/a/480p/seg_2.m4s?t=1")
        );
        assert_eq!(
            resolve(at, "/vod/b/seg_2.m4s").as_deref(),
            Some("/vod/b/seg_2.m4s")
        );
        assert_eq!(resolve(at, "../../../seg.m4s").as_deref(), Some("/seg.m4s"));
        for away in [
            "../../../../etc/passwd",
            "/../x",
            "http://other/x",
            "//other/x",
            "https://h/y",
        ] {
            assert_eq!(resolve(at, away), None, "{away}");
        }
    }

    #[test]
    fn a_request_for_a_playlist_does_not_displace_one_the_edge_holds() {
        let p = prefetcher(2);
        let stored = |key: &str| key == "h/vod/a/720p/index.m3u8";
        p.plan(
            "/vod/a/720p/index.m3u8",
            "h/vod/a/720p/index.m3u8",
            Viewer::default(),
            |_| None,
            stored,
        );
        // A 404 for another name in the folder: the held playlist stays the folder's.
        p.plan(
            "/vod/a/720p/junk.m3u8",
            "h/vod/a/720p/junk.m3u8",
            Viewer::default(),
            |_| None,
            stored,
        );
        assert_eq!(
            p.playlist_key("/vod/a/720p/seg_1.m4s", "h/vod/a/720p/seg_1.m4s")
                .as_deref(),
            Some("h/vod/a/720p/index.m3u8")
        );
        // Once it is gone, the next playlist asked for takes its place.
        p.plan(
            "/vod/a/720p/other.m3u8",
            "h/vod/a/720p/other.m3u8",
            Viewer::default(),
            |_| None,
            |_| false,
        );
        assert_eq!(
            p.playlist_key("/vod/a/720p/seg_1.m4s", "h/vod/a/720p/seg_1.m4s")
                .as_deref(),
            Some("h/vod/a/720p/other.m3u8")
        );
    }

    #[test]
    fn ipv6_clients_share_an_allowance_by_slash_64() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(bucket(Some(a)), bucket(Some(b)));
        assert_ne!(bucket(Some(a)), bucket(Some(c)));
        let v4 = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(bucket(Some(v4)), v4);
        assert_ne!(bucket(None), v4);
    }

    const MPD: &str = r#"<MPD type="static" mediaPresentationDuration="PT24S"><Period>
<AdaptationSet><SegmentTemplate timescale="1000" duration="2000" startNumber="0" media="$RepresentationID$/seg_$Number%05d$.m4s"/>
<Representation id="720p"/><Representation id="480p"/></AdaptationSet></Period></MPD>"#;

    #[test]
    fn dash_segments_are_prefetched_as_the_mpd_it_holds_numbers_them() {
        let p = prefetcher(2);
        let held = |mpd: &'static str| {
            move |key: &str| {
                assert_eq!(key, "h/vod/d/manifest.mpd");
                Some(Bytes::from_static(mpd.as_bytes()))
            }
        };
        p.plan(
            "/vod/d/manifest.mpd",
            "h/vod/d/manifest.mpd",
            Viewer::default(),
            held(MPD),
            |_| false,
        );
        let seg = |n: u32| format!("/vod/d/720p/seg_{n:05}.m4s");
        assert_eq!(
            p.playlist_key(&seg(3), &format!("h{}", seg(3))).as_deref(),
            Some("h/vod/d/manifest.mpd")
        );
        let plan = |p: &Prefetcher, n: u32, viewer: Viewer<'_>, mpd: &'static str| {
            p.plan(&seg(n), &format!("h{}", seg(n)), viewer, held(mpd), |_| {
                false
            })
            .into_iter()
            .map(|f| (f.key, f.path))
            .collect::<Vec<_>>()
        };
        assert_eq!(
            plan(&p, 3, Viewer::default(), MPD),
            [4, 5].map(|n| (format!("h{}", seg(n)), seg(n)))
        );
        // The last segment (24 s of 2 s from 0: number 11) has none after it.
        assert!(plan(&p, 11, Viewer::default(), MPD).is_empty());
        // A player's next object: exactly it, if the MPD names it.
        let fresh = prefetcher(2);
        fresh.plan(
            "/vod/d/manifest.mpd",
            "h/vod/d/manifest.mpd",
            Viewer::default(),
            held(MPD),
            |_| false,
        );
        let asking = |next| Viewer {
            client: None,
            next: Some(next),
        };
        assert_eq!(
            plan(&fresh, 3, asking("../480p/seg_00004.m4s"), MPD),
            [(
                "h/vod/d/480p/seg_00004.m4s".to_owned(),
                "/vod/d/480p/seg_00004.m4s".to_owned()
            )]
        );
        for next in [
            "seg_00099.m4s",
            "../1080p/seg_00004.m4s",
            "../../x/seg_00004.m4s",
        ] {
            assert!(plan(&fresh, 3, asking(next), MPD).is_empty(), "{next}");
        }
        // A live MPD: nothing run ahead to unless the player names it.
        let live = prefetcher(2);
        const LIVE: &str = r#"<MPD type="dynamic"><Period>
<AdaptationSet><SegmentTemplate duration="2" media="$RepresentationID$/seg_$Number%05d$.m4s"/>
<Representation id="720p"/></AdaptationSet></Period></MPD>"#;
        live.plan(
            "/vod/d/manifest.mpd",
            "h/vod/d/manifest.mpd",
            Viewer::default(),
            held(LIVE),
            |_| false,
        );
        assert!(plan(&live, 3, Viewer::default(), LIVE).is_empty());
        assert_eq!(plan(&live, 3, asking("seg_00004.m4s"), LIVE).len(), 1);
        // ...but not a number far ahead of the viewer's, nor one behind it.
        assert!(plan(&live, 3, asking("seg_09999.m4s"), LIVE).is_empty());
        assert!(plan(&live, 3, asking("seg_00002.m4s"), LIVE).is_empty());
    }
}
