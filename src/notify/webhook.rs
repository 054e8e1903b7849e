//! `NOTIFY_URL`, `NOTIFY_BODY`, `NOTIFY_HEADERS`: building the request (pure) and sending it
//! on the caller's `ureq::Agent`. The URL is a secret (it usually carries a bot token): it is
//! only ever shown through [`redact_url`], and error texts are scrubbed of its parts.

use std::io::Read;
use std::time::Duration;

use super::event::{sample, Event, SELECTABLE};
use super::template::{looks_like_json, parse_headers, Escape, Template};
use super::NotifyError;

/// Whole exchange: connect, TLS, request, answer. A receiver that never answers costs this
/// much of the notifier thread per notification, and the bounded queue absorbs the rest.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Answer bytes read at most; the first 200 are reported.
const MAX_ANSWER: u64 = 4096;
const SNIPPET: usize = 200;
/// Runs of at least this many token characters in the URL (after the host), the body's
/// literal text and header values are treated as secrets when scrubbing texts.
const SECRET_RUN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    pub method: &'static str,
    pub url: String,
    pub body: Option<String>,
    /// Content-Type first (unless the operator gave one), then the operator's headers.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Receipt {
    pub status: u16,
    /// The first 200 bytes of the answer, escaped and scrubbed.
    pub snippet: String,
}

#[derive(Clone)]
pub(crate) struct Webhook {
    url: Template,
    redacted: String,
    host: String,
    body: Option<Template>,
    escape: Escape,
    headers: Vec<(String, String)>,
    secrets: Vec<String>,
}

impl Webhook {
    /// Validates everything up front. Errors name the variable, never show the URL, body or
    /// header values. The second value is warnings.
    pub(crate) fn new(
        url: &str,
        body: Option<&str>,
        headers: Option<&str>,
    ) -> Result<(Webhook, Vec<String>), Vec<super::SettingError>> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let redacted = redact_url(url);
        let template = match check_url(url) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(("NOTIFY_URL", format!("({redacted}): {e}")));
                None
            }
        };
        let host = authority(url).map(|(_, h, _)| h).unwrap_or_default();
        if url.to_ascii_lowercase().starts_with("http://") && !is_loopback(&host) {
            warnings.push(format!(
                "NOTIFY_URL ({redacted}) uses http://: its token travels in clear text"
            ));
        }
        let headers = match parse_headers(headers.unwrap_or("")) {
            Ok(h) => h,
            Err(e) => {
                errors.push(("NOTIFY_HEADERS", e.to_string()));
                Vec::new()
            }
        };
        let given_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_ascii_lowercase());
        let body_text = body.filter(|b| !b.trim().is_empty());
        let escape = escape_for(given_type.as_deref(), body_text);
        let body = match body_text.map(Template::parse) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                errors.push(("NOTIFY_BODY", e.to_string()));
                None
            }
        };
        if let (Some(t), Escape::Json) = (&body, escape) {
            errors.extend(json_body_error(t));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut headers_out = Vec::new();
        if body.is_some() && given_type.is_none() {
            let ct = if escape == Escape::Json {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            headers_out.push(("Content-Type".to_string(), ct.to_string()));
        }
        let secrets = secrets_of(url, body_text, &headers);
        headers_out.extend(headers);
        let url = template.ok_or_else(Vec::new)?;
        Ok((
            Webhook {
                url,
                redacted,
                host,
                body,
                escape,
                headers: headers_out,
                secrets,
            },
            warnings,
        ))
    }

    /// The request for an event: GET without a body template, POST with one.
    pub(crate) fn prepare(&self, event: &Event) -> Prepared {
        let body = self.body.as_ref().map(|t| t.render(event, self.escape));
        Prepared {
            method: if body.is_some() { "POST" } else { "GET" },
            url: self.url.render(event, Escape::Percent),
            body,
            headers: self.headers.clone(),
        }
    }

    /// `https://api.telegram.org/****`.
    pub(crate) fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// The host (and port) of the URL, for the caller's proxy decision (`NO_PROXY`).
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn body_kind(&self) -> &'static str {
        match (&self.body, self.escape) {
            (None, _) => "none (GET)",
            (Some(_), Escape::Json) => "JSON (POST)",
            (Some(_), Escape::Percent) => "form (POST)",
            (Some(_), Escape::Raw) => "text (POST)",
        }
    }

    pub(crate) fn header_names(&self) -> Vec<&str> {
        self.headers.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// `text` with the rendered URL and every secret-looking part of the configuration
    /// replaced by `****`.
    pub(crate) fn scrub(&self, text: &str, rendered_url: &str) -> String {
        let mut out = text.replace(rendered_url, &self.redacted);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "****");
        }
        out
    }

    /// Sends one request; a non-2xx status is an error carrying the answer's start. A 3xx
    /// too: redirects are not followed (a redirect could carry the token's request to another
    /// host), so nothing reached the receiver.
    pub(crate) fn send(&self, agent: &ureq::Agent, event: &Event) -> Result<Receipt, NotifyError> {
        let p = self.prepare(event);
        let mut req = agent.request(p.method, &p.url).timeout(SEND_TIMEOUT);
        for (k, v) in &p.headers {
            req = req.set(k, v);
        }
        let result = match &p.body {
            Some(b) => req.send_bytes(b.as_bytes()),
            None => req.call(),
        };
        match result {
            Ok(resp) if !(200..300).contains(&resp.status()) => {
                let code = resp.status();
                Err(NotifyError::Status {
                    code,
                    answer: self.scrub(&snippet(resp), &p.url),
                })
            }
            Ok(resp) => Ok(Receipt {
                status: resp.status(),
                snippet: self.scrub(&snippet(resp), &p.url),
            }),
            Err(ureq::Error::Status(code, resp)) => Err(NotifyError::Status {
                code,
                answer: self.scrub(&snippet(resp), &p.url),
            }),
            Err(ureq::Error::Transport(t)) => {
                // Not `t.to_string()`: ureq's Display starts with the whole URL.
                let mut text = t.kind().to_string();
                if let Some(m) = t.message() {
                    text = format!("{text}: {m}");
                }
                if let Some(src) = std::error::Error::source(&t) {
                    text = format!("{text}: {src}");
                }
                let text = self.scrub(&text, &p.url);
                Err(NotifyError::Transport(
                    text.chars().flat_map(char::escape_debug).collect(),
                ))
            }
        }
    }
}

