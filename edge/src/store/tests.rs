//! The store's tests: whole-store behaviour (capacity, eviction, reinsertion, recovery,
//! concurrency); the format's own tests are in `format`.

use std::sync::atomic::Ordering;

use super::format::{REGION_HEADER, RecordState};
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

fn open(dir: &Path) -> Store<TestMeta> {
    Store::open(&dir.join("store"), 8 * MIB, MIB).expect("open store")
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

/// A body whose every byte is `version`, so a reader can tell a torn or mixed one.
fn versioned(version: u8) -> Vec<Bytes> {
    vec![Bytes::from(vec![version; 20_000])]
}

#[test]
fn concurrent_readers_and_writers_never_see_a_stale_or_torn_object() {
    // Small regions and many evictions with survivors, while another thread reads the same
    // keys and a newer version of a key may land while its old one waits for its rewrite
    // (the deterministic case is the next test).
    let dir = tempfile::tempdir().unwrap();
    let store = Store::<TestMeta>::open(&dir.path().join("store"), 2 * MIB, 256 * 1024)
        .expect("open store");
    let keys = 200usize;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for k in 0..keys {
                    if let Some(object) = store.get(&format!("k{k}")) {
                        let version: u8 = object.meta.0.parse().expect("meta");
                        assert!(
                            object.body.iter().all(|&b| b == version),
                            "k{k}: a body that is not all version {version}"
                        );
                        seen += 1;
                    }
                }
            }
            seen
        })
    };
    // Two writers, each with its own half of the keys: an eviction by one keeps the
    // other's keys, which that other may be writing anew at the same time.
    let writer = |half: usize| {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut latest = vec![None; keys];
            for i in 0..3000usize {
                let k = (i * 7) % (keys / 2) + half * keys / 2;
                let version = (i % 250) as u8 + 1;
                store
                    .insert(
                        &format!("k{k}"),
                        &TestMeta(version.to_string()),
                        &versioned(version),
                        true,
                    )
                    .expect("insert");
                latest[k] = Some(version);
                // Read a few, so their regions' evictions keep them.
                let _ = store.get(&format!("k{}", (i * 3) % keys));
            }
            latest
        })
    };
    let (a, b) = (writer(0), writer(1));
    let (a, b) = (a.join().expect("writer"), b.join().expect("writer"));
    let latest: Vec<Option<u8>> = a.iter().zip(&b).map(|(x, y)| x.or(*y)).collect();
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().expect("reader") > 0);
    assert!(
        store.stats().reinserted_objects > 0,
        "survivors were rewritten"
    );
    let check = |store: &Store<TestMeta>| {
        for (k, version) in latest.iter().enumerate() {
            if let Some(object) = store.get(&format!("k{k}")) {
                assert_eq!(
                    Some(object.meta.0.parse::<u8>().expect("meta")),
                    *version,
                    "k{k}"
                );
                assert!(object.body.iter().all(|&b| Some(b) == *version), "k{k}");
            }
        }
    };
    check(&store);
    store.flush().expect("flush");
    drop(store);
    // After a restart too: the newest write of every key wins.
    let reopened = Store::<TestMeta>::open(&dir.path().join("store"), 2 * MIB, 256 * 1024)
        .expect("reopen store");
    check(&reopened);
}

