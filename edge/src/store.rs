//! The edge's object store: a preallocated, memory-mapped file cut into regions.
//!
//! This is the only module of Meridian allowed `unsafe`; each block says why it is sound.
//!
//! **Layout.** The file is exactly `capacity` bytes, allocated once with `posix_fallocate` (so a
//! full disk is an error at start, never a SIGBUS later) and never truncated while mapped. It is
//! cut into equal regions. Each region starts with a 64-byte header (magic, epoch) and then holds
//! records appended one after another:
//!
//! ```text
//! record = header (64 B) | key | meta | body | padding to 64 B
//! header = magic u32 | key_len u32 | epoch u64 | total_len u64 | meta_len u32 | 0 u32
//!        | body_len u64 | seq u64 | checksum u64 | header_check u64
//! ```
//!
//! **Eviction** is LRU at region granularity, the design of CacheLib's block cache: objects are
//! appended to one open region; when it is full, the least recently used region that no reader
//! is pinning is emptied (all its objects leave the index, its epoch goes up) and reopened. Used
//! bytes are bounded by the file, which is bounded by `capacity`. **Reinsertion**, as CacheLib
//! does it: objects of the emptied region that were read since they were written are written
//! again at the start of the reopened region (up to half of it), so a hot object does not leave
//! with its cold neighbours. The benchmark's simulator measured it closing most of the hit-ratio
//! gap to object-level LRU (benches/results/report.md). The lock is held only for index
//! updates: survivors are copied out and written back without it, and served from their copies
//! in memory (`pending`) in between (`Inner::empty_region`; `cargo bench -p edge --bench
//! eviction` counts the lookups that waited).
//!
//! **Readers never see bytes being overwritten.** A lookup pins the object's region (a counter
//! taken under the index lock) until the last `Bytes` of its body is dropped; a pinned region is
//! never chosen for eviction, and a region being emptied is rewritten only once its keys have
//! left the index and its pins have dropped to zero. Records are written before they enter the index, so no reader can
//! reach a record that is still being written.
//!
//! **Crashes.** A record is written in full as RESERVED, then its checksum (xxh3 over key, meta,
//! body, length and sequence) is stored and its magic flipped to COMMITTED. On start every region
//! is scanned: only COMMITTED records of the region's current epoch whose checksum verifies enter
//! the index; RESERVED (half-written at a crash), DEAD (purged) and corrupt ones are skipped, and
//! records left from before a region's last reset are ignored by their epoch.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

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

const REGION_MAGIC: u64 = u64::from_le_bytes(*b"MRDNREG1");
const REGION_HEADER: u64 = 64;
const RECORD_HEADER: u64 = 64;
const ALIGN: u64 = 64;
const RESERVED: u32 = u32::from_le_bytes(*b"MRRV");
const COMMITTED: u32 = u32::from_le_bytes(*b"MRCM");
const DEAD: u32 = u32::from_le_bytes(*b"MRDD");

struct Inner<M> {
    map: MmapRaw,
    _file: File,
    capacity: u64,
    region_size: u64,
    region_count: usize,
    /// Readers pinning each region; raised under `state`'s lock, lowered without it.
    pins: Vec<AtomicU32>,
    state: Mutex<State<M>>,
}

struct State<M> {
    index: HashMap<String, Slot<M>>,
    /// Survivors of an eviction between their copy-out and their rewrite: served from memory.
    pending: HashMap<String, Pending<M>>,
    regions: Vec<Region>,
    open: Option<usize>,
    clock: u64,
    seq: u64,
    evicted_objects: u64,
    reinserted_objects: u64,
    evicted_regions: u64,
}

/// An object copied out of a region being evicted, to be written back into it.
struct Survivor<M> {
    key: String,
    meta: Arc<M>,
    meta_bytes: Vec<u8>,
    body: Bytes,
    total: u64,
    seq: u64,
}

/// A survivor as planned under the lock, before its body is copied out.
struct Planned {
    key: String,
    /// Where its record was, to tell whether the index still points at this one.
    offset: u64,
    body_start: u64,
    body_len: u64,
    meta_bytes: Vec<u8>,
    total: u64,
    seq: u64,
}

/// Room reserved for one record: region, offset in it, the region's epoch, the record's seq.
type Reservation = (usize, u64, u64, u64);

/// How long emptying a region waits for readers still sending its bodies.
const PIN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A survivor waiting for its rewrite, as lookups see it.
struct Pending<M> {
    meta: Arc<M>,
    body: Bytes,
    seq: u64,
}

/// Survivors placed at the start of a region just reset, to be written outside the lock
/// (`Inner::rewrite`); the region's writer count stays raised until they are.
struct Rewrite<M> {
    region: usize,
    epoch: u64,
    items: Vec<(u64, Survivor<M>)>,
}

struct Slot<M> {
    region: usize,
    offset: u64,
    total: u64,
    body_start: u64,
    body_len: u64,
    meta: Arc<M>,
    /// Read since it was written: kept (reinserted) when its region is evicted.
    hit: bool,
}

#[derive(Default)]
struct Region {
    epoch: u64,
    /// Next free offset within the region (starts after the region header).
    fill: u64,
    writers: u32,
    last_access: u64,
    live: u64,
    keys: Vec<String>,
}

