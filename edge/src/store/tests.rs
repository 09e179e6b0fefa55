//! The store's tests: whole-store behaviour (space, policy, recovery, disk errors,
//! concurrency); the format's and the log's own tests are in their modules.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;

use super::format::{RecordState, Superblock};
use super::read::Quick;
use super::*;

#[derive(Debug, Clone, PartialEq)]
struct TestMeta(String);

impl Meta for TestMeta {
    fn encode(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok().map(TestMeta)
    }
}

const MIB: u64 = 1 << 20;

fn open_sized(dir: &Path, capacity: u64) -> Store<TestMeta> {
    Store::open(&dir.join("store"), capacity).expect("open store")
}

fn open(dir: &Path) -> Store<TestMeta> {
    open_sized(dir, 8 * MIB)
}

/// A store holding up to `memory` bytes of hot bodies in memory.
fn open_holding(dir: &Path, capacity: u64, memory: u64) -> Store<TestMeta> {
    let (store, recovery) =
        Store::open_starting_with(&dir.join("store"), capacity, memory, 0).expect("open store");
    recovery.run().expect("recover");
    store
}

/// What `Store::lookup` does, without a runtime: memory first, then the file.
fn lookup(store: &Store<TestMeta>, key: &str) -> Option<StoredObject<TestMeta>> {
    match store.get_without_reading(key) {
        Quick::Found(object) => Some(object),
        Quick::Absent => None,
        Quick::MustRead => store.get(key),
    }
}

fn held(store: &Store<TestMeta>, key: &str) -> Option<StoredObject<TestMeta>> {
    match store.get_without_reading(key) {
        Quick::Found(object) => Some(object),
        _ => None,
    }
}

fn body(n: usize, seed: u8) -> Vec<Bytes> {
    // xorshift: bodies with different seeds share no long runs.
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (seed as u64 + 1);
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    data.chunks(7000).map(Bytes::copy_from_slice).collect()
}

fn joined(chunks: &[Bytes]) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.iter().copied()).collect()
}

fn all(object: &StoredObject<TestMeta>) -> Vec<u8> {
    object
        .body
        .read(0, object.body.len())
        .expect("body")
        .to_vec()
}

fn meta(text: &str) -> TestMeta {
    TestMeta(text.to_owned())
}

#[test]
fn stores_and_reads_back_whole_and_chunked_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let small = body(100_000, 1);
    let large = body(3 * MIB as usize + 5, 2);
    store.insert("k", &meta("m"), &small, true).unwrap();
    store.insert("big", &meta("b"), &large, true).unwrap();
    let hit = store.get("k").unwrap();
    assert_eq!(hit.meta.0, "m");
    assert!(hit.body.whole().is_some());
    assert_eq!(all(&hit), joined(&small));
    let big = store.get("big").unwrap();
    assert!(big.body.whole().is_none(), "read chunk by chunk");
    assert_eq!(all(&big), joined(&large));
    assert_eq!(
        &big.body.read(MIB + 3, 10).unwrap()[..],
        &joined(&large)[(MIB + 3) as usize..(MIB + 13) as usize]
    );
    assert!(store.get("other").is_none());
    assert_eq!(
        std::fs::metadata(dir.path().join("store")).unwrap().len(),
        8 * MIB
    );
}

#[test]
fn a_64_mib_store_stores_and_serves_a_16_mib_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sized(dir.path(), 64 * MIB);
    let b = body(16 * MIB as usize, 3);
    store.insert("seg", &meta("m"), &b, true).unwrap();
    // Room is taken back object by object: more of them pass through, the newest stays.
    for i in 0..6 {
        store
            .insert(
                &format!("seg{i}"),
                &meta("m"),
                &body(16 * MIB as usize, i),
                true,
            )
            .unwrap();
    }
    let last = store.get("seg5").expect("the newest fits");
    assert_eq!(all(&last), joined(&body(16 * MIB as usize, 5)));
    assert!(store.max_body(100) >= 56 * MIB, "{}", store.max_body(100));
}

#[test]
fn a_1_gib_store_holds_within_3_percent_of_1_gib_of_1_mib_objects() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sized(dir.path(), 1 << 30);
    let b = body(MIB as usize, 4);
    let m = meta(&"x".repeat(200));
    for i in 0..1100 {
        store
            .insert(&format!("host/title/seg_{i:05}.m4s"), &m, &b, true)
            .unwrap();
    }
    let stats = store.stats();
    let held = stats.objects * MIB;
    assert!(
        held as f64 >= 0.97 * (1u64 << 30) as f64,
        "{} objects of 1 MiB in 1 GiB: {stats:?}",
        stats.objects
    );
    assert!(stats.used <= stats.capacity);
}

