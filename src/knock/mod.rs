//! The knock port: socket → request head → client address → decision → grant.

pub mod client_ip;
mod conn;
mod decide;
mod door;
mod events;
mod front;
mod hosts;
pub mod http;
pub mod hygiene;
mod key_knock;
mod lockout;
mod server;
pub mod signals;
mod table;

pub(crate) use server::serve;
