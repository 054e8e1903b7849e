//! `NOTIFY_COMMAND`: a program run without a shell. The operator's fixed arguments are split
//! once at load time; the event's values reach the program only through its environment
//! (`KNOCKD_IP`, …), never through its arguments, so no value can be interpreted as code.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use super::event::{Event, FIELDS};
use super::NotifyError;

/// A hook running longer than this is killed (SIGKILL, with every process of its group) and
/// reaped.
pub(crate) const HOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Hooks running at once; an event arriving when all are busy skips its hook (counted).
pub(crate) const MAX_RUNNING: usize = 4;
/// Output kept from a hook (stdout and stderr share one pipe); the rest is not read.
const MAX_OUTPUT: usize = 4096;
/// Variables passed through from knockd's own environment. Everything else is cleared: the
/// process environment may hold TENCENT_CLOUD_SECRET_KEY, which a hook has no business with.
const PASS_THROUGH: [&str; 13] = [
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const THREAD_STACK: usize = 128 * 1024;

/// Splits `NOTIFY_COMMAND` into argv: words separated by white space; `"double quotes"` group
/// words with spaces (no escapes inside, and the quotes may touch text: `a"b c"` is `ab c`);
/// nothing else is special (`$`, `'`, `\`, `*`, `~` are literal). The program must be an
/// absolute path (no `PATH` search), and placeholders are refused: values are in the
/// environment.
pub(crate) fn parse_command(text: &str) -> Result<Vec<String>, String> {
    let mut argv = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => argv.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quoted {
        return Err("a double quote is not closed".into());
    }
    argv.extend(word);
    let Some(program) = argv.first() else {
        return Err("no program given".into());
    };
    if !program.starts_with('/') {
        return Err(format!(
            "'{}' is not an absolute path (the program is not looked up in PATH)",
            program.escape_debug()
        ));
    }
    if argv.iter().any(|a| a.contains("#{")) {
        return Err("placeholders are not expanded in the command; the program reads KNOCKD_IP, KNOCKD_LABEL, … from its environment".into());
    }
    Ok(argv)
}

/// The program exists, is a file and is executable by someone: checked at load time so that a
/// typo is a configuration error rather than a failure at the first knock.
pub(crate) fn check_program(path: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{path} is not a file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{path} is not executable"));
    }
    Ok(())
}

/// `KNOCKD_<FIELD>` for every placeholder field. NUL bytes, which an environment cannot
/// hold, are dropped.
pub(crate) fn env_vars(event: &Event) -> Vec<(String, String)> {
    FIELDS
        .iter()
        .map(|f| {
            let value = event.value(f).unwrap_or_default().replace('\0', "");
            (format!("KNOCKD_{}", f.to_ascii_uppercase()), value)
        })
        .collect()
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookRun {
    /// None when it was killed for running too long.
    pub status: Option<ExitStatus>,
    /// First non-empty line of its output, escaped, at most 200 characters.
    pub first_line: String,
}

impl HookRun {
    pub(crate) fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub(crate) fn describe(&self, timeout: Duration) -> String {
        let end = match self.status {
            Some(s) => match s.code() {
                Some(c) => format!("exit status {c}"),
                None => s.to_string(),
            },
            None => format!("killed after {}s", timeout.as_secs()),
        };
        match self.first_line.as_str() {
            "" => end,
            l => format!("{end}, output: {l}"),
        }
    }
}

/// Runs hooks, at most [`MAX_RUNNING`] at once.
#[derive(Clone)]
pub(crate) struct Runner {
    argv: Arc<Vec<String>>,
    running: Arc<AtomicUsize>,
    timeout: Duration,
}

impl Runner {
    pub(crate) fn new(argv: Vec<String>, timeout: Duration) -> Runner {
        Runner {
            argv: Arc::new(argv),
            running: Arc::new(AtomicUsize::new(0)),
            timeout,
        }
    }

    pub(crate) fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    /// Starts the hook on its own thread and returns at once; `done` gets its outcome.
    /// Err(Busy) when [`MAX_RUNNING`] hooks are running already: the event skips its hook.
    pub(crate) fn start(
        &self,
        event: &Event,
        done: impl FnOnce(Result<HookRun, NotifyError>) + Send + 'static,
    ) -> Result<(), NotifyError> {
        if self
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_RUNNING).then_some(n + 1)
            })
            .is_err()
        {
            return Err(NotifyError::Busy(MAX_RUNNING));
        }
        let runner = self.clone();
        let vars = env_vars(event);
        let spawned = thread::Builder::new()
            .name("notify-hook".into())
            .stack_size(THREAD_STACK)
            .spawn(move || {
                let outcome = runner.run_vars(&vars);
                runner.running.fetch_sub(1, Ordering::AcqRel);
                done(outcome);
            });
        spawned.map(|_| ()).map_err(|e| {
            self.running.fetch_sub(1, Ordering::AcqRel);
            NotifyError::Command(format!("cannot start a thread for the hook: {e}"))
        })
    }

    /// Runs the hook on this thread: at most `timeout`, then killed; always reaped.
    pub(crate) fn run(&self, event: &Event) -> Result<HookRun, NotifyError> {
        self.run_vars(&env_vars(event))
    }

    fn run_vars(&self, vars: &[(String, String)]) -> Result<HookRun, NotifyError> {
        let program = self.program().to_string();
        let fail =
            |what: &str, e: std::io::Error| NotifyError::Command(format!("{program}: {what}: {e}"));
        let (reader, writer) = std::io::pipe().map_err(|e| fail("pipe", e))?;
        let mut cmd = Command::new(&program);
        // Its own process group, so that a timeout kills what it started in the background too
        // (`curl … &`); otherwise those outlive the kill and pile up, one set per event.
        cmd.args(&self.argv[1..])
            .process_group(0)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(writer.try_clone().map_err(|e| fail("pipe", e))?)
            .stderr(writer);
        for key in PASS_THROUGH {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", DEFAULT_PATH);
        }
        cmd.envs(vars.iter().map(|(k, v)| (k, v)));
        let spawned = cmd.spawn();
        // The Command holds the pipe's write ends: drop them, or the reader never sees EOF.
        drop(cmd);
        let mut child = spawned.map_err(|e| fail("cannot run", e))?;
        let output = read_bounded(reader);
        let status = wait_or_kill(&mut child, self.timeout);
        // A background process of the hook may hold the pipe open: do not wait for it long.
        let text = output
            .recv_timeout(Duration::from_millis(500))
            .unwrap_or_default();
        Ok(HookRun {
            status,
            first_line: first_line(&text),
        })
    }
}

