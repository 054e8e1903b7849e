//! Thin entry point: arguments, configuration, then one command. Exit status 0 ok,
//! 1 operational failure, 2 bad usage or configuration.

use std::collections::HashMap;
use std::process::ExitCode;

use knockd::cli::{self, Command};
use knockd::{config, ops};

fn main() -> ExitCode {
    ExitCode::from(run() as u8)
}

fn run() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match cli::parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("knockd: {e}");
            return 2;
        }
    };
    match &args.command {
        Command::Version => {
            println!("{}", cli::version_line());
            return 0;
        }
        Command::Help => {
            println!("{}", cli::USAGE);
            return 0;
        }
        // The client runs where there is no configuration (a router, a laptop).
        Command::Knock {
            url,
            label,
            key_file,
            every_secs,
            expect,
        } => return ops::knock_client(url, label, key_file, *every_secs, expect.as_deref()),
        _ => {}
    }

    // Non-UTF-8 variables are not ours (ours are all text) and are skipped, not fatal.
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_deref().and_then(|p| p.parent());
    // The clients file (and with it whether KNOCK_REFERER is required) matters to serving and
    // to the checks; the commands that manage the file must work while it is missing or broken,
    // and --prune/--list/--revoke must never be stopped by it.
    let read_clients = matches!(
        args.command,
        Command::Serve | Command::CheckConfig | Command::Check
    );
    let config = match config::load_with(args.config.as_deref(), &env, exe_dir, read_clients) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("knockd: configuration error");
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            return 2;
        }
    };

    if args.command == Command::CheckConfig {
        print!("{}", config.report());
        return 0;
    }
    // Printed here once so that no command has to remember to.
    for w in &config.warnings {
        eprintln!("knockd: warning: {w}");
    }
    ops::run(&args.command, &config)
}
