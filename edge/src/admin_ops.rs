//! The edge's admin listener: the shared admin endpoints, plus the operator's drain switch.
//!
//! `POST /drain` turns drain mode on and `DELETE /drain` turns it off, both with the bearer
//! token; `/status` reports it so the geo-router stops sending new viewers.

use std::net::SocketAddr;

use http::{Method, Response, StatusCode};
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
    if request.uri().path() == "/readyz" && !edge.store_ready() {
        return server_kit::body::text(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "starting: the store is loading its index",
        );
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
    edge.set_draining(on);
    tracing::info!(drain = on, "drain mode changed by the operator");
    body::text(StatusCode::OK, if on { "draining" } else { "serving" })
}
