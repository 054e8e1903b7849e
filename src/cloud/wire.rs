//! The API's JSON shapes: rules in and out, the response envelope, write bodies
//! (docs/lighthouse-api.md#endpoints-and-transport, #firewall-rules).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Value};

use super::error::ApiError;
use crate::config::Instance;
use crate::rules::FirewallRule;

/// A successful call: its answer, RequestId and the server's `Date`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub request_id: String,
    /// The server's `Date`, when it sent one: `--check` compares clocks with it.
    pub date: Option<i64>,
    /// The answer as received, for the small answers read as a tree (`body`).
    text: String,
    /// What a DescribeFirewallRules answer carries, read with the envelope.
    describe: Response,
}

impl Reply {
    /// The `Response` object as a tree, for the small answers read field by field. It can
    /// still fail: `parse_envelope` skips the fields it does not read without checking all of
    /// them (a number past f64, a lone surrogate, nesting past serde_json's depth limit).
    pub fn body(&self) -> Result<Value, ApiError> {
        let mut v: Value = serde_json::from_str(&self.text)
            .map_err(|e| ApiError::BadResponse(format!("not JSON: {e}")))?;
        Ok(v.get_mut("Response").map_or(Value::Null, Value::take))
    }
}

/// The fields of `Response` knockd reads; every other field is skipped unparsed.
#[derive(Debug, Clone, Default)]
struct Response {
    request_id: Option<Value>,
    error: Option<Value>,
    total: Option<Value>,
    version: Option<Value>,
    rules: Option<Vec<FirewallRule>>,
}

/// Only `Response.Error` marks a failure; match on Code, keep RequestId.
pub(crate) fn parse_envelope(text: String) -> Result<Reply, ApiError> {
    let mut response = match serde_json::from_str::<Envelope>(&text) {
        Ok(Envelope(Some(r))) => r,
        // Valid JSON of another shape: no object under `Response`.
        Ok(Envelope(None)) => return Err(ApiError::BadResponse("no Response object".into())),
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            // Escaped where it is shown (ApiError's Display).
            return Err(ApiError::BadResponse(format!("not the API's answer: {e}")));
        }
        Err(_) => {
            let snippet: String = text.chars().take(120).collect();
            return Err(ApiError::BadResponse(format!("not JSON: {snippet}")));
        }
    };
    let request_id = response
        .request_id
        .take()
        .as_ref()
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_string();
    // Any `Error`, even null, is a failure: a doubtful answer to a write must lead to a fresh
    // Describe, never count as written.
    if let Some(err) = response.error.take() {
        let s = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Err(ApiError::Api {
            code: s("Code"),
            message: s("Message"),
            request_id,
        });
    }
    Ok(Reply {
        request_id,
        date: None,
        text,
        describe: response,
    })
}

/// A TotalCount above this is not a Lighthouse firewall (quota 100).
const MAX_TOTAL_COUNT: u64 = 10_000;

pub(crate) struct DescribePage {
    pub(crate) rules: Vec<FirewallRule>,
    pub(crate) total: usize,
    pub(crate) version: u64,
}

/// One DescribeFirewallRules answer (docs/lighthouse-api.md#describefirewallrules).
/// `TotalCount` is checked before it becomes a `usize` (never truncated on a 32-bit target),
/// and bounded.
pub(crate) fn describe_page(reply: Reply) -> Result<DescribePage, ApiError> {
    let b = reply.describe;
    let version = b.version.as_ref().and_then(Value::as_u64).unwrap_or(0);
    let total = match b.total {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .filter(|t| *t <= MAX_TOTAL_COUNT)
            .and_then(|t| usize::try_from(t).ok())
            .ok_or_else(|| {
                ApiError::BadResponse(format!(
                    "DescribeFirewallRules: TotalCount {v} is not a rule count"
                ))
            })?,
    };
    Ok(DescribePage {
        rules: b.rules.unwrap_or_default(),
        total,
        version,
    })
}

// Answers are read by hand-written visitors, not as a `serde_json::Value` tree: a Describe of
// 100 rules as a tree was some 4,000 small allocations, and ten writers reading at once queued
// on the allocator's one lock (musl's, in the static binary). Here a rule's strings borrow from
// the answer until they become the rule's own: about six allocations a rule (bench/README.md,
// "Repeat knocks on ten instances"). Hand-written rather than derived: 9 KB less binary.

