//! Dispatch of the commands that need a validated configuration.

use crate::cli::Command;
use crate::config::Config;
use crate::{ops, server};

/// Runs `command` and returns the process exit status (0 ok, 1 operational failure).
pub fn run(command: &Command, config: &Config) -> i32 {
    match command {
        Command::Serve => server::serve(config),
        Command::Check => ops::check(config),
        Command::Prune { dry_run } => ops::prune(config, *dry_run),
        Command::List => ops::list(config),
        Command::Revoke { target, dry_run } => ops::revoke(config, target, *dry_run),
        // Handled in main before a configuration is loaded or printed there.
        Command::CheckConfig | Command::Version | Command::Help => 0,
    }
}
