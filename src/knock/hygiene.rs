//! Process hygiene at start-up, through rustix's safe system-call wrappers: no core dumps of a
//! process that holds the SecretKey, and a file-descriptor limit that fits MAX_CONNECTIONS.

use rustix::process::{self, DumpableBehavior, Resource, Rlimit};

/// No core file and not dumpable (no ptrace attach by the same user, /proc/PID/mem closed to
/// them): a crash must not write the SecretKey to disk. Errors are returned for a warning.
pub fn no_core_dumps() -> Result<(), String> {
    process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| format!("cannot set RLIMIT_CORE to 0: {e}"))?;
    process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|e| format!("cannot clear the dumpable flag: {e}"))
}

/// Raises the soft RLIMIT_NOFILE to at least `want` where the hard limit allows. Returns the
/// soft limit in force afterwards (None: unlimited).
pub fn raise_nofile(want: u64) -> Option<u64> {
    let now = process::getrlimit(Resource::Nofile);
    match now.current {
        Some(cur) if cur < want => {
            let target = now.maximum.map_or(want, |max| max.min(want));
            if target > cur
                && process::setrlimit(
                    Resource::Nofile,
                    Rlimit {
                        current: Some(target),
                        maximum: now.maximum,
                    },
                )
                .is_ok()
            {
                return Some(target);
            }
            Some(cur)
        }
        other => other,
    }
}

/// Descriptors a serving knockd needs besides its connections: stdio, the listener, each
/// writer's pooled API connection (and one being opened), name lookups, the config and CA
/// files, and a margin.
pub fn reserved_fds(instances: usize) -> u64 {
    32 + 2 * instances as u64
}

/// MAX_CONNECTIONS as far as a descriptor limit `limit` allows: (cap, clamped?).
pub fn connections_within(limit: Option<u64>, max_connections: usize, instances: usize) -> usize {
    match limit {
        None => max_connections,
        Some(limit) => {
            let room = limit.saturating_sub(reserved_fds(instances)).max(1);
            max_connections.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_the_descriptor_limit() {
        assert_eq!(connections_within(None, 256, 1), 256);
        assert_eq!(connections_within(Some(1024), 256, 1), 256);
        assert_eq!(connections_within(Some(64), 256, 1), 64 - 34);
        assert_eq!(connections_within(Some(10), 256, 1), 1);
        assert_eq!(connections_within(Some(290), 256, 1), 256);
        assert_eq!(connections_within(Some(289), 256, 1), 255);
    }
}
