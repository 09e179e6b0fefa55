//! `loadgen`: the benchmark workloads. Prints one JSON object per run on stdout.
//!
//! - `open`: open loop: requests sent on a fixed schedule (`--rate`), latency counted from each
//!   request's scheduled time, so a slow server cannot hide its queue (no coordinated omission).
//! - `trace`: closed loop over a seeded trace (Zipf or viewing sessions): hit ratio from each
//!   response's `X-Cache`, bytes, latency.
//! - `burst`: a live event: for each new segment, every client asks for it at the same moment;
//!   time to first byte per client.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, Subcommand};
use loadgen::client::{Connection, Target};
use loadgen::stats;
use loadgen::trace::{self, Catalogue};
use serde_json::json;
use tokio::sync::{Barrier, Mutex};

#[derive(Parser)]
struct Cli {
    /// The server: http://IP:PORT or https://IP:PORT.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// A PEM file of the CA to trust for https.
    #[arg(long, global = true)]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Constant-rate requests for latency.
    Open {
        /// Paths, used round-robin.
        #[arg(long = "path", required = true)]
        paths: Vec<String>,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Connections (concurrent requests at most).
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Closed-loop replay of a seeded trace.
    Trace {
        /// zipf or sessions.
        #[arg(long)]
        kind: String,
        #[arg(long, default_value_t = 0.8)]
        alpha: f64,
        #[arg(long, default_value_t = 40)]
        titles: usize,
        #[arg(long, default_value_t = 25)]
        segments: usize,
        /// Requests (zipf) or sessions (sessions).
        #[arg(long, default_value_t = 5000)]
        count: usize,
        /// Segments per session.
        #[arg(long, default_value_t = 10)]
        length: usize,
        /// Sessions from a title's start, left after each segment with this probability
        /// (instead of `length` segments from a random start).
        #[arg(long)]
        abandon: Option<f64>,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Each segment request names the title's next segment in CMCD (`nor`, in the query),
        /// as hls.js and dash.js do with CMCD on: whether or not the session goes on to it.
        #[arg(long)]
        cmcd: bool,
        /// Milliseconds between a session's requests (a player's pace); 0: back to back.
        #[arg(long, default_value_t = 0)]
        pace_ms: u64,
        /// Each session is a viewer of its own: its own connection, from its own loopback
        /// address (127.1.0.0/16, so the target must be on loopback), as a server that counts
        /// per client sees viewers.
        #[arg(long)]
        viewer_addresses: bool,
    },
    /// Every client asks for each new segment at the same moment.
    Burst {
        /// A path with `{k}` for the segment number.
        #[arg(long)]
        template: String,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long, default_value_t = 5)]
        segments: usize,
        /// The first segment number.
        #[arg(long, default_value_t = 0)]
        first: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let target = Target::parse(&cli.base, cli.ca.as_deref())?;
    // One worker thread: the runner pins the load tool to one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = runtime.block_on(async move {
        match cli.command {
            Command::Open {
                paths,
                rate,
                duration,
                connections,
            } => open(target, paths, rate, duration, connections).await,
            Command::Trace {
                kind,
                alpha,
                titles,
                segments,
                count,
                length,
                abandon,
                concurrency,
                seed,
                cmcd,
                pace_ms,
                viewer_addresses,
            } => {
                let catalogue = Catalogue { titles, segments };
                let sessions = match kind.as_str() {
                    // A Zipf trace is sessions of one request each.
                    "zipf" => trace::zipf(catalogue, alpha, count, seed)
                        .into_iter()
                        .map(|r| vec![r])
                        .collect(),
                    "sessions" => match abandon {
                        Some(p) => trace::abandoning_sessions(catalogue, alpha, count, p, seed),
                        None => trace::sessions(catalogue, alpha, count, length, seed),
                    },
                    other => anyhow::bail!("--kind {other:?}: zipf or sessions"),
                };
                let sessions = match cmcd {
                    true => trace::with_cmcd(catalogue, sessions),
                    false => sessions,
                };
                let pace = Duration::from_millis(pace_ms);
                replay(target, sessions, concurrency, pace, viewer_addresses).await
            }
            Command::Burst {
                template,
                clients,
                segments,
                first,
            } => burst(target, template, clients, segments, first).await,
        }
    })?;
    println!("{out}");
    Ok(())
}

