//! Meridian's geo-router: decides which edge every viewer goes to.
//!
//! Layout:
//! - [`config`]: the TOML config and the flags that override it.
//! - [`geoip`]: locating a client in a MaxMind-format database (two layouts).
//! - [`decision`]: the pure routing decision (regions by distance and room, edges by rendezvous hashing).
//! - [`fleet`]: health per edge, the peer quorum, the last known-good view.
//! - [`probe`]: probing edges (admin and viewer listener) and polling peer routers.
//! - [`views`]: the signed, sequenced views routers exchange.
//! - [`purge`], [`purge_log`]: fleet purges, numbered, copied to peers, pushed to every edge.
//! - [`router`]: the shared state and the one decision DNS and HTTP both use.
//! - [`dns`]: the authoritative DNS handler (ECS-aware).
//! - [`api`]: steering manifests, redirects, the peer view.
//! - [`metrics`].
//!
//! [`run`] serves pre-bound sockets until the [`Shutdown`] says to stop.

pub mod api;
pub mod config;
pub mod decision;
pub mod dns;
pub mod fleet;
pub mod geoip;
pub mod metrics;
pub mod probe;
pub mod purge;
pub mod purge_log;
pub mod router;
pub mod views;

use std::path::PathBuf;
use std::sync::Arc;

use server_kit::Shutdown;
use server_kit::admin::Admin;
use tokio::net::TcpListener;
use topology::Topology;

use crate::geoip::GeoIp;

pub use config::RouterConfig;
pub use router::Router;

/// Errors that stop the router from starting, or a new topology from being taken on SIGHUP. Each
/// names the file or the config key at fault and what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The topology file is unusable (boxed: it is by far the largest variant).
    #[error(transparent)]
    Topology(Box<topology::Error>),
    /// A config value breaks a rule serde cannot check, alone or against the topology.
    #[error("config key `{key}`: {problem}")]
    Config { key: &'static str, problem: String },
    /// A name in the config does not make a DNS name under the zone.
    #[error(
        "config key `{key}`: {name:?} is not a valid DNS name ({error}); use dot-separated labels of letters, digits and '-'"
    )]
    DnsName {
        key: &'static str,
        name: String,
        error: hickory_server::proto::ProtoError,
    },
    /// The purge log cannot be read or written.
    #[error(transparent)]
    PurgeLog(#[from] purge_log::LogError),
    /// The GeoIP database cannot be opened or read.
    #[error(
        "GeoIP database {}: cannot open it: {error}; check `geoip` in the config or --geoip (testdata/make-geoip writes the test databases)",
        path.display()
    )]
    GeoIp {
        path: PathBuf,
        error: maxminddb::MaxMindDbError,
    },
}

impl From<topology::Error> for Error {
    fn from(error: topology::Error) -> Self {
        Error::Topology(Box::new(error))
    }
}

/// The sockets `main` (or a test) bound for the router.
#[derive(Debug)]
pub struct Listeners {
    /// Bound with [`dns::udp::bind`], so that more sockets can join it.
    pub dns_udp: std::net::UdpSocket,
    pub dns_tcp: TcpListener,
    pub http: TcpListener,
    pub admin: TcpListener,
}

/// Loads the topology file the config names and checks the config against it: at startup, for
/// `--check-config`, and on every SIGHUP.
pub fn load_topology(config: &RouterConfig) -> Result<Topology, Error> {
    let topology = Topology::load(&config.topology)?;
    config.validate(&topology)?;
    Ok(topology)
}

/// Loads and checks everything the config points at: the topology and the GeoIP database.
pub fn load(config: &RouterConfig) -> Result<(Topology, GeoIp), Error> {
    Ok((load_topology(config)?, GeoIp::open(&config.geoip)?))
}

