//! The flags every server binary takes, flattened into each binary's own clap parser.

use std::path::PathBuf;
use std::process::ExitCode;

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

/// The end of every server's `main`: logs are set up first, then `run`; a failure is printed on
/// stderr as `<program>: <error and its causes>` and the exit code is 1.
pub fn main<E: std::fmt::Display>(program: &str, run: impl FnOnce() -> Result<(), E>) -> ExitCode {
    crate::telemetry::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
