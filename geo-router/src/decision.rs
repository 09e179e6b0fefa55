//! The routing decision, pure: given the fleet's health and load and where a client is, which
//! regions in which order, which edge of each region is the client's, and which edges to answer
//! with. DNS, redirects and steering all read this one decision.
//!
//! Rules:
//! - **Regions** are ordered by great-circle distance from the client (or from the default
//!   region for clients with no location), but a region with an edge that takes new viewers
//!   comes before any region without one (a region whose edges are all over `overload` spills
//!   its new viewers to the nearest region with headroom), and a region with no usable edge
//!   comes last.
//! - **A failed region's viewers are spread**: when the client's own region (the nearest) has
//!   no usable edge, its viewers are shared out over the surviving regions nearest first, each
//!   taking as much as it has room for below `overload` (its spare capacity), until the failed
//!   region's last measured traffic is covered; the client's share is drawn by hashing its
//!   subnet, weighted by those amounts. So the nearest survivor is filled to about `overload`,
//!   not pushed past it, while a farther one has room.
//! - **Inside a region**, each client subnet has a primary edge by weighted rendezvous hashing
//!   (weights: the edges' egress capacity), among the edges that take new viewers (up, not
//!   draining, `accepting`: see `fleet` for the hysteresis that sets it), so a subnet keeps its
//!   edge, and its cache, while the edge has headroom; an edge that stops taking viewers hands
//!   only its share of new subnets to the others.
//! - **The answer** is the chosen region's edges that take new viewers, the client's primary
//!   first; every order a resolver may give them is a good one. Only when no edge anywhere is
//!   up does the answer name the nearest region's (down) edges: a player retries an address,
//!   an empty answer stops it.

use topology::Topology;

/// What the router knows of one edge (same order as `Topology::edges`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeStatus {
    pub up: bool,
    pub load: f64,
    pub draining: bool,
    /// Takes new viewers: off above `overload` (or far above its region's mean), on again
    /// below `reaccept`, with a hold between changes (see `fleet`).
    pub accepting: bool,
}

impl Default for EdgeStatus {
    fn default() -> Self {
        Self {
            up: true,
            load: 0.0,
            draining: false,
            accepting: true,
        }
    }
}

impl EdgeStatus {
    /// Serves viewers: up and not draining.
    pub fn usable(&self) -> bool {
        self.up && !self.draining
    }

    /// Takes new viewers.
    pub fn open(&self) -> bool {
        self.usable() && self.accepting
    }
}

/// Who is asking: where (if known), and a hash of the client's subnet that picks its edges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Client {
    pub location: Option<(f64, f64)>,
    pub key: u64,
}

/// The outcome for one client.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Region indices, best first (every region appears once).
    pub regions: Vec<usize>,
    /// Edge indices to answer with, best first: the first region's edges that take new
    /// viewers, the primary first.
    pub edges: Vec<usize>,
    /// The client's key (its subnet's hash), for steering's shedding draw.
    pub key: u64,
}

const EARTH_RADIUS_KM: f64 = 6371.0;

/// Great-circle distance in kilometres (haversine).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// The hash of a client subnet that [`Client::key`] takes: stable across routers and
/// versions (FNV-1a over the masked address bytes and the prefix length), so every router
/// gives a subnet the same edges.
pub fn subnet_key(address: std::net::IpAddr, prefix: u8) -> u64 {
    match masked(address, prefix) {
        std::net::IpAddr::V4(v4) => fnv1a(v4.octets().into_iter().chain([prefix])),
        std::net::IpAddr::V6(v6) => fnv1a(v6.octets().into_iter().chain([prefix])),
    }
}

/// `address` with only its first `prefix` bits.
pub fn masked(address: std::net::IpAddr, prefix: u8) -> std::net::IpAddr {
    match address {
        std::net::IpAddr::V4(v4) => {
            let keep = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            std::net::IpAddr::from((u32::from(v4) & keep).to_be_bytes())
        }
        std::net::IpAddr::V6(v6) => {
            let keep = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            std::net::IpAddr::from((u128::from(v6) & keep).to_be_bytes())
        }
    }
}

fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads the bits of the pair's combination over all 64.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash as a number in (0, 1).
fn unit(h: u64) -> f64 {
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Salt of steering's shedding draw, so that it is not the rendezvous draw.
const SHED: u64 = 0x5ed5_5ed5_5ed5_5ed5;

/// Weighted rendezvous hashing: the candidate with the highest `weight / -ln(u)`, where `u`
/// in (0, 1) is the hash of the client and the candidate's name (each candidate comes with
/// its name's hash). Each candidate wins a share of
/// keys proportional to its weight, and removing one moves only the keys it had.
fn rendezvous(key: u64, candidates: impl Iterator<Item = (usize, u64, f64)>) -> Option<usize> {
    candidates
        .filter_map(|(i, name, weight)| score(key, name, weight).map(|s| (i, s)))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
}

/// A candidate's rendezvous score for `key`, from the hash of its name; None for a weight of
/// zero or less (it never wins).
fn score(key: u64, name: u64, weight: f64) -> Option<f64> {
    (weight > 0.0).then(|| weight / -unit(mix(key, name)).ln())
}

/// The edges of region `r`, in topology order.
fn edges_of(topology: &Topology, r: usize) -> impl Iterator<Item = usize> + '_ {
    let name = &topology.regions[r].name;
    topology
        .edges
        .iter()
        .enumerate()
        .filter(move |(_, e)| &e.region == name)
        .map(|(i, _)| i)
}

/// An edge's weight among its region's: its egress capacity.
fn weight(topology: &Topology, e: usize) -> f64 {
    topology.edges[e].capacity.egress_mbps as f64
}

/// An edge as its region's rankings read it: what its rendezvous score is drawn from.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    edge: usize,
    /// The hash of the edge's name.
    name: u64,
    weight: f64,
}

/// Writes into `out` the `candidates` that pass `keep`, in the order a client with `key`
/// prefers them: rendezvous winner first, then the next winner of the rest, and so on. A
/// candidate's score does not depend on the others, so that order is the scores' order, each
/// drawn once.
fn ranked(candidates: &[Candidate], key: u64, keep: impl Fn(usize) -> bool, out: &mut Vec<usize>) {
    thread_local! {
        // Reused: a DNS thread ranks a region's edges for every query of a new subnet.
        static SCORED: std::cell::RefCell<Vec<(usize, f64)>> = const {
            std::cell::RefCell::new(Vec::new())
        };
    }
    // `keep` runs before the buffer is borrowed, so whatever it calls cannot find it taken.
    out.clear();
    out.extend((0..candidates.len()).filter(|&i| keep(candidates[i].edge)));
    SCORED.with_borrow_mut(|scored| {
        scored.clear();
        scored.extend(out.iter().filter_map(|&i| {
            let c = candidates[i];
            score(key, c.name, c.weight).map(|s| (c.edge, s))
        }));
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.clear();
        out.extend(scored.iter().map(|&(e, _)| e));
    });
}

/// What every decision on one fleet state shares, worked out once for it: each region's edges
/// (with their names' hashes), its name's hash and its rank (0: an edge takes new viewers, 1:
/// an edge is usable, 2: none is).
#[derive(Debug, Clone)]
pub struct Regions {
    /// Tells this fleet state's places from another's (see [`decide_into`]).
    id: u64,
    edges: Vec<Vec<Candidate>>,
    names: Vec<u64>,
    ranks: Vec<u8>,
}

impl Regions {
    pub fn new(topology: &Topology, status: &[EdgeStatus]) -> Self {
        let state = |e: usize| status.get(e).copied();
        let edges: Vec<Vec<Candidate>> = (0..topology.regions.len())
            .map(|r| {
                edges_of(topology, r)
                    .map(|edge| Candidate {
                        edge,
                        name: fnv1a(topology.edges[edge].name.bytes()),
                        weight: weight(topology, edge),
                    })
                    .collect()
            })
            .collect();
        let ranks = edges
            .iter()
            .map(|of: &Vec<Candidate>| {
                if of.iter().any(|c| state(c.edge).is_some_and(|s| s.open())) {
                    0
                } else if of.iter().any(|c| state(c.edge).is_some_and(|s| s.usable())) {
                    1
                } else {
                    2
                }
            })
            .collect();
        let names = topology
            .regions
            .iter()
            .map(|r| fnv1a(r.name.bytes()))
            .collect();
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            id: MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            edges,
            names,
            ranks,
        }
    }

    /// The client's primary edge in region `r` (the client's key is `key`): the one its subnet
    /// hashes to among those taking new viewers, else among the usable ones.
    pub fn primary(&self, status: &[EdgeStatus], key: u64, r: usize) -> Option<usize> {
        // Only the winner is needed here: one rendezvous draw, not a whole ranking.
        let winner = |keep: &dyn Fn(EdgeStatus) -> bool| {
            rendezvous(
                key,
                self.edges[r]
                    .iter()
                    .filter(|c| status.get(c.edge).copied().is_some_and(keep))
                    .map(|c| (c.edge, c.name, c.weight)),
            )
        };
        winner(&|s| s.open()).or_else(|| winner(&|s| s.usable()))
    }

    /// The edges of region `r`.
    fn of(&self, r: usize) -> impl Iterator<Item = &Candidate> {
        self.edges[r].iter()
    }
}

