//! What the launcher starts, derived from the topology: one origin, one geo-router, and one
//! edge per topology entry, with its listen and admin addresses taken from the entry's URLs and
//! its drain target set to the first edge of its region's first neighbour (or nearest region).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use topology::Topology;

use crate::Error;

/// The token the local edges accept for drain and PURGE. A local demo value, written into the
/// edges' configs under the run folder; a real deployment sets its own (see terraform/).
pub const LOCAL_TOKEN: &str = "meridian-local";

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

impl Default for Addresses {
    fn default() -> Self {
        Self {
            origin_http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            origin_admin: SocketAddr::from(([127, 0, 0, 1], 9080)),
            router_dns: SocketAddr::from(([127, 0, 0, 1], 5353)),
            router_http: SocketAddr::from(([127, 0, 0, 1], 8053)),
            router_admin: SocketAddr::from(([127, 0, 0, 1], 9053)),
            control: SocketAddr::from(([127, 0, 0, 1], 8000)),
        }
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
    pub origin: Spec,
    pub router: Spec,
    pub edges: Vec<(EdgeInfo, Spec)>,
    pub addresses: Addresses,
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
    let topology = Topology::load(&inputs.topology).map_err(Error::Topology)?;
    let a = &inputs.addresses;
    let bin = |name: &str| inputs.bin_dir.join(name);
    let s = |p: &Path| p.display().to_string();
    let origin = Spec {
        name: "origin".into(),
        program: bin("origin"),
        args: vec![
            "--media".into(),
            s(&inputs.media),
            "--listen".into(),
            a.origin_http.to_string(),
            "--admin".into(),
            a.origin_admin.to_string(),
            "--steering-hls".into(),
            format!("http://{}/steer/hls", a.router_http),
            "--steering-dash".into(),
            format!("http://{}/steer/dash", a.router_http),
        ],
        listeners: &["http", "admin"],
    };
    // Players re-read steering every 2 s here, so a failed edge's pathway leaves their
    // priority list soon after the router notices.
    let router_config = inputs.run_dir.join("geo-router.toml");
    write(
        &router_config,
        "# Written by meridian-local.\nname = \"local\"\ndev_mode = true\nsteering_ttl = \"2s\"\nchanging_ttl = \"2s\"\n",
    )?;
    let router = Spec {
        name: "geo-router".into(),
        program: bin("geo-router"),
        args: vec![
            "--config".into(),
            s(&router_config),
            "--topology".into(),
            s(&inputs.topology),
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
    };
    let mut edges = Vec::new();
    for edge in &topology.edges {
        let drain_to = drain_target(&topology, &edge.region)
            .map(|url| format!("drain_to = {url:?}\n"))
            .unwrap_or_default();
        let config = inputs.run_dir.join(format!("{}.toml", edge.name));
        let store = inputs.run_dir.join(format!("{}.store", edge.name));
        let text = format!(
            "# Written by meridian-local from {}.\nlisten = [{:?}]\nadmin = {:?}\nname = {:?}\nregion = {:?}\norigins = [{:?}]\nstore = {:?}\ncapacity = {:?}\nadmin_token = {:?}\n{drain_to}",
            inputs.topology.display(),
            host_port(&edge.name, &edge.http)?,
            host_port(&edge.name, &edge.admin)?,
            edge.name,
            edge.region,
            format!("http://{}", a.origin_http),
            s(&store),
            inputs.edge_capacity,
            LOCAL_TOKEN,
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
            },
        ));
    }
    Ok(Plan {
        origin,
        router,
        edges,
        addresses: a.clone(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
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
        let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
        let inputs = Inputs {
            topology: testdata.join("topology.toml"),
            bin_dir: PathBuf::from("/bin"),
            media: testdata.join("media"),
            geoip: testdata.join("geoip/meridian-city.mmdb"),
            run_dir: dir.path().to_path_buf(),
            edge_capacity: "64MiB".into(),
            addresses: Addresses::default(),
        };
        let plan = plan(&inputs).unwrap();
        assert_eq!(plan.edges.len(), 6);
        let config = std::fs::read_to_string(dir.path().join("eu-west-1.toml")).unwrap();
        assert!(config.contains("listen = [\"127.0.2.1:8080\"]"), "{config}");
        assert!(
            config.contains("drain_to = \"http://127.0.1.1:8080\""),
            "{config}"
        );
    }
}
