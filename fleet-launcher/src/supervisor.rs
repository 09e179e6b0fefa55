//! Children of the launcher: started from a [`Spec`], ready when their `listening` lines are
//! out, killed and stopped by PID, their stderr kept in `<run dir>/<name>.log`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use server_kit::listener;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::plan::{LOCAL_TOKEN, Plan, Spec};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The running fleet.
#[derive(Debug)]
pub struct Supervisor {
    pub plan: Plan,
    run_dir: PathBuf,
    children: Mutex<HashMap<String, Child>>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Supervisor {
    pub fn new(plan: Plan, run_dir: PathBuf) -> Self {
        Self {
            plan,
            run_dir,
            children: Mutex::new(HashMap::new()),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Starts the origin, then the router, then every edge (in parallel), each waited for.
    pub async fn start_all(&self) -> Result<(), String> {
        self.start(&self.plan.origin).await?;
        self.start(&self.plan.router).await?;
        let starts = self.plan.edges.iter().map(|(_, spec)| self.start(spec));
        for result in futures_util::future::join_all(starts).await {
            result?;
        }
        Ok(())
    }

    /// Starts one child and waits for its listening lines.
    pub async fn start(&self, spec: &Spec) -> Result<(), String> {
        let log_path = self.run_dir.join(format!("{}.log", spec.name));
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut child = Command::new(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} ({}): {e}",
                    spec.name,
                    spec.program.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut seen: HashMap<String, String> = HashMap::new();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while !spec.listeners.iter().all(|k| seen.contains_key(*k)) {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some((kind, address)) = listener::parse_announcement(&line) {
                            seen.insert(kind.to_owned(), address.to_owned());
                        }
                    }
                    _ => return false,
                }
            }
            true
        })
        .await;
        if ready != Ok(true) {
            let _ = child.start_kill();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!(
                "{} did not become ready; its log:\n{log}",
                spec.name
            ));
        }
        // Keep reading stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        tracing::info!(name = %spec.name, pid = child.id(), listeners = ?seen, "ready");
        self.children.lock().await.insert(spec.name.clone(), child);
        Ok(())
    }

    fn spec(&self, name: &str) -> Option<&Spec> {
        self.plan
            .edges
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.name == name)
    }

    /// `kill -9` of an edge, by PID.
    pub async fn kill(&self, name: &str) -> Result<String, String> {
        self.spec(name)
            .ok_or_else(|| format!("no edge named {name:?}"))?;
        let mut children = self.children.lock().await;
        let mut child = children
            .remove(name)
            .ok_or_else(|| format!("{name} is not running"))?;
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = child.wait().await;
        Ok(format!("{name} killed (SIGKILL)"))
    }

    /// Turns an edge's operator drain on or off through its admin API.
    pub async fn drain(&self, name: &str, on: bool) -> Result<String, String> {
        let (info, _) = self
            .plan
            .edges
            .iter()
            .find(|(i, _)| i.name == name)
            .ok_or_else(|| format!("no edge named {name:?}"))?;
        let request = http::Request::builder()
            .method(if on {
                http::Method::POST
            } else {
                http::Method::DELETE
            })
            .uri(format!("{}/drain", info.admin.trim_end_matches('/')))
            .header(http::header::AUTHORIZATION, format!("Bearer {LOCAL_TOKEN}"))
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{name} answered {}", response.status()));
        }
        Ok(format!(
            "{name} {}",
            if on { "draining" } else { "serving" }
        ))
    }

    /// Brings an edge back: started again if it is not running, and undrained.
    pub async fn restore(&self, name: &str) -> Result<String, String> {
        let spec = self
            .spec(name)
            .ok_or_else(|| format!("no edge named {name:?}"))?
            .clone();
        let running = self
            .children
            .lock()
            .await
            .get_mut(name)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if !running {
            self.children.lock().await.remove(name);
            self.start(&spec).await?;
        }
        self.drain(name, false).await?;
        Ok(format!("{name} restored"))
    }

    /// Which children run now.
    pub async fn states(&self) -> serde_json::Value {
        let mut children = self.children.lock().await;
        let mut out = serde_json::Map::new();
        for spec in std::iter::once(&self.plan.origin)
            .chain(std::iter::once(&self.plan.router))
            .chain(self.plan.edges.iter().map(|(_, s)| s))
        {
            let running = children
                .get_mut(&spec.name)
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
            out.insert(spec.name.clone(), serde_json::json!(running));
        }
        serde_json::Value::Object(out)
    }

    /// SIGTERM to every child (edges first), by PID; SIGKILL to any still running after 10 s.
    pub async fn stop_all(&self) {
        let mut children = self.children.lock().await;
        let mut order: Vec<String> = self
            .plan
            .edges
            .iter()
            .map(|(_, s)| s.name.clone())
            .collect();
        order.push(self.plan.router.name.clone());
        order.push(self.plan.origin.name.clone());
        for name in &order {
            if let Some(pid) = children.get(name).and_then(|c| c.id()) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
            }
        }
        for name in &order {
            if let Some(mut child) = children.remove(name)
                && tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
    }
}
