//! Host lines (`LABEL host=NAME` in the clients file, issue #27): knockd resolves the name
//! through the system's own resolver and keeps rules for exactly its addresses. knockd and the
//! simulator run in a network namespace of the test's own whose hosts file the test rewrites
//! (`common::netns`): the real getaddrinfo of the real binary reads it, as it would read DNS.
//! HOST_REFRESH is 1 s, so the grace (one HOST_REFRESH) is 1 s too. As root only: without
//! root each test says it skipped.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::knockd::{run, run_in, temp_dir, Knockd};
use common::netns::Netns;
use common::sim::Sim;
use common::{env_hook, env_var, hook_env, show, Setup, INSTANCE};

const NAME: &str = "home.example.test";

fn hosts(lines: &[&str]) -> String {
    std::iter::once("127.0.0.1 localhost")
        .chain(lines.iter().copied())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// knockd (HOST_REFRESH 1s, its clients file `clients`) and the simulator in `ns`.
fn start(ns: &Netns, tag: &str, clients: &str, more: &[(&str, &str)]) -> (Sim, Knockd, Setup) {
    let dir = temp_dir(tag);
    std::fs::write(dir.join("knockd.clients"), clients).expect("clients file");
    let setup = Setup::new(tag)
        .netns(&ns.name)
        .dir(&dir)
        .set("HOST_REFRESH", "1s")
        .with(more);
    let (sim, k) = setup.start();
    (sim, k, setup)
}

/// Waits (at most `secs`) until `test` holds; the log in the failure message.
fn wait_until(secs: u64, k: &Knockd, what: &str, test: impl Fn() -> bool) {
    let t = Instant::now();
    while !test() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what} within {secs}s; knockd's log:\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn open(sim: &Sim, addr: &str) -> usize {
    sim.rules_for(INSTANCE, addr).len()
}

/// Where `needle` starts in the log (it must be there).
fn at(k: &Knockd, needle: &str) -> usize {
    k.log()
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the log:\n{}", k.log()))
}

