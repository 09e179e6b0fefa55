//! The routing decision, pure: given the fleet's health and load and where a client is, which
//! regions in which order, and which edges to answer with.
//!
//! Rules:
//! - Regions are ordered by great-circle distance from the client (or from the default region
//!   for clients with no location), but a region with a healthy, non-draining edge that has
//!   headroom comes before any region without one, and a region with no usable edge comes last.
//! - Within a region, an edge above the overload threshold takes no new viewers while another
//!   edge of the region has headroom; edges are listed least loaded first.

use topology::Topology;

/// What the router knows of one edge (same order as `Topology::edges`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EdgeStatus {
    pub up: bool,
    pub load: f64,
    pub draining: bool,
}

impl Default for EdgeStatus {
    fn default() -> Self {
        Self {
            up: true,
            load: 0.0,
            draining: false,
        }
    }
}

/// The outcome for one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Region indices, best first (every region appears once).
    pub regions: Vec<usize>,
    /// Edge indices to answer with, best first.
    pub edges: Vec<usize>,
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

/// Decides for a client at `client` (None: unknown, use `default_region`).
pub fn decide(
    topology: &Topology,
    status: &[EdgeStatus],
    client: Option<(f64, f64)>,
    default_region: &str,
    overload: f64,
    count: usize,
) -> Decision {
    let origin = client.or_else(|| {
        topology
            .region(default_region)
            .map(|r| (r.latitude, r.longitude))
    });
    let usable = |i: usize| status.get(i).is_some_and(|s| s.up && !s.draining);
    let headroom = |i: usize| usable(i) && status.get(i).is_some_and(|s| s.load <= overload);
    let mut regions: Vec<(u8, f64, usize)> = topology
        .regions
        .iter()
        .enumerate()
        .map(|(r, region)| {
            let edges = || {
                topology
                    .edges
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.region == region.name)
                    .map(|(i, _)| i)
            };
            let rank = if edges().any(headroom) {
                0
            } else if edges().any(usable) {
                1
            } else {
                2
            };
            let distance =
                origin.map_or(0.0, |o| distance_km(o, (region.latitude, region.longitude)));
            // The default region wins ties for clients with no location.
            let distance = if client.is_none() && region.name == default_region {
                -1.0
            } else {
                distance
            };
            (rank, distance, r)
        })
        .collect();
    regions.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let regions: Vec<usize> = regions.into_iter().map(|(_, _, r)| r).collect();

    let mut edges = Vec::with_capacity(count);
    for &r in &regions {
        let name = &topology.regions[r].name;
        let mut candidates: Vec<usize> = topology
            .edges
            .iter()
            .enumerate()
            .filter(|(i, e)| &e.region == name && usable(*i))
            .map(|(i, _)| i)
            .collect();
        if candidates.iter().any(|&i| headroom(i)) {
            candidates.retain(|&i| headroom(i));
        }
        candidates.sort_by(|&a, &b| status[a].load.total_cmp(&status[b].load).then(a.cmp(&b)));
        for i in candidates {
            if edges.len() == count {
                break;
            }
            edges.push(i);
        }
    }
    if edges.is_empty() {
        // Nothing is usable anywhere: answering with the nearest region's edges beats
        // answering with nothing (the player retries; an empty answer stops it).
        if let Some(&r) = regions.first() {
            let name = &topology.regions[r].name;
            edges.extend(
                topology
                    .edges
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| &e.region == name)
                    .map(|(i, _)| i)
                    .take(count),
            );
        }
    }
    Decision { regions, edges }
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