/// How placeholders are escaped in the body: as the operator's Content-Type says, else JSON
/// for a body that looks like JSON, else raw.
fn escape_for(given_type: Option<&str>, body_text: Option<&str>) -> Escape {
    match (given_type, body_text) {
        (Some(t), _) if t.contains("json") => Escape::Json,
        (Some(t), _) if t.starts_with("application/x-www-form-urlencoded") => Escape::Percent,
        (Some(_), _) => Escape::Raw,
        (None, Some(b)) if looks_like_json(b) => Escape::Json,
        (None, _) => Escape::Raw,
    }
}

/// A JSON body template that is not valid JSON once filled in for some event: the error.
fn json_body_error(t: &Template) -> Option<super::SettingError> {
    for kind in SELECTABLE {
        if let Err(e) =
            serde_json::from_str::<serde_json::Value>(&t.render(&sample(kind), Escape::Json))
        {
            return Some((
                "NOTIFY_BODY",
                format!(
                    "is not valid JSON once filled in ({e}); placeholders belong inside strings: \"#{{message}}\""
                ),
            ));
        }
    }
    None
}

/// The secrets to scrub from texts: runs of token characters in the URL after its host, the
/// body's text and the header values, longest first.
fn secrets_of(url: &str, body_text: Option<&str>, headers: &[(String, String)]) -> Vec<String> {
    let mut secrets = Vec::new();
    let after_host = authority(url).map_or(url, |(_, _, rest)| rest);
    secrets.extend(secret_runs(after_host));
    secrets.extend(secret_runs(body_text.unwrap_or("")));
    for (_, v) in headers {
        secrets.extend(secret_runs(v));
    }
    // Longest first (a stable sort, as sort_by_key), through the binary's one sort.
    crate::order::sort_by_i64(&mut secrets, |s| -(s.len() as i64));
    secrets.dedup();
    secrets
}

