//! The geo-router's configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! name = "router-1"                 # this router's name among its peers
//! dns = "127.0.0.1:5353"            # UDP and TCP
//! http = "127.0.0.1:8053"           # steering, redirects, peer view exchange
//! admin = "127.0.0.1:9053"
//! topology = "topology.toml"
//! geoip = "geoip/meridian-city.mmdb"
//! zone = "meridian.test"
//! service_names = ["video"]          # video.meridian.test gets per-client answers
//! default_region = "eu-west"        # clients with no location (default: the first region)
//! answer_count = 4                  # A/AAAA records at most, all from the chosen region
//! ttl = "30s"                       # DNS TTL; "changing_ttl" while the fleet is changing
//! changing_ttl = "5s"
//! changing_window = "30s"
//! dev_mode = false                  # lets the HTTP API take ?client=IP
//! peers = ["http://127.0.0.2:8053"] # other routers' HTTP APIs (run three or more routers)
//! peer_secret = "change-me-to-32-random-bytes"   # signs the views and purges routers exchange
//! admin_token = "change-me"         # the fleet's admin token: POST /purge here, and the edges' PURGE
//! purge_log = "/var/lib/meridian/purges.jsonl"     # needed with admin_token
//! purge_log_keep = 100000           # purges kept per router's log (older: an edge that missed them empties its store)
//! apex = ["127.0.0.1"]              # A/AAAA at the zone apex
//! hostmaster = "hostmaster"         # SOA mailbox label
//! steering_ttl = "5s"               # how long players keep a steering manifest
//! dns_tcp_timeout = "5s"            # a DNS-over-TCP connection idle this long is closed
//! dns_udp_threads = 2               # UDP sockets, a thread each (default: one per CPU)
//! grace = "5s"                      # how long a drain waits for in-flight responses
//!
//! [connections]                     # the HTTP and admin listeners' timeouts and limits
//! idle_timeout = "60s"
//! max_connections = 20000
//!
//! [balance]                        # how viewers are shared out (see `decision`, `fleet`)
//! overload = 0.8                    # an edge above this load takes no new viewers...
//! reaccept = 0.7                    # ...until it is below this one again
//! imbalance = 1.25                  # nor one this far above its region's mean load
//! hold = "5s"                       # the least time between two changes of an edge's state
//!
//! [probe]
//! interval = "500ms"
//! timeout = "300ms"
//! down_after = 2
//! up_after = 3
//!
//! [[nameservers]]
//! name = "ns1"
//! address = "127.0.0.1"
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Everything the geo-router needs to start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterConfig {
    pub name: String,
    pub dns: SocketAddr,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub topology: PathBuf,
    pub geoip: PathBuf,
    pub zone: String,
    pub service_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_region: Option<String>,
    pub answer_count: usize,
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub changing_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub changing_window: Duration,
    pub balance: Balance,
    pub dev_mode: bool,
    pub peers: Vec<String>,
    /// The secret the routers' views are signed with (HMAC-SHA256); every router of a fleet
    /// has the same. Needed with `peers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_secret: Option<String>,
    /// The fleet's admin token: it authorizes `POST /purge` on the admin listener, and the
    /// router sends it to the edges (their `admin_token`). Unset: no fleet purges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Where the purges this router takes or its peers copy to it are kept (JSON lines);
    /// needed with `admin_token`, so that a restart loses none of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge_log: Option<PathBuf>,
    /// How many purges of each router's log are kept (older ones are dropped; an edge that
    /// missed any of those empties its store).
    pub purge_log_keep: usize,
    pub probe: ProbeConfig,
    pub nameservers: Vec<NameServer>,
    /// Addresses of the zone apex itself (A and AAAA at `zone`), e.g. a website.
    pub apex: Vec<IpAddr>,
    /// The SOA's responsible mailbox, as a label under the zone (`hostmaster.<zone>`).
    pub hostmaster: String,
    /// TTL the steering manifests ask players to wait before reloading them.
    #[serde(with = "humantime_serde")]
    pub steering_ttl: Duration,
    /// How long a DNS-over-TCP connection may sit without a complete query before it is
    /// closed (hickory's per-connection timeout).
    #[serde(with = "humantime_serde")]
    pub dns_tcp_timeout: Duration,
    /// UDP sockets on the DNS address (`SO_REUSEPORT`), each read by a thread of its own.
    pub dns_udp_threads: usize,
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// What the HTTP and admin listeners allow a connection: timeouts and limits (DNS over TCP
    /// has `dns_tcp_timeout`).
    pub connections: server_kit::connection::Limits,
}