/// The steering pathways for one player, best first: one edge per region.
///
/// `current` is the edge whose pathway the player is on now (from `_HLS_pathway` or
/// `_DASH_pathway`). The rules, on top of the decision's region order:
/// - **Handed over, stay.** A player on a usable edge with headroom keeps that edge first, even
///   when it is not in its nearest region: every pathway switch costs the player a playlist
///   reload and risks a stall, so a viewer moved by a failure is not moved back mid-session.
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
///   when it is in that region, else the edge its playlist came from, else the decision's.
pub fn steering(
    topology: &Topology,
    status: &[EdgeStatus],
    decision: &Decision,
    current: Option<usize>,
    default: Option<usize>,
    overload: f64,
) -> Vec<usize> {
    let usable = |i: usize| status.get(i).is_some_and(|s| s.up && !s.draining);
    let headroom = |i: usize| usable(i) && status.get(i).is_some_and(|s| s.load <= overload);
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
        let best = kept
            .or_else(|| decision.edges.iter().copied().find(in_region))
            .or_else(|| {
                // Regions beyond the answer's length: their least loaded usable edge.
                (0..topology.edges.len())
                    .filter(|&i| in_region(&i) && usable(i))
                    .min_by(|&a, &b| status[a].load.total_cmp(&status[b].load))
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
        // Up but overloaded: no longer sticky, but not failed either; the usual order.
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

    fn names(t: &Topology, d: &Decision) -> Vec<String> {
        d.edges.iter().map(|&i| t.edges[i].name.clone()).collect()
    }

    const BOSTON: (f64, f64) = (42.36, -71.06);
    const PARIS: (f64, f64) = (48.86, 2.35);

    #[test]
    fn distances_are_great_circle() {
        let d = distance_km((40.71, -74.01), (51.51, -0.13));
        assert!((d - 5570.0).abs() < 30.0, "New York to London: {d}");
        assert_eq!(distance_km(PARIS, PARIS), 0.0);
    }

    #[test]
    fn nearest_region_first_then_the_next() {
        let t = topology();
        let status = vec![EdgeStatus::default(); t.edges.len()];
        let d = decide(&t, &status, Some(BOSTON), "eu-west", 0.8, 4);
        assert_eq!(
            names(&t, &d),
            ["us-east-1", "us-east-2", "eu-west-1", "eu-west-2"]
        );
        let d = decide(&t, &status, Some(PARIS), "eu-west", 0.8, 3);
        assert_eq!(names(&t, &d), ["eu-west-1", "eu-west-2", "us-east-1"]);
        let d = decide(&t, &status, None, "ap-southeast", 0.8, 2);
        assert_eq!(names(&t, &d), ["ap-southeast-1", "ap-southeast-2"]);
    }

    #[test]
    fn dead_draining_and_overloaded_edges() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        status[0].up = false; // us-east-1
        let d = decide(&t, &status, Some(BOSTON), "eu-west", 0.8, 4);
        assert_eq!(
            names(&t, &d),
            ["us-east-2", "eu-west-1", "eu-west-2", "ap-southeast-1"]
        );
        status[0] = EdgeStatus {
            up: true,
            load: 0.85,
            draining: false,
        };
        let d = decide(&t, &status, Some(BOSTON), "eu-west", 0.8, 2);
        assert_eq!(
            names(&t, &d),
            ["us-east-2", "eu-west-1"],
            "an overloaded edge takes no new viewers"
        );
        status[1].load = 0.9; // both us-east edges overloaded: the next region with headroom leads
        let d = decide(&t, &status, Some(BOSTON), "eu-west", 0.8, 2);
        assert_eq!(names(&t, &d), ["eu-west-1", "eu-west-2"]);
        assert_eq!(
            t.regions[d.regions[2]].name, "us-east",
            "a fully overloaded region is demoted"
        );
        status[2].draining = true;
        let d = decide(&t, &status, Some(PARIS), "eu-west", 0.8, 1);
        assert_eq!(names(&t, &d), ["eu-west-2"]);
    }

    fn steer(
        t: &Topology,
        status: &[EdgeStatus],
        at: (f64, f64),
        current: Option<&str>,
    ) -> Vec<String> {
        steer_from(t, status, at, current, None)
    }

    /// `steer` for a player whose manifest came from `default`.
    fn steer_from(
        t: &Topology,
        status: &[EdgeStatus],
        at: (f64, f64),
        current: Option<&str>,
        default: Option<&str>,
    ) -> Vec<String> {
        let d = decide(t, status, Some(at), "eu-west", 0.8, 2);
        let index = |name: &str| t.edges.iter().position(|e| e.name == name).expect("edge");
        steering(t, status, &d, current.map(index), default.map(index), 0.8)
            .into_iter()
            .map(|i| t.edges[i].name.clone())
            .collect()
    }

    #[test]
    fn steering_gives_one_pathway_per_region_nearest_first() {
        let t = topology();
        let status = vec![EdgeStatus::default(); t.edges.len()];
        assert_eq!(
            steer(&t, &status, BOSTON, None),
            ["us-east-1", "eu-west-1", "ap-southeast-1"]
        );
        assert_eq!(
            steer(&t, &status, BOSTON, Some("us-east-2")),
            ["us-east-2", "eu-west-1", "ap-southeast-1"],
            "a player keeps its good edge"
        );
    }

    #[test]
    fn a_handed_over_player_stays_and_a_failed_region_goes_last() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        status[0].up = false; // us-east-1 died
        assert_eq!(
            steer(&t, &status, BOSTON, Some("us-east-1")),
            ["eu-west-1", "ap-southeast-1", "us-east-2"],
            "the viewer of the dead edge leaves its region"
        );
        assert_eq!(
            steer(&t, &status, BOSTON, Some("eu-west-1")),
            ["eu-west-1", "us-east-2", "ap-southeast-1"],
            "once handed over it is not moved back"
        );
        assert_eq!(
            steer_from(&t, &status, BOSTON, Some("eu-west-1"), Some("us-east-1")),
            ["eu-west-1", "ap-southeast-1", "us-east-2"],
            "handed over from the dead edge's manifest: its region stays last"
        );
        assert_eq!(
            steer(&t, &status, BOSTON, None),
            ["us-east-2", "eu-west-1", "ap-southeast-1"],
            "new viewers still get the region's healthy edge"
        );
        status[0].up = true;
        status[0].draining = true;
        assert_eq!(
            steer(&t, &status, BOSTON, Some("us-east-1")),
            ["us-east-1", "us-east-2", "eu-west-1", "ap-southeast-1"],
            "a draining edge's players stay on its pathway: it redirects them itself"
        );
        assert_eq!(
            steer(&t, &status, BOSTON, None)[0],
            "us-east-2",
            "new players do not go to a draining edge"
        );
        status[0].draining = false;
        status[2].load = 0.95; // eu-west-1 overloaded: no longer sticky
        assert_eq!(
            steer(&t, &status, BOSTON, Some("eu-west-1"))[0],
            "us-east-1"
        );
        status[2].load = 0.0;
        status[0].load = 0.95; // us-east-1 overloaded: its viewers are not sent out of the region
        assert_eq!(
            steer(&t, &status, BOSTON, Some("us-east-1")),
            ["us-east-2", "eu-west-1", "ap-southeast-1"]
        );
    }

    #[test]
    fn a_dash_player_is_on_the_pathway_it_failed_over_to() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        let index = |name: &str| t.edges.iter().position(|e| e.name == name).expect("edge");
        let (default, neighbour) = (index("us-east-2"), index("eu-west-1"));
        let current = |reported: &[usize], status: &[EdgeStatus]| {
            current_pathway(reported, Some(default), status, 0.8)
        };
        assert_eq!(current(&[], &status), Some(default), "no report: on `.`");
        assert_eq!(current(&[default], &status), Some(default));
        // The default died and the router has not seen it yet: the player is already on the
        // neighbour, whichever it reports first.
        assert_eq!(current(&[default, neighbour], &status), Some(neighbour));
        assert_eq!(current(&[neighbour, default], &status), Some(neighbour));
        let d = decide(&t, &status, Some(BOSTON), "eu-west", 0.8, 2);
        let ways = steering(&t, &status, &d, Some(neighbour), Some(default), 0.8);
        assert_eq!(
            ways,
            [neighbour, default, index("ap-southeast-1")],
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
    fn a_dead_region_is_demoted() {
        let t = topology();
        let mut status = vec![EdgeStatus::default(); t.edges.len()];
        status[2].up = false;
        status[3].up = false;
        let d = decide(&t, &status, Some(PARIS), "eu-west", 0.8, 4);
        assert_eq!(t.regions[d.regions[0]].name, "us-east");
        assert_eq!(t.regions[*d.regions.last().unwrap()].name, "eu-west");
        let all_down = vec![
            EdgeStatus {
                up: false,
                ..EdgeStatus::default()
            };
            t.edges.len()
        ];
        assert_eq!(
            decide(&t, &all_down, Some(PARIS), "eu-west", 0.8, 4)
                .edges
                .len(),
            2
        );
    }
}
