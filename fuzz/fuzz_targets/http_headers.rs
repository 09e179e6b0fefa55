//! The header parsing an edge does for every request and every origin response: `Cache-Control`
//! (request and response), `Age`, freshness, storability, `Range`, and the conditional decision
//! with `ETag`/`Last-Modified` validators. Input: header lines (`name: value`), the first line
//! the status and the representation's length. Nothing may panic, and the answers must be
//! consistent: a satisfiable range lies inside the representation.
#![no_main]

use std::time::{Duration, SystemTime};

use edge::freshness::{self, CacheControl};
use edge::request_cc::RequestCacheControl;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use libfuzzer_sys::fuzz_target;
use video_http::conditional::{self, Validators};
use video_http::range::{self, RangeOutcome};

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let status = StatusCode::from_u16(100 + u16::from(*first.first().unwrap_or(&100)) % 500)
        .unwrap_or(StatusCode::OK);
    let len = first.get(1..9).map_or(1000, |b| {
        u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) >> 16
    });
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    let cc = CacheControl::parse(&headers);
    let policy = freshness::policy(&headers, &cc);
    let _ = freshness::storable(&headers, status, &headers, &cc);
    let _ = freshness::personal(&headers, &cc);
    let age = freshness::age_value(&headers);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let initial = freshness::initial_age(&headers, now, now);
    let current = freshness::current_age(initial, now, now + Duration::from_secs(age.min(1 << 40)));
    let _ = freshness::evaluate(&policy, current);
    let request_cc = RequestCacheControl::parse(&headers);
    let _ = request_cc.evaluate(&policy, current, false);

    for value in headers.get_all(http::header::RANGE) {
        if let Ok(text) = value.to_str()
            && let RangeOutcome::Partial(r) = range::evaluate(text, len)
        {
            assert!(
                r.start < r.end && r.end <= len,
                "{text:?} on {len} bytes gave {r:?}"
            );
        }
    }
    let validators = Validators::from_headers(&headers);
    for method in [Method::GET, Method::HEAD, Method::POST] {
        let _ = conditional::decide(&method, &headers, status, validators, Some(len));
        let _ = conditional::decide(&method, &headers, status, validators, None);
    }
});