/// Waits until `at`, to within microseconds: tokio's timer has millisecond steps, and a request
/// sent late would count the client's lateness as the server's latency. Sleeps to a millisecond
/// before, then yields (other connections run) until the moment.
async fn on_time(at: Instant) {
    let early = at.checked_sub(Duration::from_millis(2));
    if let Some(early) = early
        && early > Instant::now()
    {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

async fn open(
    target: Target,
    paths: Vec<String>,
    rate: f64,
    duration: f64,
    connections: usize,
) -> Result<serde_json::Value> {
    let total = (rate * duration) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now() + Duration::from_millis(100);
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new((stats::histogram(), 0u64, 0u64, 0u64)));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (target, paths, next, results) =
            (target.clone(), paths.clone(), next.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&target).await?;
            let mut local = stats::histogram();
            let (mut bytes, mut errors, mut done) = (0u64, 0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let scheduled = start + interval.mul_f64(i as f64);
                on_time(scheduled).await;
                match conn.get(&target, &paths[i % paths.len()], scheduled).await {
                    Ok(o) if o.status == 200 => {
                        stats::record(&mut local, o.total);
                        bytes += o.bytes;
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = Connection::open(&target).await?;
                    }
                }
                done += 1;
            }
            let mut r = results.lock().await;
            r.0.add(&local).ok();
            r.1 += bytes;
            r.2 += errors;
            r.3 += done;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let r = results.lock().await;
    Ok(json!({
        "mode": "open",
        "rate": rate,
        "requests": r.3,
        "achieved_rps": r.3 as f64 / elapsed,
        "errors": r.2,
        "mb_per_s": r.1 as f64 / elapsed / 1e6,
        "latency": stats::summary(&r.0),
    }))
}

async fn replay(
    target: Target,
    sessions: Vec<Vec<trace::Request>>,
    concurrency: usize,
    pace: Duration,
    viewer_addresses: bool,
) -> Result<serde_json::Value> {
    let sessions = Arc::new(sessions);
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new((
        stats::histogram(),
        stats::histogram(),
        [0u64; 5],
    )));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (target, sessions, next, results) = (
            target.clone(),
            sessions.clone(),
            next.clone(),
            results.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&target).await?;
            let (mut latency, mut ttfb) = (stats::histogram(), stats::histogram());
            // requests, segment requests, segment hits, bytes, errors
            let mut counts = [0u64; 5];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(session) = sessions.get(i) else {
                    break;
                };
                let source = viewer_addresses
                    .then(|| std::net::IpAddr::from([127, 1, (i >> 8) as u8, i as u8]));
                if source.is_some() {
                    conn = Connection::open_from(&target, source).await?;
                }
                for (n, request) in session.iter().enumerate() {
                    if n > 0 && !pace.is_zero() {
                        tokio::time::sleep(pace).await;
                    }
                    counts[0] += 1;
                    match conn.get(&target, &request.path, Instant::now()).await {
                        Ok(o) if o.status == 200 => {
                            stats::record(&mut latency, o.total);
                            stats::record(&mut ttfb, o.ttfb);
                            counts[3] += o.bytes;
                            if request.object.is_some() {
                                counts[1] += 1;
                                counts[2] += u64::from(o.hit);
                            }
                        }
                        Ok(_) => counts[4] += 1,
                        Err(_) => {
                            counts[4] += 1;
                            conn = Connection::open_from(&target, source).await?;
                        }
                    }
                }
            }
            let mut r = results.lock().await;
            r.0.add(&latency).ok();
            r.1.add(&ttfb).ok();
            for (a, b) in r.2.iter_mut().zip(counts) {
                *a += b;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let r = results.lock().await;
    let [requests, segments, hits, bytes, errors] = r.2;
    Ok(json!({
        "mode": "trace",
        "requests": requests,
        "segment_requests": segments,
        "hit_ratio": if segments > 0 { hits as f64 / segments as f64 } else { 0.0 },
        "errors": errors,
        "rps": requests as f64 / elapsed,
        "mb_per_s": bytes as f64 / elapsed / 1e6,
        "latency": stats::summary(&r.0),
        "ttfb": stats::summary(&r.1),
    }))
}

async fn burst(
    target: Target,
    template: String,
    clients: usize,
    segments: usize,
    first: usize,
) -> Result<serde_json::Value> {
    let barrier = Arc::new(Barrier::new(clients));
    // When each segment was released: the first client through the barrier sets it, and every
    // client's time to first byte counts from it (not from when its own task got to run).
    let released: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; first + segments]));
    let results = Arc::new(Mutex::new((stats::histogram(), stats::histogram(), 0u64)));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (target, template, barrier, released, results) = (
            target.clone(),
            template.clone(),
            barrier.clone(),
            released.clone(),
            results.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&target).await.ok();
            let (mut ttfb, mut total, mut errors) = (stats::histogram(), stats::histogram(), 0u64);
            for k in first..first + segments {
                let path = template.replace("{k}", &format!("{k:05}"));
                // Everyone connected and done with the last segment: the next one is published.
                // A client that lost its connection still takes part (and counts an error), so
                // the barrier is always met.
                barrier.wait().await;
                let since =
                    *released.lock().expect("release times")[k].get_or_insert_with(Instant::now);
                let outcome = match conn.as_mut() {
                    Some(c) => c.get(&target, &path, since).await.ok(),
                    None => None,
                };
                match outcome {
                    Some(o) if o.status == 200 => {
                        stats::record(&mut ttfb, o.ttfb);
                        stats::record(&mut total, o.total);
                    }
                    Some(_) => errors += 1,
                    None => {
                        errors += 1;
                        conn = Connection::open(&target).await.ok();
                    }
                }
            }
            let mut r = results.lock().await;
            r.0.add(&ttfb).ok();
            r.1.add(&total).ok();
            r.2 += errors;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let r = results.lock().await;
    Ok(json!({
        "mode": "burst",
        "clients": clients,
        "segments": segments,
        "errors": r.2,
        "ttfb": stats::summary(&r.0),
        "latency": stats::summary(&r.1),
    }))
}
