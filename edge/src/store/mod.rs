//! The edge's object store: a preallocated file holding two circular logs, with a compact index
//! in memory and an S3-FIFO policy deciding what stays.
//!
//! The parts, each in its own module:
//! - `format`: the bytes on disk (superblock, entry headers, checksums), pure.
//! - `file`: the file, its lock, and positioned reads and writes (no memory map: see there).
//! - `log`: one circular log's head, tail and reservations, pure bookkeeping.
//! - `index`: hash of key → entry, the ghost list, records being moved.
//! - `evict`: room at a log's tail, taken from its head by the policy, and the moves it asks for.
//! - `write`: new records, written whole or piece by piece while a fill receives them.
//! - `read`: lookups and bodies, checked against the index after every read.
//! - `memory`: hot bodies held in memory, answered without reading the file.
//! - `recover`: rebuilding the index from the file at start.
//!
//! **Layout and space.** The file is exactly `capacity` bytes: a superblock, a small log (a
//! tenth) and a main log. Records are appended at a log's tail and space is taken back at its
//! head, one record at a time, so any object up to the main log's size fits and nothing is lost
//! to fragmentation but the padding to 128 bytes and, at most, one record's worth of room at
//! the log's end when the tail goes round.
//!
//! **Policy: S3-FIFO** (Yang et al., SOSP 2023), on the logs. A new object goes to the small
//! log, the probation queue; so do prefetches, which count as no use. When the small log's head
//! is needed, an object read since it was written moves to the main log, one never read leaves
//! and its hash goes on the ghost list. An object whose hash is on the ghost list comes back
//! straight to the main log. At the main log's head, an object read since it was last written
//! is moved to the tail (its counter, at most 3, goes down by one), others leave; after a lap's
//! worth of moves in one insert, the head leaves whatever it finds, so objects read faster than
//! the head goes round cannot keep it going for ever. Moving a record copies it (reinsertion,
//! checked against its checksum): the cost of keeping a circular log's order.
//!
//! **Readers never serve bytes being overwritten.** Nothing is pinned: a reader reads a record
//! (header, key, meta, body) with `pread`, then checks under the index lock that the index
//! still has that record at that place. A record is taken out of the index before its bytes
//! may be overwritten, so a read that passes the check read a record nobody was writing. A
//! record being moved is served from its copy in memory meanwhile (`moving`); a reader of a
//! large body, chunk by chunk, follows it to its new place, or ends with an error if the
//! object left the store (never with wrong bytes). A body held in memory is a copy of one
//! record, served only while the index has that record (its key at its sequence number).
//!
//! **Crashes and disk errors.** A record is written RESERVED with its length, then its parts,
//! then its checksum and the COMMITTED state; every entry's header carries its length, so the
//! chain of a log always parses. Recovery walks both chains reading headers only and indexes
//! committed records, unverified: each body is checked against its checksum by the background
//! pass or at its first lookup, before it is served; once checked since start, a body is not
//! checked again (every read still checks the record's header: its state, key and content).
//! A read that fails or comes up short (a failing disk, a file truncated under the edge) drops
//! that object, which is then fetched again.

mod checkpoint;
mod evict;
mod file;
mod format;
mod index;
mod log;
mod memory;
mod read;
mod recover;
mod write;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use checkpoint::path_for as checkpoint_file;
pub use file::pid_file;
use file::{Opened, StoreFile};
use format::{RECORD_HEADER, RecordState, Superblock, key_hash};
use index::{Area, State};
use log::Log;
pub use memory::{ZERO_COPY_BELOW, ZERO_COPY_MIN};
use read::Quick;
pub use read::{CHUNK, StoredBody};
pub use write::{BodyLen, PendingBody, Writer};

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
    #[error("object of {0} bytes does not fit in the store")]
    TooLarge(u64),
    #[error("the store's oldest record is still being written; not storing this object")]
    NoSpace,
    #[error("store write failed: {0}")]
    Write(std::io::Error),
    #[error("the store is still loading its index; not storing this object")]
    Starting,
    #[error("the store is closing; not storing this object")]
    Closing,
    #[error("the object was removed while it was written; not storing it")]
    Removed,
    #[error("the store needed this record's room back before it was complete; not storing it")]
    WantedBack,
}

