//! Fixture around the real `knockd` binary: write a config, start it on a free loopback port,
//! wait until it listens, knock with real curl and wget, kill it on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::sim::Sim;
use super::{SECRET_ID, SECRET_KEY};

/// The knock secret of every test config; it contains `$` on purpose.
pub const REFERER: &str = "s3cret-Kn0ck$Ref";
pub const SUCCESS: &str = "500 Internal Server Error.";
pub const FAILURE: &str = "500 Internal Server Error";

/// A loopback port free now, for a process started next to listen on. Taken at random below
/// Linux's ephemeral range (32768 and up): a port from that range is handed out again to the
/// outgoing connections of the whole suite (curl, knockd's API calls), so under parallel runs
/// another process could take it before knockd bound it ("Address already in use").
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU32 = AtomicU32::new(0);
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(N.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        let port = 20_000 + (h.finish() % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000..32000")
}

/// A fresh directory under the system temp dir, unique per process and call.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "knockd-test-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The config every knock test starts from: the simulator as endpoint, METHOD 2 behind the
/// loopback "proxy" (tests knock from 127.0.0.1 and name the client in X-Forwarded-For).
pub fn base_config(sim: &Sim, instances: &str, port: u16) -> Vec<(String, String)> {
    [
        ("TENCENT_CLOUD_SECRET_ID", SECRET_ID.to_string()),
        ("TENCENT_CLOUD_SECRET_KEY", SECRET_KEY.to_string()),
        ("TENCENT_CLOUD_ACCESS_POINT", sim.url()),
        (
            "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
            instances.to_string(),
        ),
        ("TENCENT_CLOUD_REGION", "ap-guangzhou".to_string()),
        ("KNOCK_REFERER", REFERER.to_string()),
        ("FW_PERMIT_PORTS_TCP", "22,443".to_string()),
        ("FW_PERMIT_PORTS_UDP", "51820".to_string()),
        ("BIND_IP", "127.0.0.1".to_string()),
        ("BIND_PORT", port.to_string()),
        ("METHOD_TO_GET_CLIENT_IP", "2".to_string()),
        ("PRUNE_INTERVAL", "0".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub fn set(config: &mut Vec<(String, String)>, key: &str, value: &str) {
    config.retain(|(k, _)| k != key);
    config.push((key.to_string(), value.to_string()));
}

/// The BIND_PORT of a test config.
pub fn bind_port(config: &[(String, String)]) -> u16 {
    config
        .iter()
        .find(|(k, _)| k == "BIND_PORT")
        .and_then(|(_, v)| v.parse().ok())
        .expect("BIND_PORT in test config")
}

/// Writes `KEY='value'` lines (single quotes: values stay literal) to `dir/.env`.
pub fn write_config(dir: &Path, config: &[(String, String)]) -> PathBuf {
    let text: String = config.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    let path = dir.join(".env");
    std::fs::write(&path, text).expect("write config");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    path
}

/// `program` under `wrap` (`ip netns exec NAME program`), or alone when `wrap` is empty.
pub fn wrapped(wrap: &[String], program: &str) -> Command {
    match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Runs knockd to completion (a CLI command) with a clean environment.
pub fn run(config: &Path, args: &[&str]) -> Output {
    run_in(&[], config, args)
}

/// `run` under `wrap`.
pub fn run_in(wrap: &[String], config: &Path, args: &[&str]) -> Output {
    wrapped(wrap, env!("CARGO_BIN_EXE_knockd"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run knockd")
}

pub struct Knockd {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
    pub config: PathBuf,
}

impl Knockd {
    /// Starts `knockd` (serve) with this config and waits (10 s) until it listens.
    pub fn start(dir: &Path, config: &[(String, String)]) -> Knockd {
        Knockd::start_in(&[], dir, config)
    }

    /// `start` under `wrap` (`["ip", "netns", "exec", NAME]`: inside a network namespace).
    pub fn start_in(wrap: &[String], dir: &Path, config: &[(String, String)]) -> Knockd {
        let port = bind_port(config);
        let path = write_config(dir, config);
        let mut child = wrapped(wrap, env!("CARGO_BIN_EXE_knockd"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn knockd");
        let log = super::capture(child.stderr.take().expect("stderr piped"));
        let k = Knockd {
            child,
            port,
            log,
            config: path,
        };
        if !k.wait_log("listening on", Duration::from_secs(10)) {
            panic!("knockd did not start; stderr:\n{}", k.log());
        }
        k
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits up to `limit` until `needle` occurs `count` times or more in the log; whether
    /// it did. (A refusal's line is written after its answer, so a test that has its answers
    /// may still have to wait for the lines.)
    pub fn wait_log_count(&self, needle: &str, count: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log().matches(needle).count() >= count {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`TERM`, `HUP`, …) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit; its status, or None if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Knockd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            // Let the stderr reader drain what the process wrote last.
            thread::sleep(Duration::from_millis(50));
            super::assert_no_secrets("knockd", &self.log());
        }
    }
}

/// Installs curl and wget when missing (a fresh CI machine): the tests knock with the real
/// clients operators use.
pub fn ensure_clients() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let missing: Vec<&str> = ["curl", "wget"]
            .into_iter()
            .filter(|c| {
                Command::new(c)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map_or(true, |s| !s.success())
            })
            .collect();
        if !missing.is_empty() {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-qq"])
                .args(&missing)
                .status();
        }
    });
}

/// curl with a 20 s cap; returns (HTTP status, body).
pub fn curl(args: &[&str]) -> (u16, String) {
    curl_in(&[], args)
}

/// `curl` under `wrap` (`["ip", "netns", "exec", NAME]`: inside a network namespace).
pub fn curl_in(wrap: &[String], args: &[&str]) -> (u16, String) {
    ensure_clients();
    let out = wrapped(wrap, "curl")
        .args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A knock as an operator's script sends it, from `client` (via X-Forwarded-For).
pub fn knock_curl(k: &Knockd, client: &str, label: &str) -> String {
    let (status, body) = curl(&[
        "-H",
        &format!("Referer: {REFERER}"),
        "-H",
        &format!("Location: {label}"),
        "-H",
        &format!("X-Forwarded-For: {client}"),
        &k.url("/favico.ico"),
    ]);
    assert_eq!(status, 500, "knockd always answers 500");
    body
}

/// The same knock with wget (which treats 500 as an error but still saves the body).
pub fn knock_wget(k: &Knockd, client: &str, label: &str) -> String {
    ensure_clients();
    let out = Command::new("wget")
        .args([
            "-q",
            "-O",
            "-",
            "--timeout=20",
            "--tries=1",
            "--content-on-error",
        ])
        .arg(format!("--header=Referer: {REFERER}"))
        .arg(format!("--header=Location: {label}"))
        .arg(format!("--header=X-Forwarded-For: {client}"))
        .arg(k.url("/favico.ico"))
        .output()
        .expect("run wget");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The step-2 query of a key knock, `k=LABEL.T.N.G[.L].H`, for `challenge` (`T.N.G`) and an
/// optional lifetime L: H = SHA-256 of `KEY:LABEL:T.N.G[.L]:KEY`, registered as a secret.
pub fn step2(label: &str, key: &str, challenge: &str, lifetime: Option<u64>) -> String {
    use sha2::{Digest, Sha256};
    let signed = match lifetime {
        Some(l) => format!("{challenge}.{l}"),
        None => challenge.to_string(),
    };
    let h = hex::encode(Sha256::digest(format!("{key}:{label}:{signed}:{key}")));
    super::forbid_in_logs("a knock's H", &h);
    format!("k={label}.{signed}.{h}")
}

/// A GET of `url` as from `xff` (X-Forwarded-For, behind the loopback proxy): the body, once
/// the status is checked to be knockd's one status, 500.
pub fn get_as(url: &str, xff: &str) -> String {
    let (status, body) = curl(&["-H", &format!("X-Forwarded-For: {xff}"), url]);
    assert_eq!(status, 500, "knockd always answers 500");
    body
}

/// Everything the peer sends until it closes (or the read fails), as text.
pub fn read_all(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

/// The bodies of the responses in `raw` (knockd's, all `500`), in order.
pub fn bodies(raw: &str) -> Vec<String> {
    raw.split("HTTP/1.1 500 Internal Server Error\r\n")
        .skip(1)
        .map(|r| r.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
        .collect()
}

/// `VmHWM`, `VmRSS` (kB) and `Threads` of a process.
pub fn proc_status(pid: u32) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"), field("Threads:"))
}
