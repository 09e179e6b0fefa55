//! The fleet topology file: which regions exist, where they are, and which edges serve them.
//!
//! One TOML file describes a fleet; the geo-router routes by it, the local launcher starts it,
//! and Terraform writes it. Unknown keys are rejected, and [`Topology::validate`] checks what the
//! format cannot (unique names, known regions, coordinates in range, usable URLs), naming the
//! entry at fault.
//!
//! ```toml
//! [[regions]]
//! name = "eu-west"
//! latitude = 51.51
//! longitude = -0.13
//! neighbours = ["us-east"]   # optional: preferred failover order
//!
//! [[edges]]
//! name = "eu-west-1"
//! region = "eu-west"
//! http = "http://127.0.1.1:8080"
//! admin = "http://127.0.1.1:9090"
//! dns = ["127.0.1.1"]        # addresses the geo-router hands out in A/AAAA answers
//! capacity = 500             # requests in flight the edge is sized for
//! ```

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::Path;

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
    /// Preferred failover order; when empty, the next-nearest regions are used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbours: Vec<String>,
}

/// One edge server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub name: String,
    pub region: String,
    /// Base URL viewers fetch media from.
    pub http: String,
    /// Base URL of its admin surface (`/status`, `/healthz`).
    pub admin: String,
    /// Addresses handed out in DNS answers.
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// Requests in flight the edge is sized for.
    pub capacity: u32,
}

/// A topology that cannot be used, and which entry is at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("topology {path}: {message}")]
    Invalid { path: String, message: String },
}

impl Topology {
    /// Reads, parses and validates a topology file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let invalid = |message: String| Error::Invalid {
            path: path.display().to_string(),
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read: {e}")))?;
        Self::parse(&text).map_err(invalid)
    }

    /// Parses and validates topology text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let topology: Topology =
            toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        topology.validate()?;
        Ok(topology)
    }

    /// Checks names, references, coordinates and URLs.
    pub fn validate(&self) -> Result<(), String> {
        if self.regions.is_empty() {
            return Err("regions: at least one region is needed".into());
        }
        let mut regions = HashSet::new();
        for (i, region) in self.regions.iter().enumerate() {
            let at = format!("regions[{i}] ({})", region.name);
            if region.name.is_empty() || !regions.insert(region.name.as_str()) {
                return Err(format!("{at}: name is empty or used twice"));
            }
            if !(-90.0..=90.0).contains(&region.latitude) {
                return Err(format!(
                    "{at}: latitude {} is not within -90..90",
                    region.latitude
                ));
            }
            if !(-180.0..=180.0).contains(&region.longitude) {
                return Err(format!(
                    "{at}: longitude {} is not within -180..180",
                    region.longitude
                ));
            }
        }
        for (i, region) in self.regions.iter().enumerate() {
            for neighbour in &region.neighbours {
                if !regions.contains(neighbour.as_str()) || neighbour == &region.name {
                    return Err(format!(
                        "regions[{i}] ({}): neighbour {neighbour:?} is not another region",
                        region.name
                    ));
                }
            }
        }
        let mut edges = HashSet::new();
        for (i, edge) in self.edges.iter().enumerate() {
            let at = format!("edges[{i}] ({})", edge.name);
            if edge.name.is_empty() || !edges.insert(edge.name.as_str()) {
                return Err(format!("{at}: name is empty or used twice"));
            }
            if !regions.contains(edge.region.as_str()) {
                return Err(format!("{at}: region {:?} is not defined", edge.region));
            }
            check_url(&edge.http).map_err(|e| format!("{at}: http: {e}"))?;
            check_url(&edge.admin).map_err(|e| format!("{at}: admin: {e}"))?;
            if edge.capacity == 0 {
                return Err(format!("{at}: capacity must be above zero"));
            }
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

fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(format!(
            "{url:?} must be an http:// or https:// URL with a host"
        )),
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
capacity = 10
"#;

    #[test]
    fn parses_a_small_fleet() {
        let t = Topology::parse(SMALL).expect("valid");
        assert_eq!(t.edges_in("a").count(), 1);
        assert_eq!(t.region("a").map(|r| r.latitude), Some(1.0));
    }

    #[test]
    fn errors_name_the_entry() {
        let err = Topology::parse(&SMALL.replace("region = \"a\"", "region = \"b\"")).unwrap_err();
        assert!(
            err.contains("edges[0] (a-1)") && err.contains("\"b\""),
            "{err}"
        );
        let err =
            Topology::parse(&SMALL.replace("latitude = 1.0", "latitude = 100.0")).unwrap_err();
        assert!(err.contains("latitude"), "{err}");
        let err = Topology::parse(&SMALL.replace("capacity = 10", "capacity = 10\ncolour = 1"))
            .unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = Topology::parse(&SMALL.replace("http://127.0.1.1:8080", "ftp://x")).unwrap_err();
        assert!(err.contains("http:"), "{err}");
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