#[test]
fn never_exceeds_capacity_and_a_read_object_outlives_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let hot = body(50_000, 9);
    store.insert("hot", &meta("h"), &hot, true).unwrap();
    // 24 MiB of objects seen once pass through 8 MiB; the hot one is read now and then.
    for i in 0..480u32 {
        store
            .insert(&format!("k{i}"), &meta(""), &body(50_000, i as u8), true)
            .unwrap();
        if i % 20 == 0 {
            assert!(store.get("hot").is_some(), "after {i} writes");
        }
        let stats = store.stats();
        assert!(stats.used <= stats.capacity && stats.live <= stats.capacity);
    }
    assert_eq!(
        std::fs::metadata(dir.path().join("store")).unwrap().len(),
        8 * MIB
    );
    let stats = store.stats();
    assert!(stats.evicted_objects > 300, "{stats:?}");
    assert!(stats.promoted_objects > 0, "{stats:?}");
    assert_eq!(all(&store.get("hot").unwrap()), joined(&hot));
}

#[test]
fn prefetched_objects_nobody_reads_leave_before_read_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // Read objects (they reach the main log) up to most of the store.
    for i in 0..220u32 {
        let key = format!("read{i}");
        store
            .insert(&key, &meta(""), &body(30_000, 1), true)
            .unwrap();
        store.get(&key).unwrap();
    }
    // Many prefetches nobody plays: once the store is full they leave from probation.
    for i in 0..400u32 {
        store
            .insert(&format!("pre{i}"), &meta(""), &body(30_000, 2), false)
            .unwrap();
    }
    let kept = (0..220)
        .filter(|i| store.contains(&format!("read{i}")))
        .count();
    let prefetched = (0..400)
        .filter(|i| store.contains(&format!("pre{i}")))
        .count();
    assert!(kept >= 215, "read objects kept: {kept} of 220");
    assert!(
        prefetched < 60,
        "unused prefetches kept: {prefetched} of 400"
    );
    assert!(store.contains("pre399"), "the newest is on probation");
}

#[test]
fn an_object_back_from_the_ghost_list_goes_to_the_main_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let read = |from: u32, to: u32| {
        for i in from..to {
            let key = format!("read{i}");
            store
                .insert(&key, &meta(""), &body(30_000, 2), true)
                .unwrap();
            store.get(&key);
        }
    };
    read(0, 260);
    store
        .insert("again", &meta(""), &body(30_000, 1), true)
        .unwrap();
    // Pushed out of probation unread while the main log is full of read objects...
    read(260, 330);
    assert!(!store.contains("again"));
    assert!(store.stats().ghosts > 0);
    // ...it comes back, admitted to the main log: a scan of new objects does not push it out.
    store
        .insert("again", &meta(""), &body(30_000, 1), true)
        .unwrap();
    for i in 0..100u32 {
        store
            .insert(&format!("new{i}"), &meta(""), &body(30_000, 3), true)
            .unwrap();
    }
    assert!(store.contains("again"));
    assert!(!store.contains("new0"));
}

#[test]
fn recovers_after_reopen_even_after_the_logs_went_round() {
    let dir = tempfile::tempdir().unwrap();
    let mut present = Vec::new();
    {
        let store = open(dir.path());
        for i in 0..600u32 {
            let key = format!("k{i}");
            store
                .insert(&key, &meta(&key), &body(20_000, i as u8), true)
                .unwrap();
            if i % 3 == 0 {
                store.get(&key);
            }
        }
        for i in 0..600u32 {
            if store.contains(&format!("k{i}")) {
                present.push(i);
            }
        }
        store.flush().unwrap();
    }
    assert!(present.len() > 100);
    let store = open(dir.path());
    let mut back = 0;
    for &i in &present {
        let key = format!("k{i}");
        if let Some(hit) = store.get(&key) {
            assert_eq!(hit.meta.0, key);
            assert_eq!(all(&hit), joined(&body(20_000, i as u8)));
            back += 1;
        }
    }
    assert!(
        back as f64 >= 0.99 * present.len() as f64,
        "{back} of {} back after a clean restart",
        present.len()
    );
    // And it goes on working from where the logs were.
    for i in 0..300u32 {
        store
            .insert(&format!("n{i}"), &meta(""), &body(20_000, 7), true)
            .unwrap();
    }
    assert!(store.contains("n299"));
    drop(store);
    assert!(open(dir.path()).contains("n299"));
}

#[test]
fn a_corrupt_body_is_never_served_and_stays_gone_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<Vec<Bytes>> = (0..20).map(|i| body(30_000, i as u8)).collect();
    {
        let store = open(dir.path());
        for (i, b) in bodies.iter().enumerate() {
            store
                .insert(&format!("k{i}"), &meta(&format!("m{i}")), b, true)
                .unwrap();
        }
    }
    flip_byte_of(&dir.path().join("store"), &joined(&bodies[7])[2000..2064]);
    let store = open(dir.path());
    assert_eq!(store.stats().objects, 20, "recovery reads no body");
    assert!(store.get("k7").is_none(), "checked at its first lookup");
    assert!(!store.contains("k7"));
    for i in (0..20).filter(|&i| i != 7) {
        assert_eq!(
            all(&store.get(&format!("k{i}")).unwrap()),
            joined(&bodies[i])
        );
    }
    drop(store);
    assert!(!open(dir.path()).contains("k7"), "marked dead on disk");
}