/// Reads at most [`MAX_OUTPUT`] bytes on a helper thread, then closes the pipe (a hook still
/// writing gets EPIPE instead of blocking on a full pipe we no longer read).
fn read_bounded(reader: std::io::PipeReader) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    let read = move || {
        let mut buf = Vec::new();
        let _ = reader.take(MAX_OUTPUT as u64).read_to_end(&mut buf);
        let _ = tx.send(buf);
    };
    // Without a thread the output is simply lost; the pipe then closes at once.
    let _ = thread::Builder::new()
        .name("notify-hook-out".into())
        .stack_size(THREAD_STACK)
        .spawn(read);
    rx
}

/// The exit status, or None after killing a child that ran past `timeout`, together with its
/// process group (the child leads it: `process_group(0)`). Never leaves a zombie: a killed
/// child is waited for too.
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                thread::sleep(nap.min(deadline.saturating_duration_since(Instant::now())));
                nap = (nap * 2).min(Duration::from_millis(50));
            }
            // Timed out, or try_wait failed: kill, then reap (wait blocks only until the
            // SIGKILL lands).
            _ => {
                // The group first: once the child is reaped its ID may be reused.
                let group = rustix::process::Pid::from_child(child);
                let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The first non-empty line, escaped (no control characters reach the log), ≤ 200 chars.
pub(crate) fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::event::{sample, EventKind};
    use super::*;

    #[test]
    fn command_lines_split_without_a_shell() {
        let ok = |t: &str| parse_command(t).unwrap();
        assert_eq!(ok("/usr/bin/hook"), vec!["/usr/bin/hook"]);
        assert_eq!(ok("  /a/b  --x   y "), vec!["/a/b", "--x", "y"]);
        assert_eq!(
            ok(r#""/opt/my hook/run" "" a"b c"d"#),
            vec!["/opt/my hook/run", "", "ab cd"]
        );
        assert_eq!(
            ok("/bin/x $HOME 'a b' \\n"),
            vec!["/bin/x", "$HOME", "'a", "b'", "\\n"]
        );
        let err = |t: &str| parse_command(t).unwrap_err();
        assert!(err("").contains("no program"));
        assert!(err("hook.sh").contains("not an absolute path"));
        assert!(err("/bin/x \"open").contains("not closed"));
        assert!(err("/bin/x #{ip}").contains("environment"));
    }

    #[test]
    fn program_is_checked() {
        assert!(check_program("/bin/sh").is_ok());
        assert!(check_program("/nonexistent/hook").is_err());
        assert!(check_program("/").unwrap_err().contains("not a file"));
        let dir = temp_dir("check");
        let plain = dir.join("plain");
        std::fs::write(&plain, "x").unwrap();
        assert!(check_program(plain.to_str().unwrap())
            .unwrap_err()
            .contains("not executable"));
    }

    #[test]
    fn variables_cover_every_field() {
        let vars = env_vars(&sample(EventKind::Grant).with_label("a\0b"));
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("KNOCKD_EVENT"), Some("grant"));
        assert_eq!(get("KNOCKD_IP"), Some("203.0.113.5"));
        assert_eq!(get("KNOCKD_LABEL"), Some("ab"));
        assert_eq!(get("KNOCKD_EXPIRES"), Some("2026-12-25 13:38Z"));
        assert!(get("KNOCKD_MESSAGE").unwrap().starts_with("knockd: opened"));
        assert_eq!(vars.len(), FIELDS.len());
    }

    #[test]
    fn first_line_is_escaped_and_bounded() {
        assert_eq!(
            first_line(b"\n  \n hello\x1b[31m \nsecond"),
            "hello\\u{1b}[31m"
        );
        assert_eq!(first_line(&[b'x'; 1000]).len(), 200);
        assert_eq!(first_line(b""), "");
    }

    /// A fresh directory under the system temp dir.
    pub(crate) fn temp_dir(tag: &str) -> std::path::PathBuf {
        use portable_atomic::AtomicU64;
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "knockd-notify-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub(crate) fn script(dir: &std::path::Path, body: &str) -> String {
        let path = dir.join("hook.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn hook_sees_values_in_its_environment_only_and_no_shell_runs_them() {
        let dir = temp_dir("env");
        let out = dir.join("env.out");
        let pwned = dir.join("pwned");
        let hook = script(
            &dir,
            "env > \"$1\"\necho \"args: $#\"; echo oops >&2; exit 3",
        );
        let argv = parse_command(&format!("{hook} {}", out.display())).unwrap();
        let label = format!(
            "$(touch {}); rm -rf x `touch {}` \"q\" \\ ",
            pwned.display(),
            pwned.display()
        );
        let event = sample(EventKind::Grant).with_label(label.clone());
        let outcome = Runner::new(argv, HOOK_TIMEOUT).run(&event).unwrap();
        assert_eq!(outcome.status.and_then(|s| s.code()), Some(3));
        assert!(!outcome.ok());
        assert_eq!(outcome.first_line, "args: 1");
        assert_eq!(
            outcome.describe(HOOK_TIMEOUT),
            "exit status 3, output: args: 1"
        );
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(
            env.lines().any(|l| l == format!("KNOCKD_LABEL={label}")),
            "{env}"
        );
        assert!(env.lines().any(|l| l == "KNOCKD_IP=203.0.113.5"), "{env}");
        assert!(
            env.lines().any(|l| l == "KNOCKD_PORTS=TCP 22,443; UDP 53"),
            "{env}"
        );
        assert!(env.contains(&format!("KNOCKD_MESSAGE={}", event.message())));
        assert!(!pwned.exists(), "a value was executed");
        // Nothing but the pass-through list, the hook's variables and what sh sets itself.
        for line in env.lines().filter(|l| l.contains('=')) {
            let name = line.split('=').next().unwrap();
            assert!(
                name.starts_with("KNOCKD_")
                    || PASS_THROUGH.contains(&name)
                    || ["PWD", "SHLVL", "OLDPWD", "_"].contains(&name),
                "{name} leaked into the hook's environment"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_slow_hook_is_killed_and_reaped() {
        let dir = temp_dir("slow");
        let hook = script(&dir, "echo started; exec sleep 30");
        let runner = Runner::new(vec![hook], Duration::from_millis(300));
        let t = Instant::now();
        let outcome = runner.run(&sample(EventKind::Fail)).unwrap();
        assert_eq!(outcome.status, None);
        assert_eq!(
            outcome.describe(Duration::from_secs(10)),
            "killed after 10s, output: started"
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Whether a process is still running: gone, or a zombie nobody reaped yet (in a container
    /// whose init does not reap), counts as not running.
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            })
            .is_some_and(|state| state != 'Z' && state != 'X')
    }

    #[test]
    fn a_killed_hook_takes_its_background_children_with_it() {
        let dir = temp_dir("group");
        let pid_file = dir.join("bg.pid");
        let hook = script(
            &dir,
            &format!(
                "sleep 60 &\necho $! > {}.tmp && mv {}.tmp {}\nsleep 30",
                pid_file.display(),
                pid_file.display(),
                pid_file.display()
            ),
        );
        let runner = Runner::new(vec![hook], Duration::from_millis(500));
        let outcome = runner.run(&sample(EventKind::Fail)).unwrap();
        assert_eq!(outcome.status, None, "the hook was not killed");
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let t = Instant::now();
        while running(pid) && t.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(20));
        }
        let alive = running(pid);
        if alive {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        assert!(
            !alive,
            "the hook's background child {pid} survived the kill"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn at_most_a_few_hooks_at_once() {
        let dir = temp_dir("busy");
        let hook = script(&dir, "exec sleep 30");
        let runner = Runner::new(vec![hook], Duration::from_millis(400));
        let (tx, rx) = mpsc::channel();
        for _ in 0..MAX_RUNNING {
            let tx = tx.clone();
            runner
                .start(&sample(EventKind::Fail), move |r| {
                    let _ = tx.send(r);
                })
                .unwrap();
        }
        let busy = runner.start(&sample(EventKind::Fail), |_| {});
        assert!(
            matches!(busy, Err(NotifyError::Busy(MAX_RUNNING))),
            "{busy:?}"
        );
        for _ in 0..MAX_RUNNING {
            let r = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            assert_eq!(r.status, None);
        }
        // All finished: room again.
        let t = Instant::now();
        while runner.running.load(Ordering::Acquire) > 0 && t.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(runner.start(&sample(EventKind::Fail), |_| {}).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let r = Runner::new(vec!["/nonexistent/hook".into()], HOOK_TIMEOUT)
            .run(&sample(EventKind::Fail));
        let e = r.unwrap_err().to_string();
        assert!(e.contains("/nonexistent/hook: cannot run"), "{e}");
    }
}
