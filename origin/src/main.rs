//! The `origin` binary: parse flags, load config, bind, run. Everything else is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use origin::{Listeners, OriginConfig};
use server_kit::{cli::CommonArgs, config, listener};

/// Meridian origin: serves VOD HLS/DASH and simulated live channels from a media root.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Media root (overrides `media`).
    #[arg(long, value_name = "DIR")]
    media: Option<PathBuf>,
    /// Address for media requests (overrides `listen`); port 0 picks one.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Address for the admin surface (overrides `admin`).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Segments in a live playlist (overrides `live.window`).
    #[arg(long, value_name = "N")]
    live_window: Option<usize>,
    /// HLS content steering server URL (overrides `steering_hls`).
    #[arg(long, value_name = "URL")]
    steering_hls: Option<String>,
    /// DASH content steering server URL (overrides `steering_dash`).
    #[arg(long, value_name = "URL")]
    steering_dash: Option<String>,
    /// How often live channels advance, e.g. `2s` (overrides `live.segment_interval`).
    #[arg(long, value_name = "DURATION", value_parser = humantime_serde::re::humantime::parse_duration)]
    live_interval: Option<Duration>,
}

fn main() -> ExitCode {
    server_kit::cli::main("origin", run)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (mut config, base) = cli.common.load::<OriginConfig>()?;
    config.media = config::resolve(&base, &config.media);
    if let Some(media) = cli.media {
        config.media = media;
    }
    config.listen = cli.listen.unwrap_or(config.listen);
    config.admin = cli.admin.unwrap_or(config.admin);
    config.live.window = cli.live_window.unwrap_or(config.live.window);
    config.steering_hls = cli.steering_hls.or(config.steering_hls);
    config.steering_dash = cli.steering_dash.or(config.steering_dash);
    config.live.segment_interval = cli.live_interval.or(config.live.segment_interval);
    config.validate()?;
    if cli.common.check(&config)? {
        return Ok(());
    }
    server_kit::cli::serve(|shutdown| async move {
        let listeners = Listeners {
            http: listener::bind_http("http", config.listen).await?,
            admin: listener::bind_http("admin", config.admin).await?,
        };
        origin::run(listeners, config, shutdown).await?;
        Ok(())
    })
}
