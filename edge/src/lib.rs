//! Meridian's edge: the caching reverse proxy viewers fetch video from.
//!
//! This first version runs the process contract only (HTTP and admin listeners, drain on
//! SIGTERM); the cache itself arrives with its own issue, and until then media requests get 503
//! and say so.
//!
//! Layout:
//! - [`config`]: the TOML config and the flags that override it.
//! - [`run`]: serves pre-bound listeners until the [`Shutdown`] says to stop.

pub mod config;
pub mod store;

use std::sync::Arc;

use http::StatusCode;
use server_kit::admin::Admin;
use server_kit::{Shutdown, body};
use tokio::net::TcpListener;

pub use config::EdgeConfig;

/// The listeners `main` (or a test) bound for the edge.
#[derive(Debug)]
pub struct Listeners {
    pub http: Vec<TcpListener>,
    pub admin: TcpListener,
}

/// Serves until `shutdown` drains or stops.
pub async fn run(listeners: Listeners, config: EdgeConfig, shutdown: Shutdown) {
    let registry = Arc::new(prometheus_client::registry::Registry::default());
    let status = {
        let shutdown = shutdown.clone();
        let config = config.clone();
        Arc::new(move || {
            serde_json::json!({
                "service": "edge",
                "name": config.name,
                "region": config.region,
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
    let mut servers = Vec::new();
    for listener in listeners.http {
        servers.push(tokio::spawn(server_kit::http_server::serve(
            listener,
            |_request, _peer| async {
                body::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "edge: caching is not implemented yet",
                )
            },
            shutdown.clone(),
            config.grace,
        )));
    }
    for server in servers {
        let _ = server.await;
    }
    admin_shutdown.stop();
    let _ = admin_task.await;
}
