//! The index checkpoint: the whole index and both logs' positions, written beside the store
//! file (`<store>.index`) at a clean stop, and every few seconds while the edge runs, so that
//! the next start loads it instead of walking every entry header of the store (which, for a
//! large store with its pages out of memory, takes seconds of random reads).
//!
//! A clean stop's checkpoint is the index as it was. One written while running is older than
//! the file: recovery loads it, then walks only the entries written after it, from each log's
//! tail as it was (`recover::catch_up`), and falls back to walking everything when a log went
//! further round than that. A checkpoint is used once: it is read and deleted when the store is
//! opened, before anything is written. Its bodies are checked like recovered ones (lazily, once
//! since start), and every lookup checks the record's header, so a checkpoint that lies about
//! a record (one evicted or purged since it was written) can only cause a miss.
//!
//! ```text
//! checkpoint = magic "MRDNIDX2" | salt u64 | capacity u64 | written u64 | seq u64 | clean u64
//!            | small: head u64, tail u64, used u64 | main: head u64, tail u64, used u64
//!            | count u64 | count × (hash u64, offset u64, seq u64, units u32, area u8, freq u8)
//!            | pairs u64 | pairs × (family u64, hash u64) | xxh3 of everything before u64
//! ```

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use super::index::{Area, Entry, State};
use super::log::Log;

const MAGIC: &[u8; 8] = b"MRDNIDX2";
/// hash, offset, seq (u64 each), units (u32), area and freq (u8 each).
const ENTRY: usize = 8 + 8 + 8 + 4 + 1 + 1;
/// magic, salt, capacity, written, seq, clean; three positions per log; the entry count.
const HEAD: usize = 8 * 6 + 8 * 6 + 8;

/// Where the checkpoint of the store at `path` is kept.
pub fn path_for(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".index");
    PathBuf::from(name)
}

/// Reads the checkpoint at `path` and deletes it (and syncs its folder) before the store
/// writes anything; `None` when there is none. One that cannot be read is deleted too.
pub fn take(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let saved = match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "store checkpoint unreadable; not used");
            None
        }
    };
    std::fs::remove_file(path)?;
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(folder)?.sync_all()?;
    }
    Ok(saved)
}

/// What a checkpoint holds, copied out of the store so that it is encoded and written without
/// holding the store's locks (see `Inner::write_checkpoint`).
pub(super) struct Snapshot {
    pub clean: bool,
    pub written: u64,
    pub seq: u64,
    /// Head, tail and used of the small log, then of the main log.
    pub positions: [(u64, u64, u64); 2],
    pub entries: Vec<(u64, Entry)>,
    /// (family, member hash) pairs of indexed keys.
    pub pairs: Vec<(u64, u64)>,
}

impl Snapshot {
    /// The logs' positions and the write order, taken together (under the logs' locks and
    /// then the index's); the entries are copied after, under the index's lock alone.
    pub fn positions<M>(clean: bool, small: &Log, main: &Log, state: &State<M>) -> Self {
        Self {
            clean,
            written: state.written,
            seq: state.seq,
            positions: [
                (small.head, small.tail, small.used),
                (main.head, main.tail, main.used),
            ],
            entries: Vec::new(),
            pairs: Vec::new(),
        }
    }

    /// Copies the index's entries and families. Entries added since the positions were taken
    /// lie past a log's tail then: decoding drops them, and a start after a crash walks them.
    pub fn copy_index<M>(&mut self, state: &State<M>) {
        self.entries = state.index.iter().map(|(&h, &e)| (h, e)).collect();
        self.pairs = state
            .families
            .iter()
            .flat_map(|(&family, members)| members.iter().map(move |&hash| (family, hash)))
            .filter(|(_, hash)| state.index.contains_key(hash))
            .collect();
    }
}

