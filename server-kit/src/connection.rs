//! What a listener allows a connection: how long each phase may take, how many connections it
//! holds (in all and per client address), and the counters that show it.
//!
//! The timeouts, each closing the connection when it runs out (defaults after nginx's, shorter
//! where an edge serving short video segments can afford it):
//! - `handshake_timeout`: the TLS handshake.
//! - `first_request_timeout`: from accept until the protocol is known (the HTTP/2 preface, or
//!   the first byte of an HTTP/1.1 request): hyper-util's detection has no timer of its own.
//! - `header_timeout`: an HTTP/1.1 request's header, from the moment the connection waits for
//!   it, so also the keep-alive idle time between requests (hyper's `header_read_timeout`).
//! - `idle_timeout`: a connection with no request in flight, HTTP/2 included.
//! - `write_stall_timeout`: a write that makes no progress (a viewer that stopped reading).
//! - `h2_keepalive_interval`/`h2_keepalive_timeout`: HTTP/2 pings that find a dead peer.
//!
//! Request bodies are the handler's to read; [`crate::body::timed`] bounds their pace with
//! `body_timeout` (no bytes for that long) and `body_min_rate` (bytes per second on average,
//! past the first `body_timeout`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A listener's limits, as configured (`[connections]` in a server's TOML).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub first_request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub write_stall_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Bytes per second a request body must average (0: no minimum).
    pub body_min_rate: u64,
    #[serde(with = "humantime_serde")]
    pub h2_keepalive_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub h2_keepalive_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once.
    pub h2_max_concurrent_streams: u32,
    /// Streams a client may reset before the server has answered them (the rapid-reset
    /// attack, CVE-2023-44487): past it, the connection is closed.
    pub h2_max_pending_reset_streams: usize,
    /// Connections open at once on the listener; more are closed at accept and counted.
    pub max_connections: usize,
    /// Connections open at once from one client address (0: no limit).
    pub max_connections_per_client: usize,
    /// Request line and headers, in bytes (larger get 431).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            write_stall_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 1024,
            h2_keepalive_interval: Duration::from_secs(30),
            h2_keepalive_timeout: Duration::from_secs(20),
            h2_max_concurrent_streams: 128,
            h2_max_pending_reset_streams: 20,
            max_connections: 20_000,
            max_connections_per_client: 0,
            max_header_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// Checks what serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let timeouts = [
            ("handshake_timeout", self.handshake_timeout),
            ("first_request_timeout", self.first_request_timeout),
            ("header_timeout", self.header_timeout),
            ("idle_timeout", self.idle_timeout),
            ("write_stall_timeout", self.write_stall_timeout),
            ("body_timeout", self.body_timeout),
            ("h2_keepalive_interval", self.h2_keepalive_interval),
            ("h2_keepalive_timeout", self.h2_keepalive_timeout),
        ];
        for (key, value) in timeouts {
            if value < Duration::from_millis(100) {
                return Err((key, "must be at least 100ms".into()));
            }
        }
        if self.max_connections == 0 {
            return Err(("max_connections", "must be above zero".into()));
        }
        if self.h2_max_concurrent_streams == 0 {
            return Err(("h2_max_concurrent_streams", "must be above zero".into()));
        }
        if self.max_header_bytes < 4096 {
            return Err(("max_header_bytes", "must be at least 4096".into()));
        }
        Ok(())
    }
}

/// Why a connection was refused or closed early (a bounded label).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub listener: &'static str,
    pub reason: &'static str,
}

/// A listener's counters: open connections, and those refused or timed out, by reason.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    listener: &'static str,
    open: Family<Listener, Gauge>,
    accepted: Family<Listener, Counter>,
    refused: Family<Reason, Counter>,
    closed: Family<Reason, Counter>,
    written: Family<Listener, Counter>,
    /// Of `written`, the body bytes sent from sealed files (`crate::zero_copy`).
    zero_copy: Counter,
    /// This listener's series of `open` and `written` (set by `for_listener`), so that a write
    /// counts its bytes without a lookup in the family.
    here: Option<(Gauge, Counter)>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Listener {
    pub listener: &'static str,
}

impl Metrics {
    /// Registers the counters of the listeners in `registry` (`<prefix>_connections...`);
    /// each listener gets its handle with [`Metrics::for_listener`].
    pub fn register(registry: &mut Registry, prefix: &str) -> Self {
        let metrics = Self::default();
        registry.register(
            format!("{prefix}_connections_open"),
            "Connections open now",
            metrics.open.clone(),
        );
        registry.register(
            format!("{prefix}_connections_accepted"),
            "Connections accepted",
            metrics.accepted.clone(),
        );
        registry.register(
            format!("{prefix}_connections_refused"),
            "Connections closed at accept: over max_connections (limit) or max_connections_per_client (client_limit)",
            metrics.refused.clone(),
        );
        registry.register(
            format!("{prefix}_connections_timed_out"),
            "Connections closed by a timeout, by which (handshake, first_request, header, idle, write_stall)",
            metrics.closed.clone(),
        );
        registry.register(
            format!("{prefix}_bytes_written"),
            "Bytes written to connections: headers, bodies and TLS framing (an edge's egress)",
            metrics.written.clone(),
        );
        registry.register(
            format!("{prefix}_bytes_written_zero_copy"),
            "Body bytes sent with sendfile from sealed copies of held bodies, all listeners together (plain HTTP/1 only; bytes_written counts them too)",
            metrics.zero_copy.clone(),
        );
        metrics
    }

