//! Command-line arguments, parsed by hand: the set is small and fixed, and a parser crate would
//! cost more binary than the whole of this file.

use std::path::PathBuf;

use crate::keys::clients::Day;
use crate::keys::url::KnockUrl;

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `--knock URL --label LABEL --key-file FILE [--every DURATION] [--expect TEXT]
    /// [--ttl DURATION]`: the client; needs no configuration. `ttl_secs`: the rule lifetime
    /// to ask for (knockd caps it by the client's `ttl=` or RULE_TTL).
    Knock {
        url: KnockUrl,
        label: String,
        key_file: PathBuf,
        every_secs: Option<u64>,
        expect: Option<String>,
        ttl_secs: Option<u64>,
    },
    Version,
    Help,
    /// Every other command: it runs with the loaded configuration.
    Run(Op),
}

/// A command that runs with the configuration (`ops::run`); without one, knockd serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Serve,
    CheckConfig,
    Check,
    Prune {
        dry_run: bool,
    },
    List,
    Revoke {
        target: String,
        dry_run: bool,
    },
    NotifyTest,
    /// `--print-cam-policy [--uin ACCOUNT]`: the account is digits only.
    PrintCamPolicy {
        uin: Option<String>,
    },
    /// `--add-client LABEL [--ttl 12h] [--expires 2027-06-30]`.
    AddClient {
        label: String,
        ttl_secs: Option<u64>,
        /// `YYYY-MM-DD`, checked.
        expires: Option<Day>,
    },
    /// `--add-host LABEL NAME [--ttl 12h]`: a host line; NAME is checked.
    AddHost {
        label: String,
        name: String,
        ttl_secs: Option<u64>,
    },
    /// `--remove-client LABEL [--keep-rules]`.
    RemoveClient {
        label: String,
        keep_rules: bool,
    },
    ListClients,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub command: Command,
}

pub const USAGE: &str = "\
Usage: knockd [--config FILE] [COMMAND]

Port-knocking door for Tencent Cloud Lighthouse firewalls.

Commands (at most one; without one, knockd serves knocks):
  --check-config        validate the configuration offline and print it (secrets masked)
  --check               validate, then check credentials, instances, quota and clock (read-only)
  --prune [--dry-run]   remove expired firewall rules that knockd made
  --list                list the firewall rules that knockd made
  --revoke IP|CIDR|LABEL [--dry-run]
                        remove knockd's rules for an address, a network or a client label
  --print-cam-policy [--uin ACCOUNT]
                        print the least-privilege CAM policy for the configured instances
  --notify-test         send one test notification (NOTIFY_URL, NOTIFY_COMMAND) and report
  --add-client LABEL [--ttl 12h] [--expires 2027-06-30]
                        add a client key to the clients file and print ready-to-run clients
  --add-host LABEL NAME [--ttl 12h]
                        add a host line: rules follow the addresses of the name NAME
  --remove-client LABEL [--keep-rules]
                        remove a client's key and (unless --keep-rules) its firewall rules
  --list-clients        list the clients: label, rule lifetime, expiry, key fingerprint
  --knock URL --label LABEL --key-file FILE [--every DURATION] [--expect TEXT] [--ttl 2h]
                        knock as a client (challenge-response); no configuration needed;
                        --ttl asks for a shorter rule lifetime (at least 2m)
  --version, -V         print the version
  --help, -h            print this help

Options:
  --config FILE         read FILE instead of $KNOCKD_CONFIG, ./.env or .env beside the binary

The process environment overrides the file. Exit status: 0 success, 1 operational failure,
2 bad usage or configuration.";

/// The version line: `knockd 0.1.0 (commit abc1234, x86_64-unknown-linux-musl)`.
pub fn version_line() -> String {
    format!(
        "knockd {} (commit {}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("KNOCKD_COMMIT"),
        env!("KNOCKD_TARGET")
    )
}

/// Parses the arguments after the program name. Errors are one line, for `knockd: {error}`.
pub fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut opts = Opts::default();
    let mut command: Option<Command> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut words = Words {
            flag,
            inline,
            it: &mut it,
        };
        if opts.option(&mut words)? {
            continue;
        }
        let next = command_of(arg, &mut words)?;
        let takes_value = matches!(
            next,
            Command::Run(Op::Revoke { .. })
                | Command::Run(Op::AddClient { .. })
                | Command::Run(Op::AddHost { .. })
                | Command::Run(Op::RemoveClient { .. })
                | Command::Knock { .. }
        );
        if words.inline.is_some() && !takes_value {
            return Err(format!("{flag} takes no value"));
        }
        if let Some(prev) = &command {
            return Err(format!(
                "{} and {} cannot be combined",
                flag_of(prev),
                flag_of(&next)
            ));
        }
        command = Some(next);
    }
    let config = opts.config.take();
    let command = opts.finish(command.unwrap_or(Command::Run(Op::Serve)))?;
    Ok(Args { config, command })
}

