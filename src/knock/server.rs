//! The knock port's front door: one poll loop (epoll) owns the listener and every connection
//! while it waits for, reads or answers a request; `table` admits connections under the cap.
//! No thread per connection: only a knock that waits on the writers gets a small thread of its
//! own, which hands the verdict back to the loop. SIGTERM/SIGINT stop the loop from accepting:
//! then in-flight knocks finish (bounded by KNOCK_TIMEOUT), are answered and logged, and
//! `serve` returns 0. What a connection does is in `conn`, what a request means in `door` and
//! `decide`; the firewall writes happen on the cloud layer's per-instance writers.
//!
//! Why not tiny_http: measured on a static musl build, one `Content-Length: 100000000000000`
//! request aborts it, it has no read timeout, no head-size limit and no connection cap, and an
//! accept error ends its loop for good. See README, "Design notes".

use std::net::TcpListener;
use std::sync::Arc;

use super::door::Door;
use super::events;
use super::front;
use super::key_knock::Keys;
use super::table::ConnTable;
use super::{hygiene, signals};
use crate::cloud::client::Client;
use crate::cloud::writer::Writers;
use crate::config::Config;
use crate::exit::Exit;
use crate::log;

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
    let max_connections = connection_cap(&config);
    let listener = match listen(config.knock.bind) {
        Ok(l) => l,
        Err(exit) => return exit,
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
    if let Err(e) = super::hosts::start(&door) {
        log::error(&e);
        return Exit::Failure;
    }
    log_listening(&config, &listener, &door);
    front::run(listener, &door)
}

/// MAX_CONNECTIONS, lowered (and logged) to what the descriptor limit allows once raised as
/// far as it goes.
fn connection_cap(config: &Config) -> usize {
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
    max_connections
}

/// The nonblocking listen socket, or the exit after logging why there is none.
fn listen(bind: std::net::SocketAddr) -> Result<TcpListener, Exit> {
    match TcpListener::bind(bind).and_then(|l| {
        l.set_nonblocking(true)?;
        Ok(l)
    }) {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            log::error(&format!(
                "cannot listen on {bind}: {e}: {}",
                bind_denied_hint(bind)
            ));
            Err(Exit::Usage)
        }
        Err(e) => {
            log::error(&format!("cannot listen on {bind}: {e}"));
            Err(Exit::Failure)
        }
    }
}

/// The start line: what this knockd serves, and where its API calls go.
fn log_listening(config: &Config, listener: &TcpListener, door: &Door) {
    let bind = config.knock.bind;
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
