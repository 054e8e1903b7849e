//! The serving knockd's key state for the challenge–response knock (wire format in
//! `keys/mod.rs`): the challenge secret, the clients file (re-read when it changes) and the
//! replay cache. The decision itself is `decide::judge_key`: grammar (`challenge::parse_target`
//! on the raw request target), then the lockout, then `challenge::verify`, so that a malformed
//! request costs no verification. A step-1 request answers a challenge body; a step-2 request
//! becomes an ordinary `Decision` (reject, refuse or grant) with the client's own rule
//! lifetime. Every malformed request and every failed step 2 is a `Reject` and so counts toward
//! the lockout. The tables below check every branch of that decision against this state.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;
use crate::keys::challenge;
use crate::keys::clients::Clients;
use crate::keys::clients_file::{ClientsFile, Reload};
use crate::keys::replay::ReplayCache;
use crate::keys::RandomUnavailable;
use crate::log;
use crate::sync::lock;

/// The serving knockd's key state: the challenge secret, the clients file (re-read when it
/// changes, at most one `stat` a second, and on [`Keys::reload_clients`]) and the replay cache.
pub(crate) struct Keys {
    pub(super) secret: Vec<u8>,
    pub(super) ttl_secs: u64,
    /// RULE_TTL in seconds: caps the lifetime a knock asks for when its client has no `ttl=`.
    pub(super) rule_ttl_secs: u64,
    /// The Unix second the keys were opened (the serving knockd's start): challenges issued up
    /// to it are refused as stale. The replay cache starts empty, so a knock used before a
    /// restart would pass again; with a random secret per process its G would fail anyway,
    /// but KNOCK_CHALLENGE_SECRET keeps G valid across restarts. Whole seconds, like T: a
    /// knock the previous process used in the start's own second would pass too, so the
    /// challenges of that second are told apart by `mark`.
    pub(super) started: i64,
    /// Random per process, the first four bytes of every nonce this process issues: of the
    /// challenges with T at or before `started`, only its own are fresh. (Waiting for the next
    /// second instead cost up to a second of start-up.)
    pub(super) mark: [u8; 4],
    clients: Mutex<ClientsFile>,
    pub(super) replay: Mutex<ReplayCache>,
}

impl Keys {
    /// At start-up: the clients file is read (one that cannot be read was already refused by
    /// the configuration), its warnings and invalid lines logged: an invalid line disables
    /// itself only, it does not stop the door.
    pub(crate) fn open(config: &Config) -> Result<Keys, String> {
        let secret = match &config.keys.challenge_secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => challenge::new_secret()
                .map_err(|e: RandomUnavailable| e.to_string())?
                .to_vec(),
        };
        let path = &config.keys.clients_file;
        let (file, reload) =
            ClientsFile::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        log_reload(&file, &reload);
        let mark = crate::keys::random().map_err(|e: RandomUnavailable| e.to_string())?;
        Ok(Keys {
            secret,
            ttl_secs: config.keys.challenge_ttl.as_secs(),
            rule_ttl_secs: config.rules.ttl.as_secs(),
            started: crate::clock::now(),
            mark,
            clients: Mutex::new(file),
            replay: Mutex::new(ReplayCache::new(config.keys.replay_cache)),
        })
    }

    #[cfg(test)]
    fn for_test(file: ClientsFile, secret: &[u8], ttl_secs: u64, replay: usize) -> Keys {
        Keys {
            secret: secret.to_vec(),
            ttl_secs,
            rule_ttl_secs: 30 * 86_400,
            started: 0,
            mark: [0xee; 4],
            clients: Mutex::new(file),
            replay: Mutex::new(ReplayCache::new(replay)),
        }
    }

    /// Re-reads the clients file now, whatever its metadata says: for SIGHUP.
    pub(crate) fn reload_clients(&self) {
        let mut file = lock(&self.clients);
        let reload = file.force_reload();
        log_reload(&file, &reload);
    }

    /// How many clients are in use.
    pub(crate) fn client_count(&self) -> usize {
        lock(&self.clients).clients().len()
    }

    /// The clients in use, after a look at the file now, not at most once a second (the
    /// host-name thread, once per pass: a removed host line must stop before
    /// `--remove-client` revokes its rules). The look is dated now, so the knock path still
    /// looks at most a second later: it must never look later than that, or a key removed
    /// by `--remove-client` could still open after its rules were revoked.
    pub(super) fn clients_now(&self) -> Arc<Clients> {
        let mut file = lock(&self.clients);
        let reload = file.refresh_now();
        log_reload(&file, &reload);
        file.clients()
    }

    /// The clients in use, after a look at the file if the last was a second ago or more.
    pub(super) fn clients(&self) -> Arc<Clients> {
        let mut file = lock(&self.clients);
        let reload = file.refresh(Instant::now());
        log_reload(&file, &reload);
        file.clients()
    }
}