/// What the decisions for clients at one place share on one fleet state: the regions'
/// distances from it and their order before any failover draw.
#[derive(Debug, Clone)]
pub struct Place {
    /// The [`Regions`] it was made with.
    regions: u64,
    distances: Vec<f64>,
    /// Regions by rank, then distance, then index.
    order: Vec<usize>,
    /// The nearest region.
    home: Option<usize>,
}

impl Place {
    /// The place `location`, or for a client with no location the `default_region`, which then
    /// wins ties (its distance is -1).
    pub fn new(
        topology: &Topology,
        regions: &Regions,
        location: Option<(f64, f64)>,
        default_region: &str,
    ) -> Self {
        let distances = distances(topology, location, default_region);
        let ranks = &regions.ranks;
        let mut order: Vec<usize> = (0..distances.len()).collect();
        order.sort_by(|&a, &b| {
            ranks[a]
                .cmp(&ranks[b])
                .then(distances[a].total_cmp(&distances[b]))
                .then(a.cmp(&b))
        });
        let home = (0..distances.len())
            .min_by(|&a, &b| distances[a].total_cmp(&distances[b]).then(a.cmp(&b)));
        Self {
            regions: regions.id,
            distances,
            order,
            home,
        }
    }
}

/// Each region's distance in kilometres (topology order) from `location`, or for a client with
/// no location from `default_region`, which then wins ties (its distance is -1).
fn distances(topology: &Topology, location: Option<(f64, f64)>, default_region: &str) -> Vec<f64> {
    let from = location.or_else(|| {
        topology
            .region(default_region)
            .map(|r| (r.latitude, r.longitude))
    });
    topology
        .regions
        .iter()
        .map(|region| {
            if location.is_none() && region.name == default_region {
                -1.0
            } else {
                from.map_or(0.0, |o| distance_km(o, (region.latitude, region.longitude)))
            }
        })
        .collect()
}

/// Decides for `client` (no location: from `default_region`). `overload` is the load up to
/// which a survivor is filled with a failed region's viewers.
pub fn decide(
    topology: &Topology,
    status: &[EdgeStatus],
    client: Client,
    default_region: &str,
    overload: f64,
) -> Decision {
    let regions = Regions::new(topology, status);
    let place = Place::new(topology, &regions, client.location, default_region);
    let mut decision = Decision::default();
    decide_into(
        status,
        &regions,
        &place,
        client.key,
        overload,
        &mut decision,
    );
    decision
}

/// [`decide`] into `out` (its buffers reused) for the client with `key` at `place` (it depends
/// only on where the client is, so a caller may keep it per location), on the fleet state
/// `regions` was made for (and `place` made with).
pub fn decide_into(
    status: &[EdgeStatus],
    regions: &Regions,
    place: &Place,
    key: u64,
    overload: f64,
    out: &mut Decision,
) {
    // A place from another fleet state would order the regions by that state's ranks, or
    // index past this one's regions.
    debug_assert_eq!(place.regions, regions.id, "a place made with other regions");
    let state = |i: usize| {
        status.get(i).copied().unwrap_or(EdgeStatus {
            up: false,
            ..EdgeStatus::default()
        })
    };
    out.key = key;
    out.regions.clear();
    out.regions.extend_from_slice(&place.order);
    if let Some(home) = place.home
        && regions.ranks[home] == 2
        && let Some(to) = failover_region(
            regions,
            status,
            &place.order,
            home,
            &place.distances,
            key,
            overload,
        )
        && let Some(at) = out.regions.iter().position(|&r| r == to)
    {
        out.regions[..=at].rotate_right(1);
    }

    out.edges.clear();
    if let Some(&first) = out.regions.first() {
        let of = |r: usize| regions.edges[r].as_slice();
        ranked(of(first), key, |e| state(e).open(), &mut out.edges);
        if out.edges.is_empty() {
            ranked(of(first), key, |e| state(e).usable(), &mut out.edges);
        }
        if out.edges.is_empty() {
            // Nothing is up anywhere: the nearest region's edges beat an empty answer.
            ranked(
                of(place.home.unwrap_or(first)),
                key,
                |_| true,
                &mut out.edges,
            );
        }
    }
}