impl<M: Meta> Store<M> {
    /// Opens (or creates) the store file at `path` with exactly `capacity` bytes, recovering the
    /// index of a file of the same size. `region_size` 0 picks one from the capacity.
    pub fn open(path: &Path, capacity: u64, region_size: u64) -> Result<Self, StoreError> {
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
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
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len != capacity {
            // A different size means a different layout: start empty. This happens before the
            // file is mapped, so no mapping ever sees it shrink.
            if len != 0 {
                tracing::warn!(path = %path.display(), old = len, new = capacity, "store size changed; starting empty");
            }
            file.set_len(0).map_err(io)?;
            nix::fcntl::posix_fallocate(&file, 0, capacity as i64)
                .map_err(|e| io(std::io::Error::from(e)))?;
        }
        let map = MmapOptions::new()
            .len(capacity as usize)
            .map_raw(&file)
            .map_err(io)?;
        let inner = Inner {
            map,
            _file: file,
            capacity,
            region_size,
            region_count,
            pins: (0..region_count).map(|_| AtomicU32::new(0)).collect(),
            state: Mutex::new(State {
                index: HashMap::new(),
                pending: HashMap::new(),
                regions: (0..region_count).map(|_| Region::default()).collect(),
                open: None,
                clock: 0,
                seq: 0,
                evicted_objects: 0,
                reinserted_objects: 0,
                evicted_regions: 0,
            }),
        };
        inner.recover();
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The largest body that fits beside `key_and_meta` bytes of key and meta.
    pub fn max_body(&self, key_and_meta: u64) -> u64 {
        (self.inner.region_size - REGION_HEADER).saturating_sub(RECORD_HEADER + key_and_meta)
    }

    /// Looks `key` up; a hit pins its region until the returned body is dropped.
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
        state.regions[region].last_access = clock;
        inner.pins[region].fetch_add(1, Ordering::AcqRel);
        drop(state);
        let view = BodyView {
            store: self.inner.clone(),
            region,
            start,
            len,
        };
        Some(StoredObject {
            meta,
            body: Bytes::from_owner(view),
        })
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
        let total = align(RECORD_HEADER + key_len + meta_len + body_len);
        if total > inner.region_size - REGION_HEADER {
            return Err(StoreError::TooLarge(body_len));
        }

        let (reserved, rewrite) = inner.reserve(total);
        // An eviction's survivors are written first: they are in memory until they are.
        if let Some(rewrite) = rewrite {
            inner.rewrite(rewrite);
        }
        let (region, offset, epoch, seq) = reserved?;

        // The reserved range [offset, offset + total) of `region` belongs to this call alone:
        // no index entry points into it and the region cannot be evicted while writers > 0.
        let base = inner.region_size * region as u64 + offset;
        let parts: Vec<&[u8]> = body.iter().map(|b| b.as_ref()).collect();
        inner.write_record(base, total, epoch, seq, key.as_bytes(), &meta_bytes, &parts);

        let mut state = inner.lock();
        if counts_as_use {
            let clock = state.tick();
            state.regions[region].last_access = clock;
        }
        let body_start = offset + RECORD_HEADER + key_len + meta_len;
        state.regions[region].writers -= 1;
        state.regions[region].live += total;
        state.regions[region].keys.push(key.to_owned());
        let slot = Slot {
            region,
            offset,
            total,
            body_start,
            body_len,
            meta: Arc::new(
                Meta::decode(&meta_bytes)
                    .ok_or(StoreError::Config("meta does not round-trip".into()))?,
            ),
            hit: false,
        };
        // This write is newer than a survivor of the same key waiting for its rewrite.
        state.pending.remove(key);
        if let Some(old) = state.index.insert(key.to_owned(), slot) {
            state.regions[old.region].live -= old.total;
            inner.mark_dead(&old);
        }
        Ok(())
    }

    /// Removes `key`; the record is marked dead on disk so it does not return after a restart.
    pub fn remove(&self, key: &str) -> bool {
        let mut state = self.inner.lock();
        // A survivor waiting for its rewrite is dropped; its record is marked dead once written.
        let pending = state.pending.remove(key).is_some();
        match state.index.remove(key) {
            Some(old) => {
                state.regions[old.region].live -= old.total;
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
            .chain(state.pending.keys())
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        for key in &keys {
            state.pending.remove(key);
            if let Some(old) = state.index.remove(key) {
                state.regions[old.region].live -= old.total;
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
    /// to a socket does not stop on one page fault after another. Cheap: it only queues I/O.
    pub fn will_need(&self, body: &Bytes) {
        if let Some(offset) = self.inner.offset_of(body) {
            let _ = self
                .inner
                .map
                .advise_range(memmap2::Advice::WillNeed, offset, body.len());
        }
    }

    /// True when every page of a stored body is in memory (`mincore`), so that copying it to a
    /// socket cannot stop on disk I/O. About a microsecond for a 1 MiB body.
    pub fn is_resident(&self, body: &Bytes) -> bool {
        let Some(offset) = self.inner.offset_of(body) else {
            return true;
        };
        let page = 4096usize;
        let start = (self.inner.map.as_ptr() as usize + offset) & !(page - 1);
        let end = self.inner.map.as_ptr() as usize + offset + body.len();
        let pages = (end - start).div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: [start, end) lies inside our mapping (offset_of checked the bounds) and start
        // is page-aligned as mincore requires; `vec` has one byte per page of the range.
        let rc =
            unsafe { libc::mincore(start as *mut libc::c_void, end - start, vec.as_mut_ptr()) };
        rc == 0 && vec.iter().all(|v| v & 1 == 1)
    }

    /// For benchmarks: writes a stored body's pages back and drops them from the mapping and
    /// the page cache, so the next read faults them in from the file.
    pub fn drop_pages(&self, body: &Bytes) {
        let Some(offset) = self.inner.offset_of(body) else {
            return;
        };
        let _ = self.inner.map.flush_range(offset, body.len());
        // SAFETY: MADV_DONTNEED on a shared file mapping only drops this process's page table
        // entries; the bytes stay in the file (dirty pages were flushed just above, and the
        // kernel keeps dirty state on the page cache anyway), and the next access faults the
        // same contents back in. No reference into the range changes meaning.
        let _ = unsafe {
            self.inner.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                offset,
                body.len(),
            )
        };
        let _ = nix::fcntl::posix_fadvise(
            &self.inner._file,
            offset as i64,
            body.len() as i64,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }

    /// Flushes the map to the file (used on clean shutdown; a crash relies on the page cache).
    pub fn flush(&self) -> std::io::Result<()> {
        self.inner.map.flush()
    }
}

impl<M> State<M> {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

impl<M: Meta> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // A panic while holding the lock leaves the index consistent (every update is a single
        // insert or remove), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Copies `bytes` into the map at absolute `offset`.
    fn write(&self, offset: u64, bytes: &[u8]) {
        assert!(
            offset + bytes.len() as u64 <= self.capacity,
            "store write out of bounds"
        );
        // SAFETY: the range is inside the mapping (checked above), which lives as long as
        // `self`. Callers only write ranges they own exclusively: a freshly reserved record or
        // a survivor's (not in the index, region not evictable while its writer count is
        // raised), a region header while the region is reset under the lock by the call that
        // claimed it, once no key points into it and no pins are left, or a record's magic
        // under the lock (readers only read body bytes, never the magic).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_mut_ptr().add(offset as usize),
                bytes.len(),
            );
        }
    }

    /// Borrows `len` bytes of the map at absolute `offset`.
    fn read(&self, offset: u64, len: u64) -> &[u8] {
        assert!(offset + len <= self.capacity, "store read out of bounds");
        // SAFETY: the range is inside the mapping, which outlives the borrow of `self`. Callers
        // read only committed records in pinned regions (never written until unpinned), the
        // bodies of a region claimed for emptying by the reading call itself (nobody appends to
        // or resets a claimed region, and no record's body is ever written in place) or, during
        // recovery, before any writer exists.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset as usize), len as usize) }
    }

    fn read_u32(&self, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.read(offset, 4));
        u32::from_le_bytes(b)
    }

    fn read_u64(&self, offset: u64) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.read(offset, 8));
        u64::from_le_bytes(b)
    }

