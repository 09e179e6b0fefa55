//! End-to-end tests of the origin binary: started for real on 127.0.0.1:0, spoken to over HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use test_support::http::{fetch, get, send};
use test_support::{ServerProcess, Sig, run_to_end, testdata};

const ORIGIN: &str = env!("CARGO_BIN_EXE_origin");

fn media() -> PathBuf {
    testdata().join("media")
}

/// Starts an origin over `root` with extra flags.
fn start_origin(root: &Path, extra: &[&str]) -> ServerProcess {
    let root = root.to_str().expect("utf-8 path");
    let mut args = vec![
        "--media",
        root,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(ORIGIN, &args, &["http", "admin"])
}

#[tokio::test]
async fn master_playlist_is_served_and_a_real_client_plays_it() {
    let origin = start_origin(&media(), &[]);
    let url = format!("{}/vod/big-clock/master.m3u8", origin.addr("http"));
    let reply = get(&url, &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        "application/vnd.apple.mpegurl"
    );
    assert!(reply.text().starts_with("#EXTM3U"));
    assert_eq!(reply.header("access-control-allow-origin"), "*");

    // ffprobe reads the stream through the origin and decodes every frame of one rendition.
    let url_for_ffprobe = url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("ffprobe")
            // -rw_timeout (µs): a stalled read fails the test instead of hanging it.
            .args(["-v", "error", "-rw_timeout", "20000000"])
            .args(["-select_streams", "v:0", "-count_frames"])
            .args([
                "-show_entries",
                "stream=codec_name,nb_read_frames",
                "-of",
                "csv=p=0",
            ])
            .arg(&url_for_ffprobe)
            .output()
    })
    .await
    .expect("join")
    .expect("ffprobe must be installed (apt-get install ffmpeg); .ci/run installs it");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // 32 s at 30 frames per second, in every program ffprobe opened for the first video stream.
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.trim() == "h264,960"),
        "ffprobe said: {stdout:?}"
    );
}

#[tokio::test]
async fn dash_manifest_is_well_formed_and_its_segments_exist() {
    let origin = start_origin(&media(), &[]);
    let base = format!("{}/vod/color-bars", origin.addr("http"));
    let reply = get(&format!("{base}/manifest.mpd"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/dash+xml");
    let text = reply.text();
    let doc = roxmltree::Document::parse(&text).expect("the MPD is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "MPD");
    let ids: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("Representation"))
        .filter_map(|n| n.attribute("id"))
        .collect();
    assert_eq!(ids, ["720p", "480p", "360p", "audio"]);
    for id in ids {
        for file in ["init.mp4", "seg_00000.m4s", "seg_00011.m4s"] {
            let reply = fetch(Method::HEAD, &format!("{base}/{id}/{file}"), &[]).await;
            assert_eq!(reply.status, StatusCode::OK, "{id}/{file}");
        }
    }
}

#[tokio::test]
async fn ranges_validators_and_head() {
    let origin = start_origin(&media(), &[]);
    let path = "vod/big-clock/720p/seg_00001.m4s";
    let url = format!("{}/{path}", origin.addr("http"));
    let file = std::fs::read(media().join(path)).expect("segment file");
    let len = file.len();

    let full = get(&url, &[]).await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(full.body, file);
    assert_eq!(full.header("content-type"), "video/iso.segment");
    assert_eq!(
        full.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(full.header("accept-ranges"), "bytes");
    let etag = full.header("etag").to_owned();
    let modified = full.header("last-modified").to_owned();
    assert!(etag.starts_with('"') && !modified.is_empty());

    let part = get(&url, &[("range", "bytes=0-99")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, file[..100]);
    assert_eq!(part.header("content-range"), format!("bytes 0-99/{len}"));

    let tail = get(&url, &[("range", "bytes=-10")]).await;
    assert_eq!(tail.body, file[len - 10..]);

    let past = get(&url, &[("range", &format!("bytes={len}-"))]).await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.header("content-range"), format!("bytes */{len}"));
    assert!(past.body.is_empty());

    let multi = get(&url, &[("range", "bytes=0-1,10-20")]).await;
    assert_eq!(
        multi.status,
        StatusCode::OK,
        "several ranges get the whole file"
    );
    assert_eq!(multi.body, file);

    let stale_if_range = get(&url, &[("range", "bytes=0-99"), ("if-range", "\"other\"")]).await;
    assert_eq!(stale_if_range.status, StatusCode::OK);

    let not_modified = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), etag);

    let since = get(&url, &[("if-modified-since", &modified)]).await;
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);

    let changed = get(&url, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(changed.status, StatusCode::OK);

    let head = fetch(Method::HEAD, &url, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), len.to_string());
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn nothing_outside_the_media_root_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "SECRET-BYTES-OUTSIDE-THE-ROOT";
    std::fs::write(dir.path().join("Cargo.toml"), secret).expect("write secret");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("vod")).expect("mkdir");
    std::fs::write(root.join("vod/ok.m4s"), "fine").expect("write");
    std::os::unix::fs::symlink(dir.path().join("Cargo.toml"), root.join("vod/leak.m4s"))
        .expect("symlink");
    std::os::unix::fs::symlink(dir.path(), root.join("vod/up")).expect("symlink");

    let origin = start_origin(&root, &[]);
    let base = origin.addr("http");
    assert_eq!(
        get(&format!("{base}/vod/ok.m4s"), &[]).await.status,
        StatusCode::OK
    );
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/vod/..%2f..%2fCargo.toml",
        "/vod/%2E%2E/%2e%2e/Cargo.toml",
        "/vod/leak.m4s",
        "/vod/up/Cargo.toml",
        "/..\\Cargo.toml",
        "/%5c..%5cCargo.toml",
        "//Cargo.toml",
        "/vod/%00.m4s",
    ] {
        let reply = get(&format!("{base}{path}"), &[]).await;
        assert!(reply.status.is_client_error(), "{path}: {}", reply.status);
        assert!(!reply.text().contains(secret), "{path} leaked the secret");
    }
}