/// Counters a person or `/status` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub capacity: u64,
    /// Bytes of the logs between their heads and tails (live records, and dead ones not yet
    /// reached by a head).
    pub used: u64,
    /// Bytes of live records.
    pub live: u64,
    pub objects: u64,
    pub evicted_objects: u64,
    /// Objects moved from the probation log to the main log because they were read.
    pub promoted_objects: u64,
    /// Objects moved to the main log's tail because they were read since last written.
    pub reinserted_objects: u64,
    /// Hashes on the ghost list.
    pub ghosts: u64,
    /// Bytes of hot bodies held in memory (see `memory`), as its budget counts them.
    pub memory: u64,
}

/// A fetch in flight whose object may be stored (see [`Store::fetching`]); it stops counting
/// when dropped.
pub struct Fetch<M: Meta> {
    inner: Arc<Inner<M>>,
    id: u64,
}

impl<M: Meta> Fetch<M> {
    /// True when what this fetch would store was removed since it began.
    fn was_removed(&self, state: &State<M>) -> bool {
        state.fetches.get(&self.id).is_some_and(|f| f.removed)
    }
}

impl<M: Meta> Drop for Fetch<M> {
    fn drop(&mut self) {
        self.inner.lock().fetches.remove(&self.id);
    }
}

impl<M: Meta> std::fmt::Debug for Fetch<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetch").field("id", &self.id).finish()
    }
}

/// A stored object: its meta, and its body (read whole, or read chunk by chunk).
#[derive(Debug, Clone)]
pub struct StoredObject<M> {
    pub meta: Arc<M>,
    pub body: StoredBody,
    /// Which stored content this is (its sequence number): what a revalidation refreshes.
    pub version: u64,
}

/// The store. Cheap to clone.
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
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

struct Inner<M> {
    file: StoreFile,
    /// Where the index checkpoint is written (see `checkpoint`), one writer at a time.
    checkpoint: std::path::PathBuf,
    checkpointing: Mutex<()>,
    /// What the recovery at start found, once it ran.
    recovered: Mutex<Option<Recovered>>,
    /// False while the index is being rebuilt (`Recovery`).
    ready: AtomicBool,
    /// Set by `close`: no more lookups or inserts.
    closing: AtomicBool,
    /// Seeds every header check (see `format`).
    salt: u64,
    /// How the file is cut into the logs, fixed for its life (its salt is `salt`).
    layout: Superblock,
    capacity: u64,
    /// Lock order: small, then main, then state.
    small: Mutex<Log>,
    main: Mutex<Log>,
    state: Mutex<State<M>>,
    /// Hot bodies answered without reading the file (see `memory`).
    memory: memory::Memory<M>,
}

/// Rebuilds a starting store's index from its file (blocking: it reads every entry header).
pub struct Recovery<M: Meta> {
    inner: Arc<Inner<M>>,
    path: String,
    /// The checkpoint the last clean stop left, if any.
    saved: Option<Vec<u8>>,
}

impl<M: Meta> std::fmt::Debug for Recovery<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery")
            .field("path", &self.path)
            .finish()
    }
}

