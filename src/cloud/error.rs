//! The one error type of the cloud layer and the whole error policy: which failures are
//! retried in place, which call for a fresh Describe and a new plan, and which are final; and
//! the classification the operator reads (a permission denial with the action and resource to
//! grant, a bad key, an unknown instance), shared by serving knockd and `--check`.
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
    /// CAM denied `action` on `resource` (one of the denial codes, see [`is_denied`]): the key
    /// is valid and lacks this permission. No retry or re-plan can change that.
    Denied {
        action: String,
        /// `qcs::lighthouse:<region>:uin/<account>:instance/<id>`, or `*` for an action CAM
        /// grants only on every resource.
        resource: String,
        code: String,
        request_id: String,
    },
}

impl ApiError {
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } | ApiError::Denied { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A denial, named after the call it answered: `action` in `region` on `instance` (None:
    /// an action on no one instance, which CAM grants only on `*`). Any other error as it is.
    pub(crate) fn on_call(
        self,
        action: &str,
        region: Option<&str>,
        instance: Option<&str>,
    ) -> ApiError {
        match self {
            ApiError::Api {
                code, request_id, ..
            } if is_denied_code(&code) => ApiError::Denied {
                action: action.to_string(),
                resource: match (region, instance) {
                    (Some(r), Some(i)) => instance_resource(r, i, None),
                    _ => "*".to_string(),
                },
                code,
                request_id,
            },
            other => other,
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
            ApiError::Clock(_) | ApiError::Tls(_) | ApiError::Denied { .. } => false,
        }
    }
}

/// Text from the network (an error Message, a proxy's page, a RequestId) as it may appear
/// inside one log line: control characters (newline, carriage return, escape, ...), Unicode line
/// and paragraph separators and bidirectional overrides are written as `\u{..}`, a backslash
/// and a double quote are escaped (log fields quote with `"`), and the text is cut at
/// `MAX_TEXT` characters. So an answer cannot forge or hide a log line.
pub(crate) fn log_safe(text: &str) -> String {
    const MAX_TEXT: usize = 300;
    let mut out = String::with_capacity(text.len().min(MAX_TEXT + 8));
    for (n, c) in text.chars().enumerate() {
        if n == MAX_TEXT {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{feff}'
                )
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Api {
                code,
                message,
                request_id,
            } => write!(
                f,
                "{}: {} (RequestId {})",
                log_safe(code),
                log_safe(message),
                log_safe(request_id)
            ),
            ApiError::Transport(e) => {
                write!(f, "cannot reach the Lighthouse API: {}", log_safe(e))
            }
            ApiError::BadResponse(e) => {
                write!(
                    f,
                    "unexpected answer from the API endpoint: {}",
                    log_safe(e)
                )
            }
            ApiError::Clock(e) => write!(f, "clock: {}", log_safe(e)),
            ApiError::Tls(e) => write!(f, "TENCENT_CLOUD_CA_FILE: {}", log_safe(e)),
            ApiError::Denied {
                action,
                resource,
                code,
                request_id,
            } => write!(
                f,
                "{} (RequestId {})",
                denial(action, resource, code),
                log_safe(request_id)
            ),
        }
    }
}

impl std::error::Error for ApiError {}

/// Stands for the root account's UIN, which no Lighthouse answer carries.
pub const ACCOUNT_PLACEHOLDER: &str = "<ACCOUNT>";

/// `qcs::lighthouse:<region>:uin/<account>:instance/<id>`: an instance as CAM names it
/// (docs/lighthouse-api.md#cam-permissions).
pub fn instance_resource(region: &str, id: &str, uin: Option<&str>) -> String {
    format!(
        "qcs::lighthouse:{region}:uin/{}:instance/{id}",
        uin.unwrap_or(ACCOUNT_PLACEHOLDER)
    )
}

/// A permission denial as an operator can act on it: the action, the resource to grant, and,
/// when the account is not known, where to find it.
pub(crate) fn denial(action: &str, resource: &str, code: &str) -> String {
    let account = if resource.contains(ACCOUNT_PLACEHOLDER) {
        format!("; {ACCOUNT_PLACEHOLDER} is your root account ID (UIN): console, Account Center > Account Information")
    } else {
        String::new()
    };
    format!(
        "CAM denies lighthouse:{} on {} ({}); grant it to this key's user (knockd --print-cam-policy prints the least-privilege policy{account})",
        log_safe(action),
        log_safe(resource),
        log_safe(code)
    )
}

fn is_denied_code(c: &str) -> bool {
    c == "UnauthorizedOperation"
        || c == "AuthFailure.UnauthorizedOperation"
        || (c.starts_with("UnauthorizedOperation.") && c != "UnauthorizedOperation.TokenInvalid")
}

/// CAM said no: the key is valid, this action on this resource is not granted.
pub(crate) fn is_denied(e: &ApiError) -> bool {
    e.code().is_some_and(is_denied_code)
}

