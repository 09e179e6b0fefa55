//! Eviction policies replayed over a trace at equal capacity, objects of one size (the
//! benchmark's 1 MiB segments): the object hit ratio each reaches.
//!
//! - `Lru`: least recently used object out.
//! - `S3Fifo`: a small FIFO (10%) for new objects, a main FIFO (90%) for objects seen again, a
//!   ghost list of recent small-queue evictions; FIFO reinsertion with a 2-bit frequency
//!   (Yang et al., SOSP 2023).
//! - `MostPopular`: the capacity's worth of most requested objects, held from their first
//!   request: the limit for any policy that cannot see the future on independent requests.
//! - `Belady`: the offline optimum: out goes the object used furthest in the future, and an
//!   object used later than everything cached is not admitted. No policy can do better.
//! - `EdgeStore`: the edge's store, S3-FIFO on two fixed-size logs with the store's own rules
//!   (see its doc).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// A cache policy over object ids; `access` says whether it was a hit.
pub trait Policy {
    fn name(&self) -> &'static str;
    fn access(&mut self, object: usize, position: usize) -> bool;
}

/// Replays `trace` and returns the hit ratio.
pub fn hit_ratio(policy: &mut dyn Policy, trace: &[usize]) -> f64 {
    if trace.is_empty() {
        return 0.0;
    }
    let hits = trace
        .iter()
        .enumerate()
        .filter(|&(i, &o)| policy.access(o, i))
        .count();
    hits as f64 / trace.len() as f64
}

#[derive(Debug)]
pub struct Lru {
    capacity: usize,
    tick: u64,
    last: HashMap<usize, u64>,
    order: BTreeMap<u64, usize>,
}

impl Lru {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            last: HashMap::new(),
            order: BTreeMap::new(),
        }
    }
}

impl Policy for Lru {
    fn name(&self) -> &'static str {
        "LRU"
    }

    fn access(&mut self, object: usize, _: usize) -> bool {
        self.tick += 1;
        let hit = if let Some(old) = self.last.insert(object, self.tick) {
            self.order.remove(&old);
            true
        } else {
            false
        };
        self.order.insert(self.tick, object);
        if self.last.len() > self.capacity
            && let Some((_, victim)) = self.order.pop_first()
        {
            self.last.remove(&victim);
        }
        hit
    }
}

#[derive(Debug)]
pub struct S3Fifo {
    small_capacity: usize,
    main_capacity: usize,
    small: VecDeque<usize>,
    main: VecDeque<usize>,
    ghost: VecDeque<usize>,
    ghost_set: HashSet<usize>,
    freq: HashMap<usize, u8>,
}

impl S3Fifo {
    pub fn new(capacity: usize) -> Self {
        let small_capacity = (capacity / 10).max(1);
        Self {
            small_capacity,
            main_capacity: capacity.saturating_sub(small_capacity).max(1),
            small: VecDeque::new(),
            main: VecDeque::new(),
            ghost: VecDeque::new(),
            ghost_set: HashSet::new(),
            freq: HashMap::new(),
        }
    }

    fn evict_main(&mut self) {
        while let Some(o) = self.main.pop_front() {
            let f = self.freq.get_mut(&o).expect("cached");
            if *f > 0 {
                *f -= 1;
                self.main.push_back(o);
            } else {
                self.freq.remove(&o);
                return;
            }
        }
    }

    fn insert_main(&mut self, o: usize) {
        if self.main.len() >= self.main_capacity {
            self.evict_main();
        }
        self.main.push_back(o);
    }

    fn evict_small(&mut self) {
        if let Some(o) = self.small.pop_front() {
            if self.freq.get(&o).copied().unwrap_or(0) > 0 {
                // Seen again while on probation: it joins the main queue.
                self.freq.insert(o, 0);
                self.insert_main(o);
            } else {
                self.freq.remove(&o);
                self.ghost.push_back(o);
                self.ghost_set.insert(o);
                if self.ghost.len() > self.main_capacity
                    && let Some(g) = self.ghost.pop_front()
                {
                    self.ghost_set.remove(&g);
                }
            }
        }
    }
}

impl Policy for S3Fifo {
    fn name(&self) -> &'static str {
        "S3-FIFO"
    }

    fn access(&mut self, object: usize, _: usize) -> bool {
        if let Some(f) = self.freq.get_mut(&object) {
            *f = (*f + 1).min(3);
            return true;
        }
        if self.ghost_set.remove(&object) {
            self.ghost.retain(|&g| g != object);
            self.freq.insert(object, 0);
            self.insert_main(object);
        } else {
            if self.small.len() >= self.small_capacity {
                self.evict_small();
            }
            self.freq.insert(object, 0);
            self.small.push_back(object);
        }
        false
    }
}

