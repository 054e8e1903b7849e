//! Many instances, several regions, all through the simulator's one host. knockd paces each
//! (action, host) at the documented rate (docs/lighthouse-api.md#rate-limits): through one host,
//! which is one access region, a fleet over three regions shares one budget and never passes
//! it. The same fleet through regional hosts, three budgets: tests/regional.rs.

mod common;

use std::time::{Duration, Instant};

use common::knockd::*;
use common::sim::{rate_limited, Sim};
use common::Setup;
use serde_json::Value;

/// `n` instances without default rules, taking `regions` in turn, and their ids.
fn fleet(n: usize, regions: &[&str]) -> (Setup, Vec<String>) {
    let mut instances = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let region = regions[i % regions.len()];
        let id = format!("lhins-fleet{i:03}");
        instances.push(format!("{region}:{id}"));
        ids.push(id);
    }
    let refs: Vec<&str> = instances.iter().map(String::as_str).collect();
    let setup = Setup::new("fleet")
        .instances(&refs, &instances.join(","))
        .sim_args(&["--no-default-rules"]);
    (setup, ids)
}

/// Every instance has exactly TCP + UDP for `addr`.
fn assert_everywhere(sim: &Sim, ids: &[String], addr: &str) {
    let state = sim.state();
    for inst in state["instances"].as_array().expect("instances") {
        let id = inst["InstanceId"].as_str().expect("id");
        assert!(ids.iter().any(|i| i == id));
        let n = inst["Rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r: &&Value| r["CidrBlock"] == addr)
            .count();
        assert_eq!(n, 2, "{id}: {addr}");
    }
}

/// The pacer's window (docs/lighthouse-api.md#rate-limits: 1 s, plus 10% for jitter).
const WINDOW: Duration = Duration::from_millis(1200);

fn timed_knock(k: &Knockd, addr: &str) -> Duration {
    let t = Instant::now();
    assert_eq!(knock_curl(k, addr, "fleet"), SUCCESS, "{}", k.log());
    t.elapsed()
}

#[test]
fn twenty_five_instances_in_one_region_never_trip_the_simulators_rate_limit() {
    // One region: the simulator's per-key limit is the per-region limit here.
    let (fleet, ids) = fleet(25, &["ap-guangzhou"]);
    let (sim, k) = fleet.start();
    let first = timed_knock(&k, "203.0.113.1");
    let new = timed_knock(&k, "203.0.113.2");
    let repeat = timed_knock(&k, "203.0.113.2");
    for addr in ["203.0.113.1", "203.0.113.2"] {
        assert_everywhere(&sim, &ids, addr);
    }
    assert_eq!(rate_limited(&sim.state()), 0, "{}", sim.state()["errors"]);
    assert!(!k.log().contains("RequestLimitExceeded"), "{}", k.log());
    // 25 Creates at 10 per 1.1 s: three windows, so at least two full waits.
    assert!(new >= Duration::from_millis(2100), "{new:?}");
    eprintln!("FIGURES fleet 25x1 region: first {first:?}, new {new:?}, repeat {repeat:?}");
}

#[test]
fn thirty_instances_over_three_regions_through_one_host_share_one_budget() {
    // The simulator's own limit is turned off, so this measures knockd's pacing alone.
    let regions = ["ap-guangzhou", "ap-shanghai", "ap-hongkong"];
    let (fleet, ids) = fleet(30, &regions);
    let (sim, k) = fleet.sim_args(&["--no-rate-limit"]).start();
    // Knocks a window apart, so each starts with every region's budget free.
    let first = timed_knock(&k, "203.0.113.1");
    std::thread::sleep(WINDOW);
    let new = timed_knock(&k, "203.0.113.2");
    std::thread::sleep(WINDOW);
    let repeat = timed_knock(&k, "203.0.113.2");
    for addr in ["203.0.113.1", "203.0.113.2"] {
        assert_everywhere(&sim, &ids, addr);
    }
    // One host is one access region: 30 Creates at 10 per 1.1 s take three windows, so at
    // least two full waits, whatever their X-TC-Region.
    assert!(new >= Duration::from_millis(2100), "{new:?}");
    assert!(repeat >= Duration::from_millis(2100), "{repeat:?}");
    eprintln!(
        "FIGURES fleet 30x3 regions, one host: first {first:?}, new {new:?}, repeat {repeat:?}"
    );
}

#[test]
fn thirty_instances_over_three_regions_through_one_host_never_trip_its_rate_limits() {
    let regions = ["ap-guangzhou", "ap-shanghai", "ap-hongkong"];
    let (fleet, ids) = fleet(30, &regions);
    let (sim, k) = fleet.start();
    for addr in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        timed_knock(&k, addr);
        assert_everywhere(&sim, &ids, addr);
    }
    timed_knock(&k, "203.0.113.2");
    assert_eq!(rate_limited(&sim.state()), 0, "{}", sim.state()["errors"]);
    assert!(!k.log().contains("RequestLimitExceeded"), "{}", k.log());
}
