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

/// One record's content, as the store read and checked it.
pub(super) struct Held<M> {
    pub seq: u64,
    pub key: Box<str>,
    pub meta: Arc<M>,
    pub body: Bytes,
}

/// The bytes an entry is counted for beside its body and key (the entry, its `Arc`s, moka's
/// own bookkeeping), so that a budget of many tiny objects is not overrun.
const OVERHEAD: u64 = 256;

/// The held bodies (none when the budget is 0).
pub(super) struct Memory<M> {
    cache: Option<moka::sync::Cache<u64, Arc<Held<M>>>>,
    max_body: u64,
}

impl<M: Send + Sync + 'static> Memory<M> {
    /// Holds bodies of at most `max_body` bytes, `budget` bytes in all.
    pub fn new(budget: u64, max_body: u64) -> Self {
        let cache = (budget > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(budget)
                .weigher(|_, held: &Arc<Held<M>>| {
                    let weight = held.body.len() as u64 + held.key.len() as u64 + OVERHEAD;
                    u32::try_from(weight).unwrap_or(u32::MAX)
                })
                .build()
        });
        Self { cache, max_body }
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
    pub fn offer(&self, hash: u64, held: Held<M>) {
        if let Some(cache) = &self.cache
            && held.body.len() as u64 <= self.max_body
        {
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
