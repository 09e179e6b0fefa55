//! `meridian-local`: start the local multi-region CDN, or act on a running one.
//!
//! ```text
//! meridian-local                      # start everything from testdata/topology.toml
//! meridian-local kill eu-west-1       # kill -9 one edge
//! meridian-local drain eu-west-1      # operator drain (viewers move to the neighbour region)
//! meridian-local undrain eu-west-1
//! meridian-local restore eu-west-1    # start it again if dead, and undrain
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleet_launcher::control::Control;
use fleet_launcher::plan::{Addresses, Inputs, plan};
use fleet_launcher::supervisor::Supervisor;
use server_kit::{Shutdown, listener};

/// The local multi-region Meridian CDN.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    action: Option<Action>,
    /// Fleet topology.
    #[arg(long, default_value = "testdata/topology.toml", global = true)]
    topology: PathBuf,
    /// Where the origin, edge and geo-router binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The player and fleet pages (with node_modules from `npm ci`).
    #[arg(long, default_value = "player")]
    player_dir: PathBuf,
    /// Media root for the origin.
    #[arg(long, default_value = "testdata/media")]
    media: PathBuf,
    /// GeoIP database for the router.
    #[arg(long, default_value = "testdata/geoip/meridian-city.mmdb")]
    geoip: PathBuf,
    /// Edge configs, stores (kept between runs: restarts are warm) and logs.
    #[arg(long, default_value = "target/meridian-local")]
    run_dir: PathBuf,
    /// Store size of each edge.
    #[arg(long, default_value = "256MiB")]
    edge_capacity: String,
    /// The launcher's own HTTP port (pages and control API).
    #[arg(long, default_value = "127.0.0.1:8000", global = true)]
    control: SocketAddr,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Kill an edge with SIGKILL.
    Kill { edge: String },
    /// Turn an edge's operator drain on.
    Drain { edge: String },
    /// Turn an edge's operator drain off.
    Undrain { edge: String },
    /// Start an edge again if it is dead, and undrain it.
    Restore { edge: String },
}

fn main() -> ExitCode {
    server_kit::telemetry::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meridian-local: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.action {
            Some(action) => act(&cli, action).await,
            None => run(&cli).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("meridian-local: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn act(cli: &Cli, action: &Action) -> anyhow::Result<()> {
    let (edge, verb) = match action {
        Action::Kill { edge } => (edge, "kill"),
        Action::Drain { edge } => (edge, "drain"),
        Action::Undrain { edge } => (edge, "undrain"),
        Action::Restore { edge } => (edge, "restore"),
    };
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let request = http::Request::post(format!("http://{}/api/edges/{edge}/{verb}", cli.control))
        .body(http_body_util::Empty::new())?;
    let response = client.request(request).await.with_context(|| {
        format!(
            "no meridian-local answers on {}; is it running?",
            cli.control
        )
    })?;
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    anyhow::ensure!(status.is_success(), "{}", text.trim());
    println!("{}", text.trim());
    Ok(())
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let inputs = Inputs {
        topology: cli.topology.clone(),
        bin_dir: cli.bin_dir.clone(),
        media: cli.media.clone(),
        geoip: cli.geoip.clone(),
        run_dir: cli.run_dir.clone(),
        edge_capacity: cli.edge_capacity.clone(),
        addresses: Addresses {
            control: cli.control,
            ..Addresses::default()
        },
    };
    let plan = plan(&inputs)?;
    let shutdown = Shutdown::new();
    shutdown.on_signals()?;
    // Bound first (so a taken port fails fast), announced once every child is ready.
    let control_listener = listener::bind_tcp("control", cli.control).await?;
    let control_addr = control_listener.local_addr()?;
    let supervisor = Arc::new(Supervisor::new(plan, cli.run_dir.clone()));
    if let Err(error) = supervisor.start_all().await {
        supervisor.stop_all().await;
        return Err(error.into());
    }
    let a = &supervisor.plan.addresses;
    listener::announce("control", format!("http://{control_addr}"));
    println!(
        "Meridian local CDN is up: origin, geo-router, {} edges.\n  Player:  http://{}/\n  Fleet:   http://{}/fleet\n  Router:  http://{}/fleet (JSON)   DNS {} (video.meridian.test)\n  Control: meridian-local kill|drain|undrain|restore <edge>\n  Ctrl-C stops everything.",
        supervisor.plan.edges.len(),
        control_addr,
        control_addr,
        a.router_http,
        a.router_dns,
    );
    let control = Arc::new(Control {
        supervisor: supervisor.clone(),
        player_dir: cli.player_dir.clone(),
    });
    server_kit::http_server::serve(
        control_listener,
        move |request, peer| control.clone().handle(request, peer),
        shutdown.clone(),
        std::time::Duration::from_secs(2),
    )
    .await;
    supervisor.stop_all().await;
    println!("meridian-local: every process stopped");
    Ok(())
}
