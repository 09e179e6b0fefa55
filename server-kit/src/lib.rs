//! The process contract every Meridian server shares.
//!
//! Each server binary (origin, edge, geo-router) is a library with a `run` function plus a thin
//! `main.rs`. This crate holds the plumbing those mains and `run`s have in common, so that every
//! server behaves the same from the outside:
//!
//! - [`cli`]: the `--config` and `--check-config` flags, and the shared part of every `main`
//!   (exit code, `--check-config`, the runtime and the signal handlers).
//! - [`config`]: strict TOML loading whose errors name the file, the key and the line.
//! - [`telemetry`]: one `tracing` subscriber, filtered by `RUST_LOG`, writing to stderr (stdout is
//!   reserved for the `listening` lines).
//! - [`listener`]: binding a listener and printing its `listening <kind> <address>` line.
//! - [`shutdown`]: SIGTERM drains, SIGINT stops; a handle that `run` functions wait on.
//! - [`http_server`]: the accept loop with HTTP/1.1 and HTTP/2, tracked for graceful drain.
//! - [`connection`]: what a listener allows a connection (timeouts, limits) and its counters.
//! - [`admin`]: `/healthz`, `/readyz`, `/metrics` and `/status` for every server.
//! - [`auth`]: the bearer token of operators' operations.
//! - [`body`]: the response body type all our HTTP handlers return.
//! - [`cors`]: CORS headers and preflight for browser players, and status classes for metrics.
//!
//! It holds no logic that belongs to one component.

pub mod admin;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod connection;
pub mod cors;
pub mod http_server;
pub mod listener;
pub mod shutdown;
pub mod telemetry;
pub mod zero_copy;

use std::path::PathBuf;

pub use body::Body;
pub use shutdown::Shutdown;

/// Errors from the shared plumbing. Each says which file or address failed, why, and what to do.
///
/// Messages carry their cause themselves (no `source()` chain), so that a `%error` in a log
/// line and `{error:#}` in `main` print it exactly once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be read.
    #[error(
        "config file {}: cannot read it: {error}; check the path given to --config",
        path.display()
    )]
    ConfigRead {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Config text that is not TOML, or does not fit the server's config: an unknown key, a
    /// missing one, a wrong type or value. `path` is `None` for text given to
    /// [`config::parse`]; `line` and `column` count from 1; `key` is the dotted key written on
    /// that line (`live.window`), when the line has one.
    #[error("{}: {message}; fix it and try again with --check-config", config::place(path.as_deref(), *line, *column, key.as_deref()))]
    Config {
        path: Option<PathBuf>,
        line: Option<usize>,
        column: Option<usize>,
        key: Option<String>,
        message: String,
    },
    /// `--check-config` could not print the config it checked.
    #[error("cannot print the config as TOML: {0}")]
    PrintConfig(toml::ser::Error),
    /// A listener could not be bound: the address is taken, or not ours to use.
    #[error(
        "cannot listen on {addr} for {kind}: {error}; choose another address, or stop what holds it"
    )]
    Bind {
        kind: &'static str,
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
    /// The tokio runtime could not start (threads or file descriptors ran out).
    #[error("cannot start the tokio runtime: {0}")]
    Runtime(std::io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}
