//! The router's shared state and the one decision both DNS and HTTP use.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use topology::Topology;

use crate::config::RouterConfig;
use crate::decision::{self, Decision};
use crate::fleet::{Fleet, Snapshot};
use crate::geoip::GeoIp;
use crate::metrics::Metrics;

/// Everything the handlers read.
#[derive(Debug)]
pub struct Router {
    pub config: RouterConfig,
    pub geoip: GeoIp,
    pub fleet: Arc<Fleet>,
    pub metrics: Metrics,
    default_region: RwLock<String>,
}

/// A decision with what led to it.
#[derive(Debug, Clone)]
pub struct Routed {
    pub snapshot: Snapshot,
    pub decision: Decision,
    /// The scope an ECS answer may claim: the prefix length of the GeoIP network matched.
    pub scope: u8,
}

impl Router {
    pub fn new(config: RouterConfig, geoip: GeoIp, topology: Topology, metrics: Metrics) -> Self {
        let default_region = config.default_region(&topology).to_owned();
        let fleet = Arc::new(Fleet::new(
            &config.name,
            topology,
            config.probe.down_after,
            config.probe.up_after,
            config.probe.interval,
        ));
        Self {
            config,
            geoip,
            fleet,
            metrics,
            default_region: RwLock::new(default_region),
        }
    }

    /// Swaps in a new topology (SIGHUP); the caller validated it.
    pub fn reload(&self, topology: Topology) {
        *self
            .default_region
            .write()
            .unwrap_or_else(|p| p.into_inner()) = self.config.default_region(&topology).to_owned();
        self.fleet.replace_topology(topology);
    }

    /// Decides for a client address (an ECS address or the source address).
    pub fn route(&self, client: Option<IpAddr>) -> Routed {
        let started = Instant::now();
        let (location, scope) = match client.map(|ip| self.geoip.locate(ip)) {
            Some(Ok(found)) => (Some((found.latitude, found.longitude)), found.prefix_len),
            Some(Err(unlocated)) => (None, unlocated.prefix_len),
            None => (None, 0),
        };
        let snapshot = self.fleet.snapshot();
        let default_region = self
            .default_region
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let decision = decision::decide(
            &snapshot.topology,
            &snapshot.status,
            location,
            &default_region,
            self.config.overload,
            self.config.answer_count,
        );
        self.metrics.decision(started.elapsed().as_secs_f64());
        Routed {
            snapshot,
            decision,
            scope,
        }
    }

    /// The DNS TTL now: shorter while the fleet is changing.
    pub fn ttl(&self) -> Duration {
        if self.fleet.changed_within(self.config.changing_window) {
            self.config.changing_ttl
        } else {
            self.config.ttl
        }
    }
}