impl<M: Meta> Recovery<M> {
    /// Loads the checkpoint of the last clean stop, or else walks both logs, then makes the
    /// store ready, applying the removals asked for meanwhile.
    pub fn run(self) -> Result<Recovered, StoreError> {
        let inner = &self.inner;
        if inner.is_ready() {
            return Ok(Recovered::default());
        }
        let started = std::time::Instant::now();
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let (mut small, mut main) = {
            let (s, m) = (lock(&inner.small), lock(&inner.main));
            (Log::new(s.start, s.len), Log::new(m.start, m.len))
        };
        let mut state = State::new();
        let loaded = self.saved.as_deref().and_then(|saved| {
            checkpoint::decode(
                saved,
                inner.salt,
                inner.capacity,
                &mut small,
                &mut main,
                &mut state,
            )
        });
        // A checkpoint written while running is brought up to date by walking what was
        // written after it.
        let mut caught_up = 0;
        let from_checkpoint = match loaded {
            Some(true) => true,
            Some(false) => {
                let since = state.written;
                let small_walk = recover::catch_up(
                    &inner.file,
                    inner.salt,
                    &mut small,
                    Area::Small,
                    &mut state,
                    since,
                )
                .map_err(io)?;
                let main_walk = match small_walk {
                    Some(_) => recover::catch_up(
                        &inner.file,
                        inner.salt,
                        &mut main,
                        Area::Main,
                        &mut state,
                        since,
                    )
                    .map_err(io)?,
                    None => None,
                };
                state.unverified = state
                    .index
                    .iter()
                    .filter(|(_, e)| e.unverified)
                    .map(|(&h, _)| h)
                    .collect();
                match (small_walk, main_walk) {
                    (Some(a), Some(b)) => {
                        caught_up = a + b;
                        true
                    }
                    _ => {
                        tracing::info!(path = %self.path, "store went too far round since its checkpoint; walking the logs");
                        false
                    }
                }
            }
            None => false,
        };
        if !from_checkpoint {
            if self.saved.is_some() && loaded.is_none() {
                tracing::warn!(path = %self.path, "store checkpoint unusable; walking the logs");
            }
            (small, main) = {
                let (s, m) = (lock(&inner.small), lock(&inner.main));
                (Log::new(s.start, s.len), Log::new(m.start, m.len))
            };
            state = State::new();
            recover::recover(&inner.file, inner.salt, &mut small, Area::Small, &mut state)
                .map_err(io)?;
            recover::recover(&inner.file, inner.salt, &mut main, Area::Main, &mut state)
                .map_err(io)?;
        }
        let (mut s, mut m) = (lock(&inner.small), lock(&inner.main));
        let mut now = inner.lock();
        *s = small;
        *m = main;
        let removals = std::mem::take(&mut now.removed_while_starting);
        state.fetches = std::mem::take(&mut now.fetches);
        state.next_fetch = now.next_fetch;
        *now = state;
        for removal in removals {
            let hashes = match removal {
                index::Removal::Key(hash) => vec![hash],
                index::Removal::Family(family) => now.leave_family(family),
                index::Removal::Prefix(_) => Vec::new(),
            };
            for hash in hashes {
                if let Some(old) = now.take(hash) {
                    inner.mark_entry_dead(hash, &old);
                }
            }
        }
        // Under the index lock, so that no removal falls between the list and the flag.
        inner.ready.store(true, Ordering::SeqCst);
        let objects = now.index.len();
        drop((now, m, s));
        tracing::info!(
            objects,
            from_checkpoint,
            caught_up,
            ms = started.elapsed().as_millis() as u64,
            "store ready"
        );
        let recovered = Recovered {
            objects,
            from_checkpoint,
            caught_up,
            ms: started.elapsed().as_millis() as u64,
        };
        *lock(&inner.recovered) = Some(recovered);
        Ok(recovered)
    }
}

/// What a recovery found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    pub objects: usize,
    /// Loaded from a checkpoint (else the logs were walked).
    pub from_checkpoint: bool,
    /// Entries walked after a checkpoint written while running (0 after a clean stop's).
    pub caught_up: u64,
    /// How long it took.
    pub ms: u64,
}

/// The smallest store: room for a few records in each log.
const MIN_CAPACITY: u64 = 1 << 20;

