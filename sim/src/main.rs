//! lighthouse-sim: a strict local stand-in for the Tencent Cloud Lighthouse firewall API
//! (docs/lighthouse-api.md), with fault injection, for knockd's integration tests.
//!
//! One thread per connection, all state behind one mutex; injected latency is slept outside it.
//!
//! Modules, each using only those listed after it:
//! - `api`: the request checks in the cloud's order, then the seven actions;
//! - `auth`: the server side of TC3-HMAC-SHA256;
//! - `state`: instances, counters, rate-limit windows, the fault-injection PRNG;
//! - `args`: the command line (`Config`);
//! - `rules`: the firewall rule model, its validation and identity;
//! - `action`: the actions, their rate limits and fields;
//! - `ids`: regions and instance IDs;
//! - `error`: `ApiError`, the code and message of an error answer;
//! - `http`: just enough HTTP/1.1;
//! - `knockd_api`: the only door to the knockd library (signing and clock).

#![forbid(unsafe_code)]
// A function is read whole: at most 80 lines outside tests (clippy.toml; `make lint`).
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

mod action;
mod api;
mod args;
mod auth;
mod error;
mod http;
mod ids;
mod instances;
mod knockd_api;
mod rules;
mod state;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use action::Action;
use args::{Config, Parsed};
use http::{ReadError, Request};
use knockd_api::clock;
use state::{Instance, State};

struct Shared {
    cfg: Config,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in one connection thread must not take the whole simulator down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The simulated clock: real time plus `--clock-offset`.
fn sim_now(cfg: &Config) -> i64 {
    clock::now() + cfg.clock_offset
}

fn date_header(cfg: &Config) -> Option<String> {
    let now = u64::try_from(sim_now(cfg)).unwrap_or(0);
    cfg.date_header
        .then(|| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now)))
}

fn fail(msg: &str) -> ! {
    eprintln!("lighthouse-sim: {msg}");
    std::process::exit(2)
}

/// Starting rule sets: console defaults, then foreign rules, then the `--rules` file.
fn build_instances(cfg: &Config) -> Result<Vec<Instance>, String> {
    let mut instances: Vec<Instance> = cfg
        .instances
        .iter()
        .enumerate()
        .map(|(index, (region, id))| {
            let mut rules = if cfg.default_rules {
                rules::default_rules()
            } else {
                Vec::new()
            };
            rules.extend(rules::foreign_rules(cfg.foreign_rules));
            Instance {
                id: id.clone(),
                region: region.clone(),
                // The doc examples show FirewallVersion 1 on a fresh firewall.
                version: 1,
                rules,
                index,
                busy_until: None,
            }
        })
        .collect();
    if let Some(path) = &cfg.rules_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--rules: cannot read {path}: {e}"))?;
        let doc: Value =
            serde_json::from_str(&text).map_err(|e| format!("--rules: {path} is not JSON: {e}"))?;
        let map = doc
            .as_object()
            .ok_or_else(|| format!("--rules: {path} must hold a JSON object"))?;
        for (id, list) in map {
            let inst = instances
                .iter_mut()
                .find(|i| &i.id == id)
                .ok_or_else(|| format!("--rules: `{id}` is not one of the --instance ids"))?;
            let list = list
                .as_array()
                .ok_or_else(|| format!("--rules: `{id}` must map to an array of rules"))?;
            for (i, item) in list.iter().enumerate() {
                let rule = rules::parse_rule(item, &format!("{id}.{i}"))
                    .map_err(|e| format!("--rules: {}: {}", e.code, e.message))?;
                if inst.rules.iter().any(|r| r.same(&rule, cfg.port_identity)) {
                    return Err(format!("--rules: `{id}.{i}` duplicates an existing rule"));
                }
                inst.rules.push(rule);
            }
        }
    }
    for inst in &instances {
        if inst.rules.len() > rules::MAX_RULES {
            return Err(format!(
                "{} would start with {} rules; the quota is {}",
                inst.id,
                inst.rules.len(),
                rules::MAX_RULES
            ));
        }
    }
    Ok(instances)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match args::parse(&argv) {
        Ok(Parsed::Run(cfg)) => *cfg,
        Ok(Parsed::Help) => {
            println!("{}", args::USAGE);
            return;
        }
        Err(msg) => fail(&msg),
    };
    let instances = build_instances(&cfg).unwrap_or_else(|msg| fail(&msg));
    let seed = cfg.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id()).rotate_left(32)
    });
    let listener = TcpListener::bind(cfg.listen)
        .unwrap_or_else(|e| fail(&format!("cannot listen on {}: {e}", cfg.listen)));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail(&format!("cannot read the bound address: {e}")));
    let state = State::new(&cfg, instances, seed);
    let shared = Arc::new(Shared {
        cfg,
        state: Mutex::new(state),
    });
    eprintln!("lighthouse-sim: seed {seed}");
    let mut out = std::io::stdout();
    let _ = writeln!(out, "lighthouse-sim listening on http://{addr}");
    let _ = out.flush();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("conn".into())
            .spawn(move || serve(stream, &shared));
        if let Err(e) = spawned {
            eprintln!("lighthouse-sim: cannot spawn a connection thread: {e}");
        }
    }
}