/// The URL template must be `http(s)://host…` with placeholders only after the host, so the
/// host (and the redacted form) is fixed at load time; no white space or control characters.
fn check_url(url: &str) -> Result<Template, String> {
    let Some((_, host, _)) = authority(url) else {
        return Err("must start with https:// (or http://)".into());
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds white space or a control character (percent-encode it)".into());
    }
    let t = Template::parse(url)?;
    if t.has_placeholders() {
        let prefix = t.literal_prefix();
        let fixed = authority(prefix).is_some_and(|(_, _, rest)| !rest.is_empty());
        if !fixed {
            return Err("placeholders are allowed only after the host".into());
        }
    }
    if host.is_empty() {
        return Err("has no host".into());
    }
    Ok(t)
}

/// (scheme, host[:port], rest) of an http(s) URL, with any `user:password@` dropped.
fn authority(url: &str) -> Option<(&str, String, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    Some((scheme, host.to_string(), &rest[end..]))
}

fn is_loopback(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(h, _)| !h.starts_with('[') || h.ends_with(']'))
        .map_or(host, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Scheme and host (and port) kept; credentials, path and query masked:
/// `https://qyapi.weixin.qq.com/****`. Not a URL at all: `****`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.trim().split_once("://") else {
        return "****".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let (userinfo, host) = match auth.rsplit_once('@') {
        Some((_, h)) => (true, h),
        None => (false, auth),
    };
    let safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    };
    let host_ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
    if !safe(scheme) || !host_ok {
        return "****".into();
    }
    let masked = if userinfo || end < rest.len() {
        "/****"
    } else {
        ""
    };
    format!("{scheme}://{host}{masked}")
}

/// Runs of token characters long enough to be a key.
/// Whole runs (`bot123:AAH…`) and their parts between `:` (`AAH…`, as an answer may quote
/// the token without the path's prefix); longest first, so a part never splits a whole run.
fn secret_runs(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for run in text.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.:~%+".contains(c))) {
        for s in std::iter::once(run).chain(run.split(':')) {
            if s.len() >= SECRET_RUN && !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
    }
    crate::order::sort_by_i64(&mut out, |s| -(s.len() as i64));
    out
}

/// The first 200 bytes of an answer, readable: quotes, backslashes and other text as they
/// came (`{"errcode":0}`), only control and invisible formatting characters escaped (`\n`,
/// `\u{202e}`), so none reaches a terminal or a log line.
fn snippet(resp: ureq::Response) -> String {
    let mut buf = Vec::new();
    let _ = resp.into_reader().take(MAX_ANSWER).read_to_end(&mut buf);
    buf.truncate(SNIPPET);
    readable(String::from_utf8_lossy(&buf).trim())
}

