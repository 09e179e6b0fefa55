//! The in-memory index: a compact entry per stored object, keyed by the hash of its key, the
//! ghost list of objects recently left the probation log, and the records being moved.
//!
//! What RAM keeps per object is one `Entry` (24 bytes) in a hash map: where the record is, its
//! content's sequence number and the policy's counter. The key, the headers and the body are
//! in the record, read at every lookup (the key is compared there, so a hash collision is a
//! miss, never a wrong object).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::format::ALIGN;

/// A removal kept while the store starts: one key, or a key's variants and slices.
#[derive(Debug, Clone)]
pub(super) enum Removal {
    Key(u64),
    Family(u64),
    /// Every key starting with this (never kept while starting: it is refused then).
    Prefix(Box<str>),
}

impl Removal {
    /// True when this removal takes the key `key` (whose hash is `hash`).
    pub fn takes(&self, key: &str, hash: u64) -> bool {
        match self {
            Removal::Key(h) => *h == hash,
            Removal::Family(family) => super::format::family_hash(key) == *family,
            Removal::Prefix(prefix) => key.starts_with(&**prefix),
        }
    }

    /// True when this removal takes what a fetch of `base` may store: `base` itself, or one of
    /// its variants or slices.
    pub fn takes_fetch(&self, base: &str) -> bool {
        let hash = super::format::key_hash(base);
        match self {
            Removal::Family(family) => *family == hash.max(1) || self.takes(base, hash),
            _ => self.takes(base, hash),
        }
    }
}

/// Which log a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Area {
    /// Probation: new objects and prefetches; left unread, they go first.
    Small,
    /// Objects seen again (promoted from probation, or remembered by the ghost list).
    Main,
}

/// Where one stored object is, and how often it was read lately.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    /// The record's absolute offset in the file.
    pub offset: u64,
    /// The record's length, in `ALIGN` units.
    pub units: u32,
    pub area: Area,
    /// Reads since it was written or last moved, up to 3 (S3-FIFO's counter).
    pub freq: u8,
    /// Recovered at start and not yet checked against its checksum.
    pub unverified: bool,
    pub seq: u64,
}

impl Entry {
    pub fn total(&self) -> u64 {
        u64::from(self.units) * ALIGN
    }
}

/// A record taken out of its log by eviction and being written elsewhere: served from its copy
/// in memory until it is.
pub(super) struct Moving {
    /// The whole record, header included.
    pub record: Bytes,
    pub seq: u64,
}

/// The index and the policy's bookkeeping, behind the store's lock.
pub(super) struct State<M> {
    pub index: HashMap<u64, Entry>,
    pub moving: HashMap<u64, Arc<Moving>>,
    /// Metas replaced by a revalidation since the record was written (the record keeps the
    /// old one; after a restart the object is revalidated again, which is harmless).
    pub fresh_meta: HashMap<u64, Arc<M>>,
    pub ghost: Ghost,
    /// Hashes of the keys of each family (a key's variants and slices, by the hash of its part
    /// before the NUL), so that they can be removed together without reading every key. May
    /// hold hashes no longer indexed; pruned as it grows.
    pub families: HashMap<u64, Vec<u64>>,
    /// Records being written, by content sequence number: a removal of their key while they
    /// are written marks them, and their commit then gives them up (a purge is never undone
    /// by a fill that was in flight).
    pub writing: HashMap<u64, Writing>,
    /// Removals asked for while the store was starting, applied once its index is back.
    pub removed_while_starting: Vec<Removal>,
    /// Fetches whose objects may be stored later (`Store::fetching`), by number: a removal of
    /// what one may store marks it, and it then stores nothing.
    pub fetches: HashMap<u64, Fetching>,
    pub next_fetch: u64,
    /// Recovered objects whose bodies the background check has still to read.
    pub unverified: Vec<u64>,
    /// The last write order and content sequence numbers given out.
    pub written: u64,
    pub seq: u64,
    /// Bytes of indexed records, and how many of them are in the main log.
    pub live: u64,
    pub main_objects: u64,
    pub evicted_objects: u64,
    pub promoted_objects: u64,
    pub reinserted_objects: u64,
}

impl<M> State<M> {
    pub fn new() -> Self {
        Self {
            index: HashMap::new(),
            moving: HashMap::new(),
            fresh_meta: HashMap::new(),
            ghost: Ghost::default(),
            families: HashMap::new(),
            writing: HashMap::new(),
            removed_while_starting: Vec::new(),
            fetches: HashMap::new(),
            next_fetch: 0,
            unverified: Vec::new(),
            written: 0,
            seq: 0,
            live: 0,
            main_objects: 0,
            evicted_objects: 0,
            promoted_objects: 0,
            reinserted_objects: 0,
        }
    }

