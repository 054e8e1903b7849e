//! Fixture around the `lighthouse-sim` binary: start it on a free port, sign and send API calls,
//! read its `/__state` dump. The simulator's own tests (`sim/tests/`) use this file too.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use knockd::cloud::sign::{self, Credentials};
use serde_json::Value;

use super::{INSTANCE, INSTANCE_ARG, SECRET_ID, SECRET_KEY};

pub const VERSION: &str = "2020-03-24";

/// The `lighthouse-sim` executable. Cargo names it to the simulator's own tests
/// (`CARGO_BIN_EXE_lighthouse-sim`), but not to knockd's: the simulator is another package of
/// the workspace. For those, the first call builds it, once per test binary, with the profile
/// and target this test binary was built with and into the same target directory, and takes its
/// path from Cargo's own report of the build.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| match option_env!("CARGO_BIN_EXE_lighthouse-sim") {
        Some(path) => PathBuf::from(path),
        None => match std::env::var("NEXTEST_RUN_ID") {
            Ok(run) => build_binary_once_per_run(&run),
            Err(_) => build_binary(),
        },
    })
}

/// The profile directory of this test binary: `<target dir>[/<triple>]/<profile dir>/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in <profile>/deps/", exe.display()))
        .to_path_buf()
}

/// cargo-nextest runs every test in a process of its own, so "once per test binary" would be
/// once per test, each a `cargo build` that waits for the others' lock on the target directory.
/// Instead the first test of a run (NEXTEST_RUN_ID) builds, holding a lock on a file in the
/// profile directory, and leaves the path there for the other tests of the same run.
fn build_binary_once_per_run(run: &str) -> PathBuf {
    use std::io::{Read, Seek, Write};
    let file = profile_dir().join("lighthouse-sim-for-tests");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    f.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", file.display()));
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    if let Some((id, path)) = text.split_once('\n') {
        let path = PathBuf::from(path);
        if id == run && path.is_file() {
            return path;
        }
    }
    let path = build_binary();
    let record = format!("{run}\n{}", path.display());
    f.set_len(0).expect("truncate");
    f.rewind().expect("rewind");
    f.write_all(record.as_bytes()).expect("record the path");
    path
}

