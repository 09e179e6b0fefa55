//! The edge's admin listener: the shared admin endpoints, plus the operator's drain switch.
//!
//! `POST /drain` turns drain mode on and `DELETE /drain` turns it off, both with the bearer
//! token; `/status` reports it so the geo-router stops sending new viewers, and the state file
//! keeps it across restarts. `POST /purges` takes a router's purges (see `purges`).

use std::net::SocketAddr;

use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use server_kit::admin::Admin;
use server_kit::{Body, body};

use crate::proxy::Edge;

/// Answers one admin request.
pub async fn handle(
    edge: &Edge,
    admin: &Admin,
    request: http::Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    if request.uri().path() == "/readyz" && !edge.ready() {
        return server_kit::body::text(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "starting: the store is loading its index, or waits for the routers' purges",
        );
    }
    if request.uri().path() == "/purges" {
        return purges(edge, request).await;
    }
    if request.uri().path() != "/drain" {
        return admin.handle(request, peer).await;
    }
    let on = match *request.method() {
        Method::POST => true,
        Method::DELETE => false,
        _ => {
            return body::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "client error: POST /drain turns drain on, DELETE /drain turns it off",
            );
        }
    };
    if let Some(response) = edge.refusal(request.headers()) {
        return response;
    }
    if let Err(error) = edge.set_draining(on) {
        tracing::error!(%error, "drain not changed");
        return body::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("server error: drain not changed: {error}"),
        );
    }
    tracing::info!(drain = on, "drain mode changed by the operator");
    body::text(StatusCode::OK, if on { "draining" } else { "serving" })
}

/// The most a router's push may hold (it sends at most 1,000 purges at once).
const MAX_PUSH: usize = 4 << 20;

/// `POST /purges`: a router's purges (see `purges`), with the bearer token.
async fn purges(edge: &Edge, request: http::Request<Incoming>) -> Response<Body> {
    if request.method() != Method::POST {
        return body::text(
            StatusCode::METHOD_NOT_ALLOWED,
            "client error: routers POST their purges to /purges",
        );
    }
    if let Some(response) = edge.refusal(request.headers()) {
        return response;
    }
    let bytes = match http_body_util::Limited::new(request.into_body(), MAX_PUSH)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return body::text(
                StatusCode::BAD_REQUEST,
                format!(
                    "client error: the push could not be read (at most {MAX_PUSH} bytes): {error}"
                ),
            );
        }
    };
    match serde_json::from_slice::<crate::purges::Push>(&bytes) {
        Ok(push) => edge.apply_purges(push).await,
        Err(error) => body::text(
            StatusCode::BAD_REQUEST,
            format!("client error: the push is not a purge push: {error}"),
        ),
    }
}
