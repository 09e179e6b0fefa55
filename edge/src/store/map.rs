//! The store file and its mapping: the only code in Meridian that touches raw pointers or makes
//! system calls without a safe wrapper.
//!
//! The file is exactly `capacity` bytes, allocated once with `posix_fallocate` (so a full disk
//! is an error at start, never a SIGBUS later) and never truncated while mapped. Reading and
//! writing the mapping are `unsafe fn`s: the mapping is shared with every reader of a stored
//! body, so whether a range may be written or read at a given moment is a fact about the
//! index and its pins, which this module cannot see. Each caller states in a `SAFETY:` comment
//! which of the store's ownership rules makes its access sound (see the store's module doc).
//! Recovery, which runs before the map is shared, reads through `&mut` instead, safely.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Arc;

use std::sync::atomic::{Ordering, fence};

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};

use super::format::{
    PayloadHasher, RECORD_HEADER, RecordHeader, RecordPlace, RecordState, RegionHeader, STATE_AT,
};

/// The mapped store file.
#[derive(Debug)]
pub struct Map {
    raw: MmapRaw,
    file: nix::fcntl::Flock<File>,
    len: u64,
}

/// What opening the file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The file had this size already: its contents are the store's to recover.
    Existing,
    /// The file was new or had another size (another layout): it starts empty.
    Fresh { old_len: u64 },
}

/// Where the PID of the process holding a store file is written: `<store>.owner` (not a
/// `.pid` file: it outlives a crashed holder, and only the lock says whether it is current).
pub fn pid_file(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".owner");
    std::path::PathBuf::from(name)
}

