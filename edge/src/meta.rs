//! What the edge stores beside a body: the response's status and end-to-end headers, when it
//! was received, how old it already was, and the freshness policy decided then.
//!
//! The encoding is a small versioned binary format (length-prefixed fields) so that recovery
//! after a restart rebuilds exactly the meta the edge had; a record whose meta fails to decode
//! is dropped like a corrupt one.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::freshness::{self, Policy};
use crate::store;

const VERSION: u8 = 1;

/// A stored response's meta.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedMeta {
    pub status: u16,
    /// End-to-end headers as the origin sent them (hop-by-hop, `Set-Cookie` and `Age` removed),
    /// in one block, as the record stores them: for each, a `u32` name length, the name, a
    /// `u32` value length, the value. One allocation per object instead of two per header
    /// (the index keeps every object's meta in RAM); values are handed out as slices of it.
    headers: Bytes,
    /// When the response arrived, in milliseconds since the epoch.
    pub response_time_ms: u64,
    /// Its corrected initial age, in seconds.
    pub initial_age: u64,
    pub policy: Policy,
    /// `headers` as a map, built at its first use: a body held in memory is served with one
    /// meta for all its hits, which then copy the map instead of parsing every name and value
    /// again (1 KiB hits: 0.96× the CPU per request, `benches/results/hits-ab.jsonl`).
    parsed: Parsed,
}

/// A map made from the block once; not part of the meta's value (equal metas are equal
/// whether or not it was made).
#[derive(Clone, Default)]
struct Parsed(std::sync::OnceLock<HeaderMap>);

impl PartialEq for Parsed {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Parsed")
    }
}

/// Headers that describe one connection, not the response (RFC 9110 §7.6.1), plus those the
/// edge recomputes or must not share between viewers.
pub fn is_not_stored(name: &HeaderName) -> bool {
    crate::forward::is_hop_by_hop(name)
        || matches!(
            name.as_str(),
            "set-cookie" | "age" | "x-cache" | "x-served-by"
        )
}

impl CachedMeta {
    /// Builds the meta of a response that arrived at `response_time` for a request sent at
    /// `request_time`.
    pub fn new(
        status: StatusCode,
        headers: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        // Targeted fields (CDN-Cache-Control, ...) decide the edge's own freshness; the headers
        // stored for viewers stay the origin's.
        let decisive = crate::targeted::for_this_cache(headers);
        let cc = freshness::CacheControl::parse(&decisive);
        let end_to_end = crate::forward::end_to_end(headers);
        let mut block = Vec::new();
        for (name, value) in end_to_end.iter().filter(|(name, _)| !is_not_stored(name)) {
            push_field(&mut block, name.as_str().as_bytes());
            push_field(&mut block, value.as_bytes());
        }
        Self {
            status: status.as_u16(),
            headers: Bytes::from(block),
            response_time_ms: freshness::to_millis(response_time),
            initial_age: freshness::initial_age(headers, request_time, response_time),
            policy: freshness::policy(&decisive, &cc),
            parsed: Parsed::default(),
        }
    }

    /// The stored headers, in order: name and value (a slice of the block).
    fn fields(&self) -> impl Iterator<Item = (&str, Bytes)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let (name, next) = field(&self.headers, at)?;
            let (value, next) = field(&self.headers, next)?;
            at = next;
            let name = std::str::from_utf8(&self.headers[name]).ok()?;
            Some((name, self.headers.slice(value)))
        })
    }

    /// The stored headers as a map (a copy of the one made at the first call).
    pub fn header_map(&self) -> HeaderMap {
        self.parsed
            .0
            .get_or_init(|| {
                // Room in its table for what a response adds (Age, X-Cache, X-Served-By,
                // CORS): a copy keeps the table's size, so those do not make it grow.
                let mut map = HeaderMap::with_capacity(self.fields().count() + 6);
                for (name, value) in self.fields() {
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_maybe_shared(value),
                    ) {
                        map.append(name, value);
                    }
                }
                map
            })
            .clone()
    }

    /// One stored header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut at = 0;
        while let Some((n, next)) = field(&self.headers, at) {
            let (v, next) = field(&self.headers, next)?;
            if &self.headers[n] == name.as_bytes() {
                return std::str::from_utf8(&self.headers[v]).ok();
            }
            at = next;
        }
        None
    }

    /// Until when the response is fresh (None: it never is, or `no-cache` says every use
    /// needs revalidating).
    pub fn fresh_until(&self) -> Option<SystemTime> {
        freshness::fresh_until(
            &self.policy,
            self.initial_age,
            freshness::from_millis(self.response_time_ms),
        )
    }

    /// The age of the stored response at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        freshness::current_age(
            self.initial_age,
            freshness::from_millis(self.response_time_ms),
            now,
        )
    }

    /// The meta after a 304 (RFC 9111 §4.3.4): the 304's headers replace the stored ones of the
    /// same name, and freshness restarts from the 304's arrival.
    pub fn refreshed(
        &self,
        not_modified: &HeaderMap,
        request_time: SystemTime,
        response_time: SystemTime,
    ) -> Self {
        let mut merged = self.header_map();
        let not_modified = crate::forward::end_to_end(not_modified);
        for name in not_modified.keys() {
            // What describes the stored body itself stays as it was: a 304 has no body, and a
            // validator or encoding from it might not match the bytes we hold.
            if is_not_stored(name)
                || matches!(
                    name.as_str(),
                    "content-length"
                        | "content-encoding"
                        | "content-range"
                        | "content-md5"
                        | "etag"
                )
            {
                continue;
            }
            merged.remove(name);
            for value in not_modified.get_all(name) {
                merged.append(name.clone(), value.clone());
            }
        }
        Self::new(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK),
            &merged,
            request_time,
            response_time,
        )
    }
}

