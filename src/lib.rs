//! knockd: a port-knocking door for Tencent Cloud Lighthouse firewalls.
//!
//! Read this map first. What happens to a knock is in two files: `knock/decide.rs` (what a
//! request comes to) and `knock/door.rs` (what is done about it). Layer by layer, each folder
//! using only the ones listed after it (tests/layering.rs checks it):
//!
//! - `ops/`: the operator commands (`--check`, `--prune`, `--list`, `--revoke`, the clients
//!   file, `--print-cam-policy`, `--notify-test`) and their notifications.
//! - `cli`: the command line into one `Command`. `client/`: `knockd --knock`, the client for
//!   routers and Linux boxes (both steps of a key knock over ureq).
//! - `knock/`: the knock port. `server` starts it, `front` is the one poll loop that owns
//!   every connection, `table` admits connections under the cap, `conn` is one connection's
//!   state (head, body skip, parked knock, answer) under its deadlines, `http` parses request heads,
//!   `decide` is the one decision (request + peer + settings + keys + time + lockout →
//!   challenge / reject / refuse / grant), `door` carries it out (lockout bookkeeping, the
//!   grant on the writers behind the `Firewall` trait, the log line and the notification),
//!   `client_ip` says whose address a knock is for, `lockout` counts failures, `key_knock`
//!   holds the key state (clients file, replay cache), `events` tells the notifier, `hosts` is
//!   the thread that follows the clients file's host names (DDNS) on the same writers.
//! - `cloud/`: the Lighthouse API. `sign` (TC3-HMAC-SHA256), `client` (transport, retries,
//!   clock skew), `agents` (an HTTPS agent per API host), `pacer` (rate limits, per host),
//!   `error` (the one error type and its policy), `wire` (JSON shapes), `executor` (applies a
//!   plan under FirewallVersion, re-planning on conflict; `write_plan` makes one plan's
//!   writes), `memory` (a writer's knowledge of its firewall) and `writer` (one thread per
//!   instance that batches knocks).
//! - `config/`: the `.env` file and environment into a validated `Config` of sections.
//! - `keys/` (per-client keys, the challenge, the replay cache, the knock URL and the printed
//!   client recipes) and `notify/` (webhooks and a command hook, never in a knock's way).
//! - `rules/`: the pure core. The rule model, CIDR blocks, the description format that marks
//!   knockd's own rules, the planner that turns (rules now, grants wanted, time) into the
//!   writes to make, and `follow` (a host name's addresses: grace and caps). No serde, no HTTP.
//! - Leaves: `grammar` (durations, lists), `log`, `stdout`, `exit`, `clock`, `sync`, `order`.
//!
//! The API contract all of this relies on is written down in docs/lighthouse-api.md.

#![forbid(unsafe_code)]
// The release build aborts on a panic, so outside tests nothing may unwrap, expect or panic:
// input from the network, a file or the environment gets an error instead (`make lint`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]
// A function is read whole: at most 80 lines outside tests (clippy.toml; `make lint`).
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

// First, so that its `outln!` macro is in scope in every module below.
#[macro_use]
pub mod stdout;

pub mod cli;
pub mod client;
pub mod clock;
pub mod cloud;
pub mod config;
pub mod exit;
pub mod grammar;
pub mod keys;
pub mod knock;
pub(crate) mod log;
pub mod notify;
pub mod ops;
pub(crate) mod order;
pub mod rules;
pub(crate) mod sync;
