//! `#{name}` templates for `NOTIFY_URL` and `NOTIFY_BODY`, and `NOTIFY_HEADERS` lines.
//! Templates are parsed once at load time, so an unknown placeholder is a configuration error
//! naming it; rendering escapes each value for where it lands and cannot fail.

use super::event::{Event, FIELDS};

/// How values are escaped when they are put into a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// RFC 3986 percent-encoding of every byte but the unreserved `A-Z a-z 0-9 - . _ ~`:
    /// the URL, and `application/x-www-form-urlencoded` bodies (`%20` for a space is valid
    /// there too).
    Percent,
    /// The inside of a JSON string: `"`, `\` and control characters escaped.
    Json,
    /// Verbatim (a `text/plain` body).
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Field(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// `#{name}` is a placeholder (lower case, one of [`FIELDS`]); any other `#` is literal.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("#{") {
            if at > 0 {
                parts.push(Part::Lit(rest[..at].to_string()));
            }
            let after = &rest[at + 2..];
            let Some(end) = after.find('}') else {
                return Err(format!(
                    "'#{{' without a closing '}}' at '{}'",
                    clip(&rest[at..]).escape_debug()
                ));
            };
            let name = &after[..end];
            match FIELDS.iter().find(|f| **f == name) {
                Some(f) => parts.push(Part::Field(f)),
                None => {
                    return Err(format!(
                        "unknown placeholder #{{{}}}; known: {}",
                        clip(name).escape_debug(),
                        FIELDS.map(|f| format!("#{{{f}}}")).join(" ")
                    ))
                }
            }
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    pub(crate) fn render(&self, event: &Event, escape: Escape) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Field(name) => {
                    let value = event.value(name).unwrap_or_default();
                    match escape {
                        Escape::Percent => percent_encode(&value, &mut out),
                        Escape::Json => json_escape(&value, &mut out),
                        Escape::Raw => out.push_str(&value),
                    }
                }
            }
        }
        out
    }

    /// The literal text before the first placeholder (all of it without placeholders).
    pub(crate) fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Lit(s)) => s,
            _ => "",
        }
    }

    pub(crate) fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }
}

/// At most 40 characters of a bad fragment for an error message.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

pub(crate) fn percent_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

fn json_escape(value: &str, out: &mut String) {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

/// A JSON body is one that starts with `{` or `[` once leading white space is trimmed.
pub(crate) fn looks_like_json(body: &str) -> bool {
    matches!(body.trim_start().as_bytes().first(), Some(b'{' | b'['))
}

/// Headers knockd sets itself or that would change the message's framing.
const RESERVED_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
];

