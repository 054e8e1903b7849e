//! The retry policy of a batch's firewall writes: what a refused write leads to. Pure, so
//! every case is in the table below.

/// Describe→write rounds before giving up on a firewall that keeps changing.
pub(super) const MAX_ROUNDS: u32 = 6;

/// What a refused write leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// The round was planned from memory: describe and plan from what is really there.
    Describe,
    /// The firewall is busy: wait (within the batch's budget), then describe again.
    WaitBusy,
    /// The API refuses IPv6 rules here: drop the IPv6 grants and plan the rest again.
    DropIpv6,
    /// The firewall changed underneath: describe and plan again.
    Replan,
    /// Nothing more to try: the error is the answer.
    GiveUp,
}

/// A refused write, as far as the choice of what to do next goes.
#[derive(Debug, Clone, Copy)]
pub(super) struct WriteRefusal {
    /// CAM denies the action: no fresh plan can change that.
    pub(super) denied: bool,
    /// Planned from the writer's memory, not from a fresh Describe.
    pub(super) from_memory: bool,
    /// `UnsupportedOperation.FirewallBusy`.
    pub(super) busy: bool,
    /// An IPv6 refusal while the plan created IPv6 rules and nothing was created yet.
    pub(super) ipv6: bool,
    /// The error means the firewall changed underneath (`error::replan`).
    pub(super) replannable: bool,
    /// Re-plans so far in this batch.
    pub(super) replans: u32,
}

/// The retry policy of a batch, in the order the cases are tried: a permission denial is the
/// answer at once (whatever the plan, the action is not granted); a memory plan is never
/// trusted after another refusal; a busy firewall is waited for; IPv6 grants the API cannot hold are
/// dropped; a conflict is re-planned at most MAX_ROUNDS times; anything else is the answer.
pub(super) fn after_refusal(r: WriteRefusal) -> Next {
    if r.denied {
        Next::GiveUp
    } else if r.from_memory {
        Next::Describe
    } else if r.busy {
        Next::WaitBusy
    } else if r.ipv6 {
        Next::DropIpv6
    } else if !r.replannable || r.replans + 1 >= MAX_ROUNDS {
        Next::GiveUp
    } else {
        Next::Replan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_refused_write() {
        let base = WriteRefusal {
            denied: false,
            from_memory: false,
            busy: false,
            ipv6: false,
            replannable: true,
            replans: 0,
        };
        let cases = [
            ("a conflict is re-planned", base, Next::Replan),
            (
                "a permission denial is the answer at once, even from memory",
                WriteRefusal {
                    denied: true,
                    from_memory: true,
                    replannable: false,
                    ..base
                },
                Next::GiveUp,
            ),
            (
                "a memory plan is described again, whatever other error",
                WriteRefusal {
                    from_memory: true,
                    busy: true,
                    ipv6: true,
                    replannable: false,
                    ..base
                },
                Next::Describe,
            ),
            (
                "busy before anything else",
                WriteRefusal {
                    busy: true,
                    ipv6: true,
                    ..base
                },
                Next::WaitBusy,
            ),
            (
                "an IPv6 refusal drops the IPv6 grants",
                WriteRefusal {
                    ipv6: true,
                    replannable: false,
                    ..base
                },
                Next::DropIpv6,
            ),
            (
                "an error that is no conflict is the answer",
                WriteRefusal {
                    replannable: false,
                    ..base
                },
                Next::GiveUp,
            ),
            (
                "the last round allowed",
                WriteRefusal {
                    replans: MAX_ROUNDS - 2,
                    ..base
                },
                Next::Replan,
            ),
            (
                "a firewall that keeps changing: given up after MAX_ROUNDS",
                WriteRefusal {
                    replans: MAX_ROUNDS - 1,
                    ..base
                },
                Next::GiveUp,
            ),
        ];
        for (name, refusal, want) in cases {
            assert_eq!(after_refusal(refusal), want, "{name}");
        }
    }
}
