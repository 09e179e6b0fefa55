//! The fleet in network namespaces: every region and every client in a namespace of its own,
//! joined by a bridge in a "core" namespace where the geo-router runs, each with a real and
//! distinct address in 198.18.0.0/15. Real DNS queries from inside each client namespace (no
//! ECS: the router locates the source address) must be sent to the client's own region.
//!
//! Skips, saying why, where namespaces cannot be created (no root, no iproute2).

use std::path::Path;
use std::process::Command;

use test_support::{ServerProcess, testdata};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_meridian-local");

/// Namespaces (and the veth pairs inside them) this test created; deleted on drop.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {} failed", args.join(" "));
}

#[test]
fn clients_in_their_own_namespaces_are_sent_to_their_own_region() {
    let tag = format!("mrd{}", std::process::id() % 100_000);
    let probe = format!("{tag}x");
    let can = Command::new("ip")
        .args(["netns", "add", &probe])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and iproute2)");
        return;
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    assert!(
        Command::new("kdig")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        "kdig is needed for the DNS queries (apt-get install knot-dnsutils); .ci/run installs it"
    );

    let core = format!("{tag}c");
    let mut namespaces = Namespaces(vec![core.clone()]);
    ip(&["netns", "add", &core]);
    ip(&["-n", &core, "link", "set", "lo", "up"]);
    ip(&["-n", &core, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &core, "addr", "add", "198.18.0.1/15", "dev", "br0"]);
    ip(&["-n", &core, "link", "set", "br0", "up"]);
    // Regions 1..3 hold an edge at 198.18.r.1; clients 1..3 stand at 198.18.c.10.
    let mut hosts = Vec::new();
    for r in 1..=3 {
        hosts.push((format!("{tag}r{r}"), format!("198.18.{r}.1")));
        hosts.push((format!("{tag}k{r}"), format!("198.18.{r}.10")));
    }
    for (i, (ns, addr)) in hosts.iter().enumerate() {
        ip(&["netns", "add", ns]);
        namespaces.0.push(ns.clone());
        ip(&["-n", ns, "link", "set", "lo", "up"]);
        let (outer, inner) = (format!("{tag}v{i}"), format!("{tag}p{i}"));
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ]);
        ip(&["link", "set", &outer, "netns", &core]);
        ip(&["link", "set", &inner, "netns", ns]);
        ip(&["-n", &core, "link", "set", &outer, "master", "br0", "up"]);
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/15"),
            "dev",
            &inner,
        ]);
        ip(&["-n", ns, "link", "set", &inner, "up"]);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let regions = [
        ("us-east", 40.71, -74.01),
        ("eu-west", 51.51, -0.13),
        ("ap-southeast", 1.35, 103.82),
    ];
    let mut topology = String::new();
    for (name, lat, lon) in regions {
        topology.push_str(&format!(
            "[[regions]]\nname = \"{name}\"\nlatitude = {lat}\nlongitude = {lon}\n\n"
        ));
    }
    for (r, (name, _, _)) in regions.iter().enumerate() {
        let addr = format!("198.18.{}.1", r + 1);
        topology.push_str(&format!(
            "[[edges]]\nname = \"{name}-1\"\nregion = \"{name}\"\nhttp = \"http://{addr}:8080\"\nadmin = \"http://{addr}:9090\"\ndns = [\"{addr}\"]\ncapacity = 100\n\n"
        ));
    }
    let topology_path = dir.path().join("topology.toml");
    std::fs::write(&topology_path, topology).expect("topology");

    let bin = Path::new(LAUNCHER).parent().expect("bin dir");
    let in_ns = |ns: &str, program: &Path, args: &[&str]| {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .env("RUST_LOG", "warn");
        command
    };
    let mut edges = Vec::new();
    for (r, (name, _, _)) in regions.iter().enumerate() {
        let addr = format!("198.18.{}.1", r + 1);
        let store = dir.path().join(format!("{name}.store"));
        let args = [
            "--listen",
            &format!("{addr}:8080"),
            "--admin",
            &format!("{addr}:9090"),
            "--store",
            store.to_str().expect("utf-8"),
            "--capacity",
            "4MiB",
            "--name",
            &format!("{name}-1"),
            "--region",
            name,
            "--origin",
            "http://198.18.0.1:1",
        ]
        .map(String::from);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        edges.push(ServerProcess::spawn(
            in_ns(&format!("{tag}r{}", r + 1), &bin.join("edge"), &args),
            &["http", "admin"],
        ));
    }
    let geoip = testdata().join("geoip/meridian-city.mmdb");
    let router_args = [
        "--topology",
        topology_path.to_str().expect("utf-8"),
        "--geoip",
        geoip.to_str().expect("utf-8"),
        "--dns",
        "198.18.0.1:5353",
        "--http",
        "198.18.0.1:8053",
        "--admin",
        "198.18.0.1:9053",
    ];
    let _router = ServerProcess::spawn(
        in_ns(&core, &bin.join("geo-router"), &router_args),
        &["dns-udp", "dns-tcp", "http", "admin"],
    );

    for (c, (region, _, _)) in regions.iter().enumerate() {
        let client_ns = format!("{tag}k{}", c + 1);
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &client_ns,
                "kdig",
                "@198.18.0.1",
                "-p",
                "5353",
                "video.meridian.test",
                "A",
                "+short",
                "+timeout=2",
                "+retry=2",
            ])
            .output()
            .expect("kdig");
        let answer = String::from_utf8_lossy(&output.stdout);
        let first = answer.lines().next().unwrap_or("");
        assert_eq!(
            first,
            format!("198.18.{}.1", c + 1),
            "a client at 198.18.{}.10 goes to {region}; got {answer:?}",
            c + 1
        );
    }
    drop(edges);
}
