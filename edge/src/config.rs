//! The edge's configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! listen = ["127.0.0.1:8081"]
//! tls_listen = ["127.0.0.1:8443"]      # needs tls_cert and tls_key (PEM)
//! tls_cert = "edge.crt"
//! tls_key = "edge.key"
//! tls_certificates = [{ cert = "other.crt", key = "other.key" }]  # more, chosen by SNI; SIGHUP reloads
//! admin = "127.0.0.1:9081"
//! name = "eu-west-1"
//! region = "eu-west"
//! origins = ["http://127.0.0.1:8080"]  # tried in order; https:// too
//! origin_ca_file = "origin-ca.pem"     # optional: CAs trusted for HTTPS origins, beside the system's
//! origin_host = { "https://10.0.0.5" = "media.example.com" }  # Host (and TLS name) sent to an origin
//! steering_hls = "https://router.example/steer/hls"    # content steering written into playlists
//! steering_dash = "https://router.example/steer/dash"  # ... and into MPDs
//! rewrite_origin_urls = true          # absolute origin URLs in manifests become CDN paths
//! store = "/var/cache/meridian/edge.store"
//! capacity = "1GiB"
//! memory_cache = "128MiB"            # hot bodies also held in memory (default: capacity / 4, at most 128MiB)
//! zero_copy_below = "128KiB"          # held bodies from 64KiB up to this are sent with sendfile on plain HTTP/1 ("0": never)
//! max_object_size = "64MiB"
//! checkpoint_interval = "10s"         # the store's index saved this often, for a fast start after a crash
//! origin_check_interval = "2s"        # how often the edge asks whether any origin answers ("0s": never)
//! hosts = ["cdn.example.com", "eu-west-1.cdn.example.com"]  # others get 421; empty: any
//! canonical_host = "cdn.example.com"  # the host objects are keyed under
//! access_log = "/var/log/meridian/access.jsonl"  # JSON lines; SIGUSR1 reopens it; unset: none
//! access_log_sample = 1.0             # the fraction of requests logged (server errors always)
//! slice_size = "1MiB"                 # larger objects' ranges are kept in slices this big
//! max_request_body = "16MiB"          # POST/PUT/PATCH bodies passed to the origin, at most
//! ignore_client_no_cache = false      # true: viewers' no-cache / max-age do not reach the origin
//! credential_cookies = ["session"]    # like Authorization: such requests are never shared
//! answer_cors_preflight = true        # false: OPTIONS goes to the origin
//! key_ignore_params = ["token"]       # per-viewer query parameters left out of the cache key
//! prefetch = 2                        # next segments fetched after a segment request
//! admin_token = "change-me"           # bearer token for PURGE, drain and router pushes; unset disables them
//! state_file = "/var/cache/meridian/edge.state"  # drain switch and purges applied (default: the store's path + ".state")
//! await_purges = true                 # a fleet's edge: no store hits after a start until a majority of routers sent what it missed
//! grace = "10s"
//! connect_timeout = "2s"
//! first_byte_timeout = "10s"
//!
//! [connections]                       # every listener; see server_kit::connection
//! handshake_timeout = "10s"           # TLS
//! first_request_timeout = "10s"       # accept until the protocol is known
//! header_timeout = "15s"              # an HTTP/1.1 header, and keep-alive idle between requests
//! idle_timeout = "60s"                # no request in flight (HTTP/2 too)
//! write_stall_timeout = "30s"         # a viewer that stops reading
//! body_timeout = "30s"                # a request body that sends nothing for this long: 408
//! body_min_rate = 1024                # ... or averages fewer bytes per second, past body_timeout
//! h2_keepalive_interval = "30s"
//! h2_keepalive_timeout = "20s"
//! h2_max_concurrent_streams = 128
//! h2_max_pending_reset_streams = 20   # rapid reset
//! max_connections = 20000             # per listener; more are closed at accept
//! max_connections_per_client = 0      # per client address; 0: no limit
//! max_header_bytes = 65536            # larger get 431
//!
//! [signed_urls]                       # /t/<token>/... (see `meridian-sign`); unset: none
//! required_prefixes = ["/vod/"]       # paths that need a token
//! keys = [{ id = 1, secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA" }]  # base64url, 32+ bytes (make your own); two to rotate
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Everything the edge needs to start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    /// Addresses for viewers' plain HTTP (HTTP/1.1 and h2c).
    pub listen: Vec<SocketAddr>,
    /// Addresses for viewers' HTTPS (HTTP/1.1 and HTTP/2 by ALPN).
    pub tls_listen: Vec<SocketAddr>,
    /// PEM certificate chain for HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// More certificates for HTTPS, each chosen for the names it is valid for (SNI); the
    /// `tls_cert` pair is the default. SIGHUP reloads them all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<crate::tls::CertFiles>,
    /// Address of the admin surface.
    pub admin: SocketAddr,
    /// This edge's name, reported in `X-Served-By` and `/status`.
    pub name: String,
    /// The region this edge stands in.
    pub region: String,
    /// Origin base URLs, tried in order on connection errors and 5xx.
    pub origins: Vec<String>,
    /// PEM file of certificate authorities trusted for HTTPS origins, besides the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_ca_file: Option<PathBuf>,
    /// Per origin URL (as written in `origins`), the `Host` to send it instead of the URL's,
    /// which is also the name its TLS certificate is checked against: an origin reached by
    /// address that serves a named virtual host.
    pub origin_host: BTreeMap<String, String>,
    /// The content steering server for HLS (the geo-router's `/steer/hls`): every multivariant
    /// playlist served gets `#EXT-X-CONTENT-STEERING` naming it, with this edge as pathway `.`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering_hls: Option<String>,
    /// The same for DASH (`/steer/dash`): every MPD served gets `<ContentSteering>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering_dash: Option<String>,
    /// Absolute URLs in manifests that point at an origin (its URL, or its `origin_host`) are
    /// served as paths on the edge, so players stay on the CDN.
    pub rewrite_origin_urls: bool,
    /// The store file (created at `capacity` bytes).
    pub store: PathBuf,
    /// Size of the store file, e.g. `"512MiB"`.
    pub capacity: ByteSize,
    /// Hot bodies (up to 2 MiB each) also held in memory, up to this many bytes: a hit on one
    /// is answered without reading the file. `"0"` holds none; unset, a quarter of `capacity`,
    /// at most 128 MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_cache: Option<ByteSize>,
    /// Bodies held in memory (at most 2 MiB) from 64 KiB up to (not including) this size get a
    /// sealed copy, sent with sendfile to plain HTTP/1 viewers (`server_kit::zero_copy`); such a
    /// body counts twice against `memory_cache`. `"0"` turns it off. The default is where it
    /// measured cheaper than copying on this project's benchmark machine (`store::memory`).
    pub zero_copy_below: ByteSize,
    /// Larger objects are streamed through without being stored whole; their ranges are kept
    /// in slices of `slice_size`.
    pub max_object_size: ByteSize,
    /// The slices a large object's ranges are fetched and stored in (at most
    /// `max_object_size`: a larger value is cut to it).
    pub slice_size: ByteSize,
    /// Origin shield: a viewer's `Cache-Control: no-cache` or `max-age` does not force a
    /// revalidation (off: RFC 9111's behaviour).
    pub ignore_client_no_cache: bool,
    /// Request headers that, like `Authorization`, mark a viewer's own request: never shared,
    /// answered from the store only when the response says it may be.
    pub credential_headers: Vec<String>,
    /// Cookies that do the same (a session cookie, say).
    pub credential_cookies: Vec<String>,
    /// Answer CORS preflights (OPTIONS) at the edge; off, they go to the origin like any
    /// other method.
    pub answer_cors_preflight: bool,
    /// Largest request body passed to the origin (POST, PUT, PATCH); larger ones get 413.
    pub max_request_body: ByteSize,
    /// Query parameters left out of the cache key (per-viewer tokens); CMCD always is.
    pub key_ignore_params: Vec<String>,
    /// How many following segments to prefetch after a segment request (0: off).
    pub prefetch: usize,
    /// Where a draining edge sends new requests: the base URL of an edge in its neighbour
    /// region (the launcher and Terraform fill it from the topology). Unset: a draining edge
    /// keeps serving, and only the router's steering moves viewers away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_to: Option<String>,
    /// Bearer token for PURGE, drain and the routers' purge pushes. Unset: those operations
    /// are disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Where the drain switch and the purges applied are kept across restarts (see `state`);
    /// unset: beside the store, its path with ".state" added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<PathBuf>,
    /// This edge is one of a fleet whose routers keep a purge log: after a start it serves
    /// nothing from its store until a majority of the routers have sent it the purges it
    /// missed (see `purges`). Needs `admin_token`.
    pub await_purges: bool,
    /// What the edge is sized for: egress, viewers' connections, responses in progress. Its
    /// load (on `/status`, read by the router) is the largest ratio to these (see `load`).
    pub load: crate::load::Capacity,
    /// How long a drain waits for in-flight responses.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// Time allowed to connect to an origin.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time allowed for an origin's response headers.
    #[serde(with = "humantime_serde")]
    pub first_byte_timeout: Duration,
    /// Longest pause allowed between two chunks of an origin body.
    #[serde(with = "humantime_serde")]
    pub body_idle_timeout: Duration,
    /// How often the store's index is written beside it while the edge runs: a start after a
    /// crash loads it and reads only the record headers written since.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// How often the edge asks whether any origin answers (`HEAD /`, for `/status`'s
    /// `origin_reachable`, which the router reads); zero: never (always reported reachable).
    #[serde(with = "humantime_serde")]
    pub origin_check_interval: Duration,
    /// What every listener (viewers' and admin) allows a connection: timeouts and limits.
    pub connections: server_kit::connection::Limits,
    /// The hosts this edge serves (`Host` without its port; empty: any). A request for another
    /// gets 421 and never reaches the origin. List every name viewers use: the CDN's names, the
    /// edge's own (steering clones and drain redirects name edges by their URLs).
    pub hosts: Vec<String>,
    /// The host every cached object is keyed under, whatever name the viewer used (the origin
    /// is asked with its own URL's host, or `origin_host`, as always); unset: the viewer's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical_host: Option<String>,
    /// Signed URLs (`/t/<token>/...`, see `signed`): the keys, and the paths that need one.
    pub signed_urls: crate::signed::Config,
    /// Where the access log goes (JSON lines, see `access_log`); unset: no access log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log: Option<PathBuf>,
    /// The fraction of requests logged, in (0, 1]; server errors always are.
    pub access_log_sample: f64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8081))],
            tls_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_certificates: Vec::new(),
            admin: SocketAddr::from(([127, 0, 0, 1], 9081)),
            name: "edge-1".into(),
            region: "local".into(),
            origins: vec!["http://127.0.0.1:8080".into()],
            origin_ca_file: None,
            origin_host: BTreeMap::new(),
            steering_hls: None,
            steering_dash: None,
            rewrite_origin_urls: true,
            store: PathBuf::from("edge.store"),
            capacity: ByteSize(256 << 20),
            memory_cache: None,
            zero_copy_below: ByteSize(crate::store::ZERO_COPY_BELOW),
            max_object_size: ByteSize(64 << 20),
            slice_size: ByteSize(1 << 20),
            max_request_body: ByteSize(16 << 20),
            ignore_client_no_cache: false,
            credential_headers: Vec::new(),
            credential_cookies: Vec::new(),
            answer_cors_preflight: true,
            key_ignore_params: Vec::new(),
            prefetch: 2,
            drain_to: None,
            state_file: None,
            await_purges: false,
            admin_token: None,
            load: crate::load::Capacity::default(),
            grace: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(10),
            checkpoint_interval: Duration::from_secs(10),
            origin_check_interval: Duration::from_secs(2),
            connections: server_kit::connection::Limits::default(),
            hosts: Vec::new(),
            canonical_host: None,
            signed_urls: crate::signed::Config::default(),
            access_log: None,
            access_log_sample: 1.0,
        }
    }
}

