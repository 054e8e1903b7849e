//! The knock port's front door: the accept loop and admission. One small thread per open
//! connection up to MAX_CONNECTIONS, admitted by the connection `table`. The loop polls the listener so that
//! SIGTERM/SIGINT stop it: then in-flight knocks finish (bounded by KNOCK_TIMEOUT), are answered
//! and logged, and `serve` returns 0. What a connection does is in `conn`, what a request means
//! in `door` and `decide`; the firewall writes happen on the cloud layer's per-instance writers.
//!
//! Why not tiny_http: measured on a static musl build, one `Content-Length: 100000000000000`
//! request aborts it, it has no read timeout, no head-size limit and no connection cap, and an
//! accept error ends its loop for good. See README, "Design notes".

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::conn;
use super::door::Door;
use super::events;
use super::key_knock::Keys;
use super::table::ConnTable;
use super::{hygiene, signals};
use crate::cloud::client::Client;
use crate::cloud::writer::Writers;
use crate::config::Config;
use crate::exit::Exit;
use crate::log;

/// Connection threads only parse heads and wait on a channel; API calls run on writers.
const CONNECTION_STACK: usize = 128 * 1024;

pub(crate) fn serve(config: &Config) -> Exit {
    let config = Arc::new(config.clone());
    let keys = match Keys::open(&config) {
        Ok(k) => k,
        Err(e) => {
            log::error(&e);
            return Exit::Usage;
        }
    };
    let client = match Client::new(&config) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log::error(&e.to_string());
            return Exit::Usage;
        }
    };
    log::start();
    if let Err(e) = signals::install() {
        log::error(&format!("cannot install signal handlers: {e}"));
        return Exit::Failure;
    }
    let instances = config.cloud.instances.len();
    let want = config.limits.max_connections as u64 + hygiene::reserved_fds(instances);
    let nofile = hygiene::raise_nofile(want);
    let max_connections =
        hygiene::connections_within(nofile, config.limits.max_connections, instances);
    if max_connections < config.limits.max_connections {
        log::event(&format!(
            "warning: MAX_CONNECTIONS={} lowered to {max_connections}: the descriptor limit \
             (RLIMIT_NOFILE) is {} and cannot be raised to {want}",
            config.limits.max_connections,
            nofile.unwrap_or(0)
        ));
    }
    let bind = config.knock.bind;
    let listener = match TcpListener::bind(bind).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    }) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            log::error(&format!(
                "cannot listen on {bind}: {e}: {}",
                bind_denied_hint(bind)
            ));
            return Exit::Usage;
        }
        Err(e) => {
            log::error(&format!("cannot listen on {bind}: {e}"));
            return Exit::Failure;
        }
    };
    let notifier = events::start(&config);
    let writers = match Writers::start(&config, &client, &notifier) {
        Ok(w) => w,
        Err(e) => {
            log::error(&e);
            return Exit::Failure;
        }
    };
    let door = Arc::new(Door::new(
        Arc::clone(&config),
        Box::new(writers),
        ConnTable::new(max_connections),
        notifier,
        keys,
    ));
    let ports: Vec<String> = config
        .rules
        .ports
        .iter()
        .map(|(p, list)| format!("{}:{list}", p.as_str()))
        .collect();
    let instances: Vec<String> = config
        .cloud
        .instances
        .iter()
        .map(|i| format!("{}:{}", i.region, i.id))
        .collect();
    // The hosts the instances' calls go to: one per region unless TENCENT_CLOUD_ACCESS_POINT
    // names one (docs/lighthouse-api.md#rate-limits).
    let endpoints: Vec<String> = config
        .cloud
        .endpoints()
        .iter()
        .map(|(e, _)| e.url())
        .collect();
    log::event(&format!(
        "knockd {} listening on {} path={} instances={} ports={} endpoint={} clients={} \
         referer-knock={}",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr().unwrap_or(bind),
        config.knock.path,
        instances.join(","),
        ports.join(","),
        endpoints.join(","),
        door.keys.client_count(),
        if config.knock.referer.expose().is_empty() {
            "off"
        } else {
            "on"
        },
    ));
    accept_loop(listener, &door)
}

