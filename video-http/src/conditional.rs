//! The one answer to "which status does this request get for this representation?": 200, 206,
//! 304, 412 or 416, decided in RFC 9110 §13.2.2's order. The origin (for its files and
//! generated playlists) and the edge (for stored objects and fills it streams) both call
//! [`decide`], so a viewer gets the same answer from either.
//!
//! The order: `If-Match` (else `If-Unmodified-Since`) false → 412; `If-None-Match` (else, for
//! GET and HEAD, `If-Modified-Since`) false → 304 for GET and HEAD, 412 otherwise; then, for GET
//! and HEAD with a known length, `Range` (ignored when `If-Range` no longer names the
//! representation) → 206 or 416; else 200.
//!
//! Settled where the origin's and the edge's copies used to differ:
//! - A 416 carries `Content-Range: bytes */<len>` and no body (`Content-Length: 0`), from both.
//! - `If-Range` with a date holds only when it equals `Last-Modified` exactly and the entity tag,
//!   if any, is strong (§13.1.5); a representation without `Last-Modified` never matches a date.

use std::ops::Range;
use std::time::SystemTime;

use http::{HeaderMap, Method, header};

use crate::range::{self, RangeOutcome};
use crate::validators;

/// A representation's validators, as it would send them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validators<'a> {
    /// The quoted entity tag (`"x"` or `W/"x"`).
    pub etag: Option<&'a str>,
    pub last_modified: Option<SystemTime>,
}

impl<'a> Validators<'a> {
    /// Reads `ETag` and `Last-Modified` from response headers.
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        Self {
            etag: text(headers, &header::ETAG),
            last_modified: text(headers, &header::LAST_MODIFIED)
                .and_then(|v| httpdate::parse_http_date(v).ok()),
        }
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The representation as it is, with its own status (200 for a 200).
    Full,
    /// 206 with these bytes (half-open, within the length).
    Partial(Range<u64>),
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition of the request is false.
    PreconditionFailed,
    /// 416 with `Content-Range: bytes */<len>`.
    Unsatisfiable,
}

/// Decides the answer to `method` with request `headers` for a representation of `status`
/// with `validators` and `len` bytes (`None` while unknown, as for a body still arriving).
/// Conditionals and ranges apply only to a 200; other statuses are sent as they are.
pub fn decide(
    method: &Method,
    headers: &HeaderMap,
    status: http::StatusCode,
    validators: Validators<'_>,
    len: Option<u64>,
) -> Decision {
    if status != http::StatusCode::OK {
        return Decision::Full;
    }
    let safe = method == Method::GET || method == Method::HEAD;
    // Step 1 and 2: the client's copy must still be the current one. A value that is not text
    // matches nothing.
    if headers.contains_key(header::IF_MATCH) {
        let value = list(headers, &header::IF_MATCH);
        if !value
            .as_deref()
            .is_some_and(|v| match_holds(v, validators.etag))
        {
            return Decision::PreconditionFailed;
        }
    } else if let Some(value) = text(headers, &header::IF_UNMODIFIED_SINCE)
        && let (Ok(since), Some(modified)) = (
            httpdate::parse_http_date(value.trim()),
            validators.last_modified,
        )
        && validators::truncate_to_seconds(modified) > since
    {
        return Decision::PreconditionFailed;
    }
    // Step 3 and 4: the client already has it.
    if headers.contains_key(header::IF_NONE_MATCH) {
        let value = list(headers, &header::IF_NONE_MATCH).unwrap_or_default();
        if validators
            .etag
            .is_some_and(|etag| validators::none_match_hits(&value, etag))
            || value.trim() == "*"
        {
            return if safe {
                Decision::NotModified
            } else {
                Decision::PreconditionFailed
            };
        }
    } else if safe
        && let Some(value) = text(headers, &header::IF_MODIFIED_SINCE)
        && let Some(modified) = validators.last_modified
        && validators::not_modified_since(value, modified)
    {
        return Decision::NotModified;
    }
    // Step 5: ranges, for a known length, while If-Range still names this representation.
    let (Some(len), true) = (len, safe) else {
        return Decision::Full;
    };
    let Some(value) = text(headers, &header::RANGE) else {
        return Decision::Full;
    };
    // An If-Range that is not text names no representation: the whole one is sent.
    if headers.contains_key(header::IF_RANGE)
        && !text(headers, &header::IF_RANGE).is_some_and(|c| if_range_holds(c, validators))
    {
        return Decision::Full;
    }
    match range::evaluate(value, len) {
        RangeOutcome::Full => Decision::Full,
        RangeOutcome::Partial(span) => Decision::Partial(span),
        RangeOutcome::Unsatisfiable => Decision::Unsatisfiable,
    }
}

