//! What the launcher starts, derived from the topology: the origin, one geo-router, and one
//! edge per topology entry, with its listen and admin addresses taken from the entry's URLs and
//! its drain target set to the first edge of its region's first neighbour (or nearest region).
//! Every edge writes content steering (naming the router) into the manifests it serves, so
//! the origin may be any: Meridian's own, or ([`OriginKind::Nginx`]) nginx serving the VOD
//! titles as plain files and ffmpeg's HLS and DASH muxers writing the live channel into a
//! folder nginx serves.
//!
//! A loopback block moves the whole fleet: with block N, the origin, the router and the control
//! port listen on 127.N.0.1 (their usual ports), and an edge the topology puts at 127.0.r.e
//! listens on 127.N.r.e. The router is handed the moved topology (written to the run folder,
//! as it is for block 0, so both take one path), so every URL it gives out is the moved one.
//! Two fleets in different blocks share no address: a test's fleet runs beside a developer's.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use topology::Topology;

use crate::Error;

/// The token the local edges accept for drain and PURGE. A local demo value, written into the
/// edges' configs under the run folder; a real deployment sets its own (see terraform/).
pub const LOCAL_TOKEN: &str = "meridian-local";

/// The key the local edges check signed URLs with when the fleet runs with `--signed-urls`
/// (base64url, as in an edge's `[signed_urls]`). A local demo value, like [`LOCAL_TOKEN`].
pub const LOCAL_SIGNING_SECRET: &str = "bWVyaWRpYW4tbG9jYWwgZGVtbyBzaWduaW5nIGtleSwgMzIr";

/// The key id of [`LOCAL_SIGNING_SECRET`].
pub const LOCAL_SIGNING_KEY_ID: u8 = 1;

/// The paths a signed fleet's edges serve only with a token: every title.
pub const SIGNED_PREFIXES: [&str; 2] = ["/live/", "/vod/"];

/// The name the router's DNS gives out for the service (its default zone and service name):
/// every local edge serves it, beside its own address, and keys its objects under it.
pub const SERVICE_HOST: &str = "video.meridian.test";

/// Where everything listens.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub origin_http: SocketAddr,
    pub origin_admin: SocketAddr,
    pub router_dns: SocketAddr,
    pub router_http: SocketAddr,
    pub router_admin: SocketAddr,
    pub control: SocketAddr,
}

impl Addresses {
    /// The usual ports on 127.`block`.0.1: block 0 is the README's 127.0.0.1:8000 and friends.
    pub fn in_block(block: u8) -> Self {
        let at = |port| SocketAddr::from(([127, block, 0, 1], port));
        Self {
            origin_http: at(8080),
            origin_admin: at(9080),
            router_dns: at(5353),
            router_http: at(8053),
            router_admin: at(9053),
            control: at(8000),
        }
    }
}

impl Default for Addresses {
    fn default() -> Self {
        Self::in_block(0)
    }
}

/// One child process to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The listener kinds whose `listening <kind> <address>` lines together mean ready.
    pub listeners: &'static [&'static str],
    /// For programs that print no such lines: URLs that must answer 200, with a body holding
    /// the given text, before the child counts as ready.
    pub probes: Vec<Probe>,
}

/// A readiness check by HTTP.
#[derive(Debug, Clone)]
pub struct Probe {
    pub url: String,
    pub contains: String,
}

/// Which origin the fleet has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OriginKind {
    /// Meridian's origin over the media root (VOD files and live channels made from them).
    #[default]
    Meridian,
    /// nginx serving the media root's VOD files, and ffmpeg's own HLS and DASH muxers writing
    /// a live channel (`live/big-clock`) into a folder nginx serves: a plain packager.
    Nginx,
}

/// An edge as the launcher knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EdgeInfo {
    pub name: String,
    pub region: String,
    pub http: String,
    pub admin: String,
}

/// Everything to start.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The origin's processes, started in order (nginx, then the live encoder).
    pub origin: Vec<Spec>,
    pub router: Spec,
    pub edges: Vec<(EdgeInfo, Spec)>,
    pub addresses: Addresses,
    pub origin_kind: OriginKind,
    /// The loopback block the fleet was moved to (0: where the topology puts it).
    pub loopback_block: u8,
    /// `meridian-sign`, when the edges require signed URLs (see [`Inputs::signed_urls`]).
    pub signer: Option<PathBuf>,
}

