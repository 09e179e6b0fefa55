//! The origin's request handler: method and path checks, routing between files and live
//! channels, CORS, metrics and one tracing span per request.
//!
//! URL layout (below the media root):
//! - `/vod/<title>/...`: files as they are (master and media playlists, MPD, init and segments).
//! - `/live/<title>/<rendition>/index.m3u8`: a live playlist looping the VOD rendition.
//! - `/live/<title>/<rendition>/live_<k>.m4s`: live segment `k`, the VOD segment it repeats.
//! - `/live/<title>/<anything else>`: the VOD file of the same name (master playlist, init
//!   segments), so relative URIs in the VOD master work unchanged for live.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use server_kit::{Body, body};
use tracing::Instrument;
use video_http::manifest::{dash_steering, hls_steering, steering_uri};
use video_http::media::{self, MediaKind};

use crate::Error;
use crate::config::{LiveConfig, OriginConfig};
use crate::live;
use crate::live_dash;
use crate::metrics::Metrics;
use crate::mp4;
use crate::paths::{self, PathError};
use crate::respond::{self, Representation};

const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";
const VOD_PLAYLIST_CACHE: &str = "public, max-age=86400";
const OTHER_CACHE: &str = "public, max-age=300";

/// The origin's shared state: where the media is and how live channels run.
#[derive(Debug)]
pub struct Origin {
    root: PathBuf,
    live: LiveConfig,
    steering_hls: Option<String>,
    steering_dash: Option<String>,
    /// Parsed VOD playlists for live channels, by path, with the file's modification time.
    parsed: Mutex<HashMap<PathBuf, (SystemTime, Arc<live::VodPlaylist>)>>,
    metrics: Metrics,
    started: Instant,
}

/// A refusal or failure, before any representation was found.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl From<PathError> for Refusal {
    fn from(error: PathError) -> Self {
        Refusal {
            status: error.status(),
            message: error.to_string(),
        }
    }
}

impl Origin {
    /// Opens the media root (it must exist) and keeps its canonical path, against which every
    /// resolved file is checked.
    pub fn new(config: &OriginConfig, metrics: Metrics) -> Result<Self, Error> {
        let root = std::fs::canonicalize(&config.media).map_err(|e| {
            Error::Config(format!(
                "media: cannot open {}: {e}",
                config.media.display()
            ))
        })?;
        Ok(Self {
            root,
            live: config.live.clone(),
            steering_hls: config.steering_hls.clone(),
            steering_dash: config.steering_dash.clone(),
            parsed: Mutex::new(HashMap::new()),
            metrics,
            started: Instant::now(),
        })
    }

