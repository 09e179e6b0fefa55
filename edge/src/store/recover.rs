//! Formatting a new store file, and rebuilding the index from an existing one at start.
//!
//! Each log is walked as the chain of entries it always is (see `log`): every header is read
//! (no key, meta or body), committed records enter the index unverified (the newest content
//! of a key wins, by sequence number), and the log's tail is found after the newest entry by
//! write order, its head at the first record after that. Bytes that are no entry end the walk:
//! the rest of the log is declared free.

use super::Meta;
use super::file::StoreFile;
use super::format::{ALIGN, RECORD_HEADER, RecordHeader, RecordState, Superblock};
use super::index::{Area, Entry, State};
use super::log::Log;

/// Writes an empty store: one FREE entry per log, then the superblock.
pub(super) fn format(
    file: &StoreFile,
    layout: &Superblock,
    small: &Log,
    main: &Log,
) -> std::io::Result<()> {
    file.write(0, &[0u8; 64])?;
    for log in [small, main] {
        file.write(log.start, &RecordHeader::free(log.len).encode(layout.salt))?;
    }
    file.write(0, &layout.encode())
}

/// One entry met on the walk.
struct Walked {
    offset: u64,
    total: u64,
    /// Write order, for records (dead and reserved ones too); `None` for free entries.
    written: Option<u64>,
}

/// Rebuilds `log`'s head and tail and indexes its committed records into `state`.
pub(super) fn recover<M: Meta>(
    file: &StoreFile,
    salt: u64,
    log: &mut Log,
    area: Area,
    state: &mut State<M>,
) -> std::io::Result<()> {
    let mut walked = Vec::new();
    let mut offset = 0;
    let (mut recovered, mut dropped) = (0u64, 0u64);
    while offset < log.len {
        let at = log.start + offset;
        let header = file
            .read_vec(at, RECORD_HEADER)
            .ok()
            .and_then(|b| RecordHeader::decode(&b, salt))
            .filter(|h| h.total <= log.len - offset);
        let Some(header) = header else {
            let rest = log.len - offset;
            tracing::warn!(
                offset = at,
                bytes = rest,
                "store: unreadable entry; the rest of its log is free"
            );
            file.write(at, &RecordHeader::free(rest).encode(salt))?;
            walked.push(Walked {
                offset,
                total: rest,
                written: None,
            });
            break;
        };
        if header.state != RecordState::Free {
            state.written = state.written.max(header.written);
            state.seq = state.seq.max(header.seq);
        }
        match header.state {
            RecordState::Committed if header.parts_fit() => {
                let entry = Entry {
                    offset: at,
                    units: (header.total / ALIGN) as u32,
                    area,
                    freq: 0,
                    unverified: true,
                    seq: header.seq,
                };
                let newer = state
                    .index
                    .get(&header.key_hash)
                    .is_none_or(|e| e.seq < header.seq);
                if newer && state.put(header.key_hash, entry).is_none() {
                    recovered += 1;
                }
                state.join_family(header.family, header.key_hash);
            }
            RecordState::Committed | RecordState::Reserved => dropped += 1,
            RecordState::Dead | RecordState::Free => {}
        }
        walked.push(Walked {
            offset,
            total: header.total,
            written: (header.state != RecordState::Free).then_some(header.written),
        });
        offset += header.total;
    }
    let newest = walked
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.written.map(|written| (written, i)))
        .max();
    match newest {
        None => {
            log.head = 0;
            log.tail = 0;
            log.used = 0;
        }
        Some((written, i)) => {
            state.written = state.written.max(written);
            let tail = (walked[i].offset + walked[i].total) % log.len;
            // The oldest entry is the first record after the newest, going round.
            let head = (1..=walked.len())
                .map(|k| &walked[(i + k) % walked.len()])
                .find(|w| w.written.is_some())
                .map_or(walked[i].offset, |w| w.offset);
            log.head = head;
            log.tail = tail;
            log.used = if tail == head {
                log.len
            } else {
                (tail + log.len - head) % log.len
            };
        }
    }
    state.unverified.extend(
        state
            .index
            .iter()
            .filter(|(_, e)| e.area == area && e.unverified)
            .map(|(&h, _)| h),
    );
    if recovered > 0 || dropped > 0 {
        tracing::info!(log = ?area, objects = recovered, dropped, "store recovered");
    }
    Ok(())
}

