//! The ready-to-run clients that `knockd --add-client` prints (pure text generation).
//!
//! Every shell line does the same: ask for a challenge, refuse anything but hex and dots (so a
//! lockout answer or a wrong URL does not cost a second lockout strike), compute
//! H = SHA-256(`KEY:LABEL:T.N.G:KEY`), knock, and compare the answer with MESSAGE_SUCCESS:
//! it prints `knock: ok` and exits 0, or `knock: failed…` on stderr and exits 1.
//!
//! Each line has a `TTL=` variable, empty as printed: the knock is then exactly today's. Set to
//! seconds (`TTL=600`, at least 120), the line asks for that rule lifetime: `.TTL` is appended
//! to the challenge text before it is hashed and sent (`k=LABEL.T.N.G.L.H`), so H covers it.
//!
//! Transport, since knockd answers everything with status 500:
//! - curl prints the body of a 500 without `-f`; `-g` keeps `[v6]` hosts literal.
//! - GNU wget needs `--content-on-error` and exits 8, so nothing is chained on its status.
//! - busybox wget cannot show the body of a 500 at all (tried: it prints "server returned
//!   error: HTTP/1.1 500" and exits 1, with no option to change that), so the busybox line
//!   speaks HTTP/1.0 itself through `busybox nc` and cuts the head off with `busybox sed`;
//!   plain http only (busybox nc has no TLS: for https on a router use the curl line, which
//!   runs in busybox sh too, or `knockd --knock`).
//! - PowerShell (5.1 and 7): Invoke-WebRequest throws on a 500; the body is in
//!   `$_.ErrorDetails.Message`.

use super::clients::Key;
use super::url::{KnockUrl, Scheme, PLACEHOLDER_URL};

/// Seconds each request of a printed client may take.
const TIMEOUT: u32 = 20;

/// What every recipe needs. `url` is KNOCK_PUBLIC_URL; `None` prints [`PLACEHOLDER_URL`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recipe<'a> {
    pub(crate) url: Option<&'a KnockUrl>,
    pub(crate) label: &'a str,
    pub(crate) key: &'a Key,
    /// MESSAGE_SUCCESS, to tell success from failure.
    pub(crate) success: &'a str,
    /// The rule lifetime the lines ask for, in seconds; `None` prints an empty `TTL=`.
    pub(crate) lifetime: Option<u64>,
}

impl Recipe<'_> {
    fn url(&self) -> KnockUrl {
        match self.url {
            Some(u) => u.clone(),
            None => KnockUrl::placeholder(),
        }
    }

    /// The value of `TTL=`: seconds, or nothing.
    fn ttl(&self) -> String {
        self.lifetime.map_or_else(String::new, |l| l.to_string())
    }

    /// MESSAGE_SUCCESS as `$(…)` leaves it: trailing newlines removed.
    fn success_sh(&self) -> String {
        sh_quote(self.success.trim_end_matches('\n'))
    }
}

/// A POSIX shell word for any text: `'…'`, with `'` written as `'\''`.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The part of every shell line after the transport is defined as `g QUERY` printing a body.
/// With `TTL` set, the signed and sent text is `T.N.G.TTL` instead of `T.N.G`.
fn sh_steps(r: &Recipe<'_>, sha: &str) -> String {
    format!(
        "C=$(g \"c=$L\"); case $C in *[!0-9a-f.]*) C=;; esac; [ -n \"$C\" ] && \
         C=$C${{TTL:+.$TTL}} && \
         H=$(printf %s \"$K:$L:$C:$K\" | {sha} | cut -c1-64) && R=$(g \"k=$L.$C.$H\"); \
         [ \"$R\" = {} ] && echo 'knock: ok' || {{ echo \"knock: failed${{R:+: $R}}\" >&2; false; }}",
        r.success_sh()
    )
}

fn sh_vars(r: &Recipe<'_>) -> String {
    format!(
        "U={} L={} K={} TTL={} R=;",
        sh_quote(r.url().as_str()),
        sh_quote(r.label),
        sh_quote(r.key.expose()),
        r.ttl()
    )
}

const SHA_PICK: &str = "S=sha256sum; command -v $S >/dev/null || S='shasum -a 256';";