impl<M: Meta> Store<M> {
    /// Opens (or creates) the store file at `path` with exactly `capacity` bytes, recovering the
    /// index of a file of the same size and format before it returns.
    pub fn open(path: &Path, capacity: u64) -> Result<Self, StoreError> {
        let (store, recovery) = Self::open_starting(path, capacity)?;
        recovery.run()?;
        Ok(store)
    }

    /// Opens and locks the store file at once (a second process is refused here), and returns
    /// the store with the `Recovery` that rebuilds its index. Until that has run, the store is
    /// starting: lookups miss, nothing is stored, and removals are kept and applied after.
    pub fn open_starting(path: &Path, capacity: u64) -> Result<(Self, Recovery<M>), StoreError> {
        Self::open_starting_with(path, capacity, 0, 0)
    }

    /// [`Store::open_starting`], holding up to `memory` bytes of hot bodies in memory as well
    /// (see `memory`; 0 holds none).
    pub fn open_starting_with(
        path: &Path,
        capacity: u64,
        memory: u64,
        zero_copy_below: u64,
    ) -> Result<(Self, Recovery<M>), StoreError> {
        if capacity < MIN_CAPACITY {
            return Err(StoreError::Config(format!(
                "capacity {capacity} is below the smallest store of {MIN_CAPACITY} bytes"
            )));
        }
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let (file, opened) = StoreFile::open(path, capacity).map_err(io)?;
        if let Opened::Fresh { old_len } = opened
            && old_len != 0
        {
            tracing::warn!(path = %path.display(), old = old_len, new = capacity, "store size changed; starting empty");
        }
        let layout = Superblock::for_capacity(capacity);
        let small = Log::new(layout.small_start(), layout.small_len);
        let main = Log::new(layout.main_start(), layout.main_len);
        let found = file
            .read_vec(0, 64)
            .ok()
            .and_then(|b| Superblock::decode(&b))
            .filter(|found| found.same_layout(&layout));
        let salt = match found {
            Some(found) => found.salt,
            None => {
                if opened == Opened::Existing {
                    tracing::warn!(path = %path.display(), "store file of another format or layout; starting empty");
                }
                let layout = Superblock {
                    salt: format::fresh_salt(),
                    ..layout
                };
                recover::format(&file, &layout, &small, &main).map_err(io)?;
                layout.salt
            }
        };
        // Read once and deleted before anything is written: a crash from here on finds none.
        let checkpoint_path = checkpoint::path_for(path);
        let saved = checkpoint::take(&checkpoint_path).map_err(io)?;
        let store = Self {
            inner: Arc::new(Inner {
                file,
                salt,
                layout,
                capacity,
                checkpoint: checkpoint_path,
                checkpointing: Mutex::new(()),
                recovered: Mutex::new(None),
                ready: AtomicBool::new(found.is_none()),
                closing: AtomicBool::new(false),
                small: Mutex::new(small),
                main: Mutex::new(main),
                state: Mutex::new(State::new()),
                memory: memory::Memory::new(memory, read::WHOLE, zero_copy_below),
            }),
        };
        let recovery = Recovery {
            inner: store.inner.clone(),
            path: path.display().to_string(),
            saved,
        };
        Ok((store, recovery))
    }

    /// Registers a fetch from the origin of `base` (or of one of its variants or slices),
    /// whose object may be stored when it arrives: given to [`Store::begin`], it makes sure
    /// that a removal of `base` meanwhile is not undone by storing what was fetched.
    pub fn fetching(&self, base: &str) -> Fetch<M> {
        let mut state = self.inner.lock();
        state.next_fetch += 1;
        let id = state.next_fetch;
        state.fetches.insert(
            id,
            index::Fetching {
                base: base.into(),
                removed: false,
            },
        );
        Fetch {
            inner: self.inner.clone(),
            id,
        }
    }

    /// What the recovery at start found (`None` until it ran, or for a new store).
    pub fn recovered(&self) -> Option<Recovered> {
        *lock(&self.inner.recovered)
    }