#[tokio::test]
async fn live_playlist_advances_and_every_segment_it_names_is_served() {
    let origin = start_origin(
        &media(),
        &["--live-interval", "100ms", "--live-window", "4"],
    );
    let base = format!("{}/live/big-clock/480p", origin.addr("http"));
    let first = get(&format!("{base}/index.m3u8"), &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.header("content-type"),
        "application/vnd.apple.mpegurl"
    );
    assert_eq!(first.header("cache-control"), "public, max-age=0");
    let first_text = first.text();
    let start = media_sequence(&first_text);

    // Poll until the window has moved on: no fixed sleep, a deadline instead.
    let deadline = Instant::now() + Duration::from_secs(10);
    let later_text = loop {
        let text = get(&format!("{base}/index.m3u8"), &[]).await.text();
        if media_sequence(&text) > start + 2 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "live playlist did not advance past {start}"
        );
        tokio::task::yield_now().await;
    };
    assert!(!later_text.contains("#EXT-X-ENDLIST"));

    let vod_dir = media().join("vod/big-clock/480p");
    let init = get(&format!("{base}/init.mp4"), &[]).await;
    assert_eq!(
        init.body,
        std::fs::read(vod_dir.join("init.mp4")).expect("init")
    );
    let segments: Vec<&str> = later_text
        .lines()
        .filter(|l| l.starts_with("live_"))
        .collect();
    assert_eq!(segments.len(), 4);
    for name in segments {
        let k: u64 = name["live_".len()..name.len() - ".m4s".len()]
            .parse()
            .expect("number");
        let reply = get(&format!("{base}/{name}"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        // big-clock has 16 segments: the channel loops them.
        let vod =
            std::fs::read(vod_dir.join(format!("seg_{:05}.m4s", k % 16))).expect("vod segment");
        assert_eq!(reply.body, vod, "{name} is VOD segment {}", k % 16);
    }
    // The master playlist works for live too, through the same relative URIs.
    let master = get(
        &format!("{}/live/big-clock/master.m3u8", origin.addr("http")),
        &[],
    )
    .await;
    assert_eq!(master.status, StatusCode::OK);
    assert!(master.text().contains("480p/index.m3u8"));
}

fn media_sequence(playlist: &str) -> u64 {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no media sequence in:\n{playlist}"))
}

/// The first video frame's time in a fragmented MP4 made of `init` and `segment`, by ffprobe.
fn first_frame_time(dir: &Path, init: &[u8], segment: &[u8]) -> f64 {
    let file = dir.join("probe.mp4");
    std::fs::write(&file, [init, segment].concat()).expect("write");
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=start_time",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .expect("ffprobe must be installed (apt-get install ffmpeg); .ci/run installs it");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().unwrap_or_else(|_| {
        panic!(
            "ffprobe said {text:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test]
async fn live_dash_is_one_timeline_across_loop_points() {
    let origin = start_origin(
        &media(),
        &["--steering-dash", "http://127.0.0.1:8053/steer/dash"],
    );
    let base = format!("{}/live/big-clock", origin.addr("http"));
    let mpd = get(&format!("{base}/manifest.mpd"), &[]).await;
    assert_eq!(mpd.status, StatusCode::OK);
    assert_eq!(mpd.header("content-type"), "application/dash+xml");
    let text = mpd.text();
    let doc = roxmltree::Document::parse(&text).expect("well-formed MPD");
    let root = doc.root_element();
    assert_eq!(root.attribute("type"), Some("dynamic"));
    assert_eq!(
        root.attribute("availabilityStartTime"),
        Some("1970-01-01T00:00:00Z")
    );
    assert!(
        doc.descendants().any(|n| n.has_tag_name("ContentSteering")),
        "{text}"
    );
    let template = doc
        .descendants()
        .find(|n| n.has_tag_name("SegmentTemplate"))
        .expect("SegmentTemplate");
    assert_eq!(
        template.attribute("media"),
        Some("$RepresentationID$/dash_$Number$.m4s")
    );

    // The newest segment and the same one a loop (16 segments, 32 s) earlier: one timeline,
    // each segment starting at its number times 2 s since the epoch.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let newest = now / 2 - 1;
    let dir = tempfile::tempdir().expect("tempdir");
    let init = get(&format!("{base}/720p/init.mp4"), &[]).await.body;
    for k in [newest, newest - 16] {
        let reply = get(&format!("{base}/720p/dash_{k}.m4s"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "dash_{k}");
        assert!(reply.header("cache-control").contains("immutable"));
        let start = first_frame_time(dir.path(), &init, &reply.body);
        assert!(
            (start - (k * 2) as f64).abs() < 0.001,
            "dash_{k} starts at {start}, not {}",
            k * 2
        );
    }
    // The future is not served, and nothing tells a cache to keep the refusal.
    for name in [
        format!("dash_{}.m4s", newest + 3),
        format!("live_{}.m4s", newest + 3),
    ] {
        let reply = get(&format!("{base}/720p/{name}"), &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{name}");
        assert!(reply.header("cache-control").is_empty() && reply.header("etag").is_empty());
    }
}

#[tokio::test]
async fn multivariant_playlists_carry_the_steering_server() {
    let origin = start_origin(
        &media(),
        &["--steering-hls", "http://127.0.0.1:8053/steer/hls"],
    );
    let master = get(
        &format!("{}/vod/big-clock/master.m3u8", origin.addr("http")),
        &[],
    )
    .await;
    let lines: Vec<&str> = master
        .body
        .split(|b| *b == b'\n')
        .map(|l| std::str::from_utf8(l).unwrap_or(""))
        .collect();
    assert_eq!(lines[0], "#EXTM3U");
    assert_eq!(
        lines[1],
        "#EXT-X-CONTENT-STEERING:SERVER-URI=\"http://127.0.0.1:8053/steer/hls\",PATHWAY-ID=\".\""
    );
    assert!(!master.header("etag").is_empty());
    // An edge that names itself gets its name into the steering URI; a name that does not
    // belong in a URL is ignored.
    for (name, uri) in [
        (
            "eu-west-1",
            "http://127.0.0.1:8053/steer/hls?edge=eu-west-1",
        ),
        ("a&b=c", "http://127.0.0.1:8053/steer/hls"),
    ] {
        let master = get(
            &format!("{}/vod/big-clock/master.m3u8", origin.addr("http")),
            &[("meridian-edge", name)],
        )
        .await;
        assert!(
            master.text().contains(&format!("SERVER-URI=\"{uri}\"")),
            "{}",
            master.text()
        );
    }
    let media = get(
        &format!("{}/vod/big-clock/720p/index.m3u8", origin.addr("http")),
        &[],
    )
    .await;
    assert!(
        !media.text().contains("CONTENT-STEERING"),
        "media playlists are left alone"
    );
}

#[tokio::test]
async fn cors_preflight_and_methods() {
    let origin = start_origin(&media(), &[]);
    let url = format!("{}/vod/big-clock/master.m3u8", origin.addr("http"));
    let preflight = fetch(
        Method::OPTIONS,
        &url,
        &[
            ("origin", "http://player.test"),
            ("access-control-request-headers", "range"),
        ],
    )
    .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert!(
        preflight
            .header("access-control-allow-headers")
            .contains("Range")
    );
    assert_eq!(preflight.header("access-control-allow-origin"), "*");
    let post = fetch(Method::POST, &url, &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.header("allow"), "GET, HEAD, OPTIONS");
    let missing = get(
        &format!("{}/vod/nope/master.m3u8", origin.addr("http")),
        &[],
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_surface_reports_health_and_metrics() {
    let origin = start_origin(&media(), &[]);
    let admin = origin.addr("admin");
    assert_eq!(
        get(&format!("{admin}/healthz"), &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("{admin}/readyz"), &[]).await.status,
        StatusCode::OK
    );
    let segment = get(
        &format!("{}/vod/big-clock/360p/seg_00002.m4s", origin.addr("http")),
        &[],
    )
    .await;
    let _ = get(&format!("{}/vod/none.m4s", origin.addr("http")), &[]).await;
    let metrics = get(&format!("{admin}/metrics"), &[]).await.text();
    assert!(
        metrics.contains("meridian_origin_requests_total{status_class=\"2xx\",kind=\"segment\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meridian_origin_requests_total{status_class=\"4xx\",kind=\"segment\"} 1"),
        "{metrics}"
    );
    let sent = format!(
        "meridian_origin_body_bytes_sent_total{{kind=\"segment\"}} {}",
        segment.body.len()
    );
    assert!(metrics.contains(&sent), "{metrics}");
    let status: String = get(&format!("{admin}/status"), &[]).await.text();
    assert!(
        status.contains("\"titles\":[\"big-clock\",\"color-bars\"]"),
        "{status}"
    );
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_download_finish() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("vod")).expect("mkdir");
    // Far larger than socket buffers, so the body cannot already be in flight when we signal.
    let big: Vec<u8> = (0..32 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("vod/big.m4s"), &big).expect("write");
    let mut origin = start_origin(dir.path(), &[]);

    let response = send(
        Method::GET,
        &format!("{}/vod/big.m4s", origin.addr("http")),
        &[],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::with_capacity(big.len());
    let first = body
        .frame()
        .await
        .expect("a first frame")
        .expect("frame ok");
    received.extend_from_slice(first.data_ref().expect("data"));

    origin.signal(Sig::SIGTERM);
    // While draining, the admin listener says not ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = get(&format!("{}/readyz", origin.addr("admin")), &[]).await;
        if ready.status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(Instant::now() < deadline, "readyz never reported draining");
        tokio::task::yield_now().await;
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the body must not be cut by the drain");
        if let Some(data) = frame.data_ref() {
            received.extend_from_slice(data);
        }
    }
    assert_eq!(received.len(), big.len());
    assert!(received == big);
    let status = origin.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "origin exited with {status:?}");
}

#[tokio::test]
async fn sigint_stops_at_once() {
    let mut origin = start_origin(&media(), &[]);
    origin.signal(Sig::SIGINT);
    let status = origin.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

/// Both of the origin's listeners take `[connections]` from its config: with a 1 s
/// first-request timeout (the default is 10 s), a connection that sends nothing is closed.
#[test]
fn the_origins_listeners_close_a_silent_connection_after_the_configured_timeout() {
    let (_dir, config) = test_support::temp_file(
        "origin.toml",
        "[connections]\nfirst_request_timeout = \"1s\"\n",
    );
    let origin = start_origin(&media(), &["--config", config.to_str().expect("utf-8")]);
    for kind in ["http", "admin"] {
        let took = test_support::http::silent_connection_closed(
            origin.addr(kind),
            std::time::Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(
            took >= std::time::Duration::from_millis(900),
            "{kind}: closed after {took:?}, before its timeout"
        );
    }
}

#[test]
fn check_config_names_an_unknown_key_and_accepts_the_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\nmedai = \"media\"\n").expect("write");
    let (status, _, stderr) = run_to_end(
        ORIGIN,
        &["--check-config", "--config", bad.to_str().expect("utf-8")],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("medai") && stderr.contains("line 2"),
        "{stderr}"
    );

    let example = testdata().join("origin.toml");
    let (status, stdout, stderr) = run_to_end(
        ORIGIN,
        &[
            "--check-config",
            "--config",
            example.to_str().expect("utf-8"),
        ],
    );
    assert!(status.success(), "{stderr}");
    assert!(stdout.starts_with("config ok"), "{stdout}");

    let (status, _, stderr) =
        run_to_end(ORIGIN, &["--check-config", "--media", "/nonexistent/media"]);
    assert!(!status.success());
    assert!(stderr.contains("media:"), "{stderr}");
}
