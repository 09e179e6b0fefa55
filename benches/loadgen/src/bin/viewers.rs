//! `viewers`: many HLS viewers from many client subnets, each following the geo-router as a
//! player does, through a running local fleet (`meridian-local`); every second it samples each
//! edge's measured egress and load, and at the end it checks how evenly the load was shared.
//!
//! Each viewer has its own /24 (`--subnets`, the next /24 for each viewer), asks the router's
//! redirect for the stream (`/r/...?client=`, the development mode's stand-in for its address),
//! reads the media playlist from the edge it was sent to and then its segments in real time
//! (one per segment duration, read whole, looping at the end). Like hls.js with content
//! steering it asks the router's `/steer/hls` every manifest TTL, naming its pathway, and moves
//! to the first pathway of the answer; a failed segment request asks at once, then retries on
//! the new pathway.
//!
//! Output, on stdout, one JSON object per line: a sample every second (`t`, and for each edge
//! its egress in Mbit/s, load, and viewers on it), then the `summary` with the checks:
//! - `spread`: over the steady window (after `--warmup`, before any kill), each edge of
//!   `--region`'s mean egress against the region's mean: busiest over mean;
//! - `overloaded_seconds`: the longest run of samples in which one edge stayed over 80% while
//!   another had headroom (under 70%), before the kill and after it (after `--settle`);
//! - after a kill, `after_kill_over_90_seconds`: the same with 90%.
//!
//! ```text
//! viewers --control http://127.0.0.1:8000 --count 200 --duration 60 --region us-east
//! viewers ... --kill-region us-east --kill-at 30
//! ```

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(about = "HLS viewers following the geo-router through a local fleet")]
struct Cli {
    /// The launcher's control URL (its `listening control` line).
    #[arg(long)]
    control: String,
    /// Viewers, each from its own /24.
    #[arg(long, default_value_t = 200)]
    count: u32,
    /// The first viewer's /24; the others follow it (100.64.0.0/14 is near us-east in the test
    /// GeoIP database).
    #[arg(long, default_value = "100.64.0.0")]
    subnets: Ipv4Addr,
    /// The media playlist every viewer plays.
    #[arg(long, default_value = "/vod/big-clock/720p/index.m3u8")]
    stream: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds before the spread is measured (viewers start over the first 5).
    #[arg(long, default_value_t = 15)]
    warmup: u64,
    /// The region whose edges' spread is checked.
    #[arg(long, default_value = "us-east")]
    region: String,
    /// Kill every edge of this region (`kill -9`, through the launcher) at `--kill-at`.
    #[arg(long)]
    kill_region: Option<String>,
    #[arg(long, default_value_t = 30)]
    kill_at: u64,
    /// Seconds after the kill before the overload checks count again.
    #[arg(long, default_value_t = 10)]
    settle: u64,
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// One second's sample: each edge's egress (Mbit/s) and load, None when it does not answer.
type Sample = Vec<Option<(f64, f64)>>;

#[derive(Debug, Clone)]
struct Edge {
    name: String,
    region: String,
    http: String,
    admin: String,
}

struct Fleet {
    client: HttpClient,
    router: String,
    edges: Vec<Edge>,
    stream: String,
    deadline: Instant,
    /// Each viewer's edge (an index into `edges`, `usize::MAX` before it has one).
    on: Vec<AtomicUsize>,
    moves: AtomicU64,
    failures: AtomicU64,
    segments: AtomicU64,
}

impl Fleet {
    fn by_base(&self, base: &str) -> Option<usize> {
        self.edges
            .iter()
            .position(|e| e.http.trim_end_matches('/') == base)
    }

    fn by_name(&self, name: &str) -> Option<usize> {
        self.edges.iter().position(|e| e.name == name)
    }
}

async fn fetch(
    client: &HttpClient,
    url: &str,
) -> Result<(http::StatusCode, http::HeaderMap, Bytes)> {
    let uri: http::Uri = url.parse().with_context(|| format!("{url:?}"))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.get(uri))
        .await
        .map_err(|_| anyhow!("GET {url}: no answer within 5 s"))??;
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .map_err(|_| anyhow!("GET {url}: body not within 10 s"))??
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

async fn fetch_json(client: &HttpClient, url: &str) -> Result<Value> {
    let (status, _, body) = fetch(client, url).await?;
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    Ok(serde_json::from_slice(&body)?)
}

/// The segments of a media playlist: (URI relative to the playlist, duration).
fn segments(playlist: &str) -> Vec<(String, Duration)> {
    let mut out = Vec::new();
    let mut duration = None;
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.split(',').next().and_then(|s| s.parse::<f64>().ok());
        } else if !line.starts_with('#')
            && !line.trim().is_empty()
            && let Some(d) = duration.take()
        {
            out.push((line.trim().to_owned(), Duration::from_secs_f64(d)));
        }
    }
    out
}

