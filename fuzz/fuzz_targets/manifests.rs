//! HLS playlists and DASH MPDs as an edge rewrites them on their way out (content steering
//! tags, absolute origin URLs turned into CDN paths with a signed viewer's token) and as its
//! prefetcher reads a media playlist for the segments after a viewer's. Nothing may panic;
//! adding steering twice changes nothing more; rewriting origin URLs twice changes nothing more
//! (with a viewer's token or without); the prefetcher plans at most its depth, and only segments
//! the playlist names.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use edge::prefetch::Prefetcher;
use libfuzzer_sys::fuzz_target;
use video_http::manifest::{self, Manifest};

static METRICS: LazyLock<edge::metrics::Metrics> = LazyLock::new(|| {
    edge::metrics::Metrics::register(&mut prometheus_client::registry::Registry::default())
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
        for signed in [None, Some(("/t/tok", "/live/"))] {
            let once = manifest::rewrite_origin_urls(kind, &text, &origins, "//edge:8080", signed);
            let twice = manifest::rewrite_origin_urls(kind, &once, &origins, "//edge:8080", signed);
            assert_eq!(twice, once, "a second rewrite finds nothing more");
        }
    }

    // The prefetcher learns the playlist, then a viewer asks for its first segment.
    let prefetch = Prefetcher::new(3, vec!["token".into()], METRICS.clone());
    let playlist = Bytes::from(text.clone().into_bytes());
    let base = "h/live/x/index.m3u8";
    prefetch.plan(
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
    let planned = prefetch.plan(
        "/live/x/seg.m4s",
        &viewer,
        |_| Some(playlist.clone()),
        |_| false,
    );
    assert!(planned.len() <= 3, "more than the depth: {planned:?}");
    for p in &planned {
        let named = text.lines().map(str::trim).any(|uri| {
            !uri.starts_with('#') && (p.path == uri || p.path == format!("/live/x/{uri}"))
        });
        assert!(named, "{p:?} is no segment of the playlist");
    }
});
