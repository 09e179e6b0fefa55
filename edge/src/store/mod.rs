//! The edge's object store: a preallocated, memory-mapped file cut into regions.
//!
//! The parts, each in its own module:
//! - `format`: the bytes on disk (region and record headers, checksums), pure.
//! - `map`: the file and its mapping; the only raw memory access and system calls.
//! - `index`: key → place, the regions' bookkeeping, and readers' pins.
//! - `evict`: reserving room for a record, emptying the least recently used region, and
//!   writing its read objects back (reinsertion).
//! - `recover`: rebuilding the index from the file at start.
//!
//! **Layout.** The file is exactly `capacity` bytes, cut into equal regions; each region has a
//! header and then records appended one after another (see `format`).
//!
//! **Eviction** is LRU at region granularity, the design of CacheLib's block cache: objects are
//! appended to one open region; when it is full, the least recently used region that no reader
//! is pinning is emptied (all its objects leave the index, its epoch goes up) and reopened. Used
//! bytes are bounded by the file, which is bounded by `capacity`. **Reinsertion**, as CacheLib
//! does it: objects of the emptied region that were read since they were written are written
//! again at the start of the reopened region (up to half of it), so a hot object does not leave
//! with its cold neighbours. The lock is held only for index updates: survivors are copied out
//! and written back without it, and served from their copies in memory (`pending`) in between.
//!
//! **Readers never see bytes being overwritten.** These are the ownership rules every access to
//! the map relies on. Raw memory access is only in `map`, as `unsafe fn`s; each call of one
//! is an `unsafe` block in a function marked `#[allow(unsafe_code)]` (the crate denies it
//! everywhere else), with a `SAFETY:` comment naming the rule it uses:
//! 1. A lookup pins the object's region (under the index lock) until the last `Bytes` of its
//!    body is dropped; a pinned region is never reset or rewritten.
//! 2. A record's range is reserved under the lock before it is written, by one writer alone;
//!    it enters the index only once it is complete, so no reader can reach it before.
//! 3. A region chosen for eviction is claimed (its writer count raised): nobody else appends
//!    to, chooses or resets it; it is reset only after its keys left the index and its pins
//!    dropped to zero.
//! 4. A record's state word is written by its writer, then only under the index lock; readers
//!    of bodies never read it.
//! 5. One process at a time: `map` holds an exclusive `flock` on the file while it is mapped.
//!
//! **Crashes.** A record is written in full as RESERVED, then its checksum is stored and its
//! state flipped to COMMITTED. On start every region is scanned: COMMITTED records of the
//! region's current epoch whose header, key and meta check out enter the index, unverified;
//! RESERVED (half-written at a crash) and DEAD (purged) ones are skipped, and records left from
//! before a region's last reset are ignored by their epoch. A body is checked against its
//! checksum at its first lookup after start and dropped (never served) if it fails, so start-up
//! reads no body.

mod evict;
mod format;
mod index;
mod map;
mod recover;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use format::{ALIGN, RECORD_HEADER, REGION_HEADER, RecordHeader, RecordState, body_offset};
use index::{Pins, Slot, State};
use map::{Map, Opened};

/// What the store keeps beside each body, encoded into the record (the cache's response meta).
pub trait Meta: Sized + Send + Sync + 'static {
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// Store failures. I/O errors at open are fatal; the others mean "serve without storing".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("store file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Config(String),
    #[error("object of {0} bytes does not fit in a store region")]
    TooLarge(u64),
    #[error("every store region is pinned by readers or writers")]
    NoSpace,
}

/// Counters a person or `/status` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub capacity: u64,
    /// Bytes of regions in use (records, dead or alive, plus region headers).
    pub used: u64,
    /// Bytes of live records.
    pub live: u64,
    pub objects: u64,
    pub evicted_objects: u64,
    /// Objects of evicted regions written again because they had been read.
    pub reinserted_objects: u64,
    pub evicted_regions: u64,
    pub region_size: u64,
    pub regions: u64,
}

/// A stored object: its meta, and its body pinned in the map until the last clone is dropped.
#[derive(Debug, Clone)]
pub struct StoredObject<M> {
    pub meta: Arc<M>,
    pub body: Bytes,
}

/// The memory-mapped store. Cheap to clone.
pub struct Store<M: Meta> {
    inner: Arc<Inner<M>>,
}

