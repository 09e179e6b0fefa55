//! The store's recovery from damaged files: a store of a dozen objects (the edge's own
//! `CachedMeta`) is written once; each input overwrites bytes of its file or of its index
//! checkpoint (or cuts the checkpoint short), and the store is opened again. Opening may refuse
//! the file, but must not panic; every object it then serves must be byte for byte the one
//! stored (records and bodies carry checksums), and the store must still take a new object.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;
use std::time::SystemTime;

use bytes::Bytes;
use edge::meta::CachedMeta;
use edge::store::{Store, checkpoint_file};
use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;

const CAPACITY: u64 = 2 << 20;

struct Template {
    store: Vec<u8>,
    checkpoint: Option<Vec<u8>>,
    bodies: Vec<Vec<u8>>,
}

fn meta() -> CachedMeta {
    let mut headers = HeaderMap::new();
    headers.insert(
        "cache-control",
        HeaderValue::from_static("public, max-age=60"),
    );
    headers.insert(
        "content-type",
        HeaderValue::from_static("video/iso.segment"),
    );
    let now = SystemTime::now();
    CachedMeta::new(StatusCode::OK, &headers, now, now)
}

static TEMPLATE: LazyLock<Template> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let bodies: Vec<Vec<u8>> = (0..12u32)
        .map(|i| (0..(1 + i * 12_345)).map(|j| (j * 31 + i) as u8).collect())
        .collect();
    {
        let store = Store::<CachedMeta>::open(&path, CAPACITY).expect("open");
        for (i, body) in bodies.iter().enumerate() {
            let chunks = [Bytes::copy_from_slice(body)];
            store
                .insert(&format!("k{i}"), &meta(), &chunks, true)
                .expect("insert");
        }
        store.close().expect("close");
    }
    Template {
        store: std::fs::read(&path).expect("store file"),
        checkpoint: std::fs::read(checkpoint_file(&path)).ok(),
        bodies,
    }
});

/// Applies the input's edits: each is a flag byte (bit 0: the checkpoint, not the store file;
/// bit 1 on the checkpoint: cut it at the offset), a 4-byte offset, a length byte and the bytes.
fn damage(data: &[u8], store: &mut Vec<u8>, checkpoint: &mut Option<Vec<u8>>) {
    let mut rest = data;
    while rest.len() >= 6 {
        let flag = rest[0];
        let offset = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let len = (rest[5] as usize).min(rest.len() - 6);
        let bytes = &rest[6..6 + len];
        rest = &rest[6 + len..];
        let file = match (flag & 1, checkpoint.as_mut()) {
            (1, Some(c)) => c,
            _ => &mut *store,
        };
        if file.is_empty() {
            continue;
        }
        let at = offset % file.len();
        if flag & 3 == 3 {
            file.truncate(at);
            continue;
        }
        for (i, &b) in bytes.iter().enumerate() {
            if let Some(slot) = file.get_mut(at + i) {
                *slot = b;
            }
        }
    }
}

fn check(dir: &Path) {
    let path = dir.join("store");
    let Ok(store) = Store::<CachedMeta>::open(&path, CAPACITY) else {
        return;
    };
    for (i, body) in TEMPLATE.bodies.iter().enumerate() {
        if let Some(object) = store.get(&format!("k{i}")) {
            let Ok(read) = object.body.read(0, object.body.len()) else {
                continue; // a read error is a miss, never wrong bytes
            };
            assert_eq!(
                &read[..],
                &body[..],
                "k{i} served other bytes than were stored"
            );
        }
    }
    let fresh = [Bytes::from_static(b"after the damage")];
    store
        .insert("new", &meta(), &fresh, true)
        .expect("the store still takes objects");
    let again = store.get("new").expect("the new object");
    assert_eq!(
        &again.body.read(0, again.body.len()).expect("read")[..],
        b"after the damage"
    );
}

fuzz_target!(|data: &[u8]| {
    let template = &*TEMPLATE;
    let (mut store, mut checkpoint) = (template.store.clone(), template.checkpoint.clone());
    damage(data, &mut store, &mut checkpoint);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("store"), &store).expect("write store");
    if let Some(c) = &checkpoint {
        std::fs::write(checkpoint_file(&dir.path().join("store")), c).expect("write checkpoint");
    }
    check(dir.path());
});
