//! Fleet purges.
//!
//! - `POST /purge?url=<URL>` on the admin listener, with the fleet's admin token: the router
//!   numbers the purge in its log ([`PurgeLog`]), copies it to every peer router (signed with
//!   `peer_secret`, `POST /purges` on their HTTP API), pushes it to every edge of the topology
//!   (`POST /purges` on the edge's admin listener, with the same token), and answers what each
//!   router and each edge did. A URL ending in `*` purges every URL it is a prefix of.
//! - After every probe round, an edge whose `/status` shows purges it has not applied, or that
//!   waits for this router after a start, is sent them ([`Purger::catch_up`]): an edge that was
//!   down during a purge gets it before it serves from its store again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ring::hmac;
use serde::{Deserialize, Serialize};
use server_kit::{Body, body};

use crate::fleet::Fleet;
use crate::purge_log::{Applied, Entry, Missing, PurgeLog};
use topology::purges::Push;

/// The most purges one push carries.
const PUSH_MOST: usize = 1000;
/// How long an edge or a peer has to take a purge.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A purge copied to a peer router.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    pub entry: Entry,
    /// HMAC-SHA256 of the entry's JSON with the fleet's `peer_secret`.
    pub mac: String,
}

/// The purges part of an edge's `/status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EdgePurges {
    pub synced: bool,
    pub awaits_routers: bool,
    pub heard_from: Vec<String>,
    pub applied: BTreeMap<String, Applied>,
}

/// Takes fleet purges and keeps edges up to date with the log.
#[derive(Debug)]
pub struct Purger {
    me: String,
    log: PurgeLog,
    token: String,
    peers: Vec<String>,
    key: Option<hmac::Key>,
    client: HttpClient,
    /// Edges a catch-up push is on its way to (one at a time per edge).
    pushing: Mutex<HashSet<String>>,
    /// Edges whose catch-up pushes failed: how many times in a row, and when to try again.
    failing: Mutex<HashMap<String, (u32, Instant)>>,
    metrics: crate::metrics::Metrics,
}

/// The wait before a catch-up push follows failed ones: none after the first `RETRY_AT_ONCE`
/// (an edge whose store is still loading answers 503 for a moment), then doubling from
/// `RETRY_FIRST` to at most `RETRY_MOST` (one refusing the token does until an operator mends
/// it).
const RETRY_AT_ONCE: u32 = 3;
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MOST: Duration = Duration::from_secs(5);

