//! The one builder for what most integration tests start: a lighthouse-sim with its instances
//! and flags, and a real knockd configured against it (`base_config` plus the test's settings)
//! on a free loopback port, in a fresh directory. For example
//! `let (sim, k) = Setup::new("name").set("LOCKOUT_FAILURES", "0").start();`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::knockd::{base_config, free_port, set, temp_dir, write_config, Knockd};
use super::sim::Sim;
use super::{INSTANCE, INSTANCE_ARG};

/// What to start; nothing runs until `sim`, `knockd` or `start`.
#[derive(Clone)]
pub struct Setup {
    name: String,
    /// `--instance REGION:ID` values of the simulator.
    sim_instances: Vec<String>,
    /// Further simulator flags.
    sim_args: Vec<String>,
    /// Rules seeded into `INSTANCE` (`Sim::with_rules`); only with the default instance.
    rules: Option<Value>,
    /// TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS.
    instances: String,
    /// Settings over `base_config`, in order.
    settings: Vec<(String, String)>,
    dir: Option<PathBuf>,
    /// The command both run under (`ip netns exec NAME`), empty for none.
    wrap: Vec<String>,
}

impl Setup {
    /// The simulator with `INSTANCE` (in `REGION`, console default rules) and knockd for it;
    /// `name` names the temp directory.
    pub fn new(name: &str) -> Setup {
        Setup {
            name: name.to_string(),
            sim_instances: vec![INSTANCE_ARG.to_string()],
            sim_args: Vec::new(),
            rules: None,
            instances: INSTANCE.to_string(),
            settings: Vec::new(),
            dir: None,
            wrap: Vec::new(),
        }
    }

    /// The name given to `new`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The simulator's instances (`REGION:ID` each) instead of `INSTANCE` alone, and knockd's
    /// TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS (`ids`).
    pub fn instances(mut self, sim_instances: &[&str], ids: &str) -> Setup {
        self.sim_instances = sim_instances.iter().map(|s| s.to_string()).collect();
        self.instances = ids.to_string();
        self
    }

    /// More simulator flags (after the `--instance` flags).
    pub fn sim_args(mut self, args: &[&str]) -> Setup {
        self.sim_args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// `INSTANCE` starts with these rules (a JSON array of FirewallRule objects) instead of the
    /// console defaults.
    pub fn rules(mut self, rules: Value) -> Setup {
        assert_eq!(
            self.sim_instances,
            [INSTANCE_ARG],
            "seeded rules are for INSTANCE alone"
        );
        self.rules = Some(rules);
        self
    }

    /// One knockd setting over `base_config` (a later one wins).
    pub fn set(mut self, key: &str, value: &str) -> Setup {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// Several settings, as `set` each.
    pub fn with(mut self, settings: &[(&str, &str)]) -> Setup {
        for (k, v) in settings {
            self = self.set(k, v);
        }
        self
    }

    /// knockd's directory (its .env goes there) instead of a fresh `temp_dir(name)`.
    pub fn dir(mut self, dir: &Path) -> Setup {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// The simulator and knockd run inside the network namespace `name` (`ip netns exec`,
    /// which also shows them `/etc/netns/NAME/hosts` as `/etc/hosts`); see `netns::Netns`.
    pub fn netns(mut self, name: &str) -> Setup {
        self.wrap = ["ip", "netns", "exec", name]
            .iter()
            .map(|s| s.to_string())
            .collect();
        self
    }

    /// The command knockd and the simulator run under (empty: none).
    pub fn wrap(&self) -> &[String] {
        &self.wrap
    }

    /// Starts the simulator.
    pub fn sim(&self) -> Sim {
        let mut args: Vec<&str> = Vec::new();
        if let Some(rules) = &self.rules {
            args.extend(self.sim_args.iter().map(String::as_str));
            assert!(
                self.wrap.is_empty(),
                "seeded rules outside a namespace only"
            );
            return Sim::with_rules(rules, &args);
        }
        for inst in &self.sim_instances {
            args.push("--instance");
            args.push(inst);
        }
        args.extend(self.sim_args.iter().map(String::as_str));
        Sim::start_in(&self.wrap, &args)
    }

    /// knockd's configuration against `sim`, on a free loopback port.
    pub fn config(&self, sim: &Sim) -> Vec<(String, String)> {
        let mut cfg = base_config(sim, &self.instances, free_port());
        for (k, v) in &self.settings {
            set(&mut cfg, k, v);
        }
        cfg
    }

    fn dir_or_temp(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| temp_dir(&self.name))
    }

    /// Writes the configuration against `sim` to `.env` in knockd's directory; its path.
    pub fn write_config(&self, sim: &Sim) -> PathBuf {
        write_config(&self.dir_or_temp(), &self.config(sim))
    }

    /// Starts knockd (serve) against a running `sim`.
    pub fn knockd(&self, sim: &Sim) -> Knockd {
        Knockd::start_in(&self.wrap, &self.dir_or_temp(), &self.config(sim))
    }

    /// Starts both.
    pub fn start(&self) -> (Sim, Knockd) {
        let sim = self.sim();
        let k = self.knockd(&sim);
        (sim, k)
    }
}