    /// Where a body handed out by this store starts in the map.
    fn offset_of(&self, body: &Bytes) -> Option<usize> {
        let base = self.map.as_ptr() as usize;
        let at = (body.as_ptr() as usize).checked_sub(base)?;
        (at + body.len() <= self.capacity as usize).then_some(at)
    }

    fn mark_dead(&self, slot: &Slot<M>) {
        self.write(
            self.region_size * slot.region as u64 + slot.offset,
            &DEAD.to_le_bytes(),
        );
    }

    /// Writes a whole record of `total` bytes at absolute offset `base` (a range the caller owns
    /// alone): RESERVED header, key, meta, body, then length, sequence and checksum, and only
    /// then the COMMITTED magic.
    #[allow(clippy::too_many_arguments)]
    fn write_record(
        &self,
        base: u64,
        total: u64,
        epoch: u64,
        seq: u64,
        key: &[u8],
        meta: &[u8],
        body: &[&[u8]],
    ) {
        let key_len = key.len() as u64;
        let meta_len = meta.len() as u64;
        let body_len: u64 = body.iter().map(|b| b.len() as u64).sum();
        let mut header = [0u8; RECORD_HEADER as usize];
        header[4..8].copy_from_slice(&(key_len as u32).to_le_bytes());
        header[8..16].copy_from_slice(&epoch.to_le_bytes());
        header[16..24].copy_from_slice(&total.to_le_bytes());
        header[24..28].copy_from_slice(&(meta_len as u32).to_le_bytes());
        let check = xxh3_64(&header[4..32]);
        header[56..64].copy_from_slice(&check.to_le_bytes());
        header[0..4].copy_from_slice(&RESERVED.to_le_bytes());
        self.write(base, &header);
        let mut at = base + RECORD_HEADER;
        let mut hasher = Xxh3::new();
        for part in [key, meta].into_iter().chain(body.iter().copied()) {
            self.write(at, part);
            hasher.update(part);
            at += part.len() as u64;
        }
        hasher.update(&body_len.to_le_bytes());
        hasher.update(&seq.to_le_bytes());
        let mut tail = [0u8; 24];
        tail[0..8].copy_from_slice(&body_len.to_le_bytes());
        tail[8..16].copy_from_slice(&seq.to_le_bytes());
        tail[16..24].copy_from_slice(&hasher.digest().to_le_bytes());
        self.write(base + 32, &tail);
        // Everything above must be in the map before the magic says the record is complete.
        fence(Ordering::Release);
        self.write(base, &COMMITTED.to_le_bytes());
    }

    /// The objects of region `r` worth keeping when it is evicted: read since they were written,
    /// at most half a region of them and never crowding out the `needed` bytes of the record
    /// being placed. Planned under the lock, copied out without it (`empty_region`). Each keeps
    /// its record's sequence number, so a newer write of the same key, in flight, wins at
    /// recovery.
    fn survivors(&self, state: &State<M>, r: usize, needed: u64) -> Vec<Planned> {
        let room = self.region_size - REGION_HEADER;
        let budget = (room / 2).min(room.saturating_sub(needed));
        let mut used = 0;
        let mut out = Vec::new();
        // A key rewritten while its region was open is listed once per write.
        let mut seen = std::collections::HashSet::new();
        for key in &state.regions[r].keys {
            let Some(slot) = state.index.get(key) else {
                continue;
            };
            if slot.region != r || !slot.hit || !seen.insert(key.as_str()) {
                continue;
            }
            // Sized from the meta as it is now (a revalidation may have grown it).
            let meta_bytes = slot.meta.encode();
            let total =
                align(RECORD_HEADER + key.len() as u64 + meta_bytes.len() as u64 + slot.body_len);
            if used + total > budget {
                continue;
            }
            used += total;
            out.push(Planned {
                key: key.clone(),
                offset: slot.offset,
                body_start: slot.body_start,
                body_len: slot.body_len,
                meta_bytes,
                total,
                seq: self.seq_of(slot),
            });
        }
        out
    }

