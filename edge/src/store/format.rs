//! The store file's on-disk format, and only that: the superblock, record headers as types with
//! `encode`/`decode`, the record checksum, and the sizes everything is aligned to. Nothing else
//! in the store knows a byte offset inside a header.
//!
//! ```text
//! file      = superblock (4 KiB) | small log | main log
//! log       = a chain of entries from its start to its end, each `total` bytes long:
//!             records, one FREE entry (the room between the tail and the head), PAD at the end
//! record    = header (128 B) | key | meta | body | padding to 128 B
//! header    = state [4] | key_len u32 | total u64 | written u64 | key_hash u64 | seq u64
//!           | meta_len u32 | 0 u32 | body_len u64 | checksum u64 | family u64 | 0 ...
//!           | header_check u64
//! superblock = magic "MRDNLOG2" | capacity u64 | small_len u64 | main_len u64 | salt u64 | 0 ...
//!            | check u64
//! ```
//!
//! All integers are little-endian. `header_check` is xxh3 over bytes 4..120 (everything but the
//! state word, which is rewritten in place to commit or kill a record), seeded with the file's
//! random salt, so that bytes an origin sent can never pass for a header; `checksum` is xxh3 over
//! key, meta, body, `body_len` and `seq`. `written` orders writes across the whole store (the
//! log's order: recovery finds each log's head where it drops); `seq` names the content, and a
//! copy moved by eviction keeps it, so the newest content of a key wins at recovery. The golden
//! bytes test below pins the layout.

use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_64_with_seed};

/// Size of a record header, and of the superblock.
pub const RECORD_HEADER: u64 = 128;
pub const SUPERBLOCK: u64 = 4096;
/// Entries start and end on this boundary, so the room left anywhere holds a header.
pub const ALIGN: u64 = 128;

const MAGIC: &[u8; 8] = b"MRDNLOG2";

/// What an entry of a log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// Being written (or half-written at a crash): never indexed at recovery.
    Reserved,
    /// Complete and checksummed.
    Committed,
    /// Purged or replaced.
    Dead,
    /// The room between a log's tail and its head, or unused space at a log's end.
    Free,
}

impl RecordState {
    pub fn bytes(self) -> [u8; 4] {
        match self {
            RecordState::Reserved => *b"MRRV",
            RecordState::Committed => *b"MRCM",
            RecordState::Dead => *b"MRDD",
            RecordState::Free => *b"MRFR",
        }
    }

    fn from_bytes(bytes: [u8; 4]) -> Option<Self> {
        [Self::Reserved, Self::Committed, Self::Dead, Self::Free]
            .into_iter()
            .find(|s| s.bytes() == bytes)
    }
}

/// A log entry's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub state: RecordState,
    pub key_len: u32,
    /// The entry's whole length, header and padding included.
    pub total: u64,
    /// Write order across the store (0 for FREE entries).
    pub written: u64,
    pub key_hash: u64,
    /// The content's sequence number: kept when eviction moves a record.
    pub seq: u64,
    pub meta_len: u32,
    pub body_len: u64,
    pub checksum: u64,
    /// The hash of the key's part before its first NUL (its variants and slices share it), or
    /// 0 for a key without one.
    pub family: u64,
}

impl RecordHeader {
    /// A FREE entry of `total` bytes.
    pub fn free(total: u64) -> Self {
        Self {
            state: RecordState::Free,
            key_len: 0,
            total,
            written: 0,
            key_hash: 0,
            seq: 0,
            meta_len: 0,
            body_len: 0,
            checksum: 0,
            family: 0,
        }
    }

    /// The aligned length of a record with these parts.
    pub fn total_for(key_len: u64, meta_len: u64, body_len: u64) -> u64 {
        align(RECORD_HEADER + key_len + meta_len + body_len)
    }

    /// Where the body starts, from the record's start.
    pub fn body_start(&self) -> u64 {
        RECORD_HEADER + u64::from(self.key_len) + u64::from(self.meta_len)
    }

    /// True when the parts fit the entry's length.
    pub fn parts_fit(&self) -> bool {
        self.body_start()
            .checked_add(self.body_len)
            .is_some_and(|end| end <= self.total)
    }

