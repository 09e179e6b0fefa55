//! The geo-router's configuration: a TOML file, overridden by command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the geo-router needs to start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    /// Address of the steering and redirect API.
    pub http: SocketAddr,
    /// Address of the admin surface.
    pub admin: SocketAddr,
    /// The fleet topology file.
    pub topology: PathBuf,
    /// The DNS zone the router is authoritative for.
    pub zone: String,
    /// How long a drain waits for in-flight responses.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 8053)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9053)),
            topology: PathBuf::from("testdata/topology.toml"),
            zone: "meridian.test".into(),
            grace: Duration::from_secs(5),
        }
    }
}
