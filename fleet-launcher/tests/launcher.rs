//! The README's run command, end to end: meridian-local starts the whole fleet from the example
//! topology, a segment is fetched through the router's redirect, an edge is killed and the
//! router stops sending viewers to it, and Ctrl-C leaves no process and no bound port behind.

use std::path::Path;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use test_support::http::{fetch, get};
use test_support::{ServerProcess, Sig, testdata};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_meridian-local");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_fleet_serves_fails_over_and_stops_cleanly() {
    let bin_dir = Path::new(LAUNCHER).parent().expect("bin dir");
    for bin in ["origin", "edge", "geo-router"] {
        assert!(
            bin_dir.join(bin).exists(),
            "cargo test --workspace builds {bin}"
        );
    }
    let run = tempfile::tempdir().expect("tempdir");
    let root = testdata().join("..");
    let mut launcher = ServerProcess::spawn(
        {
            let mut c = std::process::Command::new(LAUNCHER);
            c.current_dir(&root)
                .args(["--bin-dir", bin_dir.to_str().expect("utf-8")])
                .args(["--run-dir", run.path().to_str().expect("utf-8")])
                .args(["--edge-capacity", "16MiB", "--control", "127.0.0.1:0"])
                .env("RUST_LOG", "warn");
            c
        },
        &["control"],
    );
    let control = launcher.addr("control").to_owned();
    let state = get(&format!("{control}/api/state"), &[]).await.text();
    assert!(!state.contains("false"), "every child runs: {state}");

    // A viewer in Paris is sent to an eu-west edge, which serves the segment.
    let segment = "/vod/big-clock/720p/seg_00001.m4s";
    let redirect = get(
        &format!("http://127.0.0.1:8053/r{segment}?client=198.51.100.20"),
        &[],
    )
    .await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    let location = redirect.header("location").to_owned();
    assert!(location.starts_with("http://127.0.2."), "{location}");
    let served = get(&location, &[]).await;
    assert_eq!(
        served.body,
        std::fs::read(testdata().join(format!("media{segment}"))).expect("segment")
    );
    assert!(served.header("x-served-by").contains("region=eu-west"));
    // The multivariant playlist through that edge names it in the steering URI, so the router
    // knows which edge the player's default pathway is.
    let edge_base = location.trim_end_matches(segment);
    let master = get(&format!("{edge_base}/vod/big-clock/master.m3u8"), &[])
        .await
        .text();
    let edge_name = served.header("x-served-by").split(';').next().unwrap_or("");
    assert!(
        master.contains(&format!("/steer/hls?edge={edge_name}\"")),
        "{master}"
    );

    // Kill that edge through the control API: the router stops naming it.
    let edge = served
        .header("x-served-by")
        .split(';')
        .next()
        .unwrap_or("")
        .to_owned();
    let killed = fetch(
        Method::POST,
        &format!("{control}/api/edges/{edge}/kill"),
        &[],
    )
    .await;
    assert_eq!(killed.status, StatusCode::OK, "{}", killed.text());
    let started = Instant::now();
    loop {
        let again = get(
            &format!("http://127.0.0.1:8053/r{segment}?client=198.51.100.20"),
            &[],
        )
        .await;
        if again.header("location") != location {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the router still sends viewers to the dead edge"
        );
        tokio::task::yield_now().await;
    }
    let restored = fetch(
        Method::POST,
        &format!("{control}/api/edges/{edge}/restore"),
        &[],
    )
    .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());

    launcher.signal(Sig::SIGINT);
    assert!(launcher.wait_exit(Duration::from_secs(30)).success());
    // Nothing is left listening on the fleet's addresses.
    for addr in [
        "127.0.0.1:8080",
        "127.0.0.1:8053",
        "127.0.1.1:8080",
        "127.0.2.1:8080",
        "127.0.3.2:8080",
    ] {
        assert!(
            std::net::TcpListener::bind(addr).is_ok(),
            "{addr} is still bound after Ctrl-C"
        );
    }
}
