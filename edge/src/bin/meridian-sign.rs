//! `meridian-sign`: prints a signed URL path for a prefix (see `edge::signed`), for players,
//! operators and tests.
//!
//!   meridian-sign --key-id 1 --prefix /vod/title/ --ttl 1h [--client 192.0.2.7]
//!
//! The secret comes from `MERIDIAN_SIGNING_SECRET` (base64url, as in the edge's
//! `[signed_urls]` keys), never from the command line, where other users could read it.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Prints /t/<token><prefix>: a signed URL path the edge accepts")]
struct Args {
    /// The key's id, as in the edge's `[signed_urls]` keys.
    #[arg(long)]
    key_id: u8,
    /// The path prefix the token opens (for example /vod/title/).
    #[arg(long)]
    prefix: String,
    /// How long the token is valid (for example 30s, 2h).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "expires")]
    ttl: Option<std::time::Duration>,
    /// Or when it stops being valid, in Unix seconds.
    #[arg(long)]
    expires: Option<u64>,
    /// Only this client address may use it.
    #[arg(long)]
    client: Option<std::net::IpAddr>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let Ok(secret) = std::env::var("MERIDIAN_SIGNING_SECRET") else {
        eprintln!("meridian-sign: set MERIDIAN_SIGNING_SECRET to the key's secret (base64url)");
        return std::process::ExitCode::from(2);
    };
    let key = match edge::signed::key_from_secret(&secret) {
        Ok(key) => key,
        Err(problem) => {
            eprintln!("meridian-sign: MERIDIAN_SIGNING_SECRET: {problem}");
            return std::process::ExitCode::from(2);
        }
    };
    if !args.prefix.starts_with('/') {
        eprintln!("meridian-sign: --prefix must start with /");
        return std::process::ExitCode::from(2);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let expires = args
        .expires
        .unwrap_or_else(|| now + args.ttl.map_or(3600, |t| t.as_secs()));
    let token = edge::signed::sign(&key, args.key_id, &args.prefix, expires, args.client);
    println!("/t/{token}{}", args.prefix);
    std::process::ExitCode::SUCCESS
}