impl Plan {
    /// Checks that every address the children will listen on is free now, by binding each (TCP,
    /// and UDP for the router's DNS) and letting it go at once. The launcher uses it to pick a
    /// free loopback block; the children's own binds stay the real test.
    pub fn addresses_free(&self) -> Result<(), (SocketAddr, io::Error)> {
        let a = &self.addresses;
        let mut tcp = vec![
            a.origin_http,
            a.origin_admin,
            a.router_dns,
            a.router_http,
            a.router_admin,
        ];
        for (info, _) in &self.edges {
            for url in [&info.http, &info.admin] {
                if let Ok(host_port) = host_port(&info.name, url)
                    && let Ok(addr) = host_port.parse()
                {
                    tcp.push(addr);
                }
            }
        }
        for addr in tcp {
            std::net::TcpListener::bind(addr).map_err(|e| (addr, e))?;
        }
        std::net::UdpSocket::bind(a.router_dns).map_err(|e| (a.router_dns, e))?;
        Ok(())
    }
}

/// Inputs of a plan.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub topology: PathBuf,
    pub bin_dir: PathBuf,
    pub media: PathBuf,
    pub geoip: PathBuf,
    pub run_dir: PathBuf,
    pub edge_capacity: String,
    pub addresses: Addresses,
    pub origin_kind: OriginKind,
    /// Moves every edge from 127.0.r.e to 127.`loopback_block`.r.e (0: no move). The fleet's
    /// own addresses are in [`Inputs::addresses`]: [`Addresses::in_block`] gives the usual ones.
    pub loopback_block: u8,
    /// Every edge requires a signed URL (`/t/<token>/...`) under [`SIGNED_PREFIXES`], checked
    /// with [`LOCAL_SIGNING_SECRET`]; the control port signs paths for the player.
    pub signed_urls: bool,
}

/// `host:port` of an edge's URL, for its `listen` and `admin` config keys.
fn host_port(edge: &str, url: &str) -> Result<String, Error> {
    let problem = |problem: String| Error::EdgeUrl {
        edge: edge.to_owned(),
        url: url.to_owned(),
        problem,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| problem(format!("is not a URL ({e})")))?;
    let host = uri.host().ok_or_else(|| problem("has no host".into()))?;
    let port = uri.port_u16().unwrap_or(80);
    Ok(format!("{host}:{port}"))
}