#[test]
#[allow(unsafe_code)]
fn survivors_are_served_from_memory_until_rewritten_and_lose_to_newer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let meta = TestMeta("old".into());
    let store = open(dir.path());
    // Three read objects in the first region, then writes until the next one evicts it.
    for key in ["a", "b", "c"] {
        store
            .insert(key, &meta, &body(100_000, key.as_bytes()[0]), true)
            .unwrap();
        drop(store.get(key));
    }
    let mut i = 0;
    while store.stats().evicted_regions == 0 {
        // Fill every region but stop short of the eviction: the test makes it by hand.
        let inner = &store.inner;
        let needs_eviction = {
            let state = inner.lock();
            state.regions.iter().all(|r| r.fill > REGION_HEADER)
                && state
                    .open
                    .is_some_and(|o| state.regions[o].fill + 150_000 + 4096 > inner.region_size)
        };
        if needs_eviction {
            break;
        }
        store
            .insert(&format!("fill-{i}"), &meta, &body(100_000, i as u8), true)
            .unwrap();
        i += 1;
    }
    // The eviction, as `insert` starts it: the survivors are placed but not yet written.
    let (reserved, rewrite) = store.inner.reserve(150_016);
    let reserved = reserved.expect("room");
    let rewrite = rewrite.expect("survivors");
    // The record the eviction made room for, written as `insert` would (recovery reads a
    // region's records in order, so a reserved range must not stay a hole).
    let filler = joined(&body(150_016 - 64 - 6 - 3, 9));
    // SAFETY: the range was just reserved for this test alone (rule 2).
    unsafe {
        store.inner.map.write_record(
            store.inner.at(reserved.region, reserved.offset),
            reserved.place(150_016),
            b"filler",
            b"old",
            &[&filler],
        );
    }
    let a = store.get("a").expect("a survivor is served meanwhile");
    assert_eq!(&a.body[..], &joined(&body(100_000, b'a'))[..]);
    assert!(
        store.inner.map.offset_of(&a.body).is_none(),
        "from memory, not the map"
    );
    // Meanwhile "b" is written anew and "c" is purged.
    let newer = body(1000, 7);
    store
        .insert("b", &TestMeta("new".into()), &newer, true)
        .unwrap();
    assert!(store.remove("c"));
    store.inner.rewrite(rewrite);
    let check = |store: &Store<TestMeta>| {
        let a = store.get("a").expect("a is back in the index");
        assert!(
            store.inner.map.offset_of(&a.body).is_some(),
            "from the map again"
        );
        assert_eq!(&a.body[..], &joined(&body(100_000, b'a'))[..]);
        let b = store.get("b").expect("b");
        assert_eq!(b.meta.0, "new", "the newer write wins");
        assert!(b.body[..] == joined(&newer)[..], "the newer body");
        assert!(store.get("c").is_none(), "the purge holds");
    };
    check(&store);
    store.flush().unwrap();
    drop(store);
    check(&open(dir.path()));
}

#[test]
fn a_region_still_read_from_after_it_was_emptied_is_left_for_later() {
    let dir = tempfile::tempdir().unwrap();
    let meta = TestMeta("m".into());
    let store = open(dir.path());
    store.insert("a", &meta, &body(100_000, 1), true).unwrap();
    drop(store.get("a"));
    let region = store.inner.lock().index["a"].region;
    // The eviction's first steps by hand: planned and claimed, and then a reader pins the
    // region before its keys leave the index.
    let planned = {
        let mut state = store.inner.lock();
        state.regions[region].writers += 1;
        store.inner.survivors(&state, region, 1000)
    };
    let reader = store.get("a").expect("still indexed");
    let emptied = store.inner.empty_region(region, planned);
    assert!(
        matches!(emptied, Err(StoreError::NoSpace)),
        "gave up after PIN_WAIT"
    );
    assert_eq!(
        &reader.body[..],
        &joined(&body(100_000, 1))[..],
        "the reader's bytes held"
    );
    {
        let state = store.inner.lock();
        assert_eq!(state.regions[region].writers, 0, "the claim ended");
        assert!(state.pending.is_empty() && !state.index.contains_key("a"));
    }
    drop(reader);
    // Unpinned, the region is used again.
    for i in 0..80 {
        store
            .insert(&format!("f{i}"), &meta, &body(100_000, i as u8), true)
            .unwrap();
    }
    assert!(store.stats().evicted_regions > 0);
}

#[test]
fn stores_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let b = body(100_000, 1);
    store.insert("k", &TestMeta("m".into()), &b, true).unwrap();
    let hit = store.get("k").unwrap();
    assert_eq!(hit.meta.0, "m");
    assert_eq!(&hit.body[..], &joined(&b)[..]);
    assert!(store.get("other").is_none());
    assert_eq!(
        std::fs::metadata(dir.path().join("store")).unwrap().len(),
        8 * MIB
    );
}

#[test]
fn never_exceeds_capacity_and_evicts_least_recently_used_regions() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let meta = TestMeta(String::new());
    // 24 MiB written into 8 MiB, touching "hot" after every write.
    store.insert("hot", &meta, &body(200_000, 0), true).unwrap();
    for i in 0..120 {
        store
            .insert(&format!("cold-{i}"), &meta, &body(200_000, i as u8), true)
            .unwrap();
        drop(store.get("hot"));
        let stats = store.stats();
        assert!(stats.used <= stats.capacity, "{stats:?}");
    }
    assert!(
        store.get("hot").is_some(),
        "the recently used object survives"
    );
    // Eviction is by region: cold objects written beside "hot" share its region's recency,
    // so the first cold object in a region of its own is the least recently used.
    assert!(
        store.get("cold-10").is_none(),
        "the least recently used object is gone"
    );
    assert!(store.get("cold-119").is_some());
    assert!(store.stats().evicted_regions > 0);
    assert_eq!(
        std::fs::metadata(dir.path().join("store")).unwrap().len(),
        8 * MIB
    );
}

