//! The `edge` binary: parse flags, load config, bind, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use edge::config::ByteSize;
use edge::{EdgeConfig, Listeners};
use server_kit::{cli::CommonArgs, config, listener};

/// Meridian edge: the caching reverse proxy for video.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Address for viewers' plain HTTP; repeat for several (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Vec<SocketAddr>,
    /// Address for viewers' HTTPS; repeat for several (overrides `tls_listen`).
    #[arg(long, value_name = "ADDR")]
    tls_listen: Vec<SocketAddr>,
    /// PEM certificate chain for HTTPS (overrides `tls_cert`).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (overrides `tls_key`).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Address of the admin surface (overrides `admin`).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Origin base URL; repeat for failover order (overrides `origins`).
    #[arg(long = "origin", value_name = "URL")]
    origins: Vec<String>,
    /// Store file (overrides `store`).
    #[arg(long, value_name = "PATH")]
    store: Option<PathBuf>,
    /// Store size, like 512MiB (overrides `capacity`).
    #[arg(long, value_name = "SIZE")]
    capacity: Option<ByteSize>,
    /// This edge's name (overrides `name`).
    #[arg(long)]
    name: Option<String>,
    /// This edge's region (overrides `region`).
    #[arg(long)]
    region: Option<String>,
    /// Segments to prefetch after each segment request (overrides `prefetch`).
    #[arg(long, value_name = "N")]
    prefetch: Option<usize>,
}

fn main() -> ExitCode {
    server_kit::cli::main("edge", run)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (mut config, base) = cli.common.load::<EdgeConfig>()?;
    config.store = config::resolve(&base, &config.store);
    config.tls_cert = config.tls_cert.map(|p| config::resolve(&base, &p));
    config.tls_key = config.tls_key.map(|p| config::resolve(&base, &p));
    config.origin_ca_file = config.origin_ca_file.map(|p| config::resolve(&base, &p));
    if !cli.listen.is_empty() || !cli.tls_listen.is_empty() {
        config.listen = cli.listen;
        config.tls_listen = cli.tls_listen;
    }
    if !cli.origins.is_empty() {
        config.origins = cli.origins;
    }
    config.tls_cert = cli.tls_cert.or(config.tls_cert);
    config.tls_key = cli.tls_key.or(config.tls_key);
    config.admin = cli.admin.unwrap_or(config.admin);
    config.store = cli.store.unwrap_or(config.store);
    config.capacity = cli.capacity.unwrap_or(config.capacity);
    config.name = cli.name.unwrap_or(config.name);
    config.region = cli.region.unwrap_or(config.region);
    config.prefetch = cli.prefetch.unwrap_or(config.prefetch);
    config.validate()?;
    if cli.common.check(&config)? {
        return Ok(());
    }
    let store = edge::open_store(&config)?;
    server_kit::cli::serve(|shutdown| async move {
        let mut http = Vec::new();
        // Announced by `edge::run` once the store is ready.
        for addr in &config.listen {
            http.push(listener::bind_tcp("http", *addr).await?);
        }
        let mut https = Vec::new();
        for addr in &config.tls_listen {
            https.push(listener::bind_tcp("https", *addr).await?);
        }
        let admin = listener::bind_http("admin", config.admin).await?;
        edge::run(Listeners { http, https, admin }, config, store, shutdown).await?;
        Ok(())
    })
}
