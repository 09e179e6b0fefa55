//! What the router believes about the fleet: its own probe verdicts, its peers' verdicts, and
//! the effective health that answers use.
//!
//! - Each edge's admin `/status` and its viewer listener are probed every interval: it goes down after `down_after`
//!   consecutive failures and up after `up_after` consecutive successes; load and draining come
//!   from the same probe.
//! - Routers exchange their own verdicts (`GET /view` on the HTTP API), signed with the fleet's
//!   `peer_secret` and sequenced (see `views`): a view that does not verify, or is not newer
//!   than the last, is not taken, so a frozen peer ages out. An edge is out of answers only when
//!   a majority of the *configured* routers (this one and its `peers`) see it down. A router
//!   that hears fewer than a majority changes nothing (it keeps the last agreed view, and says
//!   `quorum: false` on `/status`), so a router cut off from its peers cannot take edges out on
//!   its own word. A majority must survive the loss of one router: run at least three.
//! - A router that reaches no peer and sees every edge down keeps its last known-good view
//!   rather than blackholing every viewer.
//! - Whether an edge takes new viewers (`accepting`) follows its load with hysteresis: it
//!   stops above `balance.overload`, or when it carries more than `balance.imbalance` times its
//!   region's mean load (and over a quarter of its capacity), and starts again below
//!   `balance.reaccept` (and within half that margin of the mean); two changes are at least
//!   `balance.hold` apart, so a viewer's edge does not flap.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use topology::Topology;

use crate::config::Balance;
use crate::decision::EdgeStatus;
use crate::probe::ProbeError;

/// One edge as this router sees it.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeHealth {
    /// This router's own probe verdict.
    pub own_up: bool,
    #[serde(skip)]
    pub ok_streak: u32,
    #[serde(skip)]
    pub fail_streak: u32,
    pub load: f64,
    pub draining: bool,
    /// Some origin answers the edge (its own check, on `/status`).
    pub origin_reachable: bool,
    /// Takes new viewers (see the module's rules).
    pub accepting: bool,
    /// When `accepting` last changed.
    #[serde(skip)]
    pub accepting_since: Option<Instant>,
    /// The verdict answers use (after the quorum).
    pub up: bool,
    /// When the effective verdict last changed, and why.
    pub last_change: Option<Change>,
}

/// A change of an edge's effective state.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub at_unix_ms: u64,
    pub up: bool,
    pub why: String,
}

impl Default for EdgeHealth {
    fn default() -> Self {
        // Optimistic start: a router that just started answers at once; a dead edge is out
        // after `down_after` probes.
        Self {
            own_up: true,
            ok_streak: 0,
            fail_streak: 0,
            load: 0.0,
            draining: false,
            origin_reachable: true,
            accepting: true,
            accepting_since: None,
            up: true,
            last_change: None,
        }
    }
}

/// The result of one probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Ok {
        load: f64,
        draining: bool,
        origin_reachable: bool,
    },
    Failed(ProbeError),
}

pub use crate::views::View;

/// The last view taken from a peer, and when.
#[derive(Debug)]
struct PeerView {
    seen: Instant,
    epoch: u64,
    seq: u64,
    down: HashSet<String>,
}

/// Who votes: the routers configured (this one and its `peers`) and the key their views are
/// signed with.
#[derive(Debug, Clone)]
pub struct Quorum {
    pub peers: usize,
    pub key: Option<ring::hmac::Key>,
}

/// The fleet state shared by the DNS handler, the HTTP API and the prober.
#[derive(Debug)]
pub struct Fleet {
    name: String,
    inner: RwLock<Inner>,
    peers: Mutex<HashMap<String, PeerView>>,
    last_change: Mutex<Option<Instant>>,
    down_after: u32,
    up_after: u32,
    peer_expiry: Duration,
    balance: Balance,
    quorum: Quorum,
    /// This router's epoch (start, Unix ms) and probe rounds, for its own view.
    epoch: u64,
    rounds: std::sync::atomic::AtomicU64,
    /// Moved on by every write of `inner` (see [`Fleet::generation`]).
    generation: std::sync::atomic::AtomicU64,
    /// Whether the last recompute heard a majority of the configured routers.
    has_quorum: std::sync::atomic::AtomicBool,
}