fn build_binary() -> PathBuf {
    // A test binary sits in `<target dir>[/<triple>]/<profile dir>/deps/`. This follows
    // CARGO_TARGET_DIR, `--target-dir`, `--target` and `--release` without reading any of them.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = profile_dir();
    let profile_dir = profile_dir.as_path();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => panic!("{} has no profile directory", exe.display()),
    };
    let above = profile_dir.parent().expect("a target directory");
    // Cargo marks the root of a target directory with CACHEDIR.TAG; a directory between it and
    // the profile's is a `--target` triple.
    let (target_dir, triple) = match above.parent() {
        Some(root)
            if !above.join("CACHEDIR.TAG").exists() && root.join("CACHEDIR.TAG").exists() =>
        {
            (root, above.file_name())
        }
        _ => (above, None),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    // Cargo gives a test the variables it gives the crate being compiled, and those knockd's
    // build.rs sets (KNOCKD_*). Build scripts watch some of them (ring's, knockd's), so a nested
    // build that inherited them would rebuild here, and the next plain build would rebuild back.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
            || name.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*name,
                "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
                    | "KNOCKD_COMMIT"
                    | "KNOCKD_TARGET"
            )
        {
            cmd.env_remove(&*name);
        }
    }
    cmd.current_dir(workspace)
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args([
            "-p",
            "lighthouse-sim",
            "--bin",
            "lighthouse-sim",
            "--profile",
            profile,
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--target-dir")
        .arg(target_dir);
    if let Some(triple) = triple {
        cmd.arg("--target").arg(triple);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build lighthouse-sim: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let built = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "lighthouse-sim")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    match built {
        Some(path) if out.status.success() => path,
        _ => panic!(
            "building lighthouse-sim failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

pub struct Sim {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
    /// The command the simulator was started under (`ip netns exec NAME`), empty for none;
    /// its state is then read through curl under the same command.
    wrap: Vec<String>,
}

impl Sim {
    /// Spawns the simulator with `--listen 127.0.0.1:0 --credential SECRET_ID:SECRET_KEY` plus
    /// `args`, and waits (10 s at most) for its startup line to learn the port.
    pub fn start(args: &[&str]) -> Sim {
        Sim::start_in(&[], args)
    }

    /// `start` under `wrap` (`["ip", "netns", "exec", NAME]`: inside a network namespace).
    pub fn start_in(wrap: &[String], args: &[&str]) -> Sim {
        let credential = format!("{SECRET_ID}:{SECRET_KEY}");
        let mut cmd = match wrap.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--credential", &credential])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lighthouse-sim");
        let log = super::capture(child.stderr.take().expect("stderr piped"));
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let port = line
            .trim()
            .strip_prefix("lighthouse-sim listening on http://127.0.0.1:")
            .and_then(|p| p.parse::<u16>().ok());
        match port {
            Some(port) => Sim {
                child,
                port,
                log,
                wrap: wrap.to_vec(),
            },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(100));
                let log = log.lock().expect("log lock").clone();
                panic!("lighthouse-sim did not start (stdout {line:?}); stderr:\n{log}");
            }
        }
    }

    /// The simulator with `INSTANCE` alone (in `REGION`, console default rules).
    pub fn single() -> Sim {
        Sim::start(&["--instance", INSTANCE_ARG])
    }

    /// The simulator with `INSTANCE` (console default rules) plus `rules`, a JSON array of
    /// FirewallRule objects given to `--rules` through a file, and `extra` flags.
    pub fn with_rules(rules: &Value, extra: &[&str]) -> Sim {
        static N: AtomicU32 = AtomicU32::new(0);
        let file = std::env::temp_dir().join(format!(
            "knockd-sim-rules-{}-{}.json",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut seeded = serde_json::Map::new();
        seeded.insert(INSTANCE.to_string(), rules.clone());
        std::fs::write(&file, Value::Object(seeded).to_string()).expect("rules file");
        let path = file.to_str().expect("utf-8 temp path");
        let mut args = vec!["--instance", INSTANCE_ARG, "--rules", path];
        args.extend_from_slice(extra);
        Sim::start(&args)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the simulator wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Whether a line of the log passes `test` within `limit`. A thread drains stderr, so a line
    /// the simulator wrote before it answered can reach `log()` after the answer reached a test
    /// (later still on a busy machine): a test that looks for a line waits for it.
    pub fn wait_log_line(&self, limit: Duration, test: impl Fn(&str) -> bool) -> bool {
        let start = std::time::Instant::now();
        loop {
            if self.log().lines().any(&test) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `wait_log_line` for a line that contains `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        self.wait_log_line(limit, |l| l.contains(needle))
    }

    pub fn state(&self) -> Value {
        if let Some((program, rest)) = self.wrap.split_first() {
            let out = Command::new(program)
                .args(rest)
                .args(["curl", "-sS", "--max-time", "10"])
                .arg(format!("{}/__state", self.url()))
                .output()
                .expect("curl /__state in the namespace");
            assert!(out.status.success(), "GET /__state: {out:?}");
            return serde_json::from_slice(&out.stdout).expect("state is JSON");
        }
        let text = ureq::get(&format!("{}/__state", self.url()))
            .timeout(Duration::from_secs(10))
            .call()
            .expect("GET /__state")
            .into_string()
            .expect("state body");
        serde_json::from_str(&text).expect("state is JSON")
    }

    fn instance(&self, instance: &str) -> Value {
        let state = self.state();
        state["instances"]
            .as_array()
            .expect("instances array")
            .iter()
            .find(|i| i["InstanceId"] == instance)
            .cloned()
            .unwrap_or_else(|| panic!("{instance} not in the state dump"))
    }

    pub fn rules(&self, instance: &str) -> Vec<Value> {
        self.instance(instance)["Rules"]
            .as_array()
            .expect("Rules array")
            .clone()
    }

    /// The rules of `instance` for the address `addr` (see `rules_for`).
    pub fn rules_for(&self, instance: &str, addr: &str) -> Vec<Value> {
        rules_for(&self.rules(instance), addr)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Every API call the simulator received, of any action.
    pub fn total_calls(&self) -> u64 {
        self.state()["calls"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }

    pub fn calls(&self, action: &str) -> u64 {
        self.state()["calls"][action].as_u64().unwrap_or(0)
    }

    /// Calls of `action` sent with `X-TC-Region: region` (`-` for none), whatever their outcome.
    pub fn calls_in(&self, region: &str, action: &str) -> u64 {
        self.state()["calls_by_region"][region][action]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn errors(&self, code: &str) -> u64 {
        self.state()["errors"][code].as_u64().unwrap_or(0)
    }

    pub fn version(&self, instance: &str) -> u64 {
        self.instance(instance)["FirewallVersion"]
            .as_u64()
            .expect("FirewallVersion")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            thread::sleep(Duration::from_millis(50));
            super::assert_no_secrets("lighthouse-sim", &self.log());
        }
    }
}

pub fn now() -> i64 {
    knockd::clock::now()
}

/// `Response.Error.Code` of an API answer, if it is an error.
pub fn code(v: &Value) -> Option<&str> {
    v["Response"]["Error"]["Code"].as_str()
}

/// The headers the official SDK sends (docs/lighthouse-api.md#headers), signed over `content-type;host`.
pub fn signed_headers(
    sim_port: u16,
    action: &str,
    region: Option<&str>,
    body: &str,
    timestamp: i64,
    secret_id: &str,
    secret_key: &str,
) -> Vec<(String, String)> {
    let host = format!("127.0.0.1:{sim_port}");
    let signed = sign::sign(
        &Credentials {
            secret_id,
            secret_key,
        },
        "lighthouse",
        &host,
        "application/json",
        timestamp,
        body.as_bytes(),
    );
    let mut h = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-TC-Action".to_string(), action.to_string()),
        ("X-TC-Version".to_string(), VERSION.to_string()),
        ("X-TC-Timestamp".to_string(), timestamp.to_string()),
        ("Authorization".to_string(), signed.authorization),
    ];
    if let Some(r) = region {
        h.push(("X-TC-Region".to_string(), r.to_string()));
    }
    h
}

/// An API answer with the headers tests look at.
pub struct Reply {
    pub status: u16,
    pub date: Option<String>,
    pub content_type: Option<String>,
    pub json: Value,
}

/// POST / with exactly these headers (ureq adds `Host: 127.0.0.1:PORT` and `Content-Length`).
/// Err is a transport failure: refused, reset, closed without an answer, timeout.
pub fn post_raw(sim_port: u16, headers: &[(String, String)], body: &[u8]) -> Result<Reply, String> {
    let mut req =
        ureq::post(&format!("http://127.0.0.1:{sim_port}/")).timeout(Duration::from_secs(10));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let date = resp.header("Date").map(str::to_string);
    let content_type = resp.header("Content-Type").map(str::to_string);
    let text = resp.into_string().map_err(|e| e.to_string())?;
    let json = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    Ok(Reply {
        status,
        date,
        content_type,
        json,
    })
}

/// `post_raw` for tampered requests; panics on transport errors.
pub fn call_raw(sim_port: u16, headers: &[(String, String)], body: &[u8]) -> (u16, Value) {
    let r = post_raw(sim_port, headers, body).expect("simulator answers");
    (r.status, r.json)
}

/// A correctly signed API call.
pub fn call(
    sim_port: u16,
    action: &str,
    region: Option<&str>,
    body: &str,
    timestamp: i64,
    secret_id: &str,
    secret_key: &str,
) -> (u16, Value) {
    let headers = signed_headers(
        sim_port, action, region, body, timestamp, secret_id, secret_key,
    );
    call_raw(sim_port, &headers, body.as_bytes())
}

/// A correctly signed call with the fixture credentials and the current time.
pub fn call_now(sim_port: u16, action: &str, region: Option<&str>, body: &str) -> (u16, Value) {
    call(sim_port, action, region, body, now(), SECRET_ID, SECRET_KEY)
}

/// `call_now` without reading the answer: for answers that are not JSON or never come.
pub fn post_now(
    sim_port: u16,
    action: &str,
    region: Option<&str>,
    body: &str,
) -> Result<Reply, String> {
    let headers = signed_headers(sim_port, action, region, body, now(), SECRET_ID, SECRET_KEY);
    post_raw(sim_port, &headers, body.as_bytes())
}

/// The rules of `rules` for the address `addr`: its CidrBlock or its Ipv6CidrBlock.
pub fn rules_for<'a>(rules: &'a [Value], addr: &str) -> Vec<&'a Value> {
    rules
        .iter()
        .filter(|r| {
            r.get("CidrBlock").and_then(Value::as_str) == Some(addr)
                || r.get("Ipv6CidrBlock").and_then(Value::as_str) == Some(addr)
        })
        .collect()
}

/// Every rule identity (protocol, port, address block, action) appears at most once.
pub fn assert_no_duplicate_rules(who: &str, rules: &[Value]) {
    let mut seen = std::collections::HashSet::new();
    for r in rules {
        let key = (
            r["Protocol"].to_string(),
            r["Port"].to_string(),
            r["CidrBlock"].to_string(),
            r["Ipv6CidrBlock"].to_string(),
            r["Action"].to_string(),
        );
        assert!(seen.insert(key), "{who}: duplicate rule {r}: {rules:#?}");
    }
}

/// A correctly signed call to the simulator on `sim_port` that names `host` in `Host` and in
/// the signature, as a client of that host (a regional host, through a proxy or a hosts file)
/// sends it. The simulator counts rate limits per Host (docs/lighthouse-api.md#rate-limits).
#[allow(clippy::too_many_arguments)]
pub fn call_via_host(
    sim_port: u16,
    host: &str,
    action: &str,
    region: Option<&str>,
    body: &str,
    timestamp: i64,
    secret_id: &str,
    secret_key: &str,
) -> (u16, Value) {
    let signed = sign::sign(
        &Credentials {
            secret_id,
            secret_key,
        },
        "lighthouse",
        host,
        "application/json",
        timestamp,
        body.as_bytes(),
    );
    let mut headers = vec![
        ("Host".to_string(), host.to_string()),
        ("Content-Type".to_string(), "application/json".to_string()),
        ("X-TC-Action".to_string(), action.to_string()),
        ("X-TC-Version".to_string(), VERSION.to_string()),
        ("X-TC-Timestamp".to_string(), timestamp.to_string()),
        ("Authorization".to_string(), signed.authorization),
    ];
    if let Some(r) = region {
        headers.push(("X-TC-Region".to_string(), r.to_string()));
    }
    call_raw(sim_port, &headers, body.as_bytes())
}

impl Sim {
    /// Calls of `action` sent with `Host: host` (lowercase; `-` for none), whatever their outcome.
    pub fn calls_to(&self, host: &str, action: &str) -> u64 {
        self.state()["calls_by_host"][host][action]
            .as_u64()
            .unwrap_or(0)
    }
}

/// How many calls the simulator refused with a RequestLimitExceeded code, from its state.
pub fn rate_limited(state: &Value) -> u64 {
    state["errors"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("RequestLimitExceeded"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or(0)
}
