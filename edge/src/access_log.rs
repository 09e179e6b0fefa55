//! The access log: one JSON line per request, written by a thread of its own so that a slow
//! disk never holds a response.
//!
//! A line is written when the response's body has been sent, or dropped (`"complete": false`:
//! the viewer left, or the body failed), so it carries the bytes that went out and the time the
//! whole response took:
//!
//! ```json
//! {"time":"2026-12-01T17:00:00.123Z","client":"203.0.113.7","method":"GET",
//!  "host":"cdn.example","path":"/vod/a/seg_1.m4s?v=2","protocol":"HTTP/1.1","status":200,
//!  "bytes":1048576,"duration_ms":12.5,"cache":"HIT","complete":true,"edge":"eu-west-1",
//!  "region":"eu-west","session":"6e2fb550-c457-11e9-bb97-0800200c9a66","user_agent":"..."}
//! ```
//!
//! `path` is the request's path and query without the parameters left out of the cache key
//! (per-viewer tokens, `key_ignore_params`) and without CMCD; `session` is CMCD's `sid` (from
//! the `CMCD` query parameter or the `CMCD-Session` header) when the player sends one.
//! `access_log_sample` keeps that fraction of the lines (server errors are always kept).
//! Lines queue in a bounded channel; when it is full a line is dropped and counted
//! (`meridian_edge_access_log_dropped_total`) rather than making the request wait. SIGUSR1
//! reopens the file (after a rotation moved it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

use http::{Method, Request, StatusCode, Version};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

/// Lines waiting for the writer at most; more are dropped.
const QUEUE: usize = 16 * 1024;

/// The access log of one edge.
#[derive(Debug)]
pub struct AccessLog {
    tx: SyncSender<Message>,
    /// Keep one line in `1 / sample`: the count of lines offered, and the fraction.
    offered: AtomicU64,
    sample: f64,
    dropped: Counter,
    edge: String,
    region: String,
}

enum Message {
    Line(String),
    Reopen,
}

/// What is known of a request when it arrives.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub time: SystemTime,
    pub started: std::time::Instant,
    pub client: std::net::IpAddr,
    pub method: Method,
    pub host: String,
    pub path: String,
    pub protocol: Version,
    pub session: Option<String>,
    pub user_agent: Option<String>,
}