/// Below this load an edge's share of its region's traffic does not matter: the imbalance rule
/// starts above it (hashing few subnets is uneven, and nothing is near full).
const IMBALANCE_FLOOR: f64 = 0.25;

#[derive(Debug)]
struct Inner {
    topology: Arc<Topology>,
    edges: Vec<EdgeHealth>,
    last_good: Option<Vec<bool>>,
}

/// A consistent copy for one decision.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub topology: Arc<Topology>,
    pub status: Vec<EdgeStatus>,
}

impl Fleet {
    pub fn new(
        name: &str,
        topology: Topology,
        down_after: u32,
        up_after: u32,
        interval: Duration,
        balance: Balance,
        quorum: Quorum,
    ) -> Self {
        let edges = vec![EdgeHealth::default(); topology.edges.len()];
        Self {
            name: name.to_owned(),
            inner: RwLock::new(Inner {
                topology: Arc::new(topology),
                edges,
                last_good: None,
            }),
            peers: Mutex::new(HashMap::new()),
            last_change: Mutex::new(None),
            down_after,
            up_after,
            peer_expiry: interval * 3,
            balance,
            quorum,
            epoch: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            rounds: std::sync::atomic::AtomicU64::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            has_quorum: std::sync::atomic::AtomicBool::new(true),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Every change to what [`Fleet::snapshot`] returns is made through this guard, and taking
    /// it moves the generation on: a snapshot taken after a reader sees the new generation
    /// waits for the writer, so it holds the change.
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        let guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        guard
    }

    /// A number that changes whenever the fleet may have (a write to its state): what is
    /// derived from a snapshot can be kept while it stays the same.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current topology.
    pub fn topology(&self) -> Arc<Topology> {
        self.read().topology.clone()
    }

    /// What decisions use now.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.read();
        // An edge that cannot reach any origin is out while another edge can; when none can
        // (the origin is down), every edge keeps serving what it has.
        let some_reach = inner
            .edges
            .iter()
            .any(|e| e.up && !e.draining && e.origin_reachable);
        Snapshot {
            topology: inner.topology.clone(),
            status: inner
                .edges
                .iter()
                .map(|e| EdgeStatus {
                    up: e.up && (e.origin_reachable || !some_reach),
                    load: e.load,
                    draining: e.draining,
                    accepting: e.accepting,
                })
                .collect(),
        }
    }

