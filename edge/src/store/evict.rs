//! Room at a log's tail, taken back from its head by the S3-FIFO policy, and the moves that
//! policy asks for (probation to main, main to its own tail). Writing new records is `write`.
//!
//! A writer holds its log's lock while it reserves (evicting, moving, and writing the RESERVED
//! header and the FREE entry after it), and writes its record's parts without it. Moves are
//! written under the lock of the log they go to; a record being moved is out of the index and
//! in `moving` (served from memory) until it is written at its new place.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::format::{RECORD_HEADER, RecordHeader, RecordState, align};
use super::index::{Area, Entry, Moving};
use super::log::Log;
use super::{Inner, Meta, StoreError, lock};

/// Records up to this size are moved (promoted, reinserted) when the policy keeps them; a move
/// reads the record into memory, so larger ones leave instead.
const MOVE_LIMIT: u64 = 16 << 20;

/// A record taken from a log's head to be written again.
struct Carry {
    hash: u64,
    record: Bytes,
    header: RecordHeader,
    entry: Entry,
}

impl<M: Meta> Inner<M> {
    /// Makes `total` bytes of room at `log`'s tail and takes them; returns their offset from
    /// the log's start. Records at the head leave, or move as the policy says (into the main
    /// log, whose lock is taken after the small log's). Fails only when the head is a record
    /// still being written.
    pub(super) fn make_room(
        &self,
        log: &mut Log,
        area: Area,
        total: u64,
    ) -> Result<u64, StoreError> {
        let mut carries: VecDeque<Carry> = VecDeque::new();
        // Objects read faster than the head goes round would be moved for ever: after a lap's
        // worth of moves, the head leaves whatever it finds (a bounded CLOCK hand).
        let mut moved = 0u64;
        let result = loop {
            let need = carries.front().map_or(total, |c| c.header.total);
            if log.room_at_tail() >= need {
                let at = log.take(need);
                match carries.pop_front() {
                    Some(carry) => self.place(log, at, carry, Area::Main),
                    None => break Ok(at),
                }
                continue;
            }
            if log.room_runs_to_end() && log.len - log.tail < need {
                let (at, len) = log.wrap();
                if len > 0 {
                    self.write_entry(log.start + at, &RecordHeader::free(len));
                }
                continue;
            }
            match self.evict_head(log, area, moved >= log.len) {
                Err(error) => break Err(error),
                Ok(None) => {}
                Ok(Some(carry)) if area == Area::Main => {
                    moved += carry.header.total;
                    carries.push_back(carry);
                }
                Ok(Some(carry)) => self.promote(carry),
            }
        };
        // A failure leaves carried records unwritten: they leave the store.
        for carry in carries {
            self.dropped(carry.hash, carry.entry.seq);
        }
        result
    }

    /// Writes a moved record into the main log (from probation).
    fn promote(&self, carry: Carry) {
        let total = carry.header.total;
        let (hash, seq) = (carry.hash, carry.entry.seq);
        let mut main = lock(&self.main);
        match self.make_room(&mut main, Area::Main, total) {
            Ok(at) => self.place(&mut main, at, carry, Area::Main),
            Err(_) => self.dropped(hash, seq),
        }
    }

    /// Looks at `log`'s head and lets it go: a free entry, a dead or superseded record, or a
    /// live one the policy drops (returns `None`) or keeps (returns it, read into memory, to
    /// be written again; never when `force`). A record let go is marked dead first, so that neither it nor a copy
    /// left behind by a move comes back at recovery (a purge must hold after a restart).
    fn evict_head(
        &self,
        log: &mut Log,
        area: Area,
        force: bool,
    ) -> Result<Option<Carry>, StoreError> {
        let at = log.start + log.head;
        if log.is_being_written(log.head) {
            // A record written through while the origin sends it: its writer gives it up at
            // its next write, and the head passes it then.
            log.want_back(log.head);
            return Err(StoreError::NoSpace);
        }
        let header = self
            .file
            .read_vec(at, RECORD_HEADER)
            .ok()
            .and_then(|bytes| RecordHeader::decode(&bytes, self.salt))
            .filter(|h| h.total <= log.len - log.head && h.total <= log.used);
        let Some(header) = header else {
            return self.skip_unreadable(log).map(|()| None);
        };
        if header.state == RecordState::Free {
            log.release_head(header.total);
            return Ok(None);
        }
        // Only a committed record is live: a dead one may still be indexed by an entry a
        // checkpoint kept (until a lookup drops it), and must not be carried back to life.
        let entry = self
            .lock()
            .index
            .get(&header.key_hash)
            .copied()
            .filter(|e| e.offset == at && header.state == RecordState::Committed);
        let Some(entry) = entry else {
            if header.state == RecordState::Committed {
                self.mark_dead(at);
            } else {
                let mut state = self.lock();
                if state
                    .index
                    .get(&header.key_hash)
                    .is_some_and(|e| e.offset == at)
                {
                    state.take(header.key_hash);
                }
            }
            log.release_head(header.total);
            return Ok(None);
        };
        // While the main log has room, probation keeps nothing out of it: an object leaving
        // probation unread moves there instead of leaving the store (S3-FIFO evicts only from
        // a full cache; the logs' fixed sizes would otherwise leave the main log empty).
        let main_has_room = area == Area::Small && {
            let main = lock(&self.main);
            main.len - main.used >= header.total
        };
        let keep = (entry.freq > 0 || main_has_room) && header.total <= MOVE_LIMIT && !force;
        let record = if keep {
            match self.file.read_vec(at, header.total) {
                Ok(record) => Some(Bytes::from(record)),
                Err(error) => {
                    tracing::warn!(%error, offset = at, "store: unreadable record dropped");
                    None
                }
            }
        } else {
            None
        };
        // Checked whatever its state: a copy is checksummed again where it lands, so what it
        // copies must be what was stored.
        let intact = record
            .as_ref()
            .is_some_and(|r| super::read::payload_matches(r, &header));
        let mut state = self.lock();
        let still = state
            .index
            .get(&header.key_hash)
            .copied()
            .filter(|e| e.offset == at && e.seq == entry.seq);
        // Out of the index (and into `moving`, if kept) before its bytes can be overwritten.
        let carry = match (still, record) {
            (Some(mut entry), Some(record)) if intact => {
                state.take(header.key_hash);
                entry.unverified = false;
                entry.freq = if area == Area::Small {
                    0
                } else {
                    entry.freq - 1
                };
                state.moving.insert(
                    header.key_hash,
                    Arc::new(Moving {
                        record: record.clone(),
                        seq: header.seq,
                    }),
                );
                Some(Carry {
                    hash: header.key_hash,
                    record,
                    header,
                    entry,
                })
            }
            (Some(_), _) => {
                state.take(header.key_hash);
                state.evicted_objects += 1;
                if area == Area::Small && !keep && entry.freq == 0 {
                    let limit = state.main_objects;
                    state.ghost.add(header.key_hash, limit);
                }
                None
            }
            (None, _) => None,
        };
        self.mark_dead(at);
        drop(state);
        log.release_head(header.total);
        Ok(carry)
    }

