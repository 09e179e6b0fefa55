//! The local multi-region CDN on one machine: the product's main job as one command.
//!
//! From a topology file the launcher starts the origin, the geo-router and every edge as child
//! processes on loopback addresses (127.0.0.0/8 gives every edge its own address), waits for
//! each `listening` line, and serves the player and fleet pages plus a small control API on
//! one HTTP port. Ctrl-C (or SIGTERM) stops every child by PID and waits for it.
//!
//! Layout:
//! - [`plan`]: what to start, derived from the topology (addresses, configs, drain targets).
//! - [`static_origin`]: `--origin nginx`, nginx and ffmpeg as a plain packager origin.
//! - [`supervisor`]: starting children, readiness, kill -9, drain, restore, stop.
//! - [`control`]: the pages and `POST /api/edges/<name>/{kill,drain,undrain,restore}`.
//! - [`error`]: the one error type: who failed, and what to do.

pub mod control;
pub mod error;
pub mod plan;
pub mod static_origin;
pub mod supervisor;

pub use error::Error;