/// Where a viewer of the failed region `home` goes: the surviving regions (those taking new
/// viewers), nearest first, each allotted its spare capacity below `overload` until the failed
/// region's last measured traffic is covered; the client's region is drawn by its key weighted
/// by the allotments. None when no region takes new viewers.
fn failover_region(
    regions: &Regions,
    status: &[EdgeStatus],
    order: &[usize],
    home: usize,
    distances: &[f64],
    key: u64,
    overload: f64,
) -> Option<usize> {
    let load = |e: usize| status.get(e).map_or(0.0, |s| s.load);
    let open = |e: usize| status.get(e).is_some_and(|s| s.open());
    // The failed region's traffic, in megabits per second, at its edges' last measured loads.
    let mut demand: f64 = regions.of(home).map(|c| c.weight * load(c.edge)).sum();
    let mut survivors: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&r| r != home && regions.of(r).any(|c| open(c.edge)))
        .collect();
    survivors.sort_by(|&a, &b| distances[a].total_cmp(&distances[b]).then(a.cmp(&b)));
    let mut allotted: Vec<(usize, f64)> = Vec::new();
    for &r in &survivors {
        let spare: f64 = regions
            .of(r)
            .filter(|c| open(c.edge))
            .map(|c| c.weight * (overload - load(c.edge)).max(0.0))
            .sum();
        if demand <= 0.0 {
            break;
        }
        let take = spare.min(demand);
        if take > 0.0 {
            allotted.push((r, take));
            demand -= take;
        }
    }
    if allotted.is_empty() {
        // No traffic measured, or no spare anywhere: the nearest survivor.
        return survivors.first().copied();
    }
    rendezvous(
        key,
        allotted
            .iter()
            .map(|&(r, take)| (r, regions.names[r], take)),
    )
}

/// The edge a player is on, from the pathways it reports (`_HLS_pathway`, `_DASH_pathway`).
///
/// hls.js names one pathway. dash.js names every service location it fetched from since its
/// last steering request, fastest first (`"a,b"`), so a player that has just failed over from
/// its default pathway reports both, the dead one possibly first. The player leaves its default
/// pathway only when it fails or is steered away, so a usable reported edge other than the
/// default is where it is now; else the default, when reported and usable; else the first
/// reported, which `steering` treats as failed, draining or overloaded. A player that reports
/// nothing (its first request) is on its default pathway.
pub fn current_pathway(
    reported: &[usize],
    default: Option<usize>,
    status: &[EdgeStatus],
    overload: f64,
) -> Option<usize> {
    let good = |i: usize| {
        status
            .get(i)
            .is_some_and(|s| s.up && !s.draining && s.load <= overload)
    };
    if reported.is_empty() {
        return default;
    }
    reported
        .iter()
        .copied()
        .find(|&e| good(e) && Some(e) != default)
        .or_else(|| reported.iter().copied().find(|&e| good(e)))
        .or_else(|| reported.first().copied())
}

/// When [`steering`] moves a player off its edge: above `overload`, down to `shed_to`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shedding {
    pub overload: f64,
    pub shed_to: f64,
}

