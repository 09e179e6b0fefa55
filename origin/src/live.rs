//! Simulated live channels, built by looping VOD renditions.
//!
//! A live channel is a clock plus a VOD media playlist: live segment `k` is VOD segment
//! `k mod N`. The clock counts whole segment intervals since the Unix epoch, so the channel does
//! not restart when the origin does, and two origins agree on what is live. The playlist lists
//! the newest `window` segments, marks each loop point with `#EXT-X-DISCONTINUITY` (the media
//! timestamps restart there), and keeps `#EXT-X-DISCONTINUITY-SEQUENCE` consistent as those
//! marks slide out of the window (RFC 8216 §6.2.2).
//!
//! Everything here is pure: the caller passes the time, so tests control it.

use std::fmt::Write;
use std::time::Duration;

/// One segment of a VOD media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct VodSegment {
    /// The `#EXTINF` duration as written (kept as text so the live playlist repeats it exactly).
    pub duration: String,
    pub uri: String,
}

/// The parts of a VOD media playlist a live channel needs.
#[derive(Debug, Clone, PartialEq)]
pub struct VodPlaylist {
    pub version: u32,
    pub target_duration: u64,
    /// `#EXT-X-MAP` URI (the fMP4 initialisation segment), if any.
    pub map_uri: Option<String>,
    pub segments: Vec<VodSegment>,
}

/// Why a VOD playlist cannot be looped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not an HLS playlist (no #EXTM3U)")]
    NotM3u8,
    #[error("no #EXT-X-TARGETDURATION")]
    NoTargetDuration,
    #[error("no segments")]
    NoSegments,
    #[error("line {0}: {1}")]
    Line(usize, &'static str),
}

/// Parses a VOD media playlist (the subset our packager and common packagers write).
pub fn parse_vod(text: &str) -> Result<VodPlaylist, ParseError> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    match lines.next() {
        Some((_, "#EXTM3U")) => {}
        _ => return Err(ParseError::NotM3u8),
    }
    let mut version = 3;
    let mut target = None;
    let mut map_uri = None;
    let mut pending: Option<String> = None;
    let mut segments = Vec::new();
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            version = v
                .parse()
                .map_err(|_| ParseError::Line(n, "bad EXT-X-VERSION"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = Some(
                v.parse()
                    .map_err(|_| ParseError::Line(n, "bad EXT-X-TARGETDURATION"))?,
            );
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            map_uri = Some(
                quoted_attr(attrs, "URI").ok_or(ParseError::Line(n, "EXT-X-MAP without URI"))?,
            );
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let duration = v.split(',').next().unwrap_or("").trim();
            if duration.parse::<f64>().map(|d| d.is_finite() && d >= 0.0) != Ok(true) {
                return Err(ParseError::Line(n, "bad EXTINF duration"));
            }
            pending = Some(duration.to_owned());
        } else if line.starts_with('#') {
            continue;
        } else {
            let duration = pending
                .take()
                .ok_or(ParseError::Line(n, "segment URI without EXTINF"))?;
            segments.push(VodSegment {
                duration,
                uri: line.to_owned(),
            });
        }
    }
    let target_duration = target.ok_or(ParseError::NoTargetDuration)?;
    if segments.is_empty() {
        return Err(ParseError::NoSegments);
    }
    Ok(VodPlaylist {
        version,
        target_duration,
        map_uri,
        segments,
    })
}

fn quoted_attr(attrs: &str, name: &str) -> Option<String> {
    let start = attrs.find(&format!("{name}=\""))? + name.len() + 2;
    let end = attrs[start..].find('"')? + start;
    Some(attrs[start..end].to_owned())
}

/// How many live segments have been completed `elapsed` after the epoch.
pub fn completed_segments(elapsed: Duration, interval: Duration) -> u64 {
    (elapsed.as_nanos() / interval.as_nanos().max(1)) as u64
}

/// The URI of live segment `k` in a live playlist (relative to the playlist).
pub fn segment_uri(k: u64) -> String {
    format!("live_{k}.m4s")
}

/// The live sequence number named by a live segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("live_")?.strip_suffix(".m4s")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The VOD segment that live segment `k` repeats.
pub fn vod_segment(vod: &VodPlaylist, k: u64) -> &VodSegment {
    &vod.segments[(k % vod.segments.len() as u64) as usize]
}

