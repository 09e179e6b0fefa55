//! What of a viewer's request goes on to the origin (RFC 9110 §7.6): its end-to-end headers,
//! without the hop-by-hop ones and those its `Connection` header names, with `Via` and
//! `X-Forwarded-For` added. `Host` is the origin's own (the client sets it from the origin URL).

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// The peer address dispatch records in every request's extensions, for `X-Forwarded-For`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1), plus `Host` and
/// `Proxy-Authorization`, which were for this hop.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// The names a `Connection` header lists: hop-by-hop for this message.
fn connection_named(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The end-to-end fields of `headers` (a request's or a response's).
pub fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named = connection_named(headers);
    let mut out = HeaderMap::with_capacity(headers.len() + 2);
    for (name, value) in headers {
        if !is_hop_by_hop(name) && !named.iter().any(|n| n == name.as_str()) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The headers sent to the origin for a viewer's request: its end-to-end fields, then this
/// edge in `Via` and the viewer in `X-Forwarded-For` (each appended to what came before).
pub fn to_origin(viewer: &HeaderMap, peer: Option<IpAddr>, via: &HeaderValue) -> HeaderMap {
    let mut headers = end_to_end(viewer);
    headers.append(header::VIA, via.clone());
    if let Some(peer) = peer {
        let xff = HeaderName::from_static("x-forwarded-for");
        let value = match headers.get(&xff).and_then(|v| v.to_str().ok()) {
            Some(before) => format!("{before}, {peer}"),
            None => peer.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(xff, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_fields_stay_behind() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("host", "edge.example"),
            ("proxy-authorization", "Basic x"),
            ("x-forwarded-for", "192.0.2.1"),
            ("accept", "*/*"),
            ("cookie", "a=b"),
            ("via", "1.1 first"),
        ] {
            h.append(n, v.parse().unwrap());
        }
        let via = HeaderValue::from_static("1.1 meridian");
        let out = to_origin(&h, Some("198.51.100.7".parse().unwrap()), &via);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "te",
            "host",
            "proxy-authorization",
        ] {
            assert!(!names.contains(&gone), "{gone} forwarded: {names:?}");
        }
        assert_eq!(out["accept"], "*/*");
        assert_eq!(out["cookie"], "a=b");
        assert_eq!(out["x-forwarded-for"], "192.0.2.1, 198.51.100.7");
        let vias: Vec<_> = out.get_all("via").iter().collect();
        assert_eq!(vias, ["1.1 first", "1.1 meridian"]);
    }
}
