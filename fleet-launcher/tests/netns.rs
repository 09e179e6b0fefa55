//! The fleet in network namespaces: every region and every client in a namespace of its own,
//! joined by a bridge in a "core" namespace where the geo-router (and the origin) run, each with a
//! real and distinct address in 198.18.0.0/15.
//!
//! - Real DNS queries from inside each client namespace (no ECS: the router locates the source
//!   address) must be sent to the client's own region.
//! - ffmpeg, a client with no steering and no player logic, reads a VOD's master playlist by
//!   name through the router's DNS while the edge serving it is killed, and again while it is
//!   frozen (SIGSTOP: connections accepted, never answered), and its output decodes completely:
//!   the failover is DNS's (the other address of the answer, the region's other edge, then
//!   answers without the failed edge). Against a frozen edge a client needs an I/O timeout and
//!   a retry that connects again by name: ffmpeg's `-rw_timeout` (its HLS reader retries a
//!   segment whose request failed on a new connection).
//!
//! Where namespaces cannot be created (no root, no iproute2) the tests skip, saying why; with
//! `CI` set (CI runs `CI=true bash .ci/run`) they fail instead, so a CI machine that lost its
//! privileges cannot pass without running them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::{ServerProcess, Sig, testdata};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_meridian-local");

const REGIONS: [(&str, f64, f64); 3] = [
    ("us-east", 40.71, -74.01),
    ("eu-west", 51.51, -0.13),
    ("ap-southeast", 1.35, 103.82),
];

/// A small internet: a core namespace with a bridge at 198.18.0.1, a namespace per region with
/// its two edges at 198.18.r.1 and 198.18.r.2, and a namespace per client at 198.18.c.10 (client c lives in region
/// c's GeoIP range). Everything it made (namespaces, veths, resolver files) goes on drop.
struct Lab {
    tag: String,
    namespaces: Vec<String>,
    resolver_dirs: Vec<PathBuf>,
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
        for dir in &self.resolver_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Whether we run under CI: `CI` set to anything but empty, `0` or `false`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {} failed", args.join(" "));
}

fn bin(name: &str) -> PathBuf {
    Path::new(LAUNCHER).parent().expect("bin dir").join(name)
}

