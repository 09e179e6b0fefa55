//! Meridian's origin: the source of truth for the video the CDN delivers.
//!
//! It serves a media root over HTTP with the semantics a CDN edge and a browser player rely on,
//! and turns every VOD rendition into a simulated live channel.
//!
//! Layout:
//! - [`config`]: the TOML config and the flags that override it.
//! - [`paths`]: request path to file, refusing anything that escapes the media root.
//! - [`respond`]: one representation (file or generated text) to a response: validators,
//!   conditional requests, byte ranges, streaming.
//! - [`live`]: sliding-window HLS playlists built by looping VOD playlists.
//! - [`live_dash`]: dynamic DASH MPDs for the same live channels, on one continuous timeline.
//! - [`mp4`]: moves a fragmented-MP4 segment along the timeline (for live DASH).
//! - [`service`]: the request handler that ties these together, with CORS.
//! - [`metrics`]: the Prometheus metrics of the origin.
//!
//! [`run`] serves pre-bound listeners until the [`Shutdown`] says to stop.

pub mod config;
pub mod live;
pub mod live_dash;
pub mod metrics;
pub mod mp4;
pub mod paths;
pub mod respond;
pub mod service;

use std::sync::Arc;

use server_kit::Shutdown;
use server_kit::admin::Admin;
use tokio::net::TcpListener;

pub use config::OriginConfig;

/// Errors that stop the origin from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; the message names the key.
    #[error("invalid config: {0}")]
    Config(String),
}

/// The listeners `main` (or a test) bound for the origin.
#[derive(Debug)]
pub struct Listeners {
    /// Media requests.
    pub http: TcpListener,
    /// `/healthz`, `/readyz`, `/metrics`, `/status`.
    pub admin: TcpListener,
}

/// Serves media and admin requests until `shutdown` drains (then finishes in-flight responses
/// within the configured grace period) or stops.
pub async fn run(
    listeners: Listeners,
    config: OriginConfig,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = metrics::Metrics::register(&mut registry);
    let connections = server_kit::connection::Metrics::register(&mut registry, "meridian_origin");
    let options = |listener| server_kit::http_server::Options {
        limits: config.connections.clone(),
        metrics: connections.for_listener(listener),
    };
    let origin = Arc::new(service::Origin::new(&config, metrics)?);
    tracing::info!(media = %origin.root().display(), "origin serving");

    // The admin listener outlives the media listener's drain, so that probes can watch it drain.
    let admin_shutdown = Shutdown::new();
    let status = {
        let origin = origin.clone();
        let shutdown = shutdown.clone();
        Arc::new(move || origin.status(shutdown.is_draining()))
    };
    let admin = Admin::new(Arc::new(registry), status, shutdown.clone());
    let admin_task = admin.spawn_with(
        listeners.admin,
        admin_shutdown.clone(),
        config.grace,
        options("admin"),
    );

    let handler = move |request, peer| {
        let origin = origin.clone();
        async move { origin.handle(request, peer).await }
    };
    server_kit::http_server::serve_with(
        listeners.http,
        None,
        handler,
        shutdown.clone(),
        config.grace,
        options("http"),
    )
    .await;

    if shutdown.is_draining() {
        admin_shutdown.drain();
    }
    admin_shutdown.stop();
    let _ = admin_task.await;
    tracing::info!("origin stopped");
    Ok(())
}