    /// Indexes `entry` under `hash`, returning the entry it replaced (whose record the caller
    /// marks dead).
    pub fn put(&mut self, hash: u64, entry: Entry) -> Option<Entry> {
        self.count(&entry, true);
        let old = self.index.insert(hash, entry)?;
        self.count(&old, false);
        Some(old)
    }

    /// Takes `hash` out of the index.
    pub fn take(&mut self, hash: u64) -> Option<Entry> {
        let old = self.index.remove(&hash)?;
        self.count(&old, false);
        self.fresh_meta.remove(&hash);
        Some(old)
    }

    /// Takes every entry `lost` says is gone out of the index; returns how many.
    pub fn take_where(&mut self, lost: impl Fn(&Entry) -> bool) -> usize {
        let hashes: Vec<u64> = self
            .index
            .iter()
            .filter(|(_, e)| lost(e))
            .map(|(&h, _)| h)
            .collect();
        for &hash in &hashes {
            self.take(hash);
        }
        hashes.len()
    }

    fn count(&mut self, entry: &Entry, added: bool) {
        let main = u64::from(entry.area == Area::Main);
        if added {
            self.live += entry.total();
            self.main_objects += main;
        } else {
            self.live -= entry.total();
            self.main_objects -= main;
        }
    }

    /// Notes `hash` as a member of `family` (0: none).
    pub fn join_family(&mut self, family: u64, hash: u64) {
        if family == 0 {
            return;
        }
        let members = self.families.entry(family).or_default();
        if members.contains(&hash) {
            return;
        }
        members.push(hash);
        if members.len().is_power_of_two() && members.len() >= 8 {
            let (index, moving) = (&self.index, &self.moving);
            members.retain(|h| *h == hash || index.contains_key(h) || moving.contains_key(h));
        }
    }

    /// The members of `family` still indexed, forgetting the family.
    pub fn leave_family(&mut self, family: u64) -> Vec<u64> {
        let members = self.families.remove(&family).unwrap_or_default();
        members
            .into_iter()
            .filter(|h| self.index.contains_key(h) || self.moving.contains_key(h))
            .collect()
    }

    /// The next write order number.
    pub fn next_written(&mut self) -> u64 {
        self.written += 1;
        self.written
    }
}

/// A fetch in flight (see `State::fetches`).
pub(super) struct Fetching {
    pub base: Box<str>,
    pub removed: bool,
}

/// A record being written (see `State::writing`).
pub(super) struct Writing {
    pub hash: u64,
    pub key: Box<str>,
    pub removed: bool,
}

impl<M> State<M> {
    /// Notes a removal: the records being written and the fetches in flight that it takes
    /// are marked (they store nothing). Returns how many records being written it took.
    pub fn removed(&mut self, removal: Removal) -> usize {
        for fetch in self.fetches.values_mut() {
            if !fetch.removed && removal.takes_fetch(&fetch.base) {
                fetch.removed = true;
            }
        }
        self.remove_writing(|w| removal.takes(&w.key, w.hash))
    }

    /// Marks the records being written that `removed` picks as removed; returns how many.
    pub fn remove_writing(&mut self, removed: impl Fn(&Writing) -> bool) -> usize {
        let mut n = 0;
        for writing in self.writing.values_mut() {
            if !writing.removed && removed(writing) {
                writing.removed = true;
                n += 1;
            }
        }
        n
    }
}

/// Hashes of objects recently dropped from probation unread, as many as the main log holds
/// objects: one coming back is admitted straight to the main log (S3-FIFO's ghost queue).
#[derive(Default)]
pub(super) struct Ghost {
    /// Each hash with the number of its place in `order` (a hash added again gets a new one,
    /// and its old place is skipped when it comes round).
    set: HashMap<u64, u64>,
    order: VecDeque<(u64, u64)>,
    added: u64,
}

impl Ghost {
    pub fn add(&mut self, hash: u64, limit: u64) {
        self.added += 1;
        self.set.insert(hash, self.added);
        self.order.push_back((hash, self.added));
        while self.set.len() as u64 > limit.max(1) {
            let Some((old, when)) = self.order.pop_front() else {
                break;
            };
            if self.set.get(&old) == Some(&when) {
                self.set.remove(&old);
            }
        }
        // Places of hashes taken off the list are dropped once they are most of it.
        if self.order.len() > 2 * self.set.len() + 64 {
            let set = &self.set;
            self.order.retain(|(h, w)| set.get(h) == Some(w));
        }
    }

    /// True (and forgotten) when `hash` was in the list.
    pub fn take(&mut self, hash: u64) -> bool {
        self.set.remove(&hash).is_some()
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }
}