impl EdgeConfig {
    /// The bytes of hot bodies held in memory (`memory_cache`, or its default).
    pub fn memory_cache_bytes(&self) -> u64 {
        self.memory_cache
            .map_or((self.capacity.0 / 4).min(128 << 20), |m| m.0)
    }

    /// Checks what serde cannot, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError { key, problem };
        if self.listen.is_empty() && self.tls_listen.is_empty() {
            return Err(invalid(
                "listen",
                "at least one listen or tls_listen address is needed".into(),
            ));
        }
        if !self.tls_certificates.is_empty() && self.tls_cert.is_none() {
            return Err(invalid(
                "tls_certificates",
                "needs tls_cert and tls_key, the default certificate".into(),
            ));
        }
        if !self.tls_listen.is_empty() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return Err(invalid("tls_listen", "needs tls_cert and tls_key".into()));
        }
        if self.origins.is_empty() {
            return Err(invalid(
                "origins",
                "at least one origin URL is needed".into(),
            ));
        }
        for origin in &self.origins {
            let uri: http::Uri = origin
                .parse()
                .map_err(|e| invalid("origins", format!("{origin:?} is not a URL: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(invalid(
                    "origins",
                    format!("{origin:?} must be an http:// or https:// URL with a host"),
                ));
            }
        }
        for (origin, host) in &self.origin_host {
            if !self.origins.contains(origin) {
                return Err(invalid(
                    "origin_host",
                    format!("{origin:?} is not one of `origins` ({:?})", self.origins),
                ));
            }
            let valid = host
                .parse::<http::uri::Authority>()
                .is_ok_and(|a| a.as_str() == host && !host.contains('@'));
            if !valid {
                return Err(invalid(
                    "origin_host",
                    format!("{host:?} (for {origin}) is not a host name, with an optional :port"),
                ));
            }
        }
        for (key, url) in [
            ("steering_hls", &self.steering_hls),
            ("steering_dash", &self.steering_dash),
        ] {
            if let Some(url) = url {
                let uri: http::Uri = url
                    .parse()
                    .map_err(|e| invalid(key, format!("{url:?} is not a URL: {e}")))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(invalid(
                        key,
                        format!("{url:?} must be an http:// or https:// URL with a host"),
                    ));
                }
            }
        }
        if let Some(ca) = &self.origin_ca_file
            && let Err(problem) = crate::upstream::read_ca_file(ca)
        {
            return Err(invalid("origin_ca_file", problem));
        }
        if self.await_purges && self.admin_token.is_none() {
            return Err(invalid(
                "await_purges",
                "needs admin_token: the routers send their purges with it".into(),
            ));
        }
        if let Some(to) = &self.drain_to {
            let uri: http::Uri = to
                .parse()
                .map_err(|e| invalid("drain_to", format!("{to:?} is not a URL: {e}")))?;
            if uri.scheme().is_none() || uri.host().is_none() {
                return Err(invalid(
                    "drain_to",
                    format!("{to:?} must be an absolute URL"),
                ));
            }
        }
        if self.capacity.0 < 2 << 20 {
            return Err(invalid("capacity", "must be at least 2MiB".into()));
        }
        if let Some(memory) = self.memory_cache
            && memory.0 > self.capacity.0
        {
            return Err(invalid(
                "memory_cache",
                format!(
                    "{} is more than the store's capacity ({}): it holds copies of stored bodies",
                    memory, self.capacity
                ),
            ));
        }
        if self.zero_copy_below.0 != 0 && self.zero_copy_below.0 <= crate::store::ZERO_COPY_MIN {
            return Err(invalid(
                "zero_copy_below",
                format!(
                    "{} leaves no size to send with sendfile (it starts at 64KiB); \"0\" turns it off",
                    self.zero_copy_below
                ),
            ));
        }
        if !topology::valid_edge_name(&self.name) {
            return Err(invalid(
                "name",
                format!("{:?} must be {}", self.name, topology::EDGE_NAME_RULE),
            ));
        }
        if self.slice_size.0 < 16 << 10 {
            return Err(invalid(
                "slice_size",
                format!("{} must be at least 16KiB", self.slice_size),
            ));
        }
        for (key, value) in [
            ("load.egress_mbps", self.load.egress_mbps),
            ("load.connections", self.load.connections),
            ("load.responses", self.load.responses),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be above zero".into()));
            }
        }
        if let Some(bad) = self
            .hosts
            .iter()
            .chain(&self.canonical_host)
            .find(|h| h.is_empty() || h.contains(['/', ' ', ':']) && !h.starts_with('['))
        {
            return Err(invalid(
                "hosts",
                format!("{bad:?} is not a host name (no scheme, path or port)"),
            ));
        }
        if let Err(problem) = crate::signed::SignedUrls::new(&self.signed_urls) {
            return Err(invalid("signed_urls", problem));
        }
        if !(self.access_log_sample > 0.0 && self.access_log_sample <= 1.0) {
            return Err(invalid(
                "access_log_sample",
                format!("{} must be above 0 and at most 1", self.access_log_sample),
            ));
        }
        if let Err((key, problem)) = self.connections.validate() {
            return Err(invalid(connections_key(key), problem));
        }
        if self.checkpoint_interval < Duration::from_secs(1) {
            return Err(invalid(
                "checkpoint_interval",
                "must be at least 1s (each checkpoint writes the whole index)".into(),
            ));
        }
        if self.admin_token.as_deref() == Some("") {
            return Err(invalid(
                "admin_token",
                "must not be empty (leave it out to disable PURGE and drain)".into(),
            ));
        }
        Ok(())
    }
}

