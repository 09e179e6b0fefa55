//! Rewriting HLS playlists and DASH MPDs on their way to a player: content steering added,
//! and absolute URLs that point at an origin turned into paths on the CDN. The origin (when it
//! writes steering itself) and the edge (in front of any origin) both use these.
//!
//! The rewrites are textual and leave everything else byte for byte: a manifest the player
//! could read before, it can read after.

/// The two manifest formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manifest {
    /// An HLS playlist (multivariant or media).
    Hls,
    /// A DASH MPD.
    Dash,
}

impl Manifest {
    /// The format of a response, from its `Content-Type`, or from the path's extension when the
    /// type says nothing (static file servers send `.mpd` as `application/octet-stream`).
    pub fn of(path: &str, content_type: Option<&str>) -> Option<Self> {
        let mime = content_type
            .and_then(|t| t.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        let is = |names: &[&str]| names.iter().any(|n| mime.eq_ignore_ascii_case(n));
        if is(&[
            "application/vnd.apple.mpegurl",
            "application/x-mpegurl",
            "audio/mpegurl",
            "audio/x-mpegurl",
        ]) {
            return Some(Self::Hls);
        }
        if is(&["application/dash+xml"]) {
            return Some(Self::Dash);
        }
        if !is(&[
            "",
            "application/octet-stream",
            "text/plain",
            "binary/octet-stream",
        ]) {
            return None;
        }
        let path = path.split(['?', '#']).next().unwrap_or(path);
        match crate::media::classify(path) {
            (crate::media::MediaKind::Playlist, "application/dash+xml") => Some(Self::Dash),
            (crate::media::MediaKind::Playlist, _) => Some(Self::Hls),
            _ => None,
        }
    }
}

/// The steering server's URI for a manifest served by `edge`: with `edge=<name>`, the steering
/// server knows which edge the player's first pathway (`.`, the host it fetched the manifest
/// from) is, so it can keep the player there instead of switching pathway as playback starts
/// (an hls.js pathway switch before the first fragment is buffered sometimes never recovers).
pub fn steering_uri(server: &str, edge: Option<&str>) -> String {
    match edge {
        Some(edge) if server.contains('?') => format!("{server}&edge={edge}"),
        Some(edge) => format!("{server}?edge={edge}"),
        None => server.to_owned(),
    }
}

/// Adds `#EXT-X-CONTENT-STEERING` to a multivariant playlist (media playlists, and playlists
/// that already name a steering server, pass unchanged). Variant URIs stay relative, so the
/// steering server's pathway clones (which replace the host) send the player to the edge they
/// name.
pub fn hls_steering(text: String, server: &str) -> String {
    if !text.contains("#EXT-X-STREAM-INF") || text.contains("#EXT-X-CONTENT-STEERING") {
        return text;
    }
    let tag = format!("#EXT-X-CONTENT-STEERING:SERVER-URI=\"{server}\",PATHWAY-ID=\".\"");
    match text.split_once('\n') {
        Some((first, rest)) => format!("{first}\n{tag}\n{rest}"),
        None => text,
    }
}

/// Adds `<ContentSteering>` right after the `<MPD>` start tag, with a `BaseURL` for pathway
/// `.`: the MPD's own `BaseURL` (before the first `Period`) when it has one without a service
/// location, tagged `serviceLocation="."`, else a new one, `./` (the MPD's own folder, wherever
/// it was fetched from). dash.js clones pathways from that `BaseURL` with each edge's host, as
/// hls.js does from the default pathway.
pub fn dash_steering(text: String, server: &str) -> String {
    if text.contains("<ContentSteering") {
        return text;
    }
    let Some(open) = text.find("<MPD") else {
        return text;
    };
    let Some(end) = text[open..].find('>').map(|i| open + i + 1) else {
        return text;
    };
    let server = server
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;");
    let steering = format!(
        "\n  <ContentSteering defaultServiceLocation=\".\" queryBeforeStart=\"true\">{server}</ContentSteering>"
    );
    let head = &text[end..text[end..].find("<Period").map_or(text.len(), |p| end + p)];
    match head.find("<BaseURL").map(|b| end + b) {
        Some(base) => {
            let tag_end = text[base..].find('>').map_or(text.len(), |t| base + t);
            if text[base..tag_end].contains("serviceLocation") {
                return text;
            }
            let name_end = base + "<BaseURL".len();
            format!(
                "{}{steering}{} serviceLocation=\".\"{}",
                &text[..end],
                &text[end..name_end],
                &text[name_end..]
            )
        }
        None => format!(
            "{}\n  <BaseURL serviceLocation=\".\">./</BaseURL>{steering}{}",
            &text[..end],
            &text[end..]
        ),
    }
}

/// Turns every absolute URL under one of `origins` (base URLs such as `http://origin:8080` or
/// `https://packager.example/live`, compared without regard to the case of scheme and host)
/// into the path it names on the CDN (`/…`), so that the player keeps asking the edge, and
/// the steering server's pathway clones (which replace the host of the manifest's URL) still
/// apply. A URL is replaced only where one starts (after a quote, `>`, whitespace or at a
/// line's start), and only when the base is followed by `/`, `?` or the URL's end.
///
/// DASH `UTCTiming` values are the exception: players fetch them outside the MPD's URL
/// resolution, as they are, so they become `viewer_base` (a scheme-relative `//host` of the
/// edge the viewer asked) plus the path.
///
/// `signed` is a signed request's `/t/<token>` and the prefix the token opens: the token goes in
/// front of every other rewritten path under that prefix, so that the segments a playlist names
/// absolutely are fetched with the viewer's token too (a path outside it stays plain: the token
/// would not open it).
pub fn rewrite_origin_urls(
    kind: Manifest,
    text: &str,
    origins: &[String],
    viewer_base: &str,
    signed: Option<(&str, &str)>,
) -> String {
    // Most playlists name no absolute URL at all: no copy for them.
    if !text.contains("://") {
        return text.to_owned();
    }
    let (token, prefix) = signed.unwrap_or_default();
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < text.len() {
        let Some(found) = next_url_start(&lower, at) else {
            break;
        };
        let matched = origins.iter().find_map(|origin| {
            let base = origin.trim_end_matches('/');
            let candidate = lower.get(found..found + base.len())?;
            (candidate == base.to_ascii_lowercase()
                && matches!(
                    lower.as_bytes().get(found + base.len()),
                    None | Some(b'/' | b'?' | b'"' | b'\'' | b'<' | b'\n' | b'\r' | b' ')
                ))
            .then_some(base.len())
        });
        match matched {
            Some(len) if at_url_start(text, found) => {
                out.push_str(&text[copied..found]);
                let rest = &text[found + len..];
                if kind == Manifest::Dash && in_utc_timing(&lower, found) {
                    out.push_str(viewer_base);
                } else if !token.is_empty() && rest.starts_with(prefix) {
                    out.push_str(token);
                }
                if !rest.starts_with('/') {
                    out.push('/');
                }
                copied = found + len;
                at = copied;
            }
            _ => at = found + 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Where the next `http://` or `https://` starts in `lower`, from `from`.
fn next_url_start(lower: &str, from: usize) -> Option<usize> {
    let rest = lower.get(from..)?;
    rest.find("http").map(|i| from + i).and_then(|i| {
        let tail = &lower[i..];
        if tail.starts_with("http://") || tail.starts_with("https://") {
            Some(i)
        } else {
            next_url_start(lower, i + 4)
        }
    })
}

/// Is `at` where a URL begins: the start of the text or of a line, or after a quote, `>` or
/// whitespace (not inside another URL's query, for instance).
fn at_url_start(text: &str, at: usize) -> bool {
    at == 0
        || matches!(
            text.as_bytes()[at - 1],
            b'\n' | b'\r' | b'"' | b'\'' | b'>' | b' ' | b'\t'
        )
}

/// Is `at` inside a `<UTCTiming …>` element's start tag?
fn in_utc_timing(lower: &str, at: usize) -> bool {
    let before = &lower[..at];
    match (before.rfind("<utctiming"), before.rfind('>')) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_comes_from_the_type_or_else_the_extension() {
        assert_eq!(
            Manifest::of("/a/x", Some("application/vnd.apple.mpegURL")),
            Some(Manifest::Hls)
        );
        assert_eq!(
            Manifest::of("/a/x.mpd", Some("application/octet-stream")),
            Some(Manifest::Dash)
        );
        assert_eq!(Manifest::of("/a/x.M3U8?t=1", None), Some(Manifest::Hls));
        assert_eq!(Manifest::of("/a/x.mpd", Some("text/html")), None);
        assert_eq!(Manifest::of("/a/seg.m4s", None), None);
    }

    #[test]
    fn hls_steering_goes_into_multivariant_playlists_only() {
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na/index.m3u8\n".to_owned();
        let steered = hls_steering(master, "http://r/steer/hls");
        assert!(steered.starts_with(
            "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://r/steer/hls\",PATHWAY-ID=\".\"\n"
        ));
        assert_eq!(hls_steering(steered.clone(), "http://other"), steered);
        let media = "#EXTM3U\n#EXTINF:2,\nseg.m4s\n".to_owned();
        assert_eq!(hls_steering(media.clone(), "http://r"), media);
    }

    #[test]
    fn the_serving_edge_is_named_in_the_steering_uri() {
        assert_eq!(
            steering_uri("http://r/steer/hls", Some("eu-west-1")),
            "http://r/steer/hls?edge=eu-west-1"
        );
        assert_eq!(
            steering_uri("http://r/steer/hls?x=1", Some("a")),
            "http://r/steer/hls?x=1&edge=a"
        );
        assert_eq!(steering_uri("http://r/s", None), "http://r/s");
    }

    #[test]
    fn dash_steering_follows_the_mpd_start_tag_and_escapes_the_url() {
        let mpd = "<?xml version=\"1.0\"?>\n<MPD a=\"1\">\n  <Period/>\n</MPD>\n".to_owned();
        let steered = dash_steering(mpd, "http://r/steer/dash?a=1&b=2");
        assert!(steered.contains(
            "<MPD a=\"1\">\n  <BaseURL serviceLocation=\".\">./</BaseURL>\n  <ContentSteering defaultServiceLocation=\".\" queryBeforeStart=\"true\">http://r/steer/dash?a=1&amp;b=2</ContentSteering>\n  <Period/>"
        ));
        assert_eq!(dash_steering(steered.clone(), "x"), steered);
        assert_eq!(dash_steering("not an mpd".into(), "x"), "not an mpd");
    }

    #[test]
    fn an_mpds_own_base_url_becomes_the_default_pathway() {
        let mpd = "<MPD>\n  <BaseURL>/media/x/</BaseURL>\n  <Period><BaseURL>p/</BaseURL></Period>\n</MPD>".to_owned();
        assert_eq!(
            dash_steering(mpd, "http://r/s"),
            "<MPD>\n  <ContentSteering defaultServiceLocation=\".\" queryBeforeStart=\"true\">http://r/s</ContentSteering>\n  <BaseURL serviceLocation=\".\">/media/x/</BaseURL>\n  <Period><BaseURL>p/</BaseURL></Period>\n</MPD>"
        );
        // A Period's BaseURL is not the MPD's: the MPD gets its own.
        let inner = "<MPD>\n<Period><BaseURL>p/</BaseURL></Period></MPD>".to_owned();
        assert!(dash_steering(inner, "http://r/s").starts_with(
            "<MPD>\n  <BaseURL serviceLocation=\".\">./</BaseURL>\n  <ContentSteering"
        ));
    }

    #[test]
    fn absolute_origin_urls_become_cdn_paths() {
        let origins = vec![
            "http://origin:8080".to_owned(),
            "https://Packager.example/live/".to_owned(),
        ];
        let hls = "#EXTM3U\n#EXT-X-MAP:URI=\"http://ORIGIN:8080/a/init.mp4\"\n#EXTINF:2,\nhttp://origin:8080/a/1.m4s\n#EXTINF:2,\nhttps://packager.example/live/b/2.m4s?x=1\n#EXTINF:2,\nhttp://origin:80801/not-ours.m4s\n#EXTINF:2,\nhttps://cdn.example/other.m4s?u=http://origin:8080/x\n#EXTINF:2,\nhttps://packager.example/livestream/3.m4s\n";
        assert_eq!(
            rewrite_origin_urls(Manifest::Hls, hls, &origins, "//edge", None),
            "#EXTM3U\n#EXT-X-MAP:URI=\"/a/init.mp4\"\n#EXTINF:2,\n/a/1.m4s\n#EXTINF:2,\n/b/2.m4s?x=1\n#EXTINF:2,\nhttp://origin:80801/not-ours.m4s\n#EXTINF:2,\nhttps://cdn.example/other.m4s?u=http://origin:8080/x\n#EXTINF:2,\nhttps://packager.example/livestream/3.m4s\n"
        );
    }

    #[test]
    fn an_mpds_utc_timing_stays_absolute_on_the_viewers_edge() {
        let origins = vec!["http://origin:8080".to_owned()];
        let mpd = "<MPD>\n<BaseURL>http://origin:8080/live/</BaseURL>\n<Period><AdaptationSet><SegmentTemplate media=\"http://origin:8080/live/$Number$.m4s\"/></AdaptationSet></Period>\n<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-xsdate:2014\" value=\"http://origin:8080/time\"/>\n</MPD>";
        assert_eq!(
            rewrite_origin_urls(Manifest::Dash, mpd, &origins, "//127.0.1.1:8081", None),
            "<MPD>\n<BaseURL>/live/</BaseURL>\n<Period><AdaptationSet><SegmentTemplate media=\"/live/$Number$.m4s\"/></AdaptationSet></Period>\n<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-xsdate:2014\" value=\"//127.0.1.1:8081/time\"/>\n</MPD>"
        );
        // A signed request's token goes in front of every path under the prefix it opens, and
        // of nothing else (the clock's URL stays the viewer's edge, a path outside stays plain).
        let signed = |s| rewrite_origin_urls(Manifest::Dash, mpd, &origins, "//e", s);
        assert_eq!(
            signed(Some(("/t/abc.def", "/live/"))),
            "<MPD>\n<BaseURL>/t/abc.def/live/</BaseURL>\n<Period><AdaptationSet><SegmentTemplate media=\"/t/abc.def/live/$Number$.m4s\"/></AdaptationSet></Period>\n<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:http-xsdate:2014\" value=\"//e/time\"/>\n</MPD>"
        );
        assert_eq!(signed(Some(("/t/abc.def", "/vod/"))), signed(None),);
    }

    #[test]
    fn text_without_origin_urls_is_unchanged() {
        let origins = vec!["http://origin".to_owned()];
        for text in [
            "",
            "http",
            "#EXTM3U\nhttps://",
            "<MPD>httpx://origin/</MPD>",
        ] {
            assert_eq!(
                rewrite_origin_urls(Manifest::Dash, text, &origins, "//e", None),
                text
            );
        }
    }
}
