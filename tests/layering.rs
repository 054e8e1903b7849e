//! The dependencies of `src/` point one way. Every `crate::` and `super::` path outside test
//! modules is resolved to the file it names; the test fails when a top-level module uses one
//! that the table below does not allow it, or when files (inside one folder too) form a cycle.
//! The table is the layering of README's design notes, lowest first: a module may use only
//! modules listed before it, and only those its row names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// (module, the modules it may use). Leaves first.
const LAYERS: &[(&str, &[&str])] = &[
    ("clock", &[]),
    ("sync", &[]),
    ("order", &[]),
    ("grammar", &[]),
    ("stdout", &[]),
    ("exit", &[]),
    ("log", &["clock"]),
    ("rules", &["clock", "order", "grammar"]),
    ("keys", &["clock", "sync", "grammar", "rules"]),
    ("notify", &["clock", "sync", "order", "grammar", "log"]),
    (
        "config",
        &["clock", "grammar", "log", "rules", "keys", "notify"],
    ),
    (
        "cloud",
        &[
            "clock", "sync", "order", "grammar", "log", "rules", "notify", "config",
        ],
    ),
    (
        "knock",
        &[
            "clock", "sync", "grammar", "exit", "log", "rules", "keys", "notify", "config", "cloud",
        ],
    ),
    (
        "client",
        &[
            "clock", "grammar", "log", "stdout", "exit", "keys", "config",
        ],
    ),
    ("cli", &["grammar", "keys", "client"]),
    (
        "ops",
        &[
            "clock", "sync", "order", "grammar", "stdout", "exit", "log", "rules", "keys",
            "notify", "config", "cloud", "knock", "client", "cli",
        ],
    ),
    ("lib", &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text of a file without its test module(s) and comments.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_test = false;
    for line in text.lines() {
        let l = line.trim_start();
        if skip_depth.is_none() && l.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let l = l.split("//").next().unwrap_or("");
        let opens = l.matches('{').count() as i32;
        let closes = l.matches('}').count() as i32;
        if pending_test {
            pending_test = false;
            if l.starts_with("mod ")
                || l.starts_with("pub mod ")
                || l.starts_with("pub(crate) mod ")
            {
                if l.trim_end().ends_with(';') {
                    continue;
                }
                skip_depth = Some(depth);
            }
        }
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The module path of a file: `knock/server.rs` → ["knock", "server"], `knock/mod.rs` →
/// ["knock"], `lib.rs` → [].
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

/// The file a module path names, walking down from `base` as far as files exist.
fn resolve(base: &[String], segs: &[&str], files: &BTreeSet<Vec<String>>) -> Vec<String> {
    let mut m = base.to_vec();
    for s in segs {
        let mut next = m.clone();
        next.push((*s).to_string());
        if files.contains(&next) {
            m = next;
        } else {
            break;
        }
    }
    m
}

fn ident_end(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// Every path after `crate::` or `super::` in `code`, as segments relative to the crate root
/// (super resolved against `module`), brace groups expanded one level.
fn paths(code: &str, module: &[String], is_mod_rs: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(start) {
            let before = rest[..at].chars().last();
            rest = &rest[at + start.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut base: Vec<String> = if start == "crate::" {
                Vec::new()
            } else {
                let mut b = module.to_vec();
                // `super` in `knock/mod.rs` is the crate root; in `knock/conn.rs`, `knock`.
                if is_mod_rs {
                    b.pop();
                }
                b.pop();
                b
            };
            // Further `super::` segments.
            let mut r = rest;
            while let Some(x) = r.strip_prefix("super::") {
                base.pop();
                r = x;
            }
            let mut segs = Vec::new();
            loop {
                let e = ident_end(r);
                if e == 0 {
                    break;
                }
                segs.push(r[..e].to_string());
                match r[e..].strip_prefix("::") {
                    Some(x) => r = x,
                    None => break,
                }
            }
            if let Some(group) = r.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    let item = item.trim();
                    let e = ident_end(item);
                    let mut s = segs.clone();
                    if e > 0 && &item[..e] != "self" {
                        s.push(item[..e].to_string());
                    }
                    let mut p = base.clone();
                    p.extend(s);
                    out.push(p);
                }
            } else {
                let mut p = base.clone();
                p.extend(segs);
                out.push(p);
            }
        }
    }
    out
}

struct Graph {
    /// file module path → file module paths it uses
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn graph() -> Graph {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let modules: BTreeSet<Vec<String>> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(&root).expect("under src")))
        .collect();
    let mut edges = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&root).expect("under src");
        if rel == Path::new("main.rs") {
            continue;
        }
        let module = module_of(rel);
        let is_mod_rs = rel
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let text = std::fs::read_to_string(f).expect("read");
        let mut used = BTreeSet::new();
        for p in paths(&code(&text), &module, is_mod_rs) {
            let segs: Vec<&str> = p.iter().map(String::as_str).collect();
            let target = resolve(&[], &segs, &modules);
            if target != module && !target.is_empty() {
                used.insert(target);
            }
        }
        edges.insert(module, used);
    }
    Graph { edges }
}

