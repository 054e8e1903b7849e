//! Where the API key pair (and token) come from: knockd's own variables, then the names other
//! Tencent Cloud tools read from the environment, then the profile file the official SDKs read
//! (docs/lighthouse-api.md#credentials). The first source holding any part of a pair is the
//! source of the whole pair: a pair split over two sources is an error, never a mix.

use std::path::{Path, PathBuf};

use super::vars::{Checker, Vars};

const ID: &str = "the API SecretId (AKID…)";
const KEY: &str = "the API SecretKey";

/// Largest profile file read (a real one is a few lines).
const MAX_PROFILE: u64 = 64 * 1024;

/// The credentials found, and where each came from, said without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) secret_id: String,
    pub(crate) secret_key: String,
    pub(crate) token: Option<String>,
    /// `TENCENT_CLOUD_SECRET_ID (config file)`, `TENCENTCLOUD_SECRET_ID (environment)`,
    /// `secret_id in /root/.tencentcloud/credentials [default]`; empty when not found.
    pub(crate) from: [String; 3],
}

/// One credential as a source holds it.
#[derive(Debug, Clone, Default)]
struct Part {
    /// What errors about it are filed under: the variable, or the file.
    var: String,
    /// Where it is, for people: `TENCENTCLOUD_SECRET_ID (environment)`.
    from: String,
    value: String,
}

/// One source's SecretId, SecretKey and token.
#[derive(Debug, Default)]
struct Source {
    id: Option<Part>,
    key: Option<Part>,
    token: Option<Part>,
    /// Where this source's SecretId and SecretKey go, and what they are, for a "required"
    /// error about the half that is missing.
    halves: [(String, String); 2],
}

impl Source {
    fn any(&self) -> bool {
        self.id.is_some() || self.key.is_some() || self.token.is_some()
    }
}

/// knockd's TENCENT_CLOUD_SECRET_ID, _SECRET_KEY and _TOKEN, from the config file or the
/// environment.
fn knockd(vars: &Vars) -> Source {
    let get = |name: &str| {
        vars.get(name).map(|v| {
            let place = if vars.env.get(name).is_some_and(|e| !e.trim().is_empty()) {
                "environment"
            } else {
                "config file"
            };
            Part {
                var: name.to_string(),
                from: format!("{name} ({place})"),
                value: v.to_string(),
            }
        })
    };
    Source {
        id: get("TENCENT_CLOUD_SECRET_ID"),
        key: get("TENCENT_CLOUD_SECRET_KEY"),
        token: get("TENCENT_CLOUD_TOKEN"),
        halves: [
            ("TENCENT_CLOUD_SECRET_ID".into(), ID.into()),
            ("TENCENT_CLOUD_SECRET_KEY".into(), KEY.into()),
        ],
    }
}

/// The environment names of the SDKs and tools: TENCENTCLOUD_SECRET_ID and _SECRET_KEY (the
/// SDKs' EnvProvider), the token as TENCENTCLOUD_SECURITY_TOKEN (Terraform) or
/// TENCENTCLOUD_TOKEN (tccli). Environment only: they are not knockd's variables.
fn ecosystem(vars: &Vars) -> Source {
    let get = |name: &str| {
        vars.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| Part {
                var: name.to_string(),
                from: format!("{name} (environment)"),
                value: v.to_string(),
            })
    };
    Source {
        id: get("TENCENTCLOUD_SECRET_ID"),
        key: get("TENCENTCLOUD_SECRET_KEY"),
        token: get("TENCENTCLOUD_SECURITY_TOKEN").or_else(|| get("TENCENTCLOUD_TOKEN")),
        halves: [
            ("TENCENTCLOUD_SECRET_ID".into(), ID.into()),
            ("TENCENTCLOUD_SECRET_KEY".into(), KEY.into()),
        ],
    }
}

