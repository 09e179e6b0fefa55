//! End-to-end tests of the edge binary.

use std::time::Duration;

use http::StatusCode;
use test_support::http::get;
use test_support::{ServerProcess, Sig, run_to_end};

const EDGE: &str = env!("CARGO_BIN_EXE_edge");

#[tokio::test]
async fn starts_answers_admin_and_drains_on_sigterm() {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--name",
        "e1",
        "--region",
        "r1",
    ];
    let mut edge = ServerProcess::start(EDGE, &args, &["http", "admin"]);
    let status = get(&format!("{}/status", edge.addr("admin")), &[]).await;
    assert_eq!(status.status, StatusCode::OK);
    assert!(
        status.text().contains("\"name\":\"e1\""),
        "{}",
        status.text()
    );
    edge.signal(Sig::SIGTERM);
    assert!(edge.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn check_config_names_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("edge.toml");
    std::fs::write(&bad, "name = \"e1\"\n\ncapacityy = \"1GiB\"\n").expect("write");
    let (status, _, stderr) = run_to_end(
        EDGE,
        &["--check-config", "--config", bad.to_str().expect("utf-8")],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("capacityy") && stderr.contains("line 3"),
        "{stderr}"
    );
}