#[test]
fn the_background_check_verifies_every_recovered_body_and_drops_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<Vec<Bytes>> = (0..20)
        .map(|i| body(if i == 3 { 3 << 20 } else { 30_000 }, i as u8))
        .collect();
    {
        let store = open(dir.path());
        for (i, b) in bodies.iter().enumerate() {
            store.insert(&format!("k{i}"), &meta(""), b, true).unwrap();
        }
    }
    flip_byte_of(
        &dir.path().join("store"),
        &joined(&bodies[3])[2_000_000..2_000_064],
    );
    let store = open(dir.path());
    let mut checked = 0;
    loop {
        match store.check_some(3) {
            0 => break,
            n => checked += n,
        }
    }
    assert_eq!(checked, 20, "each body checked once");
    assert!(
        !store.contains("k3"),
        "the corrupt (chunked) one is dropped"
    );
    for i in (0..20).filter(|&i| i != 3) {
        assert_eq!(
            all(&store.get(&format!("k{i}")).unwrap()),
            joined(&bodies[i])
        );
    }
}

#[test]
fn half_written_records_are_skipped_and_the_log_still_parses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    {
        let store = open(dir.path());
        for i in 0..10u32 {
            store
                .insert(&format!("k{i}"), &meta(""), &body(20_000, i as u8), true)
                .unwrap();
        }
    }
    // A crash mid-write leaves a RESERVED record: k4's state word put back.
    let raw = std::fs::read(&path).unwrap();
    let at = raw
        .windows(20)
        .position(|w| w == &joined(&body(20_000, 4))[..20])
        .unwrap();
    let record = (0..at)
        .rev()
        .find(|&i| raw[i..].starts_with(b"MRCM"))
        .unwrap();
    rewrite(&path, record as u64, &RecordState::Reserved.bytes());
    let store = open(dir.path());
    assert!(!store.contains("k4"));
    for i in (0..10).filter(|&i| i != 4) {
        assert!(store.get(&format!("k{i}")).is_some(), "k{i}");
    }
    store
        .insert("after", &meta(""), &body(20_000, 1), true)
        .unwrap();
    assert!(store.get("after").is_some());
}

#[test]
fn replacing_and_removing_keys_hold_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .insert("k", &meta("old"), &body(1000, 1), true)
            .unwrap();
        store
            .insert("k", &meta("new"), &body(1000, 2), true)
            .unwrap();
        store
            .insert("gone", &meta(""), &body(1000, 2), true)
            .unwrap();
        assert!(store.remove("gone"));
        for v in ["a", "b"] {
            store
                .insert(&format!("base\0vary={v}"), &meta(""), &body(1000, 3), true)
                .unwrap();
        }
        store
            .insert("base", &meta(""), &body(1000, 3), true)
            .unwrap();
        store
            .insert("other/x", &meta(""), &body(1000, 3), true)
            .unwrap();
        store
            .insert("other/y", &meta(""), &body(1000, 3), true)
            .unwrap();
        let version = store.get("k").unwrap().version;
        assert!(
            !store.update_meta("k", version - 1, meta("older")),
            "not that version"
        );
        assert!(store.update_meta("k", version, meta("revalidated")));
        assert_eq!(store.get("k").unwrap().meta.0, "revalidated");
    }
    let store = open(dir.path());
    let hit = store.get("k").unwrap();
    assert_eq!(
        hit.meta.0, "new",
        "the newest write; a revalidated meta is not kept"
    );
    assert_eq!(all(&hit), joined(&body(1000, 2)));
    assert!(!store.contains("gone"));
    assert_eq!(
        store.remove_family("base"),
        2,
        "the variants, found after a restart"
    );
    assert!(store.contains("base"));
    assert_eq!(store.remove_prefix("other/"), Some(2));
    drop(store);
    let store = open(dir.path());
    assert!(!store.contains("base\0vary=a") && !store.contains("other/x"));
}

#[test]
fn a_purged_object_stays_gone_after_a_restart_even_if_it_was_moved_or_evicted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .insert("moved", &meta(""), &body(30_000, 1), true)
            .unwrap();
        store.get("moved").unwrap();
        store
            .insert("evicted", &meta(""), &body(30_000, 2), true)
            .unwrap();
        // Enough to move "moved" out of probation and, later, to evict unread objects.
        for i in 0..400u32 {
            store
                .insert(&format!("k{i}"), &meta(""), &body(30_000, 3), true)
                .unwrap();
        }
        assert!(store.stats().promoted_objects > 0);
        assert!(store.remove("moved"));
        store.remove("evicted");
        assert!(!store.contains("evicted"));
    }
    let store = open(dir.path());
    assert!(
        !store.contains("moved"),
        "no copy left behind by its move comes back"
    );
    assert!(
        !store.contains("evicted"),
        "an evicted copy does not come back"
    );
}