#[derive(Debug)]
pub struct Belady {
    capacity: usize,
    next_use: Vec<usize>,
    cached: BTreeSet<(usize, usize)>,
    when: HashMap<usize, usize>,
}

impl Belady {
    /// Needs the whole trace up front: it knows the future.
    pub fn new(capacity: usize, trace: &[usize]) -> Self {
        let mut next_use = vec![usize::MAX; trace.len()];
        let mut seen: HashMap<usize, usize> = HashMap::new();
        for (i, &o) in trace.iter().enumerate().rev() {
            next_use[i] = seen.insert(o, i).unwrap_or(usize::MAX);
        }
        Self {
            capacity,
            next_use,
            cached: BTreeSet::new(),
            when: HashMap::new(),
        }
    }
}

impl Policy for Belady {
    fn name(&self) -> &'static str {
        "Belady (optimum)"
    }

    fn access(&mut self, object: usize, position: usize) -> bool {
        let next = self.next_use[position];
        if let Some(old) = self.when.remove(&object) {
            self.cached.remove(&(old, object));
            self.cached.insert((next, object));
            self.when.insert(object, next);
            return true;
        }
        if next == usize::MAX {
            return false; // never used again: not worth a slot
        }
        if self.when.len() >= self.capacity {
            let &(furthest, victim) = self.cached.last().expect("full");
            if furthest <= next {
                return false; // everything cached is needed sooner
            }
            self.cached.remove(&(furthest, victim));
            self.when.remove(&victim);
        }
        self.cached.insert((next, object));
        self.when.insert(object, next);
        false
    }
}

/// The best a policy that cannot see the future does on requests drawn independently from
/// fixed popularities (Coffman and Denning's A0): it holds the `capacity` objects requested most
/// often in the whole trace, each from its first request (so that one is a miss). A reference
/// line, not a cache: it knows every object's popularity in advance.
#[derive(Debug)]
pub struct MostPopular {
    keep: HashSet<usize>,
    seen: HashSet<usize>,
}

impl MostPopular {
    pub fn new(capacity: usize, trace: &[usize]) -> Self {
        let mut counts: HashMap<usize, usize> = HashMap::new();
        for &o in trace {
            *counts.entry(o).or_default() += 1;
        }
        let mut by_count: Vec<(usize, usize)> = counts.into_iter().map(|(o, n)| (n, o)).collect();
        by_count.sort_unstable_by(|a, b| b.cmp(a));
        Self {
            keep: by_count
                .into_iter()
                .take(capacity)
                .map(|(_, o)| o)
                .collect(),
            seen: HashSet::new(),
        }
    }
}

impl Policy for MostPopular {
    fn name(&self) -> &'static str {
        "most popular (A0, knows popularity)"
    }

    fn access(&mut self, object: usize, _: usize) -> bool {
        self.keep.contains(&object) && !self.seen.insert(object)
    }
}

/// The edge's store as the simulator sees it (`edge/src/store`): S3-FIFO on two FIFO logs of
/// fixed sizes, counted in objects of one size, with the store's own rules:
/// - a new object goes to the small log; one whose id is on the ghost list to the main log;
/// - at the small log's head, an object read since it was written moves to the main log (its
///   counter reset), and so does an unread one while the main log has room; otherwise it
///   leaves and its id goes on the ghost list, which holds as many ids as the main log holds
///   objects;
/// - at the main log's head, an object read since it was last written goes to the tail with
///   its counter (at most 3) down by one; others leave; after a lap's worth of such moves in
///   one insert, the head leaves whatever it finds.
#[derive(Debug)]
pub struct EdgeStore {
    small_capacity: usize,
    main_capacity: usize,
    small: VecDeque<usize>,
    main: VecDeque<usize>,
    freq: HashMap<usize, u8>,
    /// Ids on the ghost list, each with the number of its place in `ghost_order`.
    ghost: HashMap<usize, u64>,
    ghost_order: VecDeque<(usize, u64)>,
    ghost_added: u64,
}

