//! Store micro-benchmarks: the write path (insert a segment, evicting as needed), and the read
//! path (a lookup that reads and returns a 1 MiB body) with the file in the page cache and
//! with it dropped from the page cache first.
//!
//! And start-up: opening (recovering) a full 256 MiB store of 16 KiB objects, with its file
//! in the page cache and with it dropped from the page cache first.
//!
//! Run: `cargo bench -p edge --bench store`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use edge::meta::CachedMeta;
use edge::store::Store;
use http::{HeaderMap, StatusCode};

const MIB: usize = 1 << 20;

fn meta() -> CachedMeta {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "video/iso.segment".parse().expect("header"));
    headers.insert(
        "cache-control",
        "public, max-age=31536000, immutable"
            .parse()
            .expect("header"),
    );
    let now = std::time::SystemTime::now();
    CachedMeta::new(StatusCode::OK, &headers, now, now)
}

fn segment() -> Vec<Bytes> {
    let data: Vec<u8> = (0..MIB).map(|i| (i * 7 % 251) as u8).collect();
    data.chunks(64 * 1024).map(Bytes::copy_from_slice).collect()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Store<CachedMeta> =
        Store::open(&dir.path().join("bench.store"), 256 * MIB as u64).expect("store");
    let (meta, body) = (meta(), segment());
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Bytes(MIB as u64));

    store
        .insert("host/cold.m4s", &meta, &body, true)
        .expect("insert");
    group.bench_function("get_cold_1MiB", |b| {
        b.iter_batched(
            || store.drop_cache(),
            |()| black_box(store.get("host/cold.m4s").expect("hit").body.len()),
            BatchSize::PerIteration,
        )
    });
    store
        .insert("host/hot.m4s", &meta, &body, true)
        .expect("insert");
    group.bench_function("get_hot_1MiB", |b| {
        b.iter(|| black_box(store.get("host/hot.m4s").expect("hit").body.len()))
    });

    let mut i = 0u64;
    group.bench_function("insert_1MiB", |b| {
        b.iter(|| {
            i += 1;
            store
                .insert(&format!("host/vod/seg_{i}.m4s"), &meta, &body, true)
                .expect("insert");
        })
    });
    group.finish();
}

/// Recovery of a full store: 256 MiB of 16 KiB objects (about 15,800 records).
fn recovery(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("full.store");
    let small: Vec<Bytes> = vec![Bytes::from(vec![7u8; 16 * 1024])];
    let meta = meta();
    let objects = {
        let store: Store<CachedMeta> = Store::open(&path, 256 * MIB as u64).expect("store");
        for i in 0..20_000 {
            store
                .insert(&format!("host/vod/seg_{i}.m4s"), &meta, &small, true)
                .expect("insert");
        }
        store.flush().expect("flush");
        store.stats().objects
    };
    eprintln!("recovery bench: {objects} objects in a 256 MiB store");
    let mut group = c.benchmark_group("store_open");
    let open = || {
        let store: Store<CachedMeta> = Store::open(&path, 256 * MIB as u64).expect("store");
        assert_eq!(store.stats().objects, objects, "every object recovered");
        store
    };
    group.bench_function("open_full_256MiB_16KiB_warm", |b| b.iter(|| drop(open())));
    group.bench_function("open_full_256MiB_16KiB_cold", |b| {
        b.iter_batched(
            || {
                let file = std::fs::File::open(&path).expect("store file");
                nix::fcntl::posix_fadvise(
                    &file,
                    0,
                    0,
                    nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                )
                .expect("fadvise");
            },
            |()| drop(open()),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = store;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_group! {
    name = store_open;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(5));
    targets = recovery
}
criterion_main!(store, store_open);
