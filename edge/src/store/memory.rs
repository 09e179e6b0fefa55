//! Hot bodies held in memory, so that a hit on one is answered on the async worker that got the
//! request: no `pread`, no trip to the blocking pool (on a busy edge the handoff to a blocking
//! thread and back cost more than the read), and no copy but the kernel's into the socket.
//!
//! Bounded in bytes (`memory_cache`); what stays is moka's choice (TinyLFU admission over LRU),
//! so a scan of cold objects does not push the hot ones out. Only bodies small enough to be read
//! whole at lookup are held.
//!
//! **Never a wrong answer.** A held body is the content of one record (`seq`), and a record's
//! content never changes, so a held body is served only when the index still has that key at
//! that `seq`: a removed, purged or replaced object misses here as it misses in the index, and
//! its held copy is dropped then or ages out. The meta served is the index's fresh meta when a
//! revalidation set one, as for a read from the file.

use std::sync::Arc;

use bytes::Bytes;
use server_kit::zero_copy::SealedFile;

/// Held bodies from `ZERO_COPY_MIN` up to (not including) `zero_copy_below` bytes (the edge's
/// config, `ZERO_COPY_BELOW` by default) get a sealed copy too, sent with `sendfile` on plain
/// HTTP/1 connections (`server_kit::zero_copy`). The bounds come from `benches/hits/zero-copy.sh`
/// (`benches/results/zero-copy.md`), whose smallest size is 64 KiB (smaller bodies are not sent
/// this way: a second system call for a few pages was not measured to pay); from 64 to 120 KiB sendfile cost 0.83-0.91x the CPU of the copy; above,
/// it was erratic on this machine's loopback (0.56x at 160 KiB and 0.89x at 512 KiB, but 1.5x,
/// 2.0x and 2.1x at 128 KiB, 256 KiB and 1 MiB, where the kernel hands spliced pages over 64 KiB
/// at a time and wakes the reader for each batch). The default keeps to where it always paid.
pub const ZERO_COPY_MIN: u64 = 64 * 1024;
pub const ZERO_COPY_BELOW: u64 = 128 * 1024;

/// One record's content, as the store read and checked it.
pub(super) struct Held<M> {
    pub seq: u64,
    pub key: Box<str>,
    pub meta: Arc<M>,
    pub body: Bytes,
    /// For bodies in the zero-copy sizes, where their sealed copy goes, made when a response
    /// that can use it first sends the body (a body only sent over TLS or HTTP/2 never gets
    /// one). The budget counts such a body twice from the start, copy made or not: what it
    /// holds can never be more than the budget.
    pub sealed: Option<SealCell>,
}

/// Where a held body's sealed copy is made, once.
pub type SealCell = Arc<std::sync::OnceLock<Arc<SealedFile>>>;

/// The sealed copy of `body` in `cell`, made now if it was not yet. A copy that could not be
/// made (out of file descriptors or memory) is tried again at the next call; meanwhile the body
/// is copied into sockets.
pub fn sealed(cell: &SealCell, body: &Bytes) -> Option<Arc<SealedFile>> {
    if let Some(sealed) = cell.get() {
        return Some(sealed.clone());
    }
    match SealedFile::new(body) {
        // Two responses may make one at once: the first set is kept, the other dropped.
        Ok(sealed) => Some(cell.get_or_init(|| Arc::new(sealed)).clone()),
        Err(error) => {
            tracing::debug!(%error, "a held body without a sealed copy");
            None
        }
    }
}

/// The bytes an entry is counted for beside its body and key (the entry, its `Arc`s, moka's
/// own bookkeeping), so that a budget of many tiny objects is not overrun.
const OVERHEAD: u64 = 256;

/// The held bodies (none when the budget is 0).
pub(super) struct Memory<M> {
    cache: Option<moka::sync::Cache<u64, Arc<Held<M>>>>,
    max_body: u64,
    zero_copy_below: u64,
}

impl<M: Send + Sync + 'static> Memory<M> {
    /// Holds bodies of at most `max_body` bytes, `budget` bytes in all; those from
    /// `ZERO_COPY_MIN` up to `zero_copy_below` bytes with a cell for a sealed copy.
    pub fn new(budget: u64, max_body: u64, zero_copy_below: u64) -> Self {
        let cache = (budget > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(budget)
                .weigher(|_, held: &Arc<Held<M>>| {
                    // A body that may get a sealed copy is counted twice from the start.
                    let body = held.body.len() as u64 * if held.sealed.is_some() { 2 } else { 1 };
                    let weight = body + held.key.len() as u64 + OVERHEAD;
                    u32::try_from(weight).unwrap_or(u32::MAX)
                })
                .build()
        });
        Self {
            cache,
            max_body,
            zero_copy_below,
        }
    }

    /// The held content of record `seq` of `key` (hash `hash`), if this is it.
    pub fn get(&self, hash: u64, seq: u64, key: &str) -> Option<Arc<Held<M>>> {
        let held = self.cache.as_ref()?.get(&hash)?;
        if held.seq != seq {
            // Another content of this key (or another key of this hash) replaced it.
            self.forget(hash);
            return None;
        }
        (&*held.key == key).then_some(held)
    }

    /// Offers a record just read and checked.
    pub fn offer(&self, hash: u64, mut held: Held<M>) {
        if let Some(cache) = &self.cache
            && held.body.len() as u64 <= self.max_body
        {
            if (ZERO_COPY_MIN..self.zero_copy_below).contains(&(held.body.len() as u64)) {
                held.sealed = Some(SealCell::default());
            }
            cache.insert(hash, Arc::new(held));
        }
    }

    /// Drops what is held for `hash`.
    pub fn forget(&self, hash: u64) {
        if let Some(cache) = &self.cache {
            cache.invalidate(&hash);
        }
    }

    /// Bytes held, as the budget counts them.
    pub fn bytes(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            // moka counts inserts and evictions lazily: brought up to date first.
            c.run_pending_tasks();
            c.weighted_size()
        })
    }
}
