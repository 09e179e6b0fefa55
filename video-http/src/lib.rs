//! HTTP semantics that the origin and the edge share, written once.
//!
//! - [`range`]: the `Range` request header (RFC 9110 §14) evaluated against a representation's
//!   length: one satisfiable range, none (416), or a reason to send the whole thing.
//! - [`validators`]: `ETag` and `Last-Modified` matching for `If-None-Match`,
//!   `If-Modified-Since` and `If-Range`.
//! - [`conditional`]: the one 200/206/304/412/416 decision for a request and a representation,
//!   in RFC 9110's order, used by the origin and the edge alike.
//! - [`media`]: what kind of video object a path names (playlist, segment, …) and its
//!   `Content-Type`.
//! - [`manifest`]: HLS playlists and DASH MPDs rewritten for a player: content steering added,
//!   absolute origin URLs turned into CDN paths.
//! - [`numbered`]: which media segments a DASH MPD names through `SegmentTemplate` and
//!   `$Number$` (for prefetch).
//!
//! Everything here is pure: no I/O, no clocks, so it is unit- and property-tested in isolation.

pub mod conditional;
pub mod manifest;
pub mod media;
pub mod numbered;
pub mod range;
pub mod validators;

/// The request header in which an edge names itself when it fetches from its origin (a
/// steering origin writes the name into the steering URI of the playlists it serves).
pub const EDGE_NAME_HEADER: &str = "meridian-edge";
