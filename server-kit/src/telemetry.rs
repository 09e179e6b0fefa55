//! Logging setup: one `tracing` subscriber for the whole process.
//!
//! Logs go to stderr, because stdout carries the machine-read `listening` lines. `RUST_LOG`
//! filters (default `info`, with hickory-server's per-query lines off: it logs two INFO lines
//! for every DNS query, which cost the geo-router 60% of its queries per second under dnsperf;
//! `RUST_LOG=info,hickory_server=info` brings them back).

use tracing_subscriber::EnvFilter;

/// What is logged when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,hickory_server=warn";

/// Installs the subscriber. Calling it twice is harmless (the second call does nothing), which
/// lets tests that run servers in process call it freely.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