fn readable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // escape_debug would write these as \" \' \\, which only garbles JSON answers.
            '"' | '\'' | '\\' => out.push(c),
            c => out.extend(c.escape_debug()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::event::EventKind;
    use super::*;

    const TG: &str = "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage?chat_id=42&text=#{message}";

    #[test]
    fn redaction_keeps_scheme_and_host_only() {
        let cases = [
            (TG, "https://api.telegram.org/****"),
            (
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",
                "https://qyapi.weixin.qq.com/****",
            ),
            (
                "https://api.day.app:8443/KEY/#{message}",
                "https://api.day.app:8443/****",
            ),
            ("https://user:pw@example.com", "https://example.com/****"),
            ("https://example.com", "https://example.com"),
            ("http://[::1]:9/x?y", "http://[::1]:9/****"),
            ("https://ho st/x", "****"),
            ("token-without-scheme", "****"),
            ("", "****"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn url_validation() {
        let err = |u: &str| {
            let e = Webhook::new(u, None, None).err().unwrap();
            e.iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        assert!(err("ftp://x/y").contains("must start with https://"));
        assert!(err("https:///x").contains("no host"));
        assert!(err("https://#{ip}.example.com/x").contains("only after the host"));
        assert!(err("https://example.com#{ip}").contains("only after the host"));
        assert!(err("https://example.com/a b").contains("white space"));
        let e = err("https://example.com/secret-token-1234567890?x=#{nope}");
        assert!(
            e.contains("unknown placeholder #{nope}") && !e.contains("secret-token"),
            "{e}"
        );
        let (_, warnings) = Webhook::new("http://example.com/x", None, None).unwrap();
        assert!(warnings[0].contains("clear text"));
        let (_, warnings) = Webhook::new("http://127.0.0.1:8080/x", None, None).unwrap();
        assert!(warnings.is_empty());
        let (hook, _) = Webhook::new("http://[::1]:8080/x", None, None).unwrap();
        assert_eq!(hook.host(), "[::1]:8080");
        assert!(
            is_loopback("[::1]:8080") && is_loopback("localhost") && !is_loopback("example.com:80")
        );
    }

    #[test]
    fn get_without_body_post_with_one() {
        let (hook, _) = Webhook::new(TG, None, Some("X-A: 1")).unwrap();
        let p = hook.prepare(&sample(EventKind::Grant));
        assert_eq!(p.method, "GET");
        assert_eq!(p.body, None);
        assert!(p.url.ends_with("&text=knockd%3A%20opened%20TCP%2022%2C443%3B%20UDP%2053%20for%20203.0.113.5%20%28phone%29%20until%202026-12-25%2013%3A38Z"), "{}", p.url);
        assert_eq!(p.headers, vec![("X-A".into(), "1".into())]);

        let (hook, _) =
            Webhook::new("https://h/x", Some(r##" {"text":"#{message}"}"##), None).unwrap();
        let p = hook.prepare(&sample(EventKind::Fail));
        assert_eq!(p.method, "POST");
        assert_eq!(
            p.headers,
            vec![("Content-Type".into(), "application/json".into())]
        );
        assert_eq!(hook.body_kind(), "JSON (POST)");

        let (hook, _) = Webhook::new("https://h/x", Some("ip #{ip} & #{label}"), None).unwrap();
        let p = hook.prepare(&sample(EventKind::Fail));
        assert_eq!(p.body.as_deref(), Some("ip 203.0.113.5 & phone"));
        assert_eq!(p.headers[0].1, "text/plain; charset=utf-8");

        let form = "Content-Type: application/x-www-form-urlencoded";
        let (hook, _) = Webhook::new(
            "https://h/x",
            Some("token=t&content=#{message}"),
            Some(form),
        )
        .unwrap();
        let p = hook.prepare(&sample(EventKind::Lockout));
        assert_eq!(
            p.body.as_deref(),
            Some("token=t&content=knockd%3A%20locked%20out%20198.51.100.7%20after%2010%20failed%20knocks%2C%20until%202026-12-25%2013%3A38Z")
        );
        assert_eq!(p.headers.len(), 1);
    }

    #[test]
    fn a_body_that_is_not_json_once_filled_in_is_refused() {
        let e = Webhook::new("https://h/x", Some(r#"{"text": #{message}}"#), None)
            .err()
            .unwrap();
        assert!(e[0].1.contains("not valid JSON once filled in"), "{e:?}");
        let e = Webhook::new("https://h/x", Some("{#{nope}"), Some("X: a\rb"))
            .err()
            .unwrap();
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn answers_stay_readable_with_control_characters_neutralised() {
        assert_eq!(
            readable(r#"{"errcode":0,"errmsg":"ok","path":"a\b","说明":"已发送"}"#),
            r#"{"errcode":0,"errmsg":"ok","path":"a\b","说明":"已发送"}"#
        );
        assert_eq!(
            readable("line\nnext\u{1b}[31m\u{202e}x"),
            "line\\nnext\\u{1b}[31m\\u{202e}x"
        );
    }

    #[test]
    fn scrubbing_removes_url_parts_and_header_tokens() {
        let (hook, _) =
            Webhook::new(TG, None, Some("Authorization: Bearer abcdefghijklmnop0123")).unwrap();
        let url = hook.prepare(&sample(EventKind::Grant)).url;
        let text = format!(
            "{url}: Dns Failed; token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw; auth abcdefghijklmnop0123"
        );
        let s = hook.scrub(&text, &url);
        assert_eq!(
            s,
            "https://api.telegram.org/****: Dns Failed; token 123456789:****; auth ****"
        );
    }
}