    /// The log's head is no entry (a disk error, or a file truncated and allocated again):
    /// the rest of the log, up to its end or its tail, is given up, with every object indexed
    /// there. Refused while a record in that range is being written.
    fn skip_unreadable(&self, log: &mut Log) -> Result<(), StoreError> {
        let rest = (log.len - log.head).min(log.used);
        let (from, to) = (log.head, log.head + rest);
        if log.writing.iter().any(|(at, _, _)| *at >= from && *at < to) {
            return Err(StoreError::NoSpace);
        }
        let (from_abs, to_abs) = (log.start + from, log.start + to);
        let lost = self
            .lock()
            .take_where(|e| e.offset >= from_abs && e.offset < to_abs);
        tracing::warn!(
            offset = from_abs,
            bytes = rest,
            dropped = lost,
            "store: unreadable entry at a log's head; skipped what follows it"
        );
        log.release_head(rest);
        Ok(())
    }

    /// Writes a carried record at `at` (from `log`'s start, taken for it) and indexes it there,
    /// unless a newer write or a purge of its key came meanwhile. The FREE entry after it is
    /// written first, so that the log's chain parses after a crash between the two.
    fn place(&self, log: &mut Log, at: u64, carry: Carry, area: Area) {
        let offset = log.start + at;
        let written = self.lock().next_written();
        let header = RecordHeader {
            written,
            ..carry.header
        };
        let mut record = BytesMut::from(&carry.record[..]);
        record[..RECORD_HEADER as usize].copy_from_slice(&header.encode(self.salt));
        if let Some((free_at, len)) = log.free_entry() {
            self.write_entry(log.start + free_at, &RecordHeader::free(len));
        }
        let write = self.file.write(offset, &record);
        let mut state = self.lock();
        let wanted = state
            .moving
            .get(&carry.hash)
            .is_some_and(|m| m.seq == carry.entry.seq);
        if write.is_err() {
            // Nothing of it may be trusted: its room goes back, and the object leaves.
            log.untake(at, header.total);
            if wanted {
                state.moving.remove(&carry.hash);
                state.evicted_objects += 1;
            }
            return;
        }
        if !wanted {
            self.mark_dead(offset);
            return;
        }
        state.moving.remove(&carry.hash);
        match carry.entry.area {
            Area::Small => state.promoted_objects += 1,
            Area::Main => state.reinserted_objects += 1,
        }
        let entry = Entry {
            offset,
            area,
            ..carry.entry
        };
        state.put(carry.hash, entry);
    }

    /// A carried record that could not be written leaves the store.
    fn dropped(&self, hash: u64, seq: u64) {
        let mut state = self.lock();
        if state.moving.get(&hash).is_some_and(|m| m.seq == seq) {
            state.moving.remove(&hash);
            state.evicted_objects += 1;
        }
    }

    /// Writes the FREE entry after a record taken at `at` (by `make_room`), then its RESERVED
    /// header, so that the log's chain parses whatever happens next, and marks the range as
    /// being written. If the header cannot be written, the room goes back.
    pub(super) fn begin_record(
        &self,
        log: &mut Log,
        at: u64,
        header: &RecordHeader,
        wanted_back: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<(), StoreError> {
        if let Some((free_at, len)) = log.free_entry() {
            self.write_entry(log.start + free_at, &RecordHeader::free(len));
        }
        if let Err(error) = self.file.write(log.start + at, &header.encode(self.salt)) {
            log.untake(at, header.total);
            return Err(StoreError::Write(error));
        }
        log.writing.push((at, header.total, wanted_back));
        Ok(())
    }

    /// Writes an entry header that has no parts (FREE).
    pub(super) fn write_entry(&self, offset: u64, header: &RecordHeader) {
        debug_assert_eq!(align(header.total), header.total);
        if let Err(error) = self.file.write(offset, &header.encode(self.salt)) {
            tracing::warn!(%error, offset, "store: could not write a free entry");
        }
    }
}