#[test]
fn a_starting_store_misses_stores_nothing_and_keeps_its_removals() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        for key in ["a", "b", "base\0vary=x", "c"] {
            store.insert(key, &meta(key), &body(5000, 1), true).unwrap();
        }
    }
    let (store, recovery) = Store::<TestMeta>::open_starting(&dir.path().join("store"), 8 * MIB)
        .expect("opened and locked at once");
    assert!(
        Store::<TestMeta>::open_starting(&dir.path().join("store"), 8 * MIB).is_err(),
        "the lock is taken before recovery"
    );
    assert!(!store.is_ready());
    assert!(store.get("a").is_none() && !store.contains("a"));
    assert!(matches!(
        store.insert("new", &meta(""), &body(10, 1), true),
        Err(StoreError::Starting)
    ));
    assert_eq!(store.remove_prefix("c"), None, "asked again later");
    store.remove("b");
    store.remove_family("base");
    recovery.run().unwrap();
    assert!(store.is_ready());
    assert_eq!(store.get("a").unwrap().meta.0, "a");
    assert!(store.contains("c"));
    assert!(!store.contains("b"), "removed while starting");
    assert!(
        !store.contains("base\0vary=x"),
        "its family removed while starting"
    );
    assert!(!store.contains("new"));
    drop(store);
    let store = open(dir.path());
    assert!(
        !store.contains("b") && store.contains("a"),
        "the removals hold on disk"
    );
}

#[test]
fn a_clean_close_leaves_a_checkpoint_the_next_start_loads_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let checkpoint = checkpoint::path_for(&path);
    let start = |dir: &Path| {
        let (store, recovery) =
            Store::<TestMeta>::open_starting(&dir.join("store"), 8 * MIB).expect("open");
        let recovered = recovery.run().expect("recover");
        (store, recovered)
    };
    {
        let (store, _) = start(dir.path());
        for i in 0..300u32 {
            let key = format!("k{i}");
            store
                .insert(&key, &meta(&key), &body(20_000, i as u8), true)
                .unwrap();
            if i % 2 == 0 {
                store.get(&key);
            }
        }
        store
            .insert("base\0vary=a", &meta(""), &body(100, 1), true)
            .unwrap();
        store.close().unwrap();
        assert!(
            store.get("k299").is_none(),
            "closed: nothing more is served"
        );
        assert!(
            store.remove("k298"),
            "a removal after the checkpoint still holds"
        );
    }
    assert!(checkpoint.exists());
    let (store, recovered) = start(dir.path());
    assert!(recovered.from_checkpoint);
    assert!(
        !checkpoint.exists(),
        "used once: a crash from here on finds none"
    );
    assert!(
        store.get("k298").is_none(),
        "marked dead after the checkpoint: a miss"
    );
    let present: Vec<u32> = (0..298)
        .filter(|i| store.contains(&format!("k{i}")))
        .collect();
    assert!(present.len() > 100, "{}", present.len());
    for &i in &present {
        let key = format!("k{i}");
        assert_eq!(
            all(&store.get(&key).unwrap()),
            joined(&body(20_000, i as u8))
        );
    }
    assert_eq!(store.remove_family("base"), 1, "families come back with it");
    // Writing goes on from the checkpoint's positions.
    for i in 0..300u32 {
        store
            .insert(&format!("n{i}"), &meta(""), &body(20_000, 1), true)
            .unwrap();
    }
    assert!(store.contains("n299"));
    drop(store);
    // No close: the next start walks the logs and finds the same.
    let (store, recovered) = start(dir.path());
    assert!(!recovered.from_checkpoint);
    assert!(store.contains("n299"));
    store.close().unwrap();
    drop(store);
    // A damaged checkpoint is not used.
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&checkpoint, &bytes).unwrap();
    let (store, recovered) = start(dir.path());
    assert!(!recovered.from_checkpoint);
    assert!(store.contains("n299"));
}

#[test]
fn too_large_objects_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = store.insert("k", &meta(""), &body(8 * MIB as usize, 1), true);
    assert!(matches!(err, Err(StoreError::TooLarge(_))));
}

#[test]
fn a_store_file_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.insert("k", &meta("m"), &body(1000, 1), true).unwrap();
    match Store::<TestMeta>::open(&dir.path().join("store"), 8 * MIB) {
        Err(StoreError::Io { source, .. }) => {
            let text = source.to_string();
            let holder = format!("process {} (per ", std::process::id());
            assert!(
                text.contains(&holder) && text.contains("store.owner"),
                "the refusal names the holder and its pid file: {text}"
            )
        }
        other => panic!("a second open must be refused, got {other:?}"),
    }
    drop(store);
    assert!(
        open(dir.path()).get("k").is_some(),
        "free again once closed"
    );
}

#[test]
fn a_file_truncated_under_the_store_loses_objects_not_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = open(dir.path());
    for i in 0..100u32 {
        store
            .insert(&format!("k{i}"), &meta(""), &body(50_000, i as u8), true)
            .unwrap();
    }
    let before = store.stats().objects;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(3 * MIB)
        .unwrap();
    let mut lost = 0;
    for i in 0..100u32 {
        match store.get(&format!("k{i}")) {
            Some(hit) => assert_eq!(all(&hit), joined(&body(50_000, i as u8))),
            None => lost += 1,
        }
    }
    assert!(lost > 0 && lost < before, "{lost} of {before}");
    store.check_some(64);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        8 * MIB,
        "allocated again"
    );
    for i in 0..200u32 {
        store
            .insert(&format!("n{i}"), &meta(""), &body(50_000, 1), true)
            .unwrap();
    }
    assert_eq!(all(&store.get("n199").unwrap()), joined(&body(50_000, 1)));
    drop(store);
    assert!(open(dir.path()).contains("n199"));
}