impl Lab {
    /// Builds the lab, or `None` (with a message) where namespaces cannot be made. Under CI
    /// (`CI` set) that is a failure, not a skip.
    fn new(test: &str) -> Option<Self> {
        let tag = format!("mr{}{test}", std::process::id() % 10_000);
        let probe = format!("{tag}x");
        let attempt = Command::new("ip").args(["netns", "add", &probe]).output();
        let why = match &attempt {
            Ok(output) if output.status.success() => None,
            Ok(output) => Some(format!(
                "`ip netns add` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(error) => Some(format!(
                "cannot run `ip` (apt-get install iproute2): {error}"
            )),
        };
        if let Some(why) = why {
            let message =
                format!("cannot create network namespaces here (needs root and iproute2): {why}");
            assert!(
                !in_ci(),
                "{message}; CI is set, so the namespace tests must run: give the job root"
            );
            eprintln!("SKIPPED: {message} (with CI set this fails)");
            return None;
        }
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
        let core = format!("{tag}c");
        let mut lab = Lab {
            tag: tag.clone(),
            namespaces: vec![core.clone()],
            resolver_dirs: Vec::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        ip(&["netns", "add", &core]);
        ip(&["-n", &core, "link", "set", "lo", "up"]);
        ip(&["-n", &core, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &core, "addr", "add", "198.18.0.1/15", "dev", "br0"]);
        ip(&["-n", &core, "link", "set", "br0", "up"]);
        let mut hosts = Vec::new();
        for r in 1..=REGIONS.len() {
            hosts.push((lab.region_ns(r), format!("198.18.{r}.1")));
            hosts.push((lab.client_ns(r), format!("198.18.{r}.10")));
        }
        for (i, (ns, addr)) in hosts.iter().enumerate() {
            ip(&["netns", "add", ns]);
            lab.namespaces.push(ns.clone());
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
            // A region's namespace also holds its second edge, at 198.18.r.2.
            if let Some(second) = addr.strip_suffix(".1").map(|net| format!("{net}.2")) {
                ip(&[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{second}/15"),
                    "dev",
                    &inner,
                ]);
            }
            ip(&["-n", ns, "link", "set", &inner, "up"]);
        }
        Some(lab)
    }

    fn core_ns(&self) -> String {
        format!("{}c", self.tag)
    }

    fn region_ns(&self, r: usize) -> String {
        format!("{}r{r}", self.tag)
    }

    fn client_ns(&self, c: usize) -> String {
        format!("{}k{c}", self.tag)
    }

    /// A command that runs `program` inside namespace `ns`. `ip netns exec` execs the program, so
    /// the child's PID is the program's own.
    fn in_ns(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .env("RUST_LOG", "warn");
        command
    }

    /// The topology: two edges per region, at 198.18.r.1 and 198.18.r.2.
    fn topology(&self) -> PathBuf {
        let mut topology = String::new();
        for (name, lat, lon) in REGIONS {
            topology.push_str(&format!(
                "[[regions]]\nname = \"{name}\"\nlatitude = {lat}\nlongitude = {lon}\n\n"
            ));
        }
        for ((r, (name, _, _)), e) in REGIONS.iter().enumerate().flat_map(|r| [(r, 1), (r, 2)]) {
            let addr = format!("198.18.{}.{e}", r + 1);
            topology.push_str(&format!(
                "[[edges]]\nname = \"{name}-{e}\"\nregion = \"{name}\"\nhttp = \"http://{addr}:8080\"\nadmin = \"http://{addr}:9090\"\ndns = [\"{addr}\"]\ncapacity = {{ egress_mbps = 100, connections = 1000 }}\n\n"
            ));
        }
        let path = self.dir.path().join("topology.toml");
        std::fs::write(&path, topology).expect("topology");
        path
    }

    /// Starts every region's two edges (us-east-1, us-east-2, eu-west-1, ...), fetching from
    /// `origin`.
    fn edges(&self, origin: &str) -> Vec<ServerProcess> {
        REGIONS
            .iter()
            .enumerate()
            .flat_map(|r| [(r, 1), (r, 2)])
            .map(|((r, (name, _, _)), e)| {
                let addr = format!("198.18.{}.{e}", r + 1);
                let store = self.dir.path().join(format!("{name}-{e}.store"));
                let args = [
                    "--listen",
                    &format!("{addr}:8080"),
                    "--admin",
                    &format!("{addr}:9090"),
                    "--store",
                    store.to_str().expect("utf-8"),
                    "--capacity",
                    "16MiB",
                    "--name",
                    &format!("{name}-{e}"),
                    "--region",
                    name,
                    "--origin",
                    origin,
                ]
                .map(String::from);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ServerProcess::spawn(
                    self.in_ns(&self.region_ns(r + 1), bin("edge"), &args),
                    &["http", "admin"],
                )
            })
            .collect()
    }

    /// Starts the geo-router in the core namespace with its DNS on `dns_port`.
    fn router(&self, dns_port: u16) -> ServerProcess {
        let topology = self.topology();
        let geoip = testdata().join("geoip/meridian-city.mmdb");
        let dns = format!("198.18.0.1:{dns_port}");
        let args = [
            "--topology",
            topology.to_str().expect("utf-8"),
            "--geoip",
            geoip.to_str().expect("utf-8"),
            "--dns",
            &dns,
            "--http",
            "198.18.0.1:8053",
            "--admin",
            "198.18.0.1:9053",
        ];
        ServerProcess::spawn(
            self.in_ns(&self.core_ns(), bin("geo-router"), &args),
            &["dns-udp", "dns-tcp", "http", "admin"],
        )
    }

    /// Points the client namespace's system resolver at the router (`ip netns exec` mounts
    /// /etc/netns/<ns>/resolv.conf over /etc/resolv.conf).
    fn resolve_through_router(&mut self, c: usize) {
        let dir = Path::new("/etc/netns").join(self.client_ns(c));
        std::fs::create_dir_all(&dir).expect("create /etc/netns/<ns>");
        self.resolver_dirs.push(dir.clone());
        std::fs::write(
            dir.join("resolv.conf"),
            "nameserver 198.18.0.1\noptions timeout:1 attempts:2\n",
        )
        .expect("write resolv.conf");
    }

    /// The sum of the `meridian_edge_requests` counter of the edge at `addr`, read from inside
    /// client 1.
    fn edge_requests(&self, addr: &str) -> f64 {
        let url = format!("http://{addr}:9090/metrics");
        let output = self
            .in_ns(
                &self.client_ns(1),
                "curl",
                &["-sf", "--max-time", "5", &url],
            )
            .output()
            .expect("curl");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.starts_with("meridian_edge_requests_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Sends SIGKILL to a child we started and have not reaped (so the PID is still ours).
fn kill_pid(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            kill_pid(self.0);
        }
    }
}

fn require(program: &str, arg: &str, package: &str) {
    assert!(
        Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success()),
        "{program} is needed (apt-get install {package}); .ci/run installs it"
    );
}

#[test]
fn clients_in_their_own_namespaces_are_sent_to_their_own_region() {
    let Some(lab) = Lab::new("d") else { return };
    require("kdig", "-V", "knot-dnsutils");
    let edges = lab.edges("http://198.18.0.1:1");
    let _router = lab.router(5353);

    for (c, (region, _, _)) in REGIONS.iter().enumerate() {
        let output = lab
            .in_ns(
                &lab.client_ns(c + 1),
                "kdig",
                &[
                    "@198.18.0.1",
                    "-p",
                    "5353",
                    "video.meridian.test",
                    "A",
                    "+short",
                    "+timeout=2",
                    "+retry=2",
                ],
            )
            .output()
            .expect("kdig");
        let answer = String::from_utf8_lossy(&output.stdout);
        let first = answer.lines().next().unwrap_or("");
        let mut all: Vec<&str> = answer.lines().filter(|l| !l.is_empty()).collect();
        all.sort();
        assert_eq!(
            all,
            [format!("198.18.{}.1", c + 1), format!("198.18.{}.2", c + 1)],
            "a client at 198.18.{}.10 gets {region}'s two edges; got {answer:?}",
            c + 1
        );
        eprintln!(
            "dns: a client at 198.18.{}.10 is sent to {first} ({region})",
            c + 1
        );
    }
    drop(edges);
}

#[test]
fn ffmpeg_reads_a_vod_through_dns_while_its_edge_is_killed() {
    ffmpeg_through_a_failure("f", Sig::SIGKILL, &[]);
}

/// A frozen edge accepts connections and never answers: ffmpeg gets past it with an I/O
/// timeout (`-rw_timeout`, 2 s): its HLS reader then retries the segment on a new connection,
/// by name, and the router's answer by then names only the region's other edge. Without the
/// timeout ffmpeg waits on the frozen edge for ever (the watchdog ends it and the test fails).
#[test]
fn ffmpeg_reads_a_vod_through_dns_while_its_edge_is_frozen() {
    ffmpeg_through_a_failure("z", Sig::SIGSTOP, &["-rw_timeout", "2000000"]);
}

/// ffmpeg (with `options` before its input) reads a VOD by name while the edge serving it gets
/// `failure`; its output must decode whole.
fn ffmpeg_through_a_failure(test: &str, failure: Sig, options: &[&str]) {
    let Some(mut lab) = Lab::new(test) else {
        return;
    };
    require("ffmpeg", "-version", "ffmpeg");
    require("curl", "--version", "curl");
    let media = testdata().join("media");
    let _origin = ServerProcess::spawn(
        lab.in_ns(
            &lab.core_ns(),
            bin("origin"),
            &[
                "--media",
                media.to_str().expect("utf-8"),
                "--listen",
                "198.18.0.1:8080",
                "--admin",
                "198.18.0.1:9080",
            ],
        ),
        &["http", "admin"],
    );
    let mut edges = lab.edges("http://198.18.0.1:8080");
    // Port 53: the system resolver (glibc) has no port setting.
    let _router = lab.router(53);
    lab.resolve_through_router(1);

    // ffmpeg in Boston's namespace, by name, at four times real time so that the kill lands
    // mid-title; -progress reports how far it has got.
    let out = lab.dir.path().join("out.mp4");
    let mut args = vec![
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "warning",
        "-readrate",
        "4",
    ];
    args.extend_from_slice(options);
    args.extend_from_slice(&[
        "-i",
        "http://video.meridian.test:8080/vod/big-clock/master.m3u8",
        "-map",
        "0:v:0",
        "-map",
        "0:a:0",
        "-c",
        "copy",
        "-progress",
        "pipe:1",
        "-y",
        out.to_str().expect("utf-8"),
    ]);
    let mut ffmpeg = lab
        .in_ns(&lab.client_ns(1), "ffmpeg", &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ffmpeg");
    // Whatever happens, ffmpeg does not outlive the test nor hang it: a watchdog kills it (by PID)
    // after 90 s, and the guard on unwind.
    let ffmpeg_pid = ffmpeg.id();
    let guard = KillOnDrop(ffmpeg_pid);
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(90)).is_err() {
            eprintln!("ffmpeg: no end after 90 s; killing it");
            kill_pid(ffmpeg_pid);
        }
    });
    let stderr = ffmpeg.stderr.take().expect("stderr");
    let warnings = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut progress = BufReader::new(ffmpeg.stdout.take().expect("stdout")).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_at = None;
    let mut before = 0.0;
    let mut sibling = String::new();
    for line in progress.by_ref() {
        let line = line.expect("progress");
        assert!(Instant::now() < deadline, "ffmpeg did not get on");
        let Some(us) = line.strip_prefix("out_time_us=") else {
            continue;
        };
        let us: i64 = us.parse().unwrap_or(0);
        if us >= 8_000_000 {
            // Three playlists, then segments: it was reading them from one us-east edge (the
            // first address of its answer), which is killed; the other is its sibling.
            let (one, two) = (
                lab.edge_requests("198.18.1.1"),
                lab.edge_requests("198.18.1.2"),
            );
            let (serving, served) = if one >= two { (0, one) } else { (1, two) };
            assert!(
                served >= 6.0,
                "ffmpeg was reading from us-east-{} ({served} requests)",
                serving + 1
            );
            sibling = format!("198.18.1.{}", 2 - serving);
            before = lab.edge_requests(&sibling);
            edges[serving].signal(failure);
            if failure == Sig::SIGKILL {
                edges[serving].wait_exit(Duration::from_secs(10));
            }
            killed_at = Some(us);
            eprintln!(
                "ffmpeg: us-east-{} got {failure} at {:.1} s of output ({served} requests served)",
                serving + 1,
                us as f64 / 1e6
            );
            break;
        }
    }
    assert!(killed_at.is_some(), "ffmpeg ended before the failure");
    for line in progress {
        line.expect("progress");
    }
    let status = ffmpeg.wait().expect("wait ffmpeg");
    // Reaped: its PID is no longer ours to signal.
    std::mem::forget(guard);
    let _ = done.send(());
    let warnings = warnings.join().expect("stderr reader");
    eprintln!("ffmpeg said:\n{}", warnings.join("\n"));
    assert!(status.success(), "ffmpeg failed: {warnings:?}");
    let lost: Vec<&String> = warnings
        .iter()
        .filter(|l| l.contains("Failed to open segment") || l.contains("skipping"))
        .collect();
    assert!(lost.is_empty(), "no segment lost: {lost:?}");
    let after = lab.edge_requests(&sibling) - before;
    eprintln!("ffmpeg: {sibling} served {after} requests after the failure");
    assert!(
        after > 0.0,
        "the rest came from the region's other edge, the other address in the router's answer"
    );

    // The output decodes without a single error and holds the whole title: 32 s at 30 fps.
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(&out)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg decode");
    let errors = String::from_utf8_lossy(&decode.stderr);
    assert!(
        decode.status.success() && errors.trim().is_empty(),
        "{errors}"
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&out)
        .output()
        .expect("ffprobe");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "960");
}