    /// The canonical media root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answers one media request.
    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), %peer);
        async move {
            self.metrics.in_flight().inc();
            let (mut response, kind) = self.answer(&request).await;
            self.metrics.in_flight().dec();
            self.metrics.request_done(response.status(), kind);
            server_kit::cors::allow_any_origin(response.headers_mut());
            let status = response.status();
            if status.is_server_error() {
                tracing::error!(%status, "request failed");
            } else {
                tracing::debug!(%status, "answered");
            }
            response
        }
        .instrument(span)
        .await
    }

    async fn answer(&self, request: &Request<Incoming>) -> (Response<Body>, MediaKind) {
        let method = request.method();
        if method == Method::OPTIONS {
            return (server_kit::cors::preflight(), MediaKind::Other);
        }
        if method != Method::GET && method != Method::HEAD {
            let mut response = body::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the origin serves GET and HEAD",
            );
            response.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            return (response, MediaKind::Other);
        }
        let (kind, _) = media::classify(request.uri().path());
        let edge = request
            .headers()
            .get(video_http::EDGE_NAME_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|name| topology::valid_edge_name(name));
        match self.representation(request.uri().path(), edge).await {
            Ok(rep) => {
                let kind = rep.kind;
                (
                    respond::respond(method, request.headers(), rep, &self.metrics).await,
                    kind,
                )
            }
            Err(refusal) => (body::text(refusal.status, refusal.message), kind),
        }
    }

    async fn representation(
        &self,
        raw_path: &str,
        edge: Option<&str>,
    ) -> Result<Representation, Refusal> {
        let segments = paths::segments(raw_path)?;
        match segments.as_slice() {
            [live, title, rendition, name] if live == "live" => {
                if name == "index.m3u8" {
                    return self.live_playlist(title, rendition).await;
                }
                if let Some(k) = live::parse_segment_name(name) {
                    return self.live_segment(title, rendition, k).await;
                }
                if let Some(k) = live_dash::parse_segment_name(name) {
                    return self.live_dash_segment(title, rendition, k).await;
                }
                self.file(&vod_path(title, &[rendition, name]), edge).await
            }
            [live, title, name] if live == "live" && name == "manifest.mpd" => {
                self.live_mpd(title, edge).await
            }
            [live, title, rest @ ..] if live == "live" && !rest.is_empty() => {
                let rest: Vec<&String> = rest.iter().collect();
                self.file(&vod_path(title, &rest), edge).await
            }
            _ => self.file(&segments, edge).await,
        }
    }

    async fn file(
        &self,
        segments: &[String],
        edge: Option<&str>,
    ) -> Result<Representation, Refusal> {
        let path = paths::resolve(&self.root, segments).await?;
        let (kind, content_type) = media::classify(&segments.join("/"));
        if kind == MediaKind::Playlist {
            let extension = path.extension().and_then(|e| e.to_str());
            if let (Some("m3u8"), Some(server)) = (extension, &self.steering_hls) {
                let server = steering_uri(server, edge);
                return steered(&path, content_type, |text| hls_steering(text, &server)).await;
            }
            if let (Some("mpd"), Some(server)) = (extension, &self.steering_dash) {
                let server = steering_uri(server, edge);
                return steered(&path, content_type, |text| dash_steering(text, &server)).await;
            }
        }
        let cache_control = match kind {
            MediaKind::Segment => SEGMENT_CACHE,
            MediaKind::Playlist | MediaKind::Subtitle => VOD_PLAYLIST_CACHE,
            MediaKind::Other => OTHER_CACHE,
        };
        Representation::file(&path, kind, content_type, cache_control.to_owned())
            .await
            .map_err(|error| {
                tracing::error!(%error, path = %path.display(), "internal: cannot open media file");
                Refusal {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "internal: cannot open the media file".into(),
                }
            })
    }

    async fn vod_playlist(
        &self,
        title: &str,
        rendition: &str,
    ) -> Result<Arc<live::VodPlaylist>, Refusal> {
        let path = paths::resolve(&self.root, &vod_path(title, &[rendition, "index.m3u8"])).await?;
        // Every live playlist and live segment request needs the parsed VOD playlist: keep it,
        // keyed by path and modification time, so a changed file is read again.
        let modified = tokio::fs::metadata(&path)
            .await
            .and_then(|m| m.modified())
            .ok();
        if let Some((at, parsed)) = self
            .parsed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&path)
            && Some(*at) == modified
        {
            return Ok(parsed.clone());
        }
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|_| Refusal::from(PathError::NotFound))?;
        let parsed = Arc::new(live::parse_vod(&text).map_err(|error| {
            tracing::error!(%error, path = %path.display(), "internal: VOD playlist cannot be looped");
            Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("internal: the VOD playlist cannot be looped: {error}"),
            }
        })?);
        if let Some(at) = modified {
            self.parsed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(path, (at, parsed.clone()));
        }
        Ok(parsed)
    }

    fn interval(&self, vod: &live::VodPlaylist) -> Duration {
        self.live
            .segment_interval
            .unwrap_or(Duration::from_secs(vod.target_duration.max(1)))
    }

    async fn live_playlist(&self, title: &str, rendition: &str) -> Result<Representation, Refusal> {
        let vod = self.vod_playlist(title, rendition).await?;
        let interval = self.interval(&vod);
        let elapsed = since_epoch();
        let completed = live::completed_segments(elapsed, interval);
        let text = live::playlist(&vod, completed, self.live.window).ok_or(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the live channel has no segment yet".into(),
        })?;
        // Clients should come back about twice per segment: half an interval, in whole seconds.
        let cache_control = format!("public, max-age={}", interval.as_secs() / 2);
        let changed =
            SystemTime::UNIX_EPOCH + interval.saturating_mul(completed.min(u32::MAX as u64) as u32);
        Ok(Representation::memory(
            Bytes::from(text),
            MediaKind::Playlist,
            "application/vnd.apple.mpegurl",
            cache_control,
            changed,
        ))
    }

    /// The live channel's dynamic MPD, from the title's VOD MPD. Its timeline follows the live
    /// interval, as the HLS playlists do.
    async fn live_mpd(&self, title: &str, edge: Option<&str>) -> Result<Representation, Refusal> {
        let path = paths::resolve(&self.root, &vod_path(title, &["manifest.mpd"])).await?;
        let internal = |message: String| {
            tracing::error!(path = %path.display(), %message, "internal: cannot make a live MPD");
            Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("internal: cannot make a live MPD: {message}"),
            }
        };
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| internal(e.to_string()))?;
        let vod = live_dash::VodMpd::parse(&text).map_err(|e| internal(e.to_string()))?;
        // The channel advances as the HLS one does (the first representation's playlist says how
        // long a segment is, unless the config sets the interval).
        let mut interval = vod.segment_duration;
        if let Some(id) = vod.representations.first() {
            interval = self.interval(&*self.vod_playlist(title, id).await?);
        }
        let elapsed = since_epoch();
        let completed = live::completed_segments(elapsed, interval);
        let mut text = live_dash::mpd(
            &vod,
            completed,
            self.live.window,
            interval,
            SystemTime::now(),
        )
        .ok_or(Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the live channel has no segment yet".into(),
        })?;
        if let Some(server) = &self.steering_dash {
            text = dash_steering(text, &steering_uri(server, edge));
        }
        let changed =
            SystemTime::UNIX_EPOCH + interval.saturating_mul(completed.min(u32::MAX as u64) as u32);
        Ok(Representation::memory(
            Bytes::from(text),
            MediaKind::Playlist,
            "application/dash+xml",
            format!("public, max-age={}", interval.as_secs() / 2),
            changed,
        ))
    }

    /// Live DASH segment `k`: live segment `k` with its decode times `k div N` loops later, so
    /// the channel is one continuous timeline (see `live_dash`). The loop lasts as long as the
    /// rendition's VOD playlist says, to the millisecond.
    async fn live_dash_segment(
        &self,
        title: &str,
        rendition: &str,
        k: u64,
    ) -> Result<Representation, Refusal> {
        let vod = self.vod_playlist(title, rendition).await?;
        let segment = self.live_segment_for(&vod, title, rendition, k).await?;
        let n = vod.segments.len() as u64;
        let loop_ms: f64 = vod
            .segments
            .iter()
            .map(|s| s.duration.parse::<f64>().unwrap_or(0.0))
            .sum::<f64>()
            * 1000.0;
        let by = Duration::from_millis(loop_ms.round() as u64).saturating_mul((k / n) as u32);
        let dir = vod_path(title, &[rendition]);
        let internal = |message: String| {
            tracing::error!(title, rendition, k, %message, "internal: cannot make a live DASH segment");
            Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("internal: cannot make live DASH segment {k}: {message}"),
            }
        };
        let init_uri = vod
            .map_uri
            .as_deref()
            .ok_or_else(|| internal("the VOD playlist has no EXT-X-MAP".into()))?;
        let mut init_parts = dir.clone();
        init_parts.extend(init_uri.split('/').map(str::to_owned));
        let init_path = paths::resolve(&self.root, &init_parts).await?;
        let init = tokio::fs::read(&init_path)
            .await
            .map_err(|e| internal(e.to_string()))?;
        let timescale = mp4::timescale(&init).map_err(|e| internal(e.to_string()))?;
        let mut parts = dir;
        parts.extend(segment.split('/').map(str::to_owned));
        let path = paths::resolve(&self.root, &parts).await?;
        let mut bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| internal(e.to_string()))?;
        mp4::shift(&mut bytes, by, timescale).map_err(|e| internal(e.to_string()))?;
        let modified = tokio::fs::metadata(&path)
            .await
            .and_then(|m| m.modified())
            .map_err(|e| internal(e.to_string()))?;
        let (kind, content_type) = media::classify(&path.to_string_lossy());
        Ok(Representation::memory(
            Bytes::from(bytes),
            kind,
            content_type,
            SEGMENT_CACHE.to_owned(),
            modified,
        ))
    }

    /// The VOD segment URI (relative to the rendition) that live segment `k` repeats, once it
    /// exists.
    async fn live_segment_for(
        &self,
        vod: &live::VodPlaylist,
        title: &str,
        rendition: &str,
        k: u64,
    ) -> Result<String, Refusal> {
        // A live origin cannot serve the future: a player that asks early gets a 404 that no
        // cache keeps, as from a real packager.
        let elapsed = since_epoch();
        if k >= live::completed_segments(elapsed, self.interval(vod)) {
            tracing::debug!(title, rendition, k, "live segment asked for early");
            return Err(Refusal {
                status: StatusCode::NOT_FOUND,
                message: format!("live segment {k} is not available yet"),
            });
        }
        Ok(live::vod_segment(vod, k).uri.clone())
    }

    async fn live_segment(
        &self,
        title: &str,
        rendition: &str,
        k: u64,
    ) -> Result<Representation, Refusal> {
        let vod = self.vod_playlist(title, rendition).await?;
        let uri = self.live_segment_for(&vod, title, rendition, k).await?;
        let mut parts = vec![rendition];
        parts.extend(uri.split('/'));
        self.file(&vod_path(title, &parts), None).await
    }

    /// The JSON for `/status`.
    pub fn status(&self, draining: bool) -> serde_json::Value {
        let mut titles: Vec<String> = std::fs::read_dir(self.root.join("vod"))
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        titles.sort();
        serde_json::json!({
            "service": "origin",
            "media_root": self.root.display().to_string(),
            "titles": titles,
            "live_window": self.live.window,
            "requests_in_flight": self.metrics.in_flight().get(),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "draining": draining,
        })
    }
}

/// The live clock: time since the Unix epoch (live channels count segments from it).
fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

fn vod_path<S: AsRef<str>>(title: &str, rest: &[S]) -> Vec<String> {
    let mut path = vec!["vod".to_owned(), title.to_owned()];
    path.extend(rest.iter().map(|s| s.as_ref().to_owned()));
    path
}

/// A playlist or MPD read whole and rewritten by `steer` (content steering added), served from
/// memory with the file's modification time.
async fn steered(
    path: &Path,
    content_type: &'static str,
    steer: impl FnOnce(String) -> String,
) -> Result<Representation, Refusal> {
    let internal = |error: std::io::Error| {
        tracing::error!(%error, path = %path.display(), "internal: cannot read playlist");
        Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal: cannot read the playlist".into(),
        }
    };
    let text = tokio::fs::read_to_string(path).await.map_err(internal)?;
    let modified = tokio::fs::metadata(path)
        .await
        .and_then(|m| m.modified())
        .map_err(internal)?;
    Ok(Representation::memory(
        Bytes::from(steer(text)),
        MediaKind::Playlist,
        content_type,
        VOD_PLAYLIST_CACHE.to_owned(),
        modified,
    ))
}