fn error_body(rid: &str, code: &str, message: &str) -> Vec<u8> {
    json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": rid}})
        .to_string()
        .into_bytes()
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    // Idle pooled connections are closed eventually so threads do not pile up.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let _ = stream.set_nodelay(true);
    let cfg = &shared.cfg;
    let mut buf = Vec::new();
    loop {
        let req = match http::read_request(&mut stream, &mut buf) {
            Ok(r) => r,
            Err(ReadError::Closed | ReadError::Io) => return,
            Err(ReadError::Reject(status, reason)) => {
                let rid = shared.lock().rng.request_id();
                let body = error_body(&rid, "InvalidParameter", reason);
                let date = date_header(cfg);
                let _ = http::write_response(
                    &mut stream,
                    status,
                    reason,
                    date.as_deref(),
                    &body,
                    false,
                );
                return;
            }
            Err(ReadError::TooLarge) => {
                let rid = {
                    let mut st = shared.lock();
                    *st.errors
                        .entry("RequestSizeLimitExceeded".to_string())
                        .or_insert(0) += 1;
                    st.rng.request_id()
                };
                let body = error_body(
                    &rid,
                    "RequestSizeLimitExceeded",
                    "The request body is too large.",
                );
                let date = date_header(cfg);
                let _ = http::write_response(&mut stream, 200, "OK", date.as_deref(), &body, false);
                return;
            }
        };
        let (status, reason, body) = match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/__state") => {
                let dump = shared.lock().dump(sim_now(cfg));
                (200, "OK", dump.to_string().into_bytes())
            }
            ("POST", "/") => match api_call(shared, &req) {
                Some(body) => (200, "OK", body),
                None => {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            },
            _ => {
                let rid = shared.lock().rng.request_id();
                let msg = "Only POST / (the API) and GET /__state exist.";
                (404, "Not Found", error_body(&rid, "InvalidAction", msg))
            }
        };
        let date = date_header(cfg);
        let sent = http::write_response(
            &mut stream,
            status,
            reason,
            date.as_deref(),
            &body,
            req.keep_alive,
        );
        if sent.is_err() || !req.keep_alive {
            return;
        }
    }
}

/// The `InstanceId` a request names, read leniently before any check, for `calls_by_instance`.
fn peek_instance(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    // Bounded, so a hostile body cannot flood the log or the state dump's keys.
    let id = v.get("InstanceId")?.as_str()?;
    (id.len() <= 64 && !id.chars().any(char::is_control)).then(|| id.to_string())
}

/// The region a request names, for `calls_by_region`: a known region by name, `-` when the
/// header is absent and `?` for anything else (so a hostile header cannot add keys).
fn peek_region(req: &Request) -> &'static str {
    match req.header("x-tc-region") {
        None | Some("") => "-",
        Some(r) => ids::REGIONS
            .iter()
            .map(|(id, ..)| *id)
            .find(|id| *id == r)
            .unwrap_or("?"),
    }
}

/// One API call; `None` means close the connection without answering.
fn api_call(shared: &Shared, req: &Request) -> Option<Vec<u8>> {
    let cfg = &shared.cfg;
    let action = req.header("x-tc-action").and_then(Action::parse);
    let action_name = action
        .map(Action::name)
        .or(req.header("x-tc-action"))
        .unwrap_or("-")
        .to_string();
    let instance = peek_instance(&req.body);
    let inst_name = instance.as_deref().unwrap_or("-");
    let (dropped, delay_ms) = {
        let mut st = shared.lock();
        if let Some(a) = action {
            st.count_call(a, instance.as_deref(), peek_region(req), &req.host());
        }
        let dropped = st.rng.chance(cfg.drop_rate);
        let spike = st.rng.chance(cfg.spike_rate);
        (
            dropped,
            cfg.latency_ms + if spike { cfg.spike_ms } else { 0 },
        )
    };
    if dropped {
        eprintln!("lighthouse-sim: {action_name} {inst_name} DROPPED (before processing) -");
        return None;
    }
    if delay_ms > 0 {
        thread::sleep(Duration::from_millis(delay_ms));
    }
    let (answer, outcome, rid, drop_after_apply) = {
        let mut st = shared.lock();
        let processed = api::process(&mut st, cfg, req, action, sim_now(cfg));
        let rid = st.rng.request_id();
        let (answer, outcome) = match processed.result {
            Ok(fields) => (Ok(fields), "OK".to_string()),
            Err(e) => {
                *st.errors.entry(e.code.clone()).or_insert(0) += 1;
                let code = e.code.clone();
                (Err(e), code)
            }
        };
        (answer, outcome, rid, processed.drop_after_apply)
    };
    // Written out after the lock is released: concurrent calls (ten writers describing at
    // once) wait on the state, not on each other's serialisation.
    let body = match answer {
        Ok(mut fields) => {
            fields.insert("RequestId".into(), rid.clone().into());
            // Moved, not `json!({ "Response": fields })`, which serialises the fields into a
            // second tree first: for a Describe of 100 rules, thousands of allocations.
            let mut envelope = Map::new();
            envelope.insert("Response".into(), Value::Object(fields));
            Value::Object(envelope).to_string().into_bytes()
        }
        Err(e) => error_body(&rid, &e.code, &e.message),
    };
    if drop_after_apply {
        eprintln!(
            "lighthouse-sim: {action_name} {inst_name} {outcome} {rid} DROPPED (after apply)"
        );
        return None;
    }
    eprintln!("lighthouse-sim: {action_name} {inst_name} {outcome} {rid}");
    Some(body)
}
