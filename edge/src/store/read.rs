//! Lookups and bodies. Every read of a record is followed by a check, under the index lock,
//! that the index still has that record at that place (see the store's module doc): bytes that
//! pass it were not being overwritten while they were read.

use std::sync::Arc;

use bytes::Bytes;
use server_kit::zero_copy::SealedFile;

use super::memory::{self, SealCell};

use super::format::{PayloadHasher, RECORD_HEADER, RecordHeader, RecordState, key_hash};
use super::index::{Entry, Moving};
use super::memory::Held;
use super::{Inner, Meta, Store, StoredObject};

/// Bodies up to this size are read whole at lookup.
pub const WHOLE: u64 = 2 << 20;
/// Larger ones are read in pieces of this size while they are sent.
pub const CHUNK: u64 = 1 << 20;

/// A stored body: held whole, or read from the store chunk by chunk (`read`).
#[derive(Clone)]
pub struct StoredBody(Kind);

#[derive(Clone)]
enum Kind {
    /// In memory; a body held by `memory` of a size sent zero-copy (`memory::ZERO_COPY_MIN`)
    /// has a cell for its sealed copy.
    Whole(Bytes, Option<SealCell>),
    Chunked {
        source: Arc<dyn ReadBody>,
        hash: u64,
        seq: u64,
        /// Where the body starts within its record.
        body_start: u64,
        len: u64,
    },
}

impl std::fmt::Debug for StoredBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Whole(bytes, _) => f.debug_tuple("Whole").field(&bytes.len()).finish(),
            Kind::Chunked { len, .. } => f.debug_tuple("Chunked").field(len).finish(),
        }
    }
}

