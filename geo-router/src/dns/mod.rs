//! The authoritative DNS server.
//!
//! - [`handler`]: what the zone answers (our own hickory `RequestHandler`, ECS-aware); hickory's
//!   server runs it for TCP.
//! - [`udp`]: the UDP sockets, read and answered in batches (`recvmmsg`/`sendmmsg`) on threads
//!   of their own, one socket each (`SO_REUSEPORT`).
//! - [`answers`]: a thread's answering: usual queries ([`query`]) get a kept encoding patched,
//!   the rest go through hickory's parser and the handler.

mod answers;
pub mod handler;
mod query;
pub mod udp;

pub use handler::DnsHandler;
