//! Cache keys.
//!
//! The key is the host (lower-case, without port), the path and the query as sent, minus CMCD
//! (players send it in the query of every request) and the per-viewer token parameters the
//! operator lists, so that neither splits the cache. Responses with `Vary` are stored under a variant
//! key that adds the values of the named request headers, and in-flight fetches are coalesced
//! per `Accept-Encoding`, so a viewer never receives an encoding it did not ask for.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, Request, header};

/// Which header names each base key varies on, learnt from the responses stored under it.
#[derive(Debug)]
pub struct Variants {
    names: moka::sync::Cache<String, Arc<Vec<HeaderName>>>,
}

impl Default for Variants {
    fn default() -> Self {
        Self {
            names: moka::sync::Cache::new(100_000),
        }
    }
}

impl Variants {
    /// The key a request for `base` is stored under: `base` itself, or its variant for the
    /// request headers the stored response varies on.
    pub fn key_for(&self, base: &str, headers: &HeaderMap) -> String {
        match self.names.get(base) {
            Some(names) => variant_key(base, &names, headers),
            None => base.to_owned(),
        }
    }

    /// Learns from a response about to be stored under `base` what it varies on, and returns
    /// the key to store it under.
    pub fn learn(&self, base: &str, response: &HeaderMap, request: &HeaderMap) -> String {
        match vary_names(response) {
            Some(names) => {
                let key = variant_key(base, &names, request);
                self.names.insert(base.to_owned(), Arc::new(names));
                key
            }
            None => {
                self.names.invalidate(base);
                base.to_owned()
            }
        }
    }

    /// Forgets what `base` varies on (it was purged).
    pub fn forget(&self, base: &str) {
        self.names.invalidate(base);
    }
}

/// The base key of a request: host, path and query, without the query parameters in `ignore`
/// (the operator's per-viewer tokens) and without CMCD, which players put into the query of
/// every request. `canonical` (lower case), when given, is the host every name is keyed under.
pub fn cache_key<B>(request: &Request<B>, ignore: &[String], canonical: Option<&str>) -> String {
    let mut key = match canonical {
        Some(canonical) => canonical.to_owned(),
        None => request
            .uri()
            .host()
            .map(str::to_owned)
            .or_else(|| {
                request
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(|h| strip_port(h).to_owned())
            })
            .unwrap_or_default()
            .to_ascii_lowercase(),
    };
    key.push_str(request.uri().path());
    if let Some(query) = request.uri().query() {
        key.push_str(&key_query(query, ignore));
    }
    key
}

/// The part of a query string that belongs to a cache key (`?a=1&b=2`, or empty): the
/// parameters in the order sent, without CMCD and those named in `ignore`.
pub fn key_query(query: &str, ignore: &[String]) -> String {
    let mut out = String::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let name = pair.split('=').next().unwrap_or("");
        if name.eq_ignore_ascii_case("CMCD") || ignore.iter().any(|i| i == name) {
            continue;
        }
        out.push(if out.is_empty() { '?' } else { '&' });
        out.push_str(pair);
    }
    out
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map(|h| &host[..h.len() + 1])
            .unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// The key under which concurrent misses share one origin fetch.
pub fn fill_key(base: &str, headers: &HeaderMap) -> String {
    format!(
        "{base}\0ae={}",
        normalized(headers, &header::ACCEPT_ENCODING)
    )
}

/// The key of the variant of `base` selected by the request headers named in `vary`.
pub fn variant_key(base: &str, vary: &[HeaderName], headers: &HeaderMap) -> String {
    let mut key = base.to_owned();
    for name in vary {
        key.push('\0');
        key.push_str(name.as_str());
        key.push('=');
        key.push_str(&normalized(headers, name));
    }
    key
}

/// True when a response varies on everything (`Vary: *`, or a `Vary` that is not text):
/// no other request may be given it.
pub fn varies_on_everything(headers: &HeaderMap) -> bool {
    headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|f| f.trim() == "*"))
            .unwrap_or(true)
    })
}

/// The header names a response varies on (`None` for no `Vary`).
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    (!names.is_empty()).then_some(names)
}