#[test]
fn a_chunked_body_follows_its_object_when_moved_and_fails_when_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sized(dir.path(), 16 * MIB);
    let big = body(3 * MIB as usize, 5);
    store.insert("big", &meta(""), &big, true).unwrap();
    let reader = store.get("big").unwrap();
    // Read again, so it is moved (not dropped) when its log's head comes to it.
    store.get("big").unwrap();
    for i in 0..40u32 {
        store
            .insert(&format!("k{i}"), &meta(""), &body(300_000, 1), true)
            .unwrap();
    }
    assert!(store.contains("big"));
    assert!(store.stats().promoted_objects + store.stats().reinserted_objects > 0);
    assert_eq!(
        &reader.body.read(0, reader.body.len()).unwrap()[..],
        &joined(&big)[..]
    );
    assert!(store.remove("big"));
    assert!(
        reader.body.read(0, 10).is_err(),
        "gone: an error, never other bytes"
    );
}

#[test]
fn hot_bodies_are_answered_from_memory_and_never_outlive_their_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_holding(dir.path(), 8 * MIB, 2 * MIB);
    let first = body(100_000, 1);
    store.insert("k", &meta("one"), &first, true).unwrap();
    assert!(
        held(&store, "k").is_none(),
        "held only once read from the file"
    );
    assert!(matches!(
        store.get_without_reading("nothing"),
        Quick::Absent
    ));
    let read = store.get("k").unwrap();
    let hot = held(&store, "k").expect("held after a read");
    assert_eq!((all(&hot), hot.meta.0.as_str()), (joined(&first), "one"));
    assert_eq!(hot.version, read.version);
    assert!(store.stats().memory > 0, "{:?}", store.stats());

    // A revalidation's fresh meta applies to held bodies too.
    assert!(store.update_meta("k", read.version, meta("refreshed")));
    assert_eq!(held(&store, "k").unwrap().meta.0, "refreshed");

    // A newer version replaces it: never the old body again.
    let second = body(90_000, 2);
    store.insert("k", &meta("two"), &second, true).unwrap();
    assert!(held(&store, "k").is_none());
    assert_eq!(all(&lookup(&store, "k").unwrap()), joined(&second));
    assert_eq!(all(&held(&store, "k").unwrap()), joined(&second));

    // Removed: gone from memory as from the index.
    assert!(store.remove("k"));
    assert!(lookup(&store, "k").is_none());

    // Bodies read chunk by chunk are not held; nor is anything by a store holding none.
    store
        .insert("big", &meta("b"), &body(3 * MIB as usize, 3), true)
        .unwrap();
    assert!(store.get("big").is_some());
    assert!(held(&store, "big").is_none());
    let other = tempfile::tempdir().unwrap();
    let none = open_holding(other.path(), 8 * MIB, 0);
    none.insert("k", &meta("m"), &first, true).unwrap();
    assert!(none.get("k").is_some());
    assert!(held(&none, "k").is_none());
    assert_eq!(none.stats().memory, 0);
}

#[test]
fn concurrent_readers_and_writers_never_see_a_stale_or_torn_object() {
    for memory in [0, MIB] {
        concurrent_readers_and_writers(memory);
    }
}

fn concurrent_readers_and_writers(memory: u64) {
    // A small store with many moves and evictions, while other threads read the same keys
    // (from memory too, when it holds bodies) and write newer versions of them.
    let dir = tempfile::tempdir().unwrap();
    let store = open_holding(dir.path(), 2 * MIB, memory);
    let keys = 60usize;
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for k in 0..keys {
                        if let Some(object) = lookup(&store, &format!("k{k}")) {
                            let version: u8 = object.meta.0.parse().expect("meta");
                            let bytes = object.body.read(0, object.body.len());
                            if let Ok(bytes) = bytes {
                                assert_eq!(bytes.len() as u64, object.body.len());
                                assert!(
                                    bytes.iter().all(|&b| b == version),
                                    "k{k}: a body that is not all version {version}"
                                );
                                seen += 1;
                            }
                        }
                    }
                }
                seen
            })
        })
        .collect();
    let writers: Vec<_> = (0..2u8)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for round in 0..30u8 {
                    for k in 0..keys {
                        let version = round.wrapping_mul(2).wrapping_add(w);
                        let len = if k % 7 == 0 { 150_000 } else { 20_000 };
                        let body = vec![Bytes::from(vec![version; len])];
                        let _ = store.insert(
                            &format!("k{k}"),
                            &meta(&version.to_string()),
                            &body,
                            true,
                        );
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let seen: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(seen > 100, "readers saw {seen} objects");
    let stats = store.stats();
    assert!(
        stats.evicted_objects > 0 && stats.promoted_objects > 0,
        "{stats:?}"
    );
    drop(store);
    // And what is left recovers.
    let store = open_sized(dir.path(), 2 * MIB);
    assert!(store.stats().objects > 0);
}

#[test]
fn a_file_of_another_layout_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    std::fs::write(&path, vec![7u8; 8 * MIB as usize]).unwrap();
    let store = open(dir.path());
    assert_eq!(store.stats().objects, 0);
    store.insert("k", &meta(""), &body(10, 1), true).unwrap();
    drop(store);
    let raw = std::fs::read(&path).unwrap();
    let found = Superblock::decode(&raw).expect("a superblock");
    assert!(found.same_layout(&Superblock::for_capacity(8 * MIB)) && found.salt != 0);
    assert!(open(dir.path()).contains("k"));
}