    /// True when some edge changed state within `window` (answers then use a short TTL).
    pub fn changed_within(&self, window: Duration) -> bool {
        self.last_change
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < window)
    }

    /// Replaces the topology (SIGHUP), keeping what is known of edges that stay.
    pub fn replace_topology(&self, topology: Topology) {
        let mut inner = self.write();
        let old: HashMap<String, EdgeHealth> = inner
            .topology
            .edges
            .iter()
            .zip(inner.edges.iter())
            .map(|(e, h)| (e.name.clone(), h.clone()))
            .collect();
        inner.edges = topology
            .edges
            .iter()
            .map(|e| old.get(&e.name).cloned().unwrap_or_default())
            .collect();
        inner.topology = Arc::new(topology);
        inner.last_good = None;
    }

    /// Records one round of probe results (same order as the topology's edges).
    pub fn record_probes(&self, topology: &Arc<Topology>, results: Vec<Probe>) {
        let mut inner = self.write();
        if !Arc::ptr_eq(&inner.topology, topology) {
            return; // The topology was reloaded while probing; the next round counts.
        }
        for (health, result) in inner.edges.iter_mut().zip(results) {
            match result {
                Probe::Ok {
                    load,
                    draining,
                    origin_reachable,
                } => {
                    health.ok_streak += 1;
                    health.fail_streak = 0;
                    health.load = load;
                    health.draining = draining;
                    health.origin_reachable = origin_reachable;
                    if !health.own_up && health.ok_streak >= self.up_after {
                        health.own_up = true;
                    }
                }
                Probe::Failed(_) => {
                    health.fail_streak += 1;
                    health.ok_streak = 0;
                    if health.own_up && health.fail_streak >= self.down_after {
                        health.own_up = false;
                    }
                }
            }
        }
        let topology = inner.topology.clone();
        update_accepting(&self.balance, &topology, &mut inner.edges, Instant::now());
        drop(inner);
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.recompute();
    }

    /// Records a peer's signed view. `None` (unreachable), a view whose MAC does not verify
    /// and one not newer than the last taken change nothing: the last view stays and counts in
    /// the quorum until it is three probe intervals old, so one lost poll does not change the
    /// quorum and a frozen peer ages out.
    pub fn record_peer(&self, peer: &str, signed: Option<crate::views::Signed>) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(signed), Some(key)) = (signed, &self.quorum.key) {
            let last = peers.get(peer).map(|p| (p.epoch, p.seq));
            match crate::views::verify(key, signed, None, last) {
                Ok(view) => {
                    peers.insert(
                        peer.to_owned(),
                        PeerView {
                            seen: Instant::now(),
                            epoch: view.epoch,
                            seq: view.seq,
                            down: view.down.into_iter().collect(),
                        },
                    );
                }
                Err(why) => tracing::debug!(%peer, %why, "peer view not taken"),
            }
        }
        drop(peers);
        self.recompute();
    }

    /// This router's own view, signed for its peers (None without a `peer_secret`).
    pub fn own_signed_view(&self) -> Option<crate::views::Signed> {
        let key = self.quorum.key.as_ref()?;
        Some(crate::views::sign(key, self.own_view()))
    }

    /// This router's own view.
    pub fn own_view(&self) -> View {
        let inner = self.read();
        View {
            router: self.name.clone(),
            epoch: self.epoch,
            seq: self.rounds.load(std::sync::atomic::Ordering::Relaxed),
            down: inner
                .topology
                .edges
                .iter()
                .zip(inner.edges.iter())
                .filter(|(_, h)| !h.own_up)
                .map(|(e, _)| e.name.clone())
                .collect(),
        }
    }

    /// Peers heard from recently.
    pub fn reachable_peers(&self) -> usize {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .values()
            .filter(|p| p.seen.elapsed() < self.peer_expiry)
            .count()
    }

    /// Recomputes the effective verdicts from own and peer views.
    fn recompute(&self) {
        let peer_downs: Vec<HashSet<String>> = {
            let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
            peers
                .values()
                .filter(|p| p.seen.elapsed() < self.peer_expiry)
                .map(|p| p.down.clone())
                .collect()
        };
        // The quorum counts the configured routers: without a majority of them heard, this
        // router changes nothing (it keeps the last agreed view).
        let configured = 1 + self.quorum.peers;
        let majority = configured / 2 + 1;
        let heard = 1 + peer_downs.len();
        let quorate = heard >= majority;
        self.has_quorum
            .store(quorate, std::sync::atomic::Ordering::Relaxed);
        let voters = configured;
        let mut inner = self.write();
        let names: Vec<String> = inner
            .topology
            .edges
            .iter()
            .map(|e| e.name.clone())
            .collect();
        let mut verdicts: Vec<(bool, usize)> = names
            .iter()
            .zip(inner.edges.iter())
            .map(|(name, health)| {
                let down_votes = usize::from(!health.own_up)
                    + peer_downs.iter().filter(|d| d.contains(name)).count();
                (down_votes < majority, down_votes)
            })
            .collect();
        // Alone, and everything looks down: more likely our own network than the whole fleet.
        let all_down = verdicts.iter().all(|(up, _)| !up);
        let alone = self.quorum.peers == 0 && all_down && inner.last_good.is_some();
        if alone && let Some(good) = &inner.last_good {
            for (verdict, up) in verdicts.iter_mut().zip(good) {
                verdict.0 = *up;
            }
        }
        // Without a quorum: the last agreed verdicts stand.
        if !quorate {
            for (verdict, health) in verdicts.iter_mut().zip(inner.edges.iter()) {
                verdict.0 = health.up;
            }
        }
        let kept = alone || !quorate;
        let mut changed = false;
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        for ((health, (up, down_votes)), name) in
            inner.edges.iter_mut().zip(verdicts.iter()).zip(&names)
        {
            if health.up != *up {
                let why = if alone {
                    "no peer reachable and every edge looks down: keeping the last known-good view"
                        .to_owned()
                } else if *up {
                    format!("{down_votes} of {voters} routers see it down")
                } else {
                    format!(
                        "{down_votes} of {voters} routers see it down (own probes: {} failures)",
                        health.fail_streak
                    )
                };
                tracing::info!(edge = %name, up, %why, "edge state changed");
                health.up = *up;
                health.last_change = Some(Change {
                    at_unix_ms: now_ms,
                    up: *up,
                    why,
                });
                changed = true;
            }
        }
        if inner.edges.iter().any(|h| h.up) && !kept {
            inner.last_good = Some(inner.edges.iter().map(|h| h.up).collect());
        }
        drop(inner);
        if changed {
            *self.last_change.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    /// The JSON view of the fleet for `/status` and `/fleet`.
    pub fn to_json(&self) -> serde_json::Value {
        let inner = self.read();
        let edges: Vec<serde_json::Value> = inner
            .topology
            .edges
            .iter()
            .zip(inner.edges.iter())
            .map(|(e, h)| {
                serde_json::json!({
                    "name": e.name, "region": e.region, "http": e.http, "admin": e.admin, "dns": e.dns,
                    "capacity": e.capacity, "up": h.up, "own_probe_up": h.own_up,
                    "load": h.load, "draining": h.draining, "accepting": h.accepting,
                    "origin_reachable": h.origin_reachable,
                    "last_change": h.last_change,
                })
            })
            .collect();
        serde_json::json!({
            "router": self.name,
            "regions": inner.topology.regions,
            "edges": edges,
            "reachable_peers": self.reachable_peers(),
            "routers_configured": 1 + self.quorum.peers,
            "quorum": self.has_quorum.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// Sets each edge's `accepting` from its load (the module's rules), region by region.
fn update_accepting(
    balance: &Balance,
    topology: &Topology,
    edges: &mut [EdgeHealth],
    now: Instant,
) {
    for region in &topology.regions {
        let members: Vec<usize> = topology
            .edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.region == region.name)
            .map(|(i, _)| i)
            .collect();
        let serving = || {
            members
                .iter()
                .copied()
                .filter(|&i| edges[i].own_up && !edges[i].draining)
        };
        let capacity: f64 = serving()
            .map(|i| topology.edges[i].capacity.egress_mbps as f64)
            .sum();
        let mean = if capacity > 0.0 {
            serving()
                .map(|i| topology.edges[i].capacity.egress_mbps as f64 * edges[i].load)
                .sum::<f64>()
                / capacity
        } else {
            0.0
        };
        for &i in &members {
            let health = &mut edges[i];
            let load = health.load;
            let above_mean = |factor: f64| load > IMBALANCE_FLOOR && load > factor * mean;
            let want = if health.accepting {
                !(load > balance.overload || above_mean(balance.imbalance))
            } else {
                load < balance.reaccept && !above_mean(1.0 + (balance.imbalance - 1.0) / 2.0)
            };
            let held = health
                .accepting_since
                .is_some_and(|t| now.duration_since(t) < balance.hold);
            if want != health.accepting && !held {
                tracing::info!(edge = %topology.edges[i].name, accepting = want, load, region_mean = mean, "edge's intake changed");
                health.accepting = want;
                health.accepting_since = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "the fleet's shared secret";

    /// A router with `peers` configured peers.
    fn fleet_of(peers: usize) -> (Fleet, Arc<Topology>) {
        let t = Topology::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/topology.toml"),
        )
        .unwrap();
        let quorum = Quorum {
            peers,
            key: Some(crate::views::key(SECRET)),
        };
        let f = Fleet::new(
            "r1",
            t,
            2,
            3,
            Duration::from_secs(3600),
            Balance::default(),
            quorum,
        );
        let topo = f.topology();
        (f, topo)
    }

    fn fleet() -> (Fleet, Arc<Topology>) {
        fleet_of(0)
    }

    fn round(f: &Fleet, t: &Arc<Topology>, first_ok: bool) {
        let mut results = vec![
            Probe::Ok {
                load: 0.1,
                draining: false,
                origin_reachable: true,
            };
            t.edges.len()
        ];
        if !first_ok {
            results[0] = failed();
        }
        f.record_probes(t, results);
    }

    fn failed() -> Probe {
        Probe::Failed(ProbeError::Unreachable {
            url: "http://127.0.1.1:9090/status".into(),
            error: "connection refused".into(),
        })
    }

    fn every_probe_fails(f: &Fleet, t: &Arc<Topology>, rounds: usize) {
        for _ in 0..rounds {
            f.record_probes(t, vec![failed(); t.edges.len()]);
        }
    }

    fn all_up(f: &Fleet) -> bool {
        f.snapshot().status.iter().all(|s| s.up)
    }

    /// Peer `router` publishes a view in which `down` are down.
    fn peer_sees_down(f: &Fleet, router: &str, down: &[&str]) {
        let seq = f.peers.lock().unwrap().get(router).map_or(1, |p| p.seq + 1);
        let view = View {
            router: router.into(),
            epoch: 1,
            seq,
            down: down.iter().map(|d| d.to_string()).collect(),
        };
        f.record_peer(
            router,
            Some(crate::views::sign(&crate::views::key(SECRET), view)),
        );
    }

    #[test]
    fn down_after_two_failures_up_after_three_successes() {
        let (f, t) = fleet();
        round(&f, &t, false);
        assert!(f.snapshot().status[0].up, "one failure is not enough");
        round(&f, &t, false);
        assert!(!f.snapshot().status[0].up);
        assert!(f.changed_within(Duration::from_secs(5)));
        round(&f, &t, true);
        round(&f, &t, true);
        assert!(!f.snapshot().status[0].up);
        round(&f, &t, true);
        assert!(f.snapshot().status[0].up);
    }

    #[test]
    fn a_minority_cannot_take_an_edge_out() {
        let (f, t) = fleet_of(2);
        let names: Vec<String> = t.edges.iter().map(|e| e.name.clone()).collect();
        // This router's probes see everything down, two peers see everything up.
        peer_sees_down(&f, "p2", &[]);
        peer_sees_down(&f, "p3", &[]);
        every_probe_fails(&f, &t, 2);
        assert!(all_up(&f), "two of three see them up");
        // When a peer agrees an edge is down, the majority takes it out.
        peer_sees_down(&f, "p2", &[&names[0]]);
        let status = f.snapshot().status;
        assert!(!status[0].up && status[1].up);
    }

    #[test]
    fn without_a_majority_of_the_configured_routers_nothing_changes() {
        let (f, t) = fleet_of(2);
        let names: Vec<String> = t.edges.iter().map(|e| e.name.clone()).collect();
        peer_sees_down(&f, "p2", &[]);
        round(&f, &t, true);
        assert!(f.has_quorum.load(std::sync::atomic::Ordering::Relaxed));
        // p2's view ages out (the peers are gone); this router alone sees an edge die.
        f.peers.lock().unwrap().get_mut("p2").unwrap().seen -= Duration::from_secs(10_800);
        every_probe_fails(&f, &t, 2);
        assert!(all_up(&f), "one of three routers heard: nothing is removed");
        assert!(!f.has_quorum.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(f.to_json()["quorum"], false);
        // A peer that comes back and agrees: two of three, the edge goes.
        peer_sees_down(&f, "p2", &[&names[0]]);
        assert!(!f.snapshot().status[0].up);
    }

    #[test]
    fn a_peer_view_that_is_not_newer_or_not_signed_is_not_taken() {
        let (f, t) = fleet_of(2);
        let names: Vec<String> = t.edges.iter().map(|e| e.name.clone()).collect();
        every_probe_fails(&f, &t, 2);
        let view = |seq| View {
            router: "p2".into(),
            epoch: 1,
            seq,
            down: vec![names[0].clone()],
        };
        let key = crate::views::key(SECRET);
        f.record_peer("p2", Some(crate::views::sign(&key, view(7))));
        assert!(!f.snapshot().status[0].up, "two of three see it down");
        // The same view again (a frozen peer answering from memory, a replay): not fresh.
        let seen = f.peers.lock().unwrap()["p2"].seen;
        f.record_peer("p2", Some(crate::views::sign(&key, view(7))));
        assert_eq!(f.peers.lock().unwrap()["p2"].seen, seen);
        // Signed with another secret: dropped.
        let forged = crate::views::sign(&crate::views::key("not the fleet's secret"), view(8));
        f.record_peer("p2", Some(forged));
        assert_eq!(f.peers.lock().unwrap()["p2"].seq, 7);
    }

    #[test]
    fn alone_and_all_down_keeps_the_last_good_view() {
        let (f, t) = fleet();
        round(&f, &t, true);
        every_probe_fails(&f, &t, 2);
        assert!(all_up(&f), "split brain must not empty the CDN");
    }

    #[test]
    fn intake_follows_load_with_hysteresis_and_a_hold() {
        let t = Topology::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/topology.toml"),
        )
        .unwrap();
        let balance = Balance::default();
        let mut edges = vec![EdgeHealth::default(); t.edges.len()];
        let start = Instant::now();
        let at = |edges: &mut Vec<EdgeHealth>, loads: (f64, f64), secs: u64| {
            edges[0].load = loads.0;
            edges[1].load = loads.1;
            update_accepting(&balance, &t, edges, start + Duration::from_secs(secs));
            (edges[0].accepting, edges[1].accepting)
        };
        assert_eq!(at(&mut edges, (0.5, 0.5), 0), (true, true));
        assert_eq!(
            at(&mut edges, (0.85, 0.5), 1),
            (false, true),
            "over overload"
        );
        assert_eq!(
            at(&mut edges, (0.75, 0.5), 10),
            (false, true),
            "not yet under reaccept"
        );
        assert_eq!(
            at(&mut edges, (0.65, 0.6), 11),
            (true, true),
            "under reaccept"
        );
        assert_eq!(
            at(&mut edges, (0.9, 0.6), 12),
            (true, true),
            "held: changed 1 s ago"
        );
        assert_eq!(
            at(&mut edges, (0.9, 0.6), 17),
            (false, true),
            "the hold is over"
        );
        // Far above the region's mean, though under overload: hashing's bad luck is bounded.
        let mut edges = vec![EdgeHealth::default(); t.edges.len()];
        assert_eq!(
            at(&mut edges, (0.6, 0.2), 0),
            (false, true),
            "0.6 > 1.25 x 0.4"
        );
        assert_eq!(at(&mut edges, (0.2, 0.1), 1), (false, true), "held");
        assert_eq!(
            at(&mut edges, (0.2, 0.1), 6),
            (true, true),
            "below the floor: balance does not matter"
        );
    }
}
