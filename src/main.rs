//! Thin entry point: arguments, configuration, then one command. Exit status 0 ok,
//! 1 operational failure, 2 bad usage or configuration.

// The release build aborts on a panic, so outside tests nothing may unwrap, expect or panic:
// input from the network, a file or the environment gets an error instead (`make lint`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
// A function is read whole: at most 80 lines outside tests (clippy.toml; `make lint`).
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use std::collections::HashMap;
use std::process::ExitCode;

use knockd::cli::{self, Command, Op};
use knockd::exit::Exit;
use knockd::knock::hygiene;
use knockd::{client, config, ops, stdout};

fn main() -> ExitCode {
    ExitCode::from(run().code())
}

fn run() -> Exit {
    let args = match utf8_args() {
        Ok(a) => a,
        Err(exit) => return exit,
    };
    let args = match cli::parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln_safe(&format!("knockd: {e}"));
            return Exit::Usage;
        }
    };
    let op = match args.command {
        Command::Run(op) => op,
        Command::Version => {
            stdout::print(&cli::version_line());
            return Exit::Success;
        }
        Command::Help => {
            stdout::print(cli::USAGE);
            return Exit::Success;
        }
        // The client needs no configuration: it runs where there is none (a router, a laptop).
        Command::Knock {
            url,
            label,
            key_file,
            every_secs,
            expect,
            ttl_secs,
        } => {
            let expect = expect.as_deref();
            return client::run(&url, &label, &key_file, every_secs, expect, ttl_secs);
        }
    };
    // Every command below reads the SecretKey: no core file may ever hold it.
    if let Err(e) = hygiene::no_core_dumps() {
        eprintln_safe(&format!("knockd: warning: {e}"));
    }
    let env = match utf8_env() {
        Ok(env) => env,
        Err(exit) => return exit,
    };
    let config = match load_config(args.config.as_deref(), &op, &env) {
        Ok(c) => c,
        Err(exit) => return exit,
    };

    // Printed here once so that no command has to remember to (the check prints them in its
    // report).
    if op != Op::CheckConfig {
        for w in &config.warnings {
            eprintln_safe(&format!("knockd: warning: {w}"));
        }
    }
    ops::run(&op, &config)
}

/// The arguments as text. `args()` would panic on an argument that is not UTF-8; that is a
/// usage error.
fn utf8_args() -> Result<Vec<String>, Exit> {
    let mut args = Vec::new();
    for (i, a) in std::env::args_os().skip(1).enumerate() {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                eprintln_safe(&format!(
                    "knockd: argument {} ({}) is not valid UTF-8 (see --help)",
                    i + 1,
                    a.to_string_lossy()
                ));
                return Err(Exit::Usage);
            }
        }
    }
    Ok(args)
}

/// The environment as text. knockd's own variables must be text: one that is not is an error
/// naming it, never silently replaced by the file's value. Other non-UTF-8 variables are not
/// ours: skipped.
fn utf8_env() -> Result<HashMap<String, String>, Exit> {
    let mut env: HashMap<String, String> = HashMap::new();
    let mut bad = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Ok(k) = k.into_string() else { continue };
        match v.into_string() {
            Ok(v) => {
                env.insert(k, v);
            }
            Err(_) if k == "KNOCKD_CONFIG" || config::variables().any(|n| n == k) => bad.push(k),
            Err(_) => {}
        }
    }
    if !bad.is_empty() {
        // A few names: an insertion sort, instead of a copy of std's sort for strings (2 KB).
        for i in 1..bad.len() {
            let mut j = i;
            while j > 0 && bad[j - 1] > bad[j] {
                bad.swap(j - 1, j);
                j -= 1;
            }
        }
        eprintln_safe("knockd: configuration error");
        for k in bad {
            eprintln_safe(&format!(
                "  {k}: the environment value is not valid UTF-8 (value not shown)"
            ));
        }
        return Err(Exit::Usage);
    }
    Ok(env)
}

/// The configuration for `op`, its errors printed.
fn load_config(
    file: Option<&std::path::Path>,
    op: &Op,
    env: &HashMap<String, String>,
) -> Result<config::Config, Exit> {
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_deref().and_then(|p| p.parent());
    // The clients file (and with it whether KNOCK_REFERER is required) matters to serving and
    // to the checks; the commands that manage the file must work while it is missing or broken,
    // and --prune/--list/--revoke must never be stopped by it.
    let read_clients = matches!(op, Op::Serve | Op::CheckConfig | Op::Check);
    match config::load_with(file, env, exe_dir, read_clients) {
        Ok(c) => Ok(c),
        Err(errors) => {
            eprintln_safe("knockd: configuration error");
            for e in &errors.0 {
                eprintln_safe(&format!("  {e}"));
            }
            Err(Exit::Usage)
        }
    }
}

/// `eprintln!` without its panic on a closed stderr.
fn eprintln_safe(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