/// Derives the plan and writes the edges' config files into the run folder.
pub fn plan(inputs: &Inputs) -> Result<Plan, Error> {
    let run_dir_error = |cause| Error::RunDir {
        path: inputs.run_dir.clone(),
        cause,
    };
    std::fs::create_dir_all(&inputs.run_dir).map_err(run_dir_error)?;
    // Absolute paths: the children resolve relative ones against their config files' folders.
    let input = |what, flag, path: &Path| {
        std::fs::canonicalize(path).map_err(|cause| Error::Input {
            what,
            flag,
            path: path.to_owned(),
            cause,
        })
    };
    let inputs = &Inputs {
        topology: input("topology", "topology", &inputs.topology)?,
        // A missing binary folder is reported by the first child that cannot start, by name.
        bin_dir: std::fs::canonicalize(&inputs.bin_dir).unwrap_or_else(|_| inputs.bin_dir.clone()),
        media: input("media root", "media", &inputs.media)?,
        geoip: input("GeoIP database", "geoip", &inputs.geoip)?,
        run_dir: std::fs::canonicalize(&inputs.run_dir).map_err(run_dir_error)?,
        ..inputs.clone()
    };
    let mut topology =
        Topology::load(&inputs.topology).map_err(|e| Error::Topology(Box::new(e)))?;
    move_to_block(&mut topology, inputs.loopback_block)?;
    let topology_path = inputs.run_dir.join("topology.toml");
    let text = toml::to_string(&topology).map_err(|e| Error::Write {
        path: topology_path.clone(),
        cause: io::Error::other(e),
    })?;
    write(
        &topology_path,
        &format!(
            "# Written by meridian-local from {}, moved to loopback block {}.\n\n{text}",
            inputs.topology.display(),
            inputs.loopback_block
        ),
    )?;
    let a = &inputs.addresses;
    let bin = |name: &str| inputs.bin_dir.join(name);
    let s = |p: &Path| p.display().to_string();
    let origin = match inputs.origin_kind {
        OriginKind::Meridian => vec![Spec {
            name: "origin".into(),
            program: bin("origin"),
            args: vec![
                "--media".into(),
                s(&inputs.media),
                "--listen".into(),
                a.origin_http.to_string(),
                "--admin".into(),
                a.origin_admin.to_string(),
            ],
            listeners: &["http", "admin"],
            probes: Vec::new(),
        }],
        OriginKind::Nginx => crate::static_origin::specs(&inputs.run_dir, &inputs.media, a)?,
    };
    // Players re-read steering every 2 s here, so a failed edge's pathway leaves their
    // priority list soon after the router notices.
    let router_config = inputs.run_dir.join("geo-router.toml");
    // The router takes fleet purges with the edges' token and keeps them in the run folder.
    write(
        &router_config,
        &format!(
            "# Written by meridian-local.\nname = \"local\"\ndev_mode = true\nsteering_ttl = \"2s\"\nchanging_ttl = \"2s\"\nadmin_token = {LOCAL_TOKEN:?}\npurge_log = {:?}\n",
            s(&inputs.run_dir.join("purges.jsonl"))
        ),
    )?;
    let router = Spec {
        name: "geo-router".into(),
        program: bin("geo-router"),
        args: vec![
            "--config".into(),
            s(&router_config),
            "--topology".into(),
            s(&topology_path),
            "--geoip".into(),
            s(&inputs.geoip),
            "--dns".into(),
            a.router_dns.to_string(),
            "--http".into(),
            a.router_http.to_string(),
            "--admin".into(),
            a.router_admin.to_string(),
            "--dev-mode".into(),
        ],
        listeners: &["dns-udp", "dns-tcp", "http", "admin"],
        probes: Vec::new(),
    };
    let mut edges = Vec::new();
    for edge in &topology.edges {
        let drain_to = drain_target(&topology, &edge.region)
            .map(|url| format!("drain_to = {url:?}\n"))
            .unwrap_or_default();
        let config = inputs.run_dir.join(format!("{}.toml", edge.name));
        let store = inputs.run_dir.join(format!("{}.store", edge.name));
        let listen = host_port(&edge.name, &edge.http)?;
        // Viewers reach an edge by the service's name or by the edge's own address (the
        // router's redirects, steering clones and drain redirects name edges by their URLs).
        let own_host = listen
            .rsplit_once(':')
            .map_or(listen.as_str(), |(host, _)| host);
        let hosts = format!(
            "hosts = [{own_host:?}, \"localhost\", {SERVICE_HOST:?}]\ncanonical_host = {SERVICE_HOST:?}\n"
        );
        let signed = if inputs.signed_urls {
            format!(
                "\n[signed_urls]\nrequired_prefixes = {SIGNED_PREFIXES:?}\nkeys = [{{ id = {LOCAL_SIGNING_KEY_ID}, secret = {LOCAL_SIGNING_SECRET:?} }}]\n"
            )
        } else {
            String::new()
        };
        // The topology's capacity is what the edge measures its load against.
        let load = format!(
            "\n[load]\negress_mbps = {}\nconnections = {}\n",
            edge.capacity.egress_mbps, edge.capacity.connections
        );
        let text = format!(
            "# Written by meridian-local from {}.\nlisten = [{:?}]\nadmin = {:?}\nname = {:?}\nregion = {:?}\norigins = [{:?}]\nstore = {:?}\ncapacity = {:?}\nadmin_token = {:?}\nsteering_hls = {:?}\nsteering_dash = {:?}\nawait_purges = true\n{hosts}{drain_to}{signed}{load}",
            inputs.topology.display(),
            listen,
            host_port(&edge.name, &edge.admin)?,
            edge.name,
            edge.region,
            format!("http://{}", a.origin_http),
            s(&store),
            inputs.edge_capacity,
            LOCAL_TOKEN,
            format!("http://{}/steer/hls", a.router_http),
            format!("http://{}/steer/dash", a.router_http),
        );
        write(&config, &text)?;
        edges.push((
            EdgeInfo {
                name: edge.name.clone(),
                region: edge.region.clone(),
                http: edge.http.clone(),
                admin: edge.admin.clone(),
            },
            Spec {
                name: edge.name.clone(),
                program: bin("edge"),
                args: vec!["--config".into(), s(&config)],
                listeners: &["http", "admin"],
                // Ready once its store is back and the router has sent the purges it missed.
                probes: vec![Probe {
                    url: format!("http://{}/readyz", host_port(&edge.name, &edge.admin)?),
                    contains: "ready".into(),
                }],
            },
        ));
    }
    Ok(Plan {
        origin,
        router,
        edges,
        addresses: a.clone(),
        origin_kind: inputs.origin_kind,
        loopback_block: inputs.loopback_block,
        signer: inputs.signed_urls.then(|| bin("meridian-sign")),
    })
}