impl Purger {
    pub fn new(
        me: &str,
        log: PurgeLog,
        token: &str,
        peers: Vec<String>,
        secret: Option<&str>,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        Self {
            me: me.to_owned(),
            log,
            token: token.to_owned(),
            peers,
            key: secret.map(crate::views::key),
            client: Client::builder(TokioExecutor::new()).build(connector),
            pushing: Mutex::new(HashSet::new()),
            failing: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// `POST /purge?url=...` on the admin listener.
    pub async fn handle(
        &self,
        fleet: &Fleet,
        request: Request<hyper::body::Incoming>,
    ) -> Response<Body> {
        if request.method() != http::Method::POST {
            return body::text(
                StatusCode::METHOD_NOT_ALLOWED,
                "client error: POST /purge?url=<URL> purges a URL (or a prefix: end it with *) on every edge",
            );
        }
        if let Some(refusal) = server_kit::auth::refusal(request.headers(), Some(&self.token)) {
            return refusal;
        }
        let query = request.uri().query().unwrap_or("");
        let url = crate::api::params(query)
            .into_iter()
            .find(|(name, _)| name == "url")
            .map(|(_, value)| value);
        let url = match url.as_deref().map(check_url) {
            Some(Ok(url)) => url,
            Some(Err(problem)) => {
                return body::text(StatusCode::BAD_REQUEST, format!("client error: {problem}"));
            }
            None => {
                return body::text(
                    StatusCode::BAD_REQUEST,
                    "client error: say what to purge: /purge?url=http://host/path (or a prefix ending in *)",
                );
            }
        };
        let entry = match self.log.take(&url) {
            Ok(entry) => entry,
            Err(error) => {
                tracing::error!(%error, "purge not taken");
                return body::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "router error: the purge was not taken: {error}; retry, or purge through another router"
                    ),
                );
            }
        };
        tracing::info!(url = %entry.url, seq = entry.seq, "fleet purge");
        self.metrics.purge("taken");
        let topology = fleet.topology();
        let copies = self.peers.iter().map(|peer| self.copy_to(peer, &entry));
        let no_reset = BTreeMap::new();
        let pushes = topology.edges.iter().map(|edge| {
            let entries = std::slice::from_ref(&entry);
            self.push(&edge.admin, false, &no_reset, entries)
        });
        let (copies, pushes) = tokio::join!(join_all(copies), join_all(pushes));
        let mut recorded_by = vec![self.me.clone()];
        let mut router_failures = Vec::new();
        for (peer, copied) in self.peers.iter().zip(copies) {
            match copied {
                Ok(()) => recorded_by.push(peer.clone()),
                Err(error) => {
                    router_failures.push(serde_json::json!({ "router": peer, "error": error }))
                }
            }
        }
        let mut all_edges = true;
        let edges: Vec<serde_json::Value> = topology
            .edges
            .iter()
            .zip(pushes)
            .map(|(edge, pushed)| match pushed {
                Ok(answer) => {
                    let result = &answer["results"][0]["result"];
                    match result.get("purged") {
                        Some(purged) => serde_json::json!({ "edge": edge.name, "result": "purged", "objects": purged }),
                        // Applied before (a copy pushed by another router got there first).
                        None if result.is_null() => serde_json::json!({ "edge": edge.name, "result": "purged", "objects": 0 }),
                        None => {
                            all_edges = false;
                            serde_json::json!({ "edge": edge.name, "result": "failed", "error": result["error"] })
                        }
                    }
                }
                Err(error) => {
                    all_edges = false;
                    serde_json::json!({
                        "edge": edge.name,
                        "result": "failed",
                        "error": error,
                        "then": "the routers send it the purge when it answers again, before it serves from its store",
                    })
                }
            })
            .collect();
        let configured = self.peers.len() + 1;
        let majority = recorded_by.len() > configured / 2;
        body::json(&serde_json::json!({
            "purge": entry,
            "routers": {
                "configured": configured,
                "recorded_by": recorded_by,
                "failed": router_failures,
                "majority": majority,
            },
            "edges": edges,
            "complete": all_edges && majority,
        }))
    }