/// How often the accept loop looks at the stop flag while no connection arrives.
const STOP_POLL: Duration = Duration::from_millis(200);

fn accept_loop(listener: TcpListener, door: &Arc<Door>) -> Exit {
    while !signals::stop_requested() {
        if signals::take_hup() {
            // SIGHUP re-reads the clients file at once (it is also re-read when it changes).
            door.keys.reload_clients();
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_readable(&listener, STOP_POLL);
                continue;
            }
            Err(e) => {
                // Out of descriptors: make room as at the cap, else the queued connections
                // (a knock among them) would wait for idle ones to time out.
                if matches!(e.raw_os_error(), Some(23 | 24)) {
                    door.table.evict_oldest_reading();
                }
                // EMFILE, ECONNABORTED and friends are transient: never stop accepting.
                door.log_rejected(|| format!("accept-error error=\"{e}\""));
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        // Accepted sockets do not inherit O_NONBLOCK on Linux; say so explicitly anyway.
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let stream = Arc::new(stream);
        let Some(id) = door.table.admit(&stream) else {
            door.log_rejected(|| format!("reject addr={} reason=connection-cap", peer.ip()));
            continue;
        };
        let d = Arc::clone(door);
        let spawned = thread::Builder::new()
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                conn::handle(&d, stream, peer, id);
                d.table.end(id);
            });
        if let Err(e) = spawned {
            door.table.end(id);
            door.log_rejected(|| format!("thread-error error=\"{e}\""));
        }
    }
    drop(listener);
    stop(door)
}

/// Blocks until `listener` has a connection to accept or `limit` has passed.
fn wait_readable(listener: &TcpListener, limit: Duration) {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = Timespec {
        tv_sec: limit.as_secs() as _,
        tv_nsec: limit.subsec_nanos() as _,
    };
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    if poll(&mut fds, Some(&timeout)).is_err() {
        thread::sleep(Duration::from_millis(20));
    }
}

/// The graceful stop, after SIGTERM or SIGINT: the listener is closed already; connections
/// waiting for a request are closed, knocks in flight finish (bounded by KNOCK_TIMEOUT plus the
/// answer's write budget), are answered and logged; then the log is flushed.
fn stop(door: &Door) -> Exit {
    let limit = door.config.limits.knock_timeout + conn::ANSWER_GRACE + Duration::from_secs(1);
    let give_up = Instant::now() + limit;
    log::event(&format!(
        "stopping: no new connections; {} knocks in flight",
        door.table.knocking()
    ));
    let left = door.table.drain(give_up);
    log::event(&format!("stopped ({left} connections cut off)"));
    log::flush(Duration::from_secs(2));
    Exit::Success
}

/// What to do about a listen socket the system refused. Retrying cannot help (only the
/// capability or the port can change), so the caller exits 2, which the shipped systemd unit
/// does not restart (RestartPreventExitStatus=2) instead of failing again every 5 s.
fn bind_denied_hint(bind: std::net::SocketAddr) -> String {
    let under_systemd = ["INVOCATION_ID", "JOURNAL_STREAM"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    let how = if bind.port() >= 1024 {
        "the system (a sandbox or security policy) forbids this address or port; pick another \
         BIND_IP or BIND_PORT"
            .to_string()
    } else if under_systemd {
        format!(
            "port {} is below 1024 and needs the capability CAP_NET_BIND_SERVICE: in \
             knockd.service replace CapabilityBoundingSet=, AmbientCapabilities= and \
             PrivateUsers=yes by the three commented lines under them (README, \"A knock port \
             below 1024\"), then systemctl daemon-reload and restart; or set BIND_PORT to 1024 \
             or above",
            bind.port()
        )
    } else {
        format!(
            "port {} is below 1024 and needs the capability CAP_NET_BIND_SERVICE: run knockd as \
             root, or grant it once with setcap cap_net_bind_service=+ep on the knockd binary; \
             or set BIND_PORT to 1024 or above",
            bind.port()
        )
    };
    format!("{how}. Exit status 2: this cannot fix itself, so it is not retried")
}
