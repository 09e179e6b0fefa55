//! HLS playlists and DASH MPDs as an edge rewrites them on their way out (content steering
//! tags, absolute origin URLs turned into CDN paths with a signed viewer's token) and as its
//! prefetcher reads a media playlist for the segments after a viewer's. Nothing may panic;
//! adding steering twice changes nothing more; text with no absolute URL is left as it is; every
//! planned prefetch is a path on this edge.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use edge::prefetch::Prefetcher;
use libfuzzer_sys::fuzz_target;
use video_http::manifest::{self, Manifest};

static PREFETCH: LazyLock<Prefetcher> = LazyLock::new(|| {
    let mut registry = prometheus_client::registry::Registry::default();
    Prefetcher::new(
        3,
        vec!["token".into()],
        edge::metrics::Metrics::register(&mut registry),
    )
});

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let origins = vec![
        "http://origin:8080".to_owned(),
        "https://Packager.example/live/".to_owned(),
    ];

    let hls = manifest::hls_steering(text.clone(), "http://r/steer/hls?edge=e1");
    assert_eq!(
        manifest::hls_steering(hls.clone(), "http://r/steer/hls"),
        hls
    );
    let dash = manifest::dash_steering(text.clone(), "http://r/steer/dash?a=1&b=2");
    assert_eq!(
        manifest::dash_steering(dash.clone(), "http://r/steer/dash"),
        dash
    );
    for kind in [Manifest::Hls, Manifest::Dash] {
        let out = manifest::rewrite_origin_urls(kind, &text, &origins, "//edge:8080", "/t/tok");
        if !text.contains("://") {
            assert_eq!(out, text, "nothing absolute, nothing rewritten");
        }
    }

    // The prefetcher learns the playlist, then a viewer asks for its first segment.
    let playlist = Bytes::from(text.clone().into_bytes());
    let base = "h/live/x/index.m3u8";
    PREFETCH.plan(
        "/live/x/index.m3u8",
        base,
        |_| Some(playlist.clone()),
        |_| false,
    );
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    else {
        return;
    };
    let viewer = format!("h/live/x/{first}");
    for planned in PREFETCH.plan(
        "/live/x/seg.m4s",
        &viewer,
        |_| Some(playlist.clone()),
        |_| false,
    ) {
        assert!(planned.path.starts_with('/'), "{planned:?}");
        assert!(planned.key.starts_with("h/"), "{planned:?}");
    }
});
