//! The fleet topology file: which regions exist, where they are, and which edges serve them.
//!
//! One TOML file describes a fleet; the geo-router routes by it, the local launcher starts it,
//! and Terraform writes it. Unknown keys are rejected, and [`Topology::validate`] checks what the
//! format cannot (unique names, known regions, coordinates in range, usable URLs), naming the
//! entry at fault and what to change.
//!
//! ```toml
//! [[regions]]
//! name = "eu-west"
//! latitude = 51.51
//! longitude = -0.13
//! neighbours = ["us-east"]   # optional: where the launcher sends a draining edge's viewers
//!
//! [[regions]]
//! name = "us-east"
//! latitude = 40.71
//! longitude = -74.01
//!
//! [[edges]]
//! name = "eu-west-1"         # letters, digits, '-', '_' or '.' (see `valid_edge_name`)
//! region = "eu-west"
//! http = "http://127.0.1.1:8080"
//! admin = "http://127.0.1.1:9090"
//! dns = ["127.0.1.1"]        # addresses the geo-router hands out in A/AAAA answers
//! capacity = { egress_mbps = 1000, connections = 10000 }   # what the edge is sized for
//! ```

pub mod purges;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A whole fleet.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub regions: Vec<Region>,
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// A region: a place on the map where edges stand.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    /// Other regions, in order, that the local launcher points this region's edges at for
    /// draining (`drain_to` is the first edge of the first one; when empty, of the nearest other
    /// region). The geo-router does not read it: its failover order is by distance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<String>,
}

/// One edge server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// The edge's name; it must pass [`valid_edge_name`].
    pub name: String,
    pub region: String,
    /// Base URL viewers fetch media from.
    pub http: String,
    /// Base URL of its admin surface (`/status`, `/healthz`).
    pub admin: String,
    /// Addresses handed out in DNS answers.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// What the edge is sized for. The launcher and Terraform write it into the edge's own
    /// config (`[load]`), against which the edge measures the load it reports; the router
    /// weighs edges by `egress_mbps` when it shares a region's viewers out.
    pub capacity: Capacity,
}

/// An edge's capacity in real units (both above zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Egress bandwidth, megabits per second.
    pub egress_mbps: u64,
    /// Viewers' connections open at once.
    pub connections: u64,
}

/// What an edge's name may be, in words, for messages.
pub const EDGE_NAME_RULE: &str = "1 to 64 letters, digits, '-', '_' or '.'";

/// The one rule for an edge's name ([`EDGE_NAME_RULE`]). An edge names itself to the origin in a
/// request header, and the origin writes that name into steering URIs as it is, so the name must
/// be fit for a URL's query without escaping; the launcher also makes file names of it. The
/// topology, the edge's config and the origin all check names with this function.
pub fn valid_edge_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A topology that cannot be used: which file and entry, what is wrong, and what to change.
///
/// `file` is `None` for text given to [`Topology::parse`]; [`Topology::load`] fills it in.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error(
        "topology file {}: cannot read it: {error}; check that the path is right and readable",
        file.display()
    )]
    Read {
        file: PathBuf,
        error: Arc<std::io::Error>,
    },
    /// The text is not TOML, or not of this format: an unknown key, a missing one, a wrong type.
    #[error(
        "{}{}: {message}; the format is documented at the top of topology/src/lib.rs",
        named(file),
        at_line(*line, text)
    )]
    Syntax {
        file: Option<PathBuf>,
        /// The line at fault (from 1), when the parser pointed at one, and its text.
        line: Option<usize>,
        text: String,
        message: String,
    },
    /// The file names no region.
    #[error(
        "{}: no region is defined; add at least one [[regions]] entry",
        named(file)
    )]
    NoRegions { file: Option<PathBuf> },
    /// One `[[regions]]` entry is wrong.
    #[error("{}, region '{name}' (regions[{index}]): {problem}", named(file))]
    Region {
        file: Option<PathBuf>,
        index: usize,
        name: String,
        problem: Problem,
    },
    /// One `[[edges]]` entry is wrong.
    #[error("{}, edge '{name}' (edges[{index}]): {problem}", named(file))]
    Edge {
        file: Option<PathBuf>,
        index: usize,
        name: String,
        problem: Problem,
    },
}

