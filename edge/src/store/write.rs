//! Writing new records: whole ([`Store::insert`]) or piece by piece while a fill receives them
//! ([`Store::begin`] gives a [`Writer`]), with readers of the bytes written so far
//! ([`PendingBody`]), so that a fill's late joiners read from the store instead of from memory.
//!
//! A record is reserved at its log's tail (RESERVED header, its length), written, then
//! committed: its checksum and the COMMITTED state, then the index. Until it is committed or
//! given up, its range is being written and no log head passes it, so its bytes stay where a
//! [`PendingBody`] reads them. A record reserved for a body of unknown length
//! ([`BodyLen::AtMost`]) is cut to what came at its commit, and the rest of its room becomes a
//! DEAD entry that the head takes back when it comes round.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use bytes::Bytes;

use super::format::{
    PayloadHasher, RECORD_HEADER, RecordHeader, RecordState, family_hash, key_hash,
};
use super::index::{Area, Entry, Writing};
use super::read::ReadBody;
use super::{Fetch, Inner, Meta, Store, StoreError, lock};

/// Bodies up to this size are written with one `pwrite` together with the key and meta.
const ONE_WRITE: u64 = 4 << 20;

/// How long the body of a record being begun will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// Exactly this many bytes (a `Content-Length`).
    Exact(u64),
    /// Unknown, at most this many: the room is reserved and what is left over is given back
    /// at the commit (to the log's head, which takes it when it comes round).
    AtMost(u64),
}

const WRITING: u8 = 0;
const COMMITTED: u8 = 1;
const ABORTED: u8 = 2;

/// A record being written. Dropped before [`Writer::commit`], it is given up (marked dead).
/// Blocking, like every store write: async callers use the blocking pool.
pub struct Writer<M: Meta> {
    inner: Arc<Inner<M>>,
    /// The record's absolute offset, its log, and its header as reserved.
    offset: u64,
    area: Area,
    header: RecordHeader,
    exact: bool,
    /// Key and meta, written with the first body bytes.
    prefix: Option<Vec<u8>>,
    hasher: Option<PayloadHasher>,
    body_written: u64,
    status: Arc<AtomicU8>,
    /// Raised by the log's head when it reaches this record: given up at the next write.
    wanted_back: Arc<AtomicBool>,
    /// Committed or given up: its range is let go.
    finished: bool,
}

/// A record's room, taken at a log's tail (see `Store::reserve`).
struct Reserved {
    offset: u64,
    area: Area,
    header: RecordHeader,
    meta_bytes: Vec<u8>,
    wanted_back: Arc<AtomicBool>,
}

impl<M: Meta> std::fmt::Debug for Writer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("offset", &self.offset)
            .field("body_written", &self.body_written)
            .finish_non_exhaustive()
    }
}

/// Reads the body of a record being written, up to what its writer has written; after the
/// commit, of the stored object (wherever eviction moves it). Cheap to clone. Blocking.
#[derive(Clone)]
pub struct PendingBody {
    source: Arc<dyn ReadBody>,
    status: Arc<AtomicU8>,
    hash: u64,
    seq: u64,
    offset: u64,
    body_start: u64,
}

impl std::fmt::Debug for PendingBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingBody")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl PendingBody {
    /// `len` bytes of the body from `at`, which the writer has written already. Fails when
    /// the record was given up, or the object left the store after its commit.
    pub fn read(&self, at: u64, len: u64) -> std::io::Result<Bytes> {
        let gone = || std::io::Error::other("the object being stored was given up");
        let stored = |this: &Self| {
            this.source
                .read_body(this.hash, this.seq, this.body_start + at, len)
        };
        match self.status.load(Ordering::SeqCst) {
            COMMITTED => stored(self),
            ABORTED => Err(gone()),
            _ => {
                let bytes = self
                    .source
                    .read_raw(self.offset + self.body_start + at, len)?;
                // Still being written after the read: its range was never let go meanwhile
                // (the writer changes the status before it lets go), so nothing overwrote it.
                match self.status.load(Ordering::SeqCst) {
                    WRITING => Ok(Bytes::from(bytes)),
                    COMMITTED => stored(self),
                    _ => Err(gone()),
                }
            }
        }
    }
}