/// `NOTIFY_HEADERS`: `Name: value` lines, separated by new lines or a literal `\n` (so a
/// single-quoted `.env` value can hold several). Names are RFC 9110 tokens; values are
/// printable ASCII, spaces and tabs, which rules out CR/LF injection. Header values are taken
/// literally (no placeholders): they often carry a token, and are never printed.
pub(crate) fn parse_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    let text = text.replace("\\n", "\n");
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim_matches([' ', '\t', '\r']);
        if line.is_empty() {
            continue;
        }
        let n = i + 1;
        let Some((name, value)) = line.split_once(':') else {
            errors.push(format!("line {n} is not 'Name: value'"));
            continue;
        };
        let (name, value) = (
            name.trim_matches([' ', '\t']),
            value.trim_matches([' ', '\t']),
        );
        if name.is_empty() || !name.bytes().all(is_tchar) {
            errors.push(format!(
                "line {n}: '{}' is not a header name",
                clip(name).escape_debug()
            ));
        } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            errors.push(format!("line {n}: knockd sets {name} itself"));
        } else if !value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            // The value may be a token: name the header, never show the value.
            errors.push(format!(
                "line {n}: the value of {name} holds a control or non-ASCII character"
            ));
        } else if out.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            errors.push(format!("line {n}: {name} is given twice"));
        } else {
            out.push((name.to_string(), value.to_string()));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("; "))
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::super::event::{sample, EventKind};
    use super::*;

    fn hostile() -> Event {
        sample(EventKind::Grant).with_label("a \"quoted\" \\ label\n&x=1 é")
    }

    #[test]
    fn placeholders_parse_and_unknown_ones_are_named() {
        let t = Template::parse("https://x/#{ip}?#{nope}").unwrap_err();
        assert!(
            t.starts_with("unknown placeholder #{nope}; known: #{event} #{ip}"),
            "{t}"
        );
        assert!(Template::parse("a #{IP}").unwrap_err().contains("#{IP}"));
        assert!(Template::parse("a #{ip")
            .unwrap_err()
            .contains("without a closing"));
        let t = Template::parse("# #x {ip} #{ip}#").unwrap();
        assert_eq!(
            t.render(&sample(EventKind::Grant), Escape::Raw),
            "# #x {ip} 203.0.113.5#"
        );
        assert!(!Template::parse("no fields").unwrap().has_placeholders());
        assert_eq!(
            Template::parse("https://h/p?#{ip}")
                .unwrap()
                .literal_prefix(),
            "https://h/p?"
        );
    }

    #[test]
    fn json_context_survives_quotes_and_backslashes() {
        let t = Template::parse(
            r##"{"msgtype":"text","text":{"content":"#{message}"},"label":"#{label}"}"##,
        )
        .unwrap();
        let e = hostile();
        let body = t.render(&e, Escape::Json);
        let v: serde_json::Value = serde_json::from_str(&body).expect(&body);
        assert_eq!(v["label"], e.label.as_str());
        assert_eq!(v["text"]["content"], e.message().as_str());
    }

    #[test]
    fn percent_context_keeps_only_unreserved() {
        let t = Template::parse("https://h/send?l=#{label}&m=#{ports}").unwrap();
        assert_eq!(
            t.render(&hostile(), Escape::Percent),
            "https://h/send?l=a%20%22quoted%22%20%5C%20label%0A%26x%3D1%20%C3%A9&m=TCP%2022%2C443%3B%20UDP%2053"
        );
        let mut s = String::new();
        percent_encode("AZaz09-._~/?#", &mut s);
        assert_eq!(s, "AZaz09-._~%2F%3F%23");
    }

    #[test]
    fn raw_context_is_verbatim() {
        let t = Template::parse("#{label}|#{event}").unwrap();
        assert_eq!(
            t.render(&hostile(), Escape::Raw),
            format!("{}|grant", hostile().label)
        );
    }

    #[test]
    fn json_detection() {
        for (body, json) in [
            (" {\"a\":1}", true),
            ("\n[1]", true),
            ("a=b", false),
            ("", false),
        ] {
            assert_eq!(looks_like_json(body), json, "{body:?}");
        }
    }

    #[test]
    fn headers_parse_and_reject_injection() {
        let ok = parse_headers("Authorization: Bearer abc\\nX-Title:  knockd \n\n").unwrap();
        assert_eq!(
            ok,
            vec![
                ("Authorization".into(), "Bearer abc".into()),
                ("X-Title".into(), "knockd".into())
            ]
        );
        assert_eq!(parse_headers("").unwrap(), vec![]);
        let cases = [
            ("X-A: 1\rInjected: yes", "control"),
            ("Bad Name: v", "not a header name"),
            ("X-A: v\u{7f}", "control"),
            ("X-A: naïve", "non-ASCII"),
            ("novalue", "not 'Name: value'"),
            ("Host: evil", "knockd sets Host itself"),
            ("Content-Length: 5", "itself"),
            ("X-A: 1\nx-a: 2", "given twice"),
        ];
        for (text, want) in cases {
            let err = parse_headers(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let err = parse_headers("X-Token: s3cr3t\u{1}").unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
