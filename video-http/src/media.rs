//! What kind of object a path names, and its `Content-Type`.
//!
//! A video CDN treats playlists and segments differently (playlists are short-lived or
//! revalidated, segments immutable), so the kind is decided in one place from the file extension.

/// The kinds of object a video CDN moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// HLS playlists (`.m3u8`) and DASH manifests (`.mpd`).
    Playlist,
    /// Media segments and initialisation segments (`.m4s`, `.mp4`, `.ts`, `.aac`, …).
    Segment,
    /// Subtitles (`.vtt`).
    Subtitle,
    /// Anything else (pages, images, keys).
    Other,
}

impl MediaKind {
    /// A short, bounded label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            MediaKind::Playlist => "playlist",
            MediaKind::Segment => "segment",
            MediaKind::Subtitle => "subtitle",
            MediaKind::Other => "other",
        }
    }
}

/// Kind and `Content-Type` of a path, from its extension (case-insensitive).
pub fn classify(path: &str) -> (MediaKind, &'static str) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "m3u8" => (MediaKind::Playlist, "application/vnd.apple.mpegurl"),
        "mpd" => (MediaKind::Playlist, "application/dash+xml"),
        "m4s" => (MediaKind::Segment, "video/iso.segment"),
        "mp4" | "m4v" => (MediaKind::Segment, "video/mp4"),
        "m4a" => (MediaKind::Segment, "audio/mp4"),
        "ts" => (MediaKind::Segment, "video/mp2t"),
        "aac" => (MediaKind::Segment, "audio/aac"),
        "vtt" => (MediaKind::Subtitle, "text/vtt; charset=utf-8"),
        "html" | "htm" => (MediaKind::Other, "text/html; charset=utf-8"),
        "js" | "mjs" => (MediaKind::Other, "text/javascript; charset=utf-8"),
        "css" => (MediaKind::Other, "text/css; charset=utf-8"),
        "json" => (MediaKind::Other, "application/json"),
        "png" => (MediaKind::Other, "image/png"),
        "svg" => (MediaKind::Other, "image/svg+xml"),
        "key" => (MediaKind::Other, "application/octet-stream"),
        _ => (MediaKind::Other, "application/octet-stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_types() {
        assert_eq!(
            classify("/vod/a/master.m3u8"),
            (MediaKind::Playlist, "application/vnd.apple.mpegurl")
        );
        assert_eq!(classify("/vod/a/manifest.MPD").1, "application/dash+xml");
        assert_eq!(classify("/vod/a/720p/seg_00001.m4s").0, MediaKind::Segment);
        assert_eq!(classify("/vod/a/720p/init.mp4").1, "video/mp4");
        assert_eq!(classify("/x/seg.ts").1, "video/mp2t");
        assert_eq!(classify("/x/subs.vtt").0, MediaKind::Subtitle);
        assert_eq!(classify("/x/noext").0, MediaKind::Other);
        assert_eq!(classify("/dir.m3u8/noext").0, MediaKind::Other);
    }
}
