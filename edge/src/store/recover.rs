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