    /// Places the survivors still wanted at the start of region `r`, just reset: reserves
    /// their ranges for `rewrite`, which the region's claim (its raised writer count) covers.
    fn place(
        &self,
        state: &mut State<M>,
        r: usize,
        survivors: Vec<Survivor<M>>,
    ) -> Option<Rewrite<M>> {
        let mut items = Vec::with_capacity(survivors.len());
        for s in survivors {
            // A newer write or a purge while the region emptied: nothing to keep.
            if state.pending.get(&s.key).is_none_or(|p| p.seq != s.seq) {
                continue;
            }
            let region = &mut state.regions[r];
            let offset = region.fill;
            region.fill += s.total;
            items.push((offset, s));
        }
        if items.is_empty() {
            return None;
        }
        Some(Rewrite {
            region: r,
            epoch: state.regions[r].epoch,
            items,
        })
    }

    /// Writes placed survivors outside the lock, then indexes those still wanted (a newer write
    /// or a purge of the same key, meanwhile, wins: that record is marked dead).
    fn rewrite(&self, rewrite: Rewrite<M>) {
        let Rewrite {
            region: r,
            epoch,
            items,
        } = rewrite;
        for (offset, s) in &items {
            self.write_record(
                self.region_size * r as u64 + offset,
                s.total,
                epoch,
                s.seq,
                s.key.as_bytes(),
                &s.meta_bytes,
                &[&s.body],
            );
        }
        let mut state = self.lock();
        let mut kept = 0;
        for (offset, s) in items {
            let body_start =
                offset + RECORD_HEADER + s.key.len() as u64 + s.meta_bytes.len() as u64;
            let mut slot = Slot {
                region: r,
                offset,
                total: s.total,
                body_start,
                body_len: s.body.len() as u64,
                meta: s.meta,
                hit: false,
            };
            match state.pending.remove(&s.key) {
                Some(pending) if pending.seq == s.seq => {
                    // The meta as it is now: a revalidation may have replaced it meanwhile.
                    slot.meta = pending.meta;
                    let region = &mut state.regions[r];
                    region.live += s.total;
                    region.keys.push(s.key.clone());
                    state.index.insert(s.key, slot);
                    kept += 1;
                }
                other => {
                    if let Some(pending) = other {
                        state.pending.insert(s.key, pending);
                    }
                    self.mark_dead(&slot);
                }
            }
        }
        state.regions[r].writers -= 1;
        state.reinserted_objects += kept;
    }

    /// Reserves room for a record of `total` bytes: `(region, offset, epoch, seq)` in the open
    /// region, else in a free one, else in the least recently used region nobody pins or
    /// writes, emptied first (keeping its read objects: the returned `Rewrite`, which the caller
    /// writes, outside the lock, before its own record).
    fn reserve(&self, total: u64) -> (Result<Reservation, StoreError>, Option<Rewrite<M>>) {
        let mut state = self.lock();
        let open = state
            .open
            .filter(|&open| state.regions[open].fill + total <= self.region_size);
        let (region, rewrite) = match open {
            Some(open) => (open, None),
            None => {
                let Some(candidate) = (0..self.region_count)
                    .filter(|&r| Some(r) != state.open)
                    .filter(|&r| {
                        state.regions[r].writers == 0 && self.pins[r].load(Ordering::Acquire) == 0
                    })
                    .min_by_key(|&r| {
                        let region = &state.regions[r];
                        // Never-used regions first, then least recently used.
                        (region.fill > REGION_HEADER, region.last_access)
                    })
                else {
                    return (Err(StoreError::NoSpace), None);
                };
                let planned = self.survivors(&state, candidate, total);
                // Claimed: nobody else chooses, appends to or resets it until we are done.
                state.regions[candidate].writers += 1;
                drop(state);
                let (guard, rewrite) = match self.empty_region(candidate, planned) {
                    Ok(emptied) => emptied,
                    Err(error) => return (Err(error), None),
                };
                state = guard;
                state.open = Some(candidate);
                // The claim passes to the survivors' rewrite, which ends it; without one it
                // ends here, under the same lock that opened the region.
                if rewrite.is_none() {
                    state.regions[candidate].writers -= 1;
                }
                (candidate, rewrite)
            }
        };
        // The survivors' budget left room for this record; a region is never written past.
        let r = &mut state.regions[region];
        if r.fill + total > self.region_size {
            return (Err(StoreError::NoSpace), rewrite);
        }
        let offset = r.fill;
        r.fill += total;
        r.writers += 1;
        let epoch = r.epoch;
        state.seq += 1;
        (Ok((region, offset, epoch, state.seq)), rewrite)
    }

