//! How a command ended, decided where the command knows and mapped to the process status
//! once, in `main`.

/// A command's end. The numbers are the documented exit statuses (README, "Commands").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Exit {
    /// 0: the command did what it was asked.
    Success,
    /// 1: an operational failure (an instance, a check, the network): it may work next time.
    Failure,
    /// 2: bad usage or configuration: running it again unchanged cannot help.
    Usage,
}

impl Exit {
    /// Failure when `failed`, else success: the commands that go over every instance.
    pub fn failed_if(failed: bool) -> Exit {
        if failed {
            Exit::Failure
        } else {
            Exit::Success
        }
    }

    /// The process exit status.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_documented_numbers() {
        assert_eq!(Exit::Success.code(), 0);
        assert_eq!(Exit::Failure.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(Exit::failed_if(true), Exit::Failure);
        assert_eq!(Exit::failed_if(false), Exit::Success);
    }
}