/// The live playlist once `completed` segments exist, listing the newest `window` of them.
/// Returns `None` before the first segment is complete.
pub fn playlist(vod: &VodPlaylist, completed: u64, window: usize) -> Option<String> {
    let last = completed.checked_sub(1)?;
    let first = completed.saturating_sub(window as u64);
    let n = vod.segments.len() as u64;
    // Loop points (segments k = N, 2N, …) carry a discontinuity; the sequence counts those that
    // came before the window's first segment.
    let discontinuity_sequence = if first == 0 { 0 } else { (first - 1) / n };
    let mut out = String::with_capacity(64 * (window + 6));
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}\n",
        vod.version.max(6),
        vod.target_duration,
    );
    if let Some(map) = &vod.map_uri {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{map}\"");
    }
    for k in first..=last {
        if k > 0 && k % n == 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = write!(
            out,
            "#EXTINF:{},\n{}\n",
            vod_segment(vod, k).duration,
            segment_uri(k)
        );
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOD: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.000000,\nseg_00000.m4s\n\
#EXTINF:2.000000,\nseg_00001.m4s\n#EXTINF:1.960000,\nseg_00002.m4s\n#EXT-X-ENDLIST\n";

    fn vod() -> VodPlaylist {
        parse_vod(VOD).expect("valid VOD playlist")
    }

    fn tag_value(playlist: &str, tag: &str) -> u64 {
        playlist
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .and_then(|v| v.parse().ok())
            .expect(tag)
    }

    #[test]
    fn parses_our_packager_output() {
        let vod = vod();
        assert_eq!(vod.target_duration, 2);
        assert_eq!(vod.map_uri.as_deref(), Some("init.mp4"));
        assert_eq!(vod.segments.len(), 3);
        assert_eq!(vod.segments[2].duration, "1.960000");
    }

    #[test]
    fn rejects_what_it_cannot_loop() {
        assert_eq!(parse_vod("hello"), Err(ParseError::NotM3u8));
        assert_eq!(
            parse_vod("#EXTM3U\n#EXTINF:2,\na.m4s\n"),
            Err(ParseError::NoTargetDuration)
        );
        assert_eq!(
            parse_vod("#EXTM3U\n#EXT-X-TARGETDURATION:2\n"),
            Err(ParseError::NoSegments)
        );
        assert!(matches!(
            parse_vod("#EXTM3U\n#EXT-X-TARGETDURATION:2\na.m4s\n"),
            Err(ParseError::Line(3, _))
        ));
    }

    #[test]
    fn window_slides_one_segment_per_interval() {
        let interval = Duration::from_secs(2);
        assert_eq!(completed_segments(Duration::from_millis(1999), interval), 0);
        assert_eq!(completed_segments(Duration::from_secs(2), interval), 1);
        assert!(playlist(&vod(), 0, 6).is_none());
        let early = playlist(&vod(), 2, 6).expect("two segments exist");
        assert_eq!(tag_value(&early, "#EXT-X-MEDIA-SEQUENCE:"), 0);
        assert_eq!(early.matches("#EXTINF").count(), 2);
        let later = playlist(&vod(), 10, 6).expect("ten segments exist");
        assert_eq!(tag_value(&later, "#EXT-X-MEDIA-SEQUENCE:"), 4);
        assert_eq!(later.matches("#EXTINF").count(), 6);
        assert!(later.contains("live_9.m4s") && !later.contains("live_10.m4s"));
        assert!(!later.contains("#EXT-X-ENDLIST"));
    }

    #[test]
    fn loop_points_are_discontinuities_with_a_consistent_sequence() {
        let vod = vod();
        // Window 4..=6 with N = 3: a discontinuity before 6, none before the first segment.
        let p = playlist(&vod, 7, 3).expect("segments exist");
        assert_eq!(p.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
        assert_eq!(tag_value(&p, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 1);
        // The discontinuity before 6 is at the top of window 6..=8: it is still listed, and
        // the sequence has not counted it yet.
        let p = playlist(&vod, 9, 3).expect("segments exist");
        assert!(p.contains("#EXT-X-DISCONTINUITY\n#EXTINF:2.000000,\nlive_6.m4s"));
        assert_eq!(tag_value(&p, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 1);
        // Once it slides out, the sequence counts it.
        let p = playlist(&vod, 10, 3).expect("segments exist");
        assert_eq!(tag_value(&p, "#EXT-X-DISCONTINUITY-SEQUENCE:"), 2);
    }

    #[test]
    fn discontinuity_number_of_each_segment_never_changes() {
        // A segment's discontinuity number (sequence + tags before it in the playlist) must be
        // the same in every playlist that lists it.
        let vod = vod();
        let mut seen = std::collections::HashMap::new();
        for completed in 1..40 {
            let p = playlist(&vod, completed, 4).expect("segments exist");
            let mut number = tag_value(&p, "#EXT-X-DISCONTINUITY-SEQUENCE:");
            for line in p.lines() {
                if line == "#EXT-X-DISCONTINUITY" {
                    number += 1;
                } else if let Some(k) = parse_segment_name(line) {
                    assert_eq!(*seen.entry(k).or_insert(number), number, "segment {k}");
                }
            }
        }
    }

    #[test]
    fn live_segments_map_onto_the_loop() {
        let vod = vod();
        assert_eq!(vod_segment(&vod, 0).uri, "seg_00000.m4s");
        assert_eq!(vod_segment(&vod, 7).uri, "seg_00001.m4s");
        assert_eq!(parse_segment_name("live_42.m4s"), Some(42));
        assert_eq!(parse_segment_name("live_.m4s"), None);
        assert_eq!(parse_segment_name("live_-1.m4s"), None);
        assert_eq!(parse_segment_name("seg_00001.m4s"), None);
    }
}
