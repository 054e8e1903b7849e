//! Finding the configuration file, reading it, and turning file and environment into a
//! validated `Config`, every problem named at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::vars::{Checker, Vars};
use super::*;

/// Finds the config file, reads it and validates everything.
///
/// The file is `explicit` (`--config`), else `KNOCKD_CONFIG` from `env`, else `./.env`, else
/// `.env` in `exe_dir`; with none of them the configuration comes from `env` alone. A file named
/// by `--config` or `KNOCKD_CONFIG` must be readable. `env` overrides the file.
pub fn load(
    explicit: Option<&Path>,
    env: &HashMap<String, String>,
    exe_dir: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    load_with(explicit, env, exe_dir, true)
}

/// [`load`] for the commands that do not serve (`--add-client`, `--remove-client`,
/// `--list-clients`, `--prune`, …): with `read_clients` false the clients file is not read, so
/// neither a missing or broken file nor an unset KNOCK_REFERER stops them.
pub fn load_with(
    explicit: Option<&Path>,
    env: &HashMap<String, String>,
    exe_dir: Option<&Path>,
    read_clients: bool,
) -> Result<Config, ConfigErrors> {
    let mut looked_for: Vec<PathBuf> = Vec::new();
    let path = config_path(explicit, env, exe_dir, &mut looked_for);

    let mut errors = Vec::new();
    let mut pairs = Vec::new();
    let mut warnings = Vec::new();
    if let Some(path) = &path {
        pairs = read_pairs(path, env, &mut errors, &mut warnings);
    }

    let default_dir = clients_home(path.as_deref(), exe_dir);
    match from_pairs_in(&pairs, env, default_dir.as_deref(), read_clients) {
        Ok(mut config) if errors.is_empty() => {
            config.file = path.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
            warnings.append(&mut config.warnings);
            config.warnings = warnings;
            Ok(config)
        }
        Ok(_) => Err(ConfigErrors(errors)),
        Err(ConfigErrors(more)) if path.is_none() => {
            errors.push(no_file_error(&looked_for));
            // When the environment holds none of knockd's variables either, the "required"
            // errors that follow from it would only mislead.
            if variables().any(|v| env.contains_key(v)) {
                errors.extend(more);
            }
            Err(ConfigErrors(errors))
        }
        Err(ConfigErrors(more)) => {
            errors.extend(more);
            Err(ConfigErrors(errors))
        }
    }
}

/// The config file: `explicit`, else `KNOCKD_CONFIG`, else the first of `./.env` and `.env`
/// in `exe_dir` that exists (each pushed to `looked_for`). None: no file.
fn config_path(
    explicit: Option<&Path>,
    env: &HashMap<String, String>,
    exe_dir: Option<&Path>,
    looked_for: &mut Vec<PathBuf>,
) -> Option<PathBuf> {
    let named = explicit.map(Path::to_path_buf).or_else(|| {
        env.get("KNOCKD_CONFIG")
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from)
    });
    if named.is_some() {
        return named;
    }
    let candidates = std::iter::once(PathBuf::from(".env")).chain(exe_dir.map(|d| d.join(".env")));
    for c in candidates {
        looked_for.push(c.clone());
        // A candidate that exists but cannot be read is an error, not a silent skip:
        // the operator put it there and would otherwise run on defaults.
        match std::fs::metadata(&c) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            _ => return Some(c),
        }
    }
    None
}

/// The config file's variables; its problems go to `errors` (under the file's name), and a
/// SecretKey readable by others to `warnings`.
fn read_pairs(
    path: &Path,
    env: &HashMap<String, String>,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<String>,
) -> Vec<(String, String)> {
    let shown = path.display().to_string();
    match read_text(path) {
        Ok(text) => {
            let (p, file_errors) = envfile::parse_with_env(&text, env);
            errors.extend(file_errors.into_iter().map(|e| ConfigError {
                variable: shown.clone(),
                message: e.to_string(),
            }));
            if p.iter().any(|(k, _)| k == "TENCENT_CLOUD_SECRET_KEY") {
                if let Some(mode) = group_or_other_readable(path) {
                    warnings.push(format!(
                        "{shown} holds TENCENT_CLOUD_SECRET_KEY and is readable by group or \
                         others (mode {mode:03o}); run: chmod 600 {shown}"
                    ));
                }
            }
            p
        }
        Err(message) => {
            errors.push(ConfigError {
                variable: shown,
                message,
            });
            Vec::new()
        }
    }
}

/// The clients file's default home: beside the config file, else beside the binary.
fn clients_home(path: Option<&Path>, exe_dir: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(p) => Some(
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        ),
        None => exe_dir.map(Path::to_path_buf),
    }
}