#[test]
fn objects_read_since_written_survive_their_regions_eviction_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let meta = TestMeta("kept".into());
    let hot_body = body(150_000, 200);
    {
        let store = open(dir.path());
        // "hot" and "cold" share the first region; only "hot" is read. "hot" is written
        // twice there (a replaced object), so its region lists it twice.
        store.insert("hot", &meta, &body(1000, 199), true).unwrap();
        store.insert("hot", &meta, &hot_body, true).unwrap();
        store
            .insert("cold", &meta, &body(150_000, 201), true)
            .unwrap();
        drop(store.get("hot"));
        // Enough writes to evict every region at least once, none of them reading "hot".
        for i in 0..80 {
            store
                .insert(&format!("fill-{i}"), &meta, &body(150_000, i as u8), true)
                .unwrap();
            let stats = store.stats();
            assert!(stats.used <= stats.capacity, "{stats:?}");
        }
        assert!(store.get("cold").is_none(), "the unread neighbour left");
        let hit = store.get("hot").expect("the read object was written again");
        assert_eq!(&hit.body[..], &joined(&hot_body)[..]);
        assert_eq!(hit.meta.0, "kept");
        let stats = store.stats();
        assert!(stats.reinserted_objects >= 1);
        assert_eq!(
            stats.objects,
            80 + 2 - stats.evicted_objects,
            "every object is either indexed or counted as evicted, once: {stats:?}"
        );
    }
    // The rewritten record is a record like any other: it survives a restart.
    let store = open(dir.path());
    let hit = store.get("hot").expect("recovered after restart");
    assert_eq!(&hit.body[..], &joined(&hot_body)[..]);
}

#[test]
fn a_record_that_fills_a_region_still_finds_room_after_reinsertion() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let meta = TestMeta(String::new());
    for i in 0..40 {
        store
            .insert(&format!("small-{i}"), &meta, &body(200_000, i as u8), true)
            .unwrap();
        drop(store.get(&format!("small-{i}")));
    }
    // Every region is full of read objects; a record of almost a whole region still fits.
    let big = store.max_body(16) - 1024;
    let big_body = body(big as usize, 77);
    store.insert("big", &meta, &big_body, true).unwrap();
    assert_eq!(&store.get("big").unwrap().body[..], &joined(&big_body)[..]);
}

#[test]
fn pinned_regions_are_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let meta = TestMeta(String::new());
    let first = body(300_000, 9);
    store.insert("pinned", &meta, &first, true).unwrap();
    let hit = store.get("pinned").unwrap();
    let pinned_region = store.inner.lock().index["pinned"].region;
    for i in 0..100 {
        let _ = store.insert(&format!("x-{i}"), &meta, &body(300_000, i as u8), true);
    }
    // 30 MB went into 8 MiB: every other region was emptied, some more than once, and the
    // pinned one never was (its epoch is the one it was written in).
    let stats = store.stats();
    assert!(stats.evicted_regions >= 7, "evictions happened: {stats:?}");
    {
        let state = store.inner.lock();
        assert_eq!(state.regions[pinned_region].epoch, 1, "never reset");
        assert!(
            state
                .regions
                .iter()
                .enumerate()
                .all(|(r, region)| r == pinned_region || region.epoch > 1)
        );
    }
    assert_eq!(
        &hit.body[..],
        &joined(&first)[..],
        "a reader's bytes never change"
    );
}

