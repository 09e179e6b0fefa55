//! The edge's configuration: a TOML file, overridden by command-line flags.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the edge needs to start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Addresses for viewers' requests.
    pub listen: Vec<SocketAddr>,
    /// Address of the admin surface.
    pub admin: SocketAddr,
    /// This edge's name, reported in `X-Served-By` and `/status`.
    pub name: String,
    /// The region this edge stands in.
    pub region: String,
    /// How long a drain waits for in-flight responses.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8081))],
            admin: SocketAddr::from(([127, 0, 0, 1], 9081)),
            name: "edge-1".into(),
            region: "local".into(),
            grace: Duration::from_secs(10),
        }
    }
}
