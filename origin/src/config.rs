//! The origin's configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! admin = "127.0.0.1:9080"
//! media = "media"          # relative paths are relative to this file's folder
//! grace = "10s"
//! [connections]            # timeouts and limits of both listeners (server_kit::connection)
//! idle_timeout = "60s"
//! max_connections = 20000
//! [live]
//! window = 6               # segments in a live playlist
//! segment_interval = "2s"  # optional; default: each playlist's target duration
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Everything the origin needs to start.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// Address for media requests (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address for the admin surface.
    pub admin: SocketAddr,
    /// The media root: `vod/<title>/...` below it.
    pub media: PathBuf,
    /// How long a drain waits for in-flight responses before closing them.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// What both listeners allow a connection: timeouts and limits.
    pub connections: server_kit::connection::Limits,
    /// The simulated live channels.
    pub live: LiveConfig,
    /// HLS content steering server (the geo-router's `/steer/hls`). When set, every HLS
    /// multivariant playlist served carries `#EXT-X-CONTENT-STEERING` pointing at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering_hls: Option<String>,
    /// DASH content steering server (the geo-router's `/steer/dash`). When set, every MPD
    /// served carries `<ContentSteering>` pointing at it and a `BaseURL` for pathway `.`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering_dash: Option<String>,
}

/// Settings of the simulated live channels.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// How many segments a live playlist lists.
    pub window: usize,
    /// How often the media sequence advances. Unset: every target duration of the VOD playlist,
    /// as a real live encoder would. Tests set it short to watch the window move.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub segment_interval: Option<Duration>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9080)),
            media: PathBuf::from("testdata/media"),
            grace: Duration::from_secs(10),
            connections: server_kit::connection::Limits::default(),
            live: LiveConfig::default(),
            steering_hls: None,
            steering_dash: None,
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            window: 6,
            segment_interval: None,
        }
    }
}

impl OriginConfig {
    /// Checks what serde cannot: values in range and a media root that exists.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=1000).contains(&self.live.window) {
            return Err(Error::Config(format!(
                "live.window: must be between 1 and 1000 segments, got {}",
                self.live.window
            )));
        }
        if self.live.segment_interval == Some(Duration::ZERO) {
            return Err(Error::Config(
                "live.segment_interval: must be longer than zero".into(),
            ));
        }
        if !self.media.is_dir() {
            return Err(Error::Config(format!(
                "media: {} is not a folder",
                self.media.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_nested_tables_parse() {
        let config: OriginConfig = server_kit::config::parse(
            "listen = \"127.0.0.1:0\"\ngrace = \"1500ms\"\n[live]\nwindow = 3\nsegment_interval = \"250ms\"\n",
        )
        .expect("valid config");
        assert_eq!(config.grace, Duration::from_millis(1500));
        assert_eq!(config.live.window, 3);
        assert_eq!(
            config.live.segment_interval,
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn unknown_nested_key_is_named() {
        let err = server_kit::config::parse::<OriginConfig>("[live]\nwindoww = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("windoww"), "{err}");
    }

    #[test]
    fn zero_window_is_rejected_by_name() {
        let mut config = OriginConfig::default();
        config.live.window = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("live.window"), "{err}");
    }
}
