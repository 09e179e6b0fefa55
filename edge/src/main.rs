//! The `edge` binary: parse flags, load config, bind, run.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use edge::{EdgeConfig, Listeners};
use server_kit::{Shutdown, cli::CommonArgs, config, listener};

/// Meridian edge: the caching reverse proxy for video.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Address for viewers' requests; repeat for several (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Address of the admin surface (overrides `admin`).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// This edge's name (overrides `name`).
    #[arg(long)]
    name: Option<String>,
    /// This edge's region (overrides `region`).
    #[arg(long)]
    region: Option<String>,
}

fn main() -> ExitCode {
    server_kit::telemetry::init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("edge: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (mut config, _base) = config::load_or_default::<EdgeConfig>(cli.common.config.as_deref())?;
    if !cli.listen.is_empty() {
        config.listen = cli.listen;
    }
    config.admin = cli.admin.unwrap_or(config.admin);
    config.name = cli.name.unwrap_or(config.name);
    config.region = cli.region.unwrap_or(config.region);
    if cli.common.check_config {
        println!(
            "config ok\n{}",
            toml::to_string(&config).context("printing the config")?
        );
        return Ok(());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let shutdown = Shutdown::new();
        shutdown.on_signals()?;
        let mut http = Vec::new();
        for addr in &config.listen {
            http.push(listener::bind_http("http", *addr).await?);
        }
        let admin = listener::bind_http("admin", config.admin).await?;
        edge::run(Listeners { http, admin }, config, shutdown).await;
        Ok(())
    })
}