    /// The same counters, labelled with this listener's name (`http`, `https`, `admin`).
    pub fn for_listener(&self, listener: &'static str) -> Self {
        let l = Listener { listener };
        Self {
            listener,
            here: Some((
                self.open.get_or_create(&l).clone(),
                self.written.get_or_create(&l).clone(),
            )),
            ..self.clone()
        }
    }

    /// This listener's connections open now (0 for a handle not made by `for_listener`).
    pub fn open_now(&self) -> i64 {
        self.here.as_ref().map_or(0, |(open, _)| open.get())
    }

    /// Bytes this listener has written to its connections so far.
    pub fn bytes_written(&self) -> u64 {
        self.here.as_ref().map_or(0, |(_, written)| written.get())
    }

    pub(crate) fn wrote_zero_copy(&self, n: usize) {
        self.zero_copy.inc_by(n as u64);
    }

    fn wrote(&self, n: usize) {
        if let Some((_, written)) = &self.here {
            written.inc_by(n as u64);
        }
    }

    pub(crate) fn opened(&self) {
        let l = Listener {
            listener: self.listener,
        };
        self.accepted.get_or_create(&l).inc();
        self.open.get_or_create(&l).inc();
    }

    pub(crate) fn closed(&self) {
        self.open
            .get_or_create(&Listener {
                listener: self.listener,
            })
            .dec();
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused
            .get_or_create(&Reason {
                listener: self.listener,
                reason,
            })
            .inc();
    }

    pub(crate) fn timed_out(&self, reason: &'static str) {
        self.closed
            .get_or_create(&Reason {
                listener: self.listener,
                reason,
            })
            .inc();
    }
}

/// Counts connections per client address, for `max_connections_per_client`.
#[derive(Debug, Default)]
pub(crate) struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerClient {
    /// Takes a place for `ip` if it has fewer than `max` connections open.
    pub fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientPlace> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientPlace {
            clients: self.clone(),
            ip,
        })
    }
}

/// One connection's place in [`PerClient`], given back when dropped.
#[derive(Debug)]
pub(crate) struct ClientPlace {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Requests in flight on one connection, for the idle timeout.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    /// Requests started so far: an idle period with a request in it is not idle.
    started: AtomicU64,
    changed: tokio::sync::Notify,
}

impl Activity {
    pub fn start(self: &Arc<Self>) -> RequestGuard {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        RequestGuard(self.clone())
    }

    /// Resolves once the connection has had no request in flight for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                changed.await;
                continue;
            }
            let started = self.started.load(Ordering::SeqCst);
            tokio::time::sleep(idle).await;
            if self.in_flight.load(Ordering::SeqCst) == 0
                && self.started.load(Ordering::SeqCst) == started
            {
                return;
            }
        }
    }
}

/// A request in flight; ends when dropped (its response body sent or abandoned).
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// The HTTP/2 connection preface: until a connection has sent this much of it, or something
/// else, hyper-util cannot tell its protocol.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's byte stream with the two timeouts hyper has no knob for: the first request
/// (until the protocol is known) and write stalls.
pub(crate) struct TimedIo<S> {
    inner: S,
    /// Bytes read so far that match the HTTP/2 preface, while they all do.
    preface: usize,
    first: Option<Pin<Box<Sleep>>>,
    stall: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    metrics: Metrics,
}

impl<S> TimedIo<S> {
    pub fn new(inner: S, limits: &Limits, metrics: Metrics) -> Self {
        Self {
            inner,
            preface: 0,
            first: Some(Box::pin(tokio::time::sleep(limits.first_request_timeout))),
            stall: limits.write_stall_timeout,
            stalled: None,
            metrics,
        }
    }

    fn timed_out(&self, what: &'static str) -> io::Error {
        self.metrics.timed_out(what);
        io::Error::new(io::ErrorKind::TimedOut, format!("{what} timeout"))
    }

    /// A write that made no progress: fails once it has made none for `stall`.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let stall = self.stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.timed_out("write_stall")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if self.first.is_some() {
                    let new = &buf.filled()[before..];
                    let at = self.preface;
                    let want = &H2_PREFACE[at..H2_PREFACE.len().min(at + new.len())];
                    if new[..want.len()] != *want {
                        // Not HTTP/2: an HTTP/1.1 request, whose header has its own timer.
                        self.first = None;
                    } else {
                        self.preface += want.len();
                        if self.preface == H2_PREFACE.len() {
                            self.first = None;
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                if let Some(first) = self.first.as_mut()
                    && first.as_mut().poll(cx).is_ready()
                {
                    self.first = None;
                    return Poll::Ready(Err(self.timed_out("first_request")));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Pending => self.poll_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                if let Poll::Ready(Ok(n)) = ready {
                    self.metrics.wrote(n);
                }
                ready
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.poll_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                if let Poll::Ready(Ok(n)) = ready {
                    self.metrics.wrote(n);
                }
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.poll_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => self.poll_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}