/// Brings `log`, loaded from a checkpoint written while the store ran, up to date: walks the
/// entries written after the checkpoint (write order above `since`) from the log's tail as it
/// was, indexes their committed records, and drops the checkpoint's entries they overwrote or
/// that the head has passed. Where the head is: where the checkpoint had it if the tail did not
/// reach it since (records evicted meanwhile were marked dead, so the head passes them at once,
/// and lookups of their stale entries miss), else where the FREE entry at the tail says. Returns
/// how many entries were walked, or `None` when the log went a whole lap round (the caller
/// walks the whole log).
pub(super) fn catch_up<M: Meta>(
    file: &StoreFile,
    salt: u64,
    log: &mut Log,
    area: Area,
    state: &mut State<M>,
    since: u64,
) -> std::io::Result<Option<u64>> {
    let room = log.len - log.used;
    let header_at = |offset: u64| {
        file.read_vec(log.start + offset, RECORD_HEADER)
            .ok()
            .and_then(|b| RecordHeader::decode(&b, salt))
            .filter(|h| h.total <= log.len - offset)
    };
    let newer = |h: &RecordHeader| h.state != RecordState::Free && h.written > since;
    let (mut at, mut added, mut walked) = (log.tail, 0u64, 0u64);
    // Where records written since the checkpoint are (absolute offset, length, content).
    let mut written_since: Vec<(u64, u64, u64)> = Vec::new();
    // The FREE entry the walk ended at, if any: its length.
    let free_at_tail = loop {
        // Every entry is at least `ALIGN` long, so this ends the walk.
        if added >= log.len {
            return Ok(None);
        }
        let Some(header) = header_at(at) else {
            return Ok(None);
        };
        let next = (at + header.total) % log.len;
        if header.state == RecordState::Free {
            // The tail, unless it is the padding at the log's end before a wrap.
            let pad = next == 0 && header_at(0).as_ref().is_some_and(newer);
            if !pad {
                break Some(header.total);
            }
            // Written since too: entries of records it covers are gone.
            written_since.push((log.start + at, header.total, 0));
        } else if !newer(&header) {
            break None;
        } else {
            state.written = state.written.max(header.written);
            state.seq = state.seq.max(header.seq);
            written_since.push((log.start + at, header.total, header.seq));
            if header.state == RecordState::Committed && header.parts_fit() {
                let entry = Entry {
                    offset: log.start + at,
                    units: (header.total / ALIGN) as u32,
                    area,
                    freq: 0,
                    unverified: true,
                    seq: header.seq,
                };
                if state
                    .index
                    .get(&header.key_hash)
                    .is_none_or(|e| e.seq <= header.seq)
                {
                    state.put(header.key_hash, entry);
                }
                state.join_family(header.family, header.key_hash);
            }
        }
        added += header.total;
        walked += 1;
        at = next;
    };
    let tail = at;
    let head = if added <= room {
        log.head
    } else {
        match free_at_tail {
            // The FREE entry runs from the tail to the head, or to the log's end (then the
            // head is at or after the start, and everything before it is dead records).
            Some(len) if tail + len < log.len => tail + len,
            Some(_) => 0,
            // No room at all: a full log.
            None => tail,
        }
    };
    log.tail = tail;
    log.head = head;
    log.used = if added <= room {
        // The head where it was: everything written since is on top of what was used.
        log.used + added
    } else if tail == head && free_at_tail.is_none() {
        log.len
    } else {
        (tail + log.len - head) % log.len
    };
    written_since.sort_unstable();
    let overwritten = |e: &Entry| {
        let end = e.offset + e.total();
        // The ranges are disjoint: the last one starting before the entry's end is the one
        // that can overlap it.
        let i = written_since.partition_point(|&(start, _, _)| start < end);
        i.checked_sub(1)
            .and_then(|i| written_since.get(i))
            .is_some_and(|&(start, len, seq)| {
                start + len > e.offset && !(start == e.offset && seq == e.seq)
            })
    };
    let log_now = &*log;
    let dropped = state.take_where(|e| {
        e.area == area && (overwritten(e) || !log_now.holds(e.offset - log_now.start, e.total()))
    });
    if walked > 0 {
        tracing::info!(log = ?area, entries = walked, dropped, "store caught up after its checkpoint");
    }
    Ok(Some(walked))
}
