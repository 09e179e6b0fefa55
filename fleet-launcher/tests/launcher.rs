//! The README's run command, end to end: meridian-local starts the whole fleet from the example
//! topology, a segment is fetched through the router's redirect, an edge is killed and the
//! router stops sending viewers to it, and Ctrl-C leaves no process and no bound port behind.
//!
//! The fleet runs in a loopback block of its own (`--loopback-block auto`), and every address
//! the test uses comes from the launcher: the control URL from its `listening control` line,
//! the rest from the control server's `/api/config`. So it runs beside a developer's
//! `scripts/run-local` (127.0.0.0/16) without touching it.

use std::path::Path;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use test_support::http::{fetch, get};
use test_support::{ServerProcess, Sig, testdata};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_meridian-local");

/// Viewers the test GeoIP database places near each region, and that region.
const VIEWERS: [(&str, &str); 3] = [
    ("192.0.2.10", "us-east"),
    ("198.51.100.20", "eu-west"),
    ("203.0.113.10", "ap-southeast"),
];

/// `host:port` of an `http://host:port[/]` URL.
fn authority(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

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
                .args(["--edge-capacity", "16MiB", "--loopback-block", "auto"])
                .env("RUST_LOG", "warn");
            c
        },
        &["control"],
    );
    let control = launcher.addr("control").to_owned();
    let state = get(&format!("{control}/api/state"), &[]).await.text();
    assert!(!state.contains("false"), "every child runs: {state}");
    let config: serde_json::Value =
        serde_json::from_slice(&get(&format!("{control}/api/config"), &[]).await.body)
            .expect("/api/config is JSON");
    let text = |v: &serde_json::Value| v.as_str().expect("a string").to_owned();
    let router = text(&config["router"]);
    let edges: Vec<(String, String, String, String)> = config["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                text(&e["name"]),
                text(&e["region"]),
                text(&e["http"]),
                text(&e["admin"]),
            )
        })
        .collect();
    assert_eq!(edges.len(), 6, "{config}");
    let block = config["loopback_block"].as_u64().expect("loopback_block");
    assert!(block > 0, "auto never picks block 0, the README's fleet");
    eprintln!("launcher: the fleet is in loopback block {block}, control {control}");
    let in_block = format!("127.{block}.");
    assert!(
        control.starts_with(&format!("http://{in_block}")),
        "{control}"
    );
    for (name, _, http, admin) in &edges {
        assert!(
            authority(http).starts_with(&in_block) && authority(admin).starts_with(&in_block),
            "{name} moved into the block: {http} {admin}"
        );
    }

    // The router learns of each edge by probing it, after the launcher saw the edge ready:
    // viewers are sent by region once it has seen every edge up and taking viewers.
    let started = Instant::now();
    loop {
        let fleet: serde_json::Value =
            serde_json::from_slice(&get(&format!("{router}/fleet"), &[]).await.body)
                .expect("/fleet is JSON");
        let seen = fleet["edges"].as_array().expect("edges");
        if seen.len() == 6
            && seen
                .iter()
                .all(|e| e["up"] == true && e["accepting"] == true)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the router sees every edge up within 20 s: {fleet}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Moving the fleet does not move the viewers: each is sent to an edge of its own region.
    let segment = "/vod/big-clock/720p/seg_00001.m4s";
    for (client, region) in VIEWERS {
        let redirect = get(&format!("{router}/r{segment}?client={client}"), &[]).await;
        assert_eq!(redirect.status, StatusCode::FOUND, "{client}");
        let location = redirect.header("location");
        assert!(
            edges
                .iter()
                .any(|(_, r, http, _)| r == region && location == format!("{http}{segment}")),
            "a viewer at {client} is sent to {region}, not to {location}"
        );
    }

    // A viewer in Paris is sent to an eu-west edge, which serves the segment.
    let paris = VIEWERS[1].0;
    let redirect = get(&format!("{router}/r{segment}?client={paris}"), &[]).await;
    let location = redirect.header("location").to_owned();
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
    let edge = served
        .header("x-served-by")
        .split(';')
        .next()
        .unwrap_or("")
        .to_owned();
    assert!(
        master.contains(&format!("/steer/hls?edge={edge}\"")),
        "{master}"
    );

    // Kill that edge through the control API: the router stops naming it.
    let killed = fetch(
        Method::POST,
        &format!("{control}/api/edges/{edge}/kill"),
        &[],
    )
    .await;
    assert_eq!(killed.status, StatusCode::OK, "{}", killed.text());
    let started = Instant::now();
    loop {
        let again = get(&format!("{router}/r{segment}?client={paris}"), &[]).await;
        if again.header("location") != location {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the router still sends viewers to the dead edge"
        );
        tokio::task::yield_now().await;
    }
    // Errors from the control API say who and what to do.
    let unknown = fetch(Method::POST, &format!("{control}/api/edges/nope/kill"), &[]).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.text().contains("no edge named \"nope\""),
        "{}",
        unknown.text()
    );
    let again = fetch(
        Method::POST,
        &format!("{control}/api/edges/{edge}/kill"),
        &[],
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.text().contains(&format!("restore {edge}")),
        "{}",
        again.text()
    );
    let restored = fetch(
        Method::POST,
        &format!("{control}/api/edges/{edge}/restore"),
        &[],
    )
    .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text());

    launcher.signal(Sig::SIGINT);
    assert!(launcher.wait_exit(Duration::from_secs(30)).success());
    // Nothing is left listening on any of the fleet's addresses.
    let mut tcp: Vec<String> = ["origin", "origin_admin", "router", "router_admin"]
        .iter()
        .map(|key| authority(&text(&config[*key])).to_owned())
        .collect();
    tcp.push(authority(&control).to_owned());
    for (_, _, http, admin) in &edges {
        tcp.push(authority(http).to_owned());
        tcp.push(authority(admin).to_owned());
    }
    let dns = text(&config["router_dns"]);
    tcp.push(dns.clone());
    for addr in &tcp {
        assert!(
            std::net::TcpListener::bind(addr).is_ok(),
            "{addr} is still bound after Ctrl-C"
        );
    }
    assert!(
        std::net::UdpSocket::bind(&dns).is_ok(),
        "{dns} (UDP) is still bound after Ctrl-C"
    );
}