/// Errors about the key, the token, the clock or the endpoint: every instance and every call
/// would fail the same way.
pub(crate) fn is_global(e: &ApiError) -> bool {
    match e.code() {
        Some(c) => {
            (c.starts_with("AuthFailure.") && !is_denied(e) && c != "AuthFailure.InvalidRegion")
                || c == "UnauthorizedOperation.TokenInvalid"
        }
        None => true,
    }
}

/// The API authenticated the call and then looked the instance or region up.
pub(crate) fn is_lookup(e: &ApiError) -> bool {
    e.code().is_some_and(|c| {
        c.starts_with("ResourceNotFound.")
            || c.starts_with("InvalidParameterValue.")
            || c == "UnsupportedRegion"
            || c == "AuthFailure.InvalidRegion"
    })
}

/// What an operator should do about an API error: the error and, for the credential codes,
/// which variable to look at.
pub(crate) fn explain(e: &ApiError) -> String {
    let hint = match e.code() {
        Some("AuthFailure.SignatureFailure") => {
            " — TENCENT_CLOUD_SECRET_KEY does not match the SecretId"
        }
        Some("AuthFailure.SecretIdNotFound" | "AuthFailure.InvalidSecretId") => {
            " — TENCENT_CLOUD_SECRET_ID is unknown or disabled"
        }
        Some("AuthFailure.TokenFailure" | "UnauthorizedOperation.TokenInvalid") => {
            " — TENCENT_CLOUD_TOKEN is wrong or expired (temporary credentials expire; a serving knockd needs a permanent key pair)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

pub(crate) const BUSY: &str = "UnsupportedOperation.FirewallBusy";
pub(crate) const EXISTS: &str = "InvalidParameter.FirewallRulesExist";

/// Whether the client retries `e` in place for `action`. A busy firewall is retried in place
/// only on a read: a write that meets it goes back to the executor, which waits on its own
/// budget (up to the knock's deadline) and then describes and re-plans, since the firewall may
/// have changed meanwhile (docs/lighthouse-api.md#error-codes).
pub(crate) fn retry_in_place(e: &ApiError, action: &str) -> bool {
    e.retryable() && !(e.is(BUSY) && is_write(action))
}

pub(crate) fn is_write(action: &str) -> bool {
    matches!(
        action,
        "CreateFirewallRules"
            | "DeleteFirewallRules"
            | "ModifyFirewallRuleDescription"
            | "ModifyFirewallRules"
    )
}

/// A final error that, on a Create carrying IPv6 rules, most likely means the region or the
/// instance does not support IPv6 rules (docs/lighthouse-api.md#ipv6-rules: the exact code is
/// not documented, so codes naming IPv6 or a region, and a bare UnsupportedOperation, count).
/// Other parameter errors (a duplicate rule, a description too long) are knockd's own bugs and
/// must show as themselves, not as "IPv6 not supported".
pub(crate) fn ipv6_refusal(e: &ApiError) -> bool {
    let Some(code) = e.code() else {
        return false;
    };
    let lower = code.to_ascii_lowercase();
    if lower.contains("ipv6") {
        return true;
    }
    if e.retryable() || replan(e) {
        return false;
    }
    code == "UnsupportedOperation"
        || code == "UnsupportedRegion"
        || code == "AuthFailure.InvalidRegion"
        || lower.contains("regionnotsupport")
}

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

/// Errors for unit tests here and in the layers above.
#[cfg(test)]
impl ApiError {
    /// An error answer of the API with this code.
    pub(crate) fn api(code: &str) -> ApiError {
        ApiError::Api {
            code: code.into(),
            message: "m".into(),
            request_id: "r".into(),
        }
    }
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
        // Busy: in place on a read, back to the executor on a write.
        assert!(retry_in_place(&api(BUSY), "DescribeFirewallRules"));
        assert!(!retry_in_place(&api(BUSY), "CreateFirewallRules"));
        assert!(!retry_in_place(&api(BUSY), "ModifyFirewallRuleDescription"));
        assert!(retry_in_place(&api("InternalError"), "CreateFirewallRules"));
        assert!(replan(&api(EXISTS)));
    }

    #[test]
    fn ipv6_refusals_are_final_parameter_region_or_unsupported_codes() {
        let api = |c: &str| ApiError::Api {
            code: c.into(),
            message: String::new(),
            request_id: String::new(),
        };
        for c in [
            "UnsupportedOperation.Ipv6NotSupported",
            "InvalidParameterValue.Ipv6CidrBlock",
            "FailedOperation.IPv6NotSupported",
            "UnsupportedRegion",
            "AuthFailure.InvalidRegion",
            "InvalidParameterValue.RegionNotSupported",
            "UnsupportedOperation",
        ] {
            assert!(ipv6_refusal(&api(c)), "{c}");
        }
        for c in [
            "InvalidParameter.FirewallRulesDuplicated",
            "InvalidParameter.ParameterConflict",
            "InvalidParameterValue.FirewallRuleDescriptionTooLong",
            "UnsupportedOperation.InvalidInstanceState",
            BUSY,
            "UnsupportedOperation.FirewallVersionMismatch",
            EXISTS,
            "RequestLimitExceeded",
            "AuthFailure.SignatureFailure",
        ] {
            assert!(!ipv6_refusal(&api(c)), "{c}");
        }
        assert!(!ipv6_refusal(&ApiError::Transport("x".into())));
    }

    fn api(code: &str) -> ApiError {
        ApiError::api(code)
    }

    #[test]
    fn permission_denials_are_told_apart_from_bad_keys() {
        for code in [
            "UnauthorizedOperation",
            "AuthFailure.UnauthorizedOperation",
            "UnauthorizedOperation.NoPermission",
        ] {
            assert!(is_denied(&api(code)), "{code}");
            assert!(!is_global(&api(code)), "{code}");
            assert!(!api(code).retryable() && !replan(&api(code)), "{code}");
        }
        for code in [
            "AuthFailure.SignatureFailure",
            "AuthFailure.SecretIdNotFound",
            "AuthFailure.TokenFailure",
            "UnauthorizedOperation.TokenInvalid",
        ] {
            assert!(!is_denied(&api(code)), "{code}");
            assert!(is_global(&api(code)), "{code}");
        }
        for code in [
            "ResourceNotFound.InstanceIdNotFound",
            "AuthFailure.InvalidRegion",
            "InternalError",
        ] {
            assert!(!is_denied(&api(code)) && !is_global(&api(code)), "{code}");
        }
        assert!(is_global(&ApiError::Transport("refused".into())));
    }

    #[test]
    fn a_denial_names_the_action_the_resource_and_where_to_find_the_account() {
        let cases = [
            (
                api("AuthFailure.UnauthorizedOperation").on_call(
                    "CreateFirewallRules",
                    Some("ap-guangzhou"),
                    Some("lhins-abcd1234"),
                ),
                "CAM denies lighthouse:CreateFirewallRules on qcs::lighthouse:ap-guangzhou:uin/<ACCOUNT>:instance/lhins-abcd1234 (AuthFailure.UnauthorizedOperation); grant it to this key's user (knockd --print-cam-policy prints the least-privilege policy; <ACCOUNT> is your root account ID (UIN): console, Account Center > Account Information) (RequestId r)",
            ),
            (
                api("UnauthorizedOperation.NoPermission").on_call(
                    "DescribeRegions",
                    None,
                    None,
                ),
                "CAM denies lighthouse:DescribeRegions on * (UnauthorizedOperation.NoPermission); grant it to this key's user (knockd --print-cam-policy prints the least-privilege policy) (RequestId r)",
            ),
        ];
        for (e, want) in cases {
            assert!(is_denied(&e) && !e.retryable() && !replan(&e), "{e:?}");
            assert_eq!(e.to_string(), want);
        }
        // Anything else stays as it is.
        for code in ["InternalError", "UnauthorizedOperation.TokenInvalid"] {
            let e = api(code).on_call(
                "CreateFirewallRules",
                Some("ap-guangzhou"),
                Some("lhins-abcd1234"),
            );
            assert_eq!(e, api(code));
        }
        assert_eq!(
            instance_resource("ap-hongkong", "lhins-abcd1234", Some("100000000001")),
            "qcs::lighthouse:ap-hongkong:uin/100000000001:instance/lhins-abcd1234"
        );
    }

    #[test]
    fn text_from_the_network_cannot_forge_a_log_line() {
        let e = ApiError::Api {
            code: "InternalError".into(),
            message:
                "oops\n2026-11-30T00:00:00Z knock addr=6.6.6.6 result=ok\r\u{1b}[2J\u{2028}\"x\\"
                    .into(),
            request_id: "r\n1".into(),
        };
        let shown = e.to_string();
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\u{1b}'));
        assert!(!shown.contains('\u{2028}'));
        assert!(
            shown.contains("\\u{a}2026-11-30T00:00:00Z knock"),
            "{shown}"
        );
        assert!(shown.contains("\\\"x\\\\"), "{shown}");
        assert!(shown.ends_with("(RequestId r\\u{a}1)"), "{shown}");
        let page = ApiError::BadResponse(format!("HTTP 502: <html>\n{}", "a".repeat(1000)));
        let shown = page.to_string();
        assert!(
            !shown.contains('\n') && shown.chars().count() < 400,
            "{shown}"
        );
        // Plain text is unchanged; non-ASCII text stays readable.
        assert_eq!(log_safe("slow down 请稍后"), "slow down 请稍后");
    }
}
