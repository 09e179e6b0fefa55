//! The manifests this edge rewrites on their way out: HLS playlists and DASH MPDs get the
//! content steering tags (naming this edge as the player's first pathway), and absolute URLs
//! that point at an origin become paths on the CDN, so that a plain packager behind the edge
//! gets the same handover as Meridian's own origin. The store keeps the origin's bytes; the
//! rewrite is made per response, from them.
//!
//! A rewritten response gets its own length and its own `ETag` (the origin's, marked with a
//! hash of the rewritten bytes), so the viewer's conditionals and ranges are answered against
//! what the viewer gets.

use std::hash::{Hash, Hasher};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use video_http::manifest::{self, Manifest};

use crate::config::EdgeConfig;

/// Larger manifests pass unchanged (a whole MPD is read into memory to be rewritten).
pub const MAX_REWRITTEN: u64 = 16 << 20;

/// What this edge writes into the manifests it serves.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    /// Steering server URIs, this edge's name already in them.
    steering_hls: Option<String>,
    steering_dash: Option<String>,
    /// Origin base URLs whose absolute URLs become CDN paths (empty: none are rewritten).
    origins: Vec<String>,
}

impl Manifests {
    pub fn new(config: &EdgeConfig) -> Self {
        let name = Some(config.name.as_str());
        let origins = if config.rewrite_origin_urls {
            config.origin_url_bases()
        } else {
            Vec::new()
        };
        Self {
            steering_hls: config
                .steering_hls
                .as_deref()
                .map(|s| manifest::steering_uri(s, name)),
            steering_dash: config
                .steering_dash
                .as_deref()
                .map(|s| manifest::steering_uri(s, name)),
            origins,
        }
    }

    /// A stored HLS media playlist with the origin's absolute URLs made CDN paths (no steering):
    /// what prefetch plans from, so it finds the segments a viewer will ask this edge for.
    pub fn with_cdn_paths(&self, playlist: Bytes) -> Bytes {
        if self.origins.is_empty() {
            return playlist;
        }
        let Ok(text) = std::str::from_utf8(&playlist) else {
            return playlist;
        };
        if !text.contains("://") {
            return playlist;
        }
        let out = manifest::rewrite_origin_urls(Manifest::Hls, text, &self.origins, "", None);
        if out == text {
            playlist
        } else {
            Bytes::from(out)
        }
    }

    /// Could a response for `path` be rewritten (before its type is known)?
    pub fn may_rewrite(&self, path: &str) -> bool {
        self.is_active() && Manifest::of(path, None).is_some()
    }

    fn is_active(&self) -> bool {
        self.steering_hls.is_some() || self.steering_dash.is_some() || !self.origins.is_empty()
    }

    /// The format of a response this edge would rewrite: a 200 whose body is a manifest, not
    /// content-coded (a compressed manifest passes unchanged), no larger than
    /// [`MAX_REWRITTEN`].
    pub fn applies(
        &self,
        path: &str,
        status: StatusCode,
        headers: &HeaderMap,
        len: Option<u64>,
    ) -> Option<Manifest> {
        if status != StatusCode::OK || len.is_some_and(|l| l > MAX_REWRITTEN) {
            return None;
        }
        if headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
        {
            return None;
        }
        let kind = Manifest::of(
            path,
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        )?;
        let active = match kind {
            Manifest::Hls => self.steering_hls.is_some(),
            Manifest::Dash => self.steering_dash.is_some(),
        } || !self.origins.is_empty();
        active.then_some(kind)
    }

