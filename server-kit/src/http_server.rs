//! The HTTP accept loop shared by every Meridian server.
//!
//! [`serve_with`] (and [`serve`], with default limits) takes an already-bound listener, a
//! handler and a [`Shutdown`]. It speaks HTTP/1.1 and HTTP/2 (prior knowledge, "h2c", or by ALPN
//! over TLS) on the same port, keeps to the listener's [`Limits`] (connections refused at accept
//! past `max_connections`, every phase of a connection timed: see [`crate::connection`]), and
//! tracks each connection so that a drain, or an idle timeout, closes it gracefully: in-flight
//! responses finish while idle keep-alive connections close.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::connection::{Activity, Limits, Metrics, PerClient, TimedIo};
use crate::{Body, Shutdown};

/// How a listener treats its connections: its limits and the counters it keeps.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub limits: Limits,
    pub metrics: Metrics,
}

/// Serves HTTP on `listener` until `shutdown` drains, then waits up to `grace` for in-flight
/// responses to finish (or less, if `shutdown` stops). The handler sees each request and the
/// peer's address, and always produces a response: errors are responses too. The default
/// [`Limits`] apply; [`serve_with`] takes others.
pub async fn serve<H, F>(listener: TcpListener, handler: H, shutdown: Shutdown, grace: Duration)
where
    H: Fn(http::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<Body>> + Send + 'static,
{
    serve_with(listener, None, handler, shutdown, grace, Options::default()).await;
}

/// Like [`serve`], over TLS when `tls` is given (HTTP/2 or HTTP/1.1 as ALPN decides: the
/// acceptor's config offers the protocols), with `options`' limits and counters.
pub async fn serve_with<H, F>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
    shutdown: Shutdown,
    grace: Duration,
    options: Options,
) where
    H: Fn(http::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<Body>> + Send + 'static,
{
    let Options { limits, metrics } = options;
    let limits = Arc::new(limits);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // Bodies are queued as they are, never copied into hyper's buffer: zero-copy bodies
        // rely on it (see `crate::zero_copy`).
        .writev(true)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(limits.h2_keepalive_timeout)
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_reset_streams)
        .max_header_list_size(limits.max_header_bytes as u32);
    let places = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    let open = Arc::new(Open::default());
    let local = listener.local_addr().ok();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.draining() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors or a connection reset before accept: neither is
                // fatal. Back off briefly so an fd shortage does not spin a core.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        // Over a limit, the connection is closed at once: the cheapest refusal there is.
        let Ok(place) = places.clone().try_acquire_owned() else {
            metrics.refused("limit");
            continue;
        };
        let client_place = match limits.max_connections_per_client {
            0 => None,
            max => match clients.take(peer.ip(), max) {
                Some(place) => Some(place),
                None => {
                    metrics.refused("client_limit");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            handler: handler.clone(),
            builder: builder.clone(),
            limits: limits.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            peer,
        };
        let tls = tls.clone();
        let open = open.clone().enter(metrics.clone());
        tokio::spawn(async move {
            let _held = (place, client_place, open);
            match tls {
                None => {
                    let sends = crate::zero_copy::FileSends::default();
                    let stream = crate::zero_copy::ZeroCopyIo::new(
                        stream,
                        sends.clone(),
                        connection.metrics.clone(),
                    );
                    connection.run(stream, Some(sends)).await
                }
                Some(acceptor) => {
                    let accept = acceptor.accept(stream);
                    match tokio::time::timeout(connection.limits.handshake_timeout, accept).await {
                        Ok(Ok(stream)) => connection.run(stream, None).await,
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => {
                            connection.metrics.timed_out("handshake");
                            tracing::debug!(%peer, "TLS handshake timed out");
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::info!(listener = ?local, open = open.count(), "draining connections");
    tokio::select! {
        _ = open.all_closed() => tracing::info!(listener = ?local, "drained"),
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(listener = ?local, ?grace, "grace period over; closing the rest");
        }
        _ = shutdown.stopped() => {}
    }
}

/// The connections a listener has open, so that a drain can wait for them.
#[derive(Debug, Default)]
struct Open {
    count: std::sync::atomic::AtomicUsize,
    closed: tokio::sync::Notify,
}

impl Open {
    fn enter(self: Arc<Self>, metrics: Metrics) -> OpenGuard {
        self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        metrics.opened();
        OpenGuard {
            open: self,
            metrics,
        }
    }

    fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

struct OpenGuard {
    open: Arc<Open>,
    metrics: Metrics,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.open
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.metrics.closed();
        self.open.closed.notify_waiters();
    }
}

/// One accepted connection and what it needs to be served.
struct Connection<H> {
    handler: H,
    builder: auto::Builder<TokioExecutor>,
    limits: Arc<Limits>,
    metrics: Metrics,
    shutdown: Shutdown,
    peer: SocketAddr,
}

impl<H, F> Connection<H>
where
    H: Fn(http::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<Body>> + Send + 'static,
{
    /// Serves the connection until it ends, closing it gracefully when the listener drains or
    /// it has been idle for `idle_timeout`. With `sends`, its HTTP/1 requests carry the handle
    /// for zero-copy bodies.
    async fn run<S>(self, stream: S, sends: Option<crate::zero_copy::FileSends>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            handler,
            builder,
            limits,
            metrics,
            shutdown,
            peer,
        } = self;
        let activity = Arc::new(Activity::default());
        let service = {
            let activity = activity.clone();
            service_fn(move |mut request: http::Request<Incoming>| {
                if let Some(sends) = &sends
                    && request.version() < http::Version::HTTP_2
                {
                    request.extensions_mut().insert(sends.clone());
                }
                let handler = handler.clone();
                let request_guard = activity.start();
                async move {
                    let response = handler(request, peer).await;
                    // In flight until its body is sent (or dropped).
                    Ok::<_, Infallible>(
                        response.map(|body| crate::body::with_guard(body, request_guard)),
                    )
                }
            })
        };
        let io = TimedIo::new(stream, &limits, metrics.clone());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut closing = false;
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                _ = shutdown.draining(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = activity.idle_for(limits.idle_timeout), if !closing => {
                    metrics.timed_out("idle");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        };
        if let Err(error) = result {
            if error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
            {
                metrics.timed_out("header");
            }
            tracing::debug!(%peer, error = %error, "connection ended with an error");
        }
    }
}
