//! What a viewer's own request says about caching (RFC 9111 §5.2.1): `no-cache` (and
//! `Pragma: no-cache` without `Cache-Control`), `no-store`, `max-age`, `min-fresh`,
//! `max-stale` and `only-if-cached`, and how they narrow what a stored response may be used for.

use std::time::Duration;

use http::{HeaderMap, header};

use crate::freshness::{Freshness, Policy, evaluate, split_directives};

/// The `Cache-Control` directives a request may carry (RFC 9111 §5.2.1), and `Pragma:
/// no-cache` where it has no `Cache-Control`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCacheControl {
    pub no_cache: bool,
    pub no_store: bool,
    pub max_age: Option<u64>,
    /// `max-stale`: `Some(None)` accepts any staleness, `Some(Some(n))` up to `n` seconds.
    pub max_stale: Option<Option<u64>>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
}

impl RequestCacheControl {
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = RequestCacheControl::default();
        let mut any = false;
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in split_directives(value) {
                any = true;
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let seconds = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "no-cache" => cc.no_cache = true,
                    "no-store" => cc.no_store = true,
                    "max-age" => cc.max_age = seconds().or(cc.max_age),
                    "max-stale" => cc.max_stale = Some(seconds()),
                    "min-fresh" => cc.min_fresh = seconds().or(cc.min_fresh),
                    "only-if-cached" => cc.only_if_cached = true,
                    _ => {}
                }
            }
        }
        if !any
            && headers
                .get_all(header::PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| {
                    v.split(',')
                        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
                })
        {
            cc.no_cache = true;
        }
        cc
    }

    /// What a stored response of `policy` and `age` may be used for, given this request's own
    /// limits. `ignore_no_cache` is the operator's origin shield: a viewer's `no-cache` (or
    /// `max-age=0`) does not force a trip to the origin.
    pub fn evaluate(&self, policy: &Policy, age: Duration, ignore_no_cache: bool) -> Freshness {
        let by_response = evaluate(policy, age);
        let stale = Freshness::Stale {
            if_error: matches!(by_response, Freshness::Stale { if_error: true }),
        };
        if !ignore_no_cache
            && (self.no_cache || self.max_age.is_some_and(|m| age > Duration::from_secs(m)))
        {
            return stale;
        }
        if let Some(min) = self.min_fresh
            && policy.lifetime.saturating_sub(age) < Duration::from_secs(min)
        {
            return stale;
        }
        if by_response != Freshness::Fresh
            && !policy.must_revalidate
            && let Some(limit) = self.max_stale
        {
            let staleness = age.saturating_sub(policy.lifetime);
            if limit.is_none_or(|l| staleness <= Duration::from_secs(l)) {
                return Freshness::StaleWhileRevalidate;
            }
        }
        by_response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freshness::headers;

    #[test]
    fn request_directives_narrow_what_a_stored_response_may_do() {
        let policy = Policy {
            lifetime: Duration::from_secs(100),
            ..Policy::default()
        };
        let at = |secs| Duration::from_secs(secs);
        let rcc = |pairs: &[(&str, &str)]| RequestCacheControl::parse(&headers(pairs));
        let none = rcc(&[]);
        assert_eq!(none.evaluate(&policy, at(50), false), Freshness::Fresh);
        let stale = Freshness::Stale { if_error: false };
        assert_eq!(
            rcc(&[("cache-control", "no-cache")]).evaluate(&policy, at(1), false),
            stale
        );
        assert_eq!(
            rcc(&[("pragma", "no-cache")]).evaluate(&policy, at(1), false),
            stale
        );
        assert_eq!(
            rcc(&[("pragma", "no-cache"), ("cache-control", "max-stale")]).evaluate(
                &policy,
                at(1),
                false
            ),
            Freshness::Fresh,
            "Pragma counts only without Cache-Control"
        );
        assert_eq!(
            rcc(&[("cache-control", "no-cache")]).evaluate(&policy, at(1), true),
            Freshness::Fresh,
            "the operator's shield"
        );
        assert_eq!(
            rcc(&[("cache-control", "max-age=10")]).evaluate(&policy, at(50), false),
            stale
        );
        assert_eq!(
            rcc(&[("cache-control", "min-fresh=60")]).evaluate(&policy, at(50), false),
            stale
        );
        assert_eq!(
            rcc(&[("cache-control", "max-stale=30")]).evaluate(&policy, at(120), false),
            Freshness::StaleWhileRevalidate
        );
        assert_eq!(
            rcc(&[("cache-control", "max-stale=10")]).evaluate(&policy, at(120), false),
            stale
        );
        let strict = Policy {
            must_revalidate: true,
            ..policy
        };
        assert_eq!(
            rcc(&[("cache-control", "max-stale")]).evaluate(&strict, at(120), false),
            stale,
            "must-revalidate beats max-stale"
        );
        assert!(rcc(&[("cache-control", "only-if-cached, no-store")]).only_if_cached);
    }
}
