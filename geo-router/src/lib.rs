//! Meridian's geo-router: decides which edge every viewer goes to.
//!
//! Today it loads and validates the fleet topology and runs the process contract (HTTP and admin
//! listeners, drain on SIGTERM). GeoIP-aware DNS, health probes, content steering and redirects
//! arrive with their own issue; until then its HTTP API answers 503 and says so.
//!
//! Layout:
//! - [`config`]: the TOML config and the flags that override it.
//! - [`run`]: serves pre-bound listeners until the [`Shutdown`] says to stop.

pub mod config;

use std::sync::Arc;

use http::StatusCode;
use server_kit::admin::Admin;
use server_kit::{Shutdown, body};
use tokio::net::TcpListener;
use topology::Topology;

pub use config::RouterConfig;

/// Errors that stop the router from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Topology(#[from] topology::Error),
}

/// The listeners `main` (or a test) bound for the router.
#[derive(Debug)]
pub struct Listeners {
    pub http: TcpListener,
    pub admin: TcpListener,
}

/// Serves until `shutdown` drains or stops.
pub async fn run(
    listeners: Listeners,
    config: RouterConfig,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let topology = Arc::new(Topology::load(&config.topology)?);
    tracing::info!(
        regions = topology.regions.len(),
        edges = topology.edges.len(),
        "topology loaded"
    );
    let registry = Arc::new(prometheus_client::registry::Registry::default());
    let status = {
        let topology = topology.clone();
        let shutdown = shutdown.clone();
        Arc::new(move || {
            serde_json::json!({
                "service": "geo-router",
                "zone": config.zone,
                "regions": topology.regions,
                "edges": topology.edges,
                "draining": shutdown.is_draining(),
            })
        })
    };
    let admin = Admin::new(registry, status, shutdown.clone());
    let admin_shutdown = Shutdown::new();
    let admin_task = tokio::spawn(server_kit::http_server::serve(
        listeners.admin,
        move |request, peer| {
            let admin = admin.clone();
            async move { admin.handle(request, peer).await }
        },
        admin_shutdown.clone(),
        config.grace,
    ));
    server_kit::http_server::serve(
        listeners.http,
        |_request, _peer| async {
            body::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "geo-router: routing is not implemented yet",
            )
        },
        shutdown,
        config.grace,
    )
    .await;
    admin_shutdown.stop();
    let _ = admin_task.await;
    Ok(())
}
