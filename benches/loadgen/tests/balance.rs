//! The load balancer under load, the test suite's short version of `benches/balance/run.sh`:
//! the local fleet (meridian-local, the example topology: every edge sized for 200 Mbit/s), 200
//! viewers from 200 subnets near us-east following the router (`viewers`), both us-east edges
//! killed at 25 s. The region's busiest edge carries at most 1.25 times its mean, no edge is
//! over 80% for long while another has headroom, and after the kill the viewers are on other
//! regions with no edge over 90%.

use std::path::Path;
use std::time::Duration;

use test_support::{ServerProcess, Sig, testdata};

const VIEWERS: &str = env!("CARGO_BIN_EXE_viewers");

#[test]
fn two_hundred_viewers_are_shared_by_the_region_and_absorbed_when_it_fails() {
    let bin_dir = Path::new(VIEWERS).parent().expect("bin dir");
    for bin in ["meridian-local", "origin", "edge", "geo-router"] {
        assert!(
            bin_dir.join(bin).exists(),
            "cargo test --workspace builds {bin}"
        );
    }
    let run = tempfile::tempdir().expect("tempdir");
    let mut launcher = ServerProcess::spawn(
        {
            let mut c = std::process::Command::new(bin_dir.join("meridian-local"));
            c.current_dir(testdata().join(".."))
                .args(["--bin-dir", bin_dir.to_str().expect("utf-8")])
                .args(["--run-dir", run.path().to_str().expect("utf-8")])
                .args(["--edge-capacity", "32MiB", "--loopback-block", "auto"])
                .env("RUST_LOG", "warn");
            c
        },
        &["control"],
    );
    let control = launcher.addr("control").to_owned();
    let output = std::process::Command::new(VIEWERS)
        .args(["--control", &control, "--count", "200", "--duration", "45"])
        .args([
            "--warmup",
            "12",
            "--kill-region",
            "us-east",
            "--kill-at",
            "25",
        ])
        .args(["--settle", "8"])
        .output()
        .expect("run viewers");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "viewers failed: {stderr}");
    let summary: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .and_then(|v| v.get("summary").cloned())
        .unwrap_or_else(|| panic!("no summary: {stdout}\n{stderr}"));
    eprintln!("{summary:#}");
    let number = |key: &str| {
        summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {summary}"))
    };
    assert_eq!(number("viewer_errors"), 0.0, "{summary}");
    assert!(
        number("segments") > 2000.0,
        "the viewers streamed: {summary}"
    );
    assert!(number("spread") <= 1.25, "busiest over mean: {summary}");
    assert!(number("overloaded_seconds") < 10.0, "{summary}");
    assert_eq!(number("after_kill_over_90_seconds"), 0.0, "{summary}");
    let at_end = summary["viewers_at_end"]
        .as_object()
        .expect("viewers_at_end");
    let in_us_east: u64 = at_end
        .iter()
        .filter(|(name, _)| name.starts_with("us-east"))
        .map(|(_, n)| n.as_u64().unwrap_or(0))
        .sum();
    let elsewhere: u64 = at_end
        .values()
        .map(|n| n.as_u64().unwrap_or(0))
        .sum::<u64>()
        - in_us_east;
    assert_eq!(
        (in_us_east, elsewhere),
        (0, 200),
        "where the viewers went: {summary}"
    );
    launcher.signal(Sig::SIGINT);
    assert!(launcher.wait_exit(Duration::from_secs(30)).success());
}
