//! The in-memory index: which key is where, what each region holds, and who pins it.
//!
//! Everything here is plain bookkeeping under the store's one lock, except the pins, which a
//! reader raises under the lock and lowers, without it, when its body is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;

/// The index and the regions' bookkeeping, behind the store's lock.
pub(super) struct State<M> {
    pub index: HashMap<Arc<str>, Slot<M>>,
    /// Survivors of an eviction between their copy-out and their rewrite: served from memory.
    pub pending: HashMap<String, Pending<M>>,
    pub regions: Vec<Region>,
    /// The region being appended to.
    pub open: Option<usize>,
    /// Recency clock: raised by every use.
    pub clock: u64,
    /// The last record sequence number given out.
    pub seq: u64,
    pub evicted_objects: u64,
    pub reinserted_objects: u64,
    pub evicted_regions: u64,
    /// Where the background check of unverified bodies has got to: (region, key position).
    pub scrub: (usize, usize),
}

/// Where one stored object is.
pub(super) struct Slot<M> {
    pub region: usize,
    /// The record's start within its region.
    pub offset: u64,
    pub total: u64,
    /// The body's start within its region.
    pub body_start: u64,
    pub body_len: u64,
    pub seq: u64,
    pub meta: Arc<M>,
    /// Read since it was written: kept (reinserted) when its region is evicted.
    pub hit: bool,
    /// The record's checksum while it has not been checked since start (recovery reads headers,
    /// keys and metas, not bodies); `None` once verified, or for records written since.
    pub unverified: Option<u64>,
}

/// A survivor of an eviction waiting for its rewrite, as lookups see it.
pub(super) struct Pending<M> {
    pub meta: Arc<M>,
    pub body: Bytes,
    pub seq: u64,
}

/// One region's bookkeeping.
#[derive(Default)]
pub(super) struct Region {
    pub epoch: u64,
    /// Next free offset within the region (starts after the region header).
    pub fill: u64,
    /// Writes in progress (and an eviction's claim): a region with writers is not evicted.
    pub writers: u32,
    pub last_access: u64,
    /// Bytes of live records.
    pub live: u64,
    /// Keys written into it since it was reset (a key written twice is listed twice), shared
    /// with the index: one allocation per key.
    pub keys: Vec<Arc<str>>,
}

impl<M> State<M> {
    pub fn new(regions: usize) -> Self {
        Self {
            index: HashMap::new(),
            pending: HashMap::new(),
            regions: (0..regions).map(|_| Region::default()).collect(),
            open: None,
            clock: 0,
            seq: 0,
            evicted_objects: 0,
            reinserted_objects: 0,
            evicted_regions: 0,
            scrub: (0, 0),
        }
    }

    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Indexes `slot` under `key`, returning the slot it replaced (whose record the caller
    /// marks dead). Keeps the regions' live bytes and key lists in step.
    pub fn put(&mut self, key: impl Into<Arc<str>>, slot: Slot<M>) -> Option<Slot<M>> {
        let key: Arc<str> = key.into();
        let region = &mut self.regions[slot.region];
        region.live += slot.total;
        region.keys.push(key.clone());
        let old = self.index.insert(key, slot)?;
        self.regions[old.region].live -= old.total;
        Some(old)
    }

    /// Takes `key` out of the index, returning its slot (whose record the caller marks dead).
    pub fn take(&mut self, key: &str) -> Option<Slot<M>> {
        let old = self.index.remove(key)?;
        self.regions[old.region].live -= old.total;
        Some(old)
    }
}

/// Readers pinning each region.
pub(super) struct Pins(Vec<AtomicU32>);

impl Pins {
    pub fn new(regions: usize) -> Self {
        Self((0..regions).map(|_| AtomicU32::new(0)).collect())
    }

    /// Pins `region` until the guard is dropped. Called under the index lock, so that the
    /// region cannot be chosen for eviction between the lookup and the pin.
    pub fn pin(self: &Arc<Self>, region: usize) -> PinGuard {
        self.0[region].fetch_add(1, Ordering::AcqRel);
        PinGuard {
            pins: self.clone(),
            region,
        }
    }

    pub fn is_pinned(&self, region: usize) -> bool {
        self.0[region].load(Ordering::Acquire) > 0
    }
}

/// One reader's pin of a region.
pub(super) struct PinGuard {
    pins: Arc<Pins>,
    region: usize,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        self.pins.0[self.region].fetch_sub(1, Ordering::AcqRel);
    }
}