/// One flag and the arguments after it: where its value comes from.
struct Words<'a, 'b> {
    flag: &'a str,
    /// The value given as `--flag=value`.
    inline: Option<String>,
    it: &'a mut std::slice::Iter<'b, String>,
}

impl Words<'_, '_> {
    /// The flag's value (`--flag=value` or the next argument), never empty.
    fn value(&mut self, what: &str) -> Result<String, String> {
        let v = match self.inline.clone() {
            Some(v) => v,
            // A following flag is not a value: `--revoke --dry-run` forgot the target.
            None => match self.it.next() {
                Some(v) if !v.starts_with('-') || v == "-" => v.clone(),
                _ => return Err(format!("{} needs {what}", self.flag)),
            },
        };
        if v.is_empty() {
            return Err(format!("{} needs {what}", self.flag));
        }
        Ok(v)
    }

    /// A flag without a value.
    fn bare(&self) -> Result<(), String> {
        match self.inline {
            Some(_) => Err(format!("{} takes no value", self.flag)),
            None => Ok(()),
        }
    }
}

/// The options, collected in any order and put into their command at the end.
#[derive(Default)]
struct Opts {
    config: Option<PathBuf>,
    dry_run: bool,
    uin: Option<String>,
    key: KeyOpts,
}

impl Opts {
    /// Takes `w`'s flag if it is an option (true), else leaves it to `command_of` (false).
    fn option(&mut self, w: &mut Words<'_, '_>) -> Result<bool, String> {
        let flag = w.flag;
        let o = &mut self.key;
        match flag {
            "--config" => once(&mut self.config, PathBuf::from(w.value("a file")?), flag)?,
            "--dry-run" => {
                w.bare()?;
                self.dry_run = true;
            }
            "--uin" => {
                let v = w.value("an account ID (UIN)")?;
                if self.uin.is_none() && (!v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 20) {
                    return Err(format!(
                        "--uin: '{v}' is not an account ID (UIN): digits only"
                    ));
                }
                once(&mut self.uin, v, flag)?;
            }
            "--ttl" => {
                let v = w.value("a duration like 12h")?;
                let secs = crate::keys::clients::parse_rule_ttl(&v)
                    .map_err(|e| format!("--ttl: '{v}' {e}"))?;
                once(&mut o.ttl_secs, secs, flag)?;
            }
            "--expires" => {
                let v = w.value("a day like 2027-06-30")?;
                let day = crate::keys::clients::parse_expires(&v)
                    .map_err(|e| format!("--expires: {e}"))?;
                once(&mut o.expires, day, flag)?;
            }
            "--keep-rules" => {
                w.bare()?;
                o.keep_rules = true;
            }
            "--label" => once(&mut o.label, label(w.value("a label")?, flag)?, flag)?,
            "--key-file" => once(&mut o.key_file, PathBuf::from(w.value("a file")?), flag)?,
            "--every" => {
                let v = w.value("a duration like 10m")?;
                let secs = crate::keys::clients::parse_ttl(&v)
                    .map_err(|e| format!("--every: '{v}' {e}"))?;
                once(&mut o.every_secs, secs, flag)?;
            }
            "--expect" => once(&mut o.expect, w.value("the success text")?, flag)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Puts `--uin`, `--dry-run` and the client options into their command; an option
    /// without its command is an error.
    fn finish(self, command: Command) -> Result<Command, String> {
        let command = match (command, self.uin) {
            (Command::Run(Op::PrintCamPolicy { .. }), uin) => {
                Command::Run(Op::PrintCamPolicy { uin })
            }
            (_, Some(_)) => return Err("--uin only goes with --print-cam-policy".into()),
            (c, None) => c,
        };
        let command = match (command, self.dry_run) {
            (Command::Run(Op::Prune { .. }), d) => Command::Run(Op::Prune { dry_run: d }),
            (Command::Run(Op::Revoke { target, .. }), d) => {
                Command::Run(Op::Revoke { target, dry_run: d })
            }
            (_, true) => return Err("--dry-run only goes with --prune or --revoke".into()),
            (c, false) => c,
        };
        with_key_opts(command, self.key)
    }
}

/// The command `arg` (with its flag and value in `w`) names.
fn command_of(arg: &str, w: &mut Words<'_, '_>) -> Result<Command, String> {
    let flag = w.flag;
    Ok(match flag {
        "--add-client" => Command::Run(Op::AddClient {
            label: label(w.value("a label")?, flag)?,
            ttl_secs: None,
            expires: None,
        }),
        "--add-host" => add_host(w)?,
        "--remove-client" => Command::Run(Op::RemoveClient {
            label: label(w.value("a label")?, flag)?,
            keep_rules: false,
        }),
        "--list-clients" => Command::Run(Op::ListClients),
        "--knock" => Command::Knock {
            url: KnockUrl::parse(&w.value("the knock URL")?)
                .map_err(|e| format!("--knock: {e}"))?,
            label: String::new(),
            key_file: PathBuf::new(),
            every_secs: None,
            expect: None,
            ttl_secs: None,
        },
        "--print-cam-policy" => Command::Run(Op::PrintCamPolicy { uin: None }),
        "--check-config" => Command::Run(Op::CheckConfig),
        "--check" => Command::Run(Op::Check),
        "--prune" => Command::Run(Op::Prune { dry_run: false }),
        "--list" => Command::Run(Op::List),
        "--revoke" => Command::Run(Op::Revoke {
            target: w.value("an IP address, a CIDR block or a label")?,
            dry_run: false,
        }),
        "--notify-test" => Command::Run(Op::NotifyTest),
        "--version" | "-V" => Command::Version,
        "--help" | "-h" => Command::Help,
        _ if arg.starts_with('-') => return Err(format!("unknown option '{arg}' (see --help)")),
        _ => return Err(format!("unexpected argument '{arg}' (see --help)")),
    })
}

/// `--add-host LABEL NAME`: two values.
fn add_host(w: &mut Words<'_, '_>) -> Result<Command, String> {
    let l = label(w.value("a label and a host name")?, w.flag)?;
    let name = match w.it.next() {
        Some(n) if crate::keys::hosts::is_host_name(n) => n.clone(),
        Some(n) => {
            let why = crate::keys::clients::ClientsError::HostName { line: 0 };
            return Err(format!(
                "--add-host: '{}' is not a host name: {why}",
                n.escape_debug()
            ));
        }
        None => return Err("--add-host needs a label and a host name".into()),
    };
    Ok(Command::Run(Op::AddHost {
        label: l,
        name,
        ttl_secs: None,
    }))
}

/// The options of the client commands, collected in any order.
#[derive(Default)]
struct KeyOpts {
    ttl_secs: Option<u64>,
    expires: Option<Day>,
    keep_rules: bool,
    label: Option<String>,
    key_file: Option<PathBuf>,
    every_secs: Option<u64>,
    expect: Option<String>,
}

fn once<T>(slot: &mut Option<T>, v: T, flag: &str) -> Result<(), String> {
    if slot.replace(v).is_some() {
        return Err(format!("{flag} given twice"));
    }
    Ok(())
}

fn label(v: String, flag: &str) -> Result<String, String> {
    if crate::keys::clients::is_label(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{flag}: '{v}' is not a label: 1 to {} characters of A-Z a-z 0-9 _ -",
            crate::keys::clients::MAX_LABEL
        ))
    }
}