impl EdgeStore {
    /// Logs holding `small` and `main` objects (the store's log sizes / its record size).
    pub fn new(small: usize, main: usize) -> Self {
        Self {
            small_capacity: small.max(1),
            main_capacity: main.max(1),
            small: VecDeque::new(),
            main: VecDeque::new(),
            freq: HashMap::new(),
            ghost: HashMap::new(),
            ghost_order: VecDeque::new(),
            ghost_added: 0,
        }
    }

    /// The split a store of `capacity` objects has: a tenth for the small log.
    pub fn with_capacity(capacity: usize) -> Self {
        let small = capacity / 10;
        Self::new(small, capacity - small)
    }

    fn insert_main(&mut self, o: usize) {
        // As the store: after a lap's worth of moves, the head leaves whatever it finds.
        let mut moved = 0;
        while self.main.len() >= self.main_capacity {
            let Some(x) = self.main.pop_front() else {
                break;
            };
            let f = self.freq.get_mut(&x).expect("cached");
            if *f > 0 && moved < self.main_capacity {
                *f -= 1;
                moved += 1;
                self.main.push_back(x);
            } else {
                self.freq.remove(&x);
            }
        }
        self.main.push_back(o);
    }

    fn evict_small(&mut self) {
        let Some(x) = self.small.pop_front() else {
            return;
        };
        let read = self.freq.get(&x).copied().unwrap_or(0) > 0;
        if read || self.main.len() < self.main_capacity {
            self.freq.insert(x, 0);
            self.insert_main(x);
        } else {
            self.freq.remove(&x);
            self.ghost_added += 1;
            self.ghost.insert(x, self.ghost_added);
            self.ghost_order.push_back((x, self.ghost_added));
            while self.ghost.len() > self.main.len().max(1) {
                let Some((g, when)) = self.ghost_order.pop_front() else {
                    break;
                };
                if self.ghost.get(&g) == Some(&when) {
                    self.ghost.remove(&g);
                }
            }
        }
    }
}

impl Policy for EdgeStore {
    fn name(&self) -> &'static str {
        "edge (S3-FIFO logs)"
    }

    fn access(&mut self, object: usize, _: usize) -> bool {
        if let Some(f) = self.freq.get_mut(&object) {
            *f = (*f + 1).min(3);
            return true;
        }
        self.freq.insert(object, 0);
        if self.ghost.remove(&object).is_some() {
            self.insert_main(object);
        } else {
            while self.small.len() >= self.small_capacity {
                self.evict_small();
            }
            self.small.push_back(object);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_keeps_the_recent_ones() {
        let mut lru = Lru::new(2);
        let hits: Vec<bool> = [1, 2, 1, 3, 2, 1]
            .iter()
            .enumerate()
            .map(|(i, &o)| lru.access(o, i))
            .collect();
        assert_eq!(hits, [false, false, true, false, false, false]);
    }

    #[test]
    fn belady_is_the_upper_bound_on_a_scan_with_a_hot_object() {
        let trace: Vec<usize> = (0..200).flat_map(|i| [0, i + 1]).collect();
        let opt = hit_ratio(&mut Belady::new(2, &trace), &trace);
        let lru = hit_ratio(&mut Lru::new(2), &trace);
        let s3 = hit_ratio(&mut S3Fifo::new(2), &trace);
        assert!(opt >= lru && opt >= s3);
        assert!(opt > 0.49, "the hot object always hits: {opt}");
    }

    #[test]
    fn the_edge_keeps_a_read_object_through_a_scan_and_fills_its_main_log() {
        let mut e = EdgeStore::new(2, 8);
        assert!(!e.access(0, 0));
        assert!(e.access(0, 1));
        for i in 1..100 {
            assert!(!e.access(i, 2 * i));
            assert!(e.access(0, 2 * i + 1), "the read object stays ({i})");
        }
        let mut fresh = EdgeStore::new(2, 8);
        for i in 0..10 {
            fresh.access(i, i);
        }
        let kept = (0..10).filter(|&i| fresh.access(i, 10 + i)).count();
        assert_eq!(
            kept, 10,
            "unread objects fill the main log while it has room"
        );
    }

    #[test]
    fn s3fifo_promotes_what_is_seen_twice() {
        let mut s = S3Fifo::new(10);
        let mut hits = 0;
        // A hot object among a scan: it stays.
        for i in 0..1000 {
            if s.access(0, 2 * i) {
                hits += 1;
            }
            s.access(i + 1, 2 * i + 1);
        }
        assert!(hits > 990, "{hits}");
    }
}
