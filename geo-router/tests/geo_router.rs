//! End-to-end tests of the geo-router binary.

use std::time::Duration;

use http::StatusCode;
use test_support::http::get;
use test_support::{ServerProcess, Sig, run_to_end, testdata};

const ROUTER: &str = env!("CARGO_BIN_EXE_geo-router");

fn topology() -> String {
    testdata()
        .join("topology.toml")
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn starts_reports_the_fleet_and_drains_on_sigterm() {
    let topology = topology();
    let args = [
        "--topology",
        topology.as_str(),
        "--http",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ];
    let mut router = ServerProcess::start(ROUTER, &args, &["http", "admin"]);
    let status = get(&format!("{}/status", router.addr("admin")), &[]).await;
    assert_eq!(status.status, StatusCode::OK);
    assert!(status.text().contains("\"eu-west-2\""), "{}", status.text());
    router.signal(Sig::SIGTERM);
    assert!(router.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn check_config_names_an_unknown_key_and_a_bad_topology() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("router.toml");
    std::fs::write(&bad, "zone = \"meridian.test\"\nzoen = \"x\"\n").expect("write");
    let (status, _, stderr) = run_to_end(
        ROUTER,
        &["--check-config", "--config", bad.to_str().expect("utf-8")],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("zoen") && stderr.contains("line 2"),
        "{stderr}"
    );

    let broken = dir.path().join("topology.toml");
    std::fs::write(&broken, "[[regions]]\nname = \"a\"\nlatitude = 1.0\n").expect("write");
    let (status, _, stderr) = run_to_end(
        ROUTER,
        &[
            "--check-config",
            "--topology",
            broken.to_str().expect("utf-8"),
        ],
    );
    assert!(!status.success());
    assert!(stderr.contains("longitude"), "{stderr}");

    let example = testdata().join("geo-router.toml");
    let (status, _, stderr) = run_to_end(
        ROUTER,
        &[
            "--check-config",
            "--config",
            example.to_str().expect("utf-8"),
        ],
    );
    assert!(status.success(), "{stderr}");
}
