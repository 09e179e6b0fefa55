//! Meridian's edge: the caching reverse proxy viewers fetch video from.
//!
//! Layout:
//! - [`config`]: the TOML config and the flags that override it.
//! - [`store`]: the object store: two circular logs in one preallocated file, S3-FIFO, a
//!   compact index, positioned I/O.
//! - [`meta`]: what is stored beside each body, and its encoding.
//! - [`freshness`]: RFC 9111 storability, freshness, age and staleness.
//! - [`request_cc`]: what a viewer's own `Cache-Control` allows.
//! - [`targeted`]: `CDN-Cache-Control` and the other fields that speak to the edge alone.
//! - [`key`]: cache keys and `Vary` variants.
//! - [`manifests`]: steering tags and CDN paths written into the HLS and DASH manifests served.
//! - [`proxy`]: the request path, one module per step (dispatch, lookup, hit, revalidate, miss,
//!   respond) and the operator's operations (PURGE, drain, `/status`).
//! - [`fill`]: coalesced origin fetches, streamed to every waiter; the fill leader stores them.
//! - [`forward`]: which request headers go on to the origin (hop-by-hop ones do not).
//! - [`breaker`]: a circuit breaker per origin, so a failing one is skipped for a while.
//! - [`upstream`]: the origin client (hickory-resolver, failover across origins).
//! - [`prefetch`]: which segments of a rendition a viewer will ask for next.
//! - [`cmcd`]: what a player says with its requests (CMCD: its session, its next object).
//! - [`admin_ops`]: drain on/off and the routers' purge pushes, on the admin listener.
//! - [`purges`]: which of the routers' purges the edge has applied, and when its store may serve.
//! - [`state`]: the drain switch and the purges applied, kept across restarts.
//! - [`tls`]: HTTPS with HTTP/2 by ALPN.
//! - [`metrics`], [`error`].
//!
//! [`run`] serves pre-bound listeners until the [`Shutdown`] says to stop.

pub mod access_log;
pub mod admin_ops;
pub mod breaker;
pub mod cmcd;
pub mod config;
pub mod error;
pub mod fill;
pub mod forward;
pub mod freshness;
pub mod key;
pub mod load;
pub mod manifests;
pub mod meta;
pub mod metrics;
pub mod prefetch;
pub mod proxy;
pub mod purges;
pub mod request_cc;
pub mod signed;
pub mod state;
pub mod store;
pub mod targeted;
pub mod tls;
pub mod upstream;

use std::sync::Arc;

use server_kit::Shutdown;
use server_kit::admin::Admin;
use tokio::net::TcpListener;

pub use config::EdgeConfig;
pub use proxy::Edge;

