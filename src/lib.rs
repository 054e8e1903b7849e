//! knockd: a port-knocking door for Tencent Cloud Lighthouse firewalls.
//! Pure logic lives in plain modules; I/O sits at the edges (`lighthouse`, `server`, `cli`).

pub mod cidr;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod http;
pub mod sign;
