//! Validator matching for conditional requests (RFC 9110 §13).
//!
//! `If-None-Match` uses weak comparison, so a `W/"x"` the client holds matches our `"x"`;
//! `If-Range` uses strong comparison, as the RFC requires, because a range stitched from two
//! different representations would be corrupt video.

use std::time::SystemTime;

/// True when an `If-None-Match` header value matches `etag` (our quoted entity tag): the
/// request's condition is then false and a GET or HEAD gets 304.
pub fn none_match_hits(header: &str, etag: &str) -> bool {
    let header = header.trim();
    if header == "*" {
        return true;
    }
    let ours = opaque(etag);
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| !candidate.is_empty() && opaque(candidate) == ours)
}

/// True when `If-Modified-Since` says the client's copy is current: our `modified` time
/// (truncated to whole seconds, as HTTP dates are) is not after the header's date. An
/// unparseable date is ignored, as RFC 9110 requires.
pub fn not_modified_since(header: &str, modified: SystemTime) -> bool {
    match httpdate::parse_http_date(header.trim()) {
        Ok(since) => truncate_to_seconds(modified) <= since,
        Err(_) => false,
    }
}

/// True when an `If-Range` value still names our representation, so the range may be served.
/// An entity tag must match strongly; a date must equal our `Last-Modified` exactly.
pub fn if_range_holds(header: &str, etag: &str, modified: SystemTime) -> bool {
    let header = header.trim();
    if header.starts_with('"') {
        return !etag.starts_with("W/") && header == etag;
    }
    if header.starts_with("W/") {
        return false;
    }
    match httpdate::parse_http_date(header) {
        Ok(date) => date == truncate_to_seconds(modified),
        Err(_) => false,
    }
}

/// The value of `Last-Modified` for a time.
pub fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// `time` without its fraction of a second, as an HTTP date carries it.
pub fn truncate_to_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(since.as_secs()),
        Err(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn none_match_uses_weak_comparison() {
        assert!(none_match_hits("\"abc\"", "\"abc\""));
        assert!(none_match_hits("W/\"abc\"", "\"abc\""));
        assert!(none_match_hits("\"x\", \"abc\"", "\"abc\""));
        assert!(none_match_hits("*", "\"abc\""));
        assert!(!none_match_hits("\"abd\"", "\"abc\""));
        assert!(!none_match_hits("", "\"abc\""));
    }

    #[test]
    fn modified_since_compares_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let same_second = http_date(t);
        assert!(not_modified_since(&same_second, t));
        let earlier = http_date(t - Duration::from_secs(10));
        assert!(!not_modified_since(&earlier, t));
        assert!(!not_modified_since("not a date", t));
    }

    #[test]
    fn if_range_is_strong() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(if_range_holds("\"abc\"", "\"abc\"", t));
        assert!(!if_range_holds("W/\"abc\"", "\"abc\"", t));
        assert!(!if_range_holds("\"abd\"", "\"abc\"", t));
        assert!(if_range_holds(&http_date(t), "\"abc\"", t));
        assert!(!if_range_holds(
            &http_date(t + Duration::from_secs(1)),
            "\"abc\"",
            t
        ));
    }
}