/// `If-Match`: `*` matches any current representation (and [`decide`] only runs for one, a
/// 200); a list matches by strong comparison.
fn match_holds(value: &str, etag: Option<&str>) -> bool {
    let value = value.trim();
    if value == "*" {
        return true;
    }
    let Some(etag) = etag else {
        return false;
    };
    !etag.starts_with("W/")
        && value
            .split(',')
            .map(str::trim)
            .any(|candidate| candidate == etag)
}

fn if_range_holds(value: &str, validators: Validators<'_>) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return validators
            .etag
            .is_some_and(|etag| validators::if_range_holds(value, etag, SystemTime::UNIX_EPOCH));
    }
    match validators.last_modified {
        // A weak entity tag means the representation may change within a second: a date is then
        // no strong validator.
        Some(modified) if !validators.etag.is_some_and(|e| e.starts_with("W/")) => {
            validators::if_range_holds(value, validators.etag.unwrap_or(""), modified)
        }
        _ => false,
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A list-valued header sent on several lines, combined as one (RFC 9110 §5.3); `None` if any
/// line is not text.
fn list(headers: &HeaderMap, name: &header::HeaderName) -> Option<String> {
    let lines: Option<Vec<&str>> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().ok())
        .collect();
    Some(lines?.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use proptest::prelude::*;
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        h
    }

    const V: Validators<'static> = Validators {
        etag: Some("\"abc\""),
        last_modified: Some(SystemTime::UNIX_EPOCH),
    };

    fn v(etag: Option<&'static str>, modified: Option<u64>) -> Validators<'static> {
        Validators {
            etag,
            last_modified: modified.map(t),
        }
    }

    fn get(pairs: &[(&str, &str)], validators: Validators<'_>, len: u64) -> Decision {
        decide(
            &Method::GET,
            &req(pairs),
            StatusCode::OK,
            validators,
            Some(len),
        )
    }

    #[test]
    fn the_rfc_order() {
        let lm = validators::http_date(t(1_700_000_000));
        let old = validators::http_date(t(1_600_000_000));
        let val = v(Some("\"abc\""), Some(1_700_000_000));
        assert_eq!(get(&[], val, 10), Decision::Full);
        assert_eq!(
            get(&[("if-none-match", "\"abc\"")], val, 10),
            Decision::NotModified
        );
        // If-None-Match wins over If-Modified-Since, both ways.
        assert_eq!(
            get(
                &[("if-none-match", "\"x\""), ("if-modified-since", &lm)],
                val,
                10
            ),
            Decision::Full
        );
        assert_eq!(
            get(&[("if-modified-since", &lm)], val, 10),
            Decision::NotModified
        );
        assert_eq!(get(&[("if-modified-since", &old)], val, 10), Decision::Full);
        assert_eq!(
            get(&[("if-match", "\"x\"")], val, 10),
            Decision::PreconditionFailed
        );
        assert_eq!(
            get(&[("if-unmodified-since", &old)], val, 10),
            Decision::PreconditionFailed
        );
        assert_eq!(
            get(&[("if-unmodified-since", &lm)], val, 10),
            Decision::Full
        );
        // A failed If-Match comes before a 304 or a range.
        assert_eq!(
            get(
                &[
                    ("if-match", "\"x\""),
                    ("if-none-match", "\"abc\""),
                    ("range", "bytes=0-1")
                ],
                val,
                10
            ),
            Decision::PreconditionFailed
        );
        assert_eq!(
            get(&[("range", "bytes=2-4")], val, 10),
            Decision::Partial(2..5)
        );
        assert_eq!(
            get(&[("range", "bytes=20-")], val, 10),
            Decision::Unsatisfiable
        );
        // Unsafe methods: a matching If-None-Match is a 412, never a 304.
        assert_eq!(
            decide(
                &Method::PUT,
                &req(&[("if-none-match", "*")]),
                StatusCode::OK,
                val,
                Some(10)
            ),
            Decision::PreconditionFailed
        );
    }

    #[test]
    fn lists_on_several_lines_and_stars() {
        let val = v(Some("\"b\""), Some(1_700_000_000));
        assert_eq!(
            get(
                &[("if-none-match", "\"a\""), ("if-none-match", "\"b\"")],
                val,
                10
            ),
            Decision::NotModified,
            "the second line counts"
        );
        assert_eq!(
            get(&[("if-match", "\"a\""), ("if-match", "\"b\"")], val, 10),
            Decision::Full
        );
        // `*` holds for any current representation, with or without an entity tag.
        assert_eq!(get(&[("if-match", "*")], v(None, None), 10), Decision::Full);
        assert_eq!(
            get(&[("if-none-match", "*")], v(None, None), 10),
            Decision::NotModified
        );
        // A value that is not text matches nothing: If-Match fails, If-Range sends it whole.
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_MATCH,
            http::HeaderValue::from_bytes(b"\"\xff\"").unwrap(),
        );
        assert_eq!(
            decide(&Method::GET, &h, StatusCode::OK, val, Some(10)),
            Decision::PreconditionFailed
        );
        let mut h = req(&[("range", "bytes=0-1")]);
        h.insert(
            header::IF_RANGE,
            http::HeaderValue::from_bytes(b"\"\xff\"").unwrap(),
        );
        assert_eq!(
            decide(&Method::GET, &h, StatusCode::OK, val, Some(10)),
            Decision::Full
        );
    }

    #[test]
    fn if_range_with_tags_and_dates() {
        let lm = validators::http_date(t(1_700_000_000));
        let strong = v(Some("\"abc\""), Some(1_700_000_000));
        let range = ("range", "bytes=0-1");
        assert_eq!(
            get(&[range, ("if-range", "\"abc\"")], strong, 10),
            Decision::Partial(0..2)
        );
        assert_eq!(
            get(&[range, ("if-range", "\"old\"")], strong, 10),
            Decision::Full
        );
        assert_eq!(
            get(&[range, ("if-range", &lm)], strong, 10),
            Decision::Partial(0..2)
        );
        // Without Last-Modified a date never matches (the edge once compared it to the epoch).
        assert_eq!(
            get(&[range, ("if-range", &lm)], v(Some("\"abc\""), None), 10),
            Decision::Full
        );
        // Weak tags never validate a range, by tag or by date.
        let weak = v(Some("W/\"abc\""), Some(1_700_000_000));
        assert_eq!(
            get(&[range, ("if-range", "W/\"abc\"")], weak, 10),
            Decision::Full
        );
        assert_eq!(get(&[range, ("if-range", &lm)], weak, 10), Decision::Full);
        // A date with only Last-Modified.
        assert_eq!(
            get(
                &[range, ("if-range", &lm)],
                v(None, Some(1_700_000_000)),
                10
            ),
            Decision::Partial(0..2)
        );
    }

    #[test]
    fn only_a_200_of_known_length_gets_ranges_and_304s() {
        let h = req(&[("range", "bytes=0-1"), ("if-none-match", "\"abc\"")]);
        assert_eq!(
            decide(&Method::GET, &h, StatusCode::NOT_FOUND, V, Some(10)),
            Decision::Full
        );
        let h = req(&[("range", "bytes=0-1")]);
        assert_eq!(
            decide(&Method::GET, &h, StatusCode::OK, V, None),
            Decision::Full
        );
        assert_eq!(
            decide(&Method::HEAD, &h, StatusCode::OK, V, Some(10)),
            Decision::Partial(0..2)
        );
    }

    proptest! {
        /// Whatever the request says, the answer is one of the five, a partial range lies
        /// inside the representation, and a 304 is only given to GET and HEAD.
        #[test]
        fn decisions_are_well_formed(
            inm in proptest::option::of("[\"W/a-c*, ]{0,12}"),
            ims in proptest::option::of(0u64..3_000_000_000),
            im in proptest::option::of("[\"W/a-c*, ]{0,12}"),
            range in proptest::option::of("[bytes=0-9,\\- ]{0,16}"),
            if_range in proptest::option::of("[\"W/a-c]{0,6}"),
            len in 0u64..100,
            post in any::<bool>(),
            weak in any::<bool>(),
        ) {
            let mut h = HeaderMap::new();
            let mut put = |name: header::HeaderName, value: &str| {
                if let Ok(value) = value.parse() { h.insert(name, value); }
            };
            if let Some(x) = &inm { put(header::IF_NONE_MATCH, x); }
            if let Some(x) = ims { put(header::IF_MODIFIED_SINCE, &validators::http_date(t(x))); }
            if let Some(x) = &im { put(header::IF_MATCH, x); }
            if let Some(x) = &range { put(header::RANGE, x); }
            if let Some(x) = &if_range { put(header::IF_RANGE, x); }
            let method = if post { Method::POST } else { Method::GET };
            let etag = if weak { "W/\"abc\"" } else { "\"abc\"" };
            let val = Validators { etag: Some(etag), last_modified: Some(t(1_700_000_000)) };
            match decide(&method, &h, StatusCode::OK, val, Some(len)) {
                Decision::Partial(span) => {
                    prop_assert!(!post);
                    prop_assert!(span.start < span.end && span.end <= len);
                }
                Decision::NotModified | Decision::Unsatisfiable => prop_assert!(!post),
                Decision::Full | Decision::PreconditionFailed => {}
            }
        }
    }
}