    /// The header's bytes; `salt` is the file's (see `Superblock`).
    pub fn encode(&self, salt: u64) -> [u8; RECORD_HEADER as usize] {
        let mut h = [0u8; RECORD_HEADER as usize];
        h[0..4].copy_from_slice(&self.state.bytes());
        h[4..8].copy_from_slice(&self.key_len.to_le_bytes());
        h[8..16].copy_from_slice(&self.total.to_le_bytes());
        h[16..24].copy_from_slice(&self.written.to_le_bytes());
        h[24..32].copy_from_slice(&self.key_hash.to_le_bytes());
        h[32..40].copy_from_slice(&self.seq.to_le_bytes());
        h[40..44].copy_from_slice(&self.meta_len.to_le_bytes());
        h[48..56].copy_from_slice(&self.body_len.to_le_bytes());
        h[56..64].copy_from_slice(&self.checksum.to_le_bytes());
        h[64..72].copy_from_slice(&self.family.to_le_bytes());
        let check = xxh3_64_with_seed(&h[4..120], salt);
        h[120..128].copy_from_slice(&check.to_le_bytes());
        h
    }

    /// Reads a header; `None` when the bytes are no entry header (not one of the states, or
    /// a part that fails its check, or a length that is not whole entries).
    pub fn decode(bytes: &[u8], salt: u64) -> Option<Self> {
        let h: &[u8; RECORD_HEADER as usize] =
            bytes.get(..RECORD_HEADER as usize)?.try_into().ok()?;
        let state = RecordState::from_bytes(word(h, 0))?;
        if u64_at(h, 120) != xxh3_64_with_seed(&h[4..120], salt) {
            return None;
        }
        let header = Self {
            state,
            key_len: u32::from_le_bytes(word(h, 4)),
            total: u64_at(h, 8),
            written: u64_at(h, 16),
            key_hash: u64_at(h, 24),
            seq: u64_at(h, 32),
            meta_len: u32::from_le_bytes(word(h, 40)),
            body_len: u64_at(h, 48),
            checksum: u64_at(h, 56),
            family: u64_at(h, 64),
        };
        (header.total >= RECORD_HEADER && header.total.is_multiple_of(ALIGN)).then_some(header)
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

/// The file's first block: its size and how it is cut into the two logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub capacity: u64,
    pub small_len: u64,
    pub main_len: u64,
    /// Chosen at random when the file is formatted; seeds every header check.
    pub salt: u64,
}

impl Superblock {
    /// The layout for a file of `capacity` bytes: a tenth of the logs' room for the small
    /// (probation) log, the rest for the main log.
    pub fn for_capacity(capacity: u64) -> Self {
        let room = capacity.saturating_sub(SUPERBLOCK) / ALIGN * ALIGN;
        let small_len = (room / 10) / ALIGN * ALIGN;
        Self {
            capacity,
            small_len,
            main_len: room - small_len,
            salt: 0,
        }
    }

    /// True when `other` cuts the file the same way (whatever its salt).
    pub fn same_layout(&self, other: &Self) -> bool {
        (self.capacity, self.small_len, self.main_len)
            == (other.capacity, other.small_len, other.main_len)
    }

    pub fn small_start(&self) -> u64 {
        SUPERBLOCK
    }

    pub fn main_start(&self) -> u64 {
        SUPERBLOCK + self.small_len
    }

    pub fn encode(&self) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[0..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&self.capacity.to_le_bytes());
        h[16..24].copy_from_slice(&self.small_len.to_le_bytes());
        h[24..32].copy_from_slice(&self.main_len.to_le_bytes());
        h[32..40].copy_from_slice(&self.salt.to_le_bytes());
        let check = xxh3_64(&h[0..56]);
        h[56..64].copy_from_slice(&check.to_le_bytes());
        h
    }

    /// `None` for a file that is not a store of this format.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let h = bytes.get(..64)?;
        if &h[0..8] != MAGIC || u64_at(h, 56) != xxh3_64(&h[0..56]) {
            return None;
        }
        Some(Self {
            capacity: u64_at(h, 8),
            small_len: u64_at(h, 16),
            main_len: u64_at(h, 24),
            salt: u64_at(h, 32),
        })
    }
}

/// A new file's salt: random (from the kernel), else from the clock and the process.
pub fn fresh_salt() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        bytes = xxh3_64(
            &[now, u64::from(std::process::id())]
                .map(u64::to_le_bytes)
                .concat(),
        )
        .to_le_bytes();
    }
    u64::from_le_bytes(bytes)
}

