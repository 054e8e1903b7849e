//! Fixture around the `lighthouse-sim` binary: start it on a free port, sign and send API calls,
//! read its `/__state` dump.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use knockd::cloud::sign::{self, Credentials};
use serde_json::Value;

use super::{SECRET_ID, SECRET_KEY};

pub const VERSION: &str = "2020-03-24";

pub struct Sim {
    child: Child,
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Sim {
    /// Spawns the simulator with `--listen 127.0.0.1:0 --credential SECRET_ID:SECRET_KEY` plus
    /// `args`, and waits (10 s at most) for its startup line to learn the port.
    pub fn start(args: &[&str]) -> Sim {
        let credential = format!("{SECRET_ID}:{SECRET_KEY}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_lighthouse-sim"))
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
            Some(port) => Sim { child, port, log },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                thread::sleep(Duration::from_millis(100));
                let log = log.lock().expect("log lock").clone();
                panic!("lighthouse-sim did not start (stdout {line:?}); stderr:\n{log}");
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the simulator wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn state(&self) -> Value {
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

    pub fn calls(&self, action: &str) -> u64 {
        self.state()["calls"][action].as_u64().unwrap_or(0)
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
