//! The store file's on-disk format, and only that: region headers and record headers as types
//! with `encode`/`decode`, the record checksum, and the sizes everything is aligned to. Nothing
//! else in the store knows a byte offset inside a header.
//!
//! ```text
//! region = header (64 B) | record | record | ...
//! region header = magic "MRDNREG1" u64 | epoch u64 | xxh3(magic, epoch) u64 | 0 ...
//! record = header (64 B) | key | meta | body | padding to 64 B
//! record header = state u32 | key_len u32 | epoch u64 | total_len u64 | meta_len u32 | 0 u32
//!               | body_len u64 | seq u64 | checksum u64 | header_check u64
//! ```
//!
//! All integers are little-endian. `header_check` is xxh3 over bytes 4..32 (`key_len` to the
//! zero word after `meta_len`), the part written first; `checksum` is xxh3 over key, meta, body,
//! `body_len` and `seq`, written last, just before the state turns from RESERVED to COMMITTED.
//! A golden-bytes test below pins the layout: files written by older builds must still recover.

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// Size of a region header, and of a record header.
pub const REGION_HEADER: u64 = 64;
pub const RECORD_HEADER: u64 = 64;
/// Records start and end on this boundary.
pub const ALIGN: u64 = 64;
/// Where a record's state word is, from the record's start (it is rewritten in place to commit
/// or kill a record).
pub const STATE_AT: u64 = 0;

const REGION_MAGIC: u64 = u64::from_le_bytes(*b"MRDNREG1");

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// Being written (or half-written at a crash): skipped by recovery.
    Reserved,
    /// Complete and checksummed.
    Committed,
    /// Purged or replaced.
    Dead,
}

impl RecordState {
    pub fn bytes(self) -> [u8; 4] {
        match self {
            RecordState::Reserved => *b"MRRV",
            RecordState::Committed => *b"MRCM",
            RecordState::Dead => *b"MRDD",
        }
    }

    fn from_bytes(bytes: [u8; 4]) -> Option<Self> {
        [Self::Reserved, Self::Committed, Self::Dead]
            .into_iter()
            .find(|s| s.bytes() == bytes)
    }
}

/// Where a record goes and what it carries besides its parts: what the writer is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPlace {
    /// The epoch of the region it is written into.
    pub epoch: u64,
    /// The record's whole length, header and padding included.
    pub total: u64,
    pub seq: u64,
}

/// A record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub state: RecordState,
    pub key_len: u32,
    /// The epoch of the region when the record was written; older ones are ignored.
    pub epoch: u64,
    /// The record's whole length, header and padding included.
    pub total: u64,
    pub meta_len: u32,
    pub body_len: u64,
    /// Write order across the store: the newest record of a key wins at recovery.
    pub seq: u64,
    pub checksum: u64,
}

impl RecordHeader {
    /// The aligned length of a record with these parts.
    pub fn total_for(key_len: u64, meta_len: u64, body_len: u64) -> u64 {
        align(RECORD_HEADER + key_len + meta_len + body_len)
    }

    /// Where the body starts, from the record's start.
    pub fn body_start(&self) -> u64 {
        body_offset(u64::from(self.key_len), u64::from(self.meta_len))
    }

    pub fn encode(&self) -> [u8; RECORD_HEADER as usize] {
        let mut h = [0u8; RECORD_HEADER as usize];
        let state = STATE_AT as usize;
        h[state..state + 4].copy_from_slice(&self.state.bytes());
        h[4..8].copy_from_slice(&self.key_len.to_le_bytes());
        h[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        h[16..24].copy_from_slice(&self.total.to_le_bytes());
        h[24..28].copy_from_slice(&self.meta_len.to_le_bytes());
        h[32..40].copy_from_slice(&self.body_len.to_le_bytes());
        h[40..48].copy_from_slice(&self.seq.to_le_bytes());
        h[48..56].copy_from_slice(&self.checksum.to_le_bytes());
        let check = xxh3_64(&h[4..32]);
        h[56..64].copy_from_slice(&check.to_le_bytes());
        h
    }

    /// Reads a header; `None` when the bytes are no record header (not one of the states, or
    /// a fixed part that fails its check). The tail (`body_len`, `seq`, `checksum`) is only
    /// meaningful for a committed record.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let h: &[u8; RECORD_HEADER as usize] =
            bytes.get(..RECORD_HEADER as usize)?.try_into().ok()?;
        let state = RecordState::from_bytes(word(h, STATE_AT as usize))?;
        if u64_at(h, 56) != xxh3_64(&h[4..32]) {
            return None;
        }
        Some(Self {
            state,
            key_len: u32::from_le_bytes(word(h, 4)),
            epoch: u64_at(h, 8),
            total: u64_at(h, 16),
            meta_len: u32::from_le_bytes(word(h, 24)),
            body_len: u64_at(h, 32),
            seq: u64_at(h, 40),
            checksum: u64_at(h, 48),
        })
    }
}

/// The checksum of a record's payload, fed its parts in order (key, meta, body chunks).
#[derive(Default)]
pub struct PayloadHasher(Xxh3);

impl PayloadHasher {
    pub fn update(&mut self, part: &[u8]) {
        self.0.update(part);
    }