/// POSIX shell with curl; `sha256sum`, or `shasum -a 256` on macOS.
pub(crate) fn sh_curl(r: &Recipe<'_>) -> String {
    format!(
        "{} {SHA_PICK} g() {{ curl -gsS -m {TIMEOUT} \"$U?$1\"; }}; {}",
        sh_vars(r),
        sh_steps(r, "$S")
    )
}

/// POSIX shell with GNU wget.
pub(crate) fn sh_wget(r: &Recipe<'_>) -> String {
    format!(
        "{} {SHA_PICK} g() {{ wget -qO- -T {TIMEOUT} --content-on-error \"$U?$1\"; }}; {}",
        sh_vars(r),
        sh_steps(r, "$S")
    )
}

/// busybox alone (`busybox sh`, `nc`, `sed`, `sha256sum`, `cut`); `None` for an https URL.
pub(crate) fn busybox(r: &Recipe<'_>) -> Option<String> {
    let url = r.url();
    if url.scheme == Scheme::Https {
        return None;
    }
    let nc_host = url.host.trim_start_matches('[').trim_end_matches(']');
    let authority = match url.port {
        80 => url.host.clone(),
        p => format!("{}:{p}", url.host),
    };
    let steps = sh_steps(r, "busybox sha256sum").replace("| cut ", "| busybox cut ");
    Some(format!(
        "P={} V={} L={} K={} TTL={} R=; g() {{ printf 'GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \
         \"$P?$1\" \"$V\" | busybox nc -w {TIMEOUT} {} {} | busybox sed '1,/^\\r*$/d'; }}; {steps}",
        sh_quote(&url.path),
        sh_quote(&authority),
        sh_quote(r.label),
        sh_quote(r.key.expose()),
        r.ttl(),
        sh_quote(nc_host),
        url.port,
    ))
}

/// Windows PowerShell 5.1 and PowerShell 7.
pub(crate) fn powershell(r: &Recipe<'_>) -> String {
    format!(
        "$U={}; $L={}; $K={}; $TTL='{}'; function g($q) {{ try {{ (Invoke-WebRequest \
         -UseBasicParsing -TimeoutSec {TIMEOUT} \"${{U}}?$q\").Content }} catch {{ \
         $_.ErrorDetails.Message }} }}; $C = g \"c=$L\"; if ($TTL) {{ $C = \"$C.$TTL\" }}; $H = -join ([Security.Cryptography.SHA256]::Create().ComputeHash(\
         [Text.Encoding]::ASCII.GetBytes(\"${{K}}:${{L}}:${{C}}:${{K}}\")) | ForEach-Object \
         {{ $_.ToString('x2') }}); $R = g \"k=${{L}}.${{C}}.${{H}}\"; if ($R -ceq {}) \
         {{ 'knock: ok' }} else {{ \"knock: failed: $R\" }}",
        ps_quote(r.url().as_str()),
        ps_quote(r.label),
        ps_quote(r.key.expose()),
        r.ttl(),
        ps_quote(r.success),
    )
}

/// The key file for `knockd --knock`, then the command.
pub(crate) fn knockd_knock(r: &Recipe<'_>) -> String {
    let file = format!("{}.key", r.label);
    format!(
        "(umask 077; printf '%s\\n' {} > {file})\n\
         knockd --knock {} --label {} --key-file {file}{}",
        sh_quote(r.key.expose()),
        sh_quote(r.url().as_str()),
        r.label,
        r.lifetime.map_or_else(String::new, |l| format!(
            " --ttl {}",
            crate::grammar::format_duration(l)
        )),
    )
}

/// The iPhone Shortcut, action by action.
pub(crate) fn shortcut(r: &Recipe<'_>) -> String {
    let (u, l, k) = (r.url(), r.label, r.key.expose());
    let u = u.as_str();
    format!(
        "In Shortcuts, make a new shortcut and add these actions in this order (tap a result \
         in brackets to insert it as a variable; no spaces or new lines anywhere):\n\
         1. Get Contents of URL: {u}?c={l}\n\
         2. Text: {k}:{l}:[Contents of URL]:{k}\n\
         3. Generate Hash: SHA256 of [Text]\n\
         4. Text: {u}?k={l}.[Contents of URL].[Hash]\n\
         5. Get Contents of URL: [Text]\n\
         6. (optional) Show Result: [Contents of URL] (\"{}\" means the door is open)\n\
         To ask for a shorter rule lifetime, in seconds (at least 120): in actions 2 and 4 write \
         [Contents of URL].600 (for 10 minutes) instead of [Contents of URL].",
        r.success
    )
}

