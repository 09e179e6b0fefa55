//! The flags every server binary takes, flattened into each binary's own clap parser, and the
//! parts of `main` every server shares: the exit code, `--check-config`, the runtime and the
//! signal handlers.
//!
//! A server's `main.rs` is then: [`main`] with its `run`; in `run`, [`CommonArgs::load`], the
//! flags laid over the file, its own validation, [`CommonArgs::check`], and [`serve`] with a
//! future that binds the listeners and calls the library's `run`.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Shutdown};

/// `--config FILE` and `--check-config`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// TOML configuration file. Unknown keys are rejected. Flags given on the command line
    /// override the values in it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate the configuration (file plus flags), print it, and exit: 0 when valid.
    #[arg(long)]
    pub check_config: bool,
}

impl CommonArgs {
    /// Loads the `--config` file, or the defaults without one, with the folder that relative
    /// paths inside it are resolved against (see [`crate::config::load_or_default`]).
    pub fn load<T: DeserializeOwned + Default>(&self) -> Result<(T, PathBuf), Error> {
        crate::config::load_or_default(self.config.as_deref())
    }

    /// Under `--check-config`, prints `config ok` and the checked config as TOML on stdout and
    /// returns true: `main` then exits 0 without starting. Otherwise returns false. Secrets
    /// (see [`redact`]) are printed as `<redacted>`: the output goes to terminals and logs.
    pub fn check(&self, config: &impl Serialize) -> Result<bool, Error> {
        if self.check_config {
            let mut value = toml::Value::try_from(config).map_err(Error::PrintConfig)?;
            redact(&mut value);
            let text = toml::to_string(&value).map_err(Error::PrintConfig)?;
            println!("config ok\n{text}");
        }
        Ok(self.check_config)
    }
}

/// Replaces the value of every key whose name says it holds a secret (`token` or `secret` in
/// it: `admin_token`, `peer_secret`, a signing key's `secret`), at any depth, by `<redacted>`.
pub fn redact(value: &mut toml::Value) {
    match value {
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let key = key.to_ascii_lowercase();
                if (key.contains("token") || key.contains("secret")) && item.is_str() {
                    *item = toml::Value::String("<redacted>".into());
                } else {
                    redact(item);
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The whole of every server's `main`: logs are set up first, then the flags are parsed and
/// `run` is called; a failure is printed on stderr as `<program>: <error and its causes>` and the
/// exit code is 1.
pub fn main<A: clap::Parser, E: std::fmt::Display>(
    program: &str,
    run: impl FnOnce(A) -> Result<(), E>,
) -> ExitCode {
    crate::telemetry::init();
    match run(A::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the tokio runtime, installs the signal handlers ([`Shutdown::on_signals`]) and runs
/// `server` with the [`Shutdown`] they drive until it returns.
pub fn serve<E, F, Fut>(server: F) -> Result<(), E>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<Error>,
{
    raise_file_limit();
    let runtime = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
    runtime.block_on(async {
        let shutdown = Shutdown::new();
        shutdown.on_signals()?;
        server(shutdown).await
    })
}

/// Raises the soft limit of open files to the hard one: a server holds one per connection (an
/// edge also one per sealed body, see `zero_copy`), and the common soft default of 1,024 is far
/// below what a busy one needs. A failure leaves the limit as it was.
fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(%error, soft, hard, "could not raise the open file limit");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth_and_the_rest_is_kept() {
        let mut value: toml::Value = toml::from_str(
            "name = \"e1\"\nadmin_token = \"t0p\"\npeer_secret = \"s3c\"\n[signed_urls]\nkeys = [{ id = 1, secret = \"k3y\" }]\n",
        )
        .expect("toml");
        redact(&mut value);
        let text = toml::to_string(&value).expect("print");
        for secret in ["t0p", "s3c", "k3y"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(
            text.contains("name = \"e1\"") && text.contains("id = 1"),
            "{text}"
        );
        assert_eq!(text.matches("<redacted>").count(), 3, "{text}");
    }
}