#[test]
fn recovers_after_reopen_and_drops_corrupt_records() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (body(50_000, 1), body(60_000, 2));
    {
        let store = open(dir.path());
        store.insert("a", &TestMeta("ma".into()), &a, true).unwrap();
        store.insert("b", &TestMeta("mb".into()), &b, true).unwrap();
        store
            .insert("gone", &TestMeta("mg".into()), &a, true)
            .unwrap();
        assert!(store.remove("gone"));
        store.flush().unwrap();
    }
    // Flip one byte of b's body.
    let path = dir.path().join("store");
    let mut raw = std::fs::read(&path).unwrap();
    let needle = &joined(&b)[1000..1064];
    let at = raw.windows(needle.len()).position(|w| w == needle).unwrap();
    raw[at] ^= 0xff;
    std::fs::write(&path, &raw).unwrap();

    let store = open(dir.path());
    // Recovery reads no body: both are indexed, each checked at its first lookup.
    assert!(store.contains("a") && store.contains("b"));
    for _ in 0..2 {
        let hit = store.get("a").unwrap();
        assert_eq!(hit.meta.0, "ma");
        assert_eq!(&hit.body[..], &joined(&a)[..]);
    }
    assert!(store.get("b").is_none(), "a corrupt record is never served");
    assert!(!store.contains("b"), "and it leaves the index");
    assert!(
        store.get("gone").is_none(),
        "a removed record stays removed"
    );
    drop(store);
    let store = open(dir.path());
    assert!(
        !store.contains("b"),
        "a record found corrupt is marked dead on disk"
    );
    assert!(store.get("a").is_some());
}

#[test]
fn half_written_records_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let a = body(10_000, 3);
    {
        let store = open(dir.path());
        store
            .insert("a", &TestMeta(String::new()), &a, true)
            .unwrap();
        store
            .insert("b", &TestMeta(String::new()), &a, true)
            .unwrap();
        store.flush().unwrap();
    }
    // Turn b back into a reservation, as if the process died before committing it.
    let path = dir.path().join("store");
    let mut raw = std::fs::read(&path).unwrap();
    // Keys follow headers: b's record is the committed header with "b" 64 bytes later.
    let pos = (0..raw.len() - 64)
        .find(|&p| raw[p..p + 4] == RecordState::Committed.bytes() && raw[p + 64] == b'b')
        .unwrap();
    raw[pos..pos + 4].copy_from_slice(&RecordState::Reserved.bytes());
    std::fs::write(&path, &raw).unwrap();
    let store = open(dir.path());
    assert!(store.get("a").is_some());
    assert!(store.get("b").is_none());
}

#[test]
fn replacing_a_key_serves_the_newest_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store
            .insert("k", &TestMeta("old".into()), &body(1000, 1), true)
            .unwrap();
        store
            .insert("k", &TestMeta("new".into()), &body(1000, 2), true)
            .unwrap();
        assert_eq!(store.stats().objects, 1);
    }
    let store = open(dir.path());
    assert_eq!(store.get("k").unwrap().meta.0, "new");
}

#[test]
fn too_large_objects_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let err = store.insert(
        "big",
        &TestMeta(String::new()),
        &body(2 * MIB as usize, 0),
        true,
    );
    assert!(matches!(err, Err(StoreError::TooLarge(_))));
}

#[test]
fn a_store_file_is_opened_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .insert("k", &TestMeta("m".into()), &body(1000, 1), true)
        .unwrap();
    let second = Store::<TestMeta>::open(&dir.path().join("store"), 8 * MIB, MIB);
    match second {
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
fn the_background_check_verifies_every_recovered_body_and_drops_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let bodies: Vec<Vec<Bytes>> = (0..20).map(|i| body(30_000, i as u8)).collect();
    {
        let store = open(dir.path());
        for (i, b) in bodies.iter().enumerate() {
            store
                .insert(&format!("k{i}"), &TestMeta(format!("m{i}")), b, true)
                .unwrap();
        }
        store.flush().unwrap();
    }
    let path = dir.path().join("store");
    let mut raw = std::fs::read(&path).unwrap();
    let needle = &joined(&bodies[7])[2000..2064];
    let at = raw.windows(needle.len()).position(|w| w == needle).unwrap();
    raw[at] ^= 0x01;
    std::fs::write(&path, &raw).unwrap();

    let store = open(dir.path());
    assert_eq!(store.stats().objects, 20, "recovery reads no body");
    let mut checked = 0;
    loop {
        match store.check_some(3) {
            0 => break,
            n => checked += n,
        }
    }
    assert_eq!(checked, 20, "each body checked once");
    assert_eq!(store.check_some(3), 0, "nothing left to check");
    assert!(!store.contains("k7"), "the corrupt one is dropped");
    for i in (0..20).filter(|&i| i != 7) {
        let hit = store.get(&format!("k{i}")).expect("intact ones stay");
        assert_eq!(&hit.body[..], &joined(&bodies[i])[..]);
    }
}