fn top(m: &[String]) -> &str {
    m.first().map_or("lib", String::as_str)
}

#[test]
fn every_module_is_in_the_table() {
    let g = graph();
    let known: BTreeSet<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    for m in g.edges.keys() {
        assert!(
            known.contains(top(m)),
            "src/{} is in no layer of tests/layering.rs",
            m.join("/")
        );
    }
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let g = graph();
    let mut wrong = Vec::new();
    for (from, tos) in &g.edges {
        let f = top(from);
        let allowed = LAYERS
            .iter()
            .find(|(m, _)| *m == f)
            .map_or(&[][..], |(_, a)| *a);
        for to in tos {
            let t = top(to);
            if t != f && f != "lib" && !allowed.contains(&t) {
                wrong.push(format!("src/{} uses {}", from.join("/"), to.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_table_itself_points_one_way() {
    for (i, (m, uses)) in LAYERS.iter().enumerate() {
        for u in *uses {
            let j = LAYERS.iter().position(|(x, _)| x == u);
            assert!(
                j.is_some_and(|j| j < i),
                "{m} may use {u}, which is not listed before it"
            );
        }
    }
}

#[test]
fn no_file_cycle() {
    let g = graph();
    // Depth-first search with colours; a grey target is a cycle.
    let mut colour: BTreeMap<&Vec<String>, u8> = BTreeMap::new();
    let mut stack: Vec<&Vec<String>> = Vec::new();
    fn visit<'a>(
        n: &'a Vec<String>,
        g: &'a Graph,
        colour: &mut BTreeMap<&'a Vec<String>, u8>,
        stack: &mut Vec<&'a Vec<String>>,
    ) -> Option<String> {
        colour.insert(n, 1);
        stack.push(n);
        for t in g.edges.get(n).into_iter().flatten() {
            // A module that re-exports its children (lib.rs, mod.rs) is not a use.
            if t.starts_with(n) {
                continue;
            }
            match colour.get(t) {
                Some(1) => {
                    let at = stack.iter().position(|s| *s == t).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.join("/")).collect();
                    cycle.push(t.join("/"));
                    return Some(cycle.join(" -> "));
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(t, g, colour, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        colour.insert(n, 2);
        None
    }
    for n in g.edges.keys() {
        if !colour.contains_key(n) {
            if let Some(c) = visit(n, &g, &mut colour, &mut stack) {
                panic!("import cycle: {c}");
            }
        }
    }
}

#[test]
fn the_resolver_sees_uses() {
    // The test is only as good as its parser: a known edge must be found.
    let g = graph();
    let conn = g
        .edges
        .get(&vec!["knock".to_string(), "conn".to_string()])
        .expect("src/knock/conn.rs");
    assert!(
        conn.iter()
            .any(|t| t == &vec!["knock".to_string(), "http".to_string()]),
        "{conn:?}"
    );
    assert!(code("a\n#[cfg(test)]\nmod tests {\n use crate::x;\n}\nb\n").trim() == "a\nb");
}

/// A file a newcomer can read: at most 500 lines before its test module.
#[test]
fn no_source_file_over_500_lines_outside_tests() {
    let mut long = Vec::new();
    for dir in ["src", "sim/src"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read");
            let lines = text
                .lines()
                .take_while(|l| !l.starts_with("#[cfg(test)]"))
                .count();
            if lines > 500 {
                long.push(format!("{} has {lines} lines", f.display()));
            }
        }
    }
    assert!(long.is_empty(), "{}", long.join("\n"));
}
