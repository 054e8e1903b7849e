//! The API's JSON shapes: rules in and out, the response envelope, write bodies
//! (docs/lighthouse-api.md#endpoints-and-transport, #firewall-rules).

use serde_json::{json, Map, Value};

use super::error::ApiError;
use crate::config::Instance;
use crate::rules::FirewallRule;

/// A successful call: the `Response` object and its RequestId.
#[derive(Debug, Clone)]
pub struct Reply {
    pub body: Value,
    pub request_id: String,
    /// The server's `Date`, when it sent one: `--check` compares clocks with it.
    pub date: Option<i64>,
}

/// Describe output; missing fields default as the API does (docs/lighthouse-api.md#rule-fields).
pub(crate) fn rule_from_json(v: &Value) -> FirewallRule {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let opt = |k: &str| Some(s(k)).filter(|x| !x.is_empty());
    let ipv6 = opt("Ipv6CidrBlock");
    let action = s("Action");
    FirewallRule {
        protocol: s("Protocol").to_ascii_uppercase(),
        port: s("Port"),
        cidr_block: if ipv6.is_some() {
            opt("CidrBlock")
        } else {
            Some(opt("CidrBlock").unwrap_or_else(|| "0.0.0.0/0".to_string()))
        },
        ipv6_cidr_block: ipv6,
        action: if action.is_empty() {
            "ACCEPT".to_string()
        } else {
            action.to_ascii_uppercase()
        },
        description: s("FirewallRuleDescription"),
    }
}

/// Request shape; `with_description` is false for Delete, which matches on identity only.
/// An IPv6 rule is named by `Ipv6CidrBlock` alone, on every call (Create, Delete, Modify): the
/// two address fields exclude each other (docs/lighthouse-api.md#ipv6-rules).
pub(crate) fn rule_to_json(rule: &FirewallRule, with_description: bool) -> Value {
    let mut m = Map::new();
    m.insert("Protocol".into(), json!(rule.protocol));
    m.insert("Port".into(), json!(rule.port));
    match (&rule.ipv6_cidr_block, &rule.cidr_block) {
        (Some(c), _) => {
            m.insert("Ipv6CidrBlock".into(), json!(c));
        }
        (None, Some(c)) => {
            m.insert("CidrBlock".into(), json!(c));
        }
        (None, None) => {}
    }
    m.insert("Action".into(), json!(rule.action));
    if with_description {
        m.insert("FirewallRuleDescription".into(), json!(rule.description));
    }
    Value::Object(m)
}

pub(crate) fn write_body(inst: &Instance, key: &str, rules: Value, version: Option<u64>) -> Value {
    let mut m = Map::new();
    m.insert("InstanceId".into(), json!(inst.id));
    m.insert(key.into(), rules);
    if let Some(v) = version {
        m.insert("FirewallVersion".into(), json!(v));
    }
    Value::Object(m)
}

/// Only `Response.Error` marks a failure; match on Code, keep RequestId.
pub(crate) fn parse_envelope(text: &str) -> Result<Reply, ApiError> {
    let v: Value = serde_json::from_str(text).map_err(|_| {
        let snippet: String = text.chars().take(120).collect();
        ApiError::BadResponse(format!("not JSON: {snippet}"))
    })?;
    let Some(resp) = v.get("Response").filter(|r| r.is_object()) else {
        return Err(ApiError::BadResponse("no Response object".into()));
    };
    let request_id = resp
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string();
    if let Some(err) = resp.get("Error") {
        let s = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Err(ApiError::Api {
            code: s("Code"),
            message: s("Message"),
            request_id,
        });
    }
    Ok(Reply {
        body: resp.clone(),
        request_id,
        date: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_success_and_error() {
        let ok =
            parse_envelope(r#"{"Response": {"TotalCount": 0, "RequestId": "r1"}}"#).expect("ok");
        assert_eq!(ok.request_id, "r1");
        let err = parse_envelope(
            r#"{"Response": {"Error": {"Code": "RequestLimitExceeded", "Message": "slow down"}, "RequestId": "r2"}}"#,
        )
        .expect_err("error");
        assert!(err.is("RequestLimitExceeded") && err.retryable());
        assert_eq!(
            err.to_string(),
            "RequestLimitExceeded: slow down (RequestId r2)"
        );
        assert!(matches!(
            parse_envelope("<html>"),
            Err(ApiError::BadResponse(_))
        ));
        assert!(matches!(
            parse_envelope("{}"),
            Err(ApiError::BadResponse(_))
        ));
    }

    #[test]
    fn rules_round_trip_with_api_defaults() {
        let r = rule_from_json(
            &json!({"AppType": "x", "Protocol": "tcp", "Port": "22", "CidrBlock": "1.2.3.4", "FirewallRuleDescription": "d"}),
        );
        assert_eq!(r.action, "ACCEPT");
        assert_eq!(r.protocol, "TCP");
        assert_eq!(
            rule_to_json(&r, false),
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "1.2.3.4", "Action": "ACCEPT"})
        );
        let v6 = rule_from_json(
            &json!({"Protocol": "UDP", "Port": "53", "Ipv6CidrBlock": "2001:db8::1", "Action": "ACCEPT"}),
        );
        assert_eq!(v6.cidr_block, None);
        assert_eq!(v6.address(), "2001:db8::1");
        // A refresh or delete of an IPv6 rule read back from Describe names it by
        // Ipv6CidrBlock only, even when the answer also carried an (empty or default) CidrBlock.
        for read in [
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "", "Ipv6CidrBlock": "2001:db8::7/128",
                "Action": "ACCEPT", "FirewallRuleDescription": "Knockd-v6 until 2026-12-01 00:00Z"}),
            json!({"Protocol": "TCP", "Port": "22", "CidrBlock": "0.0.0.0/0", "Ipv6CidrBlock": "2001:db8::7/128",
                "Action": "ACCEPT", "FirewallRuleDescription": "Knockd-v6 until 2026-12-01 00:00Z"}),
        ] {
            let r = rule_from_json(&read);
            assert_eq!(
                rule_to_json(&r, false),
                json!({"Protocol": "TCP", "Port": "22", "Ipv6CidrBlock": "2001:db8::7/128", "Action": "ACCEPT"})
            );
            let modify = rule_to_json(&r, true);
            assert_eq!(modify["Ipv6CidrBlock"], "2001:db8::7/128");
            assert!(modify.get("CidrBlock").is_none(), "{modify}");
        }
        let any = rule_from_json(&json!({"Protocol": "ALL", "Port": "ALL"}));
        assert_eq!(any.cidr_block.as_deref(), Some("0.0.0.0/0"));
    }
}
