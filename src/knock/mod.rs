//! The knock port: socket → request head → client address → decision → grant.

pub mod client_ip;
mod conn;
mod decide;
pub mod http;
mod key_knock;
mod lockout;
mod server;

pub(crate) use server::serve;
