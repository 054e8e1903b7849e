//! The clients file on disk: re-read when it changes (at most one look a second) or on demand,
//! written atomically by `--add-client` and `--remove-client`, and listed by
//! `--list-clients`. The line format and its parser are in `clients`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::clients::*;

/// The warning for a clients file (or key file) with this mode, if group or others may read it.
pub(crate) fn mode_warning(path: &Path, mode: u32) -> Option<String> {
    (mode & 0o044 != 0).then(|| {
        format!(
            "{} is readable by group or others (mode {:03o}); it holds keys: chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

/// The warning for a clients file with this mode, if others may read it. Group read is allowed:
/// it is how a sandboxed service reads the file (contrib/systemd: 0640 root:knockd-clients).
fn clients_mode_warning(path: &Path, mode: u32) -> Option<String> {
    (mode & 0o004 != 0).then(|| {
        format!(
            "{} is readable by others (mode {:03o}); it holds keys: chmod o-r it",
            path.display(),
            mode & 0o777
        )
    })
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// What a refresh did, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reload {
    /// Not looked at (checked less than a second ago) or not changed.
    Unchanged,
    /// Read and now in use; `warnings` are worth a log line each, and so is each of
    /// `problems`: an invalid line, left out of the set in use.
    Loaded {
        clients: usize,
        warnings: Vec<String>,
        problems: Vec<ClientsError>,
    },
    /// The file is gone: no clients any more.
    Missing,
    /// The file changed but cannot be read (too large, not UTF-8, not a regular file,
    /// unreadable); the previous set stays in use.
    Kept { problems: Vec<ClientsError> },
}

/// The clients file as the serving knockd sees it. Not synchronised: the server keeps it in a
/// `Mutex`, calls [`ClientsFile::refresh`] then [`ClientsFile::clients`] per knock (cheap: at
/// most one `stat` a second), and clones the `Arc` out before verifying.
#[derive(Debug)]
pub(crate) struct ClientsFile {
    path: PathBuf,
    clients: Arc<Clients>,
    /// The version last looked at (loaded or rejected); `None` = missing.
    stamp: Option<Stamp>,
    checked: Option<Instant>,
}

impl ClientsFile {
    /// At start-up: a missing file is no clients; one that cannot be read is an error. Invalid
    /// lines are not: the `Reload` carries them (and the warnings) to report, and the caller
    /// decides whether they are fatal (`--check-config`) or logged (serving).
    pub(crate) fn open(path: &Path) -> Result<(ClientsFile, Reload), ClientsError> {
        let mut file = ClientsFile {
            path: path.to_path_buf(),
            clients: Arc::default(),
            stamp: None,
            checked: None,
        };
        match file.force_reload() {
            Reload::Kept { mut problems } => Err(if problems.len() == 1 {
                problems.remove(0)
            } else {
                ClientsError::Invalid {
                    path: path.to_path_buf(),
                    problems,
                }
            }),
            r => Ok((file, r)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The set in use.
    pub(crate) fn clients(&self) -> Arc<Clients> {
        Arc::clone(&self.clients)
    }

    /// Looks at the file if the last look was at least [`CHECK_INTERVAL`] before `now`, and
    /// re-reads it if it changed.
    pub(crate) fn refresh(&mut self, now: Instant) -> Reload {
        if self
            .checked
            .is_some_and(|t| now.saturating_duration_since(t) < CHECK_INTERVAL)
        {
            return Reload::Unchanged;
        }
        self.checked = Some(now);
        let stamp = match fs::metadata(&self.path) {
            Ok(m) => Some(Stamp::of(&m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            // Cannot even stat it: treat as a change, so that the read reports why.
            Err(_) => return self.reload(None),
        };
        if stamp == self.stamp {
            return Reload::Unchanged;
        }
        self.reload(stamp)
    }

    /// Looks at the file now, however recent the last look (dated now, never later).
    pub(crate) fn refresh_now(&mut self) -> Reload {
        self.checked = None;
        self.refresh(Instant::now())
    }

    /// Re-reads now, whatever the metadata says (SIGHUP).
    pub(crate) fn force_reload(&mut self) -> Reload {
        self.checked = Some(Instant::now());
        let stamp = fs::metadata(&self.path).ok().map(|m| Stamp::of(&m));
        self.reload(stamp)
    }

    fn reload(&mut self, stamp: Option<Stamp>) -> Reload {
        self.stamp = stamp;
        match read_clients(&self.path) {
            Ok(None) => {
                self.clients = Arc::default();
                Reload::Missing
            }
            Ok(Some((clients, problems, mode))) => {
                let mut warnings = clients.warnings().to_vec();
                warnings.extend(clients_mode_warning(&self.path, mode));
                let n = clients.len();
                self.clients = Arc::new(clients);
                Reload::Loaded {
                    clients: n,
                    warnings,
                    problems,
                }
            }
            Err(problems) => Reload::Kept { problems },
        }
    }
}

fn io_error(path: &Path, action: &'static str, e: &io::Error) -> ClientsError {
    ClientsError::Io {
        path: path.to_path_buf(),
        action,
        what: e.to_string(),
    }
}

/// The file's text and mode; `None` when it does not exist. Only a regular file is read: a
/// FIFO would block the open (and with it every key knock, holding the clients lock) until a
/// writer came, and a device might never end. The open does not block (O_NONBLOCK, 0o4000 on
/// Linux; nothing for a regular file), and the opened file's own metadata is what is checked,
/// so a path swapped between a check and the open cannot slip through.
fn read_text(path: &Path) -> Result<Option<(String, fs::Metadata)>, ClientsError> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    options.custom_flags(0o4000);
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "read", &e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, "read", &e))?;
    if !meta.is_file() {
        return Err(ClientsError::Io {
            path: path.to_path_buf(),
            action: "read",
            what: "not a regular file (a FIFO, a device or a directory?)".into(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, "read", &e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(ClientsError::TooLarge);
    }
    let text = String::from_utf8(bytes).map_err(|_| ClientsError::NotUtf8)?;
    Ok(Some((text, meta)))
}

/// The valid clients, the invalid lines' problems and the file's mode.
type Loaded = (Clients, Vec<ClientsError>, u32);

fn read_clients(path: &Path) -> Result<Option<Loaded>, Vec<ClientsError>> {
    let Some((text, meta)) = read_text(path).map_err(|e| vec![e])? else {
        return Ok(None);
    };
    let (clients, problems) = Clients::parse_lines(&text);
    Ok(Some((clients, problems, meta.mode())))
}

/// Adds a client with a fresh key and returns the key (to print once, in the recipes).
/// Creates the file with mode 0600 when missing. Refuses a label that exists (ignoring case)
/// and a file with invalid lines. The file is rewritten atomically, keeping its mode.
pub(crate) fn add_client(
    path: &Path,
    label: &str,
    ttl_secs: Option<u64>,
    expires: Option<Day>,
) -> Result<Key, ClientsError> {
    let mut made = None;
    append_line(path, label, || {
        let key = Key::generate().map_err(ClientsError::Random)?;
        let line = client_line(label, &key, ttl_secs, expires);
        made = Some(key);
        Ok(line)
    })?;
    made.ok_or(ClientsError::Label { line: 0 })
}

/// Adds a host line (`LABEL host=NAME [ttl=…]`) as `add_client` adds a client; the line
/// written.
pub(crate) fn add_host(
    path: &Path,
    label: &str,
    name: &str,
    ttl_secs: Option<u64>,
) -> Result<String, ClientsError> {
    if !super::hosts::is_host_name(name) {
        return Err(ClientsError::HostName { line: 0 });
    }
    let line = super::hosts::host_line(label, name, ttl_secs);
    append_line(path, label, || Ok(line.clone()))?;
    Ok(line)
}

/// Appends the line `make` returns, once `label` is known to be new in a valid file.
fn append_line(
    path: &Path,
    label: &str,
    make: impl FnOnce() -> Result<String, ClientsError>,
) -> Result<(), ClientsError> {
    if !is_label(label) {
        return Err(ClientsError::Label { line: 0 });
    }
    let existing = read_text(path)?;
    let (mut text, mode) = match existing {
        Some((text, meta)) => {
            let clients = Clients::parse(&text).map_err(|problems| ClientsError::Invalid {
                path: path.to_path_buf(),
                problems,
            })?;
            if clients.has_label(label) {
                return Err(ClientsError::LabelExists {
                    label: label.to_string(),
                });
            }
            (text, Some(meta))
        }
        None => (
            "# knockd clients: LABEL KEY [ttl=DURATION] [expires=YYYY-MM-DD], or LABEL host=NAME\n\
             # Keys are secrets: keep this file mode 0600. Manage it with knockd --add-client,\n\
             # --add-host, --remove-client and --list-clients.\n"
                .to_string(),
            None,
        ),
    };
    let line = make()?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&line);
    text.push('\n');
    write_atomically(path, &text, mode.as_ref())
}

/// `LABEL KEY[ ttl=…][ expires=…]`, as `add_client` writes it.
pub(crate) fn client_line(
    label: &str,
    key: &Key,
    ttl_secs: Option<u64>,
    expires: Option<Day>,
) -> String {
    let mut line = format!("{label} {}", key.expose());
    if let Some(t) = ttl_secs {
        line.push_str(&format!(" ttl={}", format_ttl(t)));
    }
    if let Some(d) = expires {
        line.push_str(&format!(" expires={d}"));
    }
    line
}

/// Removes the line(s) whose label is exactly `label`, keeping every other byte, atomically.
/// Works on a file with invalid lines too, so that revoking is always possible.
pub(crate) fn remove_client(path: &Path, label: &str) -> Result<(), ClientsError> {
    let no_such = || ClientsError::NoSuchClient {
        label: label.to_string(),
    };
    let Some((text, meta)) = read_text(path)? else {
        return Err(no_such());
    };
    let mut removed = false;
    let kept: String = text
        .split_inclusive('\n')
        .filter(|raw| {
            let first = raw.split_ascii_whitespace().next().map(|f| {
                // A BOM belongs to the first line's label field.
                f.strip_prefix('\u{feff}').unwrap_or(f)
            });
            let hit = first == Some(label);
            removed |= hit;
            !hit
        })
        .collect();
    if !removed {
        return Err(no_such());
    }
    write_atomically(path, &kept, Some(&meta))
}

/// Writes `text` to a temporary file beside `path` (created exclusively, so two concurrent
/// writers cannot both proceed), fsyncs it, renames it over `path` and fsyncs the directory.
/// The mode (and, when permitted, the owner) of the old file is kept; a new file gets 0600.
fn write_atomically(
    path: &Path,
    text: &str,
    old: Option<&fs::Metadata>,
) -> Result<(), ClientsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.tmp", name.unwrap_or_else(|| "clients".into())));
    let mode = old.map_or(NEW_FILE_MODE, |m| m.mode() & 0o7777);
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(NEW_FILE_MODE)
        .open(&tmp)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ClientsError::TempExists { path: tmp })
        }
        Err(e) => return Err(io_error(&tmp, "create", &e)),
    };
    let result = (|| {
        if let Some(m) = old {
            // Only root may give a file away; anyone else keeps owning what they write.
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        // set_permissions is not subject to the umask, unlike the mode given to open.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename is durable once the directory is; failing to sync it is not an error.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: io::Error| {
        let _ = fs::remove_file(&tmp);
        io_error(path, "write", &e)
    })
}

/// What a client's knock opens, for `--list-clients`: `address` (the default: the knocking
/// address alone), else the wider prefix per family, `/24,/64`, with `/32` or `/128` for a
/// family that stays one address.
fn opens(v4: Option<u8>, v6: Option<u8>) -> String {
    match (v4, v6) {
        (None, None) => "address".to_string(),
        (v4, v6) => format!("/{},/{}", v4.unwrap_or(32), v6.unwrap_or(128)),
    }
}

#[cfg(test)]
#[test]
fn opens_column() {
    for (v4, v6, want) in [
        (None, None, "address"),
        (Some(24), None, "/24,/128"),
        (None, Some(64), "/32,/64"),
        (Some(16), Some(48), "/16,/48"),
    ] {
        assert_eq!(opens(v4, v6), want);
    }
}

/// `--list-clients`: one line per client, never the key.
pub(crate) fn list_text(clients: &Clients, now_unix: i64) -> String {
    let mut out = format!(
        "{:<24}  {:<8}  {:<18}  {:<11}  {}\n",
        "LABEL", "TTL", "EXPIRES", "OPENS", "KEY SHA-256"
    );
    for c in clients.iter() {
        let ttl = c.ttl_secs.map_or_else(|| "default".into(), format_ttl);
        let expires = match c.expires {
            None => "never".to_string(),
            Some(d) if c.is_expired(now_unix) => format!("{d} (expired)"),
            Some(d) => d.to_string(),
        };
        out.push_str(&format!(
            "{:<24}  {:<8}  {:<18}  {:<11}  {}\n",
            c.label,
            ttl,
            expires,
            opens(c.v4_prefix, c.v6_prefix),
            c.key.fingerprint()
        ));
    }
    for h in clients.hosts() {
        let ttl = h.ttl_secs.map_or_else(|| "default".into(), format_ttl);
        out.push_str(&format!(
            "{:<24}  {:<8}  {:<18}  {:<11}  host={}\n",
            h.label, ttl, "never", "address", h.name
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const K2: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "knockd-keys-{name}-{}-{:x}",
            std::process::id(),
            u64::from_le_bytes(crate::keys::random().unwrap())
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn mode_warnings() {
        let p = Path::new("/etc/knockd.clients");
        assert_eq!(mode_warning(p, 0o100600), None);
        assert_eq!(mode_warning(p, 0o700), None);
        assert!(mode_warning(p, 0o640).unwrap().contains("mode 640"));
        assert!(mode_warning(p, 0o604).is_some());
    }

    #[test]
    fn add_list_remove() {
        let dir = tmpdir("add");
        let path = dir.join("knockd.clients");
        let k1 = add_client(&path, "office", Some(12 * 3600), Day::parse("2027-06-30")).unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        let k2 = add_client(&path, "phone", None, None).unwrap();
        assert_eq!(
            add_client(&path, "OFFICE", None, None),
            Err(ClientsError::LabelExists {
                label: "OFFICE".into()
            })
        );
        assert_eq!(
            add_client(&path, "no good", None, None),
            Err(ClientsError::Label { line: 0 })
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!(
            "office {} ttl=12h expires=2027-06-30\n",
            k1.expose()
        )));
        assert!(text.ends_with(&format!("phone {}\n", k2.expose())));
        let c = Clients::parse(&text).unwrap();
        let listed = list_text(&c, Day::parse("2028-01-01").unwrap().0 * 86_400);
        assert!(listed.contains("2027-06-30 (expired)"), "{listed}");
        assert!(listed.contains(&k2.fingerprint()));
        assert!(!listed.contains(k1.expose()) && !listed.contains(k2.expose()));
        assert!(
            listed.lines().next().unwrap().contains(" OPENS "),
            "{listed}"
        );
        assert!(listed
            .lines()
            .all(|l| !l.starts_with("phone") || l.contains(" address ")));

        // Removing keeps the rest byte for byte and the mode the operator chose.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        remove_client(&path, "office").unwrap();
        let after = fs::read_to_string(&path).unwrap();
        assert_eq!(
            after,
            text.replace(
                &format!("office {} ttl=12h expires=2027-06-30\n", k1.expose()),
                ""
            )
        );
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        assert_eq!(
            remove_client(&path, "office"),
            Err(ClientsError::NoSuchClient {
                label: "office".into()
            })
        );
        // A stale temp file blocks writers instead of being overwritten.
        fs::write(dir.join(".knockd.clients.tmp"), "").unwrap();
        assert!(matches!(
            remove_client(&path, "phone"),
            Err(ClientsError::TempExists { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remove_works_on_an_invalid_file_add_refuses() {
        let dir = tmpdir("rm");
        let path = dir.join("c");
        fs::write(&path, format!("gone {K1}\nbroken line here\n")).unwrap();
        assert!(matches!(
            add_client(&path, "x", None, None),
            Err(ClientsError::Invalid { .. })
        ));
        remove_client(&path, "gone").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "broken line here\n");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reload_cache() {
        let dir = tmpdir("reload");
        let path = dir.join("clients");
        let t0 = Instant::now();
        let (mut f, r) = ClientsFile::open(&path).unwrap();
        assert_eq!(r, Reload::Missing);
        assert!(f.clients().is_empty());

        fs::write(&path, format!("a {K1}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        // Checked at most once a second: a first look happened in open().
        assert_eq!(f.refresh(t0), Reload::Unchanged);
        let t1 = t0 + CHECK_INTERVAL * 2;
        assert_eq!(
            f.refresh(t1),
            Reload::Loaded {
                clients: 1,
                warnings: vec![],
                problems: vec![]
            }
        );
        assert_eq!(f.refresh(t1 + CHECK_INTERVAL * 2), Reload::Unchanged);

        // An invalid line: left out, the others apply, the problem is reported once.
        fs::write(&path, format!("a {K1}\nb\n")).unwrap();
        let t2 = t1 + CHECK_INTERVAL * 4;
        assert_eq!(
            f.refresh(t2),
            Reload::Loaded {
                clients: 1,
                warnings: vec![],
                problems: vec![ClientsError::MissingKey { line: 2 }]
            }
        );
        assert_eq!(f.clients().len(), 1);
        assert_eq!(f.refresh(t2 + CHECK_INTERVAL * 2), Reload::Unchanged);

        // Fixed, readable by others: loaded with a warning; SIGHUP re-reads regardless.
        fs::write(&path, format!("a {K1}\nb {K2}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        match f.force_reload() {
            Reload::Loaded {
                clients: 2,
                warnings,
                ..
            } => {
                assert_eq!(warnings.len(), 1);
                assert!(warnings[0].contains("chmod o-r"));
            }
            other => panic!("{other:?}"),
        }
        // Group-readable (a service's group): no warning.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            f.force_reload(),
            Reload::Loaded {
                clients: 2,
                warnings: vec![],
                problems: vec![]
            }
        );
        assert!(f.clients().get("b").is_some());

        // Deleting the file revokes everyone.
        fs::remove_file(&path).unwrap();
        assert_eq!(
            f.refresh(Instant::now() + CHECK_INTERVAL * 10),
            Reload::Missing
        );
        assert!(f.clients().is_empty());

        // At start-up invalid lines are reported, not fatal: the caller decides.
        fs::write(&path, format!("x\ny\nz {K2}\n")).unwrap();
        let (f, r) = ClientsFile::open(&path).unwrap();
        let Reload::Loaded {
            clients: 1,
            problems,
            ..
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(
            problems,
            [
                ClientsError::MissingKey { line: 1 },
                ClientsError::MissingKey { line: 2 }
            ]
        );
        assert!(f.clients().get("z").is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Revocation while the file holds a typo: `--remove-client mallory` rewrites the file
    /// without her line, but with `router.home KEY` (a label with a dot) appended earlier.
    /// The whole previous set used to stay in use (`result=kept-previous`), mallory included.
    #[test]
    fn one_invalid_line_disables_that_line_only() {
        let dir = tmpdir("badline");
        let path = dir.join("clients");
        fs::write(&path, format!("alice {K1}\nmallory {K2}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let (mut f, _) = ClientsFile::open(&path).unwrap();
        assert!(f.clients().get("mallory").is_some());
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(&format!("router.home {K1}x\n"));
        fs::write(&path, &text).unwrap();
        remove_client(&path, "mallory").unwrap();
        let r = f.refresh(Instant::now() + CHECK_INTERVAL * 2);
        assert_eq!(
            r,
            Reload::Loaded {
                clients: 1,
                warnings: vec![],
                problems: vec![ClientsError::Label { line: 2 }]
            }
        );
        assert!(f.clients().get("mallory").is_none(), "mallory is revoked");
        assert!(f.clients().get("alice").is_some(), "alice still works");
        // The problem names the line, never the key.
        let shown = format!("{r:?} {}", ClientsError::Label { line: 2 });
        assert!(!shown.contains(K1), "{shown}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A FIFO as the clients file used to block the open until a writer came: every key knock
    /// (under the clients lock) and `--check-config` hung. It is refused, at once.
    #[test]
    fn a_fifo_or_a_directory_is_refused_without_blocking() {
        let dir = tmpdir("fifo");
        let path = dir.join("clients");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(ClientsFile::open(&p).map(|_| ()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("opening a FIFO returns at once");
        let e = got.expect_err("a FIFO is refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        let e = ClientsFile::open(&path).expect_err("a directory is refused");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