impl<M: Meta> Clone for Store<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Meta> std::fmt::Debug for Store<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("region_size", &self.inner.region_size)
            .field("regions", &self.inner.region_count)
            .finish_non_exhaustive()
    }
}

struct Inner<M> {
    map: Arc<Map>,
    capacity: u64,
    region_size: u64,
    region_count: usize,
    pins: Arc<Pins>,
    state: Mutex<State<M>>,
}

impl<M: Meta> Store<M> {
    /// Opens (or creates) the store file at `path` with exactly `capacity` bytes, recovering the
    /// index of a file of the same size. `region_size` 0 picks one from the capacity.
    pub fn open(path: &Path, capacity: u64, region_size: u64) -> Result<Self, StoreError> {
        let region_size = if region_size == 0 {
            default_region_size(capacity)
        } else {
            region_size
        };
        if region_size < 64 * 1024 || !region_size.is_multiple_of(ALIGN) {
            return Err(StoreError::Config(format!(
                "region size {region_size} must be a multiple of 64 and at least 64 KiB"
            )));
        }
        let region_count = (capacity / region_size) as usize;
        if region_count < 2 {
            return Err(StoreError::Config(format!(
                "capacity {capacity} holds fewer than two regions of {region_size} bytes"
            )));
        }
        let (mut map, opened) = Map::open(path, capacity).map_err(|source| StoreError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if let Opened::Fresh { old_len } = opened
            && old_len != 0
        {
            tracing::warn!(path = %path.display(), old = old_len, new = capacity, "store size changed; starting empty");
        }
        let mut state = State::new(region_count);
        recover::recover(&mut map, region_size, &mut state);
        Ok(Self {
            inner: Arc::new(Inner {
                map: Arc::new(map),
                capacity,
                region_size,
                region_count,
                pins: Arc::new(Pins::new(region_count)),
                state: Mutex::new(state),
            }),
        })
    }

    /// The largest body that fits beside `key_and_meta` bytes of key and meta.
    pub fn max_body(&self, key_and_meta: u64) -> u64 {
        (self.inner.region_size - REGION_HEADER).saturating_sub(RECORD_HEADER + key_and_meta)
    }

    /// Looks `key` up; a hit pins its region until the returned body is dropped.
    #[allow(unsafe_code)]
    pub fn get(&self, key: &str) -> Option<StoredObject<M>> {
        let inner = &self.inner;
        let mut state = inner.lock();
        let clock = state.tick();
        let Some(slot) = state.index.get_mut(key) else {
            // Being rewritten after an eviction: served from its copy (no pin needed).
            let pending = state.pending.get(key)?;
            return Some(StoredObject {
                meta: pending.meta.clone(),
                body: pending.body.clone(),
            });
        };
        slot.hit = true;
        let (region, start, len, meta) = (
            slot.region,
            slot.body_start,
            slot.body_len,
            slot.meta.clone(),
        );
        let unchecked = slot
            .unverified
            .map(|checksum| Unchecked::of(slot, checksum));
        state.regions[region].last_access = clock;
        let pin = inner.pins.pin(region);
        drop(state);
        if let Some(unchecked) = unchecked
            && !self.check(key, &unchecked)
        {
            return None;
        }
        // SAFETY: rule 1: the region is pinned (taken under the lock that found the record
        // committed and indexed) until the body's last clone drops the pin.
        let body = unsafe { inner.map.body(inner.at(region, start), len, pin) };
        Some(StoredObject { meta, body })
    }

    /// Checks an unverified record's payload against its checksum, its region pinned by the
    /// caller, and records the verdict: the slot is marked verified, or dropped from the index
    /// and marked dead. True when intact.
    #[allow(unsafe_code)]
    fn check(&self, key: &str, unchecked: &Unchecked) -> bool {
        let inner = &self.inner;
        let payload_at = inner.at(unchecked.region, unchecked.offset) + RECORD_HEADER;
        // SAFETY: rule 1: the caller pinned the region under the lock that found the record
        // committed and indexed, and holds the pin until after this read.
        let payload = unsafe { inner.map.slice(payload_at, unchecked.payload_len) };
        let intact = recover::payload_matches(
            payload,
            unchecked.body_len,
            unchecked.seq,
            unchecked.checksum,
        );
        let mut state = inner.lock();
        let same = state.index.get(key).is_some_and(|s| s.seq == unchecked.seq);
        if !intact {
            tracing::warn!(key, "stored object failed its checksum; dropped");
            if same && let Some(old) = state.take(key) {
                inner.mark_dead(&old);
            }
            return false;
        }
        if same && let Some(slot) = state.index.get_mut(key) {
            slot.unverified = None;
        }
        true
    }

    /// Checks up to `max` bodies not yet checked since start, without counting them as used:
    /// the background pass after start (`edge::run` keeps calling it on the blocking pool),
    /// so that most first lookups find their object checked already. Returns how many were
    /// checked; 0 once the pass has been through every region.
    pub fn check_some(&self, max: usize) -> usize {
        let mut batch = Vec::with_capacity(max);
        {
            let mut state = self.inner.lock();
            let (mut r, mut i) = state.scrub;
            while batch.len() < max && r < state.regions.len() {
                let Some(key) = state.regions[r].keys.get(i) else {
                    (r, i) = (r + 1, 0);
                    continue;
                };
                i += 1;
                if let Some(slot) = state.index.get(key)
                    && slot.region == r
                    && let Some(checksum) = slot.unverified
                {
                    let unchecked = Unchecked::of(slot, checksum);
                    let pin = self.inner.pins.pin(r);
                    batch.push((key.clone(), unchecked, pin));
                }
            }
            state.scrub = (r, i);
        }
        let checked = batch.len();
        for (key, unchecked, _pin) in batch {
            self.check(&key, &unchecked);
        }
        checked
    }

    /// True when `key` is stored (does not count as a use).
    pub fn contains(&self, key: &str) -> bool {
        let state = self.inner.lock();
        state.index.contains_key(key) || state.pending.contains_key(key)
    }

    /// Replaces the meta of a stored object in memory (after a revalidation). The record on disk
    /// keeps the old meta, so after a restart the object is revalidated again: harmless.
    pub fn update_meta(&self, key: &str, meta: M) -> bool {
        let mut state = self.inner.lock();
        if let Some(slot) = state.index.get_mut(key) {
            slot.meta = Arc::new(meta);
            true
        } else if let Some(pending) = state.pending.get_mut(key) {
            pending.meta = Arc::new(meta);
            true
        } else {
            false
        }
    }

    /// Stores `body` (given as the chunks it arrived in) under `key`. Blocking: it copies into the
    /// map and may fault pages in, so async callers run it on the blocking pool.
    /// `counts_as_use` raises the region's recency; prefetched objects pass false, so that
    /// prefetches nobody plays do not keep a region alive.
    #[allow(unsafe_code)]
    pub fn insert(
        &self,
        key: &str,
        meta: &M,
        body: &[Bytes],
        counts_as_use: bool,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        let meta_bytes = meta.encode();
        let body_len: u64 = body.iter().map(|b| b.len() as u64).sum();
        let key_len = key.len() as u64;
        let meta_len = meta_bytes.len() as u64;
        if key_len > u32::MAX as u64 || meta_len > u32::MAX as u64 {
            return Err(StoreError::TooLarge(body_len));
        }
        let total = RecordHeader::total_for(key_len, meta_len, body_len);
        if total > inner.region_size - REGION_HEADER {
            return Err(StoreError::TooLarge(body_len));
        }
        let decoded = Arc::new(
            M::decode(&meta_bytes).ok_or(StoreError::Config("meta does not round-trip".into()))?,
        );

        let (reserved, rewrite) = inner.reserve(total);
        // An eviction's survivors are written first: they are in memory until they are.
        if let Some(rewrite) = rewrite {
            inner.rewrite(rewrite);
        }
        let reserved = reserved?;

        let parts: Vec<&[u8]> = body.iter().map(|b| b.as_ref()).collect();
        // SAFETY: rule 2: the range was just reserved for this call alone; no index entry
        // points into it and its region cannot be evicted while its writer count is raised.
        unsafe {
            inner.map.write_record(
                inner.at(reserved.region, reserved.offset),
                reserved.place(total),
                key.as_bytes(),
                &meta_bytes,
                &parts,
            );
        }

        let mut state = inner.lock();
        let region = reserved.region;
        if counts_as_use {
            let clock = state.tick();
            state.regions[region].last_access = clock;
        }
        state.regions[region].writers -= 1;
        let slot = Slot {
            region,
            offset: reserved.offset,
            total,
            body_start: reserved.offset + body_offset(key_len, meta_len),
            body_len,
            seq: reserved.seq,
            meta: decoded,
            hit: false,
            unverified: None,
        };
        // This write is newer than a survivor of the same key waiting for its rewrite.
        state.pending.remove(key);
        if let Some(old) = state.put(key.to_owned(), slot) {
            inner.mark_dead(&old);
        }
        Ok(())
    }

    /// Removes `key`; the record is marked dead on disk so it does not return after a restart.
    pub fn remove(&self, key: &str) -> bool {
        let mut state = self.inner.lock();
        // A survivor waiting for its rewrite is dropped; its record is marked dead once written.
        let pending = state.pending.remove(key).is_some();
        match state.take(key) {
            Some(old) => {
                self.inner.mark_dead(&old);
                true
            }
            None => pending,
        }
    }

    /// Removes every key that starts with `prefix`; returns how many.
    pub fn remove_prefix(&self, prefix: &str) -> usize {
        let mut state = self.inner.lock();
        let keys: Vec<String> = state
            .index
            .keys()
            .map(|k| &**k)
            .chain(state.pending.keys().map(String::as_str))
            .filter(|k| k.starts_with(prefix))
            .map(str::to_owned)
            .collect();
        for key in &keys {
            state.pending.remove(key);
            if let Some(old) = state.take(key) {
                self.inner.mark_dead(&old);
            }
        }
        keys.len()
    }

    /// Current counters.
    pub fn stats(&self) -> StoreStats {
        let state = self.inner.lock();
        let used = state.regions.iter().map(|r| r.fill).sum();
        StoreStats {
            capacity: self.inner.capacity,
            used,
            live: state.regions.iter().map(|r| r.live).sum(),
            objects: (state.index.len() + state.pending.len()) as u64,
            evicted_objects: state.evicted_objects,
            reinserted_objects: state.reinserted_objects,
            evicted_regions: state.evicted_regions,
            region_size: self.inner.region_size,
            regions: self.inner.region_count as u64,
        }
    }

    /// Asks the kernel to read a stored body's pages ahead (`MADV_WILLNEED`), so that copying it
    /// to a socket does not stop on one page fault after another.
    pub fn will_need(&self, body: &Bytes) {
        self.inner.map.will_need(body);
    }

    /// True when every page of a stored body is in memory, so that copying it to a socket
    /// cannot stop on disk I/O.
    pub fn is_resident(&self, body: &Bytes) -> bool {
        self.inner.map.is_resident(body)
    }

    /// For benchmarks: drops a stored body's pages, so the next read faults them in from the
    /// file.
    pub fn drop_pages(&self, body: &Bytes) {
        self.inner.map.drop_pages(body);
    }

    /// Flushes the map to the file (used on clean shutdown; a crash relies on the page cache).
    pub fn flush(&self) -> std::io::Result<()> {
        self.inner.map.flush()
    }
}

impl<M: Meta> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // A panic while holding the lock can leave a region's counters off (an eviction or an
        // insert updates several fields), never an index entry pointing at an unwritten
        // record, since records are written before they are indexed. Serving on beats
        // stopping every request of the edge.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The absolute offset of `offset` within region `region`.
    fn at(&self, region: usize, offset: u64) -> u64 {
        self.region_size * region as u64 + offset
    }

