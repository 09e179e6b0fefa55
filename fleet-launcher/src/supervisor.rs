//! Children of the launcher: started from a [`Spec`], ready when their `listening` lines are
//! out (or, for programs that print none, when their HTTP probes answer), killed and stopped
//! by PID, their stderr kept in `<run dir>/<name>.log`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use server_kit::listener;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::Error;
use crate::error::chain;
use crate::plan::{EdgeInfo, LOCAL_TOKEN, Plan, Probe, Spec};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a child's HTTP probe is tried until it answers.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// How long an edge's admin API may take to answer a drain.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

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
            // No idle connections kept: an edge that was frozen closes the ones it held when it
            // runs again (their timeouts passed), and a request sent on one would be reset.
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
        }
    }

    /// Starts the origin, then the router, then every edge (in parallel), each waited for.
    pub async fn start_all(&self) -> Result<(), Error> {
        for spec in &self.plan.origin {
            self.start(spec).await?;
        }
        self.start(&self.plan.router).await?;
        let starts = self.plan.edges.iter().map(|(_, spec)| self.start(spec));
        for result in futures_util::future::join_all(starts).await {
            result?;
        }
        Ok(())
    }

    /// Starts one child and waits for its listening lines.
    pub async fn start(&self, spec: &Spec) -> Result<(), Error> {
        let log_path = self.run_dir.join(format!("{}.log", spec.name));
        let log = std::fs::File::create(&log_path).map_err(|cause| Error::Write {
            path: log_path.clone(),
            cause,
        })?;
        let mut child = Command::new(&spec.program)
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|cause| Error::Spawn {
                name: spec.name.clone(),
                program: spec.program.clone(),
                cause,
            })?;
        // Piped just above, so it is there.
        let Some(stdout) = child.stdout.take() else {
            unreachable!("stdout is piped")
        };
        let mut lines = BufReader::new(stdout).lines();
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut probed = 0;
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
            for probe in &spec.probes {
                loop {
                    if !matches!(child.try_wait(), Ok(None)) {
                        return false;
                    }
                    if self.probe(probe).await {
                        break;
                    }
                    tokio::time::sleep(PROBE_INTERVAL).await;
                }
                probed += 1;
            }
            true
        })
        .await;
        if ready != Ok(true) {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(Error::NotReady {
                name: spec.name.clone(),
                why: if ready.is_err() {
                    format!("not within {READY_TIMEOUT:?}")
                } else {
                    "it exited".to_owned()
                },
                missing: spec
                    .listeners
                    .iter()
                    .filter(|k| !seen.contains_key(**k))
                    .map(|k| format!("`listening {k}` line"))
                    .chain(
                        spec.probes[probed..]
                            .iter()
                            .map(|p| format!("{} with {:?}", p.url, p.contains)),
                    )
                    .collect(),
                log: std::fs::read_to_string(&log_path).unwrap_or_default(),
                log_path,
            });
        }
        // Keep reading stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        tracing::info!(name = %spec.name, pid = child.id(), listeners = ?seen, "ready");
        self.children.lock().await.insert(spec.name.clone(), child);
        Ok(())
    }

    /// Does the probe's URL answer 200 with its text in the body?
    async fn probe(&self, probe: &Probe) -> bool {
        let Ok(uri) = probe.url.parse::<http::Uri>() else {
            return false;
        };
        let answer = tokio::time::timeout(ADMIN_TIMEOUT, async {
            let response = self.client.get(uri).await.ok()?;
            if response.status() != http::StatusCode::OK {
                return None;
            }
            response
                .into_body()
                .collect()
                .await
                .ok()
                .map(|b| b.to_bytes())
        })
        .await;
        matches!(answer, Ok(Some(body)) if String::from_utf8_lossy(&body).contains(&probe.contains))
    }

    /// The edge of that name, or the error that lists the fleet's edges.
    fn edge(&self, name: &str) -> Result<&(EdgeInfo, Spec), Error> {
        self.plan
            .edges
            .iter()
            .find(|(info, _)| info.name == name)
            .ok_or_else(|| Error::NoSuchEdge {
                name: name.to_owned(),
                known: self
                    .plan
                    .edges
                    .iter()
                    .map(|(i, _)| i.name.clone())
                    .collect(),
            })
    }

    /// `kill -9` of an edge, by PID.
    pub async fn kill(&self, name: &str) -> Result<String, Error> {
        self.edge(name)?;
        let mut children = self.children.lock().await;
        let mut child = children.remove(name).ok_or_else(|| Error::NotRunning {
            name: name.to_owned(),
        })?;
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = child.wait().await;
        Ok(format!("{name} killed (SIGKILL)"))
    }

    /// Freezes an edge (SIGSTOP, by PID): its sockets stay open and accept connections that
    /// are never answered, like a hung host. `restore` thaws it.
    pub async fn freeze(&self, name: &str) -> Result<String, Error> {
        self.edge(name)?;
        let children = self.children.lock().await;
        let pid = children
            .get(name)
            .and_then(|c| c.id())
            .ok_or_else(|| Error::NotRunning {
                name: name.to_owned(),
            })?;
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGSTOP);
        Ok(format!("{name} frozen (SIGSTOP)"))
    }

    /// Turns an edge's operator drain on or off through its admin API.
    pub async fn drain(&self, name: &str, on: bool) -> Result<String, Error> {
        let (info, _) = self.edge(name)?;
        let method = if on {
            http::Method::POST
        } else {
            http::Method::DELETE
        };
        let url = format!("{}/drain", info.admin.trim_end_matches('/'));
        let request = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(http::header::AUTHORIZATION, format!("Bearer {LOCAL_TOKEN}"))
            .body(Empty::new())
            .map_err(|e| Error::EdgeUrl {
                edge: name.to_owned(),
                url: url.clone(),
                problem: format!("is not a usable admin URL ({e})"),
            })?;
        let unreachable = |cause: String| Error::EdgeUnreachable {
            name: name.to_owned(),
            url: url.clone(),
            cause,
        };
        let response = tokio::time::timeout(ADMIN_TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| unreachable(format!("no answer within {ADMIN_TIMEOUT:?}")))?
            .map_err(|e| unreachable(chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let body = tokio::time::timeout(ADMIN_TIMEOUT, response.into_body().collect())
                .await
                .ok()
                .and_then(Result::ok)
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
                .unwrap_or_default();
            return Err(Error::EdgeRefused {
                name: name.to_owned(),
                method,
                url,
                status,
                body,
            });
        }
        Ok(format!(
            "{name} {}",
            if on { "draining" } else { "serving" }
        ))
    }

    /// Brings an edge back: thawed if frozen, started again if it is not running, and undrained.
    pub async fn restore(&self, name: &str) -> Result<String, Error> {
        let (_, spec) = self.edge(name)?;
        let spec = spec.clone();
        let running = {
            let mut children = self.children.lock().await;
            let child = children.get_mut(name);
            let running = child
                .map(|c| (matches!(c.try_wait(), Ok(None)), c.id()))
                .and_then(|(running, pid)| pid.filter(|_| running));
            // A running edge may be frozen; SIGCONT to one that is not changes nothing.
            if let Some(pid) = running {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
            }
            running.is_some()
        };
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
        for spec in self
            .plan
            .origin
            .iter()
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
        // The encoder before nginx: the origin's processes in reverse.
        order.extend(self.plan.origin.iter().rev().map(|s| s.name.clone()));
        for name in &order {
            if let Some(pid) = children.get(name).and_then(|c| c.id()) {
                let pid = Pid::from_raw(pid as i32);
                let _ = kill(pid, Signal::SIGTERM);
                // A frozen edge takes the SIGTERM once it runs again.
                let _ = kill(pid, Signal::SIGCONT);
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
