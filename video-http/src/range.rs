//! Evaluating a `Range` request header against a representation of known length.
//!
//! RFC 9110 §14.2 lets a server ignore a `Range` header it does not understand, and answer a
//! multi-range request with the whole representation. We do both: a syntactically invalid header
//! or a unit other than `bytes` yields [`RangeOutcome::Full`], and so do two or more satisfiable
//! ranges (video players ask for one range at a time; multipart bodies buy nothing here).
//! Only a header whose every range starts past the end is [`RangeOutcome::Unsatisfiable`] (416).

use std::ops::Range;

/// At most this many ranges are looked at; more is a client trying to make us work.
const MAX_RANGES: usize = 16;

/// What to send for a request's `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable range: send the whole representation with 200.
    Full,
    /// Send these bytes (half-open, never empty, within the length) with 206.
    Partial(Range<u64>),
    /// No range can be satisfied: send 416 with `Content-Range: bytes */<len>`.
    Unsatisfiable,
}

/// Evaluates the value of a `Range` header for a representation of `len` bytes.
pub fn evaluate(header: &str, len: u64) -> RangeOutcome {
    let Some(spec) = strip_bytes_unit(header.trim()) else {
        return RangeOutcome::Full;
    };
    let mut satisfiable = Vec::new();
    let mut count = 0;
    for part in spec.split(',') {
        let part = part.trim();
        if part.is_empty() {
            // RFC 9110 allows empty list elements ("bytes=0-1,,2-3").
            continue;
        }
        count += 1;
        if count > MAX_RANGES {
            return RangeOutcome::Full;
        }
        match parse_one(part) {
            Some(spec) => {
                if let Some(range) = spec.resolve(len) {
                    satisfiable.push(range);
                }
            }
            None => return RangeOutcome::Full,
        }
    }
    match (count, satisfiable.len()) {
        (0, _) => RangeOutcome::Full,
        (_, 0) => RangeOutcome::Unsatisfiable,
        (_, 1) => RangeOutcome::Partial(satisfiable.remove(0)),
        _ => RangeOutcome::Full,
    }
}

/// The value of `Content-Range` for a 206 answer of `range` out of `len` bytes.
pub fn content_range(range: &Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{}", range.start, range.end - 1, len)
}

/// The value of `Content-Range` for a 416 answer.
pub fn unsatisfied_content_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// One syntactically valid range-spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-` (last = None).
    FromTo { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

impl Spec {
    fn resolve(self, len: u64) -> Option<Range<u64>> {
        match self {
            Spec::FromTo { first, last } => {
                if first >= len {
                    return None;
                }
                let end = match last {
                    Some(last) => last.min(len - 1) + 1,
                    None => len,
                };
                Some(first..end)
            }
            Spec::Suffix(0) => None,
            Spec::Suffix(n) => {
                if len == 0 {
                    return None;
                }
                Some(len.saturating_sub(n)..len)
            }
        }
    }
}

fn strip_bytes_unit(header: &str) -> Option<&str> {
    let (unit, rest) = header.split_once('=')?;
    unit.trim().eq_ignore_ascii_case("bytes").then_some(rest)
}

fn parse_one(part: &str) -> Option<Spec> {
    let (first, last) = part.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    if last.is_empty() {
        return Some(Spec::FromTo { first, last: None });
    }
    let last = digits(last)?;
    // A last position before the first makes the whole header invalid (RFC 9110 §14.1.1).
    (last >= first).then_some(Spec::FromTo {
        first,
        last: Some(last),
    })
}

/// Parses 1*DIGIT; overflow is treated as invalid, not wrapped.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate("bytes=0-99", 1000), Partial(0..100));
        assert_eq!(evaluate("bytes=900-", 1000), Partial(900..1000));
        assert_eq!(evaluate("bytes=-100", 1000), Partial(900..1000));
        assert_eq!(evaluate("bytes=990-2000", 1000), Partial(990..1000));
        assert_eq!(evaluate("bytes=-5000", 1000), Partial(0..1000));
        assert_eq!(evaluate("BYTES = 0-0", 1000), Partial(0..1));
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(evaluate("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(evaluate("bytes=5000-6000", 1000), Unsatisfiable);
        assert_eq!(evaluate("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(evaluate("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn invalid_or_foreign_headers_are_ignored() {
        assert_eq!(evaluate("items=0-5", 1000), Full);
        assert_eq!(evaluate("bytes=5-1", 1000), Full);
        assert_eq!(evaluate("bytes=abc", 1000), Full);
        assert_eq!(evaluate("bytes=", 1000), Full);
        assert_eq!(evaluate("bytes=1-2-3", 1000), Full);
        assert_eq!(evaluate("bytes=99999999999999999999999-", 1000), Full);
        assert_eq!(evaluate("", 1000), Full);
    }

    #[test]
    fn several_ranges_get_the_whole_representation() {
        assert_eq!(evaluate("bytes=0-1, 5-9", 1000), Full);
        // Only one of them is satisfiable: that one is served.
        assert_eq!(evaluate("bytes=0-1, 5000-6000", 1000), Partial(0..2));
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(&(0..100), 1000), "bytes 0-99/1000");
        assert_eq!(unsatisfied_content_range(1000), "bytes */1000");
    }

    proptest::proptest! {
        #[test]
        fn partial_ranges_are_inside_and_not_empty(header in "\\PC{0,40}", len in 0u64..10_000) {
            if let Partial(range) = evaluate(&header, len) {
                proptest::prop_assert!(range.start < range.end);
                proptest::prop_assert!(range.end <= len);
            }
        }

        #[test]
        fn numeric_ranges_match_a_model(first in 0u64..2000, span in 0u64..2000, len in 0u64..2000) {
            let last = first + span;
            let outcome = evaluate(&format!("bytes={first}-{last}"), len);
            if first >= len {
                proptest::prop_assert_eq!(outcome, Unsatisfiable);
            } else {
                proptest::prop_assert_eq!(outcome, Partial(first..(last + 1).min(len)));
            }
        }
    }
}
