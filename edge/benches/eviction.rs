//! How long a lookup waits while the store evicts: one thread inserts 1 MiB segments into a
//! full store (so that every insert takes room from a log's head first), another looks up a
//! hot object without pause and records each lookup's latency. With `read = true` every
//! inserted object is read once, so it is moved (promoted, then reinserted) instead of
//! dropped; with `read = false` nothing is moved. The worst lookup is the longest the index
//! lock was held plus one read of the object.
//!
//! Run: `cargo bench -p edge --bench eviction`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge::meta::CachedMeta;
use edge::store::Store;
use http::{HeaderMap, StatusCode};

const MIB: usize = 1 << 20;

fn meta() -> CachedMeta {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "video/iso.segment".parse().expect("header"));
    let now = std::time::SystemTime::now();
    CachedMeta::new(StatusCode::OK, &headers, now, now)
}

fn run(read: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<Store<CachedMeta>> =
        Arc::new(Store::open(&dir.path().join("bench.store"), 256 * MIB as u64).expect("store"));
    let meta = meta();
    let data: Vec<u8> = (0..MIB).map(|i| (i * 7 % 251) as u8).collect();
    let body: Vec<Bytes> = data.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
    store.insert("hot", &meta, &body, true).expect("insert");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, stop, small) = (store.clone(), stop.clone(), meta.clone());
        std::thread::spawn(move || {
            let mut waits = Vec::with_capacity(1 << 20);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let object = store.get("hot");
                waits.push(started.elapsed());
                if object.is_none() {
                    // Evicted: put it back (counts as a write, not a lookup).
                    let _ = store.insert("hot", &small, &[Bytes::from_static(b"x")], true);
                }
            }
            waits
        })
    };
    let started = Instant::now();
    let inserts = 1500u64;
    let mut slowest_insert = Duration::ZERO;
    for i in 0..inserts {
        let key = format!("seg_{i}");
        let t = Instant::now();
        store.insert(&key, &meta, &body, true).expect("insert");
        slowest_insert = slowest_insert.max(t.elapsed());
        if read {
            let _ = store.get(&key);
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut waits = reader.join().expect("reader");
    waits.sort();
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    let over = |limit: Duration| waits.iter().filter(|w| **w > limit).count();
    let (over_100us, over_1ms) = (
        over(Duration::from_micros(100)),
        over(Duration::from_millis(1)),
    );
    let stats = store.stats();
    println!(
        "objects read: {read:5}: {inserts} inserts in {:.2} s ({:.0} MiB/s), promoted {:>5}, reinserted {:>5}, \
         lookups {:>9}: p50 {:>6.1?} p99.9 {:>6.1?} max {:>7.1?}, over 100 µs {over_100us:>4}, over 1 ms {over_1ms:>3}; slowest insert {:.1?}",
        elapsed.as_secs_f64(),
        inserts as f64 / elapsed.as_secs_f64(),
        stats.promoted_objects,
        stats.reinserted_objects,
        waits.len(),
        at(0.5),
        at(0.999),
        waits.last().copied().unwrap_or_default(),
        slowest_insert,
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too, so take no other flags.
    run(false);
    run(true);
}