/// Builds the router's state from its config (topology and GeoIP loaded and checked).
pub fn build(
    config: RouterConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Arc<Router>, Error> {
    let loaded = load(&config)?;
    Ok(build_from(config, loaded, None, registry))
}

/// Builds the router's state from what [`load`] returned.
pub fn build_from(
    config: RouterConfig,
    (topology, geoip): (Topology, GeoIp),
    purge_log: Option<purge_log::PurgeLog>,
    registry: &mut prometheus_client::registry::Registry,
) -> Arc<Router> {
    let metrics = metrics::Metrics::register(registry);
    Arc::new(Router::new(config, geoip, topology, metrics, purge_log))
}

/// Opens the purge log the config names (none without `admin_token`).
pub fn open_purge_log(config: &RouterConfig) -> Result<Option<purge_log::PurgeLog>, Error> {
    match (&config.admin_token, &config.purge_log) {
        (Some(_), Some(path)) => Ok(Some(purge_log::PurgeLog::open(
            path,
            &config.name,
            config.purge_log_keep,
        )?)),
        _ => Ok(None),
    }
}

/// Serves DNS, the HTTP API and the admin surface until `shutdown` drains or stops, with the
/// topology and GeoIP database `loaded` before the listeners were announced (read again here,
/// the file could already be another: a test or an operator writes it once the router is up).
/// Each notification on `reload` re-reads the topology file; a bad file is refused and the old
/// topology kept.
pub async fn run(
    listeners: Listeners,
    config: RouterConfig,
    loaded: (Topology, GeoIp),
    purge_log: Option<purge_log::PurgeLog>,
    shutdown: Shutdown,
    reload: Arc<tokio::sync::Notify>,
) -> Result<(), Error> {
    let grace = config.grace;
    let mut registry = prometheus_client::registry::Registry::default();
    let connections = server_kit::connection::Metrics::register(&mut registry, "meridian_router");
    let options = |listener| server_kit::http_server::Options {
        limits: config.connections.clone(),
        metrics: connections.for_listener(listener),
    };
    let (http_options, admin_options) = (options("http"), options("admin"));
    let router = build_from(config, loaded, purge_log, &mut registry);
    let topology = router.fleet.topology();
    tracing::info!(
        regions = topology.regions.len(),
        edges = topology.edges.len(),
        geoip = router.geoip.database_type(),
        "router ready"
    );

    let udp = dns::udp::Udp::start(
        listeners.dns_udp,
        router.config.dns_udp_threads,
        Arc::new(dns::DnsHandler::new(router.clone())?),
    )
    .map_err(|error| Error::Config {
        key: "dns_udp_threads",
        problem: format!("cannot start the DNS UDP sockets: {error}"),
    })?;
    let mut dns = hickory_server::Server::new(dns::DnsHandler::new(router.clone())?);
    dns.register_listener(listeners.dns_tcp, router.config.dns_tcp_timeout, 65_535);

    let prober = tokio::spawn(probe::run(
        router.fleet.clone(),
        router.config.peers.clone(),
        router.config.probe.clone(),
        router.metrics.clone(),
        router.purger.clone(),
        shutdown.clone(),
    ));
    let reloader = {
        let (router, shutdown) = (router.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.draining() => return,
                    _ = reload.notified() => {}
                }
                match load_topology(&router.config) {
                    Ok(topology) => {
                        tracing::info!(edges = topology.edges.len(), "topology reloaded");
                        router.reload(topology);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "new topology refused; keeping the old one")
                    }
                }
            }
        })
    };

    let admin_shutdown = Shutdown::new();
    let status = {
        let (router, shutdown) = (router.clone(), shutdown.clone());
        Arc::new(move || {
            let mut json = router.fleet.to_json();
            json["service"] = serde_json::json!("geo-router");
            json["zone"] = serde_json::json!(router.config.zone);
            json["draining"] = serde_json::json!(shutdown.is_draining());
            json["dns_ttl_seconds"] = serde_json::json!(router.ttl().as_secs());
            json
        })
    };
    let admin = Admin::new(Arc::new(registry), status, shutdown.clone());
    let admin_task = {
        let router = router.clone();
        tokio::spawn(server_kit::http_server::serve_with(
            listeners.admin,
            None,
            move |request, peer| {
                let (admin, router) = (admin.clone(), router.clone());
                async move {
                    match (&router.purger, request.uri().path()) {
                        (Some(purger), "/purge") => purger.handle(&router.fleet, request).await,
                        _ => admin.handle(request, peer).await,
                    }
                }
            },
            admin_shutdown.clone(),
            grace,
            admin_options,
        ))
    };

    let api_router = router.clone();
    server_kit::http_server::serve_with(
        listeners.http,
        None,
        move |request, peer| api::handle(api_router.clone(), request, peer),
        shutdown.clone(),
        grace,
        http_options,
    )
    .await;
    // DNS answers stay up until the HTTP drain is over, then stop.
    if let Err(error) = dns.shutdown_gracefully().await {
        tracing::warn!(%error, "DNS server stopped with an error");
    }
    udp.stop().await;
    let _ = prober.await;
    reloader.abort();
    admin_shutdown.stop();
    let _ = admin_task.await;
    tracing::info!("router stopped");
    Ok(())
}
