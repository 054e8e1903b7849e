//! The `.env` grammar, close to python-dotenv so that a file written for the Python original
//! reads the same here. Pure: text in, key/value pairs and errors out.
//!
//! - `#` comments and blank lines; a UTF-8 BOM; CRLF line endings; an optional `export `.
//! - `KEY=value`, `KEY = value`, `KEY ='value'`: spaces around `=` are ignored.
//! - `'single quoted'`: literal, nothing is expanded or unescaped (the safe form for secrets).
//! - `"double quoted"`: `\n \r \t \" \\` escapes, then `${VAR}` / `${VAR:-default}` expansion.
//! - unquoted: trimmed, ` #` starts a comment, then `${VAR}` expansion.
//!
//! Errors name the line and never quote the line's text: it may hold a secret.

use std::collections::HashMap;
use std::fmt;

/// Longest value once `${…}` references are expanded: a `${A}${A}` doubling chain must stop
/// with an error, not take gigabytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// All expanded values of one file together, at most.
pub const MAX_TOTAL: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses `text`, expanding `${VAR}` from earlier keys of the same file only.
pub fn parse(text: &str) -> (Vec<(String, String)>, Vec<EnvFileError>) {
    parse_with_env(text, &HashMap::new())
}

/// Parses `text`, expanding `${VAR}` first from `env`, then from earlier keys of the file, else
/// to the empty string: python-dotenv's order when the environment overrides the file (its
/// `load_dotenv()` default), so that a reference means what the rest of the config means.
pub fn parse_with_env(
    text: &str,
    env: &HashMap<String, String>,
) -> (Vec<(String, String)>, Vec<EnvFileError>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0usize;
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(None) => {}
            Ok(Some((key, raw, expand))) => {
                let value = if expand {
                    expand_vars(&raw, |name| {
                        env.get(name).map(String::as_str).or_else(|| {
                            pairs
                                .iter()
                                .rev()
                                .find(|(k, _)| k == name)
                                .map(|(_, v)| v.as_str())
                        })
                    })
                } else {
                    Ok(raw)
                };
                let value = value.and_then(|v| {
                    total += v.len();
                    if total > MAX_TOTAL {
                        Err("the file's values add up to more than 4 MiB once expanded")
                    } else {
                        Ok(v)
                    }
                });
                match value {
                    Ok(v) => pairs.push((key, v)),
                    Err(message) => errors.push(EnvFileError {
                        line: i + 1,
                        message: message.to_string(),
                    }),
                }
            }
            Err(message) => errors.push(EnvFileError {
                line: i + 1,
                message: message.to_string(),
            }),
        }
    }
    (pairs, errors)
}

/// One line: None for blank/comment lines, else (key, value, whether to expand `${…}`).
fn parse_line(line: &str) -> Result<Option<(String, String, bool)>, &'static str> {
    // `lines()` already drops "\r\n"; a stray trailing '\r' (old Mac or mixed endings) too.
    let line = line.strip_suffix('\r').unwrap_or(line).trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let line = match line.strip_prefix("export") {
        Some(rest) if rest.starts_with(|c: char| c.is_whitespace()) => rest.trim_start(),
        _ => line,
    };
    let (key, rest) = line
        .split_once('=')
        .ok_or("no '=' on this line (expected KEY=VALUE)")?;
    let key = key.trim();
    if !is_valid_key(key) {
        return Err("invalid variable name (letters, digits and '_', not starting with a digit)");
    }
    let rest = rest.trim_start();
    let (value, expand) = if let Some(body) = rest.strip_prefix('\'') {
        let end = body
            .find('\'')
            .ok_or("unterminated single quote (a value must fit on one line)")?;
        check_after_quote(&body[end + 1..])?;
        (body[..end].to_string(), false)
    } else if let Some(body) = rest.strip_prefix('"') {
        let (value, after) = unescape_double(body)?;
        check_after_quote(after)?;
        (value, true)
    } else {
        (strip_comment(rest).trim_end().to_string(), true)
    };
    Ok(Some((key.to_string(), value, expand)))
}

fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// After a closing quote only spaces and a comment may follow: anything else means the quoting
/// is not what the author thought, and guessing could silently change a secret.
fn check_after_quote(after: &str) -> Result<(), &'static str> {
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote")
    }
}

/// Unquoted values end at whitespace followed by `#`, as in python-dotenv (so `a#b` keeps its `#`).
fn strip_comment(value: &str) -> &str {
    let mut prev_space = false;
    for (i, c) in value.char_indices() {
        if c == '#' && prev_space {
            return &value[..i];
        }
        prev_space = c.is_whitespace();
    }
    value
}

/// The body after an opening `"`: the unescaped value and the text after the closing quote.
fn unescape_double(body: &str) -> Result<(String, &str), &'static str> {
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                // Unknown escapes stay as written: a backslash in a secret must not vanish.
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated double quote (a value must fit on one line)")
}

