//! Targeted cache control (RFC 9213): an origin can tell CDNs how to cache apart from what it
//! tells browsers. The first of these fields a response carries, with at least one directive
//! that applies to us, replaces `Cache-Control` and `Expires` for the edge's own storing and
//! freshness; viewers still get the origin's `Cache-Control` as it was.
//!
//! - `Meridian-Cache-Control`: for Meridian edges only.
//! - `CDN-Cache-Control` (RFC 9213): for every CDN; a structured-field dictionary (RFC 8941),
//!   so a field that does not parse as one is ignored whole.
//! - `Surrogate-Control` (the W3C Edge Architecture note): `Cache-Control`-like directives,
//!   case-insensitive; a directive with a `;target` names one surrogate and is not ours.

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue, header};

/// The targeted fields, most specific first.
const TARGETED: [&str; 3] = [
    "meridian-cache-control",
    "cdn-cache-control",
    "surrogate-control",
];

/// The headers the edge's caching decisions read: `headers` itself, or, when a targeted field
/// applies, `headers` with its directives in place of `Cache-Control` and without `Expires`.
pub fn for_this_cache(headers: &HeaderMap) -> Cow<'_, HeaderMap> {
    for name in TARGETED {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            continue;
        }
        let joined = values.join(", ");
        let directives = if name == "surrogate-control" {
            surrogate_directives(&joined)
        } else {
            dictionary_directives(&joined)
        };
        let Some(directives) = directives.filter(|d| !d.is_empty()) else {
            continue;
        };
        let Ok(value) = HeaderValue::from_str(&directives.join(", ")) else {
            continue;
        };
        let mut effective = headers.clone();
        effective.remove(header::EXPIRES);
        effective.insert(header::CACHE_CONTROL, value);
        return Cow::Owned(effective);
    }
    Cow::Borrowed(headers)
}

/// `CDN-Cache-Control` as a dictionary: each member `key` or `key=value`, keys lower-case
/// (`[a-z*][a-z0-9_.*-]*`), values integers, tokens or quoted strings. `None` if it does not
/// parse (RFC 9213 §2.1: the field is then ignored).
fn dictionary_directives(value: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for member in value.split(',') {
        let member = member.trim();
        let (key, item) = match member.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (member, None),
        };
        let mut chars = key.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '*');
        if !first_ok
            || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.*".contains(c))
        {
            return None;
        }
        match item {
            None => out.push(key.to_owned()),
            Some(v) => {
                let v = v.split(';').next().unwrap_or(v);
                let integer = v.strip_prefix('-').unwrap_or(v);
                let ok = (!integer.is_empty() && integer.bytes().all(|b| b.is_ascii_digit()))
                    || (v.len() >= 2 && v.starts_with('"') && v.ends_with('"'))
                    || v.chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '*');
                if !ok {
                    return None;
                }
                out.push(format!("{key}={v}"));
            }
        }
    }
    Some(out)
}

/// `Surrogate-Control` directives that are for every surrogate (no `;target`), lower-cased.
fn surrogate_directives(value: &str) -> Option<Vec<String>> {
    Some(
        value
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty() && !d.contains(';'))
            .map(str::to_ascii_lowercase)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn cc(headers: &HeaderMap) -> String {
        for_this_cache(headers)
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn the_most_specific_applicable_field_wins() {
        let plain = h(&[("cache-control", "max-age=1"), ("expires", "x")]);
        assert!(matches!(for_this_cache(&plain), Cow::Borrowed(_)));
        let cdn = h(&[
            ("cache-control", "no-store"),
            ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("cdn-cache-control", "max-age=600"),
            ("surrogate-control", "no-store"),
        ]);
        assert_eq!(cc(&cdn), "max-age=600");
        assert!(!for_this_cache(&cdn).contains_key(header::EXPIRES));
        let ours = h(&[
            ("cdn-cache-control", "max-age=600"),
            ("meridian-cache-control", "no-store"),
        ]);
        assert_eq!(cc(&ours), "no-store");
    }

    #[test]
    fn unparsable_or_foreign_fields_are_ignored() {
        // Not a dictionary (upper case key): ignored, Cache-Control stands.
        let bad = h(&[
            ("cache-control", "max-age=1"),
            ("cdn-cache-control", "Max-Age=600"),
        ]);
        assert_eq!(cc(&bad), "max-age=1");
        let empty = h(&[("cache-control", "max-age=1"), ("cdn-cache-control", "")]);
        assert_eq!(cc(&empty), "max-age=1");
        // Surrogate-Control is case-insensitive; a targeted directive is another surrogate's.
        assert_eq!(
            cc(&h(&[("surrogate-control", "MaX-aGe=3600")])),
            "max-age=3600"
        );
        let other = h(&[
            ("cache-control", "max-age=1"),
            ("surrogate-control", "max-age=3600;not-for-you"),
        ]);
        assert_eq!(cc(&other), "max-age=1");
    }
}