/// What is wrong with one region or edge entry, and what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("the name is empty; give it one")]
    EmptyName,
    #[error("the name is used twice; names must be unique")]
    DuplicateName,
    #[error("the name must be {EDGE_NAME_RULE}; rename it")]
    BadEdgeName,
    #[error("latitude {0} is not within -90..90; use decimal degrees, north positive")]
    Latitude(f64),
    #[error("longitude {0} is not within -180..180; use decimal degrees, east positive")]
    Longitude(f64),
    #[error("neighbour '{0}' is not another region; list only names of other [[regions]]")]
    Neighbour(String),
    #[error("region '{0}' is not defined; add it under [[regions]] or fix the name")]
    UnknownRegion(String),
    #[error("{key}: {url:?} {reason}; write an http:// or https:// URL with a host")]
    Url {
        key: &'static str,
        url: String,
        reason: String,
    },
    #[error(
        "capacity.{0} must be above zero; give the egress (megabits per second) and connections the edge is sized for"
    )]
    ZeroCapacity(&'static str),
}

impl Error {
    /// The same error, saying which file it is about.
    fn in_file(mut self, path: &Path) -> Self {
        match &mut self {
            Error::Read { .. } => {}
            Error::Syntax { file, .. }
            | Error::NoRegions { file }
            | Error::Region { file, .. }
            | Error::Edge { file, .. } => *file = Some(path.to_path_buf()),
        }
        self
    }
}

impl Topology {
    /// Reads, parses and validates a topology file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::Read {
            file: path.to_path_buf(),
            error: Arc::new(error),
        })?;
        Self::parse(&text).map_err(|error| error.in_file(path))
    }

    /// Parses and validates topology text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let topology: Topology = toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count());
            Error::Syntax {
                file: None,
                line: line.map(|l| l + 1),
                text: line
                    .and_then(|l| text.lines().nth(l))
                    .unwrap_or("")
                    .trim()
                    .to_owned(),
                message: error.message().trim_end().to_owned(),
            }
        })?;
        topology.validate()?;
        Ok(topology)
    }

    /// Checks names, references, coordinates and URLs.
    pub fn validate(&self) -> Result<(), Error> {
        if self.regions.is_empty() {
            return Err(Error::NoRegions { file: None });
        }
        let mut regions = HashSet::new();
        for (index, region) in self.regions.iter().enumerate() {
            check_region(region, &mut regions).map_err(|problem| Error::Region {
                file: None,
                index,
                name: region.name.clone(),
                problem,
            })?;
        }
        for (index, region) in self.regions.iter().enumerate() {
            for neighbour in &region.neighbours {
                if !regions.contains(neighbour.as_str()) || neighbour == &region.name {
                    return Err(Error::Region {
                        file: None,
                        index,
                        name: region.name.clone(),
                        problem: Problem::Neighbour(neighbour.clone()),
                    });
                }
            }
        }
        let mut edges = HashSet::new();
        for (index, edge) in self.edges.iter().enumerate() {
            check_edge(edge, &regions, &mut edges).map_err(|problem| Error::Edge {
                file: None,
                index,
                name: edge.name.clone(),
                problem,
            })?;
        }
        Ok(())
    }

    /// The region of that name.
    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The edges of one region, in file order.
    pub fn edges_in<'a>(&'a self, region: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.region == region)
    }
}

fn check_region<'a>(region: &'a Region, names: &mut HashSet<&'a str>) -> Result<(), Problem> {
    if region.name.is_empty() {
        return Err(Problem::EmptyName);
    }
    if !names.insert(region.name.as_str()) {
        return Err(Problem::DuplicateName);
    }
    if !(-90.0..=90.0).contains(&region.latitude) {
        return Err(Problem::Latitude(region.latitude));
    }
    if !(-180.0..=180.0).contains(&region.longitude) {
        return Err(Problem::Longitude(region.longitude));
    }
    Ok(())
}

fn check_edge<'a>(
    edge: &'a Edge,
    regions: &HashSet<&str>,
    names: &mut HashSet<&'a str>,
) -> Result<(), Problem> {
    if edge.name.is_empty() {
        return Err(Problem::EmptyName);
    }
    if !names.insert(edge.name.as_str()) {
        return Err(Problem::DuplicateName);
    }
    if !valid_edge_name(&edge.name) {
        return Err(Problem::BadEdgeName);
    }
    if !regions.contains(edge.region.as_str()) {
        return Err(Problem::UnknownRegion(edge.region.clone()));
    }
    check_url("http", &edge.http)?;
    check_url("admin", &edge.admin)?;
    if edge.capacity.egress_mbps == 0 {
        return Err(Problem::ZeroCapacity("egress_mbps"));
    }
    if edge.capacity.connections == 0 {
        return Err(Problem::ZeroCapacity("connections"));
    }
    Ok(())
}