/// The first pathway of the router's steering answer for a viewer on `current`.
async fn steer(
    fleet: &Fleet,
    client_ip: Ipv4Addr,
    default: usize,
    current: usize,
) -> Result<usize> {
    let pathway = if current == default {
        ".".to_owned()
    } else {
        fleet.edges[current].name.clone()
    };
    let url = format!(
        "{}/steer/hls?client={client_ip}&edge={}&_HLS_pathway={pathway}",
        fleet.router, fleet.edges[default].name
    );
    let manifest = fetch_json(&fleet.client, &url).await?;
    let first = manifest["PATHWAY-PRIORITY"][0]
        .as_str()
        .ok_or_else(|| anyhow!("no PATHWAY-PRIORITY in {manifest}"))?;
    if first == "." {
        Ok(default)
    } else {
        fleet
            .by_name(first)
            .ok_or_else(|| anyhow!("steering named an unknown edge {first}"))
    }
}

async fn viewer(fleet: Arc<Fleet>, index: usize, client_ip: Ipv4Addr) -> Result<()> {
    tokio::time::sleep(Duration::from_millis(
        index as u64 * 5000 / fleet.on.len().max(1) as u64,
    ))
    .await;
    let redirect = format!("{}/r{}?client={client_ip}", fleet.router, fleet.stream);
    let (status, headers, _) = fetch(&fleet.client, &redirect).await?;
    let location = headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("GET {redirect}: {status} with no Location"))?;
    let base = location
        .strip_suffix(&fleet.stream)
        .ok_or_else(|| anyhow!("the redirect {location} is not to {}", fleet.stream))?;
    let default = fleet
        .by_base(base)
        .ok_or_else(|| anyhow!("the redirect went to {base}, no edge of the fleet"))?;
    let mut current = default;
    fleet.on[index].store(current, Ordering::Relaxed);
    let (_, _, playlist) = fetch(&fleet.client, location).await?;
    let list = segments(&String::from_utf8_lossy(&playlist));
    if list.is_empty() {
        bail!("{location} lists no segments");
    }
    let folder = fleet
        .stream
        .rsplit_once('/')
        .map_or("", |(dir, _)| dir)
        .to_owned();
    let ttl = Duration::from_secs(10);
    let mut next_steer = Instant::now() + ttl;
    let mut due = Instant::now();
    let mut at = index % list.len();
    while Instant::now() < fleet.deadline {
        let (uri, duration) = &list[at];
        let url = format!(
            "{}{folder}/{uri}",
            fleet.edges[current].http.trim_end_matches('/')
        );
        let ok = matches!(fetch(&fleet.client, &url).await, Ok((s, _, _)) if s.is_success());
        if ok {
            fleet.segments.fetch_add(1, Ordering::Relaxed);
            at = (at + 1) % list.len();
            due += *duration;
        } else {
            // As hls.js does on a failed fragment with steering: ask now, go to the first.
            fleet.failures.fetch_add(1, Ordering::Relaxed);
            next_steer = Instant::now();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if Instant::now() >= next_steer {
            next_steer = Instant::now() + ttl;
            if let Ok(to) = steer(&fleet, client_ip, default, current).await
                && to != current
            {
                current = to;
                fleet.moves.fetch_add(1, Ordering::Relaxed);
                fleet.on[index].store(current, Ordering::Relaxed);
            }
        }
        tokio::time::sleep_until(due).await;
    }
    Ok(())
}

/// One second's sample of every edge: egress (Mbit/s) and load, None when it does not answer.
async fn sample(fleet: &Fleet) -> Sample {
    let mut out = Vec::with_capacity(fleet.edges.len());
    for e in &fleet.edges {
        let url = format!("{}/status", e.admin.trim_end_matches('/'));
        let status = fetch_json(&fleet.client, &url).await.ok();
        out.push(status.and_then(|s| {
            let egress = s["load_parts"]["egress_bits_per_second"].as_f64()? / 1e6;
            Some((egress, s["load"].as_f64()?))
        }));
    }
    out
}