    /// Empties claimed region `r` for reuse, keeping `planned` survivors, with the lock held
    /// only for index updates:
    /// 1. the survivors are copied out without the lock (nobody appends to a claimed region);
    /// 2. under the lock, every key of the region leaves the index, the survivors into
    ///    `pending`, so no new reader can pin the region;
    /// 3. without the lock, the readers still holding its bodies finish (at most `PIN_WAIT`,
    ///    else the region is left for later and this insert is not stored);
    /// 4. under the lock, its header is reset and the survivors' ranges reserved.
    ///
    /// Returns with the lock held, so the caller opens the region before anyone else sees it.
    #[allow(clippy::type_complexity)]
    fn empty_region(
        &self,
        r: usize,
        planned: Vec<Planned>,
    ) -> Result<(MutexGuard<'_, State<M>>, Option<Rewrite<M>>), StoreError> {
        let base = self.region_size * r as u64;
        // Copied out by key, to match against the index once the lock is taken again.
        let mut by_key: HashMap<String, (Planned, Bytes)> = planned
            .into_iter()
            .map(|p| {
                let body = Bytes::copy_from_slice(self.read(base + p.body_start, p.body_len));
                (p.key.clone(), (p, body))
            })
            .collect();
        let mut survivors = Vec::with_capacity(by_key.len());
        {
            let mut state = self.lock();
            let keys = std::mem::take(&mut state.regions[r].keys);
            let mut evicted = 0;
            for key in keys {
                if state.index.get(&key).is_none_or(|slot| slot.region != r) {
                    continue;
                }
                let Some(slot) = state.index.remove(&key) else {
                    continue;
                };
                // Kept only if the copy is of the record indexed now.
                match by_key.remove(&key) {
                    Some((p, body)) if p.offset == slot.offset => {
                        state.pending.insert(
                            key.clone(),
                            Pending {
                                meta: slot.meta.clone(),
                                body: body.clone(),
                                seq: p.seq,
                            },
                        );
                        survivors.push(Survivor {
                            key,
                            meta: slot.meta,
                            meta_bytes: p.meta_bytes,
                            body,
                            total: p.total,
                            seq: p.seq,
                        });
                    }
                    _ => evicted += 1,
                }
            }
            if state.regions[r].fill > REGION_HEADER {
                state.evicted_regions += 1;
            }
            state.evicted_objects += evicted;
            state.regions[r].live = 0;
        }
        let deadline = std::time::Instant::now() + PIN_WAIT;
        while self.pins[r].load(Ordering::Acquire) > 0 {
            if std::time::Instant::now() > deadline {
                // A slow reader: the region stays empty of keys and is chosen again once it is
                // unpinned; its survivors are evicted after all.
                let mut state = self.lock();
                for s in &survivors {
                    if state.pending.get(&s.key).is_some_and(|p| p.seq == s.seq) {
                        state.pending.remove(&s.key);
                        state.evicted_objects += 1;
                    }
                }
                state.regions[r].writers -= 1;
                tracing::warn!(
                    region = r,
                    "store: a reader held an evicted region too long; not storing this object"
                );
                return Err(StoreError::NoSpace);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut state = self.lock();
        self.reset_header(&mut state, r);
        let rewrite = self.place(&mut state, r, survivors);
        Ok((state, rewrite))
    }

    /// Starts region `r` again: a new epoch (older records in it no longer count), empty.
    fn reset_header(&self, state: &mut State<M>, r: usize) {
        let epoch = state.regions[r].epoch + 1;
        let clock = state.tick();
        let region = &mut state.regions[r];
        region.epoch = epoch;
        region.fill = REGION_HEADER;
        region.live = 0;
        region.last_access = clock;
        let mut header = [0u8; REGION_HEADER as usize];
        header[0..8].copy_from_slice(&REGION_MAGIC.to_le_bytes());
        header[8..16].copy_from_slice(&epoch.to_le_bytes());
        let check = xxh3_64(&header[0..16]);
        header[16..24].copy_from_slice(&check.to_le_bytes());
        self.write(self.region_size * r as u64, &header);
    }

    /// Rebuilds the index from the file.
    fn recover(&self) {
        let mut state = self.lock();
        let mut recovered = 0u64;
        let mut dropped = 0u64;
        for r in 0..self.region_count {
            let base = self.region_size * r as u64;
            let header = self.read(base, REGION_HEADER);
            let valid = header[0..8] == REGION_MAGIC.to_le_bytes()
                && header[16..24] == xxh3_64(&header[0..16]).to_le_bytes();
            if !valid {
                continue; // Never used (or unreadable): treated as free.
            }
            let epoch = self.read_u64(base + 8);
            state.regions[r].epoch = epoch;
            let mut offset = REGION_HEADER;
            let mut newest = 0;
            while offset + RECORD_HEADER <= self.region_size {
                let at = base + offset;
                let magic = self.read_u32(at);
                if ![RESERVED, COMMITTED, DEAD].contains(&magic) {
                    break;
                }
                let fixed = self.read(at + 4, 28);
                if self.read_u64(at + 56) != xxh3_64(fixed) || self.read_u64(at + 8) != epoch {
                    break;
                }
                let total = self.read_u64(at + 16);
                if total < RECORD_HEADER
                    || !total.is_multiple_of(ALIGN)
                    || offset + total > self.region_size
                {
                    break;
                }
                if magic == COMMITTED {
                    match self.verify(at, total) {
                        Some((key, meta, body_start, body_len, seq)) => {
                            newest = newest.max(seq);
                            state.seq = state.seq.max(seq);
                            let slot = Slot {
                                region: r,
                                offset,
                                total,
                                body_start: offset + body_start,
                                body_len,
                                meta: Arc::new(meta),
                                hit: false,
                            };
                            let replace = match state.index.get(&key) {
                                Some(existing) => self.seq_of(existing) < seq,
                                None => true,
                            };
                            if replace {
                                state.regions[r].live += total;
                                state.regions[r].keys.push(key.clone());
                                if let Some(old) = state.index.insert(key, slot) {
                                    state.regions[old.region].live -= old.total;
                                } else {
                                    recovered += 1;
                                }
                            }
                        }
                        None => dropped += 1,
                    }
                } else if magic == RESERVED {
                    dropped += 1;
                }
                offset += total;
            }
            state.regions[r].fill = offset;
            state.regions[r].last_access = newest;
        }
        // Recovered recency: the clock continues after the newest record.
        state.clock = state.seq;
        if recovered > 0 || dropped > 0 {
            tracing::info!(objects = recovered, dropped, "store recovered");
        }
    }

    fn seq_of(&self, slot: &Slot<M>) -> u64 {
        self.read_u64(self.region_size * slot.region as u64 + slot.offset + 40)
    }

    /// Checks a committed record's checksum; returns key, meta, body start (relative to the
    /// record), body length and sequence.
    fn verify(&self, at: u64, total: u64) -> Option<(String, M, u64, u64, u64)> {
        let key_len = self.read_u32(at + 4) as u64;
        let meta_len = self.read_u32(at + 24) as u64;
        let body_len = self.read_u64(at + 32);
        let seq = self.read_u64(at + 40);
        let checksum = self.read_u64(at + 48);
        let used = RECORD_HEADER
            .checked_add(key_len)?
            .checked_add(meta_len)?
            .checked_add(body_len)?;
        if used > total {
            return None;
        }
        let payload = self.read(at + RECORD_HEADER, key_len + meta_len + body_len);
        let mut hasher = Xxh3::new();
        hasher.update(payload);
        hasher.update(&body_len.to_le_bytes());
        hasher.update(&seq.to_le_bytes());
        if hasher.digest() != checksum {
            return None;
        }
        let key = std::str::from_utf8(&payload[..key_len as usize])
            .ok()?
            .to_owned();
        let meta = M::decode(&payload[key_len as usize..(key_len + meta_len) as usize])?;
        Some((key, meta, RECORD_HEADER + key_len + meta_len, body_len, seq))
    }
}

/// A stored body, pinned: `Bytes` made from it read the map directly, without a copy.
struct BodyView<M: Meta> {
    store: Arc<Inner<M>>,
    region: usize,
    start: u64,
    len: u64,
}

impl<M: Meta> AsRef<[u8]> for BodyView<M> {
    fn as_ref(&self) -> &[u8] {
        self.store.read(
            self.store.region_size * self.region as u64 + self.start,
            self.len,
        )
    }
}

impl<M: Meta> Drop for BodyView<M> {
    fn drop(&mut self) {
        self.store.pins[self.region].fetch_sub(1, Ordering::AcqRel);
    }
}

fn align(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

/// About 16 regions, each between 1 MiB and 64 MiB, in whole 64 KiB.
fn default_region_size(capacity: u64) -> u64 {
    let size = (capacity / 16).clamp(1 << 20, 64 << 20);
    size / (64 * 1024) * (64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct TestMeta(String);

    impl Meta for TestMeta {
        fn encode(&self) -> Vec<u8> {
            self.0.as_bytes().to_vec()
        }
        fn decode(bytes: &[u8]) -> Option<Self> {
            String::from_utf8(bytes.to_vec()).ok().map(TestMeta)
        }
    }

    const MIB: u64 = 1 << 20;

    fn open(dir: &Path) -> Store<TestMeta> {
        Store::open(&dir.join("store"), 8 * MIB, MIB).expect("open store")
    }

    fn body(n: usize, seed: u8) -> Vec<Bytes> {
        // xorshift: bodies with different seeds share no long runs.
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (seed as u64 + 1);
        let data: Vec<u8> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        data.chunks(7000).map(Bytes::copy_from_slice).collect()
    }

    fn joined(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    /// A body whose every byte is `version`, so a reader can tell a torn or mixed one.
    fn versioned(version: u8) -> Vec<Bytes> {
        vec![Bytes::from(vec![version; 20_000])]
    }

    #[test]
    fn concurrent_readers_and_writers_never_see_a_stale_or_torn_object() {
        // Small regions and many evictions with survivors, while another thread reads the same
        // keys and a newer version of a key may land while its old one waits for its rewrite
        // (the deterministic case is the test above).
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<TestMeta>::open(&dir.path().join("store"), 2 * MIB, 256 * 1024)
            .expect("open store");
        let keys = 200usize;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for k in 0..keys {
                        if let Some(object) = store.get(&format!("k{k}")) {
                            let version: u8 = object.meta.0.parse().expect("meta");
                            assert!(
                                object.body.iter().all(|&b| b == version),
                                "k{k}: a body that is not all version {version}"
                            );
                            seen += 1;
                        }
                    }
                }
                seen
            })
        };
        // Two writers, each with its own half of the keys: an eviction by one keeps the
        // other's keys, which that other may be writing anew at the same time.
        let writer = |half: usize| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut latest = vec![None; keys];
                for i in 0..3000usize {
                    let k = (i * 7) % (keys / 2) + half * keys / 2;
                    let version = (i % 250) as u8 + 1;
                    store
                        .insert(
                            &format!("k{k}"),
                            &TestMeta(version.to_string()),
                            &versioned(version),
                            true,
                        )
                        .expect("insert");
                    latest[k] = Some(version);
                    // Read a few, so their regions' evictions keep them.
                    let _ = store.get(&format!("k{}", (i * 3) % keys));
                }
                latest
            })
        };
        let (a, b) = (writer(0), writer(1));
        let (a, b) = (a.join().expect("writer"), b.join().expect("writer"));
        let latest: Vec<Option<u8>> = a.iter().zip(&b).map(|(x, y)| x.or(*y)).collect();
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);
        assert!(
            store.stats().reinserted_objects > 0,
            "survivors were rewritten"
        );
        let check = |store: &Store<TestMeta>| {
            for (k, version) in latest.iter().enumerate() {
                if let Some(object) = store.get(&format!("k{k}")) {
                    assert_eq!(
                        Some(object.meta.0.parse::<u8>().expect("meta")),
                        *version,
                        "k{k}"
                    );
                    assert!(object.body.iter().all(|&b| Some(b) == *version), "k{k}");
                }
            }
        };
        check(&store);
        store.flush().expect("flush");
        drop(store);
        // After a restart too: the newest write of every key wins.
        let reopened = Store::<TestMeta>::open(&dir.path().join("store"), 2 * MIB, 256 * 1024)
            .expect("reopen store");
        check(&reopened);
    }

    #[test]
    fn survivors_are_served_from_memory_until_rewritten_and_lose_to_newer_writes() {
        let dir = tempfile::tempdir().unwrap();
        let meta = TestMeta("old".into());
        let store = open(dir.path());
        // Three read objects in the first region, then writes until the next one evicts it.
        for key in ["a", "b", "c"] {
            store
                .insert(key, &meta, &body(100_000, key.as_bytes()[0]), true)
                .unwrap();
            drop(store.get(key));
        }
        let mut i = 0;
        while store.stats().evicted_regions == 0 {
            // Fill every region but stop short of the eviction: the test makes it by hand.
            let inner = &store.inner;
            let needs_eviction = {
                let state = inner.lock();
                state.regions.iter().all(|r| r.fill > REGION_HEADER)
                    && state
                        .open
                        .is_some_and(|o| state.regions[o].fill + 150_000 + 4096 > inner.region_size)
            };
            if needs_eviction {
                break;
            }
            store
                .insert(&format!("fill-{i}"), &meta, &body(100_000, i as u8), true)
                .unwrap();
            i += 1;
        }
        // The eviction, as `insert` starts it: the survivors are placed but not yet written.
        let (reserved, rewrite) = store.inner.reserve(150_016);
        let (region, offset, epoch, seq) = reserved.expect("room");
        let rewrite = rewrite.expect("survivors");
        // The record the eviction made room for, written as `insert` would (recovery reads a
        // region's records in order, so a reserved range must not stay a hole).
        let filler = joined(&body(150_016 - 64 - 6 - 3, 9));
        store.inner.write_record(
            store.inner.region_size * region as u64 + offset,
            150_016,
            epoch,
            seq,
            b"filler",
            b"old",
            &[&filler],
        );
        let a = store.get("a").expect("a survivor is served meanwhile");
        assert_eq!(&a.body[..], &joined(&body(100_000, b'a'))[..]);
        assert!(
            store.inner.offset_of(&a.body).is_none(),
            "from memory, not the map"
        );
        // Meanwhile "b" is written anew and "c" is purged.
        let newer = body(1000, 7);
        store
            .insert("b", &TestMeta("new".into()), &newer, true)
            .unwrap();
        assert!(store.remove("c"));
        store.inner.rewrite(rewrite);
        let check = |store: &Store<TestMeta>| {
            let a = store.get("a").expect("a is back in the index");
            assert!(
                store.inner.offset_of(&a.body).is_some(),
                "from the map again"
            );
            assert_eq!(&a.body[..], &joined(&body(100_000, b'a'))[..]);
            let b = store.get("b").expect("b");
            assert_eq!(b.meta.0, "new", "the newer write wins");
            assert!(b.body[..] == joined(&newer)[..], "the newer body");
            assert!(store.get("c").is_none(), "the purge holds");
        };
        check(&store);
        store.flush().unwrap();
        drop(store);
        check(&open(dir.path()));
    }

    #[test]
    fn a_region_still_read_from_after_it_was_emptied_is_left_for_later() {
        let dir = tempfile::tempdir().unwrap();
        let meta = TestMeta("m".into());
        let store = open(dir.path());
        store.insert("a", &meta, &body(100_000, 1), true).unwrap();
        drop(store.get("a"));
        let region = store.inner.lock().index["a"].region;
        // The eviction's first steps by hand: planned and claimed, and then a reader pins the
        // region before its keys leave the index.
        let planned = {
            let mut state = store.inner.lock();
            state.regions[region].writers += 1;
            store.inner.survivors(&state, region, 1000)
        };
        let reader = store.get("a").expect("still indexed");
        let emptied = store.inner.empty_region(region, planned);
        assert!(
            matches!(emptied, Err(StoreError::NoSpace)),
            "gave up after PIN_WAIT"
        );
        assert_eq!(
            &reader.body[..],
            &joined(&body(100_000, 1))[..],
            "the reader's bytes held"
        );
        {
            let state = store.inner.lock();
            assert_eq!(state.regions[region].writers, 0, "the claim ended");
            assert!(state.pending.is_empty() && !state.index.contains_key("a"));
        }
        drop(reader);
        // Unpinned, the region is used again.
        for i in 0..80 {
            store
                .insert(&format!("f{i}"), &meta, &body(100_000, i as u8), true)
                .unwrap();
        }
        assert!(store.stats().evicted_regions > 0);
    }

    #[test]
    fn stores_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let b = body(100_000, 1);
        store.insert("k", &TestMeta("m".into()), &b, true).unwrap();
        let hit = store.get("k").unwrap();
        assert_eq!(hit.meta.0, "m");
        assert_eq!(&hit.body[..], &joined(&b)[..]);
        assert!(store.get("other").is_none());
        assert_eq!(
            std::fs::metadata(dir.path().join("store")).unwrap().len(),
            8 * MIB
        );
    }

    #[test]
    fn never_exceeds_capacity_and_evicts_least_recently_used_regions() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let meta = TestMeta(String::new());
        // 24 MiB written into 8 MiB, touching "hot" after every write.
        store.insert("hot", &meta, &body(200_000, 0), true).unwrap();
        for i in 0..120 {
            store
                .insert(&format!("cold-{i}"), &meta, &body(200_000, i as u8), true)
                .unwrap();
            drop(store.get("hot"));
            let stats = store.stats();
            assert!(stats.used <= stats.capacity, "{stats:?}");
        }
        assert!(
            store.get("hot").is_some(),
            "the recently used object survives"
        );
        // Eviction is by region: cold objects written beside "hot" share its region's recency,
        // so the first cold object in a region of its own is the least recently used.
        assert!(
            store.get("cold-10").is_none(),
            "the least recently used object is gone"
        );
        assert!(store.get("cold-119").is_some());
        assert!(store.stats().evicted_regions > 0);
        assert_eq!(
            std::fs::metadata(dir.path().join("store")).unwrap().len(),
            8 * MIB
        );
    }

    #[test]
    fn objects_read_since_written_survive_their_regions_eviction_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let meta = TestMeta("kept".into());
        let hot_body = body(150_000, 200);
        {
            let store = open(dir.path());
            // "hot" and "cold" share the first region; only "hot" is read. "hot" is written
            // twice there (a replaced object), so its region lists it twice.
            store.insert("hot", &meta, &body(1000, 199), true).unwrap();
            store.insert("hot", &meta, &hot_body, true).unwrap();
            store
                .insert("cold", &meta, &body(150_000, 201), true)
                .unwrap();
            drop(store.get("hot"));
            // Enough writes to evict every region at least once, none of them reading "hot".
            for i in 0..80 {
                store
                    .insert(&format!("fill-{i}"), &meta, &body(150_000, i as u8), true)
                    .unwrap();
                let stats = store.stats();
                assert!(stats.used <= stats.capacity, "{stats:?}");
            }
            assert!(store.get("cold").is_none(), "the unread neighbour left");
            let hit = store.get("hot").expect("the read object was written again");
            assert_eq!(&hit.body[..], &joined(&hot_body)[..]);
            assert_eq!(hit.meta.0, "kept");
            let stats = store.stats();
            assert!(stats.reinserted_objects >= 1);
            assert_eq!(
                stats.objects,
                80 + 2 - stats.evicted_objects,
                "every object is either indexed or counted as evicted, once: {stats:?}"
            );
        }
        // The rewritten record is a record like any other: it survives a restart.
        let store = open(dir.path());
        let hit = store.get("hot").expect("recovered after restart");
        assert_eq!(&hit.body[..], &joined(&hot_body)[..]);
    }

    #[test]
    fn a_record_that_fills_a_region_still_finds_room_after_reinsertion() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let meta = TestMeta(String::new());
        for i in 0..40 {
            store
                .insert(&format!("small-{i}"), &meta, &body(200_000, i as u8), true)
                .unwrap();
            drop(store.get(&format!("small-{i}")));
        }
        // Every region is full of read objects; a record of almost a whole region still fits.
        let big = store.max_body(16) - 1024;
        let big_body = body(big as usize, 77);
        store.insert("big", &meta, &big_body, true).unwrap();
        assert_eq!(&store.get("big").unwrap().body[..], &joined(&big_body)[..]);
    }

    #[test]
    fn pinned_regions_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let meta = TestMeta(String::new());
        let first = body(300_000, 9);
        store.insert("pinned", &meta, &first, true).unwrap();
        let hit = store.get("pinned").unwrap();
        for i in 0..100 {
            let _ = store.insert(&format!("x-{i}"), &meta, &body(300_000, i as u8), true);
        }
        assert_eq!(
            &hit.body[..],
            &joined(&first)[..],
            "a reader's bytes never change"
        );
    }

    #[test]
    fn recovers_after_reopen_and_drops_corrupt_records() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (body(50_000, 1), body(60_000, 2));
        {
            let store = open(dir.path());
            store.insert("a", &TestMeta("ma".into()), &a, true).unwrap();
            store.insert("b", &TestMeta("mb".into()), &b, true).unwrap();
            store
                .insert("gone", &TestMeta("mg".into()), &a, true)
                .unwrap();
            assert!(store.remove("gone"));
            store.flush().unwrap();
        }
        // Flip one byte of b's body.
        let path = dir.path().join("store");
        let mut raw = std::fs::read(&path).unwrap();
        let needle = &joined(&b)[1000..1064];
        let at = raw.windows(needle.len()).position(|w| w == needle).unwrap();
        raw[at] ^= 0xff;
        std::fs::write(&path, &raw).unwrap();

        let store = open(dir.path());
        let hit = store.get("a").unwrap();
        assert_eq!(hit.meta.0, "ma");
        assert_eq!(&hit.body[..], &joined(&a)[..]);
        assert!(store.get("b").is_none(), "a corrupt record is never served");
        assert!(
            store.get("gone").is_none(),
            "a removed record stays removed"
        );
    }

    #[test]
    fn half_written_records_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let a = body(10_000, 3);
        {
            let store = open(dir.path());
            store
                .insert("a", &TestMeta(String::new()), &a, true)
                .unwrap();
            store
                .insert("b", &TestMeta(String::new()), &a, true)
                .unwrap();
            store.flush().unwrap();
        }
        // Turn b back into a reservation, as if the process died before committing it.
        let path = dir.path().join("store");
        let mut raw = std::fs::read(&path).unwrap();
        // Keys follow headers: b's record is the committed header with "b" 64 bytes later.
        let pos = (0..raw.len() - 64)
            .find(|&p| raw[p..p + 4] == COMMITTED.to_le_bytes() && raw[p + 64] == b'b')
            .unwrap();
        raw[pos..pos + 4].copy_from_slice(&RESERVED.to_le_bytes());
        std::fs::write(&path, &raw).unwrap();
        let store = open(dir.path());
        assert!(store.get("a").is_some());
        assert!(store.get("b").is_none());
    }

    #[test]
    fn replacing_a_key_serves_the_newest_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store
                .insert("k", &TestMeta("old".into()), &body(1000, 1), true)
                .unwrap();
            store
                .insert("k", &TestMeta("new".into()), &body(1000, 2), true)
                .unwrap();
            assert_eq!(store.stats().objects, 1);
        }
        let store = open(dir.path());
        assert_eq!(store.get("k").unwrap().meta.0, "new");
    }

    #[test]
    fn too_large_objects_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let err = store.insert(
            "big",
            &TestMeta(String::new()),
            &body(2 * MIB as usize, 0),
            true,
        );
        assert!(matches!(err, Err(StoreError::TooLarge(_))));
    }
}
