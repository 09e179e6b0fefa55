//! The process contract every Meridian server shares.
//!
//! Each server binary (origin, edge, geo-router) is a library with a `run` function plus a thin
//! `main.rs`. This crate holds the plumbing those mains and `run`s have in common, so that every
//! server behaves the same from the outside:
//!
//! - [`cli`]: the `--config` and `--check-config` flags.
//! - [`config`]: strict TOML loading whose errors name the file, the key and the line.
//! - [`telemetry`]: one `tracing` subscriber, filtered by `RUST_LOG`, writing to stderr (stdout is
//!   reserved for the `listening` lines).
//! - [`listener`]: binding a listener and printing its `listening <kind> <address>` line.
//! - [`shutdown`]: SIGTERM drains, SIGINT stops; a handle that `run` functions wait on.
//! - [`http_server`]: the accept loop with HTTP/1.1 and HTTP/2, tracked for graceful drain.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` and `/status` for every server.
//! - [`body`]: the response body type all our HTTP handlers return.
//! - [`cors`]: CORS headers and preflight for browser players, and status classes for metrics.
//!
//! It holds no logic that belongs to one component.

pub mod admin;
pub mod body;
pub mod cli;
pub mod config;
pub mod cors;
pub mod http_server;
pub mod listener;
pub mod shutdown;
pub mod telemetry;

pub use body::Body;
pub use shutdown::Shutdown;

/// Errors from the shared plumbing. Each says which file or address failed and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read or parsed; the message names the key and line.
    #[error("config file {path}: {message}")]
    Config { path: String, message: String },
    /// A listener could not be bound: the address is taken, or not ours to use.
    #[error("cannot listen on {addr} for {kind}: {source}")]
    Bind {
        kind: &'static str,
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}
