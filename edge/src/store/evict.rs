//! Room for a record: the open region if it fits, else a free region, else the least recently
//! used region nobody pins or writes, emptied first. The objects of an emptied region that were
//! read since they were written (its survivors, up to half a region) are written back at its
//! start, so a hot object does not leave with its cold neighbours.
//!
//! The index lock is held only for index updates (`cargo bench -p edge --bench eviction` counts
//! the lookups that waited): survivors are planned under the lock, copied out without it, moved
//! from the index to `pending` (served from memory) under it, and written back without it once
//! the region's last reader let go. A newer write or a purge of the same key meanwhile wins.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::format::{REGION_HEADER, RecordHeader, RecordPlace, RegionHeader, body_offset};
use super::index::{Pending, Slot, State};
use super::{Inner, Meta, StoreError};

/// How long emptying a region waits for readers still sending its bodies.
pub(super) const PIN_WAIT: Duration = Duration::from_secs(2);

/// Room reserved for one record.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reservation {
    pub region: usize,
    /// The record's start within the region.
    pub offset: u64,
    /// The region's epoch, which the record must carry.
    pub epoch: u64,
    pub seq: u64,
}

impl Reservation {
    /// What the writer of a record of `total` bytes here is given.
    pub fn place(&self, total: u64) -> RecordPlace {
        RecordPlace {
            epoch: self.epoch,
            total,
            seq: self.seq,
        }
    }
}