    /// True once the index is rebuilt (see [`Store::open_starting`]).
    pub fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    /// The largest body that fits beside `key_and_meta` bytes of key and meta.
    pub fn max_body(&self, key_and_meta: u64) -> u64 {
        let main = self.inner.layout.main_len;
        main.saturating_sub(RECORD_HEADER + key_and_meta)
    }

    /// [`Store::get`], on the blocking pool unless the answer needs no read of the file (the
    /// key is not stored, or its body is held in memory).
    pub async fn lookup(&self, key: &str) -> Option<StoredObject<M>> {
        match self.get_without_reading(key) {
            Quick::Found(object) => return Some(object),
            Quick::Absent => return None,
            Quick::MustRead => {}
        }
        let (store, key) = (self.clone(), key.to_owned());
        tokio::task::spawn_blocking(move || store.get(&key))
            .await
            .ok()
            .flatten()
    }

    /// True when `key` is stored (does not count as a use, reads nothing).
    pub fn contains(&self, key: &str) -> bool {
        let hash = key_hash(key);
        let state = self.inner.lock();
        self.inner.is_ready()
            && (state.index.contains_key(&hash) || state.moving.contains_key(&hash))
    }

    /// Replaces the meta of the stored object `version` of `key` (after a revalidation of that
    /// version: a newer one stored meanwhile keeps its own). The record keeps the old meta, so
    /// after a restart the object is revalidated again: harmless.
    pub fn update_meta(&self, key: &str, version: u64, meta: M) -> bool {
        let hash = key_hash(key);
        let mut state = self.inner.lock();
        let same = state
            .index
            .get(&hash)
            .map(|e| e.seq == version)
            .or_else(|| state.moving.get(&hash).map(|m| m.seq == version));
        if same != Some(true) {
            return false;
        }
        // Bounded: past it, some objects fall back to their stored meta and are revalidated.
        if state.fresh_meta.len() >= FRESH_METAS
            && let Some(&any) = state.fresh_meta.keys().next()
        {
            state.fresh_meta.remove(&any);
        }
        state.fresh_meta.insert(hash, Arc::new(meta));
        true
    }

    /// Removes `key`; the record is marked dead on disk so it does not return after a restart.
    pub fn remove(&self, key: &str) -> bool {
        let hash = key_hash(key);
        let mut state = self.inner.lock();
        if !self.inner.is_recovered() {
            state.removed_while_starting.push(index::Removal::Key(hash));
            state.removed(index::Removal::Key(hash));
            return false;
        }
        let moving = state.moving.remove(&hash).is_some();
        let writing = state.removed(index::Removal::Key(hash)) > 0;
        match state.take(hash) {
            Some(old) => {
                self.inner.mark_entry_dead(hash, &old);
                true
            }
            None => moving || writing,
        }
    }

    /// Removes every variant and slice of `base` (the keys `base\0...`); returns how many.
    pub fn remove_family(&self, base: &str) -> usize {
        let family = key_hash(base).max(1);
        let mut state = self.inner.lock();
        if !self.inner.is_recovered() {
            state
                .removed_while_starting
                .push(index::Removal::Family(family));
            state.removed(index::Removal::Family(family));
            return 0;
        }
        let members = state.leave_family(family);
        let mut removed = state.removed(index::Removal::Family(family));
        for hash in members {
            let moving = state.moving.remove(&hash).is_some();
            match state.take(hash) {
                Some(old) => {
                    self.inner.mark_entry_dead(hash, &old);
                    removed += 1;
                }
                None => removed += usize::from(moving),
            }
        }
        removed
    }

    /// Removes every key that starts with `prefix`; returns how many, or `None` while the store
    /// is starting (the caller asks again later).
    pub fn remove_prefix(&self, prefix: &str) -> Option<usize> {
        self.remove_prefixes(&[prefix.to_owned()])
            .map(|counts| counts[0])
    }