/// The steering pathways for one player, best first: one edge per region.
///
/// `current` is the edge whose pathway the player is on now (from `_HLS_pathway` or
/// `_DASH_pathway`). The rules, on top of the decision's region order:
/// - **Handed over, stay.** A player on a usable edge with headroom keeps that edge first, even
///   when it is not in its nearest region: every pathway switch costs the player a playlist
///   reload and risks a stall, so a viewer moved by a failure is not moved back mid-session.
/// - **Overloaded, shed the excess only.** A player on an edge above `overload` leaves it with
///   probability `(load - shed_to) / load`, drawn once per subnet and edge (the same viewers
///   stay at each ask): about as much traffic moves as the edge has above `shed_to` (the
///   router passes `balance.reaccept`, below `overload`, so that the edge lands with room
///   rather than on the line). Moving them all, as measured, sends the whole crowd to the next
///   region and leaves the edge nearly idle; shedding down to `overload` only, measured, left
///   both edges of a full region at 85% for a minute.
/// - **Failed, leave the region.** A player whose edge is down gets that region last: the
///   failure that took its edge may take the region's others (a site, a power feed, an uplink),
///   so the other regions come first, in the decision's order (usable ones nearest the client
///   first; the topology's `neighbours` are not read). The region's other edges keep their own
///   viewers and still take new ones.
/// - **Handed over from a failed edge, its region stays last.** `default` is the edge that
///   served the player's manifest (its default pathway). While that edge is down and the
///   player is on another region's edge, the failed edge's region is the player's last choice,
///   so that a player that must leave its new pathway does not go back to the region that
///   failed it.
/// - **Draining, stay on the pathway.** A draining edge answers each request with a redirect to
///   its neighbour region, so its players are handed over request by request without switching
///   pathway: measured, an hls.js pathway switch in mid-stream sometimes drops a fragment ("no
///   media in msn"), a stall the redirect avoids. New players are not sent to it.
/// - **One pathway per region, the player's own.** A region's pathway is the player's edge
///   when it is in that region, else the edge its playlist came from, else the client's
///   primary edge there (the decision's).
pub fn steering(
    topology: &Topology,
    status: &[EdgeStatus],
    regions: &Regions,
    decision: &Decision,
    current: Option<usize>,
    default: Option<usize>,
    shedding: Shedding,
) -> Vec<usize> {
    let Shedding { overload, shed_to } = shedding;
    let usable = |i: usize| status.get(i).is_some_and(|s| s.up && !s.draining);
    // A player's own edge keeps it: under `overload`, or above it and not drawn to shed.
    let headroom = |i: usize| {
        usable(i)
            && status.get(i).is_some_and(|s| {
                let shed = (s.load - shed_to) / s.load;
                s.load <= overload || unit(mix(decision.key, i as u64 ^ SHED)) >= shed
            })
    };
    let draining = |i: usize| status.get(i).is_some_and(|s| s.up && s.draining);
    let current_region = current
        .and_then(|e| topology.edges.get(e))
        .map(|e| &e.region);
    let mut ways: Vec<(usize, usize)> = Vec::new();
    for &r in &decision.regions {
        let region = &topology.regions[r].name;
        let in_region = |e: &usize| &topology.edges[*e].region == region;
        // The player's own edge in its region, else the one its playlist came from (`.`):
        // a region's pathway that names another edge of it would be a switch for nothing.
        let kept = current
            .filter(|&e| in_region(&e) && headroom(e))
            .or_else(|| default.filter(|&e| in_region(&e) && headroom(e)));
        let best = kept.or_else(|| {
            regions
                .primary(status, decision.key, r)
                .filter(|&e| usable(e))
        });
        if let Some(e) = best {
            ways.push((r, e));
        }
    }
    match current {
        Some(e) if headroom(e) => {
            if let Some(at) = ways.iter().position(|&(_, w)| w == e) {
                let way = ways.remove(at);
                ways.insert(0, way);
            }
        }
        Some(e) if draining(e) => {
            let region = topology
                .regions
                .iter()
                .position(|r| Some(&r.name) == current_region);
            if let Some(r) = region {
                ways.insert(0, (r, e));
            }
        }
        // Up but overloaded and drawn to shed: not failed either; the usual order.
        Some(e) if usable(e) => {}
        Some(_) => {
            if let Some(at) = ways
                .iter()
                .position(|&(r, _)| Some(&topology.regions[r].name) == current_region)
            {
                let way = ways.remove(at);
                ways.push(way);
            }
        }
        None => {}
    }
    let failed_region = default
        .filter(|&d| !usable(d) && !draining(d))
        .and_then(|d| topology.edges.get(d))
        .map(|e| &e.region);
    if let Some(failed) = failed_region
        && current_region != Some(failed)
        && let Some(at) = ways
            .iter()
            .position(|&(r, _)| &topology.regions[r].name == failed)
    {
        let way = ways.remove(at);
        ways.push(way);
    }
    ways.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/topology.toml"),
        )
        .expect("topology")
    }

    fn index(t: &Topology, name: &str) -> usize {
        t.edges.iter().position(|e| e.name == name).expect("edge")
    }

    fn region(t: &Topology, name: &str) -> usize {
        t.regions
            .iter()
            .position(|r| r.name == name)
            .expect("region")
    }

    fn primary(t: &Topology, status: &[EdgeStatus], key: u64, r: usize) -> Option<usize> {
        Regions::new(t, status).primary(status, key, r)
    }

    fn names(t: &Topology, edges: &[usize]) -> Vec<String> {
        edges.iter().map(|&i| t.edges[i].name.clone()).collect()
    }

    const SHEDDING: Shedding = Shedding {
        overload: 0.8,
        shed_to: 0.7,
    };
    const BOSTON: (f64, f64) = (42.36, -71.06);
    const PARIS: (f64, f64) = (48.86, 2.35);

    fn at(location: (f64, f64), key: u64) -> Client {
        Client {
            location: Some(location),
            key,
        }
    }

    fn decide_at(t: &Topology, status: &[EdgeStatus], location: (f64, f64), key: u64) -> Decision {
        decide(t, status, at(location, key), "eu-west", 0.8)
    }

    #[test]
    fn distances_are_great_circle() {
        let d = distance_km((40.71, -74.01), (51.51, -0.13));
        assert!((d - 5570.0).abs() < 30.0, "New York to London: {d}");
        assert_eq!(distance_km(PARIS, PARIS), 0.0);
    }

    #[test]
    fn subnet_keys_mask_the_address() {
        let a: std::net::IpAddr = "192.0.2.9".parse().unwrap();
        let b: std::net::IpAddr = "192.0.2.200".parse().unwrap();
        let c: std::net::IpAddr = "192.0.3.9".parse().unwrap();
        assert_eq!(subnet_key(a, 24), subnet_key(b, 24));
        assert_ne!(subnet_key(a, 24), subnet_key(c, 24));
        assert_ne!(subnet_key(a, 24), subnet_key(a, 32));
        let v6: std::net::IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: std::net::IpAddr = "2001:db8:1:ffff::1".parse().unwrap();
        assert_eq!(subnet_key(v6, 48), subnet_key(v6b, 48));
        assert_eq!(subnet_key(a, 0), subnet_key(c, 0));
    }

    #[test]
    fn the_answer_is_the_nearest_regions_edges_primary_first() {
        let t = topology();
        let status = vec![EdgeStatus::default(); t.edges.len()];
        let east = region(&t, "us-east");
        for key in 0..50 {
            let d = decide_at(&t, &status, BOSTON, key);
            assert_eq!(d.regions[0], east);
            let mut answer = names(&t, &d.edges);
            assert_eq!(Some(d.edges[0]), primary(&t, &status, d.key, east));
            answer.sort();
            assert_eq!(
                answer,
                ["us-east-1", "us-east-2"],
                "only the region's edges"
            );
        }
        let d = decide(
            &t,
            &status,
            Client {
                location: None,
                key: 1,
            },
            "ap-southeast",
            0.8,
        );
        assert_eq!(t.regions[d.regions[0]].name, "ap-southeast");
    }

    /// The share of 1,000 subnets whose primary in `region` is `edge`.
    fn share(t: &Topology, status: &[EdgeStatus], location: (f64, f64), edge: &str) -> f64 {
        let e = index(t, edge);
        let won = (0..1000u64)
            .map(|i| subnet_key(std::net::IpAddr::from([10, (i >> 8) as u8, i as u8, 0]), 24))
            .filter(|&key| decide_at(t, status, location, key).edges[0] == e)
            .count();
        won as f64 / 1000.0
    }

    #[test]
    fn subnets_are_spread_by_capacity_and_keep_their_edge() {
        let mut t = topology();
        let status = vec![EdgeStatus::default(); t.edges.len()];
        let half = share(&t, &status, BOSTON, "us-east-1");
        assert!((0.45..=0.55).contains(&half), "equal edges: {half}");
        let second = index(&t, "us-east-2");
        t.edges[second].capacity.egress_mbps *= 3;
        let quarter = share(&t, &status, BOSTON, "us-east-1");
        assert!(
            (0.2..=0.3).contains(&quarter),
            "a third of the capacity: {quarter}"
        );
        // The same subnet gets the same edge every time, and from every router.
        let d = decide_at(&t, &status, BOSTON, 42);
        assert_eq!(decide_at(&t, &status, BOSTON, 42), d);
    }

    #[test]
    fn an_edge_that_takes_no_new_viewers_leaves_the_answers_and_only_its_subnets_move() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        let (one, two) = (index(&t, "us-east-1"), index(&t, "us-east-2"));
        let before: Vec<Decision> = (0..200)
            .map(|k| decide_at(&t, &status, BOSTON, k))
            .collect();
        let unchanged = status.clone();
        status[one].accepting = false;
        for (k, was) in before.iter().enumerate() {
            let d = decide_at(&t, &status, BOSTON, k as u64);
            assert_eq!(d.edges, [two]);
            if was.edges[0] == two {
                let all = |s: &[EdgeStatus], d: &Decision| -> Vec<Option<usize>> {
                    (0..t.regions.len())
                        .map(|r| primary(&t, s, d.key, r))
                        .collect()
                };
                assert_eq!(
                    all(&status, &d),
                    all(&unchanged, was),
                    "a subnet of the other edge does not move"
                );
            }
        }
        status[two].accepting = false;
        let d = decide_at(&t, &status, BOSTON, 7);
        assert_eq!(
            t.regions[d.regions[0]].name, "eu-west",
            "the full region spills"
        );
        assert_eq!(
            t.regions[d.regions[2]].name, "us-east",
            "after the regions with room"
        );
        status[two].accepting = true;
        status[two].draining = true;
        let d = decide_at(&t, &status, BOSTON, 7);
        assert_eq!(t.regions[d.regions[0]].name, "eu-west");
        assert!(
            primary(&t, &status, d.key, region(&t, "us-east")) == Some(one),
            "usable, not taking viewers: still its primary for steering"
        );
    }

    #[test]
    fn a_failed_regions_viewers_are_spread_over_the_survivors_by_room() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        for name in ["us-east-1", "us-east-2"] {
            let e = index(&t, name);
            status[e].up = false;
            status[e].load = 0.6; // 2 x 200 Mbit/s at 60%: 240 Mbit/s to place
        }
        for name in ["eu-west-1", "eu-west-2"] {
            status[index(&t, name)].load = 0.4; // room for 2 x 200 x 0.4 = 160
        }
        let eu = region(&t, "eu-west");
        let ap = region(&t, "ap-southeast");
        let to_eu = (0..3000u64)
            .filter(|&k| {
                let d = decide_at(&t, &status, BOSTON, mix(k, 1));
                assert!(d.regions[0] == eu || d.regions[0] == ap);
                d.regions[0] == eu
            })
            .count() as f64
            / 3000.0;
        // eu-west is filled to its room (160 of 240), Asia takes the rest (80).
        assert!((0.62..=0.71).contains(&to_eu), "{to_eu}");
        // A little traffic fits in the nearest survivor: all of it goes there.
        for name in ["us-east-1", "us-east-2"] {
            status[index(&t, name)].load = 0.1;
        }
        assert!((0..500u64).all(|k| decide_at(&t, &status, BOSTON, mix(k, 2)).regions[0] == eu));
        // The failed region is last, and never in an answer.
        let d = decide_at(&t, &status, BOSTON, 3);
        assert_eq!(t.regions[*d.regions.last().unwrap()].name, "us-east");
        assert!(names(&t, &d.edges).iter().all(|n| n.starts_with("eu-west")));
    }

    #[test]
    fn nothing_up_anywhere_answers_with_the_nearest_region() {
        let t = topology();
        let all_down = vec![
            EdgeStatus {
                up: false,
                ..EdgeStatus::default()
            };
            t.edges.len()
        ];
        let d = decide_at(&t, &all_down, PARIS, 1);
        let mut answer = names(&t, &d.edges);
        answer.sort();
        assert_eq!(answer, ["eu-west-1", "eu-west-2"]);
    }

    /// The steering pathways for a Boston player with `key`, as names.
    fn steer_from(
        t: &Topology,
        status: &[EdgeStatus],
        key: u64,
        current: Option<&str>,
        default: Option<&str>,
    ) -> Vec<String> {
        let d = decide_at(t, status, BOSTON, key);
        let ways = steering(
            t,
            status,
            &Regions::new(t, status),
            &d,
            current.map(|n| index(t, n)),
            default.map(|n| index(t, n)),
            SHEDDING,
        );
        names(t, &ways)
    }

    /// The client's primary edge in `region`, by name.
    fn primary_name(t: &Topology, status: &[EdgeStatus], key: u64, region_name: &str) -> String {
        t.edges[primary(t, status, key, region(t, region_name)).expect("a primary")]
            .name
            .clone()
    }

    #[test]
    fn steering_gives_one_pathway_per_region_nearest_first() {
        let t = topology();
        let status = vec![EdgeStatus::default(); t.edges.len()];
        let p = |r| primary_name(&t, &status, 5, r);
        assert_eq!(
            steer_from(&t, &status, 5, None, None),
            [p("us-east"), p("eu-west"), p("ap-southeast")]
        );
        let other = if p("us-east") == "us-east-1" {
            "us-east-2"
        } else {
            "us-east-1"
        };
        assert_eq!(
            steer_from(&t, &status, 5, Some(other), None),
            [other.to_owned(), p("eu-west"), p("ap-southeast")],
            "a player keeps its good edge"
        );
    }

    #[test]
    fn a_handed_over_player_stays_and_a_failed_region_goes_last() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        status[index(&t, "us-east-1")].up = false;
        let p = |status: &[EdgeStatus], r| primary_name(&t, status, 5, r);
        let (eu, ap) = (p(&status, "eu-west"), p(&status, "ap-southeast"));
        assert_eq!(
            steer_from(&t, &status, 5, Some("us-east-1"), None),
            [eu.clone(), ap.clone(), "us-east-2".into()],
            "the viewer of the dead edge leaves its region"
        );
        assert_eq!(
            steer_from(&t, &status, 5, Some(&eu), None),
            [eu.clone(), "us-east-2".into(), ap.clone()],
            "once handed over it is not moved back"
        );
        assert_eq!(
            steer_from(&t, &status, 5, Some(&eu), Some("us-east-1")),
            [eu.clone(), ap.clone(), "us-east-2".into()],
            "handed over from the dead edge's manifest: its region stays last"
        );
        assert_eq!(
            steer_from(&t, &status, 5, None, None)[0],
            "us-east-2",
            "new viewers still get the region's healthy edge"
        );
        let one = index(&t, "us-east-1");
        status[one].up = true;
        status[one].draining = true;
        assert_eq!(
            steer_from(&t, &status, 5, Some("us-east-1"), None),
            [
                "us-east-1".to_owned(),
                "us-east-2".into(),
                eu.clone(),
                ap.clone()
            ],
            "a draining edge's players stay on its pathway: it redirects them itself"
        );
        assert_eq!(
            steer_from(&t, &status, 5, None, None)[0],
            "us-east-2",
            "new players do not go to a draining edge"
        );
        status[one].draining = false;
        let e = index(&t, &eu);
        status[e].load = 1e12; // overloaded far beyond: every viewer is drawn to shed
        assert_eq!(
            steer_from(&t, &status, 5, Some(&eu), None)[0],
            p(&status, "us-east")
        );
        status[e].load = 0.0;
        status[one].load = 1e12; // us-east-1 overloaded: the shed viewers stay in the region
        assert_eq!(
            steer_from(&t, &status, 5, Some("us-east-1"), None),
            ["us-east-2".to_owned(), eu, ap]
        );
    }

    #[test]
    fn a_dash_player_is_on_the_pathway_it_failed_over_to() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        let (default, neighbour) = (index(&t, "us-east-2"), index(&t, "eu-west-1"));
        let current = |reported: &[usize], status: &[EdgeStatus]| {
            current_pathway(reported, Some(default), status, 0.8)
        };
        assert_eq!(current(&[], &status), Some(default), "no report: on `.`");
        assert_eq!(current(&[default], &status), Some(default));
        // The default died and the router has not seen it yet: the player is already on the
        // neighbour, whichever it reports first.
        assert_eq!(current(&[default, neighbour], &status), Some(neighbour));
        assert_eq!(current(&[neighbour, default], &status), Some(neighbour));
        let d = decide_at(&t, &status, BOSTON, 5);
        let ways = steering(
            &t,
            &status,
            &Regions::new(&t, &status),
            &d,
            Some(neighbour),
            Some(default),
            SHEDDING,
        );
        assert_eq!(
            ways[..2],
            [neighbour, default],
            "it stays, and its own region is its default edge, not that edge's sibling"
        );
        status[default].up = false;
        assert_eq!(current(&[default, neighbour], &status), Some(neighbour));
        status[neighbour].up = false;
        assert_eq!(
            current(&[default, neighbour], &status),
            Some(default),
            "both failed: the first reported, which steering sends away"
        );
    }

    #[test]
    fn an_overloaded_edge_sheds_only_its_excess_and_always_the_same_viewers() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        let one = index(&t, "us-east-1");
        status[one].load = 1.0; // over 0.8: the 0.3 above 0.7 should leave
        status[one].accepting = false;
        let moved = |status: &[EdgeStatus]| {
            (0..2000u64)
                .filter(|&k| {
                    let d = decide_at(&t, status, BOSTON, mix(k, 3));
                    steering(
                        &t,
                        status,
                        &Regions::new(&t, status),
                        &d,
                        Some(one),
                        Some(one),
                        SHEDDING,
                    )[0] != one
                })
                .collect::<Vec<u64>>()
        };
        let first = moved(&status);
        let share = first.len() as f64 / 2000.0;
        assert!((0.27..=0.33).contains(&share), "{share}");
        assert_eq!(moved(&status), first, "the same viewers at every ask");
        status[one].load = 0.8;
        assert!(moved(&status).is_empty(), "at overload, nobody moves");
    }
}