/// A survivor as planned under the lock, before its body is copied out.
pub(super) struct Planned {
    key: String,
    /// Where its record was, to tell whether the index still points at this one.
    offset: u64,
    body_start: u64,
    body_len: u64,
    meta_bytes: Vec<u8>,
    total: u64,
    seq: u64,
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

/// Survivors placed at the start of a region just reset, to be written outside the lock
/// (`Inner::rewrite`); the region's writer count stays raised until they are.
pub(super) struct Rewrite<M> {
    region: usize,
    epoch: u64,
    items: Vec<(u64, Survivor<M>)>,
}

impl<M: Meta> Inner<M> {
    /// Reserves room for a record of `total` bytes in the open region, else in a free one,
    /// else in the least recently used region nobody pins or writes, emptied first (keeping
    /// its read objects: the returned `Rewrite`, which the caller writes, outside the lock,
    /// before its own record).
    pub(super) fn reserve(
        &self,
        total: u64,
    ) -> (Result<Reservation, StoreError>, Option<Rewrite<M>>) {
        let mut state = self.lock();
        let open = state
            .open
            .filter(|&open| state.regions[open].fill + total <= self.region_size);
        let (region, rewrite) = match open {
            Some(open) => (open, None),
            None => {
                let Some(candidate) = (0..self.region_count)
                    .filter(|&r| Some(r) != state.open)
                    .filter(|&r| state.regions[r].writers == 0 && !self.pins.is_pinned(r))
                    .min_by_key(|&r| {
                        let region = &state.regions[r];
                        // Never-used regions first, then least recently used.
                        (region.fill > REGION_HEADER, region.last_access)
                    })
                else {
                    return (Err(StoreError::NoSpace), None);
                };
                let planned = self.survivors(&state, candidate, total);
                // Claimed (rule 3): nobody else chooses, appends to or resets it until we are
                // done.
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
        let reservation = Reservation {
            region,
            offset,
            epoch,
            seq: state.seq,
        };
        (Ok(reservation), rewrite)
    }

    /// The objects of region `r` worth keeping when it is evicted: read since they were written,
    /// at most half a region of them and never crowding out the `needed` bytes of the record
    /// being placed. Planned under the lock, copied out without it (`empty_region`). Each keeps
    /// its record's sequence number, so a newer write of the same key, in flight, wins at
    /// recovery.
    pub(super) fn survivors(&self, state: &State<M>, r: usize, needed: u64) -> Vec<Planned> {
        let room = self.region_size - REGION_HEADER;
        let budget = (room / 2).min(room.saturating_sub(needed));
        let mut used = 0;
        let mut out = Vec::new();
        // A key rewritten while its region was open is listed once per write.
        let mut seen = HashSet::new();
        for key in &state.regions[r].keys {
            let Some(slot) = state.index.get(key) else {
                continue;
            };
            // An object not yet checked against its checksum is never copied: its copy would be
            // checksummed afresh, and a corrupt body would pass for a good one.
            if slot.region != r || !slot.hit || slot.unverified.is_some() || !seen.insert(&**key) {
                continue;
            }
            // Sized from the meta as it is now (a revalidation may have grown it).
            let meta_bytes = slot.meta.encode();
            let total =
                RecordHeader::total_for(key.len() as u64, meta_bytes.len() as u64, slot.body_len);
            if used + total > budget {
                continue;
            }
            used += total;
            out.push(Planned {
                key: key.to_string(),
                offset: slot.offset,
                body_start: slot.body_start,
                body_len: slot.body_len,
                meta_bytes,
                total,
                seq: slot.seq,
            });
        }
        out
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
    #[allow(clippy::type_complexity, unsafe_code)]
    pub(super) fn empty_region(
        &self,
        r: usize,
        planned: Vec<Planned>,
    ) -> Result<(MutexGuard<'_, State<M>>, Option<Rewrite<M>>), StoreError> {
        // Copied out by key, to match against the index once the lock is taken again.
        let mut by_key: HashMap<String, (Planned, Bytes)> = planned
            .into_iter()
            .map(|p| {
                // SAFETY: rule 3: the region is claimed by this call, so nothing appends to or
                // resets it, and committed bodies are never written in place.
                let body = Bytes::copy_from_slice(unsafe {
                    self.map.slice(self.at(r, p.body_start), p.body_len)
                });
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
                match by_key.remove(&*key) {
                    Some((p, body)) if p.offset == slot.offset => {
                        state.pending.insert(
                            key.to_string(),
                            Pending {
                                meta: slot.meta.clone(),
                                body: body.clone(),
                                seq: p.seq,
                            },
                        );
                        survivors.push(Survivor {
                            key: key.to_string(),
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
        let deadline = Instant::now() + PIN_WAIT;
        while self.pins.is_pinned(r) {
            if Instant::now() > deadline {
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
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut state = self.lock();
        self.reset_region(&mut state, r);
        let rewrite = self.place(&mut state, r, survivors);
        Ok((state, rewrite))
    }

    /// Starts region `r` again: a new epoch (older records in it no longer count), empty.
    #[allow(unsafe_code)]
    fn reset_region(&self, state: &mut State<M>, r: usize) {
        let epoch = state.regions[r].epoch + 1;
        let clock = state.tick();
        let region = &mut state.regions[r];
        region.epoch = epoch;
        region.fill = REGION_HEADER;
        region.live = 0;
        region.last_access = clock;
        // SAFETY: rule 3: the region is claimed by this call, none of its keys is indexed and
        // its pins dropped to zero.
        unsafe {
            self.map
                .write_region_header(self.at(r, 0), RegionHeader { epoch })
        };
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
    #[allow(unsafe_code)]
    pub(super) fn rewrite(&self, rewrite: Rewrite<M>) {
        let Rewrite {
            region: r,
            epoch,
            items,
        } = rewrite;
        for (offset, s) in &items {
            let place = RecordPlace {
                epoch,
                total: s.total,
                seq: s.seq,
            };
            // SAFETY: rule 3: `place` reserved this range of the claimed region for these
            // survivors alone, and nothing indexes it yet.
            unsafe {
                self.map.write_record(
                    self.at(r, *offset),
                    place,
                    s.key.as_bytes(),
                    &s.meta_bytes,
                    &[&s.body],
                )
            };
        }
        let mut state = self.lock();
        let mut kept = 0;
        for (offset, s) in items {
            let body_start = offset + body_offset(s.key.len() as u64, s.meta_bytes.len() as u64);
            let mut slot = Slot {
                region: r,
                offset,
                total: s.total,
                body_start,
                body_len: s.body.len() as u64,
                seq: s.seq,
                meta: s.meta,
                hit: false,
                unverified: None,
            };
            match state.pending.remove(&s.key) {
                Some(pending) if pending.seq == s.seq => {
                    // The meta as it is now: a revalidation may have replaced it meanwhile.
                    slot.meta = pending.meta;
                    if let Some(old) = state.put(s.key, slot) {
                        self.mark_dead(&old);
                    }
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
}