impl EdgeConfig {
    /// The state file: `state_file`, or the store's path with ".state" added.
    pub fn state_path(&self) -> PathBuf {
        self.state_file.clone().unwrap_or_else(|| {
            let mut path = self.store.clone().into_os_string();
            path.push(".state");
            PathBuf::from(path)
        })
    }

    /// The base URLs an origin's absolute URLs start with: each origin's, under either scheme
    /// (an HTTPS origin may write `http://` URLs of itself), and the same under its
    /// `origin_host` name.
    pub fn origin_url_bases(&self) -> Vec<String> {
        let mut bases = Vec::new();
        for origin in &self.origins {
            let Ok(uri) = origin.parse::<http::Uri>() else {
                continue;
            };
            let path = uri.path().trim_end_matches('/');
            let mut authorities = Vec::new();
            if let Some(authority) = uri.authority() {
                authorities.push(authority.as_str().to_owned());
            }
            if let Some(host) = self.origin_host.get(origin) {
                authorities.push(host.clone());
            }
            for authority in authorities {
                for scheme in ["http", "https"] {
                    bases.push(format!("{scheme}://{authority}{path}"));
                }
            }
        }
        bases
    }
}

/// A config value that parses but cannot work: the key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config: {key}: {problem}")]
#[non_exhaustive]
pub struct ConfigError {
    pub key: &'static str,
    pub problem: String,
}

