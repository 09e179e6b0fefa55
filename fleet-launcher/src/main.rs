//! `meridian-local`: start the local multi-region CDN, or act on a running one.
//!
//! ```text
//! meridian-local                      # start everything from testdata/topology.toml
//! meridian-local kill eu-west-1       # kill -9 one edge
//! meridian-local drain eu-west-1      # operator drain (viewers move to the neighbour region)
//! meridian-local undrain eu-west-1
//! meridian-local restore eu-west-1    # start it again if dead, and undrain
//! meridian-local --loopback-block 7   # the same fleet in 127.7.0.0/16, beside the default one
//! meridian-local --loopback-block auto   # in a free block; the `listening control` line says where
//! meridian-local --origin nginx       # nginx + ffmpeg's HLS/DASH muxers as a plain packager origin
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fleet_launcher::control::Control;
use fleet_launcher::plan::{Addresses, Inputs, OriginKind, claim_free_block, plan};
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
    /// The origin: `meridian` (Meridian's origin over the media root) or `nginx` (nginx serving
    /// the media root's VOD files and ffmpeg's HLS and DASH muxers writing the live channel
    /// live/big-clock; needs nginx and ffmpeg installed).
    #[arg(long, default_value = "meridian", value_parser = parse_origin)]
    origin: OriginKind,
    /// Store size of each edge.
    #[arg(long, default_value = "256MiB")]
    edge_capacity: String,
    /// Moves the whole fleet into 127.N.0.0/16: origin, router and control on 127.N.0.1 with
    /// their usual ports, the topology's edge 127.0.r.e on 127.N.r.e. `auto` picks a block (1-255)
    /// whose addresses are all free and prints where in its `listening control` line; tests use
    /// it to run beside a developer's fleet. 0 is where the topology puts the fleet.
    #[arg(long, default_value = "0", global = true, value_parser = parse_block)]
    loopback_block: Block,
    /// Every edge requires a signed URL for every title (`/t/<token>/live/...`, `/vod/...`),
    /// with a local demo key; the player asks the control port to sign its stream's path.
    #[arg(long)]
    signed_urls: bool,
    /// The launcher's own HTTP port (pages and control API) [default: 127.N.0.1:8000, N the
    /// loopback block].
    #[arg(long, global = true)]
    control: Option<SocketAddr>,
}

/// A `--loopback-block` value.
#[derive(Debug, Clone, Copy)]
enum Block {
    Fixed(u8),
    Auto,
}

fn parse_origin(text: &str) -> Result<OriginKind, String> {
    match text {
        "meridian" => Ok(OriginKind::Meridian),
        "nginx" => Ok(OriginKind::Nginx),
        other => Err(format!("{other:?} is neither `meridian` nor `nginx`")),
    }
}

fn parse_block(text: &str) -> Result<Block, String> {
    match text {
        "auto" => Ok(Block::Auto),
        n => n
            .parse()
            .map(Block::Fixed)
            .map_err(|_| format!("{n:?} is neither a block number 0-255 nor `auto`")),
    }
}

impl Cli {
    /// Where the launcher's control port is, for the subcommands that talk to it.
    fn control(&self) -> anyhow::Result<SocketAddr> {
        match (self.control, self.loopback_block) {
            (Some(control), _) => Ok(control),
            (None, Block::Fixed(block)) => Ok(Addresses::in_block(block).control),
            (None, Block::Auto) => anyhow::bail!(
                "--loopback-block auto picks a block when the fleet starts; to act on that fleet, give its block (--loopback-block N) or --control, as its `listening control` line says"
            ),
        }
    }

    fn inputs(&self, block: u8) -> Inputs {
        let usual = Addresses::in_block(block);
        Inputs {
            topology: self.topology.clone(),
            bin_dir: self.bin_dir.clone(),
            media: self.media.clone(),
            geoip: self.geoip.clone(),
            run_dir: self.run_dir.clone(),
            edge_capacity: self.edge_capacity.clone(),
            origin_kind: self.origin,
            addresses: Addresses {
                control: self.control.unwrap_or(usual.control),
                ..usual
            },
            loopback_block: block,
            signed_urls: self.signed_urls,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Kill an edge with SIGKILL.
    Kill { edge: String },
    /// Freeze an edge with SIGSTOP (connections accepted, never answered); `restore` thaws it.
    Freeze { edge: String },
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
        Action::Freeze { edge } => (edge, "freeze"),
        Action::Drain { edge } => (edge, "drain"),
        Action::Undrain { edge } => (edge, "undrain"),
        Action::Restore { edge } => (edge, "restore"),
    };
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let control = cli.control()?;
    let request = http::Request::post(format!("http://{control}/api/edges/{edge}/{verb}"))
        .body(http_body_util::Empty::new())?;
    let response = client.request(request).await.with_context(|| {
        format!("no meridian-local answers on {control}; is it running? (--loopback-block N or --control say where)")
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
    let shutdown = Shutdown::new();
    shutdown.on_signals()?;
    // The control port is bound first (so a taken port fails fast), announced once every child
    // is ready.
    let (plan, control_listener) = match cli.loopback_block {
        Block::Fixed(block) => {
            let plan = plan(&cli.inputs(block))?;
            let control = listener::bind_tcp("control", plan.addresses.control).await?;
            (plan, control)
        }
        Block::Auto => {
            anyhow::ensure!(
                cli.control.is_none(),
                "--loopback-block auto claims a block by binding its control address 127.N.0.1:8000: drop --control, or give --loopback-block N"
            );
            let (plan, control) = claim_free_block(&cli.inputs(0))?;
            control.set_nonblocking(true)?;
            (plan, tokio::net::TcpListener::from_std(control)?)
        }
    };
    let control_addr = control_listener.local_addr()?;
    let supervisor = Arc::new(Supervisor::new(plan, cli.run_dir.clone()));
    if let Err(error) = supervisor.start_all().await {
        supervisor.stop_all().await;
        return Err(error.into());
    }
    let a = &supervisor.plan.addresses;
    listener::announce("control", format!("http://{control_addr}"));
    // How the subcommands find this launcher: on 127.0.0.1:8000 unless told otherwise.
    let block = supervisor.plan.loopback_block;
    let control_flag = if control_addr == Addresses::default().control {
        String::new()
    } else if control_addr == Addresses::in_block(block).control {
        format!(" --loopback-block {block}")
    } else {
        format!(" --control {control_addr}")
    };
    println!(
        "Meridian local CDN is up: {} origin, geo-router, {} edges (loopback block {}).\n  Player:  http://{control_addr}/\n  Fleet:   http://{control_addr}/fleet\n  Router:  http://{}/fleet (JSON)   DNS {} (video.meridian.test)\n  Origin:  http://{}\n  Control: meridian-local{control_flag} kill|freeze|drain|undrain|restore <edge>\n  Ctrl-C stops everything.",
        match supervisor.plan.origin_kind {
            OriginKind::Meridian => "Meridian",
            OriginKind::Nginx => "nginx + ffmpeg",
        },
        supervisor.plan.edges.len(),
        block,
        a.router_http,
        a.router_dns,
        a.origin_http,
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