impl<M: Meta> Store<M> {
    /// Stores `body` (given as the chunks it arrived in) under `key`. Blocking: it writes the
    /// file and may move other records, so async callers run it on the blocking pool.
    /// `counts_as_use` false (a prefetch) keeps the object on probation whatever its history.
    pub fn insert(
        &self,
        key: &str,
        meta: &M,
        body: &[Bytes],
        counts_as_use: bool,
    ) -> Result<(), StoreError> {
        self.insert_fetched(key, meta, body, counts_as_use, None)
    }

    /// [`Store::insert`] of what `fetch` fetched (see [`Store::begin`]).
    pub fn insert_fetched(
        &self,
        key: &str,
        meta: &M,
        body: &[Bytes],
        counts_as_use: bool,
        fetch: Option<&Fetch<M>>,
    ) -> Result<(), StoreError> {
        let len: u64 = body.iter().map(|b| b.len() as u64).sum();
        let mut writer = self.begin(key, meta, BodyLen::Exact(len), counts_as_use, fetch)?;
        writer.write_chunks(body)?;
        writer.commit()
    }

    /// Reserves a record for `key` and returns its writer. The object is stored (and replaces
    /// an older one) only at [`Writer::commit`], and not at all if `key` is removed before
    /// that, or (given the `fetch` that got it) since its fetch began: a purge is never undone
    /// by a fetch that was in flight.
    pub fn begin(
        &self,
        key: &str,
        meta: &M,
        len: BodyLen,
        counts_as_use: bool,
        fetch: Option<&Fetch<M>>,
    ) -> Result<Writer<M>, StoreError> {
        let inner = &self.inner;
        let Reserved {
            offset,
            area,
            header,
            meta_bytes,
            wanted_back,
        } = self.reserve(key, meta, len, counts_as_use, fetch)?;
        let mut prefix = Vec::with_capacity(key.len() + meta_bytes.len());
        prefix.extend_from_slice(key.as_bytes());
        prefix.extend_from_slice(&meta_bytes);
        let mut hasher = PayloadHasher::default();
        hasher.update(&prefix);
        Ok(Writer {
            inner: inner.clone(),
            offset,
            area,
            header,
            exact: matches!(len, BodyLen::Exact(_)),
            prefix: Some(prefix),
            hasher: Some(hasher),
            body_written: 0,
            status: Arc::new(AtomicU8::new(WRITING)),
            wanted_back,
            finished: false,
        })
    }

