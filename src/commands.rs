//! The operational commands (serve, --check, --prune, --list, --revoke).
//!
//! PLACEHOLDER: this stub only keeps the CLI wired end to end until the server and Lighthouse
//! client land; replace `run` wholesale, keeping its signature.

use crate::cli::Command;
use crate::config::Config;

/// Runs `command` and returns the process exit status (0 ok, 1 operational failure).
pub fn run(command: &Command, config: &Config) -> i32 {
    let _ = config;
    let name = match command {
        Command::Serve => "serve",
        Command::Check => "--check",
        Command::Prune { .. } => "--prune",
        Command::List => "--list",
        Command::Revoke { .. } => "--revoke",
        Command::CheckConfig | Command::Version | Command::Help => "this command",
    };
    eprintln!("knockd: {name} is not built yet");
    1
}
