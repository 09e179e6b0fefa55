//! The prober: every interval, each edge's admin `/status` and its viewer listener (a small
//! object the edge answers itself, `/.well-known/meridian/probe`, so that a wedged viewer
//! listener behind a live admin port fails), and each peer router's `/view`, all at once, each
//! bounded by the probe timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use server_kit::Shutdown;

use crate::config::ProbeConfig;
use crate::fleet::{Fleet, Probe};
use crate::metrics::Metrics;
use crate::views::Signed;

/// Why one probe of an edge's `/status`, or one poll of a peer's `/view`, failed. The edge
/// counts as failing that round; a peer's last view is kept until it expires.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The URL made from the topology's `admin` or from `peers` is not a URL.
    #[error(
        "{url:?} is not a URL ({error}); fix the edge's `admin` in the topology or the peer in `peers`"
    )]
    BadUrl { url: String, error: String },
    /// No connection, or no response on it.
    #[error("GET {url}: no response: {error}")]
    Unreachable { url: String, error: String },
    /// A response, but not a success.
    #[error("GET {url}: status {status}")]
    Status {
        url: String,
        status: http::StatusCode,
    },
    /// The body broke off.
    #[error("GET {url}: the body broke off: {error}")]
    Body { url: String, error: String },
    /// The body is not JSON.
    #[error("GET {url}: the body is not JSON: {error}")]
    NotJson { url: String, error: String },
    /// The edge answers but says it is not ready (its store is still loading its index).
    #[error("GET {url}: the edge is not ready yet")]
    NotReady { url: String },
    /// No whole answer within the probe timeout.
    #[error("GET {url}: no answer within probe.timeout ({timeout:?})")]
    TimedOut { url: String, timeout: Duration },
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// What the prober fetches through an edge's viewer listener (the edge's `PROBE_PATH`).
pub const VIEWER_PROBE: &str = "/.well-known/meridian/probe";

/// Runs until `shutdown` drains.
pub async fn run(
    fleet: Arc<Fleet>,
    peers: Vec<String>,
    config: ProbeConfig,
    metrics: Metrics,
    purger: Option<Arc<crate::purge::Purger>>,
    shutdown: Shutdown,
) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.timeout));
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(10))
        .build(connector.clone());
    // A new connection for every viewer-listener probe: a kept-alive one would pass through a
    // listener that accepts nobody new.
    let fresh: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector);
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.draining() => return,
            _ = ticker.tick() => {}
        }
        let topology = fleet.topology();
        let edge_probes = topology.edges.iter().map(|edge| {
            let status = format!("{}/status", edge.admin.trim_end_matches('/'));
            let viewer = format!("{}{VIEWER_PROBE}", edge.http.trim_end_matches('/'));
            probe_edge(&client, &fresh, status, viewer, config.timeout)
        });
        let peer_polls = peers.iter().map(|peer| {
            let url = format!("{}/view", peer.trim_end_matches('/'));
            poll_peer(&client, url, config.timeout)
        });
        let (results, views) = tokio::join!(join_all(edge_probes), join_all(peer_polls));
        let (results, purges): (Vec<Probe>, Vec<_>) = results.into_iter().unzip();
        for result in &results {
            metrics.probe(matches!(result, Probe::Ok { .. }));
        }
        if let Some(purger) = &purger {
            for (edge, status) in topology.edges.iter().zip(purges) {
                if let Some(status) = status {
                    purger.catch_up(&edge.name, &edge.admin, status);
                }
            }
        }
        fleet.record_probes(&topology, results);
        for (peer, view) in peers.iter().zip(views) {
            fleet.record_peer(peer, view);
        }
    }
}

async fn get_json(
    client: &HttpClient,
    url: &str,
    timeout: Duration,
) -> Result<serde_json::Value, ProbeError> {
    let body = get_body(client, url, timeout).await?;
    serde_json::from_slice(&body).map_err(|e| ProbeError::NotJson {
        url: url.to_owned(),
        error: e.to_string(),
    })
}

/// The body of a successful GET of `url`, whole within `timeout`.
async fn get_body(client: &HttpClient, url: &str, timeout: Duration) -> Result<Bytes, ProbeError> {
    let uri: http::Uri = url.parse().map_err(|e| ProbeError::BadUrl {
        url: url.to_owned(),
        error: format!("{e}"),
    })?;
    let fetch = async {
        let response = client.get(uri).await.map_err(|e| ProbeError::Unreachable {
            url: url.to_owned(),
            error: e.to_string(),
        })?;
        if !response.status().is_success() {
            return Err(ProbeError::Status {
                url: url.to_owned(),
                status: response.status(),
            });
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ProbeError::Body {
                url: url.to_owned(),
                error: e.to_string(),
            })?
            .to_bytes();
        Ok(body)
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| ProbeError::TimedOut {
            url: url.to_owned(),
            timeout,
        })?
}

async fn probe_edge(
    client: &HttpClient,
    fresh: &HttpClient,
    url: String,
    viewer: String,
    timeout: Duration,
) -> (Probe, Option<crate::purge::EdgePurges>) {
    let (status, through) = tokio::join!(
        get_json(client, &url, timeout),
        get_body(fresh, &viewer, timeout)
    );
    // Read whatever the verdict: an edge not ready may be waiting for exactly these purges.
    let purges = status
        .as_ref()
        .ok()
        .and_then(|status| status.get("purges"))
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    (judge(url, status, through), purges)
}

fn judge(
    url: String,
    status: Result<serde_json::Value, ProbeError>,
    through: Result<Bytes, ProbeError>,
) -> Probe {
    if let Err(error) = through {
        tracing::debug!(%error, "viewer listener probe failed");
        return Probe::Failed(error);
    }
    match status {
        // Kept out like an edge that does not answer, until it is: it would serve every
        // viewer from the origin meanwhile.
        Ok(status) if status.get("ready").and_then(|v| v.as_bool()) == Some(false) => {
            Probe::Failed(ProbeError::NotReady { url })
        }
        Ok(status) => Probe::Ok {
            load: status.get("load").and_then(|v| v.as_f64()).unwrap_or(0.0),
            draining: status
                .get("draining")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            origin_reachable: status
                .get("origin_reachable")
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
        },
        Err(error) => {
            tracing::debug!(%error, "probe failed");
            Probe::Failed(error)
        }
    }
}

async fn poll_peer(client: &HttpClient, url: String, timeout: Duration) -> Option<Signed> {
    match get_json(client, &url, timeout).await {
        Ok(value) => serde_json::from_value(value).ok(),
        Err(error) => {
            tracing::debug!(%error, "peer unreachable");
            None
        }
    }
}