impl StoredBody {
    pub fn len(&self) -> u64 {
        match &self.0 {
            Kind::Whole(bytes, _) => bytes.len() as u64,
            Kind::Chunked { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole body, when it is held in memory (bodies up to `WHOLE`).
    pub fn whole(&self) -> Option<&Bytes> {
        match &self.0 {
            Kind::Whole(bytes, _) => Some(bytes),
            Kind::Chunked { .. } => None,
        }
    }

    /// True for a body held in memory in the zero-copy sizes: [`StoredBody::sealed`] may give
    /// its sealed copy.
    pub fn may_be_sealed(&self) -> bool {
        matches!(&self.0, Kind::Whole(_, Some(_)))
    }

    /// The body's sealed copy, for zero-copy sends (`server_kit::zero_copy`): made at the first
    /// call for a body held in memory in the zero-copy sizes, `None` for others (or when it
    /// cannot be made now).
    pub fn sealed(&self) -> Option<Arc<SealedFile>> {
        match &self.0 {
            Kind::Whole(bytes, Some(cell)) => memory::sealed(cell, bytes),
            _ => None,
        }
    }

    /// The whole body in memory (read on the blocking pool when it is chunked).
    pub async fn bytes(&self) -> std::io::Result<Bytes> {
        if let Some(bytes) = self.whole() {
            return Ok(bytes.clone());
        }
        let body = self.clone();
        tokio::task::spawn_blocking(move || body.read(0, body.len()))
            .await
            .map_err(std::io::Error::other)?
    }

    /// `len` bytes from `start` (within the body). Blocking for a chunked body: it reads the
    /// file. Fails when the object left the store meanwhile or its bytes cannot be read.
    pub fn read(&self, start: u64, len: u64) -> std::io::Result<Bytes> {
        match &self.0 {
            Kind::Whole(bytes, _) => {
                let end = (start + len).min(bytes.len() as u64);
                Ok(bytes.slice(start.min(end) as usize..end as usize))
            }
            Kind::Chunked {
                source,
                hash,
                seq,
                body_start,
                len: body_len,
            } => {
                let len = len.min(body_len.saturating_sub(start));
                source.read_body(*hash, *seq, body_start + start, len)
            }
        }
    }
}

/// What a chunked body reads through (the store, whatever its meta type).
pub(super) trait ReadBody: Send + Sync {
    /// `len` bytes from `at` within the record of content `seq` of `hash`, wherever it is.
    fn read_body(&self, hash: u64, seq: u64, at: u64, len: u64) -> std::io::Result<Bytes>;
    /// `len` bytes at the file's offset `at`, unchecked (the caller knows they are stable).
    fn read_raw(&self, at: u64, len: u64) -> std::io::Result<Vec<u8>>;
}

/// What a lookup found without reading the file.
pub(super) enum Quick<M> {
    /// The body is held in memory (see `memory`).
    Found(StoredObject<M>),
    /// Not stored (or the store is not ready): a read would find nothing.
    Absent,
    /// Stored, not held: [`Store::get`] reads it.
    MustRead,
}

/// Where a lookup found an object.
enum Found {
    Disk(Entry),
    Memory(Arc<Moving>),
}

impl<M: Meta> Store<M> {
    /// Looks `key` up in the index and in memory only (never blocking on the file), counting
    /// it as a use when its body is held.
    pub(super) fn get_without_reading(&self, key: &str) -> Quick<M> {
        if !self.inner.is_ready() {
            return Quick::Absent;
        }
        let hash = key_hash(key);
        let (seq, fresh_meta) = {
            let state = self.inner.lock();
            match state.index.get(&hash) {
                Some(entry) => (entry.seq, state.fresh_meta.get(&hash).cloned()),
                None if state.moving.contains_key(&hash) => return Quick::MustRead,
                None => return Quick::Absent,
            }
        };
        let Some(held) = self.inner.memory.get(hash, seq, key) else {
            return Quick::MustRead;
        };
        // Counted only if the index still has this content: the answer is as of that moment.
        {
            let mut state = self.inner.lock();
            match state.index.get_mut(&hash) {
                Some(entry) if entry.seq == seq => entry.freq = (entry.freq + 1).min(3),
                _ => return Quick::MustRead,
            }
        }
        Quick::Found(StoredObject {
            meta: fresh_meta.unwrap_or_else(|| held.meta.clone()),
            body: StoredBody(Kind::Whole(held.body.clone(), held.sealed.clone())),
            version: seq,
        })
    }

    /// Looks `key` up, counting it as a use. Blocking: it reads the file (async callers use
    /// the blocking pool).
    pub fn get(&self, key: &str) -> Option<StoredObject<M>> {
        if !self.inner.is_ready() {
            return None;
        }
        let hash = key_hash(key);
        // A record can move between the index lookup and its read; a few tries follow it.
        for _ in 0..4 {
            let (found, fresh_meta) = {
                let mut state = self.inner.lock();
                let found = if let Some(entry) = state.index.get_mut(&hash) {
                    entry.freq = (entry.freq + 1).min(3);
                    Found::Disk(*entry)
                } else {
                    Found::Memory(state.moving.get(&hash)?.clone())
                };
                (found, state.fresh_meta.get(&hash).cloned())
            };
            let (version, moved) = match &found {
                Found::Disk(entry) => (entry.seq, false),
                Found::Memory(moving) => (moving.seq, true),
            };
            let outcome = match found {
                Found::Memory(moving) => from_record(&moving.record, key, self.inner.salt)
                    .map(|(meta, body)| (meta, StoredBody(Kind::Whole(body, None)))),
                Found::Disk(entry) => match self.read_entry(hash, key, &entry) {
                    Read::Gone => continue,
                    Read::Miss => return None,
                    Read::Found(meta, body) => Some((meta, body)),
                },
            };
            let (meta_bytes, body) = outcome?;
            let stored_meta = M::decode(&meta_bytes).map(Arc::new);
            if let (Some(whole), Some(meta)) = (body.whole(), &stored_meta)
                && !moved
            {
                // Checked and still indexed at `version`: the content of that record.
                self.inner.memory.offer(
                    hash,
                    Held {
                        seq: version,
                        key: key.into(),
                        meta: meta.clone(),
                        body: whole.clone(),
                        sealed: None,
                    },
                );
            }
            let meta = fresh_meta.or(stored_meta)?;
            return Some(StoredObject {
                meta,
                body,
                version,
            });
        }
        None
    }

    fn read_entry(&self, hash: u64, key: &str, entry: &Entry) -> Read {
        let inner = &self.inner;
        let total = entry.total();
        let whole = total <= WHOLE + 64 * 1024;
        let first = if whole { total } else { total.min(64 * 1024) };
        let Ok(bytes) = inner.file.read_vec(entry.offset, first) else {
            return inner.failed(hash, entry, Failure::Unreadable);
        };
        let bytes = Bytes::from(bytes);
        let Some(header) = RecordHeader::decode(&bytes, inner.salt).filter(|h| {
            h.state == RecordState::Committed
                && h.key_hash == hash
                && h.seq == entry.seq
                && h.total == total
                && h.parts_fit()
        }) else {
            return inner.failed(hash, entry, Failure::NotItsRecord);
        };
        let head_end = header.body_start();
        let head = if head_end <= first {
            bytes.slice(..head_end as usize)
        } else {
            match inner.file.read_vec(entry.offset, head_end) {
                Ok(head) => Bytes::from(head),
                Err(_) => return inner.failed(hash, entry, Failure::Unreadable),
            }
        };
        let key_end = RECORD_HEADER as usize + header.key_len as usize;
        if &head[RECORD_HEADER as usize..key_end] != key.as_bytes() {
            // Another key with the same hash: not this key's object.
            return Read::Miss;
        }
        let meta = head.slice(key_end..head_end as usize);
        let body = if whole {
            if entry.unverified && !payload_matches(&bytes, &header) {
                return inner.failed(hash, entry, Failure::Corrupt);
            }
            StoredBody(Kind::Whole(
                bytes.slice(head_end as usize..(head_end + header.body_len) as usize),
                None,
            ))
        } else {
            if entry.unverified && !inner.payload_on_disk_matches(entry.offset, &header) {
                return inner.failed(hash, entry, Failure::Corrupt);
            }
            StoredBody(Kind::Chunked {
                source: inner.clone(),
                hash,
                seq: entry.seq,
                body_start: head_end,
                len: header.body_len,
            })
        };
        if !inner.still_indexed(hash, entry, true) {
            return Read::Gone;
        }
        Read::Found(meta, body)
    }
}

/// Why a record could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Unreadable,
    /// No committed record of this key and content at the entry's place.
    NotItsRecord,
    Corrupt,
}

/// What reading an index entry's record came to.
enum Read {
    /// The record moved or left while it was read: look again.
    Gone,
    /// Not this key's object (a hash collision, or a damaged record, now dropped).
    Miss,
    Found(Bytes, StoredBody),
}

impl<M: Meta> Inner<M> {
    /// True when the index still has `entry` for `hash`; `verified` marks it checked.
    fn still_indexed(&self, hash: u64, entry: &Entry, verified: bool) -> bool {
        let mut state = self.lock();
        match state.index.get_mut(&hash) {
            Some(now) if now.offset == entry.offset && now.seq == entry.seq => {
                if verified {
                    now.unverified = false;
                }
                true
            }
            _ => false,
        }
    }

    /// A record that failed to read or check: dropped if the index still has it (then nobody
    /// was overwriting it), otherwise it moved meanwhile. Only a record whose own header is
    /// there (a corrupt body) is marked dead on disk: where the header is wrong, the bytes may
    /// belong to another record.
    fn failed(&self, hash: u64, entry: &Entry, failure: Failure) -> Read {
        let mut state = self.lock();
        let same = state
            .index
            .get(&hash)
            .is_some_and(|now| now.offset == entry.offset && now.seq == entry.seq);
        if !same {
            return Read::Gone;
        }
        state.take(hash);
        if failure == Failure::Corrupt {
            // Under the lock: once it is out of the index, its room may be taken and written.
            self.mark_dead(entry.offset);
        }
        drop(state);
        match failure {
            // Expected of entries a checkpoint kept for records evicted since it was written.
            Failure::NotItsRecord => tracing::debug!(
                offset = entry.offset,
                "stored object is not where the index says; dropped"
            ),
            Failure::Unreadable | Failure::Corrupt => {
                let what = if failure == Failure::Corrupt {
                    "failed its checksum"
                } else {
                    "could not be read"
                };
                tracing::warn!(
                    offset = entry.offset,
                    "stored object {what}; dropped, it will be fetched again"
                );
            }
        }
        Read::Miss
    }

    /// Checks a large record's payload on disk against its checksum, reading it chunk by
    /// chunk.
    fn payload_on_disk_matches(&self, offset: u64, header: &RecordHeader) -> bool {
        let mut hasher = PayloadHasher::default();
        let end = offset + header.body_start() + header.body_len;
        let mut at = offset + RECORD_HEADER;
        while at < end {
            let len = CHUNK.min(end - at);
            match self.file.read_vec(at, len) {
                Ok(bytes) => hasher.update(&bytes),
                Err(_) => return false,
            }
            at += len;
        }
        hasher.finish(header.body_len, header.seq) == header.checksum
    }

    /// Checks a recovered object's body, if it is still unverified (the background pass).
    pub(super) fn verify(&self, hash: u64) {
        let Some(entry) = self.lock().index.get(&hash).copied() else {
            return;
        };
        if !entry.unverified {
            return;
        }
        let header = self
            .file
            .read_vec(entry.offset, RECORD_HEADER)
            .ok()
            .and_then(|b| RecordHeader::decode(&b, self.salt))
            .filter(|h| {
                h.state == RecordState::Committed
                    && h.key_hash == hash
                    && h.seq == entry.seq
                    && h.parts_fit()
            });
        let Some(header) = header else {
            // Not this entry's record (one left behind by a checkpoint): dropped, unwritten.
            let _ = self.failed(hash, &entry, Failure::NotItsRecord);
            return;
        };
        if self.payload_on_disk_matches(entry.offset, &header) {
            self.still_indexed(hash, &entry, true);
        } else {
            let _ = self.failed(hash, &entry, Failure::Corrupt);
        }
    }

    /// The key of the record an entry points at (`None` if it is not a readable record).
    pub(super) fn key_at(&self, entry: &Entry) -> std::io::Result<Option<Vec<u8>>> {
        let header = self.file.read_vec(entry.offset, RECORD_HEADER)?;
        let Some(header) = RecordHeader::decode(&header, self.salt) else {
            return Ok(None);
        };
        let key = self
            .file
            .read_vec(entry.offset + RECORD_HEADER, u64::from(header.key_len))?;
        Ok(Some(key))
    }
}

impl<M: Meta> ReadBody for Inner<M> {
    fn read_raw(&self, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
        self.file.read_vec(at, len)
    }

    fn read_body(&self, hash: u64, seq: u64, at: u64, len: u64) -> std::io::Result<Bytes> {
        let gone = || std::io::Error::other("the stored object left the store while it was sent");
        for _ in 0..4 {
            let found = {
                let state = self.lock();
                match state.index.get(&hash) {
                    Some(entry) if entry.seq == seq => Found::Disk(*entry),
                    _ => match state.moving.get(&hash) {
                        Some(moving) if moving.seq == seq => Found::Memory(moving.clone()),
                        _ => return Err(gone()),
                    },
                }
            };
            match found {
                Found::Memory(moving) => {
                    let end = (at + len).min(moving.record.len() as u64);
                    return Ok(moving.record.slice(at.min(end) as usize..end as usize));
                }
                Found::Disk(entry) => {
                    let bytes = self.file.read_vec(entry.offset + at, len)?;
                    if self.still_indexed(hash, &entry, false) {
                        return Ok(Bytes::from(bytes));
                    }
                }
            }
        }
        Err(gone())
    }
}

/// A record held in memory (being moved): its meta and body, if it is `key`'s.
fn from_record(record: &Bytes, key: &str, salt: u64) -> Option<(Bytes, Bytes)> {
    let header = RecordHeader::decode(record, salt).filter(RecordHeader::parts_fit)?;
    let key_end = RECORD_HEADER as usize + header.key_len as usize;
    if record.get(RECORD_HEADER as usize..key_end)? != key.as_bytes() {
        return None;
    }
    let body_start = header.body_start() as usize;
    Some((
        record.slice(key_end..body_start),
        record.slice(body_start..body_start + header.body_len as usize),
    ))
}

/// The key of a record held in memory.
pub(super) fn record_key(record: &Bytes, salt: u64) -> Option<&[u8]> {
    let header = RecordHeader::decode(record, salt)?;
    record.get(RECORD_HEADER as usize..RECORD_HEADER as usize + header.key_len as usize)
}

/// Does a record held whole match its checksum?
pub(super) fn payload_matches(record: &[u8], header: &RecordHeader) -> bool {
    let end = (header.body_start() + header.body_len) as usize;
    let Some(payload) = record.get(RECORD_HEADER as usize..end) else {
        return false;
    };
    let mut hasher = PayloadHasher::default();
    hasher.update(payload);
    hasher.finish(header.body_len, header.seq) == header.checksum
}