impl Arrival {
    /// Notes a request; `ignore` are the query parameters left out of its logged path.
    pub fn of<B>(request: &Request<B>, client: std::net::IpAddr, ignore: &[String]) -> Self {
        let headers = request.headers();
        let host = request
            .uri()
            .host()
            .or_else(|| headers.get(http::header::HOST)?.to_str().ok())
            .unwrap_or("")
            .to_owned();
        // Without a signed URL's token (`/t/<token>/...`).
        let raw = request.uri().path();
        let unsigned = raw
            .strip_prefix("/t/")
            .and_then(|a| a.find('/').map(|i| &a[i..]))
            .unwrap_or(raw);
        let mut path = unsigned.to_owned();
        if let Some(query) = request.uri().query() {
            path.push_str(&crate::key::key_query(query, ignore));
        }
        Self {
            time: SystemTime::now(),
            started: std::time::Instant::now(),
            client,
            method: request.method().clone(),
            host,
            path,
            protocol: request.version(),
            session: crate::cmcd::Cmcd::of(request.uri().query(), headers)
                .session()
                .map(str::to_owned),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    client: String,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    protocol: &'static str,
    status: u16,
    bytes: u64,
    duration_ms: f64,
    cache: &'a str,
    complete: bool,
    edge: &'a str,
    region: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
}

impl AccessLog {
    /// Opens (appends to) the log at `path`, with its writer thread. `sample` in (0, 1].
    pub fn open(
        path: &Path,
        sample: f64,
        edge: &str,
        region: &str,
        dropped: Counter,
    ) -> std::io::Result<Self> {
        let file = open_file(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, path, file))?;
        Ok(Self {
            tx,
            offered: AtomicU64::new(0),
            sample,
            dropped,
            edge: edge.to_owned(),
            region: region.to_owned(),
        })
    }

    /// Asks the writer to reopen the file (SIGUSR1, after a rotation).
    pub fn reopen(&self) {
        let _ = self.tx.send(Message::Reopen);
    }

    /// Logs one finished response, if the sample keeps it; never waits.
    pub fn log(
        &self,
        arrival: &Arrival,
        status: StatusCode,
        cache: &str,
        bytes: u64,
        complete: bool,
    ) {
        let n = self.offered.fetch_add(1, Ordering::Relaxed);
        // The n-th line is kept when it takes the kept count to a new whole number.
        let kept = (((n + 1) as f64) * self.sample).floor() > ((n as f64) * self.sample).floor();
        if !kept && !status.is_server_error() {
            return;
        }
        let line = Line {
            time: humantime::format_rfc3339_millis(arrival.time).to_string(),
            client: arrival.client.to_string(),
            method: arrival.method.as_str(),
            host: &arrival.host,
            path: &arrival.path,
            protocol: match arrival.protocol {
                Version::HTTP_09 => "HTTP/0.9",
                Version::HTTP_10 => "HTTP/1.0",
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_3 => "HTTP/3",
                _ => "HTTP/1.1",
            },
            status: status.as_u16(),
            bytes,
            duration_ms: (arrival.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            cache,
            complete,
            edge: &self.edge,
            region: &self.region,
            session: arrival.session.as_deref(),
            user_agent: arrival.user_agent.as_deref(),
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        match self.tx.try_send(Message::Line(text)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.inc();
            }
        }
    }
}

/// A response body on its way out: counts its bytes (the edge's `bytes_sent` too) and logs
/// its line when it is sent or dropped.
pub struct Sent {
    body: server_kit::Body,
    counter: Counter,
    log: Arc<AccessLog>,
    arrival: Arrival,
    status: StatusCode,
    cache: &'static str,
    bytes: u64,
    /// The body's length, when known: hyper stops polling once it has sent that much.
    length: Option<u64>,
    ended: bool,
}

impl Sent {
    pub fn new(
        (body, content_length): (server_kit::Body, Option<u64>),
        counter: Counter,
        log: Arc<AccessLog>,
        arrival: Arrival,
        status: StatusCode,
        cache: &'static str,
    ) -> Self {
        // Its Content-Length, or its size hint (a HEAD's body is empty whatever it says).
        let length = if arrival.method == Method::HEAD {
            Some(0)
        } else {
            content_length.or(hyper::body::Body::size_hint(&body).exact())
        };
        Self {
            body,
            counter,
            log,
            arrival,
            status,
            cache,
            bytes: 0,
            length,
            ended: false,
        }
    }
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sent")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl hyper::body::Body for Sent {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    self.counter.inc_by(n);
                    self.bytes += n;
                }
            }
            std::task::Poll::Ready(None) => self.ended = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::Body::size_hint(&self.body)
    }
}

impl Drop for Sent {
    fn drop(&mut self) {
        let complete = self.ended
            || self.length.is_some_and(|n| self.bytes >= n)
            || hyper::body::Body::is_end_stream(&self.body);
        self.log
            .log(&self.arrival, self.status, self.cache, self.bytes, complete);
    }
}

fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The writer thread: lines in order, flushed whenever the queue runs empty.
fn write_lines(rx: Receiver<Message>, path: PathBuf, file: std::fs::File) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
    let handle = |out: &mut std::io::BufWriter<std::fs::File>, message: Message| match message {
        Message::Line(line) => {
            if let Err(error) = out.write_all(line.as_bytes()) {
                tracing::warn!(%error, path = %path.display(), "access log write failed");
            }
        }
        Message::Reopen => {
            let _ = out.flush();
            match open_file(&path) {
                Ok(file) => {
                    *out = std::io::BufWriter::with_capacity(64 * 1024, file);
                    tracing::info!(path = %path.display(), "access log reopened");
                }
                Err(error) => tracing::error!(
                    %error,
                    path = %path.display(),
                    "access log not reopened; writing to the old file"
                ),
            }
        }
    };
    while let Ok(message) = rx.recv() {
        handle(&mut out, message);
        while let Ok(message) = rx.try_recv() {
            handle(&mut out, message);
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}