/// Puts the client options into their command; an option without its command is an error.
fn with_key_opts(command: Command, o: KeyOpts) -> Result<Command, String> {
    let command = match command {
        Command::Run(Op::AddClient { label, .. }) => Command::Run(Op::AddClient {
            label,
            ttl_secs: o.ttl_secs,
            expires: o.expires,
        }),
        Command::Run(Op::AddHost { label, name, .. }) => Command::Run(Op::AddHost {
            label,
            name,
            ttl_secs: o.ttl_secs,
        }),
        Command::Run(Op::RemoveClient { label, .. }) => Command::Run(Op::RemoveClient {
            label,
            keep_rules: o.keep_rules,
        }),
        Command::Knock { url, .. } => Command::Knock {
            url,
            label: o.label.clone().ok_or("--knock needs --label LABEL")?,
            key_file: o.key_file.clone().ok_or("--knock needs --key-file FILE")?,
            every_secs: o.every_secs,
            expect: o.expect.clone(),
            ttl_secs: o.ttl_secs,
        },
        c => c,
    };
    let host = matches!(command, Command::Run(Op::AddHost { .. }));
    let (add, remove, knock) = (
        matches!(command, Command::Run(Op::AddClient { .. })),
        matches!(command, Command::Run(Op::RemoveClient { .. })),
        matches!(command, Command::Knock { .. }),
    );
    for (given, flag, ok, with) in [
        (
            o.ttl_secs.is_some(),
            "--ttl",
            add || host || knock,
            "--add-client, --add-host or --knock",
        ),
        (o.expires.is_some(), "--expires", add, "--add-client"),
        (o.keep_rules, "--keep-rules", remove, "--remove-client"),
        (o.label.is_some(), "--label", knock, "--knock"),
        (o.key_file.is_some(), "--key-file", knock, "--knock"),
        (o.every_secs.is_some(), "--every", knock, "--knock"),
        (o.expect.is_some(), "--expect", knock, "--knock"),
    ] {
        if given && !ok {
            return Err(format!("{flag} only goes with {with}"));
        }
    }
    Ok(command)
}