/// Everything `--add-client` prints after the key was added.
pub(crate) fn add_client_text(r: &Recipe<'_>) -> String {
    let mut out = String::new();
    out.push_str(
        "The key is shown only now and every client below contains it: keep them as secret as \
         a password.\n",
    );
    if r.url.is_none() {
        out.push_str(&format!(
            "NOTE: {PLACEHOLDER_URL} is a PLACEHOLDER: replace YOUR-SERVER:8080 with your \
             server's address and knock port (set KNOCK_PUBLIC_URL to have it filled in).\n"
        ));
    }
    out.push_str(
        "Every line below can ask for a shorter rule lifetime: set TTL= to seconds (TTL=600, at \
         least 120; knockd caps it at the client's lifetime), or add --ttl 10m to knockd --knock. \
         Left empty it knocks for the client's full lifetime.\n",
    );
    out.push_str(&format!(
        "\nShell with curl (Linux, macOS, routers with curl):\n  {}\n",
        sh_curl(r)
    ));
    out.push_str(&format!("\nShell with GNU wget:\n  {}\n", sh_wget(r)));
    match busybox(r) {
        Some(line) => out.push_str(&format!(
            "\nbusybox only (routers: busybox sh, nc, sed, sha256sum; http only):\n  {line}\n"
        )),
        None => out.push_str(
            "\nbusybox only: busybox nc cannot speak https; on a router use the curl line (it \
             runs in busybox sh) or knockd --knock.\n",
        ),
    }
    out.push_str(&format!("\nPowerShell (Windows):\n  {}\n", powershell(r)));
    out.push_str(&format!(
        "\nknockd as the client (routers, Linux; add --every 10m to keep knocking):\n  {}\n",
        knockd_knock(r).replace('\n', "\n  ")
    ));
    out.push_str(&format!("\niPhone Shortcut:\n{}\n", shortcut(r)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::challenge::{self, Check, Grant, Reason, Target};
    use crate::keys::clients::Clients;
    use crate::keys::replay::ReplayCache;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::Command;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const KEY: &str = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE";
    const SUCCESS: &str = "500 Internal Server Error.";
    const FAILURE: &str = "500 Internal Server Error";
    const SECRET: &[u8] = b"recipe test secret";

    type Outcomes = Arc<Mutex<Vec<Result<Grant, Reason>>>>;

    /// knockd's answer bytes, as `response()` in src/http.rs builds them.
    fn response(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 500 Internal Server Error\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\n\
             Connection: close\r\n\
             \r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// A tiny knockd: challenges and knocks verified with this module's own code, for the
    /// client `office` with KEY. Returns the base URL and what every knock came to.
    fn tiny_knockd() -> (String, Outcomes) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/favico.ico", listener.local_addr().unwrap());
        let outcomes: Outcomes = Arc::default();
        let seen = Arc::clone(&outcomes);
        let clients = Clients::parse(&format!("office {KEY} ttl=12h\n")).unwrap();
        std::thread::spawn(move || {
            let mut replay = ReplayCache::new(64);
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let body = answer(&mut conn, &clients, &mut replay, &seen);
                let _ = conn.write_all(&response(&body));
            }
        });
        (url, outcomes)
    }

    fn answer(
        conn: &mut TcpStream,
        clients: &Clients,
        replay: &mut ReplayCache,
        seen: &Outcomes,
    ) -> String {
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return FAILURE.into(),
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let line = head.split(|&b| b == b'\r').next().unwrap_or(b"");
        let target = line.split(|&b| b == b' ').nth(1).unwrap_or(b"");
        let addr = challenge::grant_address_text(conn.peer_addr().unwrap().ip());
        match challenge::parse_target(target, "/favico.ico") {
            Target::Challenge { label } => challenge::issue(
                SECRET,
                &label,
                &addr,
                now(),
                challenge::new_nonce().unwrap(),
            ),
            Target::Knock(k) => {
                let check = Check {
                    secret: SECRET,
                    ttl_secs: 60,
                    rule_ttl_secs: 30 * 86_400,
                    addr_text: &addr,
                    now: now(),
                    clients,
                    issued_after: 0,
                    mark: [0; 4],
                };
                let outcome = challenge::verify(&k, &check, replay);
                let body = if outcome.is_ok() { SUCCESS } else { FAILURE };
                seen.lock().unwrap().push(outcome);
                body.into()
            }
            _ => FAILURE.into(),
        }
    }

    /// Runs `line` with `shell` (e.g. `["sh", "-c"]`); `None` when the tools are missing and
    /// KNOCKD_TEST_REQUIRE_TOOLS is unset.
    fn run(tools: &[&str], shell: &[&str], line: &str) -> Option<(bool, String, String)> {
        for t in tools {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output();
            if !found.is_ok_and(|o| o.status.success()) {
                assert!(
                    std::env::var_os("KNOCKD_TEST_REQUIRE_TOOLS").is_none(),
                    "{t} is required (KNOCKD_TEST_REQUIRE_TOOLS is set)"
                );
                eprintln!("skipped: {t} is not installed");
                return None;
            }
        }
        let out = Command::new("timeout")
            .arg("30")
            .args(shell)
            .arg(line)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Some((out.status.success(), text(&out.stdout), text(&out.stderr)))
    }

    fn check_line(tools: &[&str], shell: &[&str], make: fn(&Recipe<'_>) -> String) {
        let (url, outcomes) = tiny_knockd();
        let url = KnockUrl::parse(&url).unwrap();
        let key = Key::parse(KEY).unwrap();
        let r = Recipe {
            url: Some(&url),
            label: "office",
            key: &key,
            success: SUCCESS,
            lifetime: None,
        };
        let Some((ok, out, err)) = run(tools, shell, &make(&r)) else {
            return;
        };
        assert!(
            ok && out == "knock: ok\n",
            "{tools:?}: stdout {out:?} stderr {err:?}"
        );
        let want = Grant {
            label: "office".into(),
            rule_ttl_secs: Some(12 * 3600),
            v4_prefix: None,
            v6_prefix: None,
        };
        assert_eq!(*outcomes.lock().unwrap(), [Ok(want)], "{tools:?}");

        // The same line with a wrong key: refused by the server, and the line says so.
        let wrong = Key::parse("ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ").unwrap();
        let r = Recipe { key: &wrong, ..r };
        let (ok, out, err) = run(tools, shell, &make(&r)).unwrap();
        assert!(
            !ok && out.is_empty() && err.starts_with("knock: failed: "),
            "{out:?} {err:?}"
        );
        assert_eq!(outcomes.lock().unwrap()[1], Err(Reason::Signature));
    }

    #[test]
    fn curl_line_opens_the_door() {
        check_line(&["curl", "sha256sum"], &["sh", "-c"], sh_curl);
    }

    #[test]
    fn curl_line_falls_back_to_shasum_like_on_macos() {
        // A PATH with curl, cut and shasum but no sha256sum, as on macOS.
        let dir = std::env::temp_dir().join(format!("knockd-macos-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for tool in ["curl", "cut", "shasum"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap();
            let real = String::from_utf8_lossy(&found.stdout).trim().to_string();
            if !real.is_empty() {
                let _ = std::os::unix::fs::symlink(&real, dir.join(tool));
            }
        }
        let path = format!("PATH={}", dir.display());
        check_line(
            &["curl", "shasum"],
            &["env", &path, "/bin/sh", "-c"],
            sh_curl,
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wget_line_opens_the_door() {
        check_line(&["wget", "sha256sum"], &["sh", "-c"], sh_wget);
    }

    #[test]
    fn busybox_line_opens_the_door() {
        fn line(r: &Recipe<'_>) -> String {
            busybox(r).unwrap()
        }
        check_line(&["busybox"], &["busybox", "sh", "-c"], line);
    }

    /// `TTL=600` in a printed line: the knock asks for 10 minutes, signed, and gets them
    /// (the tiny knockd's client has ttl=12h).
    #[test]
    fn lines_with_ttl_ask_for_a_lifetime() {
        fn bb(r: &Recipe<'_>) -> String {
            busybox(r).unwrap()
        }
        type Make = fn(&Recipe<'_>) -> String;
        let cases: [(&[&str], &[&str], Make); 3] = [
            (&["curl", "sha256sum"], &["sh", "-c"], sh_curl),
            (&["wget", "sha256sum"], &["sh", "-c"], sh_wget),
            (&["busybox"], &["busybox", "sh", "-c"], bb),
        ];
        for (tools, shell, make) in cases {
            let (url, outcomes) = tiny_knockd();
            let url = KnockUrl::parse(&url).unwrap();
            let key = Key::parse(KEY).unwrap();
            let r = Recipe {
                url: Some(&url),
                label: "office",
                key: &key,
                success: SUCCESS,
                lifetime: Some(600),
            };
            let line = make(&r);
            assert!(line.contains(" TTL=600 "), "{line}");
            let Some((ok, out, err)) = run(tools, shell, &line) else {
                continue;
            };
            assert!(ok && out == "knock: ok\n", "{tools:?}: {out:?} {err:?}");
            let want = Grant {
                label: "office".into(),
                rule_ttl_secs: Some(600),
                v4_prefix: None,
                v6_prefix: None,
            };
            assert_eq!(*outcomes.lock().unwrap(), [Ok(want)], "{tools:?}");
        }
        let key = Key::parse(KEY).unwrap();
        let r = Recipe {
            url: None,
            label: "office",
            key: &key,
            success: SUCCESS,
            lifetime: Some(600),
        };
        assert!(
            knockd_knock(&r).ends_with(" --ttl 10m"),
            "{}",
            knockd_knock(&r)
        );
        assert!(powershell(&r).contains("$TTL='600'"));
    }

    #[test]
    fn no_challenge_means_no_second_request() {
        // A server that answers MESSAGE_FAILURE (a lockout): the line stops after step 1.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = KnockUrl::parse(&format!(
            "http://{}/favico.ico",
            listener.local_addr().unwrap()
        ))
        .unwrap();
        let count = Arc::new(Mutex::new(0));
        let c = Arc::clone(&count);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let _ = conn.read(&mut [0u8; 2048]);
                *c.lock().unwrap() += 1;
                let _ = conn.write_all(&response(FAILURE));
            }
        });
        let key = Key::parse(KEY).unwrap();
        let r = Recipe {
            url: Some(&url),
            label: "office",
            key: &key,
            success: SUCCESS,
            lifetime: None,
        };
        let Some((ok, _, err)) = run(&["curl"], &["sh", "-c"], &sh_curl(&r)) else {
            return;
        };
        assert!(!ok && err == "knock: failed\n", "{err:?}");
        assert_eq!(*count.lock().unwrap(), 1);
    }

    #[test]
    fn placeholder_and_quoting() {
        let key = Key::parse(KEY).unwrap();
        let r = Recipe {
            url: None,
            label: "office",
            key: &key,
            success: "it's open",
            lifetime: None,
        };
        let text = add_client_text(&r);
        assert!(text.contains("NOTE: http://YOUR-SERVER:8080/favico.ico is a PLACEHOLDER"));
        assert!(text.contains("U='http://YOUR-SERVER:8080/favico.ico'"));
        assert!(text.contains(r#"[ "$R" = 'it'\''s open' ]"#), "{text}");
        assert!(text.contains("-ceq 'it''s open'"), "{text}");
        assert!(text.contains("busybox nc -w 20 'YOUR-SERVER' 8080"));
        assert!(
            text.contains("1. Get Contents of URL: http://YOUR-SERVER:8080/favico.ico?c=office")
        );
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");

        let https = KnockUrl::parse("https://k.example.com/favico.ico").unwrap();
        let r = Recipe {
            url: Some(&https),
            ..r
        };
        assert_eq!(busybox(&r), None);
        let text = add_client_text(&r);
        assert!(!text.contains("PLACEHOLDER") && text.contains("busybox nc cannot speak https"));

        let v6 = KnockUrl::parse("http://[2001:db8::1]/k").unwrap();
        let r = Recipe {
            url: Some(&v6),
            ..r
        };
        let line = busybox(&r).unwrap();
        assert!(
            line.contains("V='[2001:db8::1]'") && line.contains("nc -w 20 '2001:db8::1' 80"),
            "{line}"
        );
    }
}
