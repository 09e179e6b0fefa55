//! The admin surface every Meridian server exposes on its admin listener.
//!
//! - `/healthz`: 200 while the process runs (liveness).
//! - `/readyz`: 200 while it takes new work, 503 once draining (readiness).
//! - `/metrics`: Prometheus text exposition of the server's registry.
//! - `/status`: a JSON document the component builds (what a person or the router reads).
//!
//! Components pass their registry and a status function; the routing here is the same for all.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Response, StatusCode, header};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;

use crate::{Body, Shutdown, body};

/// Builds the JSON for `/status` on each request.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the admin endpoints read.
#[derive(Clone)]
pub struct Admin {
    registry: Arc<Registry>,
    status: StatusFn,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    pub fn new(registry: Arc<Registry>, status: StatusFn, shutdown: Shutdown) -> Self {
        Self {
            registry,
            status,
            shutdown,
        }
    }

    /// Serves the admin endpoints on `listener` in a task of their own until `shutdown` says so,
    /// with the default connection limits.
    pub fn spawn(
        self,
        listener: tokio::net::TcpListener,
        shutdown: Shutdown,
        grace: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        self.spawn_with(listener, shutdown, grace, Default::default())
    }

    /// [`Admin::spawn`] with the server's own connection limits and metrics.
    pub fn spawn_with(
        self,
        listener: tokio::net::TcpListener,
        shutdown: Shutdown,
        grace: std::time::Duration,
        options: crate::http_server::Options,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::http_server::serve_with(
            listener,
            None,
            move |request, peer| {
                let admin = self.clone();
                async move { admin.handle(request, peer).await }
            },
            shutdown,
            grace,
            options,
        ))
    }

    /// Answers one admin request.
    pub async fn handle(
        &self,
        request: http::Request<Incoming>,
        _peer: SocketAddr,
    ) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response =
                body::text(StatusCode::METHOD_NOT_ALLOWED, "admin endpoints take GET");
            response
                .headers_mut()
                .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match request.uri().path() {
            "/healthz" => body::text(StatusCode::OK, "ok"),
            "/readyz" if self.shutdown.is_draining() => {
                body::text(StatusCode::SERVICE_UNAVAILABLE, "draining")
            }
            "/readyz" => body::text(StatusCode::OK, "ready"),
            "/metrics" => self.metrics(),
            "/status" => {
                let mut response = body::json(&(self.status)());
                // The fleet page reads this from another origin.
                response.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    http::HeaderValue::from_static("*"),
                );
                response
            }
            _ => body::text(
                StatusCode::NOT_FOUND,
                "admin endpoints: /healthz /readyz /metrics /status",
            ),
        }
    }

    fn metrics(&self) -> Response<Body> {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
            return body::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal: metrics encoding failed",
            );
        }
        let mut response = Response::new(body::full(text));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
        response
    }
}