fn flag_of(c: &Command) -> &'static str {
    match c {
        Command::Run(Op::Serve) => "serve",
        Command::Run(Op::CheckConfig) => "--check-config",
        Command::Run(Op::Check) => "--check",
        Command::Run(Op::Prune { .. }) => "--prune",
        Command::Run(Op::List) => "--list",
        Command::Run(Op::Revoke { .. }) => "--revoke",
        Command::Run(Op::PrintCamPolicy { .. }) => "--print-cam-policy",
        Command::Run(Op::NotifyTest) => "--notify-test",
        Command::Run(Op::AddClient { .. }) => "--add-client",
        Command::Run(Op::AddHost { .. }) => "--add-host",
        Command::Run(Op::RemoveClient { .. }) => "--remove-client",
        Command::Run(Op::ListClients) => "--list-clients",
        Command::Knock { .. } => "--knock",
        Command::Version => "--version",
        Command::Help => "--help",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_args(&v)
    }

    fn cmd(args: &[&str]) -> Command {
        parse(args).expect("valid args").command
    }

    #[test]
    fn no_arguments_serve() {
        assert_eq!(
            parse(&[]),
            Ok(Args {
                config: None,
                command: Command::Run(Op::Serve)
            })
        );
    }

    #[test]
    fn each_command() {
        assert_eq!(cmd(&["--check-config"]), Command::Run(Op::CheckConfig));
        assert_eq!(cmd(&["--check"]), Command::Run(Op::Check));
        assert_eq!(
            cmd(&["--prune"]),
            Command::Run(Op::Prune { dry_run: false })
        );
        assert_eq!(cmd(&["--list"]), Command::Run(Op::List));
        assert_eq!(cmd(&["--notify-test"]), Command::Run(Op::NotifyTest));
        assert_eq!(cmd(&["--version"]), Command::Version);
        assert_eq!(cmd(&["-V"]), Command::Version);
        assert_eq!(cmd(&["--help"]), Command::Help);
        assert_eq!(cmd(&["-h"]), Command::Help);
    }

    #[test]
    fn config_both_forms() {
        for args in [
            &["--config", "/etc/knockd.env", "--prune"][..],
            &["--prune", "--config=/etc/knockd.env"][..],
        ] {
            let a = parse(args).expect("valid");
            assert_eq!(a.config, Some(PathBuf::from("/etc/knockd.env")));
            assert_eq!(a.command, Command::Run(Op::Prune { dry_run: false }));
        }
        assert!(parse(&["--config"]).is_err());
        assert!(parse(&["--config="]).is_err());
        assert!(parse(&["--config", "--prune"]).is_err());
        assert!(parse(&["--config", "a", "--config", "b"]).is_err());
    }

    #[test]
    fn dry_run_only_with_prune_or_revoke() {
        assert_eq!(
            cmd(&["--dry-run", "--prune"]),
            Command::Run(Op::Prune { dry_run: true })
        );
        assert_eq!(
            cmd(&["--prune", "--dry-run"]),
            Command::Run(Op::Prune { dry_run: true })
        );
        assert_eq!(
            cmd(&["--revoke", "203.0.113.9", "--dry-run"]),
            Command::Run(Op::Revoke {
                target: "203.0.113.9".into(),
                dry_run: true
            })
        );
        assert_eq!(
            cmd(&["--revoke=Office_01"]),
            Command::Run(Op::Revoke {
                target: "Office_01".into(),
                dry_run: false
            })
        );
        assert!(parse(&["--dry-run"]).is_err());
        assert!(parse(&["--list", "--dry-run"]).is_err());
        assert!(parse(&["--dry-run=yes", "--prune"]).is_err());
    }

    #[test]
    fn print_cam_policy_with_or_without_an_account() {
        assert_eq!(
            cmd(&["--print-cam-policy"]),
            Command::Run(Op::PrintCamPolicy { uin: None })
        );
        for args in [
            &["--print-cam-policy", "--uin", "100000000001"][..],
            &["--uin=100000000001", "--print-cam-policy"][..],
        ] {
            assert_eq!(
                cmd(args),
                Command::Run(Op::PrintCamPolicy {
                    uin: Some("100000000001".into())
                })
            );
        }
        for bad in [
            &["--print-cam-policy", "--uin", "12ab"][..],
            &["--print-cam-policy", "--uin", "-1"][..],
            &["--print-cam-policy", "--uin"][..],
            &["--print-cam-policy", "--uin="][..],
            &["--print-cam-policy", "--uin", "1", "--uin", "2"][..],
            &["--uin", "100000000001"][..],
            &["--check", "--uin", "100000000001"][..],
            &["--print-cam-policy=x"][..],
            &["--print-cam-policy", "--dry-run"][..],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn client_commands() {
        assert_eq!(
            cmd(&[
                "--add-client",
                "office",
                "--ttl",
                "12h",
                "--expires=2027-06-30"
            ]),
            Command::Run(Op::AddClient {
                label: "office".into(),
                ttl_secs: Some(12 * 3600),
                expires: Day::parse("2027-06-30")
            })
        );
        assert_eq!(
            cmd(&["--keep-rules", "--remove-client=office"]),
            Command::Run(Op::RemoveClient {
                label: "office".into(),
                keep_rules: true
            })
        );
        assert_eq!(cmd(&["--list-clients"]), Command::Run(Op::ListClients));
        assert_eq!(
            cmd(&[
                "--knock",
                "http://h:8080/favico.ico",
                "--label",
                "office",
                "--key-file",
                "office.key",
                "--every",
                "10m",
                "--expect",
                "ok"
            ]),
            Command::Knock {
                url: KnockUrl::parse("http://h:8080/favico.ico").unwrap(),
                label: "office".into(),
                key_file: "office.key".into(),
                every_secs: Some(600),
                expect: Some("ok".into()),
                ttl_secs: None,
            }
        );
        assert_eq!(
            cmd(&[
                "--knock",
                "http://h:8080/favico.ico",
                "--ttl",
                "10m",
                "--label",
                "office",
                "--key-file",
                "office.key",
            ]),
            Command::Knock {
                url: KnockUrl::parse("http://h:8080/favico.ico").unwrap(),
                label: "office".into(),
                key_file: "office.key".into(),
                every_secs: None,
                expect: None,
                ttl_secs: Some(600),
            }
        );
        for bad in [
            &["--add-client"][..],
            &["--add-client", "a b"][..],
            &["--add-client", "x", "--ttl", "12"][..],
            &["--add-client", "x", "--expires", "2027-02-30"][..],
            &["--add-client", "x", "--keep-rules"][..],
            &["--remove-client", "x", "--ttl", "1h"][..],
            &["--list-clients", "--label", "x"][..],
            &["--knock", "http://h/k", "--label", "x"][..],
            &["--knock", "http://h/k", "--key-file", "f"][..],
            &[
                "--knock",
                "http://h/k",
                "--label",
                "x",
                "--label",
                "y",
                "--key-file",
                "f",
            ][..],
            &["--check", "--every", "1m"][..],
            &["--check", "--ttl", "1h"][..],
            // Under the 2m floor: refused here, before any knock.
            &[
                "--knock",
                "http://h/k",
                "--label",
                "x",
                "--key-file",
                "f",
                "--ttl",
                "1m",
            ][..],
            &["--list-clients=1"][..],
        ] {
            let e = parse(bad).expect_err(&format!("{bad:?}"));
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn revoke_needs_a_target() {
        assert!(parse(&["--revoke"]).is_err());
        assert!(parse(&["--revoke", "--dry-run"]).is_err());
        assert!(parse(&["--revoke="]).is_err());
    }

    #[test]
    fn errors_are_one_line() {
        for args in [
            &["--bogus"][..],
            &["serve"][..],
            &["--prune", "--list"][..],
            &["--check", "--check"][..],
            &["--version", "--help"][..],
            &["--list=1"][..],
            &["-x"][..],
        ] {
            let e = parse(args).expect_err("must fail");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(parse(&["--bogus"]).unwrap_err().contains("--bogus"));
        assert!(parse(&["--prune", "--list"])
            .unwrap_err()
            .contains("cannot be combined"));
    }

    #[test]
    fn version_line_shape() {
        let v = version_line();
        assert!(v.starts_with(&format!("knockd {} (commit ", env!("CARGO_PKG_VERSION"))));
        assert!(v.ends_with(')'));
    }
}