fn log_reload(file: &ClientsFile, reload: &Reload) {
    let path = file.path().display();
    match reload {
        Reload::Unchanged => {}
        Reload::Loaded {
            clients,
            warnings,
            problems,
        } => {
            let ignored = match problems.len() {
                0 => String::new(),
                n => format!(" ignored-lines={n}"),
            };
            log::event(&format!("clients file={path} clients={clients}{ignored}"));
            for w in warnings {
                log::event(&format!("clients warning=\"{w}\""));
            }
            // Once per change of the file; the problem names the line, never the key.
            for p in problems {
                log::event(&format!(
                    "clients file={path} result=line-ignored problem=\"{p}\""
                ));
            }
        }
        Reload::Missing => log::event(&format!("clients file={path} clients=0 (no file)")),
        Reload::Kept { problems } => {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            log::event(&format!(
                "clients file={path} result=kept-previous problems=\"{}\"",
                list.join("; ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KnockConfig;
    use crate::knock::decide::{judge_key as judge, Decision, Reject};
    use crate::knock::http::RequestHead;
    use std::net::IpAddr;

    /// A key knock's outcome as these tables state it: not a key knock, a challenge, or a
    /// decision with the grant's lifetime beside it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum KeyDecision {
        NotKey,
        Challenge(String),
        Decided(Decision, Option<u64>),
    }

    fn view(d: Option<Decision>) -> KeyDecision {
        match d {
            None => KeyDecision::NotKey,
            Some(Decision::Challenge(c)) => KeyDecision::Challenge(c),
            Some(Decision::Grant {
                ip,
                label,
                key,
                ttl_secs,
                prefix,
            }) => KeyDecision::Decided(
                Decision::Grant {
                    ip,
                    label,
                    key,
                    ttl_secs: None,
                    prefix,
                },
                ttl_secs,
            ),
            Some(d) => KeyDecision::Decided(d, None),
        }
    }
    use crate::config::{ClientIpMethod, Secret};
    use crate::keys::challenge::{response_hash, Reason};
    use crate::knock::client_ip::Refusal;
    use crate::knock::http::{parse_head, Parsed};
    use crate::rules::cidr::Cidr;

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const S: &[u8] = b"key knock test secret";
    const NOW: i64 = 1_760_000_000;

    fn knock_config(method: ClientIpMethod) -> KnockConfig {
        KnockConfig {
            message_success: "ok".into(),
            message_failure: "no".into(),
            referer: Secret::new(""),
            path: "/favico.ico".into(),
            client_ip_method: method,
            bind: "0.0.0.0:8080".parse().unwrap(),
            trusted_proxies: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        }
    }

    fn keys(replay: usize) -> Keys {
        let dir = std::env::temp_dir().join(format!(
            "knockd-key-knock-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clients");
        std::fs::write(
            &path,
            format!("office {KEY} ttl=2h\nold {KEY}x expires=2020-01-01\nplain {KEY}y\n"),
        )
        .unwrap();
        let (file, _) = ClientsFile::open(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        Keys::for_test(file, S, 60, replay)
    }

    fn rand_suffix() -> String {
        hex::encode(crate::keys::random::<4>().unwrap())
    }

    fn head(target: &str, extra: &str) -> RequestHead {
        let text = format!("GET {target} HTTP/1.1\r\n{extra}\r\n");
        match parse_head(text.as_bytes()) {
            Parsed::Complete(h, _) => h,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const NONCE: [u8; 8] = [9, 8, 7, 6, 5, 4, 3, 2];

    fn run(
        keys: &Keys,
        method: ClientIpMethod,
        target: &str,
        extra: &str,
        peer: &str,
    ) -> KeyDecision {
        view(judge(
            &head(target, extra),
            ip(peer),
            &knock_config(method),
            keys,
            NOW,
            &|k| k == ip("203.0.113.66"),
            || Ok(NONCE),
        ))
    }

    /// Step 1 then the step-2 target for `label` with `key`, as a client at `peer` sends it.
    fn step2(keys: &Keys, label: &str, key: &str, peer: &str) -> String {
        let KeyDecision::Challenge(c) = run(
            keys,
            ClientIpMethod::Peer,
            &format!("/favico.ico?c={label}"),
            "",
            peer,
        ) else {
            panic!("no challenge")
        };
        format!(
            "/favico.ico?k={label}.{c}.{}",
            response_hash(key, label, &c)
        )
    }

    fn rejected(reason: Reject, key: &str) -> KeyDecision {
        KeyDecision::Decided(
            Decision::Reject {
                reason,
                key: ip(key),
            },
            None,
        )
    }

    #[test]
    fn table() {
        let k = keys(16);
        let a = "203.0.113.7";
        let peer = ClientIpMethod::Peer;
        let want_challenge =
            challenge::issue(S, "office", a, NOW, challenge::marked(NONCE, k.mark));
        let good = step2(&k, "office", KEY, a);
        let cases: Vec<(&str, String, &str, &str, KeyDecision)> = vec![
            (
                "other path",
                "/index.html?c=office".into(),
                "",
                a,
                KeyDecision::NotKey,
            ),
            (
                "plain knock path",
                "/favico.ico".into(),
                "",
                a,
                KeyDecision::NotKey,
            ),
            (
                "other query",
                "/favico.ico?t=1".into(),
                "",
                a,
                KeyDecision::NotKey,
            ),
            (
                "challenge",
                "/favico.ico?c=office".into(),
                "",
                a,
                KeyDecision::Challenge(want_challenge),
            ),
            (
                "unknown labels get challenges too",
                "/favico.ico?c=nobody".into(),
                "",
                a,
                KeyDecision::Challenge(challenge::issue(
                    S,
                    "nobody",
                    a,
                    NOW,
                    challenge::marked(NONCE, k.mark),
                )),
            ),
            (
                "malformed",
                "/favico.ico?c=a.b".into(),
                "",
                a,
                rejected(Reject::Malformed, a),
            ),
            (
                "malformed while locked out",
                "/favico.ico?c=a.b".into(),
                "",
                "203.0.113.66",
                rejected(Reject::LockedOut, "203.0.113.66"),
            ),
            (
                "challenge while locked out",
                "/favico.ico?c=office".into(),
                "",
                "203.0.113.66",
                rejected(Reject::LockedOut, "203.0.113.66"),
            ),
            (
                "loopback is refused, not challenged",
                "/favico.ico?c=office".into(),
                "",
                "127.0.0.1",
                KeyDecision::Decided(
                    Decision::Refuse {
                        peer: ip("127.0.0.1"),
                        refusal: Refusal::NotAllowed(ip("127.0.0.1")),
                    },
                    None,
                ),
            ),
            (
                "the right knock",
                good.clone(),
                "",
                a,
                KeyDecision::Decided(
                    Decision::Grant {
                        ip: ip(a),
                        label: "office".into(),
                        key: ip(a),
                        ttl_secs: None,
                        prefix: None,
                    },
                    Some(7200),
                ),
            ),
            (
                "the same knock again",
                good.clone(),
                "",
                a,
                rejected(Reject::Key(Reason::Replay), a),
            ),
            (
                "from another address",
                step2(&k, "office", KEY, a),
                "",
                "203.0.113.8",
                rejected(Reject::Key(Reason::Challenge), "203.0.113.8"),
            ),
            (
                "unknown label",
                step2(&k, "nobody", KEY, a),
                "",
                a,
                rejected(Reject::Key(Reason::Unknown), a),
            ),
            (
                "expired client",
                step2(&k, "old", &format!("{KEY}x"), a),
                "",
                a,
                rejected(Reject::Key(Reason::Expired), a),
            ),
            (
                "wrong key",
                step2(&k, "office", &format!("{KEY}y"), a),
                "",
                a,
                rejected(Reject::Key(Reason::Signature), a),
            ),
        ];
        for (name, target, extra, from, want) in cases {
            assert_eq!(run(&k, peer, &target, extra, from), want, "{name}");
        }
        // A POST is not a key knock: the Referer decision rejects it by method.
        let post = match parse_head(b"POST /favico.ico?c=office HTTP/1.1\r\n\r\n") {
            Parsed::Complete(h, _) => h,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            view(judge(
                &post,
                ip(a),
                &knock_config(peer),
                &k,
                NOW,
                &&|_| false,
                || Ok(NONCE)
            )),
            KeyDecision::NotKey
        );
        // The client without ttl= gets RULE_TTL (None).
        assert_eq!(
            run(&k, peer, &step2(&k, "plain", &format!("{KEY}y"), a), "", a),
            KeyDecision::Decided(
                Decision::Grant {
                    ip: ip(a),
                    label: "plain".into(),
                    key: ip(a),
                    ttl_secs: None,
                    prefix: None,
                },
                None
            )
        );
    }

    #[test]
    fn forwarded_clients_are_bound_to_the_forwarded_address() {
        let k = keys(16);
        let fwd = ClientIpMethod::Forwarded;
        let xff = "X-Forwarded-For: 198.51.100.7\r\n";
        let KeyDecision::Challenge(c) = run(&k, fwd, "/favico.ico?c=office", xff, "127.0.0.1")
        else {
            panic!("no challenge")
        };
        assert_eq!(
            c,
            challenge::issue(
                S,
                "office",
                "198.51.100.7",
                NOW,
                challenge::marked(NONCE, k.mark)
            )
        );
        let t = format!(
            "/favico.ico?k=office.{c}.{}",
            response_hash(KEY, "office", &c)
        );
        let other = "X-Forwarded-For: 198.51.100.8\r\n";
        assert_eq!(
            run(&k, fwd, &t, other, "127.0.0.1"),
            rejected(Reject::Key(Reason::Challenge), "198.51.100.8")
        );
        assert!(matches!(
            run(&k, fwd, &t, xff, "127.0.0.1"),
            KeyDecision::Decided(Decision::Grant { .. }, Some(7200))
        ));
    }

    /// The replay cache is in memory: with KNOCK_CHALLENGE_SECRET fixed, a knock used just
    /// before a restart used to pass again after it. Challenges up to the start are stale.
    #[test]
    fn challenges_issued_up_to_the_start_are_stale() {
        let mut k = keys(16);
        k.started = NOW;
        // (Challenges of later seconds are accepted: `table` runs with the start at 0.)
        let a = "203.0.113.7";
        // Issued by an earlier process (same secret) in the start's second and before it.
        for t in [NOW, NOW - 30] {
            let c = challenge::issue(S, "office", a, t, NONCE);
            let q = format!(
                "/favico.ico?k=office.{c}.{}",
                response_hash(KEY, "office", &c)
            );
            assert_eq!(
                run(&k, ClientIpMethod::Peer, &q, "", a),
                rejected(Reject::Key(Reason::Stale), a),
                "T = {t}"
            );
        }
        // Issued by this process in the start's own second (its mark in N): accepted, so the
        // start need not wait for the next second.
        let q = step2(&k, "office", KEY, a);
        assert!(q.contains(&format!(".{NOW}.eeeeeeee")), "{q}");
        let got = run(&k, ClientIpMethod::Peer, &q, "", a);
        assert!(
            matches!(got, KeyDecision::Decided(Decision::Grant { .. }, _)),
            "{got:?}"
        );
        // The same second with another process's mark: stale.
        let c = challenge::issue(S, "office", a, NOW, challenge::marked(NONCE, [0xdd; 4]));
        let q = format!(
            "/favico.ico?k=office.{c}.{}",
            response_hash(KEY, "office", &c)
        );
        assert_eq!(
            run(&k, ClientIpMethod::Peer, &q, "", a),
            rejected(Reject::Key(Reason::Stale), a)
        );
    }

    #[test]
    fn a_full_replay_cache_fails_closed() {
        let k = keys(1);
        let a = "203.0.113.7";
        let first = step2(&k, "office", KEY, a);
        assert!(matches!(
            run(&k, ClientIpMethod::Peer, &first, "", a),
            KeyDecision::Decided(Decision::Grant { .. }, _)
        ));
        let second = step2(&k, "plain", &format!("{KEY}y"), a);
        assert_eq!(
            run(&k, ClientIpMethod::Peer, &second, "", a),
            rejected(Reject::Key(Reason::ReplayFull), a)
        );
    }

    /// Written against survivors of `make mutants` (cargo-mutants): each pins a behaviour a user
    /// would notice (a key knock answered or passed on, the clients knockd knows after a reload).
    /// They share the helpers of `tests`.
    mod mutant_kills {
        use std::collections::HashMap;
        use std::path::PathBuf;

        use super::*;
        use crate::keys::challenge::response_hash;
        use crate::knock::http::{parse_head, Parsed};

        const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        const SECRET: &str = "a-challenge-secret-for-tests-0123456789";
        const NOW: i64 = 1_760_000_000;
        const NONCE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

        /// A clients file in its own directory, removed on drop.
        struct Dir(PathBuf);

        impl Dir {
            fn new(clients: &str) -> Dir {
                let dir = std::env::temp_dir().join(format!(
                    "knockd-key-knock-mk-{}-{}",
                    std::process::id(),
                    hex::encode(crate::keys::random::<4>().expect("random"))
                ));
                std::fs::create_dir_all(&dir).expect("dir");
                let d = Dir(dir);
                d.write(clients);
                d
            }

            fn file(&self) -> PathBuf {
                self.0.join("clients")
            }

            fn write(&self, clients: &str) {
                std::fs::write(self.file(), clients).expect("write");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::Permissions::from_mode(0o600);
                    std::fs::set_permissions(self.file(), mode).expect("chmod");
                }
            }
        }

        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }

        /// A whole configuration, as `knockd` reads it, with the clients file in `dir`.
        fn config(dir: &Dir) -> Config {
            let env: HashMap<String, String> = [
                ("FW_PERMIT_PORTS_TCP", "22"),
                ("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", "lhins-a0ogy7ty"),
                ("TENCENT_CLOUD_SECRET_ID", "AKIDexampleexampleexample"),
                ("TENCENT_CLOUD_SECRET_KEY", "keykeykeykeykeykey"),
                ("KNOCK_REFERER", "https://example.com/some-long-secret"),
                ("KNOCK_CHALLENGE_SECRET", SECRET),
                ("KNOCK_CHALLENGE_TTL", "90s"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([(
                "KNOCK_CLIENTS_FILE".to_string(),
                dir.file().display().to_string(),
            )])
            .collect();
            crate::config::from_pairs(&[], &env).expect("valid configuration")
        }

        fn head(method: &str, target: &str) -> RequestHead {
            let text = format!("{method} {target} HTTP/1.1\r\n\r\n");
            match parse_head(text.as_bytes()) {
                Parsed::Complete(h, _) => h,
                other => panic!("{text:?}: {other:?}"),
            }
        }

        fn judge_at(keys: &Keys, config: &Config, method: &str, target: &str) -> KeyDecision {
            view(judge(
                &head(method, target),
                "203.0.113.7".parse().expect("ip"),
                &config.knock,
                keys,
                NOW,
                &|_| false,
                || Ok(NONCE),
            ))
        }

        #[test]
        fn a_head_request_is_a_key_knock_too() {
            let dir = Dir::new(&format!("office {KEY}\n"));
            let c = config(&dir);
            let mut keys = Keys::open(&c).expect("keys");
            // Judged at NOW, a fixed time before this process started.
            keys.started = NOW - 1;
            let want = challenge::issue(
                SECRET.as_bytes(),
                "office",
                "203.0.113.7",
                NOW,
                challenge::marked(NONCE, keys.mark),
            );
            for method in ["GET", "HEAD"] {
                assert_eq!(
                    judge_at(&keys, &c, method, "/favico.ico?c=office"),
                    KeyDecision::Challenge(want.clone()),
                    "{method}"
                );
            }
            for method in ["POST", "PUT", "OPTIONS"] {
                assert_eq!(
                    judge_at(&keys, &c, method, "/favico.ico?c=office"),
                    KeyDecision::NotKey,
                    "{method}"
                );
            }
        }

        /// `Keys::open` takes the configured challenge secret, TTL and clients file: a client in
        /// the file completes a knock.
        #[test]
        fn keys_opened_from_the_configuration_grant_a_listed_client() {
            let dir = Dir::new(&format!("office {KEY} ttl=2h\n"));
            let c = config(&dir);
            let mut keys = Keys::open(&c).expect("keys");
            // Judged at NOW, a fixed time before this process started.
            keys.started = NOW - 1;
            assert_eq!(keys.client_count(), 1);
            let KeyDecision::Challenge(ch) = judge_at(&keys, &c, "GET", "/favico.ico?c=office")
            else {
                panic!("no challenge")
            };
            let k = format!(
                "/favico.ico?k=office.{ch}.{}",
                response_hash(KEY, "office", &ch)
            );
            assert_eq!(
                judge_at(&keys, &c, "GET", &k),
                KeyDecision::Decided(
                    Decision::Grant {
                        ip: "203.0.113.7".parse().expect("ip"),
                        label: "office".into(),
                        key: "203.0.113.7".parse().expect("ip"),
                        ttl_secs: None,
                        prefix: None,
                    },
                    Some(7200)
                )
            );
        }

        #[test]
        fn sighup_reloads_the_clients_file_at_once() {
            let dir = Dir::new(&format!("office {KEY}\n"));
            let c = config(&dir);
            let keys = Keys::open(&c).expect("keys");
            assert_eq!(keys.client_count(), 1);
            dir.write(&format!("office {KEY}\nhome {KEY}x\nlaptop {KEY}y\n"));
            keys.reload_clients();
            assert_eq!(keys.client_count(), 3);
            dir.write("");
            keys.reload_clients();
            assert_eq!(keys.client_count(), 0);
        }

        /// A clients file that cannot be read after the configuration was read stops the
        /// start; an invalid line does not, it only disables itself.
        #[test]
        fn an_unreadable_clients_file_stops_the_start_an_invalid_line_does_not() {
            let dir = Dir::new(&format!("office {KEY}\n"));
            let c = config(&dir);
            dir.write(&format!("office not-a-key\nhome {KEY}x\n"));
            let keys = Keys::open(&c).expect("one invalid line does not stop the start");
            assert_eq!(keys.client_count(), 1);
            std::fs::remove_file(dir.file()).expect("rm");
            std::fs::create_dir(dir.file()).expect("a directory in its place");
            assert!(Keys::open(&c).is_err());
            std::fs::remove_dir(dir.file()).expect("rmdir");
        }
    }
}