impl Map {
    /// Opens (or creates) the file at `path` with exactly `len` bytes, locks it against other
    /// processes (an exclusive `flock`, held while the map lives), and maps it. A file of
    /// another size is emptied and reallocated before it is mapped, so no mapping ever sees it
    /// shrink.
    pub fn open(path: &Path, len: u64) -> std::io::Result<(Self, Opened)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // Two processes writing one store would corrupt each other's records. The holder's PID
        // is written beside the file under the lock, so the refusal can name it.
        let pid_path = pid_file(path);
        let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| {
                let holder = std::fs::read_to_string(&pid_path)
                    .ok()
                    .and_then(|p| p.trim().parse::<u32>().ok())
                    .map(|pid| format!("process {pid} (per {})", pid_path.display()))
                    .unwrap_or_else(|| "another process".to_owned());
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "{holder} has this store file open ({errno}); stop it, or give each edge its own `store` file"
                    ),
                )
            })?;
        std::fs::write(&pid_path, format!("{}\n", std::process::id()))?;
        let old_len = file.metadata()?.len();
        let opened = if old_len == len {
            Opened::Existing
        } else {
            file.set_len(0)?;
            nix::fcntl::posix_fallocate(&*file, 0, len as i64).map_err(std::io::Error::from)?;
            Opened::Fresh { old_len }
        };
        let raw = MmapOptions::new().len(len as usize).map_raw(&*file)?;
        Ok((Self { raw, file, len }, opened))
    }

    /// Copies `bytes` into the map at `offset`.
    ///
    /// # Safety
    /// For as long as the copy runs, no other thread may read or write any byte of
    /// `offset..offset + bytes.len()`: the caller owns the range (a reserved record, a claimed
    /// region's header, or a record's state word under the index lock, which readers of bodies
    /// never look at).
    pub unsafe fn write(&self, offset: u64, bytes: &[u8]) {
        assert!(
            offset + bytes.len() as u64 <= self.len,
            "store write out of bounds"
        );
        // SAFETY: the range is inside the mapping (checked above), which lives as long as
        // `self`; exclusive use of the range is the caller's obligation.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.raw.as_mut_ptr().add(offset as usize),
                bytes.len(),
            );
        }
    }

    /// Writes a whole record at `at` in the crash-safe order: a RESERVED header, key, meta and
    /// body, then the length, sequence and checksum, and only then the COMMITTED state. A crash
    /// at any point leaves either a record recovery skips or a complete one.
    ///
    /// Panics if the parts do not fit in `place.total` bytes (so a wrong total can never spill
    /// into the next record).
    ///
    /// # Safety
    /// The caller owns `at..at + place.total` alone (see [`Map::write`]).
    pub unsafe fn write_record(
        &self,
        at: u64,
        place: RecordPlace,
        key: &[u8],
        meta: &[u8],
        body: &[&[u8]],
    ) {
        let body_len: u64 = body.iter().map(|b| b.len() as u64).sum();
        assert!(
            RecordHeader::total_for(key.len() as u64, meta.len() as u64, body_len) <= place.total,
            "store record larger than its reservation"
        );
        let mut header = RecordHeader {
            state: RecordState::Reserved,
            key_len: key.len() as u32,
            epoch: place.epoch,
            total: place.total,
            meta_len: meta.len() as u32,
            body_len: 0,
            seq: 0,
            checksum: 0,
        };
        // SAFETY (all writes below): the range is the caller's alone, and the parts fit in it.
        unsafe { self.write(at, &header.encode()) };
        let mut offset = at + RECORD_HEADER;
        let mut hasher = PayloadHasher::default();
        for part in [key, meta].into_iter().chain(body.iter().copied()) {
            unsafe { self.write(offset, part) };
            hasher.update(part);
            offset += part.len() as u64;
        }
        header.body_len = body_len;
        header.seq = place.seq;
        header.checksum = hasher.finish(body_len, place.seq);
        unsafe { self.write(at, &header.encode()) };
        // Everything above must be in the map before the state says the record is complete.
        fence(Ordering::Release);
        unsafe { self.set_state(at, RecordState::Committed) };
    }

    /// Rewrites the state word of the record at `at` (to commit it, or to mark it dead).
    ///
    /// # Safety
    /// Nobody else writes this record's header meanwhile: the caller is its writer (still
    /// holding its reservation or its region's claim), or holds the index lock once the record
    /// is indexed.
    pub unsafe fn set_state(&self, at: u64, state: RecordState) {
        // SAFETY: the state word is only read by recovery (before the map is shared); writing
        // it is the caller's alone.
        unsafe { self.write(at + STATE_AT, &state.bytes()) };
    }

    /// Writes the header of the region at `at`.
    ///
    /// # Safety
    /// The region is the caller's alone: claimed, no key indexed in it and no pin left.
    pub unsafe fn write_region_header(&self, at: u64, header: RegionHeader) {
        // SAFETY: the caller owns the region.
        unsafe { self.write(at, &header.encode()) };
    }

    /// Borrows `len` bytes of the map at `offset`.
    ///
    /// # Safety
    /// No byte of the range may be written while the borrow lives: the caller reads a
    /// committed record's body whose region cannot be reset meanwhile (pinned, or claimed by
    /// the caller itself).
    pub unsafe fn slice(&self, offset: u64, len: u64) -> &[u8] {
        assert!(offset + len <= self.len, "store read out of bounds");
        // SAFETY: the range is inside the mapping, which outlives the borrow of `self`; that
        // nobody writes it meanwhile is the caller's obligation.
        unsafe { std::slice::from_raw_parts(self.raw.as_ptr().add(offset as usize), len as usize) }
    }

    /// Borrows `len` bytes at `offset` while nobody else can touch the map at all (recovery,
    /// before the store is shared): `&mut self` is the proof within this process, and the
    /// exclusive lock on the file taken by [`Map::open`] keeps other processes out.
    pub fn slice_exclusive(&mut self, offset: u64, len: u64) -> &[u8] {
        // SAFETY: `&mut self` excludes every other access through this map, and the store
        // hands out no body before it is shared.
        unsafe { self.slice(offset, len) }
    }

    /// A body that reads the map directly, without a copy, and keeps `guard` (which holds the
    /// region's pin) until its last clone is dropped.
    ///
    /// # Safety
    /// The range must hold a committed record's body that is not written until `guard` is
    /// dropped (the guard's pin keeps its region from being reset).
    pub unsafe fn body<G: Send + 'static>(
        self: &Arc<Self>,
        offset: u64,
        len: u64,
        guard: G,
    ) -> Bytes {
        assert!(offset + len <= self.len, "store read out of bounds");
        Bytes::from_owner(MappedBody {
            map: self.clone(),
            offset,
            len,
            _guard: guard,
        })
    }

    /// Where a body handed out by this map starts in it (`None` for bytes from elsewhere).
    pub fn offset_of(&self, body: &Bytes) -> Option<u64> {
        let base = self.raw.as_ptr() as usize;
        let at = (body.as_ptr() as usize).checked_sub(base)?;
        (at + body.len() <= self.len as usize).then_some(at as u64)
    }

    /// Asks the kernel to read a body's pages ahead (`MADV_WILLNEED`). Cheap: it only queues
    /// I/O.
    pub fn will_need(&self, body: &Bytes) {
        if let Some(offset) = self.offset_of(body) {
            let _ = self
                .raw
                .advise_range(memmap2::Advice::WillNeed, offset as usize, body.len());
        }
    }

    /// True when every page of a body is in memory (`mincore`), so that copying it to a socket
    /// cannot stop on disk I/O. About a microsecond for a 1 MiB body.
    pub fn is_resident(&self, body: &Bytes) -> bool {
        let Some(offset) = self.offset_of(body) else {
            return true;
        };
        let page = 4096usize;
        let start = (self.raw.as_ptr() as usize + offset as usize) & !(page - 1);
        let end = self.raw.as_ptr() as usize + offset as usize + body.len();
        let pages = (end - start).div_ceil(page);
        let mut vec = vec![0u8; pages];
        // SAFETY: [start, end) lies inside our mapping (offset_of checked the bounds) and start
        // is page-aligned as mincore requires; `vec` has one byte per page of the range.
        let rc =
            unsafe { libc::mincore(start as *mut libc::c_void, end - start, vec.as_mut_ptr()) };
        rc == 0 && vec.iter().all(|v| v & 1 == 1)
    }

    /// For benchmarks: writes a body's pages back and drops them from the mapping and the page
    /// cache, so the next read faults them in from the file.
    pub fn drop_pages(&self, body: &Bytes) {
        let Some(offset) = self.offset_of(body) else {
            return;
        };
        let (offset, len) = (offset as usize, body.len());
        let _ = self.raw.flush_range(offset, len);
        // SAFETY: MADV_DONTNEED on a shared file mapping only drops this process's page table
        // entries; the bytes stay in the file (dirty pages were flushed just above, and the
        // kernel keeps dirty state on the page cache anyway), and the next access faults the
        // same contents back in. No reference into the range changes meaning.
        let _ = unsafe {
            self.raw
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
        };
        let _ = nix::fcntl::posix_fadvise(
            &*self.file,
            offset as i64,
            len as i64,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        );
    }

    /// Flushes the map to the file (on clean shutdown; a crash relies on the page cache).
    pub fn flush(&self) -> std::io::Result<()> {
        self.raw.flush()
    }
}

/// A body in the map, kept readable by its guard.
struct MappedBody<G> {
    map: Arc<Map>,
    offset: u64,
    len: u64,
    _guard: G,
}

impl<G> AsRef<[u8]> for MappedBody<G> {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `Map::body`'s caller promised the range is not written while the guard,
        // which lives as long as `self`, is held.
        unsafe { self.map.slice(self.offset, self.len) }
    }
}