/// The hash a key is indexed by (the full key is in the record and compared on every lookup).
pub fn key_hash(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// The family hash of a key with a NUL (its part before it), or 0.
pub fn family_hash(key: &str) -> u64 {
    key.split_once('\0')
        .map_or(0, |(base, _)| key_hash(base).max(1))
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

    const SALT: u64 = 0x5eed;

    fn header() -> RecordHeader {
        RecordHeader {
            state: RecordState::Committed,
            key_len: 5,
            total: 4096,
            written: 12,
            key_hash: key_hash("hello"),
            seq: 99,
            meta_len: 40,
            body_len: 3000,
            checksum: 0xdead_beef,
            family: 7,
        }
    }

    #[test]
    fn headers_round_trip_and_everything_but_the_state_is_checked() {
        let h = header();
        assert_eq!(RecordHeader::decode(&h.encode(SALT), SALT), Some(h));
        let mut bytes = h.encode(SALT);
        bytes[0..4].copy_from_slice(&RecordState::Dead.bytes());
        assert_eq!(
            RecordHeader::decode(&bytes, SALT).map(|h| h.state),
            Some(RecordState::Dead),
            "the state word is rewritten in place, outside the check"
        );
        bytes[17] ^= 1;
        assert_eq!(RecordHeader::decode(&bytes, SALT), None, "a flipped bit");
        assert_eq!(
            RecordHeader::decode(&h.encode(SALT), 1),
            None,
            "another file's salt"
        );
        assert_eq!(RecordHeader::decode(&[0u8; 128], SALT), None, "zeroes");
        let odd = RecordHeader { total: 100, ..h };
        assert_eq!(
            RecordHeader::decode(&odd.encode(SALT), SALT),
            None,
            "not whole entries"
        );
        assert_eq!(h.body_start(), 128 + 5 + 40);
        assert!(h.parts_fit());
        assert!(
            !RecordHeader {
                body_len: 4000,
                ..h
            }
            .parts_fit()
        );
        assert_eq!(
            RecordHeader::total_for(5, 40, 3000),
            align(128 + 5 + 40 + 3000)
        );
        let s = Superblock {
            salt: 9,
            ..Superblock::for_capacity(64 << 20)
        };
        assert_eq!(Superblock::decode(&s.encode()), Some(s));
        assert!(s.same_layout(&Superblock::for_capacity(64 << 20)));
        assert_eq!(s.small_start() + s.small_len, s.main_start());
        assert!(s.main_start() + s.main_len <= 64 << 20);
        assert_eq!(Superblock::decode(&[0u8; 64]), None);
    }

    /// The bytes on disk, pinned: a change here makes every existing store file start empty.
    #[test]
    fn the_layout_is_the_one_on_disk() {
        let h = header().encode(SALT);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"MRCM");
        expected.extend_from_slice(&5u32.to_le_bytes());
        expected.extend_from_slice(&4096u64.to_le_bytes());
        expected.extend_from_slice(&12u64.to_le_bytes());
        expected.extend_from_slice(&key_hash("hello").to_le_bytes());
        expected.extend_from_slice(&99u64.to_le_bytes());
        expected.extend_from_slice(&40u32.to_le_bytes());
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(&3000u64.to_le_bytes());
        expected.extend_from_slice(&0xdead_beefu64.to_le_bytes());
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.resize(120, 0);
        expected.extend_from_slice(&xxh3_64_with_seed(&expected[4..120], SALT).to_le_bytes());
        assert_eq!(&h[..], &expected[..]);
        let s = Superblock {
            capacity: 1,
            small_len: 2,
            main_len: 3,
            salt: 4,
        }
        .encode();
        assert_eq!(&s[0..8], b"MRDNLOG2");
        assert_eq!(
            &s[8..40],
            &[1u64, 2, 3, 4].map(u64::to_le_bytes).concat()[..]
        );
        assert_eq!(&s[56..64], &xxh3_64(&s[0..56]).to_le_bytes());
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
            bytes in proptest::collection::vec(any::<u8>(), 0..160),
            key_len in any::<u32>(), units in 1..u64::MAX / 256, written in any::<u64>(),
            key_hash in any::<u64>(), meta_len in any::<u32>(), body_len in any::<u64>(),
            seq in any::<u64>(), checksum in any::<u64>(), family in any::<u64>(),
            state in 0..4usize,
        ) {
            let _ = RecordHeader::decode(&bytes, SALT);
            let _ = Superblock::decode(&bytes);
            let state = [RecordState::Reserved, RecordState::Committed, RecordState::Dead,
                RecordState::Free][state];
            let total = units * ALIGN;
            let h = RecordHeader {
                state, key_len, total, written, key_hash, seq, meta_len, body_len, checksum,
                family,
            };
            prop_assert_eq!(RecordHeader::decode(&h.encode(SALT), SALT), Some(h));
        }
    }
}