    /// `POST /purges` on the HTTP API: a peer's copy of a purge it took.
    pub fn take_copy(&self, bytes: &[u8]) -> Response<Body> {
        let Some(key) = &self.key else {
            return body::text(
                StatusCode::NOT_FOUND,
                "not found: this router has no peer_secret",
            );
        };
        let copy: Copy = match serde_json::from_slice(bytes) {
            Ok(copy) => copy,
            Err(error) => {
                return body::text(
                    StatusCode::BAD_REQUEST,
                    format!("client error: not a purge copy: {error}"),
                );
            }
        };
        let message = serde_json::to_vec(&copy.entry).unwrap_or_default();
        if !crate::views::mac_verifies(key, &message, &copy.mac) {
            return body::text(
                StatusCode::FORBIDDEN,
                "client error: the copy's MAC does not verify (another peer_secret?)",
            );
        }
        match self.log.record(copy.entry) {
            Ok(_) => {
                self.metrics.purge("copy_taken");
                body::text(StatusCode::OK, "recorded")
            }
            Err(error) => {
                tracing::error!(%error, "a peer's purge not recorded");
                body::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("router error: {error}"),
                )
            }
        }
    }

    /// Sends an edge what it is missing, if anything, in the background.
    pub fn catch_up(self: &Arc<Self>, name: &str, admin: &str, status: EdgePurges) {
        let missing: Missing = self.log.missing(&status.applied, PUSH_MOST);
        let waits_for_me =
            status.awaits_routers && !status.synced && !status.heard_from.contains(&self.me);
        if missing.entries.is_empty() && missing.reset.is_empty() && !waits_for_me {
            return;
        }
        let backing_off = self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|&(_, next)| Instant::now() < next);
        if backing_off {
            return;
        }
        if !self
            .pushing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned())
        {
            return;
        }
        let (purger, name, admin) = (self.clone(), name.to_owned(), admin.to_owned());
        tokio::spawn(async move {
            let pushed = purger
                .push(&admin, missing.complete, &missing.reset, &missing.entries)
                .await;
            let mut failing = purger.failing.lock().unwrap_or_else(|e| e.into_inner());
            match pushed {
                Ok(_) => {
                    failing.remove(&name);
                    tracing::info!(edge = %name, purges = missing.entries.len(), complete = missing.complete, "edge brought up to date")
                }
                Err(error) => {
                    let failures = failing.get(&name).map_or(1, |&(n, _)| n + 1);
                    // The first failures are retried at the next probe round (an edge that just
                    // started answers 503 until its store is loaded); later ones back off.
                    let wait = match failures.checked_sub(RETRY_AT_ONCE) {
                        None | Some(0) => Duration::ZERO,
                        Some(n) => RETRY_FIRST
                            .saturating_mul(1 << (n - 1).min(8))
                            .min(RETRY_MOST),
                    };
                    failing.insert(name.clone(), (failures, Instant::now() + wait));
                    tracing::warn!(edge = %name, %error, failures, retry_in = ?wait, "catch-up push failed")
                }
            }
            drop(failing);
            purger
                .pushing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&name);
        });
    }

    async fn push(
        &self,
        admin: &str,
        complete: bool,
        reset: &BTreeMap<String, u64>,
        entries: &[Entry],
    ) -> Result<serde_json::Value, String> {
        let push = Push {
            router: self.me.clone(),
            routers_configured: self.peers.len() + 1,
            complete,
            reset: reset.clone(),
            entries: entries.to_vec(),
        };
        let url = format!("{}/purges", admin.trim_end_matches('/'));
        let body = serde_json::to_vec(&push).unwrap_or_default();
        let answer = self.post(&url, body, Some(&self.token)).await;
        self.metrics.purge(if answer.is_ok() {
            "pushed"
        } else {
            "push_failed"
        });
        let answer = answer?;
        serde_json::from_slice(&answer)
            .map_err(|e| format!("POST {url}: the answer is not JSON: {e}"))
    }

    async fn copy_to(&self, peer: &str, entry: &Entry) -> Result<(), String> {
        let Some(key) = &self.key else {
            return Err("no peer_secret to sign the copy with".into());
        };
        let message = serde_json::to_vec(entry).unwrap_or_default();
        let copy = serde_json::json!({ "entry": entry, "mac": crate::views::mac(key, &message) });
        let url = format!("{}/purges", peer.trim_end_matches('/'));
        self.post(&url, copy.to_string().into_bytes(), None)
            .await
            .map(|_| ())
    }

    /// POSTs `body` as JSON; the answer's body when it is a success.
    async fn post(&self, url: &str, body: Vec<u8>, token: Option<&str>) -> Result<Bytes, String> {
        let mut request = Request::post(url).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("POST {url}: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("POST {url}: no response: {e}"))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("POST {url}: the body broke off: {e}"))?
                .to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes);
                return Err(format!("POST {url}: status {status}: {}", text.trim()));
            }
            Ok(bytes)
        };
        tokio::time::timeout(PUSH_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("POST {url}: no answer within {PUSH_TIMEOUT:?}"))?
    }
}

/// `url` if it can name cached objects: absolute, http or https, and `*` only at its end.
fn check_url(url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("url={url:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "url={url:?} must be an absolute http:// or https:// URL"
        ));
    }
    if url.trim_end_matches('*').contains('*') {
        return Err(format!("url={url:?}: a * may only end it (a prefix)"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_and_star_only_at_the_end() {
        assert!(check_url("http://cdn.test/vod/a.ts").is_ok());
        assert!(check_url("https://cdn.test/vod/*").is_ok());
        assert!(check_url("/vod/a.ts").is_err());
        assert!(check_url("ftp://cdn.test/a").is_err());
        assert!(check_url("http://cdn.test/*/a").is_err());
    }
}
