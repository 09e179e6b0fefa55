//! Shared-cache semantics (RFC 9111): may a response be stored, for how long is it fresh, how
//! old is it, and may a stale copy be served.
//!
//! Everything here is pure; callers pass the clock (`SystemTime`, since stored objects outlive
//! the process and a restart must not reset their age).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode, header};

/// The `Cache-Control` directives a shared cache acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub immutable: bool,
}

impl CacheControl {
    /// May a response with these directives be stored for, or served to, a request with
    /// credentials (RFC 9111 §3.5)?
    pub fn allows_credentialed(&self) -> bool {
        self.public || self.s_maxage.is_some() || self.must_revalidate
    }

    /// Parses every `Cache-Control` field of `headers`. Unknown directives are ignored and a
    /// malformed number drops only that directive, as RFC 9111 §4.2.1 asks. A `no-cache` or
    /// `private` with a field list is treated as the unqualified directive (stricter, safe).
    pub fn parse(headers: &HeaderMap) -> Self {
        let mut cc = CacheControl::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in split_directives(value) {
                let (name, arg) = match directive.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                    None => (directive.trim(), None),
                };
                let seconds = || arg.and_then(|a| a.parse::<u64>().ok());
                match name.to_ascii_lowercase().as_str() {
                    "max-age" => cc.max_age = seconds().or(cc.max_age),
                    "s-maxage" => cc.s_maxage = seconds().or(cc.s_maxage),
                    "no-store" => cc.no_store = true,
                    "no-cache" => cc.no_cache = true,
                    "private" => cc.private = true,
                    "public" => cc.public = true,
                    "must-revalidate" | "proxy-revalidate" => cc.must_revalidate = true,
                    "stale-while-revalidate" => cc.stale_while_revalidate = seconds(),
                    "stale-if-error" => cc.stale_if_error = seconds(),
                    "immutable" => cc.immutable = true,
                    _ => {}
                }
            }
        }
        cc
    }
}

/// Splits a Cache-Control value on commas outside quoted strings.
pub(crate) fn split_directives(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

/// What the cache decided about a response when it stored it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Freshness lifetime.
    pub lifetime: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    /// `no-cache`: every use needs a successful revalidation first.
    pub no_cache: bool,
    /// `must-revalidate`: never served stale, not even on origin errors.
    pub must_revalidate: bool,
}

/// Statuses a response may be stored with when it gives explicit freshness: every final status
/// the edge understands, except 206 (partial responses are not stored yet) and 304 (which
/// refreshes a stored response instead).
fn storable_status(status: StatusCode) -> bool {
    (200..600).contains(&status.as_u16()) && !matches!(status.as_u16(), 206 | 304)
}

/// Statuses that are cacheable by default (RFC 9110 §15.1): stored without explicit freshness,
/// given a validator, and fresh for a heuristic lifetime.
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// May this response to a GET be stored by a shared cache?
pub fn storable(
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
    cc: &CacheControl,
) -> bool {
    if !storable_status(status) || cc.no_store || personal(response, cc) {
        return false;
    }
    // A request's no-store covers the response to it too (RFC 9111 §5.2.1.5).
    if crate::request_cc::RequestCacheControl::parse(request).no_store {
        return false;
    }
    // RFC 9111 §3.5: a request with credentials is stored only with explicit permission.
    if request.contains_key(header::AUTHORIZATION) && !cc.allows_credentialed() {
        return false;
    }
    // Without explicit freshness or a validator to revalidate with, storing buys nothing
    // except for heuristically cacheable statuses.
    let explicit =
        cc.s_maxage.is_some() || cc.max_age.is_some() || response.contains_key(header::EXPIRES);
    let validator =
        response.contains_key(header::ETAG) || response.contains_key(header::LAST_MODIFIED);
    explicit || ((validator || cc.public) && heuristically_cacheable(status))
}

/// Is this response one viewer's own, never to be given to another: `private`, a cookie the
/// origin did not mark `public`, or `Vary: *`?
pub fn personal(response: &HeaderMap, cc: &CacheControl) -> bool {
    cc.private
        || (response.contains_key(header::SET_COOKIE) && !cc.public)
        || crate::key::varies_on_everything(response)
}

/// The storage policy for a response received at `response_time`.
pub fn policy(response: &HeaderMap, cc: &CacheControl) -> Policy {
    let lifetime = if let Some(s) = cc.s_maxage.or(cc.max_age) {
        Duration::from_secs(s)
    } else if let Some(expires) = date(response, header::EXPIRES) {
        let date = date(response, header::DATE).unwrap_or_else(SystemTime::now);
        expires.duration_since(date).unwrap_or_default()
    } else if let (Some(modified), Some(date)) = (
        date(response, header::LAST_MODIFIED),
        date(response, header::DATE),
    ) {
        // Heuristic freshness (RFC 9111 §4.2.2): a tenth of the time since modification,
        // at most a day.
        (date.duration_since(modified).unwrap_or_default() / 10).min(Duration::from_secs(86_400))
    } else {
        Duration::ZERO
    };
    let lifetime = if cc.no_cache {
        Duration::ZERO
    } else {
        lifetime
    };
    Policy {
        lifetime,
        stale_while_revalidate: Duration::from_secs(cc.stale_while_revalidate.unwrap_or(0)),
        stale_if_error: Duration::from_secs(cc.stale_if_error.unwrap_or(0)),
        no_cache: cc.no_cache,
        must_revalidate: cc.must_revalidate || cc.no_cache,
    }
}

