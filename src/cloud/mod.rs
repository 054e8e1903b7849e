//! The Lighthouse API: signing, the client, its error policy, and the writers that apply plans
//! to each instance (docs/lighthouse-api.md).

mod agents;
pub mod client;
pub mod error;
pub mod executor;
mod memory;
mod pacer;
mod refusal;
pub mod sign;
pub(crate) mod wire;
mod write_plan;
pub(crate) mod writer;
