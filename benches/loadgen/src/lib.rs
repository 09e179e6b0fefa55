//! Meridian's benchmark tools: the workloads `benches/cdn/run.sh` drives against the edge, nginx
//! and Varnish, and the hit-ratio simulator that replays the same traces.
//!
//! Layout:
//! - `trace`: the synthetic catalogue and request traces (Zipf over objects, viewing sessions),
//!   seeded so that every server and every policy sees the same sequence.
//! - `client`: one keep-alive HTTP/1.1 connection, plain or TLS, that times each response
//!   (time to first byte, time to last byte) and reads `X-Cache`.
//! - `stats`: latency histograms (HDR) and their summary as JSON.
//! - `sim`: cache eviction policies (LRU, S3-FIFO, the most popular objects, Belady's optimum,
//!   and the edge's S3-FIFO logs)
//!   replayed over a trace at equal capacity.

pub mod client;
pub mod sim;
pub mod stats;
pub mod trace;
