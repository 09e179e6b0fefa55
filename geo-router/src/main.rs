//! The `geo-router` binary: parse flags, load config, bind, run. SIGHUP reloads the topology.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use geo_router::{Listeners, RouterConfig};
use server_kit::{cli::CommonArgs, config, listener};

/// Meridian geo-router: sends each viewer to the nearest healthy edge.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// DNS address, UDP and TCP (overrides `dns`).
    #[arg(long, value_name = "ADDR")]
    dns: Option<SocketAddr>,
    /// Address of the HTTP API (overrides `http`).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Address of the admin surface (overrides `admin`).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Fleet topology file (overrides `topology`).
    #[arg(long, value_name = "FILE")]
    topology: Option<PathBuf>,
    /// GeoIP database, MaxMind format (overrides `geoip`).
    #[arg(long, value_name = "FILE")]
    geoip: Option<PathBuf>,
    /// DNS zone (overrides `zone`).
    #[arg(long, value_name = "NAME")]
    zone: Option<String>,
    /// This router's name among its peers (overrides `name`).
    #[arg(long)]
    name: Option<String>,
    /// A peer router's HTTP API URL; repeat for several (overrides `peers`).
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    /// Let the HTTP API take ?client=IP (overrides `dev_mode`).
    #[arg(long)]
    dev_mode: bool,
}

fn main() -> ExitCode {
    server_kit::cli::main("geo-router", run)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (mut config, base) = cli.common.load::<RouterConfig>()?;
    config.topology = config::resolve(&base, &config.topology);
    config.geoip = config::resolve(&base, &config.geoip);
    config.topology = cli.topology.unwrap_or(config.topology);
    config.geoip = cli.geoip.unwrap_or(config.geoip);
    config.dns = cli.dns.unwrap_or(config.dns);
    config.http = cli.http.unwrap_or(config.http);
    config.admin = cli.admin.unwrap_or(config.admin);
    config.zone = cli.zone.unwrap_or(config.zone);
    config.name = cli.name.unwrap_or(config.name);
    if !cli.peers.is_empty() {
        config.peers = cli.peers;
    }
    config.dev_mode |= cli.dev_mode;
    // Loaded once, before the listeners are announced: `run` serves with these.
    let loaded = geo_router::load(&config)?;
    if cli.common.check(&config)? {
        return Ok(());
    }
    let purge_log = geo_router::open_purge_log(&config)?;
    server_kit::cli::serve(|shutdown| async move {
        let reload = Arc::new(tokio::sync::Notify::new());
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        let notify = reload.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                notify.notify_one();
            }
        });
        let (dns_udp, dns_tcp) = bind_dns(config.dns).await?;
        let udp_addr = dns_udp.local_addr()?;
        listener::announce("dns-udp", udp_addr);
        listener::announce("dns-tcp", dns_tcp.local_addr()?);
        let listeners = Listeners {
            dns_udp,
            dns_tcp,
            http: listener::bind_http("http", config.http).await?,
            admin: listener::bind_http("admin", config.admin).await?,
        };
        geo_router::run(listeners, config, loaded, purge_log, shutdown, reload).await?;
        Ok(())
    })
}

/// Binds DNS on UDP and TCP at the same address. With port 0, the TCP side takes the port the
/// UDP side got; if that TCP port is taken, both try again on a new port.
async fn bind_dns(
    addr: SocketAddr,
) -> anyhow::Result<(std::net::UdpSocket, tokio::net::TcpListener)> {
    let mut attempts = 0;
    loop {
        let udp = geo_router::dns::udp::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for dns-udp"))?;
        let udp_addr = udp.local_addr()?;
        match listener::bind_tcp("dns-tcp", udp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) if addr.port() == 0 && attempts < 20 => {
                attempts += 1;
                tracing::debug!(%error, "TCP port of the UDP one is taken; trying another");
            }
            Err(error) => return Err(error.into()),
        }
    }
}
