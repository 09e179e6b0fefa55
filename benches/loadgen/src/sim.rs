//! Eviction policies replayed over a trace at equal capacity, objects of one size (the
//! benchmark's 1 MiB segments): the object hit ratio each reaches.
//!
//! - `Lru`: least recently used object out.
//! - `S3Fifo`: a small FIFO (10%) for new objects, a main FIFO (90%) for objects seen again, a
//!   ghost list of recent small-queue evictions; FIFO reinsertion with a 2-bit frequency
//!   (Yang et al., SOSP 2023).
//! - `Belady`: the offline optimum: out goes the object used furthest in the future, and an
//!   object used later than everything cached is not admitted. No policy can do better.
//! - `RegionLru`: the edge's store: objects appended to an open region; when none has room, the
//!   least recently used region is emptied whole (a hit refreshes its region), and with
//!   reinsertion (the edge's setting) the objects read since they were written go into the
//!   reopened region first, up to half of it.

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

#[derive(Debug)]
pub struct RegionLru {
    per_region: usize,
    regions: Vec<Vec<usize>>,
    used: Vec<u64>,
    open: usize,
    tick: u64,
    home: HashMap<usize, usize>,
    /// Objects hit since they were written: reinsertion candidates.
    hit: HashSet<usize>,
    reinsert: bool,
}

impl RegionLru {
    /// `regions` regions of `per_region` objects each.
    pub fn new(regions: usize, per_region: usize) -> Self {
        Self {
            per_region: per_region.max(1),
            regions: vec![Vec::new(); regions.max(2)],
            used: vec![0; regions.max(2)],
            open: 0,
            tick: 0,
            home: HashMap::new(),
            hit: HashSet::new(),
            reinsert: false,
        }
    }

    /// The same, but an evicted region's objects that were hit since they were written are
    /// written again into the next region instead of dropped (CacheLib's reinsertion).
    pub fn with_reinsertion(regions: usize, per_region: usize) -> Self {
        Self {
            reinsert: true,
            ..Self::new(regions, per_region)
        }
    }
}

impl Policy for RegionLru {
    fn name(&self) -> &'static str {
        if self.reinsert {
            "edge (region LRU + reinsertion)"
        } else {
            "region LRU, no reinsertion"
        }
    }

    fn access(&mut self, object: usize, _: usize) -> bool {
        self.tick += 1;
        if let Some(&r) = self.home.get(&object) {
            self.used[r] = self.tick;
            self.hit.insert(object);
            return true;
        }
        self.make_room();
        self.regions[self.open].push(object);
        self.home.insert(object, self.open);
        self.used[self.open] = self.tick;
        false
    }
}

impl RegionLru {
    fn make_room(&mut self) {
        if self.regions[self.open].len() >= self.per_region {
            // Never-used regions first (tick 0), then the least recently used, the full open
            // region among them, as the store does.
            let next = (0..self.regions.len())
                .min_by_key(|&r| (self.used[r], r))
                .expect("two regions at least");
            let evicted: Vec<usize> = self.regions[next].drain(..).collect();
            self.open = next;
            for o in evicted {
                self.home.remove(&o);
                // Reinsert what was hit, once (its hit mark is spent), while the region has
                // room: the rest of the region's room stays for new objects.
                if self.reinsert
                    && self.hit.remove(&o)
                    && self.regions[next].len() < self.per_region / 2
                {
                    self.regions[next].push(o);
                    self.home.insert(o, next);
                }
            }
            self.used[next] = self.tick;
        }
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
    fn region_lru_empties_a_whole_region() {
        let mut r = RegionLru::new(2, 2);
        for (i, o) in [1, 2, 3, 4].into_iter().enumerate() {
            assert!(!r.access(o, i));
        }
        assert!(r.access(1, 4), "two regions of two hold four");
        assert!(
            !r.access(5, 5),
            "a fifth empties the least recently used region (3, 4)"
        );
        assert!(r.access(2, 6));
        assert!(!r.access(3, 7));
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
