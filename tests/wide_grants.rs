//! Wider grants (issue 27, part 2) end to end: a clients-file line with `v4_prefix=24` /
//! `v6_prefix=64` opens the knocking address's /24 or /64 in lighthouse-sim, as one grant; a
//! prefix wider than /16 (IPv4) or /48 (IPv6) disables its line, named in the log and by
//! `--check-config`. Knocks come from loopback with METHOD 2 and X-Forwarded-For.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::forbid_in_logs;
use common::knockd::*;
use common::sim::Sim;
use common::{Setup, INSTANCE};

const KEY_W: &str = "wideKEYwideKEYwideKEYwideKEYwideKEYwideKE-0";
const KEY_H: &str = "hostKEYhostKEYhostKEYhostKEYhostKEYhostKE-0";

struct Door {
    sim: Sim,
    k: Knockd,
    dir: PathBuf,
}

fn door(clients: &str) -> Door {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("wide");
    let setup = Setup::new("wide")
        .dir(&dir)
        .set("KNOCK_REFERER", "")
        .set("METHOD_TO_GET_CLIENT_IP", "2");
    forbid_in_logs("a client key", KEY_W);
    forbid_in_logs("a client key", KEY_H);
    let path = dir.join("knockd.clients");
    std::fs::write(&path, clients).expect("clients");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (sim, k) = setup.start();
    Door { sim, k, dir }
}

impl Door {
    fn get(&self, query: &str, xff: &str) -> String {
        get_as(&format!("{}?{query}", self.k.url("/favico.ico")), xff)
    }

    /// Both steps of a key knock from `xff`; the step-2 body.
    fn knock(&self, label: &str, key: &str, xff: &str) -> String {
        let c = self.get(&format!("c={label}"), xff);
        self.get(&step2(label, key, &c, None), xff)
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = run(&self.k.config, args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

#[test]
fn a_v4_prefix_24_client_opens_its_24_as_one_grant() {
    let d = door(&format!(
        "wide {KEY_W} v4_prefix=24 v6_prefix=64\nhost {KEY_H}\n"
    ));
    assert_eq!(
        d.knock("wide", KEY_W, "203.0.113.7"),
        SUCCESS,
        "{}",
        d.k.log()
    );
    let block = d.sim.rules_for(INSTANCE, "203.0.113.0/24");
    let ports = block.len();
    assert!(ports >= 1, "{:?}", d.sim.rules(INSTANCE));
    assert!(block.iter().all(|r| r["FirewallRuleDescription"]
        .as_str()
        .is_some_and(|s| s.starts_with("Knockd-wide until "))));
    assert!(d.sim.rules_for(INSTANCE, "203.0.113.7").is_empty());
    let total = d.sim.rules(INSTANCE).len();

    // Another address of the same /24: the same grant, no new rule.
    assert_eq!(d.knock("wide", KEY_W, "203.0.113.200"), SUCCESS);
    assert_eq!(d.sim.rules(INSTANCE).len(), total);

    // IPv6: the /64.
    assert_eq!(d.knock("wide", KEY_W, "2001:db8:1:2::7"), SUCCESS);
    assert_eq!(d.sim.rules_for(INSTANCE, "2001:db8:1:2::/64").len(), ports);
    assert!(d.sim.rules_for(INSTANCE, "2001:db8:1:2::7").is_empty());

    // A client without a prefix still opens its address alone (the default).
    assert_eq!(d.knock("host", KEY_H, "198.51.100.9"), SUCCESS);
    assert_eq!(d.sim.rules_for(INSTANCE, "198.51.100.9").len(), ports);

    // --list-clients shows what each line opens.
    let (code, out, _) = d.run(&["--list-clients"]);
    assert_eq!(code, 0, "{out}");
    let line = |label: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{label} in {out}"))
            .to_string()
    };
    assert!(line("wide").contains(" /24,/64 "), "{out}");
    assert!(line("host").contains(" address "), "{out}");

    // --revoke of the label finds the block's rules.
    let (code, out, err) = d.run(&["--revoke", "wide"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(d.sim.rules_for(INSTANCE, "203.0.113.0/24").is_empty());
    assert!(d.sim.rules_for(INSTANCE, "2001:db8:1:2::/64").is_empty());
    println!(
        "FIGURES wide grants: /24 and /64 opened with {ports} rule(s) each; second address of the /24 added 0 rules"
    );
}

#[test]
fn a_v4_prefix_15_disables_its_line_named_in_the_log_and_the_check() {
    let d = door(&format!(
        "wide {KEY_W} v4_prefix=15\nhost {KEY_H} v6_prefix=47\nok {KEY_H}x\n"
    ));
    assert!(
        d.k.wait_log("clients=1 ignored-lines=2", Duration::from_secs(5)),
        "{}",
        d.k.log()
    );
    let log = d.k.log();
    assert!(
        log.contains(
            "result=line-ignored problem=\"line 1: v4_prefix= must be a prefix length from 16 to 32"
        ),
        "{log}"
    );
    assert!(
        log.contains("problem=\"line 2: v6_prefix= must be a prefix length from 48 to 128"),
        "{log}"
    );
    // The disabled client cannot knock: it does not exist.
    assert_eq!(d.knock("wide", KEY_W, "203.0.113.7"), FAILURE);
    assert!(d.k.wait_log(
        "reject addr=203.0.113.7 reason=unknown",
        Duration::from_secs(5)
    ));
    assert!(d.sim.rules_for(INSTANCE, "203.0.113.0/15").is_empty());
    assert!(d.sim.rules_for(INSTANCE, "203.0.113.7").is_empty());

    let (code, out, err) = d.run(&["--check-config"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("line 1: v4_prefix= must be a prefix length from 16 to 32"),
        "{err}"
    );
    assert!(!err.contains(KEY_W) && !out.contains(KEY_W));
    let _ = &d.dir;
}
