//! knockd: a port-knocking door for Tencent Cloud Lighthouse firewalls.
//!
//! Read this map first. What happens to a knock, layer by layer:
//!
//! - `knock/`: the knock port, from socket to decision. `server` accepts and admits
//!   connections, `conn` reads requests under a deadline and answers, `http` parses request
//!   heads, `client_ip` says whose address a knock is for, `lockout` counts failures, and
//!   `decide` is the pure decision (request + peer + settings + lockout → reject / refuse /
//!   grant).
//! - `rules/`: the pure core. The rule model, CIDR blocks, the description format that marks
//!   knockd's own rules, and the planner that turns (rules now, grants wanted, time) into the
//!   writes to make. No serde, no HTTP.
//! - `cloud/`: the Lighthouse API. `sign` (TC3-HMAC-SHA256), `client` (transport, retries,
//!   clock skew), `pacer` (rate limits), `error` (the one error type and its policy), `wire`
//!   (JSON shapes), `executor` (applies a plan under FirewallVersion, re-planning on conflict)
//!   and `writer` (one thread per instance that batches knocks).
//! - `keys/`: per-client keys and the challenge–response knock (clients file, challenge,
//!   replay cache, the `--knock` client and the recipes `--add-client` prints).
//! - `config/`: the `.env` file and environment into a validated `Config` of sections.
//! - `ops/`: the operator commands (`--check`, `--prune`, `--list`, `--revoke`).
//! - `notify/`: webhooks and a command hook on grants, failures and lockouts, never in a
//!   knock's way.
//! - `cli`, `log`, `clock`, `sync`: arguments, log lines, UTC time, locking.
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
pub(crate) mod keys;
pub mod knock;
pub(crate) mod log;
pub mod notify;
pub mod ops;
pub(crate) mod order;
pub mod rules;
pub(crate) mod sync;