/// What a cache takes as an age it cannot represent, or one it cannot read (RFC 9111 §1.2.2):
/// such a response is stale at once.
pub const AGE_OVERFLOW: u64 = 1 << 31;

/// The `Age` a response came with: absent is 0; one field line of digits is its value (at most
/// 2^31); anything else (a list, a second line, a sign, a fraction, parameters) is invalid,
/// and an invalid `Age` makes the response stale (RFC 9111 §5.1).
pub fn age_value(response: &HeaderMap) -> u64 {
    let mut lines = response.get_all(header::AGE).iter();
    let Some(first) = lines.next() else {
        return 0;
    };
    if lines.next().is_some() {
        return AGE_OVERFLOW;
    }
    match first.to_str().map(str::trim) {
        Ok(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v
            .parse::<u64>()
            .map_or(AGE_OVERFLOW, |n| n.min(AGE_OVERFLOW)),
        _ => AGE_OVERFLOW,
    }
}

/// The corrected initial age of a response (RFC 9111 §4.2.3), in whole seconds.
pub fn initial_age(
    response: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> u64 {
    let age_value = age_value(response);
    let apparent = date(response, header::DATE)
        .and_then(|d| response_time.duration_since(d).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or_default()
        .as_secs();
    apparent.max(age_value.saturating_add(delay))
}

/// How old a stored response is now.
pub fn current_age(initial_age: u64, response_time: SystemTime, now: SystemTime) -> Duration {
    Duration::from_secs(initial_age) + now.duration_since(response_time).unwrap_or_default()
}

/// Until when a response of `initial_age` that arrived at `response_time` is fresh under
/// `policy` (None: it never is, or `no-cache` says every use needs revalidating).
pub fn fresh_until(
    policy: &Policy,
    initial_age: u64,
    response_time: SystemTime,
) -> Option<SystemTime> {
    let left = policy
        .lifetime
        .checked_sub(Duration::from_secs(initial_age))
        .filter(|left| !left.is_zero() && !policy.no_cache)?;
    Some(response_time + left)
}

/// What a stored response may be used for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it, and revalidate in the background.
    StaleWhileRevalidate,
    /// Revalidate first; if the origin fails, serving it is allowed when `if_error` is true.
    Stale { if_error: bool },
}

/// Evaluates a stored response of age `age` under `policy`.
pub fn evaluate(policy: &Policy, age: Duration) -> Freshness {
    if !policy.no_cache && age < policy.lifetime {
        return Freshness::Fresh;
    }
    if policy.must_revalidate {
        return Freshness::Stale { if_error: false };
    }
    let staleness = age.saturating_sub(policy.lifetime);
    if staleness < policy.stale_while_revalidate {
        return Freshness::StaleWhileRevalidate;
    }
    Freshness::Stale {
        if_error: staleness < policy.stale_if_error,
    }
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
}

/// Milliseconds since the epoch, for storing times.
pub fn to_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The inverse of [`to_millis`].
pub fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Header maps from name/value pairs, for the tests of this module and its neighbours.
#[cfg(test)]
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(v).expect("header value"),
        );
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directives() {
        let cc = CacheControl::parse(&headers(&[
            ("cache-control", "public, max-age=60, s-maxage=\"30\""),
            (
                "cache-control",
                "stale-while-revalidate=5,stale-if-error=600, Immutable",
            ),
        ]));
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(30));
        assert!(cc.public && cc.immutable);
        assert_eq!(cc.stale_while_revalidate, Some(5));
        assert_eq!(cc.stale_if_error, Some(600));
        let cc = CacheControl::parse(&headers(&[(
            "cache-control",
            "max-age=abc, no-cache=\"set-cookie, x\"",
        )]));
        assert_eq!(cc.max_age, None);
        assert!(cc.no_cache);
    }

    #[test]
    fn what_is_stored() {
        let req = HeaderMap::new();
        let ok = StatusCode::OK;
        let check = |resp: &[(&str, &str)]| {
            let h = headers(resp);
            storable(&req, ok, &h, &CacheControl::parse(&h))
        };
        assert!(check(&[("cache-control", "max-age=60")]));
        assert!(check(&[("etag", "\"x\"")]));
        assert!(!check(&[("cache-control", "no-store, max-age=60")]));
        assert!(!check(&[("cache-control", "private, max-age=60")]));
        assert!(!check(&[("cache-control", "max-age=60"), ("vary", "*")]));
        assert!(!check(&[
            ("cache-control", "max-age=60"),
            ("set-cookie", "a=b")
        ]));
        assert!(check(&[
            ("cache-control", "public, max-age=60"),
            ("set-cookie", "a=b")
        ]));
        assert!(!check(&[]));
        let h = headers(&[("cache-control", "max-age=60")]);
        assert!(!storable(
            &req,
            StatusCode::PARTIAL_CONTENT,
            &h,
            &CacheControl::parse(&h)
        ));
        let auth = headers(&[("authorization", "Bearer x")]);
        assert!(!storable(&auth, ok, &h, &CacheControl::parse(&h)));
    }

    #[test]
    fn lifetimes() {
        let h = headers(&[("cache-control", "max-age=60, s-maxage=10")]);
        assert_eq!(
            policy(&h, &CacheControl::parse(&h)).lifetime,
            Duration::from_secs(10)
        );
        let h = headers(&[
            ("date", "Thu, 01 Jan 2026 00:00:00 GMT"),
            ("expires", "Thu, 01 Jan 2026 00:05:00 GMT"),
        ]);
        assert_eq!(
            policy(&h, &CacheControl::parse(&h)).lifetime,
            Duration::from_secs(300)
        );
        let h = headers(&[
            ("date", "Sun, 11 Jan 2026 00:00:00 GMT"),
            ("last-modified", "Thu, 01 Jan 2026 00:00:00 GMT"),
        ]);
        assert_eq!(
            policy(&h, &CacheControl::parse(&h)).lifetime,
            Duration::from_secs(86_400)
        );
        let h = headers(&[("cache-control", "no-cache, max-age=60")]);
        assert_eq!(
            policy(&h, &CacheControl::parse(&h)).lifetime,
            Duration::ZERO
        );
    }

    #[test]
    fn an_age_is_one_line_of_digits_or_the_response_is_stale() {
        assert_eq!(age_value(&headers(&[])), 0);
        assert_eq!(age_value(&headers(&[("age", " 7200 ")])), 7200);
        assert_eq!(age_value(&headers(&[("age", "99999999999")])), AGE_OVERFLOW);
        for bad in [
            "abc",
            "-7200",
            "7200.0",
            "7200,0",
            "0, 0",
            "7200;foo=bar",
            "",
        ] {
            assert_eq!(
                age_value(&headers(&[("age", bad)])),
                AGE_OVERFLOW,
                "{bad:?}"
            );
        }
        assert_eq!(
            age_value(&headers(&[("age", "0"), ("age", "0")])),
            AGE_OVERFLOW,
            "two lines"
        );
    }

    #[test]
    fn explicit_freshness_stores_any_status_a_validator_only_the_default_ones() {
        let explicit = headers(&[("cache-control", "max-age=60")]);
        let validator = headers(&[("etag", "\"x\"")]);
        let req = HeaderMap::new();
        let ok = |status: u16, h: &HeaderMap| {
            let status = StatusCode::from_u16(status).unwrap();
            storable(&req, status, h, &CacheControl::parse(h))
        };
        for status in [200, 204, 302, 307, 400, 500, 503] {
            assert!(ok(status, &explicit), "{status} with max-age");
        }
        assert!(!ok(206, &explicit) && !ok(304, &explicit));
        assert!(ok(200, &validator) && ok(404, &validator) && ok(501, &validator));
        assert!(!ok(302, &validator) && !ok(500, &validator));
    }

    #[test]
    fn ages() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let h = headers(&[("age", "30")]);
        assert_eq!(initial_age(&h, t0, t0 + Duration::from_secs(2)), 32);
        assert_eq!(
            current_age(32, t0, t0 + Duration::from_secs(8)),
            Duration::from_secs(40)
        );
        assert_eq!(
            current_age(0, t0, t0 - Duration::from_secs(8)),
            Duration::ZERO
        );
    }

    #[test]
    fn staleness_windows() {
        let p = Policy {
            lifetime: Duration::from_secs(10),
            stale_while_revalidate: Duration::from_secs(5),
            stale_if_error: Duration::from_secs(60),
            ..Policy::default()
        };
        assert_eq!(evaluate(&p, Duration::from_secs(9)), Freshness::Fresh);
        assert_eq!(
            evaluate(&p, Duration::from_secs(12)),
            Freshness::StaleWhileRevalidate
        );
        assert_eq!(
            evaluate(&p, Duration::from_secs(30)),
            Freshness::Stale { if_error: true }
        );
        assert_eq!(
            evaluate(&p, Duration::from_secs(100)),
            Freshness::Stale { if_error: false }
        );
        let strict = Policy {
            must_revalidate: true,
            ..p
        };
        assert_eq!(
            evaluate(&strict, Duration::from_secs(12)),
            Freshness::Stale { if_error: false }
        );
    }
}