    /// The checksum, which also covers the body length and the sequence number.
    pub fn finish(mut self, body_len: u64, seq: u64) -> u64 {
        self.0.update(&body_len.to_le_bytes());
        self.0.update(&seq.to_le_bytes());
        self.0.digest()
    }
}

/// A region's header: which epoch its records must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionHeader {
    pub epoch: u64,
}

impl RegionHeader {
    pub fn encode(&self) -> [u8; REGION_HEADER as usize] {
        let mut h = [0u8; REGION_HEADER as usize];
        h[0..8].copy_from_slice(&REGION_MAGIC.to_le_bytes());
        h[8..16].copy_from_slice(&self.epoch.to_le_bytes());
        let check = xxh3_64(&h[0..16]);
        h[16..24].copy_from_slice(&check.to_le_bytes());
        h
    }

    /// `None` for a region never used (or unreadable), which is then free.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let h = bytes.get(..REGION_HEADER as usize)?;
        if u64_at(h, 0) != REGION_MAGIC || u64_at(h, 16) != xxh3_64(&h[0..16]) {
            return None;
        }
        Some(Self {
            epoch: u64_at(h, 8),
        })
    }
}

/// Where a record's body starts, from the record's start, for a key and meta of these lengths.
pub fn body_offset(key_len: u64, meta_len: u64) -> u64 {
    RECORD_HEADER + key_len + meta_len
}

pub fn align(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

fn word(h: &[u8], at: usize) -> [u8; 4] {
    let mut b = [0u8; 4];
    b.copy_from_slice(&h[at..at + 4]);
    b
}

fn u64_at(h: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> RecordHeader {
        RecordHeader {
            state: RecordState::Committed,
            key_len: 5,
            epoch: 7,
            total: 4096,
            meta_len: 40,
            body_len: 3000,
            seq: 99,
            checksum: 0xdead_beef,
        }
    }

    #[test]
    fn headers_round_trip_and_the_fixed_part_is_checked() {
        let h = header();
        assert_eq!(RecordHeader::decode(&h.encode()), Some(h));
        let mut bytes = h.encode();
        bytes[STATE_AT as usize..4].copy_from_slice(&RecordState::Dead.bytes());
        assert_eq!(
            RecordHeader::decode(&bytes).map(|h| h.state),
            Some(RecordState::Dead),
            "the state word is rewritten in place, outside the check"
        );
        bytes[9] ^= 1;
        assert_eq!(RecordHeader::decode(&bytes), None, "a flipped epoch bit");
        assert_eq!(
            RecordHeader::decode(&[0u8; 64]),
            None,
            "zeroes are no record"
        );
        let r = RegionHeader { epoch: 3 };
        assert_eq!(RegionHeader::decode(&r.encode()), Some(r));
        assert_eq!(RegionHeader::decode(&[0u8; 64]), None);
        assert_eq!(header().body_start(), 64 + 5 + 40);
        assert_eq!(
            RecordHeader::total_for(5, 40, 3000),
            align(64 + 5 + 40 + 3000)
        );
    }

    /// The bytes older builds wrote, pinned: a change here would make every existing store
    /// file start empty (or worse, misread).
    #[test]
    fn the_layout_is_the_one_on_disk() {
        let h = header().encode();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"MRCM");
        expected.extend_from_slice(&5u32.to_le_bytes());
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(&4096u64.to_le_bytes());
        expected.extend_from_slice(&40u32.to_le_bytes());
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(&3000u64.to_le_bytes());
        expected.extend_from_slice(&99u64.to_le_bytes());
        expected.extend_from_slice(&0xdead_beefu64.to_le_bytes());
        expected.extend_from_slice(&xxh3_64(&expected[4..32]).to_le_bytes());
        assert_eq!(&h[..], &expected[..]);
        let r = RegionHeader { epoch: 3 }.encode();
        assert_eq!(&r[0..8], b"MRDNREG1");
        assert_eq!(&r[8..16], &3u64.to_le_bytes());
        assert_eq!(&r[16..24], &xxh3_64(&r[0..16]).to_le_bytes());
        assert!(r[24..].iter().all(|&b| b == 0));
        let mut p = PayloadHasher::default();
        p.update(b"key");
        p.update(b"meta");
        p.update(b"body");
        let mut whole = Xxh3::new();
        whole.update(b"keymetabody");
        whole.update(&4u64.to_le_bytes());
        whole.update(&9u64.to_le_bytes());
        assert_eq!(p.finish(4, 9), whole.digest());
    }

    proptest! {
        /// No input makes decoding panic; a valid header with any field values and state
        /// decodes to itself.
        #[test]
        fn decoding_never_panics_and_headers_round_trip(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
            key_len in any::<u32>(), epoch in any::<u64>(), total in any::<u64>(),
            meta_len in any::<u32>(), body_len in any::<u64>(), seq in any::<u64>(),
            checksum in any::<u64>(), state in 0..3usize,
        ) {
            let _ = RecordHeader::decode(&bytes);
            let _ = RegionHeader::decode(&bytes);
            let state = [RecordState::Reserved, RecordState::Committed, RecordState::Dead][state];
            let h = RecordHeader { state, key_len, epoch, total, meta_len, body_len, seq, checksum };
            prop_assert_eq!(RecordHeader::decode(&h.encode()), Some(h));
        }
    }
}
