//! Everything the simulator takes from the knockd library, in one place: the TC3 signing
//! primitives (so the server checks a signature with the same code a client signs it with) and
//! the clock. When knockd moves these modules, only the two lines below change.

pub(crate) use knockd::clock;
pub(crate) use knockd::cloud::sign;
