//! The router's HTTP API: content steering manifests, redirects, and the view exchanged with
//! peer routers.
//!
//! - `GET /steer/hls`: HLS content steering (`VERSION`, `TTL`, `RELOAD-URI`, `PATHWAY-PRIORITY`,
//!   `PATHWAY-CLONES`). Each region contributes one pathway, named after the edge that serves it
//!   now and cloned from the playlist's default pathway (`.`) with that edge's host, so a dead
//!   edge's pathway disappears from the manifest at once. The order is
//!   `decision::steering`'s: `_HLS_pathway` says where the player is, so a player on a good edge
//!   stays there, a player on a failed edge leaves its region, and a player on a draining edge
//!   keeps its pathway (the edge redirects each request to its neighbour region).
//! - `GET /steer/dash`: the same decision for DASH (`SERVICE-LOCATION-PRIORITY` too). dash.js
//!   quotes `_DASH_pathway` and lists in it every pathway it used since its last request;
//!   `decision::current_pathway` tells which one it is on.
//! - `GET /r/<path>`: 302 to the chosen edge's URL for that path.
//! - `GET /view`: this router's own probe verdicts, for its peers.
//! - `POST /purges`: a peer's signed copy of a fleet purge (see `purge`).
//! - `GET /fleet`: the fleet as JSON, for the fleet page.
//!
//! In development mode (`dev_mode = true`) a `client=IP` query parameter stands in for the
//! caller's address, so one machine can play viewers from many places.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use server_kit::{Body, body};

use crate::decision;
use crate::router::Router;

/// Answers one API request.
pub async fn handle(
    router: Arc<Router>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    if request.method() == Method::OPTIONS {
        return server_kit::cors::preflight();
    }
    if request.method() == Method::POST && request.uri().path() == "/purges" {
        return purge_copy(&router, request).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return ApiError::Method.response();
    }
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let mut response = match path.as_str() {
        "/steer/hls" => {
            steering(&router, &query, peer, Flavour::Hls).unwrap_or_else(|e| e.response())
        }
        "/steer/dash" => {
            steering(&router, &query, peer, Flavour::Dash).unwrap_or_else(|e| e.response())
        }
        "/view" => {
            router.metrics.api("view");
            match router.fleet.own_signed_view() {
                Some(signed) => body::json(&serde_json::to_value(signed).unwrap_or_default()),
                None => body::text(
                    StatusCode::NOT_FOUND,
                    "not found: this router has no peer_secret, so it exchanges no views",
                ),
            }
        }
        "/fleet" => {
            router.metrics.api("fleet");
            body::json(&router.fleet.to_json())
        }
        p if p.starts_with("/r/") => {
            redirect(&router, &p[2..], &query, peer).unwrap_or_else(|e| e.response())
        }
        _ => ApiError::NotFound.response(),
    };
    server_kit::cors::allow_any_origin(response.headers_mut());
    response
}

/// `POST /purges`: a peer router's signed copy of a purge it took (see `purge`).
async fn purge_copy(router: &Router, request: Request<Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;
    let Some(purger) = &router.purger else {
        return body::text(
            StatusCode::NOT_FOUND,
            "not found: this router takes no purges (no admin_token)",
        );
    };
    match http_body_util::Limited::new(request.into_body(), 64 << 10)
        .collect()
        .await
    {
        Ok(collected) => purger.take_copy(&collected.to_bytes()),
        Err(error) => body::text(
            StatusCode::BAD_REQUEST,
            format!("client error: the copy could not be read: {error}"),
        ),
    }
}

/// Why the API refused a request: whose fault it is (the message starts with `client error` or
/// `router error`), the status that says so, and what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("client error: the router API takes GET")]
    Method,
    #[error("client error: try /steer/hls, /steer/dash, /r/<path>, /fleet")]
    NotFound,
    /// `client=` (development mode) is not an address.
    #[error("client error: client={0:?} is not an IP address")]
    BadClient(String),
    /// The redirect's `Location` would not be a valid header.
    #[error("client error: the path cannot be redirected")]
    Unredirectable,
    /// No edge is up for this client: every region is out.
    #[error("router error: no edge can serve this client now; retry")]
    NoEdge,
}