    /// The body as this edge serves it, with `headers` updated to match; `None` when nothing
    /// changes (or the body is not UTF-8 text), and the origin's bytes go out as they are.
    /// `host` is the `Host` the viewer asked, for the URLs a player fetches as written;
    /// `signed` the `/t/<token>` it asked with and the prefix that token opens, for the paths
    /// made of origin URLs.
    pub fn rewrite(
        &self,
        kind: Manifest,
        body: &[u8],
        host: Option<&str>,
        signed: Option<(&str, &str)>,
        headers: &mut HeaderMap,
    ) -> Option<Bytes> {
        let text = std::str::from_utf8(body).ok()?;
        let mut out = if self.origins.is_empty() {
            text.to_owned()
        } else {
            let viewer_base = host.map(|h| format!("//{h}")).unwrap_or_default();
            manifest::rewrite_origin_urls(kind, text, &self.origins, &viewer_base, signed)
        };
        out = match (kind, &self.steering_hls, &self.steering_dash) {
            (Manifest::Hls, Some(server), _) => manifest::hls_steering(out, server),
            (Manifest::Dash, _, Some(server)) => manifest::dash_steering(out, server),
            _ => out,
        };
        if out.as_bytes() == body {
            return None;
        }
        if let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok()) {
            match marked_etag(etag, &out) {
                Some(marked) => headers.insert(header::ETAG, marked),
                None => headers.remove(header::ETAG),
            };
        }
        Some(Bytes::from(out))
    }
}

/// The origin's entity tag with a hash of the rewritten bytes inside its quotes: a validator
/// of what the viewer got, weak if the origin's was.
fn marked_etag(etag: &str, body: &str) -> Option<HeaderValue> {
    let (weak, opaque) = match etag.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", etag),
    };
    let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
    let mut hasher = std::hash::DefaultHasher::new();
    body.hash(&mut hasher);
    HeaderValue::from_str(&format!("{weak}\"{inner}-m{:016x}\"", hasher.finish())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests(rewrite: bool) -> Manifests {
        Manifests::new(&EdgeConfig {
            name: "eu-west-1".into(),
            origins: vec!["http://origin:8080".into()],
            steering_hls: Some("http://router/steer/hls".into()),
            steering_dash: Some("http://router/steer/dash".into()),
            rewrite_origin_urls: rewrite,
            ..EdgeConfig::default()
        })
    }

    #[test]
    fn a_multivariant_playlist_gets_steering_naming_this_edge() {
        let m = manifests(true);
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, HeaderValue::from_static("\"abc\""));
        let kind = m
            .applies("/live/x/master.m3u8", StatusCode::OK, &headers, Some(10))
            .expect("a playlist");
        let body = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttp://origin:8080/live/x/a.m3u8\n";
        let out = m
            .rewrite(kind, body, Some("e:1"), None, &mut headers)
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://router/steer/hls?edge=eu-west-1\",PATHWAY-ID=\".\"\n#EXT-X-STREAM-INF:BANDWIDTH=1\n/live/x/a.m3u8\n"
        );
        let etag = headers[header::ETAG].to_str().unwrap();
        assert!(etag.starts_with("\"abc-m") && etag.ends_with('"'), "{etag}");
    }

    #[test]
    fn unchanged_bodies_and_other_responses_pass_as_they_are() {
        let m = manifests(true);
        let mut headers = HeaderMap::new();
        headers.insert(header::ETAG, HeaderValue::from_static("W/\"abc\""));
        let media = b"#EXTM3U\n#EXTINF:2,\nseg.m4s\n";
        assert!(
            m.rewrite(Manifest::Hls, media, None, None, &mut headers)
                .is_none()
        );
        assert_eq!(headers[header::ETAG], "W/\"abc\"");
        assert!(
            m.applies("/a.m3u8", StatusCode::NOT_FOUND, &headers, None)
                .is_none()
        );
        assert!(
            m.applies("/seg.m4s", StatusCode::OK, &headers, None)
                .is_none()
        );
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(
            m.applies("/a.m3u8", StatusCode::OK, &headers, None)
                .is_none()
        );
        assert!(
            Manifests::default()
                .applies("/a.m3u8", StatusCode::OK, &HeaderMap::new(), None)
                .is_none()
        );
    }

    #[test]
    fn urls_stay_absolute_when_the_operator_says_so() {
        let m = manifests(false);
        let body = b"#EXTM3U\n#EXTINF:2,\nhttp://origin:8080/seg.m4s\n";
        assert!(
            m.rewrite(Manifest::Hls, body, None, None, &mut HeaderMap::new())
                .is_none()
        );
    }
}