/// Flips one bit of the first place in the file where `needle` is.
fn flip_byte_of(path: &Path, needle: &[u8]) {
    let raw = std::fs::read(path).unwrap();
    let at = raw.windows(needle.len()).position(|w| w == needle).unwrap();
    rewrite(path, at as u64, &[raw[at] ^ 1]);
}

fn rewrite(path: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, at).unwrap();
}

/// A file truncated under the store, then written again, must not read as zeros (or as newer
/// bytes) under records it cut: writes wait until the cut objects are dropped, and every copy
/// made by a move is checked.
#[test]
fn a_truncated_file_never_serves_the_bytes_of_a_record_it_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = open_sized(dir.path(), 64 * MIB);
    for i in 0..100u32 {
        store
            .insert(
                &format!("t/{i}"),
                &meta(""),
                &body(200 * 1024, i as u8),
                true,
            )
            .unwrap();
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(MIB)
        .unwrap();
    for i in 0..100u32 {
        let key = format!("t/{i}");
        match store.get(&key) {
            Some(hit) => assert_eq!(all(&hit), joined(&body(200 * 1024, i as u8)), "{key}"),
            None => {
                let _ = store.insert(&key, &meta(""), &body(200 * 1024, i as u8), true);
            }
        }
        if i == 50 {
            store.check_some(1);
        }
    }
    for i in 0..100u32 {
        let key = format!("t/{i}");
        match store.get(&key) {
            Some(hit) => assert_eq!(all(&hit), joined(&body(200 * 1024, i as u8)), "{key}"),
            None => store
                .insert(&key, &meta(""), &body(200 * 1024, i as u8), true)
                .unwrap(),
        }
    }
}

#[test]
fn a_record_written_piece_by_piece_is_readable_as_it_grows_and_stored_at_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sized(dir.path(), 64 * MIB);
    let data = joined(&body(5 * MIB as usize + 17, 3));
    let mut writer = store
        .begin(
            "w",
            &meta("m"),
            BodyLen::Exact(data.len() as u64),
            true,
            None,
        )
        .unwrap();
    let reader = writer.reader();
    for (i, piece) in data.chunks(300_001).enumerate() {
        writer.write(piece).unwrap();
        // What was written so far reads back; the object is not stored yet.
        let at = (i * 300_001) as u64;
        assert_eq!(
            &reader.read(at, piece.len() as u64).unwrap()[..],
            piece,
            "piece {i}"
        );
        assert!(!store.contains("w"));
    }
    writer.commit().unwrap();
    let hit = store.get("w").unwrap();
    assert_eq!(hit.meta.0, "m");
    assert_eq!(all(&hit), data);
    // The reader goes on reading the stored object.
    assert_eq!(
        &reader.read(MIB, 9).unwrap()[..],
        &data[MIB as usize..][..9]
    );
    drop((store, hit, reader));
    assert_eq!(
        all(&open_sized(dir.path(), 64 * MIB).get("w").unwrap()),
        data
    );
}

#[test]
fn a_record_of_unknown_length_gives_back_its_room_and_the_log_still_parses() {
    let dir = tempfile::tempdir().unwrap();
    let data = joined(&body(700_000, 4));
    {
        let store = open(dir.path());
        let mut writer = store
            .begin("u", &meta("m"), BodyLen::AtMost(3 * MIB), true, None)
            .unwrap();
        writer.write(&data).unwrap();
        writer.commit().unwrap();
        assert_eq!(all(&store.get("u").unwrap()), data);
        let stats = store.stats();
        assert!(
            stats.live < MIB,
            "the record was cut to its body: {stats:?}"
        );
        // Objects written after it, and a restart without a checkpoint, find it and them.
        for i in 0..3u8 {
            store
                .insert(&format!("after{i}"), &meta(""), &body(100_000, i), true)
                .unwrap();
        }
    }
    let store = open(dir.path());
    assert_eq!(all(&store.get("u").unwrap()), data);
    assert!(store.contains("after2"));
    // The logs go round over the room given back, and a restart still parses them.
    for i in 0..200u32 {
        store
            .insert(&format!("n{i}"), &meta(""), &body(60_000, i as u8), true)
            .unwrap();
    }
    drop(store);
    let store = open(dir.path());
    assert!(store.contains("n199"));
    assert_eq!(all(&store.get("n199").unwrap()), joined(&body(60_000, 199)));
}