/// Run from the wrong directory or without --config: the error that says so, first.
fn no_file_error(looked_for: &[PathBuf]) -> ConfigError {
    let cwd = std::env::current_dir().unwrap_or_default();
    let shown: Vec<String> = looked_for
        .iter()
        .map(|p| cwd.join(p).display().to_string())
        .collect();
    ConfigError {
        variable: String::new(),
        message: format!(
            "no configuration file found (looked for: {}): give one with --config FILE \
             or KNOCKD_CONFIG=FILE, or copy .env.sample to .env and fill it in",
            shown.join(", ")
        ),
    }
}

/// Largest config file read (a real one is a few KiB).
pub const MAX_FILE: u64 = 1024 * 1024;

/// The config file as text: a regular file (not a FIFO, which would block the start, nor a
/// device, which may never end) of at most MAX_FILE bytes, checked again while reading in case
/// it grows.
fn read_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the config file: {e}"))?;
    if meta.is_dir() {
        return Err("cannot read the config file: it is a directory".into());
    }
    if !meta.is_file() {
        return Err("cannot read the config file: not a regular file (a FIFO or a device?)".into());
    }
    if meta.len() > MAX_FILE {
        return Err(format!(
            "the config file is {} bytes; at most 1 MiB is read",
            meta.len()
        ));
    }
    // O_NONBLOCK (0o4000 on Linux): a path swapped for a FIFO after the check above must not
    // block the open; for a regular file the flag changes nothing. The open file is checked too.
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, 0o4000);
    let file = options
        .open(path)
        .map_err(|e| format!("cannot read the config file: {e}"))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err("cannot read the config file: not a regular file (a FIFO or a device?)".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the config file: {e}"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err("the config file is larger than 1 MiB".into());
    }
    String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..bad].iter().filter(|&&b| b == b'\n').count() + 1;
        format!("line {line}: not valid UTF-8 (save the file as UTF-8)")
    })
}

#[cfg(unix)]
pub(super) fn group_or_other_readable(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(not(unix))]
pub(super) fn group_or_other_readable(_path: &Path) -> Option<u32> {
    None
}

/// The name of every variable knockd reads, in report order.
pub fn variables() -> impl Iterator<Item = &'static str> {
    vars::VARS.iter().map(|v| v.name)
}

/// The pure core: the file's key/value pairs (later ones win) with `env` on top, validated.
/// `Config.file` is left `None`; `load` fills it in.
pub fn from_pairs(
    pairs: &[(String, String)],
    env: &HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    from_pairs_in(pairs, env, None, true)
}

/// [`from_pairs`] with the clients file's default directory and whether to read it.
fn from_pairs_in(
    pairs: &[(String, String)],
    env: &HashMap<String, String>,
    clients_dir: Option<&Path>,
    read_clients: bool,
) -> Result<Config, ConfigErrors> {
    let file: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let vars = Vars { file, env };
    let mut c = Checker::default();

    let mut unknown: Vec<&str> = Vec::new();
    for (k, _) in pairs {
        if !vars::is_known(k) && !unknown.contains(&k.as_str()) {
            unknown.push(k);
        }
    }
    for &k in &unknown {
        let hint = vars::nearest(k).map_or(String::new(), |n| format!("; did you mean {n}?"));
        c.warn(format!(
            "{k} in the config file is not a knockd variable and is ignored{hint}"
        ));
    }

    let knock = sections::knock(&vars, &mut c);
    let rules = sections::rules(&vars, &mut c);
    let cloud = sections::cloud(&vars, &mut c);
    let limits = sections::limits(&vars, &mut c);
    let notify = sections::notify(&vars, &mut c);
    let keys = sections::keys(
        &vars,
        &mut c,
        knock.referer.expose(),
        clients_dir,
        read_clients,
    );
    if let Some(u) = &keys.public_url {
        if u.path != knock.path {
            c.err(
                "KNOCK_PUBLIC_URL",
                format!(
                    "its path '{}' is not KNOCK_REQUEST_PATH '{}': every client \
                     --add-client prints would knock where knockd does not answer; make \
                     the two paths the same",
                    u.path, knock.path
                ),
            );
        }
    }
    if !c.errors.is_empty() {
        // A misspelt name is the likely cause of a "required" error: its warning would be
        // lost with the failed load, so it goes beside the error it explains.
        for k in unknown {
            let near = vars::nearest(k);
            let e = ConfigError {
                variable: k.to_string(),
                message: match near {
                    Some(n) => format!("not a knockd variable, so ignored: did you mean {n}?"),
                    None => "not a knockd variable, so ignored".into(),
                },
            };
            match c
                .errors
                .iter()
                .position(|x| Some(x.variable.as_str()) == near)
            {
                Some(i) => c.errors.insert(i + 1, e),
                None => c.errors.push(e),
            }
        }
        return Err(ConfigErrors(c.errors));
    }
    Ok(Config {
        file: None,
        cloud,
        knock,
        rules,
        limits,
        notify,
        keys,
        warnings: c.warnings,
    })
}