    /// Takes room for the record at a log's tail and writes its RESERVED header.
    fn reserve(
        &self,
        key: &str,
        meta: &M,
        len: BodyLen,
        counts_as_use: bool,
        fetch: Option<&Fetch<M>>,
    ) -> Result<Reserved, StoreError> {
        let inner = &self.inner;
        if !inner.is_ready() {
            return Err(StoreError::Starting);
        }
        let meta_bytes = meta.encode();
        let (BodyLen::Exact(body_len) | BodyLen::AtMost(body_len)) = len;
        if key.len() > u32::MAX as usize || meta_bytes.len() > u32::MAX as usize {
            return Err(StoreError::TooLarge(body_len));
        }
        let total = RecordHeader::total_for(key.len() as u64, meta_bytes.len() as u64, body_len);
        let hash = key_hash(key);
        let (small_len, main_len) = (inner.layout.small_len, inner.layout.main_len);
        if total > main_len || total / super::format::ALIGN > u64::from(u32::MAX) {
            return Err(StoreError::TooLarge(body_len));
        }
        if fetch.is_some_and(|f| f.was_removed(&inner.lock())) {
            return Err(StoreError::Removed);
        }
        let remembered = counts_as_use && inner.lock().ghost.take(hash);
        // Probation is for new objects that fit it several times over.
        let area = if remembered || total > small_len / 4 {
            Area::Main
        } else {
            Area::Small
        };
        let mut log = match area {
            Area::Small => lock(&inner.small),
            Area::Main => lock(&inner.main),
        };
        // Again under the log's lock: `close` takes it to write its checkpoint after it set
        // `closing`, so nothing moves in the logs after that.
        if !inner.is_ready() {
            return Err(StoreError::Closing);
        }
        let at = inner.make_room(&mut log, area, total)?;
        let mut state = inner.lock();
        // Checked again where the record is registered: a removal from here on marks it.
        if fetch.is_some_and(|f| f.was_removed(&state)) {
            drop(state);
            log.untake(at, total);
            return Err(StoreError::Removed);
        }
        let written = state.next_written();
        state.seq = state.seq.saturating_add(1);
        let seq = state.seq;
        state.writing.insert(
            seq,
            Writing {
                hash,
                key: key.into(),
                removed: false,
            },
        );
        drop(state);
        let header = RecordHeader {
            state: RecordState::Reserved,
            key_len: key.len() as u32,
            total,
            written,
            key_hash: hash,
            seq,
            meta_len: meta_bytes.len() as u32,
            body_len,
            checksum: 0,
            family: family_hash(key),
        };
        let wanted_back = Arc::new(AtomicBool::new(false));
        if let Err(error) = inner.begin_record(&mut log, at, &header, wanted_back.clone()) {
            inner.lock().writing.remove(&seq);
            return Err(error);
        }
        Ok(Reserved {
            offset: log.start + at,
            area,
            header,
            meta_bytes,
            wanted_back,
        })
    }
}

impl<M: Meta> Writer<M> {
    /// Bytes of body written so far.
    pub fn written(&self) -> u64 {
        self.body_written
    }

    /// A reader of what this writer writes.
    pub fn reader(&self) -> PendingBody {
        PendingBody {
            source: self.inner.clone(),
            status: self.status.clone(),
            hash: self.header.key_hash,
            seq: self.header.seq,
            offset: self.offset,
            body_start: self.header.body_start(),
        }
    }

