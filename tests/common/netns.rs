//! A network namespace of a test's own (`ip netns`, root only) with loopback up and a hosts
//! file of its own: `ip netns exec NAME` bind-mounts `/etc/netns/NAME/hosts` over `/etc/hosts`
//! for what it starts, so knockd's real resolver reads the test's names. The namespace and its
//! directory are removed on drop, also when the test fails.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace whose hosts file is `hosts`; `None` (saying why on stderr) when this
    /// process may not make one (not root), so that the test can skip.
    pub fn new(tag: &str, hosts: &str) -> Option<Netns> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("skipped: network namespaces (ip netns) need root");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let ns = Netns {
            name: format!(
                "knockd-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        };
        std::fs::create_dir_all(ns.etc()).expect("create /etc/netns/NAME");
        ns.write_hosts(hosts);
        ns.ip(&["netns", "add", &ns.name]);
        ns.ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    pub fn etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.name)
    }

    /// Rewrites the namespace's hosts file in place. In place, not by a rename: the bind mount
    /// of a running process keeps the inode it was made with.
    pub fn write_hosts(&self, hosts: &str) {
        std::fs::write(self.etc().join("hosts"), hosts).expect("write the namespace's hosts");
    }

    /// The command prefix that runs a program inside (`Setup::netns`, `run_in`).
    pub fn wrap(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// curl inside the namespace with a 20 s cap; (HTTP status, body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        super::knockd::curl_in(&self.wrap(), args)
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {}", super::show(&out));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Whatever a failed test left running in the namespace (only this test's processes).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(self.etc());
    }
}
