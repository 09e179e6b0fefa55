//! The router's shared state and the one decision both DNS and HTTP use.

use foldhash::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use topology::Topology;

use crate::config::RouterConfig;
use crate::decision::{self, Decision};
use crate::fleet::{Fleet, Snapshot};
use crate::geoip::GeoIp;
use crate::metrics::Metrics;

/// The subnet a client's edges are picked by: a /24 (IPv4) or /48 (IPv6), the sizes resolvers
/// send in ECS and networks are routed in.
const SUBNET_V4: u8 = 24;
const SUBNET_V6: u8 = 48;

/// The prefix length of the subnet a client's edges are picked by, for a client address with
/// `source_prefix` significant bits: a /24 or /48, or the shorter source prefix.
pub fn subnet_prefix(client: IpAddr, source_prefix: u8) -> u8 {
    source_prefix.min(match client {
        IpAddr::V4(_) => SUBNET_V4,
        IpAddr::V6(_) => SUBNET_V6,
    })
}

/// Everything the handlers read.
#[derive(Debug)]
pub struct Router {
    pub config: RouterConfig,
    pub geoip: GeoIp,
    pub fleet: Arc<Fleet>,
    pub metrics: Metrics,
    /// Fleet purges, when the config has an `admin_token` (and so a `purge_log`).
    pub purger: Option<Arc<crate::purge::Purger>>,
    default_region: RwLock<String>,
    /// The view HTTP requests decide on, taken again when the fleet's generation moves: one
    /// per fleet change, not one (a snapshot and its regions) per request.
    shared: Mutex<Option<Arc<View>>>,
}

/// The fleet as decisions read it, at one [`Fleet::generation`].
#[derive(Debug)]
pub struct View {
    pub generation: u64,
    pub snapshot: Arc<Snapshot>,
    default_region: String,
    /// The regions' edges and ranks on this view's fleet state.
    pub regions: Arc<decision::Regions>,
    /// Each client location's distances to the regions and their order (`decision::Place`),
    /// kept for this view: a DNS thread holds one view for many queries, and a client's
    /// location is one of few places, so the trigonometry and the sort are done once per place,
    /// not per query.
    places: Mutex<HashMap<Location, decision::Place>>,
}

/// A client location as a map key: its coordinates' bits (None: no location).
type Location = Option<(u64, u64)>;

/// Past this many places kept in a view, all are dropped (a GeoIP database has few places, but
/// the memory must stay bounded whatever it holds).
const PLACES_KEPT: usize = 4096;

impl Clone for View {
    fn clone(&self) -> Self {
        Self {
            generation: self.generation,
            snapshot: self.snapshot.clone(),
            default_region: self.default_region.clone(),
            regions: self.regions.clone(),
            places: Mutex::default(),
        }
    }
}

/// A decision with what led to it.
#[derive(Debug, Clone)]
pub struct Routed {
    pub snapshot: Arc<Snapshot>,
    /// The snapshot's regions, as the decision read them.
    pub regions: Arc<decision::Regions>,
    pub decision: Decision,
    /// The scope an ECS answer may claim: the longer of the GeoIP network's prefix and the
    /// client subnet's the decision hashed.
    pub scope: u8,
}

impl Router {
    pub fn new(
        config: RouterConfig,
        geoip: GeoIp,
        topology: Topology,
        metrics: Metrics,
        purge_log: Option<crate::purge_log::PurgeLog>,
    ) -> Self {
        let default_region = config.default_region(&topology).to_owned();
        let fleet = Arc::new(Fleet::new(
            &config.name,
            topology,
            config.probe.down_after,
            config.probe.up_after,
            config.probe.interval,
            config.balance.clone(),
            crate::fleet::Quorum {
                peers: config.peers.len(),
                key: config.peer_secret.as_deref().map(crate::views::key),
            },
        ));
        let purger = purge_log
            .zip(config.admin_token.as_deref())
            .map(|(log, token)| {
                Arc::new(crate::purge::Purger::new(
                    &config.name,
                    log,
                    token,
                    config.peers.clone(),
                    config.peer_secret.as_deref(),
                    metrics.clone(),
                ))
            });
        Self {
            config,
            geoip,
            fleet,
            metrics,
            purger,
            default_region: RwLock::new(default_region),
            shared: Mutex::default(),
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

    /// Decides for a client address (an ECS address with its source prefix, or the source
    /// address with its full length), on the fleet as it is now.
    pub fn route(&self, client: IpAddr, source_prefix: u8) -> Routed {
        self.route_in(&self.shared_view(), client, source_prefix)
    }

    /// The view shared by callers that decide one at a time (HTTP), current at the fleet's
    /// generation now.
    fn shared_view(&self) -> Arc<View> {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        match shared.as_ref() {
            Some(view) if view.generation == self.fleet.generation() => view.clone(),
            _ => shared.insert(Arc::new(self.view())).clone(),
        }
    }

    /// What decisions read of the fleet now; one view serves many decisions (a batch of DNS
    /// queries) while [`Fleet::generation`] stays the same.
    pub fn view(&self) -> View {
        // The generation first: a change between the two reads then leaves a view that looks
        // older than its snapshot, so it is taken again, never one that looks newer.
        let generation = self.fleet.generation();
        let snapshot = Arc::new(self.fleet.snapshot());
        View {
            generation,
            regions: Arc::new(decision::Regions::new(&snapshot.topology, &snapshot.status)),
            snapshot,
            default_region: self
                .default_region
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            places: Mutex::default(),
        }
    }

    /// Decides for a client on `view`. The client's edges are picked by its subnet (a /24 or
    /// /48, or the shorter source prefix); the scope is the longer of that and the GeoIP
    /// network's prefix, so a resolver keeps the answer for exactly the clients it fits.
    pub fn route_in(&self, view: &View, client: IpAddr, source_prefix: u8) -> Routed {
        let started = Instant::now();
        let mut decision = Decision::default();
        let scope = self.decide_in(view, client, source_prefix, &mut decision);
        self.metrics.decision(started.elapsed().as_secs_f64());
        Routed {
            snapshot: view.snapshot.clone(),
            regions: view.regions.clone(),
            decision,
            scope,
        }
    }

    /// [`Router::route_in`]'s decision, written into `out` (its buffers reused, so a DNS
    /// thread allocates nothing per decision outside a failover); returns the scope. Not timed: the caller times
    /// it, or a sample of its calls (the clock reads cost as much as a good part of a decision).
    pub fn decide_in(
        &self,
        view: &View,
        client: IpAddr,
        source_prefix: u8,
        out: &mut Decision,
    ) -> u8 {
        let (location, geo_prefix) = match self.geoip.locate(client) {
            Ok(found) => (Some((found.latitude, found.longitude)), found.prefix_len),
            Err(unlocated) => (None, unlocated.prefix_len),
        };
        let subnet = subnet_prefix(client, source_prefix);
        let key = decision::subnet_key(client, subnet);
        let topology = &view.snapshot.topology;
        let mut places = view.places.lock().unwrap_or_else(|p| p.into_inner());
        if places.len() >= PLACES_KEPT {
            places.clear();
        }
        let place = places
            .entry(location.map(|(lat, lon)| (lat.to_bits(), lon.to_bits())))
            .or_insert_with(|| {
                decision::Place::new(topology, &view.regions, location, &view.default_region)
            });
        decision::decide_into(
            &view.snapshot.status,
            &view.regions,
            place,
            key,
            self.config.balance.overload,
            out,
        );
        drop(places);
        geo_prefix.max(subnet)
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
