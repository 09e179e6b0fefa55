//! The launcher's HTTP port: the player and fleet pages (files from `player/`, the player
//! libraries from `player/node_modules`, installed by npm), the fleet's addresses as JSON, and
//! the control API that the pages' buttons and `meridian-local kill|freeze|drain|undrain|restore` use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use server_kit::{Body, body};

use crate::plan::{LOCAL_SIGNING_KEY_ID, LOCAL_SIGNING_SECRET};
use crate::supervisor::Supervisor;

/// What the control server needs.
#[derive(Debug)]
pub struct Control {
    pub supervisor: Arc<Supervisor>,
    pub player_dir: PathBuf,
}

/// The library files the pages load, and where npm puts them.
const LIBRARIES: [(&str, &str); 2] = [
    ("/lib/hls.js", "node_modules/hls.js/dist/hls.min.js"),
    ("/lib/dash.js", "node_modules/dashjs/dist/dash.all.min.js"),
];

impl Control {
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        _peer: SocketAddr,
    ) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let mut response = match (request.method(), path.as_str()) {
            (&Method::GET, "/") => self.file("index.html").await,
            (&Method::GET, "/fleet") => self.file("fleet.html").await,
            (&Method::GET, "/api/config") => json(self.config()),
            (&Method::GET, "/api/state") => json(self.supervisor.states().await),
            (&Method::GET, p) if p.starts_with("/assets/") => {
                let name = &p["/assets/".len()..];
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    || name.starts_with('.')
                {
                    body::text(StatusCode::BAD_REQUEST, "client error: bad asset name")
                } else {
                    self.file(name).await
                }
            }
            (&Method::GET, p) if LIBRARIES.iter().any(|(url, _)| *url == p) => {
                let file = LIBRARIES
                    .iter()
                    .find(|(url, _)| *url == p)
                    .map(|(_, f)| *f)
                    .unwrap_or("");
                self.file(file).await
            }
            (&Method::GET, "/api/sign") => self.sign(request.uri().query().unwrap_or("")).await,
            (&Method::POST, p) if p.starts_with("/api/edges/") => {
                self.act(&p["/api/edges/".len()..]).await
            }
            _ => body::text(
                StatusCode::NOT_FOUND,
                "not found: try / (player), /fleet, /api/config, /api/sign?prefix=/live/title/",
            ),
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    /// `/api/sign?prefix=/live/title/`: a signed path for the prefix, valid for two hours, made
    /// by `meridian-sign` with the fleet's local key (only when the fleet runs with
    /// `--signed-urls`).
    async fn sign(&self, query: &str) -> Response<Body> {
        let Some(signer) = &self.supervisor.plan.signer else {
            return body::text(
                StatusCode::NOT_FOUND,
                "this fleet does not require signed URLs (start it with --signed-urls)",
            );
        };
        let prefix = query
            .split('&')
            .find_map(|p| p.strip_prefix("prefix="))
            .unwrap_or("");
        // A title's folder, spelled plainly: nothing to decode, nothing to climb out of.
        let plain = prefix.starts_with('/')
            && prefix.ends_with('/')
            && !prefix.contains("..")
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
        if !plain {
            return body::text(
                StatusCode::BAD_REQUEST,
                "client error: give prefix=/folder/ (letters, digits, / _ . -)",
            );
        }
        let output = tokio::process::Command::new(signer)
            .args(["--key-id", &LOCAL_SIGNING_KEY_ID.to_string()])
            .args(["--prefix", prefix, "--ttl", "2h"])
            .env("MERIDIAN_SIGNING_SECRET", LOCAL_SIGNING_SECRET)
            .output()
            .await;
        match output {
            Ok(out) if out.status.success() => {
                let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                json(serde_json::json!({ "path": path }))
            }
            Ok(out) => body::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "internal error: {} failed: {}",
                    signer.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ),
            Err(e) => body::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error: cannot run {}: {e}", signer.display()),
            ),
        }
    }

    async fn act(&self, rest: &str) -> Response<Body> {
        let Some((name, action)) = rest.split_once('/') else {
            return body::text(
                StatusCode::NOT_FOUND,
                "use /api/edges/<name>/<kill|freeze|drain|undrain|restore>",
            );
        };
        let result = match action {
            "kill" => self.supervisor.kill(name).await,
            "freeze" => self.supervisor.freeze(name).await,
            "drain" => self.supervisor.drain(name, true).await,
            "undrain" => self.supervisor.drain(name, false).await,
            "restore" => self.supervisor.restore(name).await,
            _ => {
                return body::text(
                    StatusCode::NOT_FOUND,
                    format!("unknown action {action:?}: kill, freeze, drain, undrain or restore"),
                );
            }
        };
        match result {
            Ok(message) => {
                tracing::info!(%message, "control");
                body::text(StatusCode::OK, message)
            }
            Err(error) => {
                tracing::warn!(%error, edge = name, action, "control action failed");
                body::text(error.status(), error.to_string())
            }
        }
    }

    fn config(&self) -> serde_json::Value {
        let plan = &self.supervisor.plan;
        let a = &plan.addresses;
        serde_json::json!({
            "router": format!("http://{}", a.router_http),
            "router_admin": format!("http://{}", a.router_admin),
            "router_dns": a.router_dns.to_string(),
            "origin": format!("http://{}", a.origin_http),
            "origin_admin": format!("http://{}", a.origin_admin),
            "loopback_block": plan.loopback_block,
            "signed_urls": plan.signer.is_some(),
            "edges": plan.edges.iter().map(|(info, _)| info).collect::<Vec<_>>(),
        })
    }

    async fn file(&self, relative: &str) -> Response<Body> {
        let path = self.player_dir.join(relative);
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let (_, content_type) = video_http::media::classify(relative);
                let mut response = Response::new(body::full(bytes));
                if let Ok(value) = HeaderValue::from_str(content_type) {
                    response.headers_mut().insert(header::CONTENT_TYPE, value);
                }
                response
            }
            Err(_) if relative.starts_with("node_modules") => body::text(
                StatusCode::NOT_FOUND,
                "the player libraries are not installed: run `npm ci` in player/ (scripts/run-local does)",
            ),
            Err(_) => body::text(StatusCode::NOT_FOUND, format!("not found: {relative}")),
        }
    }
}

fn json(value: serde_json::Value) -> Response<Body> {
    body::json(&value)
}