/// The dotted name of a key of the `[connections]` table.
fn connections_key(key: &str) -> &'static str {
    match key {
        "handshake_timeout" => "connections.handshake_timeout",
        "first_request_timeout" => "connections.first_request_timeout",
        "header_timeout" => "connections.header_timeout",
        "idle_timeout" => "connections.idle_timeout",
        "write_stall_timeout" => "connections.write_stall_timeout",
        "body_timeout" => "connections.body_timeout",
        "h2_keepalive_interval" => "connections.h2_keepalive_interval",
        "h2_keepalive_timeout" => "connections.h2_keepalive_timeout",
        "h2_max_concurrent_streams" => "connections.h2_max_concurrent_streams",
        "max_connections" => "connections.max_connections",
        "max_header_bytes" => "connections.max_header_bytes",
        _ => "connections",
    }
}

/// A size in bytes, written in config as `"512MiB"`, `"1GiB"`, `"64KiB"` or a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a size like \"512MiB\""))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => return Err(format!("unknown size unit {other:?} (use KiB, MiB, GiB)")),
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= size && n.is_multiple_of(size) {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!("512MiB".parse::<ByteSize>(), Ok(ByteSize(512 << 20)));
        assert_eq!("1GiB".parse::<ByteSize>(), Ok(ByteSize(1 << 30)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("99999999999999GiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(3 << 20).to_string(), "3MiB");
    }

    #[test]
    fn a_bad_size_names_the_key_and_line() {
        let err = server_kit::config::parse::<EdgeConfig>("name = \"e\"\ncapacity = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("capacity") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn tls_needs_a_certificate() {
        let config = EdgeConfig {
            tls_listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            ..EdgeConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.key, "tls_listen");
        assert!(error.to_string().contains("tls_cert"), "{error}");
    }

    #[test]
    fn origin_hosts_and_steering_urls_are_checked() {
        let with = |f: fn(&mut EdgeConfig)| {
            let mut config = EdgeConfig::default();
            f(&mut config);
            config.validate()
        };
        let error = with(|c| {
            c.origin_host
                .insert("http://elsewhere".into(), "media.example".into());
        })
        .unwrap_err();
        assert_eq!(error.key, "origin_host");
        let error = with(|c| {
            c.origin_host
                .insert("http://127.0.0.1:8080".into(), "bad host/".into());
        })
        .unwrap_err();
        assert_eq!(error.key, "origin_host");
        let error = with(|c| c.steering_dash = Some("/steer/dash".into())).unwrap_err();
        assert_eq!(error.key, "steering_dash");
        with(|c| {
            c.origin_host
                .insert("http://127.0.0.1:8080".into(), "media.example:8443".into());
            c.steering_hls = Some("http://r/steer/hls".into());
        })
        .unwrap();
    }

    #[test]
    fn an_origins_urls_are_known_by_its_address_and_its_host() {
        let mut config = EdgeConfig {
            origins: vec!["https://10.0.0.5/media/".into()],
            ..EdgeConfig::default()
        };
        config
            .origin_host
            .insert("https://10.0.0.5/media/".into(), "media.example".into());
        assert_eq!(
            config.origin_url_bases(),
            [
                "http://10.0.0.5/media",
                "https://10.0.0.5/media",
                "http://media.example/media",
                "https://media.example/media"
            ]
        );
    }
}