    /// Removes every key that starts with one of `prefixes`, in one pass over the store; returns
    /// how many each removed (an object is counted for the first prefix it has), or `None`
    /// while the store is starting. Reads the key of every stored object (keys are not kept in
    /// memory): an operator's purge, run on the blocking pool.
    pub fn remove_prefixes(&self, prefixes: &[String]) -> Option<Vec<usize>> {
        if !self.inner.is_ready() {
            return None;
        }
        // Noted first: a record committed after this is refused, one before is in the list.
        let mut removed: Vec<usize> = prefixes
            .iter()
            .map(|p| {
                self.inner
                    .lock()
                    .removed(index::Removal::Prefix(p.as_str().into()))
            })
            .collect();
        let first_match = |key: &[u8]| prefixes.iter().position(|p| key.starts_with(p.as_bytes()));
        let candidates: Vec<(u64, index::Entry)> = {
            let state = self.inner.lock();
            state.index.iter().map(|(&h, &e)| (h, e)).collect()
        };
        for (hash, entry) in candidates {
            let Ok(Some(key)) = self.inner.key_at(&entry) else {
                continue;
            };
            let Some(which) = first_match(&key) else {
                continue;
            };
            let mut state = self.inner.lock();
            if state
                .index
                .get(&hash)
                .is_some_and(|e| e.offset == entry.offset && e.seq == entry.seq)
            {
                state.take(hash);
                self.inner.mark_entry_dead(hash, &entry);
                removed[which] += 1;
            }
        }
        let mut state = self.inner.lock();
        let moving: Vec<(u64, usize)> = state
            .moving
            .iter()
            .filter_map(|(&h, m)| {
                let key = read::record_key(&m.record, self.inner.salt)?;
                first_match(key).map(|which| (h, which))
            })
            .collect();
        for (hash, which) in moving {
            state.moving.remove(&hash);
            removed[which] += 1;
        }
        Some(removed)
    }

    /// Current counters.
    pub fn stats(&self) -> StoreStats {
        let used = lock(&self.inner.small).used + lock(&self.inner.main).used;
        let state = self.inner.lock();
        StoreStats {
            capacity: self.inner.capacity,
            used,
            live: state.live,
            objects: (state.index.len() + state.moving.len()) as u64,
            evicted_objects: state.evicted_objects,
            promoted_objects: state.promoted_objects,
            reinserted_objects: state.reinserted_objects,
            ghosts: state.ghost.len() as u64,
            memory: self.inner.memory.bytes(),
        }
    }

    /// Checks up to `max` recovered bodies not yet checked since start, without counting them
    /// as used, and the file's size: the background pass (`edge::run` keeps calling it on the
    /// blocking pool). Returns how many bodies were checked; 0 once all are.
    pub fn check_some(&self, max: usize) -> usize {
        if !self.inner.is_ready() {
            return 0;
        }
        self.inner.check_file_size();
        let batch: Vec<u64> = {
            let mut state = self.inner.lock();
            let at = state.unverified.len().saturating_sub(max);
            state.unverified.split_off(at)
        };
        for &hash in &batch {
            self.inner.verify(hash);
        }
        batch.len()
    }

    /// For benchmarks: drops the store file's pages from the page cache.
    pub fn drop_cache(&self) {
        self.inner.file.drop_cache();
    }

    /// Closes the store at a clean stop: it stops storing, flushes the file and writes the
    /// index checkpoint the next start loads (see `checkpoint`). Lookups miss from here on.
    pub fn close(&self) -> std::io::Result<()> {
        let inner = &self.inner;
        // Removals still work after this (they mark records dead, which a later start reads
        // as misses even through the checkpoint); lookups stop, and no record is committed
        // from here on (records still being written stay out of the index), so the
        // checkpoint needs no waiting for them.
        let was_ready = {
            let _state = inner.lock();
            !inner.closing.swap(true, Ordering::SeqCst) && inner.is_recovered()
        };
        if was_ready {
            let _one = lock(&inner.checkpointing);
            inner.file.flush()?;
            return inner.write_checkpoint(true);
        }
        inner.file.flush()
    }