/// `--loopback-block auto`: plans the fleet in the first block of 1-255, counting from one
/// derived from our PID (so that launchers started together try different blocks), whose
/// control address can be bound and whose other addresses are all free. The bound control
/// listener is returned: it is the block's claim, since a second launcher probing the same block
/// cannot bind it and moves on. Block 0, the README's addresses, is never picked.
pub fn claim_free_block(inputs: &Inputs) -> Result<(Plan, std::net::TcpListener), Error> {
    let first = std::process::id() % 255;
    let mut taken = String::from("none tried");
    for i in 0..255 {
        let block = ((first + i) % 255 + 1) as u8;
        let inputs = Inputs {
            addresses: Addresses::in_block(block),
            loopback_block: block,
            ..inputs.clone()
        };
        let plan = plan(&inputs)?;
        let control = match std::net::TcpListener::bind(plan.addresses.control) {
            Ok(listener) => listener,
            Err(e) => {
                taken = format!("{} ({e})", plan.addresses.control);
                continue;
            }
        };
        match plan.addresses_free() {
            Ok(()) => return Ok((plan, control)),
            Err((addr, e)) => taken = format!("{addr} ({e})"),
        }
    }
    Err(Error::NoFreeBlock { taken })
}

/// Moves every edge of `topology` from 127.0.r.e to 127.`block`.r.e: its HTTP and admin URLs
/// (only the host changes) and its DNS answers. Block 0 leaves the topology as it is.
fn move_to_block(topology: &mut Topology, block: u8) -> Result<(), Error> {
    if block == 0 {
        return Ok(());
    }
    let outside = |edge: &str, address: String| Error::OutsideBlock {
        block,
        edge: edge.to_owned(),
        address,
    };
    let moved = |ip: Ipv4Addr| -> Option<Ipv4Addr> {
        let [a, b, r, e] = ip.octets();
        (a == 127 && b == 0).then_some(Ipv4Addr::new(127, block, r, e))
    };
    for edge in &mut topology.edges {
        for url in [&mut edge.http, &mut edge.admin] {
            let host = host_port(&edge.name, url)?
                .rsplit_once(':')
                .map(|(host, _)| host.to_owned())
                .unwrap_or_default();
            let to = host
                .parse::<Ipv4Addr>()
                .ok()
                .and_then(moved)
                .ok_or_else(|| outside(&edge.name, url.clone()))?;
            *url = url.replacen(&format!("://{host}"), &format!("://{to}"), 1);
        }
        for ip in &mut edge.dns {
            let to = match ip {
                IpAddr::V4(v4) => moved(*v4),
                IpAddr::V6(_) => None,
            }
            .ok_or_else(|| outside(&edge.name, ip.to_string()))?;
            *ip = IpAddr::V4(to);
        }
    }
    Ok(())
}

/// Writes a file the launcher makes, or says which one it could not.
pub(crate) fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|cause| Error::Write {
        path: path.to_owned(),
        cause,
    })
}

