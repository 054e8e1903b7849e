//! Locking that survives a poisoned mutex.

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update (impossible in the release
    // build, which aborts on panic); the tables behind these locks stay usable, and refusing
    // service would be worse.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