/// Errors that stop the edge from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error("edge setup: {0}")]
    Setup(#[from] error::EdgeError),
    #[error("access log {}: {source}; check access_log and that the folder is writable", path.display())]
    AccessLog {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The listeners `main` (or a test) bound for the edge.
#[derive(Debug)]
pub struct Listeners {
    pub http: Vec<TcpListener>,
    pub https: Vec<TcpListener>,
    pub admin: TcpListener,
}

/// Opens and locks the store the config names (a second edge on the same file is refused here,
/// at once); its index is rebuilt by the returned `Recovery`, which `run` runs in the
/// background while `/readyz` answers 503.
pub fn open_store(
    config: &EdgeConfig,
) -> Result<
    (
        store::Store<meta::CachedMeta>,
        store::Recovery<meta::CachedMeta>,
    ),
    Error,
> {
    Ok(store::Store::open_starting_with(
        &config.store,
        config.capacity.0,
        config.memory_cache_bytes(),
        config.zero_copy_below.0,
    )?)
}

/// Serves until `shutdown` drains (finishing in-flight responses within the grace period) or
/// stops.
///
/// The viewer listeners serve at once (misses, from the origin, while the store starts); they are
/// announced (`listening http ...`) once the store is ready, so that whoever waits for the line
/// gets an edge that serves from its store.
pub async fn run(
    listeners: Listeners,
    config: EdgeConfig,
    (store, recovery): (
        store::Store<meta::CachedMeta>,
        store::Recovery<meta::CachedMeta>,
    ),
    shutdown: Shutdown,
) -> Result<(), Error> {
    let certificates = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) if !listeners.https.is_empty() => {
            let files = std::iter::once(tls::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .chain(config.tls_certificates.iter().cloned())
            .collect();
            Some(Arc::new(tls::Certificates::load(files)?))
        }
        _ => None,
    };
    let acceptor = certificates.clone().map(tls::acceptor).transpose()?;
    // SIGHUP reloads the certificates; new handshakes get the new ones, connections up keep
    // theirs, and a set that does not load leaves the old one in place.
    if let Some(certificates) = certificates
        && let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    {
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match certificates.reload() {
                    Ok(n) => tracing::info!(certificates = n, "TLS certificates reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "TLS certificates not reloaded; the old ones stay")
                    }
                }
            }
        });
    }
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = metrics::Metrics::register(&mut registry);
    let connections = server_kit::connection::Metrics::register(&mut registry, "meridian_edge");
    let options = |listener| server_kit::http_server::Options {
        limits: config.connections.clone(),
        metrics: connections.for_listener(listener),
    };
    metrics.store(&store.stats());
    let stats = store.stats();
    tracing::info!(
        objects = stats.objects,
        used = stats.used,
        capacity = stats.capacity,
        "store open"
    );
    let access_log = match &config.access_log {
        Some(path) => {
            let dropped = prometheus_client::metrics::counter::Counter::default();
            registry.register(
                "meridian_edge_access_log_dropped",
                "Access log lines dropped because the writer fell behind",
                dropped.clone(),
            );
            let log = access_log::AccessLog::open(
                path,
                config.access_log_sample,
                &config.name,
                &config.region,
                dropped,
            )
            .map_err(|source| Error::AccessLog {
                path: path.clone(),
                source,
            })?;
            Some(Arc::new(log))
        }
        None => None,
    };
    // SIGUSR1 reopens the access log, after a rotation moved it away.
    if let Some(log) = access_log.clone()
        && let Ok(mut usr1) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
    {
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                log.reopen();
            }
        });
    }
    let load = load::Meter::new(config.load, &mut registry);
    let sampler = tokio::spawn(load.clone().run(load::Sources {
        listeners: vec![
            connections.for_listener("http"),
            connections.for_listener("https"),
        ],
        responses: metrics.in_flight.clone(),
    }));
    let state = state::StateFile::open(&config.state_path())?;
    let edge = Arc::new(Edge::new(
        &config,
        state,
        store.clone(),
        metrics,
        access_log,
        load,
    )?);
    // Bodies recovered at start are checked against their checksums in the background (a
    // lookup checks its own first if it gets there before), and the file's size is watched
    // (a truncated file loses objects, not the process): see `store::Store::check_some`.
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let (store, stopping) = (store.clone(), stopping.clone());
        tokio::spawn(async move {
            let mut checked = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.check_some(64)).await {
                    Ok(0) => {
                        if checked > 0 {
                            tracing::info!(checked, "stored bodies checked since start");
                            checked = 0;
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Ok(n) => checked += n,
                    Err(error) => {
                        tracing::error!(%error, "store check failed; going on");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        })
    };

    // The index is saved every `checkpoint_interval`, so that a start after a crash reads
    // only the record headers written since (see `store::Store::save_checkpoint`).
    let checkpointer = {
        let store = store.clone();
        let every = config.checkpoint_interval;
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let store = store.clone();
                match tokio::task::spawn_blocking(move || store.save_checkpoint()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "store checkpoint not written"),
                    Err(error) => tracing::error!(%error, "internal: checkpoint task failed"),
                }
            }
        })
    };

    // Whether any origin answers, every 2 s, for `/status`: the router takes an edge that cannot
    // reach any origin out only while other edges can (an origin outage takes no edge out).
    let origin_check = {
        let edge = edge.clone();
        let every = config.origin_check_interval;
        tokio::spawn(async move {
            if every.is_zero() {
                return;
            }
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                edge.check_origins().await;
            }
        })
    };

    let admin_shutdown = Shutdown::new();
    let status = {
        let edge = edge.clone();
        let shutdown = shutdown.clone();
        Arc::new(move || edge.status(shutdown.is_draining()))
    };
    let admin = Admin::new(Arc::new(registry), status, shutdown.clone());
    let admin_task = {
        let edge = edge.clone();
        tokio::spawn(server_kit::http_server::serve_with(
            listeners.admin,
            None,
            move |request, peer| {
                let (admin, edge) = (admin.clone(), edge.clone());
                async move { admin_ops::handle(&edge, &admin, request, peer).await }
            },
            admin_shutdown.clone(),
            config.grace,
            options("admin"),
        ))
    };

    // HTTPS first: a harness waiting for `http` and `admin` has read the `https` line by then.
    let announced: Vec<(&'static str, String)> = listeners
        .https
        .iter()
        .map(|l| ("https", l))
        .chain(listeners.http.iter().map(|l| ("http", l)))
        .filter_map(|(kind, l)| Some((kind, format!("{kind}://{}", l.local_addr().ok()?))))
        .collect();
    let mut servers = Vec::new();
    for listener in listeners.http {
        let edge = edge.clone();
        servers.push(tokio::spawn(server_kit::http_server::serve_with(
            listener,
            None,
            move |request, peer| edge.clone().handle(request, peer),
            shutdown.clone(),
            config.grace,
            options("http"),
        )));
    }
    for listener in listeners.https {
        let (edge, acceptor) = (edge.clone(), acceptor.clone());
        let Some(acceptor) = acceptor else {
            return Err(Error::Config(config::ConfigError {
                key: "tls_listen",
                problem: "needs tls_cert and tls_key".into(),
            }));
        };
        servers.push(tokio::spawn(server_kit::http_server::serve_with(
            listener,
            Some(acceptor),
            move |request, peer| edge.clone().handle(request, peer),
            shutdown.clone(),
            config.grace,
            options("https"),
        )));
    }
    match tokio::task::spawn_blocking(move || recovery.run()).await {
        Ok(Ok(_)) => {
            for (kind, address) in announced {
                server_kit::listener::announce(kind, address);
            }
        }
        Ok(Err(error)) => {
            shutdown.stop();
            return Err(error.into());
        }
        Err(error) => {
            shutdown.stop();
            return Err(Error::Store(store::StoreError::Config(format!(
                "internal: the store's recovery task failed: {error}"
            ))));
        }
    }
    for server in servers {
        let _ = server.await;
    }
    stopping.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = checker.await;
    // A checkpoint being written finishes on the blocking pool; `close` waits for it and
    // writes the clean stop's over it.
    checkpointer.abort();
    sampler.abort();
    origin_check.abort();
    admin_shutdown.stop();
    let _ = admin_task.await;
    let closing = store.clone();
    match tokio::task::spawn_blocking(move || closing.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "store close failed; the next start walks the logs")
        }
        Err(error) => tracing::error!(%error, "internal: store close task failed"),
    }
    tracing::info!("edge stopped");
    Ok(())
}