impl store::Meta for CachedMeta {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.headers.len());
        out.push(VERSION);
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(&self.response_time_ms.to_le_bytes());
        out.extend_from_slice(&self.initial_age.to_le_bytes());
        let p = &self.policy;
        for d in [p.lifetime, p.stale_while_revalidate, p.stale_if_error] {
            out.extend_from_slice(&(d.as_millis() as u64).to_le_bytes());
        }
        out.push(u8::from(p.no_cache) | (u8::from(p.must_revalidate) << 1));
        let count = self.fields().count() as u32;
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&self.headers);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        let status = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        let response_time_ms = r.u64()?;
        let initial_age = r.u64()?;
        let lifetime = Duration::from_millis(r.u64()?);
        let stale_while_revalidate = Duration::from_millis(r.u64()?);
        let stale_if_error = Duration::from_millis(r.u64()?);
        let flags = r.u8()?;
        let count = r.u32()? as usize;
        // The block must hold exactly `count` fields, each name UTF-8: checked once here, so
        // reading it later cannot fail.
        let block = r.0;
        let mut at = 0;
        for _ in 0..count {
            let (name, next) = field(block, at)?;
            std::str::from_utf8(&block[name]).ok()?;
            let (_, next) = field(block, next)?;
            at = next;
        }
        if at != block.len() {
            return None;
        }
        Some(Self {
            status,
            headers: Bytes::copy_from_slice(block),
            response_time_ms,
            initial_age,
            policy: Policy {
                lifetime,
                stale_while_revalidate,
                stale_if_error,
                no_cache: flags & 1 != 0,
                must_revalidate: flags & 2 != 0,
            },
            parsed: Parsed::default(),
        })
    }
}

/// Appends one length-prefixed field to a header block.
fn push_field(block: &mut Vec<u8>, bytes: &[u8]) {
    block.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    block.extend_from_slice(bytes);
}

/// The field of `block` at `at`: its byte range and where the next one starts.
fn field(block: &[u8], at: usize) -> Option<(std::ops::Range<usize>, usize)> {
    let len = u32::from_le_bytes(block.get(at..at + 4)?.try_into().ok()?) as usize;
    let start = at + 4;
    let end = start.checked_add(len)?;
    (end <= block.len()).then_some((start..end, end))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Meta;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut h = HeaderMap::new();
        h.insert(
            "cache-control",
            HeaderValue::from_static("max-age=60, stale-if-error=30"),
        );
        h.insert("etag", HeaderValue::from_static("\"x\""));
        h.insert("set-cookie", HeaderValue::from_static("a=b"));
        h.insert("connection", HeaderValue::from_static("close"));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let meta = CachedMeta::new(StatusCode::OK, &h, t, t);
        assert!(meta.header("set-cookie").is_none() && meta.header("connection").is_none());
        assert_eq!(meta.policy.lifetime, Duration::from_secs(60));
        let bytes = meta.encode();
        assert_eq!(CachedMeta::decode(&bytes), Some(meta));
        assert_eq!(CachedMeta::decode(&bytes[..bytes.len() - 1]), None);
        assert_eq!(CachedMeta::decode(&[]), None);
    }

    #[test]
    fn a_304_refreshes_headers_and_freshness() {
        let mut h = HeaderMap::new();
        h.insert("cache-control", HeaderValue::from_static("max-age=1"));
        h.insert("etag", HeaderValue::from_static("\"x\""));
        h.insert("content-type", HeaderValue::from_static("video/mp4"));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let meta = CachedMeta::new(StatusCode::OK, &h, t, t);
        let mut nm = HeaderMap::new();
        nm.insert("cache-control", HeaderValue::from_static("max-age=100"));
        let later = t + Duration::from_secs(50);
        let fresh = meta.refreshed(&nm, later, later);
        assert_eq!(fresh.policy.lifetime, Duration::from_secs(100));
        assert_eq!(fresh.header("content-type"), Some("video/mp4"));
        assert_eq!(
            fresh.age(later + Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = CachedMeta::decode(&bytes);
        }
    }
}
