//! The HTTP accept loop shared by every Meridian server.
//!
//! One function, [`serve`], takes an already-bound listener, a handler and a [`Shutdown`]. It
//! speaks HTTP/1.1 and HTTP/2 (prior knowledge, "h2c") on the same port, and tracks each
//! connection with hyper-util's graceful shutdown so that a drain lets in-flight responses finish
//! while idle keep-alive connections close.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::{Body, Shutdown};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP on `listener` until `shutdown` drains, then waits up to `grace` for in-flight
/// responses to finish (or less, if `shutdown` stops). The handler sees each request and the
/// peer's address, and always produces a response: errors are responses too.
pub async fn serve<H, F>(listener: TcpListener, handler: H, shutdown: Shutdown, grace: Duration)
where
    H: Fn(http::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<Body>> + Send + 'static,
{
    serve_with(listener, None, handler, shutdown, grace).await;
}

/// Like [`serve`], over TLS: HTTP/2 or HTTP/1.1 as ALPN decides (the acceptor's config offers
/// the protocols).
pub async fn serve_tls<H, F>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handler: H,
    shutdown: Shutdown,
    grace: Duration,
) where
    H: Fn(http::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<Body>> + Send + 'static,
{
    serve_with(listener, Some(acceptor), handler, shutdown, grace).await;
}

async fn serve_with<H, F>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
    shutdown: Shutdown,
    grace: Duration,
) where
    H: Fn(http::Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<Body>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
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
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler(request, peer).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result =
                match tls {
                    None => {
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    tracing::debug!(%peer, %error, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                };
            if let Err(error) = result {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(listener = ?local, open = graceful.count(), "draining connections");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!(listener = ?local, "drained"),
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(listener = ?local, ?grace, "grace period over; closing the rest");
        }
        _ = shutdown.stopped() => {}
    }
}
