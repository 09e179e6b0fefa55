//! Binding listeners and announcing them.
//!
//! Scripts and tests learn a server's addresses from its stdout, one line per ready listener:
//! `listening <kind> <address>`. Because we print the line only after the socket is bound and
//! listening, a client that connects after reading it is queued by the kernel even before the
//! accept loop runs: the line is a true readiness signal, and listen addresses may use port 0.

use std::io::Write;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::Error;

/// Binds a TCP listener for `kind` (used in the error message only).
pub async fn bind_tcp(kind: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| Error::Bind { kind, addr, error })
}

/// Prints `listening <kind> <address>` on stdout and flushes it at once.
pub fn announce(kind: &str, address: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    // A closed stdout must not stop the server; the line is a courtesy to whoever reads it.
    let _ = writeln!(out, "listening {kind} {address}");
    let _ = out.flush();
}

/// Binds an HTTP listener and announces it as `listening <kind> http://<addr>`.
pub async fn bind_http(kind: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    let listener = bind_tcp(kind, addr).await?;
    let local = listener
        .local_addr()
        .map_err(|error| Error::Bind { kind, addr, error })?;
    announce(kind, format!("http://{local}"));
    Ok(listener)
}

/// Reads one line of a server's stdout as [`announce`] wrote it: `listening <kind> <address>`
/// gives `Some((kind, address))`, any other line `None`. The launcher and the test harness wait
/// on these lines, so the format is read here, beside the one function that writes it.
///
/// ```
/// use server_kit::listener::parse_announcement;
/// let line = "listening dns-udp 127.0.0.1:5353";
/// assert_eq!(parse_announcement(line), Some(("dns-udp", "127.0.0.1:5353")));
/// assert_eq!(parse_announcement("listening http"), None);
/// assert_eq!(parse_announcement("Meridian local CDN is up"), None);
/// ```
pub fn parse_announcement(line: &str) -> Option<(&str, &str)> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("listening"), Some(kind), Some(address), None) => Some((kind, address)),
        _ => None,
    }
}
