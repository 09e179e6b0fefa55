//! One viewer request in, one response out: the method decides the path (GET and HEAD are
//! served, OPTIONS is a CORS preflight the edge answers (unless configured to pass it on),
//! PURGE is an operator's, CONNECT and TRACE are refused,
//! every other method is passed to the origin), a draining edge redirects, and
//! every answer gets the headers that show the path it took.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use server_kit::{Body, body};
use tracing::Instrument;

use super::{DRAIN, Edge, PASS};

/// The path of the router's data-path probe (`geo-router/src/probe.rs` asks it).
pub const PROBE_PATH: &str = "/.well-known/meridian/probe";

/// The valid token a signed request came with, and the prefix it opens.
#[derive(Debug, Clone)]
pub(super) struct SignedPrefix(pub(super) crate::signed::Opened);

impl Edge {
    /// Answers one viewer request.
    pub async fn handle(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        request
            .extensions_mut()
            .insert(crate::forward::Peer(peer.ip()));
        let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), %peer);
        let arrival = self
            .access_log
            .as_ref()
            .map(|_| crate::access_log::Arrival::of(&request, peer.ip(), &self.key_params));
        async move {
            let started = Instant::now();
            // In progress until the body is sent or dropped (`finish` holds the count).
            self.metrics.in_flight.inc();
            // The router's health probe, answered through the viewers' own listener (so a
            // wedged listener fails it), before host hygiene, drain and signing: it names no
            // object and reaches neither the store nor the origin.
            if request.uri().path() == PROBE_PATH {
                let mut response = body::text(StatusCode::OK, "ok");
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return self.finish(response, PASS, arrival);
            }
            if let Some(refusal) = self.admit(&mut request) {
                let response = self.finish(refusal, PASS, arrival);
                self.metrics
                    .request_done(PASS, response.status(), started.elapsed().as_secs_f64());
                return response;
            }
            let (response, cache) = match *request.method() {
                Method::GET | Method::HEAD => match self.drain_redirect(&request) {
                    Some(response) => (response, DRAIN),
                    None => self.serve(&request).await,
                },
                Method::OPTIONS if self.answer_cors_preflight => {
                    (server_kit::cors::preflight(), PASS)
                }
                _ if request.method().as_str() == "PURGE" => (self.purge(&request).await, PASS),
                Method::CONNECT | Method::TRACE => {
                    let mut r = body::text(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "client error: the edge does not tunnel (CONNECT) or echo (TRACE)",
                    );
                    r.headers_mut().insert(
                        header::ALLOW,
                        HeaderValue::from_static(
                            "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE, PURGE",
                        ),
                    );
                    (r, PASS)
                }
                _ => self.pass(request).await,
            };
            let response = self.finish(response, cache, arrival);
            let status = response.status();
            self.metrics
                .request_done(cache, status, started.elapsed().as_secs_f64());
            if status.is_server_error() {
                tracing::error!(%status, cache, "request failed");
            } else {
                tracing::debug!(%status, cache, "answered");
            }
            response
        }
        .instrument(span)
        .await
    }

    /// The headers every answer carries, the byte count of its body, and its access log line
    /// once the body is sent or dropped.
    fn finish(
        &self,
        response: Response<Body>,
        cache: &'static str,
        arrival: Option<crate::access_log::Arrival>,
    ) -> Response<Body> {
        let (mut parts, body) = response.into_parts();
        parts.headers.insert("x-served-by", self.served_by.clone());
        // Always ours: an origin's own X-Cache on a passed-on answer says nothing of this edge.
        parts
            .headers
            .insert("x-cache", HeaderValue::from_static(cache));
        // Every response says how old it is; the edge's own answers (errors, redirects) are new.
        if !parts.headers.contains_key(header::AGE) {
            parts
                .headers
                .insert(header::AGE, HeaderValue::from_static("0"));
        }
        server_kit::cors::allow_any_origin(&mut parts.headers);
        let counter = self.metrics.bytes_sent(cache);
        let body = match (&self.access_log, arrival) {
            (Some(log), Some(arrival)) => crate::access_log::Sent::new(
                (
                    body,
                    parts
                        .headers
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse().ok()),
                ),
                counter,
                log.clone(),
                arrival,
                parts.status,
                cache,
            )
            .boxed_unsync(),
            _ => body
                .map_frame(move |frame| {
                    if let Some(data) = frame.data_ref() {
                        counter.inc_by(data.len() as u64);
                    }
                    frame
                })
                .boxed_unsync(),
        };
        let body = server_kit::body::with_guard(body, InProgress(self.metrics.in_flight.clone()));
        Response::from_parts(parts, body)
    }

    /// Host hygiene, before anything reads the request: a host this edge does not serve gets
    /// 421 (it never reaches the origin); the path becomes its normal form (RFC 3986), so that
    /// spellings of one path are one object. (The canonical host goes into the cache key only,
    /// `key::cache_key`: the request keeps the viewer's host, which manifests name.)
    fn admit(&self, request: &mut Request<Incoming>) -> Option<Response<Body>> {
        let host = request
            .uri()
            .host()
            .or_else(|| request.headers().get(header::HOST)?.to_str().ok())
            .map(|h| crate::key::strip_port(h).to_ascii_lowercase())
            .unwrap_or_default();
        if !self.hosts.is_empty() && !self.hosts.contains(&host) {
            return Some(body::text(
                StatusCode::MISDIRECTED_REQUEST,
                format!("client error: this edge does not serve host {host:?}"),
            ));
        }
        let normal = |p: &str| crate::key::normalize_path(p).unwrap_or_else(|| p.to_owned());
        let served = match &self.signed {
            // Most paths are already in their normal form: left as they are.
            None => crate::key::normalize_path(request.uri().path())?,
            Some(signed) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let client = super::peer(request).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
                let path = request.uri().path().to_owned();
                match signed.check(&path, client, now, normal) {
                    Ok(checked) => {
                        if let Some(opened) = checked.opened {
                            // Kept for the drain redirect, which sends the viewer on with its
                            // token, and for origin URLs a manifest names absolutely.
                            request.extensions_mut().insert(SignedPrefix(opened));
                        }
                        checked.path
                    }
                    Err(refusal) => {
                        return Some(body::text(
                            StatusCode::FORBIDDEN,
                            format!("client error: {}", refusal.text()),
                        ));
                    }
                }
            }
        };
        if served != request.uri().path() {
            let target = match request.uri().query() {
                Some(query) => format!("{served}?{query}"),
                None => served,
            };
            let mut parts = request.uri().clone().into_parts();
            let rebuilt = target.parse().ok().and_then(|p| {
                parts.path_and_query = Some(p);
                http::Uri::from_parts(parts).ok()
            });
            let Some(uri) = rebuilt else {
                return Some(body::text(
                    StatusCode::BAD_REQUEST,
                    "client error: the request path cannot be normalised",
                ));
            };
            *request.uri_mut() = uri;
        }
        None
    }

    /// While the operator drains this edge, new requests go to the neighbour region's edge.
    /// Responses already streaming are not touched: they finish.
    fn drain_redirect(&self, request: &Request<Incoming>) -> Option<Response<Body>> {
        if !self.drain_mode.load(Ordering::Relaxed) {
            return None;
        }
        let to = self.drain_to.as_ref()?;
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let token = request
            .extensions()
            .get::<SignedPrefix>()
            .map_or("", |t| t.0.token.as_str());
        let location = HeaderValue::from_str(&format!("{to}{token}{path}")).ok()?;
        let mut response = body::text(
            StatusCode::FOUND,
            "this edge is draining; continue at the next region",
        );
        response.headers_mut().insert(header::LOCATION, location);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Some(response)
    }
}

/// One response in progress, counted in the `in_flight` gauge (which the load meter reads)
/// until its body is sent or dropped.
struct InProgress(prometheus_client::metrics::gauge::Gauge);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}