#[test]
fn a_record_given_up_is_never_stored_nor_read_and_its_room_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .insert("w", &meta("old"), &body(1000, 1), true)
            .unwrap();
        let mut writer = store
            .begin("w", &meta("new"), BodyLen::Exact(200_000), true, None)
            .unwrap();
        let reader = writer.reader();
        writer.write(&joined(&body(100_000, 2))).unwrap();
        assert!(reader.read(0, 10).is_ok());
        // Past the length it was begun with: given up.
        assert!(writer.write(&joined(&body(100_001, 3))).is_err());
        assert!(reader.read(0, 10).is_err());
        assert!(writer.commit().is_err());
        assert_eq!(store.get("w").unwrap().meta.0, "old");
        // Dropped before its commit: given up too.
        let mut writer = store
            .begin("w", &meta("new"), BodyLen::Exact(10), true, None)
            .unwrap();
        writer.write(b"0123456789").unwrap();
        drop(writer);
        assert_eq!(store.get("w").unwrap().meta.0, "old");
        // Its room comes back: the logs go round many times.
        for i in 0..400u32 {
            store
                .insert(&format!("n{i}"), &meta(""), &body(60_000, i as u8), true)
                .unwrap();
        }
        assert!(store.contains("n399"));
    }
    let store = open(dir.path());
    assert!(store.contains("n399"));
    assert!(store.get("w").is_none_or(|hit| hit.meta.0 == "old"));
}

#[test]
fn a_closing_store_gives_up_a_record_being_written_instead_of_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut writer = store
        .begin("w", &meta(""), BodyLen::Exact(20), true, None)
        .unwrap();
    writer.write(b"0123456789").unwrap();
    let closer = {
        let store = store.clone();
        std::thread::spawn(move || store.close())
    };
    // `close` waits for the writer until its next write, which it refuses.
    while !store.inner.closing.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    assert!(matches!(
        writer.write(b"0123456789"),
        Err(StoreError::Closing)
    ));
    closer.join().unwrap().unwrap();
    assert!(checkpoint_file(&dir.path().join("store")).exists());
}

#[test]
fn a_removal_while_a_record_is_written_is_not_undone_by_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let begin = |key: &str| {
        let mut writer = store
            .begin(key, &meta("new"), BodyLen::Exact(4), true, None)
            .unwrap();
        writer.write(b"body").unwrap();
        writer
    };
    store
        .insert("k", &meta("old"), &body(100, 1), true)
        .unwrap();
    let writer = begin("k");
    assert!(store.remove("k"));
    assert!(matches!(writer.commit(), Err(StoreError::Removed)));
    assert!(store.get("k").is_none());
    let writer = begin("v\0accept-encoding=gzip");
    assert_eq!(store.remove_family("v"), 1);
    assert!(matches!(writer.commit(), Err(StoreError::Removed)));
    let writer = begin("/live/a.m4s");
    assert_eq!(store.remove_prefix("/live/"), Some(1));
    assert!(matches!(writer.commit(), Err(StoreError::Removed)));
    // Others are not touched.
    let writer = begin("other");
    store.remove("k");
    writer.commit().unwrap();
    assert!(store.get("other").is_some());
    assert!(store.get("/live/a.m4s").is_none() && store.get("v\0accept-encoding=gzip").is_none());
}

#[test]
fn an_object_fetched_while_its_key_was_removed_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let fetches: Vec<_> = ["k", "v", "/live/a.m4s", "other"]
        .iter()
        .map(|base| store.fetching(base))
        .collect();
    store.remove("k");
    store.remove_family("v");
    assert_eq!(store.remove_prefix("/live/"), Some(0));
    let insert = |key: &str, fetch: &Fetch<TestMeta>| {
        store.insert_fetched(key, &meta(""), &body(10, 1), true, Some(fetch))
    };
    assert!(matches!(insert("k", &fetches[0]), Err(StoreError::Removed)));
    assert!(matches!(
        insert("v\0accept-encoding=br", &fetches[1]),
        Err(StoreError::Removed)
    ));
    assert!(matches!(
        insert("/live/a.m4s", &fetches[2]),
        Err(StoreError::Removed)
    ));
    insert("other", &fetches[3]).unwrap();
    assert!(store.contains("other") && !store.contains("k"));
    // A fetch that began after the removal stores.
    let fetch = store.fetching("k");
    insert("k", &fetch).unwrap();
    assert!(store.contains("k"));
    // However many removals of other keys come meanwhile.
    let fetch = store.fetching("z");
    for i in 0..10_000 {
        store.remove(&format!("x{i}"));
    }
    insert("z", &fetch).unwrap();
    drop(fetches);
    assert!(
        store.inner.lock().fetches.len() == 2,
        "dropped fetches are forgotten"
    );
}