/// How viewers are shared out over edges (`[balance]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Balance {
    /// An edge above this load takes no new viewers while another edge of its region does; a
    /// region whose edges are all above it spills new viewers to the nearest region with room;
    /// a failed region's viewers fill survivors up to it.
    pub overload: f64,
    /// An edge that stopped taking new viewers takes them again below this load.
    pub reaccept: f64,
    /// An edge above this multiple of its region's mean load (and above a quarter of its
    /// capacity) takes no new viewers either: the bound of consistent hashing with bounded
    /// loads, so hashing's unevenness cannot pile viewers on one edge.
    pub imbalance: f64,
    /// The least time between two changes of an edge's taking or not taking new viewers, so
    /// that viewers do not flap between edges.
    #[serde(with = "humantime_serde")]
    pub hold: Duration,
}

impl Default for Balance {
    fn default() -> Self {
        Self {
            overload: 0.8,
            reaccept: 0.7,
            imbalance: 1.25,
            hold: Duration::from_secs(5),
        }
    }
}

/// How edges are probed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub down_after: u32,
    pub up_after: u32,
}

/// One NS record of the zone and its address (glue).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NameServer {
    pub name: String,
    pub address: IpAddr,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            name: "router-1".into(),
            dns: SocketAddr::from(([127, 0, 0, 1], 5353)),
            http: SocketAddr::from(([127, 0, 0, 1], 8053)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9053)),
            topology: PathBuf::from("testdata/topology.toml"),
            geoip: PathBuf::from("testdata/geoip/meridian-city.mmdb"),
            zone: "meridian.test".into(),
            service_names: vec!["video".into()],
            default_region: None,
            answer_count: 4,
            ttl: Duration::from_secs(30),
            changing_ttl: Duration::from_secs(5),
            changing_window: Duration::from_secs(30),
            balance: Balance::default(),
            dev_mode: false,
            peers: Vec::new(),
            peer_secret: None,
            admin_token: None,
            purge_log: None,
            purge_log_keep: 100_000,
            probe: ProbeConfig::default(),
            nameservers: vec![NameServer {
                name: "ns1".into(),
                address: IpAddr::from([127, 0, 0, 1]),
            }],
            apex: Vec::new(),
            hostmaster: "hostmaster".into(),
            steering_ttl: Duration::from_secs(5),
            dns_tcp_timeout: Duration::from_secs(5),
            dns_udp_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            grace: Duration::from_secs(5),
            connections: server_kit::connection::Limits::default(),
        }
    }
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(300),
            down_after: 2,
            up_after: 3,
        }
    }
}

