//! One circular log of the store file: where its head (oldest entry) and tail (next write) are,
//! and which of its ranges are being written. Pure bookkeeping; the I/O is the caller's.
//!
//! The log is always a chain of entries from its start to its end: records from the head to
//! the tail, one FREE entry from the tail to the head (or to the log's end), and evicted
//! records that still parse where the tail has not come round yet. Recovery walks that chain.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A log's bookkeeping, behind its own lock (writers of one log take their turns).
#[derive(Debug)]
pub(super) struct Log {
    /// The log's absolute offset in the file, and its length.
    pub start: u64,
    pub len: u64,
    /// Offsets from `start`.
    pub head: u64,
    pub tail: u64,
    /// Bytes from the head to the tail, going round.
    pub used: u64,
    /// Ranges reserved and still being written (offset from `start`, length, and a flag the
    /// head raises when it reaches one: its writer gives it up at its next write). Eviction
    /// stops before them.
    pub writing: Vec<(u64, u64, Arc<AtomicBool>)>,
}

impl Log {
    pub fn new(start: u64, len: u64) -> Self {
        Self {
            start,
            len,
            head: 0,
            tail: 0,
            used: 0,
            writing: Vec::new(),
        }
    }

    /// Contiguous room at the tail, before the head or the log's end.
    pub fn room_at_tail(&self) -> u64 {
        if self.used >= self.len {
            0
        } else if self.tail < self.head {
            self.head - self.tail
        } else {
            self.len - self.tail
        }
    }

    /// True when the room at the tail runs to the log's end (the live entries do not wrap), so
    /// that a record that does not fit there needs the tail to go round to the start.
    pub fn room_runs_to_end(&self) -> bool {
        self.used < self.len && self.tail >= self.head
    }

    /// Takes `total` bytes at the tail (the caller checked `room_at_tail`); returns their
    /// offset from `start`.
    pub fn take(&mut self, total: u64) -> u64 {
        let at = self.tail;
        self.tail += total;
        self.used += total;
        if self.tail == self.len {
            self.tail = 0;
        }
        at
    }

    /// Gives back the `total` bytes just taken at `at` (their write failed).
    pub fn untake(&mut self, at: u64, total: u64) {
        self.tail = at;
        self.used -= total;
    }

    /// Marks the room from the tail to the log's end as used (a PAD entry is written there) and
    /// moves the tail to the start. Returns the padding's offset and length.
    pub fn wrap(&mut self) -> (u64, u64) {
        let pad = (self.tail, self.len - self.tail);
        if self.used == 0 {
            self.head = 0;
        } else {
            self.used += pad.1;
        }
        self.tail = 0;
        pad
    }

    /// Lets go of the `total` bytes at the head.
    pub fn release_head(&mut self, total: u64) {
        self.head += total;
        self.used = self.used.saturating_sub(total);
        if self.head >= self.len {
            self.head = 0;
        }
        if self.used == 0 {
            self.head = self.tail;
        }
    }

    /// The FREE entry to write after a reservation: from the tail to the head, or to the end
    /// (offset from `start`, length), if there is room.
    pub fn free_entry(&self) -> Option<(u64, u64)> {
        let room = self.room_at_tail();
        (room > 0).then_some((self.tail, room))
    }

    /// True when `total` bytes at `at` lie between the head and the tail (in use).
    pub fn holds(&self, at: u64, total: u64) -> bool {
        let end = at + total;
        if self.used >= self.len {
            true
        } else if self.used == 0 {
            false
        } else if self.head < self.tail {
            self.head <= at && end <= self.tail
        } else {
            at >= self.head || end <= self.tail
        }
    }

    pub fn is_being_written(&self, at: u64) -> bool {
        self.writing.iter().any(|(offset, _, _)| *offset == at)
    }

    /// Asks the writer of the record at `at` to give it up (the head needs its room).
    pub fn want_back(&self, at: u64) {
        for (offset, _, wanted) in &self.writing {
            if *offset == at {
                wanted.store(true, Ordering::SeqCst);
            }
        }
    }

    pub fn done_writing(&mut self, at: u64) {
        self.writing.retain(|(offset, _, _)| *offset != at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_wraps_and_the_head_follows() {
        let mut log = Log::new(0, 1000);
        assert_eq!(log.room_at_tail(), 1000);
        assert_eq!(log.take(400), 0);
        assert_eq!(log.take(400), 400);
        assert_eq!(log.free_entry(), Some((800, 200)));
        assert!(log.room_runs_to_end());
        assert_eq!(log.wrap(), (800, 200));
        assert_eq!((log.used, log.room_at_tail()), (1000, 0));
        log.release_head(400);
        assert_eq!((log.head, log.room_at_tail()), (400, 400));
        assert_eq!(log.take(300), 0);
        assert_eq!(log.free_entry(), Some((300, 100)));
        log.release_head(400);
        log.release_head(200);
        assert_eq!((log.head, log.used), (0, 300));
        log.release_head(300);
        assert_eq!((log.used, log.head, log.tail), (0, 300, 300));
    }
}