#[test]
fn the_rules_follow_the_name_as_it_is_added_moves_stops_resolving_and_turns_unopenable() {
    let Some(ns) = Netns::new("follow", &hosts(&[&format!("203.0.113.7 {NAME}")])) else {
        return;
    };
    let (sim, k, _) = start(&ns, "hosts-follow", &format!("home host={NAME}\n"), &[]);
    let who = format!("host label=home name={NAME}");

    // Added: at start, without a knock.
    wait_until(5, &k, "203.0.113.7 opened", || {
        open(&sim, "203.0.113.7") == 2
    });
    assert!(k
        .log()
        .contains(&format!("{who} added=203.0.113.7 result=ok")));

    // Moved: the new address within one refresh, the old one closed after the grace, not
    // before the new one was there.
    ns.write_hosts(&hosts(&[&format!("203.0.113.8 {NAME}")]));
    let moved = Instant::now();
    wait_until(4, &k, "203.0.113.8 opened", || {
        open(&sim, "203.0.113.8") == 2
    });
    wait_until(4, &k, "203.0.113.7 closed", || {
        open(&sim, "203.0.113.7") == 0
    });
    assert!(moved.elapsed() < Duration::from_secs(6));
    let added = at(&k, &format!("{who} added=203.0.113.8 result=ok"));
    let removed = at(&k, &format!("{who} removed=203.0.113.7 result=ok"));
    assert!(added < removed, "{}", k.log());
    // The move as the log tells it (`--no-capture` shows it).
    for l in k.log().lines().filter(|l| l.contains(&who)) {
        eprintln!("move: {l}");
    }

    // Stops resolving: logged, retried, and the last address keeps its rules.
    ns.write_hosts(&hosts(&[]));
    wait_until(4, &k, "the failed resolve logged", || {
        k.log().contains(&format!("{who} error="))
    });
    assert!(k.log().contains("kept=203.0.113.8"), "{}", k.log());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(open(&sim, "203.0.113.8"), 2, "{}", k.log());

    // Resolves again, but to addresses a name never opens (loopback, link-local, private,
    // carrier NAT, unique-local): refused and logged once each, never opened; the last
    // openable address goes after the grace.
    let refused = [
        "127.0.0.5",
        "169.254.1.1",
        "10.1.2.3",
        "100.64.0.9",
        "fd00::9",
    ];
    let lines: Vec<String> = refused.iter().map(|ip| format!("{ip} {NAME}")).collect();
    ns.write_hosts(&hosts(
        &lines.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    wait_until(5, &k, "203.0.113.8 closed", || {
        open(&sim, "203.0.113.8") == 0
    });
    std::thread::sleep(Duration::from_secs(2));
    let log = k.log();
    for ip in refused {
        let line = format!(
            "{who} refused={ip}: a name never opens a private, loopback or other non-public address"
        );
        assert_eq!(log.matches(&line).count(), 1, "{log}");
        assert_eq!(open(&sim, ip), 0);
    }
    let knockd_rules = sim
        .rules(INSTANCE)
        .iter()
        .filter(|r| {
            r["FirewallRuleDescription"]
                .as_str()
                .unwrap_or("")
                .contains("home")
        })
        .count();
    assert_eq!(knockd_rules, 0, "{:?}", sim.rules(INSTANCE));
}

#[test]
fn list_shows_the_label_revoke_removes_the_rules_and_the_next_refresh_restores_them() {
    let Some(ns) = Netns::new("revoke", &hosts(&[&format!("203.0.113.9 {NAME}")])) else {
        return;
    };
    let dir = temp_dir("hosts-revoke-hook");
    let (command, out) = env_hook(&dir);
    let (sim, k, setup) = start(
        &ns,
        "hosts-revoke",
        &format!("home host={NAME} ttl=2h\n"),
        &[("NOTIFY_COMMAND", &command), ("NOTIFY_EVENTS", "host")],
    );
    wait_until(5, &k, "203.0.113.9 opened", || {
        open(&sim, "203.0.113.9") == 2
    });

    // The notification of the change.
    let env = hook_env(&out, || k.log());
    assert_eq!(env_var(&env, "KNOCKD_EVENT"), "host");
    assert_eq!(env_var(&env, "KNOCKD_LABEL"), "home");
    assert_eq!(env_var(&env, "KNOCKD_IP"), "203.0.113.9");
    assert_eq!(env_var(&env, "KNOCKD_RESULT"), "added");
    assert!(env_var(&env, "KNOCKD_MESSAGE").contains(&format!("{NAME} resolves to it")));

    let wrap = setup.wrap();
    let list = run_in(wrap, &k.config, &["--list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", show(&list));
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("203.0.113.9")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for l in lines {
        assert!(l.trim_start().starts_with("home "), "{l}");
        assert!(
            l.contains("1h59m") || l.contains("2h00m"),
            "the line's ttl=2h: {l}"
        );
    }

    let revoke = run_in(wrap, &k.config, &["--revoke", "home"]);
    assert!(revoke.status.success(), "{}", show(&revoke));
    assert!(String::from_utf8_lossy(&revoke.stdout).contains("removed 2 rule(s)"));
    // While the line is there, the next refresh opens the address again, and says so.
    wait_until(5, &k, "203.0.113.9 restored", || {
        k.log().contains(&format!(
            "host label=home name={NAME} restored=203.0.113.9 result=ok"
        ))
    });
    assert_eq!(open(&sim, "203.0.113.9"), 2);

    // The line removed (--remove-client works on host lines): no longer followed, and its
    // rules revoked.
    let removed = run_in(wrap, &k.config, &["--remove-client", "home"]);
    assert!(removed.status.success(), "{}", show(&removed));
    wait_until(5, &k, "the line unfollowed", || {
        k.log()
            .contains("host label=home name=home.example.test result=unfollowed")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(open(&sim, "203.0.113.9"), 0, "{}", k.log());
}

#[test]
fn at_most_four_addresses_of_each_family_per_name() {
    let many: Vec<String> = (1..=6)
        .map(|i| format!("198.51.100.{i} {NAME}"))
        .chain(std::iter::once(format!("2001:db8::5 {NAME}")))
        .collect();
    let lines: Vec<&str> = many.iter().map(String::as_str).collect();
    let Some(ns) = Netns::new("cap", &hosts(&lines)) else {
        return;
    };
    let (sim, k, _) = start(&ns, "hosts-cap", &format!("many host={NAME}\n"), &[]);
    let v4 = || {
        (1..=6)
            .filter(|i| open(&sim, &format!("198.51.100.{i}")) > 0)
            .count()
    };
    wait_until(5, &k, "four IPv4 addresses and the IPv6 one opened", || {
        v4() == 4 && open(&sim, "2001:db8::5") == 2
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(v4(), 4, "{}", k.log());
    let log = k.log();
    assert_eq!(log.matches("over-cap=198.51.100.").count(), 2, "{log}");
    assert!(log.contains("at most 4 IPv4 and 4 IPv6 addresses per name"));
}

/// `--add-host` writes the line (honouring --config) and prints it; bad input is exit 2.
#[test]
fn add_host_writes_the_line_and_refuses_bad_input_with_exit_2() {
    let sim = Sim::single();
    let dir = temp_dir("hosts-add");
    let config = Setup::new("hosts-add").dir(&dir).write_config(&sim);
    let clients = dir.join("knockd.clients");
    let ok = run(&config, &["--add-host", "home", NAME, "--ttl", "2h"]);
    assert_eq!(ok.status.code(), Some(0), "{}", show(&ok));
    let line = format!("home host={NAME} ttl=2h");
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains(&line),
        "{}",
        show(&ok)
    );
    let text = std::fs::read_to_string(&clients).expect("clients file written");
    assert!(text.lines().any(|l| l == line), "{text}");
    assert_mode_600(&clients);

    for (args, says) in [
        (
            &["--add-host", "HOME", "other.example.test"][..],
            "already exists",
        ),
        (&["--add-host", "a.b", NAME][..], "is not a label"),
        (
            &["--add-host", "ip", "203.0.113.7"][..],
            "is not a host name",
        ),
        (
            &["--add-host", "bad", "-x.example"][..],
            "is not a host name",
        ),
        (
            &["--add-host", "bad", "a_b.example"][..],
            "is not a host name",
        ),
        (&["--add-host", "bad"][..], "needs a label and a host name"),
        (
            &["--add-host", "bad", NAME, "--ttl", "1m"][..],
            "shorter than 2m",
        ),
        (
            &["--add-host", "bad", NAME, "--expires", "2030-01-01"][..],
            "--expires only goes",
        ),
    ] {
        let out = run(&config, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            show(&out)
        );
    }
    // A key client cannot take a host line's label either.
    let dup = run(&config, &["--add-client", "Home"]);
    assert_ne!(dup.status.code(), Some(0), "{}", show(&dup));
    assert_eq!(std::fs::read_to_string(&clients).expect("file"), text);

    let listed = run(&config, &["--list-clients"]);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("home ")
            && l.contains("2h")
            && l.contains(&format!("host={NAME}"))),
        "{}",
        show(&listed)
    );
    let checked = run(&config, &["--check-config"]);
    assert_eq!(checked.status.code(), Some(0), "{}", show(&checked));
    assert!(String::from_utf8_lossy(&checked.stdout).contains("HOST_REFRESH"));
}

fn assert_mode_600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A forged answer followed by silence: the address it brought goes once its grace is over,
/// though the name no longer resolves (otherwise it stayed open for the rules' lifetime).
#[test]
fn silence_does_not_hold_an_address_past_its_grace() {
    let Some(ns) = Netns::new("silent", &hosts(&[&format!("203.0.113.7 {NAME}")])) else {
        return;
    };
    let (sim, k, _) = start(&ns, "hosts-silent", &format!("home host={NAME}\n"), &[]);
    let who = format!("host label=home name={NAME}");
    wait_until(5, &k, "203.0.113.7 opened", || {
        open(&sim, "203.0.113.7") == 2
    });
    // Moved, then silent at once: 203.0.113.7 is in its grace when the answers stop.
    ns.write_hosts(&hosts(&[&format!("203.0.113.8 {NAME}")]));
    wait_until(4, &k, "203.0.113.8 opened", || {
        open(&sim, "203.0.113.8") == 2
    });
    ns.write_hosts(&hosts(&[]));
    wait_until(6, &k, "203.0.113.7 closed while the name is silent", || {
        open(&sim, "203.0.113.7") == 0
    });
    assert!(k.log().contains(&format!("{who} error=")), "{}", k.log());
    let failed = at(&k, &format!("{who} error="));
    let removed = at(&k, &format!("{who} removed=203.0.113.7 result=ok"));
    assert!(failed < removed, "{}", k.log());
    // The address the name had last keeps its rules until they expire.
    assert_eq!(open(&sim, "203.0.113.8"), 2);
}

/// A removal the API refuses is tried again at the next passes, and never reported as done.
#[test]
fn a_failed_removal_is_tried_again() {
    let Some(ns) = Netns::new("undeleted", &hosts(&[&format!("203.0.113.7 {NAME}")])) else {
        return;
    };
    let dir = temp_dir("hosts-undeleted");
    std::fs::write(dir.join("knockd.clients"), format!("home host={NAME}\n")).expect("clients");
    let setup = Setup::new("hosts-undeleted")
        .netns(&ns.name)
        .dir(&dir)
        .set("HOST_REFRESH", "1s")
        .sim_args(&[
            "--deny-actions",
            "DeleteFirewallRules",
            "--deny-code",
            "AuthFailure.UnauthorizedOperation",
        ]);
    let (sim, k) = setup.start();
    let who = format!("host label=home name={NAME}");
    wait_until(5, &k, "203.0.113.7 opened", || {
        open(&sim, "203.0.113.7") == 2
    });
    ns.write_hosts(&hosts(&[&format!("203.0.113.8 {NAME}")]));
    let line = format!("{who} removed=203.0.113.7 result=failed");
    wait_until(8, &k, "the refused removal tried three times", || {
        k.log().matches(&line).count() >= 3
    });
    assert!(!k
        .log()
        .contains(&format!("{who} removed=203.0.113.7 result=ok")));
    assert_eq!(open(&sim, "203.0.113.7"), 2, "{}", k.log());
}
