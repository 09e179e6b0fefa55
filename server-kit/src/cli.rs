//! The flags every server binary takes, flattened into each binary's own clap parser.

use std::path::PathBuf;

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