/// The profile file: TENCENTCLOUD_CREDENTIALS_FILE, else `$HOME/.tencentcloud/credentials`
/// when it exists, as the Go SDK's ProfileProvider finds it. `Ok(None)`: no file to read.
fn profile_path(vars: &Vars) -> Result<Option<PathBuf>, String> {
    let env = |name: &str| {
        vars.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    if let Some(p) = env("TENCENTCLOUD_CREDENTIALS_FILE") {
        return Ok(Some(PathBuf::from(p)));
    }
    let Some(home) = env("HOME") else {
        return Ok(None);
    };
    let path = Path::new(home).join(".tencentcloud").join("credentials");
    match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => Ok(Some(path)),
    }
}

/// The file's text: a regular file of at most 64 KiB.
fn read_profile(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot be read: {e}"))?;
    if !meta.is_file() {
        return Err("is not a regular file".into());
    }
    if meta.len() > MAX_PROFILE {
        return Err(format!("is {} bytes; at most 64 KiB is read", meta.len()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))
}

/// The `[default]` section of an INI profile, read as the Go SDK's parser does: lines trimmed,
/// `#` and `;` comment lines, `key = value` split at the first `=`, keys and values trimmed.
/// (key, value) pairs in file order.
pub(crate) fn default_section(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if section != "default" {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            if !k.is_empty() && !v.is_empty() {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

/// The profile file's `secret_id`, `secret_key` and `token` (the Go SDK reads no token there;
/// knockd takes one if present, for a temporary key pair kept in the file).
fn profile(path: &Path, c: &mut Checker) -> Source {
    let shown = path.display().to_string();
    let text = match read_profile(path) {
        Ok(t) => t,
        Err(e) => {
            c.err(&shown, format!("the Tencent Cloud credentials file {e}"));
            return Source::default();
        }
    };
    if let Some(mode) = super::load::group_or_other_readable(path) {
        c.warn(format!(
            "{shown} holds a SecretKey and is readable by group or others (mode {mode:03o}); run: chmod 600 {shown}"
        ));
    }
    let section = default_section(&text);
    let get = |key: &str| {
        section
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| Part {
                var: shown.clone(),
                from: format!("{key} in {shown} [default]"),
                value: v.clone(),
            })
    };
    Source {
        id: get("secret_id"),
        key: get("secret_key"),
        token: get("token"),
        halves: [
            (shown.clone(), format!("secret_id in [default], {ID}")),
            (shown.clone(), format!("secret_key in [default], {KEY}")),
        ],
    }
}

/// The credentials from the first source that holds any part of them. Every problem goes to
/// `c` under the name of the variable (or file) it is about; values are never shown.
pub(crate) fn find(vars: &Vars, c: &mut Checker) -> Found {
    let sources = sources(vars, c);
    // The first source with a SecretId or SecretKey is the source of the pair.
    let Some(at) = sources
        .iter()
        .position(|s| s.id.is_some() || s.key.is_some())
    else {
        // No pair anywhere: the errors name knockd's own variables, as before.
        c.require_token("TENCENT_CLOUD_SECRET_ID", "", ID);
        c.require_token("TENCENT_CLOUD_SECRET_KEY", "", KEY);
        return Found {
            secret_id: String::new(),
            secret_key: String::new(),
            token: None,
            from: Default::default(),
        };
    };
    let chosen = &sources[at];
    check_halves(chosen, &sources[at + 1..], c);
    check_tokens_ahead(chosen, &sources[..at], c);
    let id = chosen.id.clone().unwrap_or_default();
    let key = chosen.key.clone().unwrap_or_default();
    check_pair(&id, &key, c);
    let token = chosen.token.clone().unwrap_or_default();
    if !token.value.bytes().all(|b| b.is_ascii_graphic()) {
        c.err(
            &token.var,
            "must be printable ASCII without spaces (value not shown)",
        );
    }
    Found {
        secret_id: id.value,
        secret_key: key.value,
        token: chosen.token.as_ref().map(|t| t.value.clone()),
        from: [id.from, key.from, token.from],
    }
}

/// The sources in order of precedence: knockd's variables, the ecosystem's, then the profile
/// file, read only when no earlier source holds a whole pair.
fn sources(vars: &Vars, c: &mut Checker) -> Vec<Source> {
    let mut sources = vec![knockd(vars), ecosystem(vars)];
    // The profile file is read only when no earlier source holds a whole pair: a complete
    // pair in knockd's variables makes it irrelevant, even if broken.
    let complete = |s: &Source| s.id.is_some() && s.key.is_some();
    if !sources.iter().any(complete) || sources.iter().any(|s| s.any() && !complete(s)) {
        match profile_path(vars) {
            Ok(Some(path)) => sources.push(profile(&path, c)),
            Ok(None) => {}
            Err(e) => c.err("TENCENTCLOUD_CREDENTIALS_FILE", e),
        }
    }
    sources
}

/// Half a pair in `chosen` and the other half further down (`later`): a mix of two keys is
/// never meant. Half a pair with no other half anywhere: the missing half is required.
fn check_halves(chosen: &Source, later: &[Source], c: &mut Checker) {
    let halves = [
        (
            &chosen.id,
            &chosen.key,
            later.iter().find_map(|s| s.key.clone()),
            &chosen.halves[1],
        ),
        (
            &chosen.key,
            &chosen.id,
            later.iter().find_map(|s| s.id.clone()),
            &chosen.halves[0],
        ),
    ];
    for (have, missing, elsewhere, (var, what)) in halves {
        match (have, missing, elsewhere) {
            (Some(here), None, Some(other)) => c.err(
                &here.var,
                format!(
                    "{} is set but its other half is not, while {} is: a key pair must come from one source; set both beside each other (values not shown)",
                    here.from, other.from
                ),
            ),
            (Some(_), None, None) => c.require_token(var, "", what),
            _ => {}
        }
    }
}

/// A token set ahead of the pair's source (in `ahead`) belongs to another key pair.
fn check_tokens_ahead(chosen: &Source, ahead: &[Source], c: &mut Checker) {
    let pair_from = chosen
        .id
        .as_ref()
        .or(chosen.key.as_ref())
        .map_or(String::new(), |p| p.from.clone());
    for token in ahead.iter().filter_map(|s| s.token.as_ref()) {
        c.err(
            &token.var,
            format!(
                "{} is set but the key pair comes from {pair_from}: a token belongs to the key pair it was issued with; set the pair beside it or unset it (values not shown)",
                token.from
            ),
        );
    }
}

/// The SecretId and SecretKey that are set: tokens, and not the masked example values.
fn check_pair(id: &Part, key: &Part, c: &mut Checker) {
    for (part, what) in [(id, "the API SecretId (AKID…)"), (key, "the API SecretKey")] {
        if !part.var.is_empty() {
            c.require_token(&part.var, &part.value, what);
            if part.value.contains('*') {
                c.warn(format!(
                    "{} contains '*': it looks like the masked example value, not a real key",
                    part.from
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn found(file: &[(&'static str, &'static str)], env: &[(&str, &str)]) -> (Found, Vec<String>) {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let vars = Vars {
            file: file.to_vec(),
            env: &env,
        };
        let mut c = Checker::default();
        let f = find(&vars, &mut c);
        let errors = c.errors.iter().map(|e| e.to_string()).collect();
        (f, errors)
    }

    #[test]
    fn the_first_source_with_a_pair_wins_and_says_where_it_is() {
        let knockd = [
            ("TENCENT_CLOUD_SECRET_ID", "AKIDfile"),
            ("TENCENT_CLOUD_SECRET_KEY", "keyfile"),
        ];
        let sdk = [
            ("TENCENTCLOUD_SECRET_ID", "AKIDsdk"),
            ("TENCENTCLOUD_SECRET_KEY", "keysdk"),
            ("TENCENTCLOUD_TOKEN", "tccli"),
        ];
        let (f, e) = found(&knockd, &sdk);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!((f.secret_id.as_str(), f.token), ("AKIDfile", None));
        assert_eq!(f.from[0], "TENCENT_CLOUD_SECRET_ID (config file)");
        let (f, e) = found(&[], &sdk);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            (
                f.secret_id.as_str(),
                f.secret_key.as_str(),
                f.token.as_deref()
            ),
            ("AKIDsdk", "keysdk", Some("tccli"))
        );
        assert_eq!(
            f.from,
            [
                "TENCENTCLOUD_SECRET_ID (environment)".to_string(),
                "TENCENTCLOUD_SECRET_KEY (environment)".to_string(),
                "TENCENTCLOUD_TOKEN (environment)".to_string()
            ]
        );
        // Terraform's name goes before tccli's.
        let mut both = sdk.to_vec();
        both.push(("TENCENTCLOUD_SECURITY_TOKEN", "terraform"));
        assert_eq!(found(&[], &both).0.token.as_deref(), Some("terraform"));
        // The environment overrides knockd's file value, as for every knockd variable.
        let (f, _) = found(&knockd, &[("TENCENT_CLOUD_SECRET_ID", "AKIDenv")]);
        assert_eq!(f.from[0], "TENCENT_CLOUD_SECRET_ID (environment)");
        assert_eq!(f.from[1], "TENCENT_CLOUD_SECRET_KEY (config file)");
    }

    #[test]
    fn half_a_pair_is_an_error_naming_both_places() {
        let (_, e) = found(
            &[("TENCENT_CLOUD_SECRET_ID", "AKIDfile")],
            &[("TENCENTCLOUD_SECRET_KEY", "keysdk")],
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("TENCENT_CLOUD_SECRET_ID: "), "{e:?}");
        assert!(
            e[0].contains("TENCENTCLOUD_SECRET_KEY (environment)"),
            "{e:?}"
        );
        assert!(!e[0].contains("keysdk"), "{e:?}");
        // Half a pair and nothing else: the other half is required there.
        let (_, e) = found(&[], &[("TENCENTCLOUD_SECRET_ID", "AKIDsdk")]);
        assert_eq!(
            e,
            vec!["TENCENTCLOUD_SECRET_KEY: required: the API SecretKey".to_string()]
        );
        // A token ahead of its pair's source belongs to another pair.
        let (_, e) = found(
            &[("TENCENT_CLOUD_TOKEN", "tok")],
            &[
                ("TENCENTCLOUD_SECRET_ID", "AKIDsdk"),
                ("TENCENTCLOUD_SECRET_KEY", "keysdk"),
            ],
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("TENCENT_CLOUD_TOKEN: "), "{e:?}");
        assert!(
            e[0].contains("TENCENTCLOUD_SECRET_ID (environment)"),
            "{e:?}"
        );
        // Nothing anywhere: knockd's own variables are required, as before.
        let (_, e) = found(&[], &[]);
        assert_eq!(
            e,
            vec![
                "TENCENT_CLOUD_SECRET_ID: required: the API SecretId (AKID…)".to_string(),
                "TENCENT_CLOUD_SECRET_KEY: required: the API SecretKey".to_string()
            ]
        );
    }

    #[test]
    fn the_profiles_default_section_is_read_like_the_go_sdk_does() {
        let text = "secret_id = global\n\r\n# comment\n; comment\n[other]\nsecret_id=other\n\
                    [default]\r\n  secret_id =  AKIDprofile \nsecret_key=k=v\nempty=\nnovalue\n\
                    [next]\nsecret_key=next\n";
        assert_eq!(
            default_section(text),
            vec![
                ("secret_id".to_string(), "AKIDprofile".to_string()),
                ("secret_key".to_string(), "k=v".to_string()),
            ]
        );
        assert!(default_section("").is_empty());
    }
}