/// The bytes of a checkpoint.
pub(super) fn encode(salt: u64, capacity: u64, snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEAD + snapshot.entries.len() * ENTRY + 8);
    out.extend_from_slice(MAGIC);
    for n in [
        salt,
        capacity,
        snapshot.written,
        snapshot.seq,
        u64::from(snapshot.clean),
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for (head, tail, used) in snapshot.positions {
        for n in [head, tail, used] {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    out.extend_from_slice(&(snapshot.entries.len() as u64).to_le_bytes());
    for (hash, e) in &snapshot.entries {
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.seq.to_le_bytes());
        out.extend_from_slice(&e.units.to_le_bytes());
        out.push(u8::from(e.area == Area::Main));
        out.push(e.freq);
    }
    out.extend_from_slice(&(snapshot.pairs.len() as u64).to_le_bytes());
    for (family, hash) in &snapshot.pairs {
        out.extend_from_slice(&family.to_le_bytes());
        out.extend_from_slice(&hash.to_le_bytes());
    }
    let check = xxh3_64(&out);
    out.extend_from_slice(&check.to_le_bytes());
    out
}

/// Loads a checkpoint into `state` and the logs (whose starts and lengths are set already), if
/// it is whole and of this store (`salt`, `capacity`); returns whether a clean stop wrote it
/// (else the entries written after it are still to be walked). Entries come back unverified.
pub(super) fn decode<M>(
    bytes: &[u8],
    salt: u64,
    capacity: u64,
    small: &mut Log,
    main: &mut Log,
    state: &mut State<M>,
) -> Option<bool> {
    let (body, check) = bytes.split_last_chunk::<8>()?;
    if body.len() < HEAD || &body[..8] != MAGIC || u64::from_le_bytes(*check) != xxh3_64(body) {
        return None;
    }
    let mut at = 8;
    let mut next = || {
        let n = u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or_default());
        at += 8;
        n
    };
    if next() != salt || next() != capacity {
        return None;
    }
    let (written, seq, clean) = (next(), next(), next());
    if clean > 1 {
        return None;
    }
    let positions: Vec<u64> = (0..6).map(|_| next()).collect();
    let count = next() as usize;
    let entries_end = count.checked_mul(ENTRY).and_then(|n| n.checked_add(HEAD))?;
    let pairs = entries_end
        .checked_add(8)
        .and_then(|end| body.get(entries_end..end))?;
    let pairs = u64::from_le_bytes(pairs.try_into().unwrap_or_default()) as usize;
    let expected = pairs
        .checked_mul(16)
        .and_then(|n| n.checked_add(entries_end + 8));
    if expected != Some(body.len()) {
        return None;
    }
    for (log, p) in [
        (&mut *small, &positions[0..3]),
        (&mut *main, &positions[3..6]),
    ] {
        let (head, tail, used) = (p[0], p[1], p[2]);
        let consistent = head < log.len
            && tail < log.len
            && used <= log.len
            && head.is_multiple_of(super::format::ALIGN)
            && tail.is_multiple_of(super::format::ALIGN)
            && (tail + log.len - head) % log.len == used % log.len;
        if !consistent {
            return None;
        }
        (log.head, log.tail, log.used) = (head, tail, used);
    }
    state.written = written;
    state.seq = seq;
    let (small_range, main_range) = (
        small.start..small.start + small.len,
        main.start..main.start + main.len,
    );
    for entry in body[HEAD..entries_end].chunks_exact(ENTRY) {
        let u64_at = |i: usize| u64::from_le_bytes(entry[i..i + 8].try_into().unwrap_or_default());
        let units = u32::from_le_bytes(entry[24..28].try_into().unwrap_or_default());
        let area = if entry[28] == 1 {
            Area::Main
        } else {
            Area::Small
        };
        let e = Entry {
            offset: u64_at(8),
            units,
            area,
            freq: entry[29].min(3),
            unverified: true,
            seq: u64_at(16),
        };
        let (range, log) = if area == Area::Main {
            (&main_range, &*main)
        } else {
            (&small_range, &*small)
        };
        // Only records between the log's head and tail: room the log will write into is no
        // place for a live one.
        if !range.contains(&e.offset)
            || e.offset + e.total() > range.end
            || !log.holds(e.offset - log.start, e.total())
        {
            continue;
        }
        state.put(u64_at(0), e);
    }
    for pair in body[entries_end + 8..].chunks_exact(16) {
        let family = u64::from_le_bytes(pair[0..8].try_into().unwrap_or_default());
        let hash = u64::from_le_bytes(pair[8..16].try_into().unwrap_or_default());
        state.join_family(family, hash);
    }
    state.unverified = state.index.keys().copied().collect();
    Some(clean == 1)
}
