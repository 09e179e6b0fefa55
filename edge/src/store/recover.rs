//! Rebuilding the index from the store file at start, before the store is shared.
//!
//! Every region whose header is valid is scanned record by record: a COMMITTED record of the
//! region's epoch whose header checks out and whose key and meta decode enters the index (the
//! newest of a key, by sequence number, wins), marked unverified: bodies are not read here, so
//! start-up reads headers, keys and metas only, and each body's checksum is checked at its
//! first lookup (`Store::get`), before it is ever served. RESERVED (half-written at a crash)
//! and DEAD (purged) records are skipped; the first bytes that are no record of this epoch end
//! the region.

use std::sync::Arc;

use super::Meta;
use super::format::{
    ALIGN, PayloadHasher, RECORD_HEADER, REGION_HEADER, RecordHeader, RecordState, RegionHeader,
};
use super::index::{Slot, State};
use super::map::Map;

/// Rebuilds `state` from `map`, whose regions are `region_size` bytes.
pub(super) fn recover<M: Meta>(map: &mut Map, region_size: u64, state: &mut State<M>) {
    let mut recovered = 0u64;
    let mut dropped = 0u64;
    for r in 0..state.regions.len() {
        let base = region_size * r as u64;
        let Some(region) = RegionHeader::decode(map.slice_exclusive(base, REGION_HEADER)) else {
            continue; // Never used (or unreadable): treated as free.
        };
        state.regions[r].epoch = region.epoch;
        let mut offset = REGION_HEADER;
        let mut newest = 0;
        while offset + RECORD_HEADER <= region_size {
            let at = base + offset;
            let Some(header) = RecordHeader::decode(map.slice_exclusive(at, RECORD_HEADER)) else {
                break;
            };
            let total = header.total;
            if header.epoch != region.epoch
                || total < RECORD_HEADER
                || !total.is_multiple_of(ALIGN)
                || offset + total > region_size
            {
                break;
            }
            match header.state {
                RecordState::Committed => match read_key_and_meta::<M>(map, at, &header) {
                    Some((key, meta)) => {
                        newest = newest.max(header.seq);
                        state.seq = state.seq.max(header.seq);
                        let slot = Slot {
                            region: r,
                            offset,
                            total,
                            body_start: offset + header.body_start(),
                            body_len: header.body_len,
                            seq: header.seq,
                            meta: Arc::new(meta),
                            hit: false,
                            unverified: Some(header.checksum),
                        };
                        let replace = state
                            .index
                            .get(key.as_str())
                            .is_none_or(|existing| existing.seq < header.seq);
                        if replace && state.put(key, slot).is_none() {
                            recovered += 1;
                        }
                    }
                    None => dropped += 1,
                },
                RecordState::Reserved => dropped += 1,
                RecordState::Dead => {}
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

/// A committed record's key and meta, if its sizes fit its length and both decode. Its body
/// is checked later, at its first lookup.
fn read_key_and_meta<M: Meta>(
    map: &mut Map,
    at: u64,
    header: &RecordHeader,
) -> Option<(String, M)> {
    let (key_len, meta_len) = (u64::from(header.key_len), u64::from(header.meta_len));
    let used = RECORD_HEADER
        .checked_add(key_len)?
        .checked_add(meta_len)?
        .checked_add(header.body_len)?;
    if used > header.total {
        return None;
    }
    let head = map.slice_exclusive(at + RECORD_HEADER, key_len + meta_len);
    let key = std::str::from_utf8(&head[..key_len as usize])
        .ok()?
        .to_owned();
    let meta = M::decode(&head[key_len as usize..])?;
    Some((key, meta))
}

/// Does the payload (key, meta and body, as written) match the record's checksum?
pub(super) fn payload_matches(payload: &[u8], body_len: u64, seq: u64, checksum: u64) -> bool {
    let mut hasher = PayloadHasher::default();
    hasher.update(payload);
    hasher.finish(body_len, seq) == checksum
}