fn normalized(headers: &HeaderMap, name: &HeaderName) -> String {
    let mut values: Vec<String> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    values.sort();
    values.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, host: Option<&str>) -> Request<()> {
        let mut r = Request::get(uri);
        if let Some(h) = host {
            r = r.header("host", h);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn keys_ignore_tokens_cmcd_and_ports() {
        let params = vec!["token".to_owned()];
        assert_eq!(
            cache_key(
                &request(
                    "/vod/a/seg_1.m4s?token=abc&v=2&CMCD=bl%3D2000%2Csid%3D%22x%22&w=1",
                    Some("Edge.Test:8080")
                ),
                &params,
                None
            ),
            "edge.test/vod/a/seg_1.m4s?v=2&w=1"
        );
        assert_eq!(
            cache_key(&request("/x?token=1", Some("e")), &params, None),
            "e/x"
        );
        assert_eq!(
            cache_key(&request("/x?a=1", Some("e")), &params, None),
            "e/x?a=1"
        );
        assert_ne!(
            cache_key(&request("/x?a=1", Some("e")), &params, None),
            cache_key(&request("/x?a=2", Some("e")), &params, None)
        );
        assert_eq!(
            cache_key(&request("http://h.test:81/x", None), &[], None),
            "h.test/x"
        );
        assert_eq!(
            cache_key(&request("/x", Some("[::1]:8080")), &[], None),
            "[::1]/x"
        );
    }

    #[test]
    fn variants_follow_vary() {
        let mut resp = HeaderMap::new();
        resp.insert("vary", "Accept-Encoding, accept-language".parse().unwrap());
        let names = vary_names(&resp).unwrap();
        let mut req = HeaderMap::new();
        req.insert("accept-encoding", "GZIP, br".parse().unwrap());
        let a = variant_key("h/x", &names, &req);
        req.insert("accept-encoding", "br,gzip".parse().unwrap());
        assert_eq!(
            variant_key("h/x", &names, &req),
            a,
            "order and case do not matter"
        );
        req.insert("accept-encoding", "identity".parse().unwrap());
        assert_ne!(variant_key("h/x", &names, &req), a);
        assert!(vary_names(&HeaderMap::new()).is_none());
    }
}

/// A request path as the cache sees it (RFC 3986 §6.2.2): percent-encoded unreserved characters
/// decoded, the other escapes in upper case, and dot segments removed (§5.2.4), so that
/// `/a/./b/../%63.m4s` and `/a/c.m4s` are one object (and one origin fetch), not a way to
/// bust the cache. `None` when the path is already normal (or is not absolute, like `*`).
pub fn normalize_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    // The usual path has no escape and no dot segment: nothing to do, nothing allocated.
    if !path.contains('%') && !path.contains("/.") {
        return None;
    }
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            let value = (h * 16 + l) as u8;
            if value.is_ascii_alphanumeric() || b"-._~".contains(&value) {
                decoded.push(value as char);
            } else {
                decoded.push_str(&format!("%{value:02X}"));
            }
            i += 3;
            continue;
        }
        // Not an escape: as it is (the path is valid UTF-8, and only ASCII is split here).
        let len = path[i..].chars().next().map_or(1, char::len_utf8);
        decoded.push_str(&path[i..i + len]);
        i += len;
    }
    let normal = remove_dot_segments(&decoded);
    (normal != path).then_some(normal)
}

/// RFC 3986 §5.2.4 for an absolute path: `.` segments dropped, `..` takes the one before.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len() - 1;
    let mut out: Vec<&str> = Vec::new();
    for (i, segment) in segments.iter().enumerate().skip(1) {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod normalize_tests {
    use super::normalize_path;

    #[test]
    fn paths_normalise_as_rfc_3986_says() {
        let n = |p: &str| normalize_path(p).unwrap_or_else(|| p.to_owned());
        assert_eq!(n("/a/./b/../%63.m4s"), "/a/c.m4s");
        assert_eq!(n("/a/%2e%2e/b"), "/b");
        assert_eq!(n("/a/%2f%3a"), "/a/%2F%3A");
        assert_eq!(n("/a/b/"), "/a/b/");
        assert_eq!(n("/.."), "/");
        assert_eq!(n("/a/.."), "/");
        assert_eq!(n("/a/./"), "/a/");
        assert_eq!(n("/a//b"), "/a//b");
        assert_eq!(n("/%zz/%4"), "/%zz/%4");
        assert_eq!(n("/caf\u{e9}/x"), "/caf\u{e9}/x");
        assert_eq!(normalize_path("/a/c.m4s"), None);
        assert_eq!(normalize_path("*"), None);
    }
}