/// `${NAME}` and `${NAME:-default}`; a bare `$` or `$NAME` stays literal, as in python-dotenv.
/// Fails when the result would be longer than MAX_VALUE.
fn expand_vars<'v>(
    value: &str,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> Result<String, &'static str> {
    const TOO_LONG: &str = "the value is longer than 64 KiB once ${...} references are expanded";
    let mut out = String::new();
    let push = |out: &mut String, s: &str| {
        if out.len() + s.len() > MAX_VALUE {
            return Err(TOO_LONG);
        }
        out.push_str(s);
        Ok(())
    };
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + 2 + len];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.contains(':') {
            // Not a form we know (`${A:=b}` etc.): keep it literally rather than guess.
            push(&mut out, &rest[..start + 3 + len])?;
        } else {
            push(&mut out, &rest[..start])?;
            // python-dotenv treats an empty value like a missing one for `:-`.
            let found = lookup(name).filter(|v| default.is_none() || !v.is_empty());
            push(&mut out, found.or(default).unwrap_or_default())?;
        }
        rest = &rest[start + 3 + len..];
    }
    push(&mut out, rest)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        let (p, e) = parse(text);
        assert!(e.is_empty(), "unexpected errors: {e:?}");
        p
    }

    fn one(text: &str) -> String {
        let p = pairs(text);
        assert_eq!(p.len(), 1, "{p:?}");
        p[0].1.clone()
    }

    #[test]
    fn seed_forms() {
        assert_eq!(one("A='80，443,3389'"), "80，443,3389");
        assert_eq!(one("A ='lhins-a0ogy7ty,'"), "lhins-a0ogy7ty,");
        assert_eq!(
            one("A = 'https://www.baidu..com/'"),
            "https://www.baidu..com/"
        );
        assert_eq!(one("METHOD_TO_GET_CLIENT_IP=\"1\""), "1");
        assert_eq!(one("A=''"), "");
        assert_eq!(one("A="), "");
    }

    #[test]
    fn comments_blanks_bom_crlf_export() {
        let p =
            pairs("\u{feff}# c\r\n\r\nexport A=1\r\n  B = two words  # note\r\n#C=3\r\nexported=4");
        assert_eq!(
            p,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("exported".into(), "4".into())
            ]
        );
    }

    #[test]
    fn unquoted_hash_without_space_is_kept() {
        assert_eq!(one("A=a#b"), "a#b");
        assert_eq!(one("A=a #b"), "a");
        assert_eq!(one("A='a #b' # c"), "a #b");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(one(r"A='a$b${HOME}\n\'"), r"a$b${HOME}\n\");
    }

    #[test]
    fn double_quote_escapes() {
        assert_eq!(one(r#"A="x\"y\\z\n\q""#), "x\"y\\z\n\\q");
        assert_eq!(one(r#"A="a # b" # comment"#), "a # b");
    }

    #[test]
    fn expansion_from_env_then_file() {
        let mut env = HashMap::new();
        env.insert("HOME".to_string(), "/root".to_string());
        let (p, e) = parse_with_env(
            "B=file\nHOME=/other\nA=${HOME}/x\nC=\"${B}-${NOPE}-${NOPE:-d}\"\nD='${B}'\nE=$B a$",
            &env,
        );
        assert!(e.is_empty());
        let get = |k: &str| {
            p.iter()
                .rev()
                .find(|(kk, _)| kk == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("A"), Some("/root/x"));
        assert_eq!(get("C"), Some("file--d"));
        assert_eq!(get("D"), Some("${B}"));
        assert_eq!(get("E"), Some("$B a$"));
    }

    #[test]
    fn unclosed_brace_is_literal() {
        assert_eq!(one("A=x${B"), "x${B");
    }

    #[test]
    fn errors_name_lines_never_values() {
        let (p, e) = parse(
            "OK=1\nsecretvalue123\nB='secretvalue123\n1X=2\nC=\"q\" secretvalue123\n=v\nD=\"open",
        );
        assert_eq!(p, vec![("OK".into(), "1".into())]);
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7]);
        for err in &e {
            assert!(!err.to_string().contains("secretvalue123"), "{err}");
        }
    }

    #[test]
    fn later_keys_are_kept_in_order() {
        let p = pairs("A=1\nA=2");
        assert_eq!(p, vec![("A".into(), "1".into()), ("A".into(), "2".into())]);
    }

    /// A doubling chain stops with an error naming the line, at once.
    #[test]
    fn expansion_is_bounded() {
        let mut text = String::from("A0=xxxxxxxxxxxxxxxx\n");
        for i in 1..=40 {
            text.push_str(&format!("A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
        }
        let started = std::time::Instant::now();
        let (p, e) = parse(&text);
        assert!(started.elapsed().as_secs() < 2);
        // 16 << 12 = 64 KiB is the last that fits; A13 fails and is left unset, so the rest
        // of the chain expands an empty value, as python-dotenv does with an unset one.
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 14);
        assert!(e[0].message.contains("64 KiB"), "{}", e[0].message);
        assert!(p.iter().all(|(_, v)| v.len() <= MAX_VALUE));
        assert_eq!(
            p.iter().find(|(k, _)| k == "A12").map(|(_, v)| v.len()),
            Some(64 * 1024)
        );
        // Many values of the largest size run into the total cap.
        let big = "y".repeat(MAX_VALUE);
        let mut text = format!("B='{big}'\n");
        for i in 0..100 {
            text.push_str(&format!("C{i}=${{B}}\n"));
        }
        let (_, e) = parse(&text);
        assert!(e.iter().any(|e| e.message.contains("4 MiB")), "{e:?}");
    }
}