    /// Writes a checkpoint of the index as it is now, for a start after a crash (see
    /// `checkpoint`); the edge calls it every few seconds. Does nothing (`false`) while the
    /// store starts or closes.
    pub fn save_checkpoint(&self) -> std::io::Result<bool> {
        let inner = &self.inner;
        let _one = lock(&inner.checkpointing);
        if !inner.is_ready() {
            return Ok(false);
        }
        inner.write_checkpoint(false)?;
        Ok(true)
    }

    /// Writes the file's dirty pages to the disk.
    pub fn flush(&self) -> std::io::Result<()> {
        self.inner.file.flush()
    }
}

/// How many revalidated metas are kept beside their records.
const FRESH_METAS: usize = 65_536;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock can leave counters off, never an index entry pointing at an
    // unwritten record (records are written before they are indexed, and every read is checked
    // against the index). Serving on beats stopping every request of the edge.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl<M: Meta> Inner<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        lock(&self.state)
    }

    /// Recovered and not closing: lookups and inserts go ahead.
    fn is_ready(&self) -> bool {
        self.is_recovered() && !self.closing.load(Ordering::SeqCst)
    }

    /// The index is back (removals apply directly, also while closing).
    fn is_recovered(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Writes the checkpoint file (under `checkpointing`): the logs' positions are taken under
    /// their locks, then the index is copied under its own, and encoded and written with no
    /// lock held. A clean stop's is synced.
    fn write_checkpoint(&self, clean: bool) -> std::io::Result<()> {
        let mut snapshot = {
            let (small, main) = (lock(&self.small), lock(&self.main));
            let state = self.lock();
            checkpoint::Snapshot::positions(clean, &small, &main, &state)
        };
        snapshot.copy_index(&self.lock());
        let bytes = checkpoint::encode(self.salt, self.capacity, &snapshot);
        let tmp = self.checkpoint.with_extension("index.tmp");
        let file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &file, &bytes)?;
        if clean {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.checkpoint)
    }

    /// Marks the record an index entry points at dead, if it is that record: an entry loaded
    /// from a checkpoint may point where the record was evicted and its room written again
    /// since (until a lookup or the background check drops it), and the state word written
    /// there would land inside another record.
    fn mark_entry_dead(&self, hash: u64, entry: &index::Entry) {
        let its_own = self
            .file
            .read_vec(entry.offset, RECORD_HEADER)
            .ok()
            .and_then(|b| format::RecordHeader::decode(&b, self.salt))
            .is_some_and(|h| h.key_hash == hash && h.seq == entry.seq && h.total == entry.total());
        if its_own {
            self.mark_dead(entry.offset);
        }
    }

    /// Marks the record at `offset` dead, so that it does not return after a restart.
    fn mark_dead(&self, offset: u64) {
        if let Err(error) = self.file.write(offset, &RecordState::Dead.bytes()) {
            tracing::warn!(%error, offset, "store: could not mark a record dead");
        }
    }

    /// If somebody truncated the file, drops every object past its new end and allocates it
    /// again (its lost records are fetched again when asked for).
    fn check_file_size(&self) {
        let Ok(len) = self.file.current_len() else {
            return;
        };
        if len >= self.capacity {
            return;
        }
        let lost = self.lock().take_where(|e| e.offset + e.total() > len);
        tracing::error!(
            file_len = len,
            capacity = self.capacity,
            dropped = lost,
            "store file was truncated under the edge; objects past its end dropped"
        );
        if let Err(error) = self.file.allocate() {
            tracing::error!(%error, "store file could not be allocated again");
        }
    }
}

#[cfg(test)]
mod tests;
