//! Value grammar shared by several layers (configuration, clients file, notifications, command
//! line): a leaf that imports nothing of knockd's, so that none of those layers has to import
//! another to read a duration or a list.

mod duration;
mod list;

pub(crate) use duration::parse_number;
pub use duration::{format_duration, parse_duration};
pub(crate) use list::split_list;