/// The whole answer: `{"Response": {...}}`; a null or missing `Response` is `None`.
struct Envelope(Option<Response>);

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Envelope, D::Error> {
        d.deserialize_map(EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a Response object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut response = None;
        while let Some(key) = map.next_key::<Text>()? {
            if key.0 == "Response" {
                response = map.next_value::<Option<Response>>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Envelope(response))
    }
}

impl<'de> Deserialize<'de> for Response {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Response, D::Error> {
        d.deserialize_map(ResponseVisitor)
    }
}

struct ResponseVisitor;

impl<'de> Visitor<'de> for ResponseVisitor {
    type Value = Response;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Response object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Response, A::Error> {
        let mut r = Response::default();
        while let Some(key) = map.next_key::<Text>()? {
            match key.0.as_ref() {
                // Read as `Value`s, null included (`Option<Value>` cost 1 KB more binary).
                "RequestId" => r.request_id = Some(map.next_value()?),
                "Error" => r.error = Some(map.next_value()?),
                "TotalCount" => r.total = Some(map.next_value()?),
                "FirewallVersion" => r.version = Some(map.next_value()?),
                // A rule set that is not a list of objects is not an answer to plan from.
                "FirewallRuleSet" => {
                    r.rules = map
                        .next_value::<Option<Vec<Rule>>>()?
                        .map(|v| v.into_iter().map(|r| r.0).collect())
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

/// A rule of a Describe answer.
struct Rule(FirewallRule);

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        d.deserialize_map(RuleVisitor)
    }
}

struct RuleVisitor;

impl<'de> Visitor<'de> for RuleVisitor {
    type Value = Rule;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a firewall rule object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rule, A::Error> {
        let mut f: [Text; 6] = Default::default();
        while let Some(key) = map.next_key::<Text>()? {
            let i = match key.0.as_ref() {
                "Protocol" => 0,
                "Port" => 1,
                "CidrBlock" => 2,
                "Ipv6CidrBlock" => 3,
                "Action" => 4,
                "FirewallRuleDescription" => 5,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            f[i] = map.next_value()?;
        }
        let [protocol, port, cidr, ipv6, action, description] = f;
        Ok(Rule(rule_of(
            protocol,
            port,
            cidr,
            ipv6,
            action,
            description,
        )))
    }
}

/// A field's text when it is a JSON string, empty when it is anything else (null, a number,
/// an object), as a missing field reads (docs/lighthouse-api.md#rule-fields); borrowed from the
/// answer unless an escape forced a copy.
#[derive(Default)]
struct Text<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text<'de>, E> {
        Ok(Text::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text<'de>, E> {
        Ok(Text::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text<'de>, E> {
        Ok(Text::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text<'de>, E> {
        Ok(Text::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Text<'de>, E> {
        Ok(Text::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text::default())
    }
}

/// Describe output; missing fields default as the API does (docs/lighthouse-api.md#rule-fields).
fn rule_of(
    protocol: Text,
    port: Text,
    cidr: Text,
    ipv6: Text,
    action: Text,
    description: Text,
) -> FirewallRule {
    let opt = |t: Text| Some(t.0.into_owned()).filter(|x| !x.is_empty());
    let upper = |t: Text| {
        let mut s = t.0.into_owned();
        s.make_ascii_uppercase();
        s
    };
    let ipv6 = opt(ipv6);
    let cidr = opt(cidr);
    FirewallRule {
        protocol: upper(protocol),
        port: port.0.into_owned(),
        cidr_block: if ipv6.is_some() {
            cidr
        } else {
            Some(cidr.unwrap_or_else(|| "0.0.0.0/0".to_string()))
        },
        ipv6_cidr_block: ipv6,
        action: if action.0.is_empty() {
            "ACCEPT".to_string()
        } else {
            upper(action)
        },
        description: description.0.into_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(response: Value) -> Reply {
        parse_envelope(json!({ "Response": response }).to_string()).expect("an answer")
    }

    /// One rule as a Describe answer carries it, read the way knockd reads answers.
    fn rule_from_json(v: &Value) -> FirewallRule {
        let page = describe_page(reply(
            json!({"TotalCount": 1, "FirewallVersion": 1, "FirewallRuleSet": [v], "RequestId": "r"}),
        ))
        .expect("a page");
        assert_eq!(page.rules.len(), 1);
        page.rules.into_iter().next().expect("one rule")
    }

    #[test]
    fn envelope_success_and_error() {
        let ok = parse_envelope(r#"{"Response": {"TotalCount": 0, "RequestId": "r1"}}"#.into())
            .expect("ok");
        assert_eq!(ok.request_id, "r1");
        assert_eq!(
            ok.body().expect("a tree"),
            json!({"TotalCount": 0, "RequestId": "r1"})
        );
        let err = parse_envelope(
            r#"{"Response": {"Error": {"Code": "RequestLimitExceeded", "Message": "slow down"}, "RequestId": "r2"}}"#.into(),
        )
        .expect_err("error");
        assert!(err.is("RequestLimitExceeded") && err.retryable());
        assert_eq!(
            err.to_string(),
            "RequestLimitExceeded: slow down (RequestId r2)"
        );
        for (text, want) in [
            ("<html>", "not JSON: <html>"),
            (r#"{"Response": {"#, "not JSON"),
            ("{}", "no Response object"),
            ("[1]", "not the API's answer"),
            (r#"{"Response": null}"#, "no Response object"),
            (r#"{"Response": "busy"}"#, "not the API's answer"),
        ] {
            match parse_envelope(text.into()) {
                Err(ApiError::BadResponse(m)) => assert!(m.starts_with(want), "{text}: {m}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        // An Error that is null, or whose fields are not strings, is still an error.
        for text in [
            r#"{"Response": {"Error": null, "RequestId": "r3"}}"#,
            r#"{"Response": {"Error": {"Code": "X"}, "Error": null}}"#,
        ] {
            assert_eq!(
                parse_envelope(text.into()).expect_err(text).code(),
                Some(""),
                "{text}"
            );
        }
        let odd =
            parse_envelope(r#"{"Response": {"Error": {"Code": 5}}}"#.into()).expect_err("an error");
        assert_eq!(odd.code(), Some(""));
        assert_eq!(
            parse_envelope(r#"{"Response": {"RequestId": 7}}"#.into())
                .expect("ok")
                .request_id,
            "-"
        );
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

    #[test]
    fn rule_fields_that_are_not_strings_read_as_missing() {
        // As `Value::as_str` read them before answers were read typed: null, numbers, booleans,
        // lists and objects are no text, so the API's defaults apply.
        for odd in [
            json!(null),
            json!(22),
            json!(-1),
            json!(1.5),
            json!(true),
            json!(["22"]),
            json!({"Port": "22"}),
        ] {
            let r = rule_from_json(&json!({"Protocol": "udp", "Port": odd, "CidrBlock": odd,
                "Ipv6CidrBlock": odd, "Action": odd, "FirewallRuleDescription": odd}));
            assert_eq!(
                r,
                FirewallRule {
                    protocol: "UDP".into(),
                    port: String::new(),
                    cidr_block: Some("0.0.0.0/0".into()),
                    ipv6_cidr_block: None,
                    action: "ACCEPT".into(),
                    description: String::new(),
                },
                "{odd}"
            );
        }
    }

    #[test]
    fn escaped_and_non_ascii_text_is_read_exactly() {
        let r = rule_from_json(&json!({"Protocol": "TCP", "Port": "22",
            "CidrBlock": "1.2.3.4", "Action": "drop", "FirewallRuleDescription": "运维 \"a\"\n\u{1}"}));
        assert_eq!(r.description, "运维 \"a\"\n\u{1}");
        assert_eq!(r.action, "DROP");
        // Escapes in the raw text (not just in the decoded value) take the copying path.
        let text = r#"{"Response": {"TotalCount": 1, "FirewallRuleSet": [{"Protocol": "T\u0043P", "Port": "2\u0032", "FirewallRuleDescription": "\u8fd0"}]}}"#;
        let page = describe_page(parse_envelope(text.into()).expect("ok")).expect("page");
        assert_eq!(
            (page.rules[0].protocol.as_str(), page.rules[0].port.as_str()),
            ("TCP", "22")
        );
        assert_eq!(page.rules[0].description, "运");
    }

    #[test]
    fn a_rule_set_that_is_not_a_list_of_rules_is_refused() {
        for set in [
            json!("x"),
            json!(5),
            json!([1]),
            json!([["TCP"]]),
            json!({"a": 1}),
        ] {
            let text = json!({"Response": {"TotalCount": 1, "FirewallRuleSet": set}}).to_string();
            match parse_envelope(text) {
                Err(ApiError::BadResponse(m)) => {
                    assert!(m.starts_with("not the API's answer"), "{m}")
                }
                other => panic!("{set}: {other:?}"),
            }
        }
        // Absent or null: no rules.
        for body in [json!({"TotalCount": 0}), json!({"FirewallRuleSet": null})] {
            let page = describe_page(reply(body.clone())).expect("page");
            assert!(page.rules.is_empty() && page.total == 0, "{body}");
        }
    }

    #[test]
    fn total_count_is_checked_not_truncated() {
        let page = |total: Value| {
            describe_page(reply(
                json!({"TotalCount": total, "FirewallVersion": 3, "FirewallRuleSet": [
                {"Protocol": "TCP", "Port": "22", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"}]}),
            ))
        };
        let ok = page(json!(1)).expect("one rule");
        assert_eq!((ok.total, ok.version, ok.rules.len()), (1, 3, 1));
        // 2^32 + 1 would be 1 after `as usize` on a 32-bit target: refused everywhere.
        for bad in [
            json!(4_294_967_297u64),
            json!(u64::MAX),
            json!(-1),
            json!("7"),
            json!(1.5),
        ] {
            assert!(
                matches!(page(bad.clone()), Err(ApiError::BadResponse(_))),
                "{bad}"
            );
        }
        assert_eq!(page(Value::Null).expect("null").total, 0);
    }

    #[test]
    fn an_answer_whose_skipped_fields_are_not_json_fails_as_a_tree() {
        // The envelope reader skips fields it does not read without checking them all; the
        // tree of such an answer is an error, never an empty answer.
        for odd in [
            r#"{"Response": {"X": 1e400, "InstanceSet": [{"InstanceId": "lhins-1"}]}}"#.to_string(),
            r#"{"Response": {"X": "\udc00", "InstanceSet": []}}"#.to_string(),
            format!(
                r#"{{"Response": {{"X": {}{}, "InstanceSet": []}}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            ),
        ] {
            let reply = parse_envelope(odd.clone()).expect("the envelope reads");
            assert!(
                matches!(reply.body(), Err(ApiError::BadResponse(_))),
                "{odd}"
            );
        }
    }

    /// The reading before answers were read typed, kept as the reference: a rule from a
    /// `Value`, each field by `Value::as_str`.
    fn reference_rule(v: &Value) -> FirewallRule {
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

    #[test]
    fn typed_reading_agrees_with_the_tree_reading_on_generated_rules() {
        let values = [
            None,
            Some(json!(null)),
            Some(json!("")),
            Some(json!("tcp")),
            Some(json!("22,443")),
            Some(json!("10.0.0.0/8")),
            Some(json!("2001:db8::/64")),
            Some(json!("Knockd-phone until 2026-12-01 00:00Z")),
            Some(json!("运维 \"q\" \\ \u{7}")),
            Some(json!(443)),
            Some(json!(false)),
            Some(json!(["TCP", {"a": [1]}])),
            Some(json!({"Protocol": "UDP"})),
        ];
        let keys = [
            "Protocol",
            "Port",
            "CidrBlock",
            "Ipv6CidrBlock",
            "Action",
            "FirewallRuleDescription",
            "AppType",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut set = Vec::new();
        for _ in 0..2_000 {
            let mut m = Map::new();
            for k in keys {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if let Some(v) = &values[(x % values.len() as u64) as usize] {
                    m.insert(k.to_string(), v.clone());
                }
            }
            set.push(Value::Object(m));
        }
        let page = describe_page(reply(
            json!({"TotalCount": set.len(), "FirewallVersion": 9, "FirewallRuleSet": set}),
        ))
        .expect("a page");
        assert_eq!(page.rules.len(), set.len());
        for (read, v) in page.rules.iter().zip(&set) {
            assert_eq!(*read, reference_rule(v), "{v}");
        }
    }

    #[test]
    fn a_truncated_answer_is_refused_at_every_length() {
        let text = json!({"Response": {"TotalCount": 2, "FirewallVersion": 4, "RequestId": "r",
            "FirewallRuleSet": [
                {"Protocol": "TCP", "Port": "22", "CidrBlock": "1.2.3.4", "Action": "ACCEPT",
                 "FirewallRuleDescription": "Knockd-a until 2026-12-01 00:00Z"},
                {"Protocol": "UDP", "Port": "51820", "Ipv6CidrBlock": "2001:db8::1",
                 "Action": "ACCEPT", "FirewallRuleDescription": "\u{8fd0}"}]}})
        .to_string();
        for cut in 0..text.len() {
            if !text.is_char_boundary(cut) {
                continue;
            }
            assert!(
                matches!(
                    parse_envelope(text[..cut].to_string()),
                    Err(ApiError::BadResponse(_))
                ),
                "{cut}: {}",
                &text[..cut]
            );
        }
        let whole = describe_page(parse_envelope(text).expect("whole")).expect("page");
        assert_eq!((whole.total, whole.version, whole.rules.len()), (2, 4, 2));
    }
}