fn check_url(key: &'static str, url: &str) -> Result<(), Problem> {
    let problem = |reason: String| Problem::Url {
        key,
        url: url.to_owned(),
        reason,
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| problem(format!("is not a URL ({e})")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(problem(
            "lacks an http:// or https:// scheme or a host".into(),
        )),
    }
}
fn named(file: &Option<PathBuf>) -> String {
    match file {
        Some(file) => format!("topology file {}", file.display()),
        None => "topology".to_owned(),
    }
}

fn at_line(line: Option<usize>, text: &str) -> String {
    match line {
        Some(line) => format!(", line {line} (`{text}`)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
[[regions]]
name = "a"
latitude = 1.0
longitude = 2.0

[[edges]]
name = "a-1"
region = "a"
http = "http://127.0.1.1:8080"
admin = "http://127.0.1.1:9090"
dns = ["127.0.1.1"]
capacity = { egress_mbps = 10, connections = 100 }
"#;

    #[test]
    fn parses_a_small_fleet() {
        let t = Topology::parse(SMALL).expect("valid");
        assert_eq!(t.edges_in("a").count(), 1);
        assert_eq!(t.region("a").map(|r| r.latitude), Some(1.0));
    }

    #[test]
    fn errors_name_the_entry_and_what_to_do() {
        let err = Topology::parse(&SMALL.replace("region = \"a\"", "region = \"b\"")).unwrap_err();
        assert!(
            matches!(&err, Error::Edge { index: 0, problem: Problem::UnknownRegion(r), .. } if r == "b"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "topology, edge 'a-1' (edges[0]): region 'b' is not defined; add it under [[regions]] \
             or fix the name"
        );
        let err =
            Topology::parse(&SMALL.replace("latitude = 1.0", "latitude = 100.0")).unwrap_err();
        assert!(
            err.to_string()
                .contains("region 'a' (regions[0]): latitude 100"),
            "{err}"
        );
        let err = Topology::parse(&SMALL.replace("dns = [", "colour = 1\ndns = [")).unwrap_err();
        assert!(
            err.to_string().contains("line 12 (`colour = 1`)")
                && err.to_string().contains("unknown field `colour`"),
            "{err}"
        );
        let err = Topology::parse(&SMALL.replace("http://127.0.1.1:8080", "ftp://x")).unwrap_err();
        assert!(err.to_string().contains("http: \"ftp://x\""), "{err}");
        let err = Topology::parse(&SMALL.replace("name = \"a-1\"", "name = \"a&1\"")).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Edge {
                    problem: Problem::BadEdgeName,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_error_names_the_file() {
        let (dir, path) = test_support::temp_file(
            "fleet.toml",
            &SMALL.replace("egress_mbps = 10", "egress_mbps = 0"),
        );
        let err = Topology::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("topology file {}, edge 'a-1'", path.display())),
            "{err}"
        );
        let err = Topology::load(&dir.path().join("missing.toml")).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err:?}");
    }

    #[test]
    fn the_edge_name_rule() {
        assert!(valid_edge_name("us-east-1") && valid_edge_name("edge_2.a"));
        assert!(!valid_edge_name("a&b") && !valid_edge_name("") && !valid_edge_name("a b"));
        assert!(valid_edge_name(&"x".repeat(64)) && !valid_edge_name(&"x".repeat(65)));
    }

    #[test]
    fn the_example_in_these_docs_is_valid() {
        let example = test_support::doc_example(include_str!("lib.rs"), "toml");
        let t = Topology::parse(&example).expect("the example in lib.rs is valid");
        assert_eq!(t.edges_in("eu-west").count(), 1);
    }

    #[test]
    fn the_example_fleet_in_testdata_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/topology.toml");
        let t = Topology::load(&path).expect("testdata/topology.toml is valid");
        assert_eq!(t.regions.len(), 3);
        for region in &t.regions {
            assert_eq!(t.edges_in(&region.name).count(), 2, "{}", region.name);
        }
    }
}
