//! The `geo-router` binary: parse flags, load config, bind, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use geo_router::{Listeners, RouterConfig};
use server_kit::{Shutdown, cli::CommonArgs, config, listener};

/// Meridian geo-router: sends each viewer to the nearest healthy edge.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Address of the HTTP API (overrides `http`).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Address of the admin surface (overrides `admin`).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Fleet topology file (overrides `topology`).
    #[arg(long, value_name = "FILE")]
    topology: Option<PathBuf>,
    /// DNS zone (overrides `zone`).
    #[arg(long, value_name = "NAME")]
    zone: Option<String>,
}

fn main() -> ExitCode {
    server_kit::telemetry::init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("geo-router: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (mut config, base) = config::load_or_default::<RouterConfig>(cli.common.config.as_deref())?;
    config.topology = config::resolve(&base, &config.topology);
    config.topology = cli.topology.unwrap_or(config.topology);
    config.http = cli.http.unwrap_or(config.http);
    config.admin = cli.admin.unwrap_or(config.admin);
    config.zone = cli.zone.unwrap_or(config.zone);
    topology::Topology::load(&config.topology)?;
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
        let listeners = Listeners {
            http: listener::bind_http("http", config.http).await?,
            admin: listener::bind_http("admin", config.admin).await?,
        };
        geo_router::run(listeners, config, shutdown).await?;
        Ok(())
    })
}
