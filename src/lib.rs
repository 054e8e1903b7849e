//! knockd: a port-knocking door for Tencent Cloud Lighthouse firewalls.
//! Pure logic lives in plain modules; I/O sits at the edges (`lighthouse`, `server`, `ops`).

pub mod cidr;
pub mod cli;
pub mod client_ip;
pub mod clock;
pub mod commands;
pub mod config;
pub mod envfile;
pub mod firewall;
pub mod http;
pub mod lighthouse;
pub mod lockout;
pub mod log;
pub mod ops;
pub mod planner;
pub mod rule_desc;
pub mod server;
pub mod sign;
