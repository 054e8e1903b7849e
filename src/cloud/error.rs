//! The one error type of the cloud layer and the whole error policy: which failures are
//! retried in place, which call for a fresh Describe and a new plan, and which are final.
//! Each code and what knockd does with it: docs/lighthouse-api.md#error-codes.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The API answered with `Response.Error`.
    Api {
        code: String,
        message: String,
        request_id: String,
    },
    /// Connect, TLS, timeout, or a connection closed without an answer.
    Transport(String),
    /// Not the API's JSON envelope (a proxy page, a truncated body, a non-200 status).
    BadResponse(String),
    /// The API rejected our timestamp and gave no usable `Date` to correct it with.
    Clock(String),
    /// TENCENT_CLOUD_CA_FILE could not be used.
    Tls(String),
}

impl ApiError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code() == Some(code)
    }

    /// Rate limits, busy firewall, server faults and transport failures are retried; auth,
    /// parameter, quota and not-found errors are final (docs/lighthouse-api.md#error-codes).
    pub fn retryable(&self) -> bool {
        match self {
            ApiError::Api { code, .. } => {
                code.starts_with("RequestLimitExceeded")
                    || code.starts_with("InternalError")
                    || code == "ServiceUnavailable"
                    || code == "UnsupportedOperation.FirewallBusy"
            }
            ApiError::Transport(_) | ApiError::BadResponse(_) => true,
            ApiError::Clock(_) | ApiError::Tls(_) => false,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Api {
                code,
                message,
                request_id,
            } => write!(f, "{code}: {message} (RequestId {request_id})"),
            ApiError::Transport(e) => write!(f, "cannot reach the Lighthouse API: {e}"),
            ApiError::BadResponse(e) => write!(f, "unexpected answer from the API endpoint: {e}"),
            ApiError::Clock(e) => write!(f, "clock: {e}"),
            ApiError::Tls(e) => write!(f, "TENCENT_CLOUD_CA_FILE: {e}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// Errors after which a fresh Describe and a new plan is the right move (docs/lighthouse-api.md#error-codes).
/// A write that ran out of attempts on transport errors or garbled answers may still have been
/// applied (docs/lighthouse-api.md#error-codes: describe before repeating a Create), so it re-reads too.
pub(crate) fn replan(e: &ApiError) -> bool {
    matches!(e, ApiError::Transport(_) | ApiError::BadResponse(_))
        || matches!(
            e.code(),
            Some(
                "UnsupportedOperation.FirewallVersionMismatch"
                    | "InvalidParameter.FirewallRulesExist"
                    | "ResourceNotFound.FirewallRulesNotFound"
                    | "LimitExceeded.FirewallRulesLimitExceeded"
            )
        )
        || e.code().is_some_and(|c| c.starts_with("FailedOperation"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_policy() {
        let api = |c: &str| ApiError::Api {
            code: c.into(),
            message: String::new(),
            request_id: String::new(),
        };
        for c in [
            "RequestLimitExceeded",
            "RequestLimitExceeded.UinLimitExceeded",
            "InternalError",
            "InternalError.RequestError",
            "UnsupportedOperation.FirewallBusy",
        ] {
            assert!(api(c).retryable(), "{c}");
        }
        for c in [
            "AuthFailure.SignatureFailure",
            "AuthFailure.SecretIdNotFound",
            "InvalidParameter.FirewallRulesExist",
            "LimitExceeded.FirewallRulesLimitExceeded",
            "ResourceNotFound.InstanceIdNotFound",
            "UnsupportedOperation.FirewallVersionMismatch",
        ] {
            assert!(!api(c).retryable(), "{c}");
        }
        assert!(ApiError::Transport("reset".into()).retryable());
    }
}