    /// Appends body bytes. A failure gives the record up: nothing of it will be stored.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        if self.finished {
            return Err(StoreError::Write(std::io::Error::other(
                "the record was given up",
            )));
        }
        if self.inner.closing.load(Ordering::SeqCst) {
            self.abort();
            return Err(StoreError::Closing);
        }
        if self.wanted_back.load(Ordering::SeqCst) {
            self.abort();
            return Err(StoreError::WantedBack);
        }
        let end = self.body_written + data.len() as u64;
        if end > self.header.body_len {
            self.abort();
            return Err(StoreError::TooLarge(end));
        }
        let body_at = self.offset + self.header.body_start() + self.body_written;
        let result = match self.prefix.take() {
            Some(mut prefix) if (data.len() as u64) <= ONE_WRITE => {
                prefix.extend_from_slice(data);
                self.inner.file.write(self.offset + RECORD_HEADER, &prefix)
            }
            Some(prefix) => self
                .inner
                .file
                .write(self.offset + RECORD_HEADER, &prefix)
                .and_then(|()| self.inner.file.write(body_at, data)),
            None => self.inner.file.write(body_at, data),
        };
        if let Err(error) = result {
            self.abort();
            return Err(StoreError::Write(error));
        }
        if let Some(hasher) = self.hasher.as_mut() {
            hasher.update(data);
        }
        self.body_written = end;
        Ok(())
    }

    /// Appends body bytes given as chunks: joined into one write up to `ONE_WRITE`.
    pub fn write_chunks(&mut self, chunks: &[Bytes]) -> Result<(), StoreError> {
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if len <= ONE_WRITE && chunks.len() > 1 {
            return self.write(&chunks.concat());
        }
        chunks.iter().try_for_each(|chunk| self.write(chunk))
    }

    /// Stores the object: checksum and COMMITTED state written, then indexed (replacing an
    /// older copy of its key). The body must be complete (all of an exact length).
    pub fn commit(mut self) -> Result<(), StoreError> {
        if self.finished {
            return Err(StoreError::Write(std::io::Error::other(
                "the record was given up",
            )));
        }
        if self.exact && self.body_written != self.header.body_len {
            self.abort();
            return Err(StoreError::Write(std::io::Error::other(format!(
                "body ended at {} of {} bytes",
                self.body_written, self.header.body_len
            ))));
        }
        if let Some(prefix) = self.prefix.take()
            && let Err(error) = self.inner.file.write(self.offset + RECORD_HEADER, &prefix)
        {
            self.abort();
            return Err(StoreError::Write(error));
        }
        let reserved = self.header.total;
        let mut header = self.header;
        header.body_len = self.body_written;
        header.total = RecordHeader::total_for(
            u64::from(header.key_len),
            u64::from(header.meta_len),
            header.body_len,
        );
        let hasher = self.hasher.take().unwrap_or_default();
        header.checksum = hasher.finish(header.body_len, header.seq);
        header.state = RecordState::Committed;
        let hash = header.key_hash;
        // Under the index lock, the refusals and the header that makes the record count at
        // recovery: a removal or `close` either comes before (and nothing is committed) or
        // after (and finds it indexed).
        let mut state = self.inner.lock();
        let removed = state.writing.remove(&header.seq).is_none_or(|w| w.removed);
        if removed || self.inner.closing.load(Ordering::SeqCst) {
            drop(state);
            self.abort();
            return Err(if removed {
                StoreError::Removed
            } else {
                StoreError::Closing
            });
        }
        // The room left over becomes an entry of its own before the record is cut, so the
        // log's chain parses whatever happens between the two writes. It is as old as the
        // record, so a walk after a crash finds the tail after it.
        let mut written = Ok(());
        if header.total < reserved {
            let rest = RecordHeader {
                state: RecordState::Dead,
                total: reserved - header.total,
                written: header.written,
                ..RecordHeader::free(reserved - header.total)
            };
            written = self
                .inner
                .file
                .write(self.offset + header.total, &rest.encode(self.inner.salt));
        }
        let written = written.and_then(|()| {
            self.inner
                .file
                .write(self.offset, &header.encode(self.inner.salt))
        });
        if let Err(error) = written {
            drop(state);
            self.abort();
            return Err(StoreError::Write(error));
        }
        state.moving.remove(&hash);
        let entry = Entry {
            offset: self.offset,
            units: (header.total / super::format::ALIGN) as u32,
            area: self.area,
            freq: 0,
            unverified: false,
            seq: header.seq,
        };
        if let Some(old) = state.put(hash, entry) {
            self.inner.mark_entry_dead(hash, &old);
        }
        state.fresh_meta.remove(&hash);
        state.join_family(header.family, hash);
        // Indexed before its range is let go: the head never passes a record that is
        // neither being written nor indexed.
        self.status.store(COMMITTED, Ordering::SeqCst);
        drop(state);
        self.let_go();
        Ok(())
    }

    /// Gives the record up: marked dead (its room comes back when the head reaches it).
    fn abort(&mut self) {
        if self.finished {
            return;
        }
        self.status.store(ABORTED, Ordering::SeqCst);
        self.inner.lock().writing.remove(&self.header.seq);
        self.inner.mark_dead(self.offset);
        self.let_go();
    }

    /// Lets go of the record's range.
    fn let_go(&mut self) {
        self.finished = true;
        {
            let mut log = match self.area {
                Area::Small => lock(&self.inner.small),
                Area::Main => lock(&self.inner.main),
            };
            let start = log.start;
            log.done_writing(self.offset - start);
        }
    }
}

impl<M: Meta> Drop for Writer<M> {
    fn drop(&mut self) {
        self.abort();
    }
}
