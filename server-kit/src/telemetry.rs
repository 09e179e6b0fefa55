//! Logging setup: one `tracing` subscriber for the whole process.
//!
//! Logs go to stderr, because stdout carries the machine-read `listening` lines. `RUST_LOG`
//! filters (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the subscriber. Calling it twice is harmless (the second call does nothing), which
/// lets tests that run servers in process call it freely.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