impl ApiError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Method => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadClient(_) | ApiError::Unredirectable => StatusCode::BAD_REQUEST,
            ApiError::NoEdge => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The refusal as a plain-text response.
    pub fn response(&self) -> Response<Body> {
        body::text(self.status(), self.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Flavour {
    Hls,
    Dash,
}

/// Query parameters, decoded.
pub(crate) fn params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The address to locate: `client=` in development mode, else the caller's. An IPv4 address
/// mapped into IPv6 (`::ffff:a.b.c.d`, as a dual-stack listener reports IPv4 callers) is the
/// IPv4 address: as an IPv6 one every IPv4 caller would fall in one /48 and get the same edge.
fn client_ip(
    router: &Router,
    params: &[(String, String)],
    peer: SocketAddr,
) -> Result<IpAddr, ApiError> {
    let ip = match param(params, "client") {
        Some(value) if router.config.dev_mode => value
            .parse()
            .map_err(|_| ApiError::BadClient(value.to_owned()))?,
        _ => peer.ip(),
    };
    Ok(ip.to_canonical())
}

/// An address's full prefix length: an HTTP client is one address, not a subnet.
fn full_length(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// What a query value must escape: everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn steering(
    router: &Router,
    query: &str,
    peer: SocketAddr,
    flavour: Flavour,
) -> Result<Response<Body>, ApiError> {
    let params = params(query);
    let ip = client_ip(router, &params, peer)?;
    let current = match flavour {
        Flavour::Hls => param(&params, "_HLS_pathway"),
        Flavour::Dash => param(&params, "_DASH_pathway"),
    }
    .map(|p| p.trim_matches('"').to_owned());
    let reported: Vec<&str> = current
        .as_deref()
        .map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let throughput = param(&params, "_HLS_throughput").or(param(&params, "_DASH_throughput"));
    router.metrics.api(if flavour == Flavour::Hls {
        "steer_hls"
    } else {
        "steer_dash"
    });
    let routed = router.route(ip, full_length(ip));
    let topology = &routed.snapshot.topology;
    let by_name = |name: &str| topology.edges.iter().position(|e| e.name == name);
    // `edge=` (put into the steering URI by the origin for the edge that fetched the playlist)
    // says which edge the default pathway `.` is. With it, a player still on `.` is on that edge
    // and keeps it, under the name `.`: no pathway switch as playback starts.
    let default_edge = param(&params, "edge").and_then(by_name);
    let reported: Vec<usize> = reported
        .iter()
        .filter_map(|&name| {
            if name == "." {
                default_edge
            } else {
                by_name(name)
            }
        })
        .collect();
    let current_edge = decision::current_pathway(
        &reported,
        default_edge,
        &routed.snapshot.status,
        router.config.balance.overload,
    );
    let ways = decision::steering(
        topology,
        &routed.snapshot.status,
        &routed.regions,
        &routed.decision,
        current_edge,
        default_edge,
        decision::Shedding {
            overload: router.config.balance.overload,
            shed_to: router.config.balance.reaccept,
        },
    );
    tracing::debug!(client = %ip, current = ?current, throughput = ?throughput, "steering");
    let ids: Vec<&str> = ways
        .iter()
        .map(|&e| {
            if Some(e) == default_edge {
                "."
            } else {
                topology.edges[e].name.as_str()
            }
        })
        .collect();
    let clones: Vec<serde_json::Value> = ways
        .iter()
        .filter(|&&e| Some(e) != default_edge)
        .map(|&e| {
            let edge = &topology.edges[e];
            // hls.js applies HOST to the URL's host name only, so a port there would make the
            // clone keep the base pathway's host: edges share one port per fleet. dash.js puts
            // HOST in front of the path as it is, so it gets the port too.
            let uri = edge.http.parse::<http::Uri>().ok();
            let host = match flavour {
                Flavour::Hls => uri.as_ref().and_then(|u| u.host()).map(str::to_owned),
                Flavour::Dash => uri
                    .as_ref()
                    .and_then(|u| u.authority())
                    .map(|a| a.as_str().to_owned()),
            }
            .unwrap_or_default();
            serde_json::json!({"BASE-ID": ".", "ID": edge.name, "URI-REPLACEMENT": {"HOST": host}})
        })
        .collect();
    // RELOAD-URI keeps what identifies the viewer (client=) and drops the player's own params.
    let keep: Vec<String> = params
        .iter()
        .filter(|(k, _)| !k.starts_with("_HLS_") && !k.starts_with("_DASH_"))
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect();
    let path = if flavour == Flavour::Hls {
        "/steer/hls"
    } else {
        "/steer/dash"
    };
    let reload = if keep.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", keep.join("&"))
    };
    let mut manifest = serde_json::json!({
        "VERSION": 1,
        "TTL": router.config.steering_ttl.as_secs().max(1),
        "RELOAD-URI": reload,
        "PATHWAY-PRIORITY": ids,
        "PATHWAY-CLONES": clones,
    });
    if flavour == Flavour::Dash {
        manifest["SERVICE-LOCATION-PRIORITY"] = serde_json::json!(ids);
    }
    let mut response = body::json(&manifest);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn redirect(
    router: &Router,
    path: &str,
    query: &str,
    peer: SocketAddr,
) -> Result<Response<Body>, ApiError> {
    let params = params(query);
    let ip = client_ip(router, &params, peer)?;
    router.metrics.api("redirect");
    let routed = router.route(ip, full_length(ip));
    let &edge = routed.decision.edges.first().ok_or(ApiError::NoEdge)?;
    let base = routed.snapshot.topology.edges[edge]
        .http
        .trim_end_matches('/');
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("client="))
        .collect();
    let location = if rest.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{}", rest.join("&"))
    };
    let location = HeaderValue::from_str(&location).map_err(|_| ApiError::Unredirectable)?;
    let mut response = body::text(StatusCode::FOUND, "redirecting to the nearest edge");
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(dev_mode: bool) -> Arc<Router> {
        let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
        let config = crate::RouterConfig {
            topology: format!("{testdata}/topology.toml").into(),
            geoip: format!("{testdata}/geoip/meridian-city.mmdb").into(),
            dev_mode,
            ..crate::RouterConfig::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        crate::build(config, &mut registry).expect("the test fleet loads")
    }

    #[test]
    fn an_ipv4_caller_mapped_into_ipv6_is_located_as_its_ipv4_address() {
        let plain: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:5000".parse().unwrap();
        for dev_mode in [false, true] {
            let router = router(dev_mode);
            let ip = client_ip(&router, &[], mapped).expect("the caller's address");
            assert_eq!(ip, plain.ip(), "dev_mode {dev_mode}");
        }
        let router = router(true);
        let given = [("client".to_owned(), "::ffff:192.0.2.9".to_owned())];
        let ip = client_ip(&router, &given, plain).expect("client=");
        assert_eq!(ip, "192.0.2.9".parse::<IpAddr>().unwrap());
        // Located as the IPv4 address: in Boston's /24 of the test database.
        let routed = router.route(ip, full_length(ip));
        assert_eq!(routed.scope, 24);
        let region = routed.decision.regions[0];
        assert_eq!(routed.snapshot.topology.regions[region].name, "us-east");
    }
}