/// The longest run of consecutive samples in `samples` (per sample: each edge's egress and
/// load, None when down) in which one edge stayed over `over` while another had headroom (under
/// 0.7).
fn longest_overload(samples: &[&Sample], over: f64) -> usize {
    let edges = samples.first().map_or(0, |s| s.len());
    let mut runs = vec![0usize; edges];
    let mut longest = 0;
    for sample in samples {
        let room = sample.iter().flatten().any(|&(_, l)| l < 0.7);
        for (run, edge) in runs.iter_mut().zip(sample.iter()) {
            let over_now = edge.is_some_and(|(_, l)| l > over);
            *run = if over_now && room { *run + 1 } else { 0 };
            longest = longest.max(*run);
        }
    }
    longest
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let config = fetch_json(
        &client,
        &format!("{}/api/config", cli.control.trim_end_matches('/')),
    )
    .await?;
    let edges: Vec<Edge> = config["edges"]
        .as_array()
        .ok_or_else(|| anyhow!("no edges in the launcher's /api/config: {config}"))?
        .iter()
        .map(|e| Edge {
            name: e["name"].as_str().unwrap_or_default().to_owned(),
            region: e["region"].as_str().unwrap_or_default().to_owned(),
            http: e["http"].as_str().unwrap_or_default().to_owned(),
            admin: e["admin"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    if !edges.iter().any(|e| e.region == cli.region) {
        bail!("no edge of the fleet is in region {}", cli.region);
    }
    let started = Instant::now();
    let fleet = Arc::new(Fleet {
        client,
        router: config["router"].as_str().unwrap_or_default().to_owned(),
        edges,
        stream: cli.stream.clone(),
        deadline: started + Duration::from_secs(cli.duration),
        on: (0..cli.count)
            .map(|_| AtomicUsize::new(usize::MAX))
            .collect(),
        moves: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        segments: AtomicU64::new(0),
    });
    let first = u32::from(cli.subnets);
    let viewers: Vec<_> = (0..cli.count)
        .map(|i| {
            let ip = Ipv4Addr::from(first + (i << 8) + 1);
            tokio::spawn(viewer(fleet.clone(), i as usize, ip))
        })
        .collect();

    let mut samples: Vec<(u64, Sample)> = Vec::new();
    let mut killed = false;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    for t in 1..=cli.duration {
        ticks.tick().await;
        if let Some(region) = &cli.kill_region
            && !killed
            && t >= cli.kill_at
        {
            killed = true;
            for e in fleet.edges.iter().filter(|e| &e.region == region) {
                let url = format!(
                    "{}/api/edges/{}/kill",
                    cli.control.trim_end_matches('/'),
                    e.name
                );
                let request = http::Request::post(url).body(String::new())?;
                let client: Client<HttpConnector, String> =
                    Client::builder(TokioExecutor::new()).build(HttpConnector::new());
                let status = client.request(request).await?.status();
                eprintln!("t={t}s: killed {} ({status})", e.name);
            }
        }
        let now = sample(&fleet).await;
        let mut counts = vec![0usize; fleet.edges.len()];
        for on in &fleet.on {
            if let Some(c) = counts.get_mut(on.load(Ordering::Relaxed)) {
                *c += 1;
            }
        }
        let edges: serde_json::Map<String, Value> = fleet
            .edges
            .iter()
            .zip(&now)
            .zip(&counts)
            .map(|((e, s), n)| {
                let value = match s {
                    Some((egress, load)) => {
                        json!({"egress_mbps": egress, "load": load, "viewers": n})
                    }
                    None => json!({"down": true, "viewers": n}),
                };
                (e.name.clone(), value)
            })
            .collect();
        println!("{}", json!({"t": t, "edges": edges}));
        samples.push((t, now));
    }
    let mut errors = 0;
    for v in viewers {
        if let Ok(Err(error)) = v.await {
            errors += 1;
            eprintln!("viewer: {error:#}");
        }
    }

    let kill_at = cli.kill_region.as_ref().map(|_| cli.kill_at);
    let before: Vec<&Sample> = samples
        .iter()
        .filter(|(t, _)| *t >= cli.warmup && kill_at.is_none_or(|k| *t < k))
        .map(|(_, s)| s)
        .collect();
    let after: Vec<&Sample> = samples
        .iter()
        .filter(|(t, _)| kill_at.is_some_and(|k| *t >= k + cli.settle))
        .map(|(_, s)| s)
        .collect();
    let region: Vec<usize> = (0..fleet.edges.len())
        .filter(|&i| fleet.edges[i].region == cli.region)
        .collect();
    let means: Vec<f64> = region
        .iter()
        .map(|&i| {
            let values: Vec<f64> = before.iter().filter_map(|s| s[i].map(|(e, _)| e)).collect();
            values.iter().sum::<f64>() / values.len().max(1) as f64
        })
        .collect();
    let region_mean = means.iter().sum::<f64>() / means.len().max(1) as f64;
    let spread = if region_mean > 0.0 {
        means.iter().copied().fold(0.0, f64::max) / region_mean
    } else {
        f64::NAN
    };
    let mut final_counts = vec![0usize; fleet.edges.len()];
    for on in &fleet.on {
        if let Some(c) = final_counts.get_mut(on.load(Ordering::Relaxed)) {
            *c += 1;
        }
    }
    let summary = json!({"summary": {
        "viewers": cli.count,
        "viewer_errors": errors,
        "segments": fleet.segments.load(Ordering::Relaxed),
        "failed_requests": fleet.failures.load(Ordering::Relaxed),
        "moves": fleet.moves.load(Ordering::Relaxed),
        "region": cli.region,
        "region_edge_mean_egress_mbps": fleet.edges.iter().enumerate().filter(|(i, _)| region.contains(i))
            .zip(&means).map(|((_, e), m)| (e.name.clone(), json!(m))).collect::<serde_json::Map<_, _>>(),
        "spread": spread,
        "overloaded_seconds": longest_overload(&before, 0.8),
        "after_kill_overloaded_seconds": if kill_at.is_some() { json!(longest_overload(&after, 0.8)) } else { Value::Null },
        "after_kill_over_90_seconds": if kill_at.is_some() { json!(longest_overload(&after, 0.9)) } else { Value::Null },
        "viewers_at_end": fleet.edges.iter().zip(&final_counts).map(|(e, n)| (e.name.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
    }});
    println!("{summary}");
    Ok(())
}