    /// Marks a slot's record dead, so that it does not return after a restart: one taken out of
    /// the index, or a survivor its rewrite wrote but may not index. Called with the lock held.
    #[allow(unsafe_code)]
    fn mark_dead(&self, slot: &Slot<M>) {
        // SAFETY: rule 4: the record is complete (it was indexed, or its rewrite just wrote it
        // under its region's claim) and this runs under the index lock.
        unsafe {
            self.map
                .set_state(self.at(slot.region, slot.offset), RecordState::Dead)
        };
    }
}

/// A record to check against its checksum: where its payload is, and what it must hash to.
struct Unchecked {
    region: usize,
    offset: u64,
    payload_len: u64,
    body_len: u64,
    seq: u64,
    checksum: u64,
}

impl Unchecked {
    fn of<M>(slot: &Slot<M>, checksum: u64) -> Self {
        Self {
            region: slot.region,
            offset: slot.offset,
            payload_len: slot.body_start - slot.offset - RECORD_HEADER + slot.body_len,
            body_len: slot.body_len,
            seq: slot.seq,
            checksum,
        }
    }
}

/// About 16 regions, each between 1 MiB and 64 MiB, in whole 64 KiB.
fn default_region_size(capacity: u64) -> u64 {
    let size = (capacity / 16).clamp(1 << 20, 64 << 20);
    size / (64 * 1024) * (64 * 1024)
}

#[cfg(test)]
mod tests;