/// The base URL a draining edge of `region` redirects to: the first edge of the region's first
/// listed neighbour, else of the nearest other region.
pub fn drain_target(topology: &Topology, region: &str) -> Option<String> {
    let this = topology.region(region)?;
    let mut others: Vec<&topology::Region> = this
        .neighbours
        .iter()
        .filter_map(|n| topology.region(n))
        .collect();
    if others.is_empty() {
        let mut rest: Vec<&topology::Region> = topology
            .regions
            .iter()
            .filter(|r| r.name != region)
            .collect();
        let d = |r: &topology::Region| {
            (r.latitude - this.latitude).powi(2) + (r.longitude - this.longitude).powi(2)
        };
        rest.sort_by(|a, b| d(a).total_cmp(&d(b)));
        others = rest;
    }
    others
        .iter()
        .find_map(|r| topology.edges_in(&r.name).next())
        .map(|e| e.http.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_fleet_plans_every_edge_with_a_drain_target() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = example_inputs(dir.path(), 0);
        let plan = plan(&inputs).unwrap();
        assert_eq!(plan.edges.len(), 6);
        let config = std::fs::read_to_string(dir.path().join("eu-west-1.toml")).unwrap();
        assert!(config.contains("listen = [\"127.0.2.1:8080\"]"), "{config}");
        assert!(
            config.contains("drain_to = \"http://127.0.1.1:8080\""),
            "{config}"
        );
        assert!(
            config.contains("\n[load]\negress_mbps = 200\nconnections = 2000\n"),
            "the topology's capacity is what the edge measures its load against: {config}"
        );
    }

    fn example_inputs(run_dir: &Path, block: u8) -> Inputs {
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
        Inputs {
            topology: testdata.join("topology.toml"),
            bin_dir: PathBuf::from("/bin"),
            media: testdata.join("media"),
            geoip: testdata.join("geoip/meridian-city.mmdb"),
            run_dir: run_dir.to_path_buf(),
            edge_capacity: "64MiB".into(),
            addresses: Addresses::in_block(block),
            origin_kind: OriginKind::Meridian,
            loopback_block: block,
            signed_urls: false,
        }
    }

    #[test]
    fn a_loopback_block_moves_every_address_and_the_router_gets_the_moved_topology() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&example_inputs(dir.path(), 7)).unwrap();
        let config = std::fs::read_to_string(dir.path().join("eu-west-1.toml")).unwrap();
        assert!(config.contains("listen = [\"127.7.2.1:8080\"]"), "{config}");
        assert!(config.contains("admin = \"127.7.2.1:9090\""), "{config}");
        assert!(
            config.contains("origins = [\"http://127.7.0.1:8080\"]"),
            "{config}"
        );
        assert!(
            config.contains("drain_to = \"http://127.7.1.1:8080\""),
            "{config}"
        );
        let at = plan
            .router
            .args
            .iter()
            .position(|a| a == "--topology")
            .unwrap();
        let moved = Topology::load(Path::new(&plan.router.args[at + 1])).unwrap();
        let original = Topology::load(&example_inputs(dir.path(), 0).topology).unwrap();
        assert_eq!(moved.regions, original.regions, "regions do not move");
        for (m, o) in moved.edges.iter().zip(&original.edges) {
            assert_eq!(m.http, o.http.replacen("127.0.", "127.7.", 1));
            assert_eq!(m.admin, o.admin.replacen("127.0.", "127.7.", 1));
            let dns: Vec<String> = o
                .dns
                .iter()
                .map(|ip| ip.to_string().replacen("127.0.", "127.7.", 1))
                .collect();
            assert_eq!(
                m.dns.iter().map(|ip| ip.to_string()).collect::<Vec<_>>(),
                dns
            );
        }
        let (info, _) = &plan.edges[2];
        assert_eq!(
            (info.http.as_str(), info.admin.as_str()),
            ("http://127.7.2.1:8080", "http://127.7.2.1:9090")
        );
        assert!(plan.router.args.contains(&"127.7.0.1:5353".to_owned()));
        assert!(
            config.contains("steering_hls = \"http://127.7.0.1:8053/steer/hls\""),
            "{config}"
        );
        assert!(
            config.contains("hosts = [\"127.7.2.1\", \"localhost\", \"video.meridian.test\"]"),
            "an edge serves its own moved address: {config}"
        );
        assert!(!config.contains("[signed_urls]"), "{config}");
        assert_eq!(plan.signer, None);
    }

    #[test]
    fn a_signed_fleet_gives_every_edge_the_key_and_the_launcher_the_signer() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&Inputs {
            signed_urls: true,
            ..example_inputs(dir.path(), 7)
        })
        .unwrap();
        for (info, _) in &plan.edges {
            let config =
                std::fs::read_to_string(dir.path().join(format!("{}.toml", info.name))).unwrap();
            let table = config
                .split_once("[signed_urls]")
                .map(|(_, t)| t)
                .unwrap_or("");
            assert!(
                table.contains("required_prefixes = [\"/live/\", \"/vod/\"]")
                    && table.contains(LOCAL_SIGNING_SECRET),
                "{config}"
            );
        }
        assert!(
            plan.signer
                .as_deref()
                .is_some_and(|p| p.ends_with("bin/meridian-sign")),
            "{:?}",
            plan.signer
        );
    }

    #[test]
    fn only_a_topology_on_127_0_can_be_moved() {
        let dir = tempfile::tempdir().unwrap();
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
        let text = std::fs::read_to_string(testdata.join("topology.toml"))
            .unwrap()
            .replace("127.0.3.2", "10.0.3.2");
        let topology = dir.path().join("elsewhere.toml");
        std::fs::write(&topology, text).unwrap();
        let inputs = Inputs {
            topology,
            ..example_inputs(dir.path(), 9)
        };
        let error = plan(&inputs).unwrap_err().to_string();
        assert!(
            error.contains("edge ap-southeast-2 is at http://10.0.3.2:8080, outside 127.0.0.0/16"),
            "{error}"
        );
        // Block 0 takes the topology as it is.
        plan(&Inputs {
            loopback_block: 0,
            addresses: Addresses::default(),
            ..inputs
        })
        .unwrap();
    }
}
