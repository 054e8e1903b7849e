//! The pure core: what a rule is, which rules are knockd's, and what to write. Plain functions
//! over values; nothing here does I/O or knows the API's JSON.

pub mod cidr;
pub mod desc;
pub mod follow;
mod model;
pub mod planner;
pub mod ports;
pub mod revoke;

pub use model::{FirewallRule, Protocol};