impl RouterConfig {
    /// Checks what serde cannot, naming the key at fault and what to do.
    pub fn validate(&self, topology: &topology::Topology) -> Result<(), Error> {
        let invalid = |key, problem: String| Err(Error::Config { key, problem });
        if self.zone.trim_matches('.').is_empty() {
            return invalid(
                "zone",
                "must not be empty; name the zone the router answers for, like \"meridian.test\""
                    .into(),
            );
        }
        if let Some(region) = &self.default_region
            && topology.region(region).is_none()
        {
            let names: Vec<&str> = topology.regions.iter().map(|r| r.name.as_str()).collect();
            return invalid(
                "default_region",
                format!(
                    "{region:?} is not a region of the topology; use one of {names:?}, or leave it \
                     out for the first"
                ),
            );
        }
        if self.answer_count == 0 {
            return invalid(
                "answer_count",
                "must be at least 1 (the A/AAAA records in an answer)".into(),
            );
        }
        let balance = &self.balance;
        if !(0.0..=1.0).contains(&balance.overload) {
            return invalid(
                "balance.overload",
                format!(
                    "{} must be between 0 and 1 (the load above which an edge takes no new \
                     viewers)",
                    balance.overload
                ),
            );
        }
        if !(0.0..=balance.overload).contains(&balance.reaccept) {
            return invalid(
                "balance.reaccept",
                format!(
                    "{} must be between 0 and balance.overload ({}): the load below which an \
                     edge takes new viewers again",
                    balance.reaccept, balance.overload
                ),
            );
        }
        if balance.imbalance < 1.0 {
            return invalid(
                "balance.imbalance",
                format!(
                    "{} must be at least 1 (a multiple of the region's mean load)",
                    balance.imbalance
                ),
            );
        }
        match &self.peer_secret {
            None if !self.peers.is_empty() => {
                return invalid(
                    "peer_secret",
                    "is needed with peers: the views routers exchange are signed with it; give \
                     every router of the fleet the same random secret of 16 characters or more"
                        .into(),
                );
            }
            Some(secret) if secret.len() < 16 => {
                return invalid(
                    "peer_secret",
                    "must be 16 characters or more (a random secret)".into(),
                );
            }
            _ => {}
        }
        match (&self.admin_token, &self.purge_log) {
            (Some(token), _) if token.is_empty() => {
                return invalid(
                    "admin_token",
                    "must not be empty (leave it out to disable fleet purges)".into(),
                );
            }
            (Some(_), None) => {
                return invalid(
                    "purge_log",
                    "is needed with admin_token: the purges are numbered and kept there, so \
                     that edges that missed some get them after a restart of this router"
                        .into(),
                );
            }
            _ => {}
        }
        if self.purge_log_keep == 0 {
            return invalid("purge_log_keep", "must be at least 1".into());
        }
        if self.probe.down_after == 0 {
            return invalid("probe.down_after", "must be at least 1".into());
        }
        if self.probe.up_after == 0 {
            return invalid("probe.up_after", "must be at least 1".into());
        }
        if self.probe.timeout >= self.probe.interval {
            return invalid(
                "probe.timeout",
                format!(
                    "{:?} must be shorter than probe.interval ({:?}); lower it or raise the \
                     interval",
                    self.probe.timeout, self.probe.interval
                ),
            );
        }
        Ok(())
    }

    /// The region for clients with no location.
    pub fn default_region<'a>(&'a self, topology: &'a topology::Topology) -> &'a str {
        self.default_region.as_deref().unwrap_or_else(|| {
            topology
                .regions
                .first()
                .map(|r| r.name.as_str())
                .unwrap_or("")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> topology::Topology {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/topology.toml");
        topology::Topology::load(&path).expect("testdata/topology.toml")
    }

    #[test]
    fn the_example_in_these_docs_parses_and_is_valid() {
        let example = test_support::doc_example(include_str!("config.rs"), "toml");
        let config: RouterConfig =
            server_kit::config::parse(&example).expect("the example in config.rs parses");
        assert_eq!(config.apex, vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(config.hostmaster, "hostmaster");
        assert_eq!(config.probe.interval, Duration::from_millis(500));
        config.validate(&topology()).expect("the example is valid");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let config = RouterConfig {
            default_region: Some("mars".into()),
            ..RouterConfig::default()
        };
        let err = config.validate(&topology()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    key: "default_region",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("\"us-east\""), "{err}");
        let mut config = RouterConfig::default();
        config.probe.timeout = config.probe.interval;
        let err = config.validate(&topology()).unwrap_err().to_string();
        assert!(
            err.starts_with("config key `probe.timeout`: 500ms"),
            "{err}"
        );
    }
}