#[test]
fn a_start_after_a_crash_loads_the_last_checkpoint_and_walks_only_what_came_after() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &Path| {
        let (store, recovery) =
            Store::<TestMeta>::open_starting(&dir.join("store"), 64 * MIB).expect("open");
        let recovered = recovery.run().expect("recover");
        (store, recovered)
    };
    let keys: Vec<String> = (0..150)
        .map(|i| format!("k{i}"))
        .chain((0..40).map(|i| format!("a{i}")))
        .collect();
    let present: Vec<String> = {
        let (store, _) = start(dir.path());
        for (i, key) in keys.iter().take(150).enumerate() {
            store
                .insert(key, &meta(key), &body(20_000, i as u8), true)
                .unwrap();
            if i % 3 == 0 {
                store.get(key);
            }
        }
        assert!(store.save_checkpoint().unwrap());
        // After it: new objects, a replaced one, a removed one.
        for (i, key) in keys.iter().enumerate().skip(150) {
            store
                .insert(key, &meta(key), &body(20_000, i as u8), true)
                .unwrap();
        }
        store
            .insert("k10", &meta("replaced"), &body(30_000, 99), true)
            .unwrap();
        assert!(store.remove("k20"));
        keys.iter().filter(|k| store.contains(k)).cloned().collect()
        // Dropped without `close`: a crash as far as the file knows.
    };
    let (store, recovered) = start(dir.path());
    assert!(recovered.from_checkpoint, "{recovered:?}");
    assert!(recovered.caught_up >= 41, "{recovered:?}");
    assert!(store.get("k20").is_none(), "the removal holds");
    let replaced = store.get("k10").unwrap();
    assert_eq!(
        (replaced.meta.0.as_str(), all(&replaced)),
        ("replaced", joined(&body(30_000, 99)))
    );
    let mut back = 0;
    for (i, key) in keys.iter().enumerate() {
        if let Some(hit) = store.get(key) {
            assert!(
                present.contains(key),
                "{key} was not stored before the crash"
            );
            if key != "k10" {
                assert_eq!(
                    (hit.meta.0.as_str(), all(&hit)),
                    (key.as_str(), joined(&body(20_000, i as u8)))
                );
            }
            back += 1;
        }
    }
    assert_eq!(
        back,
        present.len(),
        "every object stored before the crash is back"
    );
    // A full store, written on after its checkpoint (evicting as it goes): caught up too.
    for i in 0..4000u32 {
        store
            .insert(&format!("f{i}"), &meta(""), &body(20_000, i as u8), true)
            .unwrap();
    }
    assert!(store.stats().evicted_objects > 100, "{:?}", store.stats());
    assert!(store.save_checkpoint().unwrap());
    for i in 4000..4100u32 {
        store
            .insert(&format!("f{i}"), &meta(""), &body(20_000, i as u8), true)
            .unwrap();
    }
    let stored = |store: &Store<TestMeta>, n: u32| -> Vec<u32> {
        (0..n)
            .filter(|i| store.contains(&format!("f{i}")))
            .collect()
    };
    let before = stored(&store, 4100);
    drop((store, replaced));
    let (store, recovered) = start(dir.path());
    assert!(
        recovered.from_checkpoint && recovered.caught_up >= 100,
        "{recovered:?}"
    );
    let mut back = 0;
    for i in 0..4100u32 {
        if let Some(hit) = store.get(&format!("f{i}")) {
            assert!(before.contains(&i), "f{i} was not stored before the crash");
            assert_eq!(all(&hit), joined(&body(20_000, i as u8)));
            back += 1;
        }
    }
    assert_eq!(back, before.len());
    // Written a whole lap round since its checkpoint: the next start walks the logs instead.
    assert!(store.save_checkpoint().unwrap());
    for i in 0..3000u32 {
        store
            .insert(&format!("n{i}"), &meta(""), &body(20_000, i as u8), true)
            .unwrap();
    }
    let stored: Vec<u32> = (0..3000)
        .filter(|i| store.contains(&format!("n{i}")))
        .collect();
    drop(store);
    let (store, recovered) = start(dir.path());
    assert!(!recovered.from_checkpoint, "{recovered:?}");
    for i in stored {
        assert_eq!(
            all(&store.get(&format!("n{i}")).unwrap()),
            joined(&body(20_000, i as u8))
        );
    }
}

#[test]
fn a_record_written_slowly_is_given_up_when_the_head_needs_its_room() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut writer = store
        .begin("slow", &meta(""), BodyLen::Exact(100_000), true, None)
        .unwrap();
    writer.write(&joined(&body(50_000, 1))).unwrap();
    // Objects go round the probation log until its head reaches the record being written.
    let mut refused = 0;
    for i in 0..400u32 {
        let inserted = store.insert(&format!("n{i}"), &meta(""), &body(20_000, 2), true);
        if matches!(inserted, Err(StoreError::NoSpace)) {
            refused += 1;
            // The writer gives the record up at its next write, and the head goes on.
            assert!(matches!(
                writer.write(&joined(&body(50_000, 3))),
                Err(StoreError::WantedBack)
            ));
        }
    }
    assert_eq!(
        refused, 1,
        "refused once, until the writer gave its record up"
    );
    assert!(store.contains("n399") && !store.contains("slow"));
}
