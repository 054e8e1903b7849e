//! Regional hosts (docs/lighthouse-api.md#endpoints-and-transport, #rate-limits): each
//! instance's calls go to its region's host, the one Tencent counts rate limits for, and knockd
//! paces per host. The simulator serves every regional host, told apart by `Host`.
//!
//! knockd resolves the hosts with the system's own resolver. To keep that resolver real and the
//! machine untouched, the per-host tests run the simulator, knockd and curl in a network
//! namespace of their own (`ip netns`, as root) whose `/etc/netns/NAME/hosts` maps
//! `lighthouse.<region>.sim.localhost` to 127.0.0.1: `ip netns exec` shows that file as
//! `/etc/hosts` to the processes it starts. The namespace and its hosts file are removed
//! afterwards, also when a test fails (`Netns`'s Drop).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::knockd::{
    base_config, free_port, run_in, set, temp_dir, write_config, Knockd, REFERER, SUCCESS,
};
use common::netns::Netns;
use common::sim::{rate_limited, Sim};
use common::{show, SECRET_ID, SECRET_KEY};
use serde_json::Value;

const REGIONS: [&str; 3] = ["ap-guangzhou", "ap-shanghai", "ap-hongkong"];

/// The simulator's name for `region`'s host, as the namespace's hosts file maps it.
fn sim_host(region: &str) -> String {
    format!("lighthouse.{region}.sim.localhost")
}

/// A namespace whose hosts file maps each of `names` to 127.0.0.1 (`None`: not root, skip).
fn namespace(names: &[String]) -> Option<Netns> {
    let hosts: String = std::iter::once("127.0.0.1 localhost".to_string())
        .chain(names.iter().map(|n| format!("127.0.0.1 {n}")))
        .map(|l| l + "\n")
        .collect();
    Netns::new("reg", &hosts)
}

/// The simulator in `ns` with these instances (`region:id`) and no console rules.
fn start_sim(ns: &Netns, instances: &[String]) -> Sim {
    let mut args = vec!["--no-default-rules"];
    for i in instances {
        args.extend(["--instance", i.as_str()]);
    }
    Sim::start_in(&ns.wrap(), &args)
}

/// knockd serving in `ns` for `instances`, its API calls to `access_point`; (knockd, its
/// directory, its port).
fn start_knockd(
    ns: &Netns,
    sim: &Sim,
    tag: &str,
    access_point: &str,
    instances: &[String],
) -> (Knockd, PathBuf, u16) {
    let dir = temp_dir(tag);
    let port = free_port();
    let mut config = base_config(sim, &instances.join(","), port);
    set(&mut config, "TENCENT_CLOUD_ACCESS_POINT", access_point);
    let k = Knockd::start_in(&ns.wrap(), &dir, &config);
    (k, dir, port)
}

/// A knock from `client` (X-Forwarded-For, METHOD 2), timed; asserts it succeeded.
fn knock(ns: &Netns, port: u16, client: &str, k: &Knockd) -> Duration {
    let t = Instant::now();
    let (status, body) = ns.curl(&[
        "-H",
        &format!("Referer: {REFERER}"),
        "-H",
        "Location: regional",
        "-H",
        &format!("X-Forwarded-For: {client}"),
        &format!("http://127.0.0.1:{port}/favico.ico"),
    ]);
    let took = t.elapsed();
    assert_eq!((status, body.as_str()), (500, SUCCESS), "{}", k.log());
    took
}

/// `n` instances taking the regions in turn, as `region:lhins-…`.
fn fleet(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}:lhins-regio{i:03}", REGIONS[i % REGIONS.len()]))
        .collect()
}

fn sum(v: &Value) -> u64 {
    v.as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

#[test]
fn a_knock_to_three_regions_sends_each_instances_calls_to_its_own_regional_host() {
    let names: Vec<String> = REGIONS.iter().map(|r| sim_host(r)).collect();
    let Some(ns) = namespace(&names) else {
        return;
    };
    let instances = fleet(6);
    let sim = start_sim(&ns, &instances);
    let sim_port = sim.port;
    let pattern = format!("http://lighthouse.{{region}}.sim.localhost:{sim_port}");
    let (k, dir, port) = start_knockd(&ns, &sim, "regional-hosts", &pattern, &instances);
    let host = |r: &str| format!("{}:{sim_port}", sim_host(r));

    // The listen line names the three hosts.
    let urls: Vec<String> = REGIONS
        .iter()
        .map(|r| format!("http://{}/", host(r)))
        .collect();
    assert!(
        k.log().contains(&format!("endpoint={} ", urls.join(","))),
        "{}",
        k.log()
    );

    knock(&ns, port, "203.0.113.7", &k);
    let state = sim.state();
    let by_host = &state["calls_by_host"];
    let by_instance = &state["calls_by_instance"];
    let mut figures = Vec::new();
    for region in REGIONS {
        let calls = &by_host[host(region)];
        // Each region's two instances: one Describe and one Create each, all at its host.
        assert_eq!(calls["DescribeFirewallRules"], 2, "{region}: {by_host}");
        assert_eq!(calls["CreateFirewallRules"], 2, "{region}: {by_host}");
        let of_region: u64 = instances
            .iter()
            .filter(|i| i.starts_with(region))
            .map(|i| sum(&by_instance[i.split_once(':').map_or("", |(_, id)| id)]))
            .sum();
        assert_eq!(sum(calls), of_region, "{region}: {by_host} {by_instance}");
        figures.push(format!("{}={}", host(region), sum(calls)));
    }
    // Nothing went anywhere else: every call is one of the three hosts'.
    assert_eq!(by_host.as_object().map(|m| m.len()), Some(3), "{by_host}");
    assert_eq!(sum(&state["calls"]), 12, "{state}");
    eprintln!(
        "FIGURES regional knock, calls per host: {}",
        figures.join(" ")
    );

    // `--check` names the hosts, and DescribeRegions goes to TENCENT_CLOUD_REGION's.
    let out = run_in(&ns.wrap(), &dir.join(".env"), &["--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        text.contains(&format!(
            "ok    API host http://{}/ for ap-guangzhou (2 instances); DescribeRegions\n",
            host("ap-guangzhou")
        )),
        "{text}"
    );
    for region in ["ap-shanghai", "ap-hongkong"] {
        assert!(
            text.contains(&format!(
                "ok    API host http://{}/ for {region} (2 instances)\n",
                host(region)
            )),
            "{text}"
        );
    }
    let state = sim.state();
    assert_eq!(
        state["calls_by_host"][host("ap-guangzhou")]["DescribeRegions"],
        1,
        "{}",
        state["calls_by_host"]
    );
    drop(k);
    drop(sim);
}

#[test]
fn thirty_instances_over_three_regional_hosts_get_three_budgets_and_trip_no_host_limit() {
    let names: Vec<String> = REGIONS.iter().map(|r| sim_host(r)).collect();
    let Some(ns) = namespace(&names) else {
        return;
    };
    let instances = fleet(30);
    // The simulator's own limits are on: 10 Creates per second per host.
    let sim = start_sim(&ns, &instances);
    let sim_port = sim.port;
    let pattern = format!("http://lighthouse.{{region}}.sim.localhost:{sim_port}");
    let (k, _dir, port) = start_knockd(&ns, &sim, "regional-fleet", &pattern, &instances);
    let window = Duration::from_millis(1200);
    let first = knock(&ns, port, "203.0.113.1", &k);
    thread::sleep(window);
    let new = knock(&ns, port, "203.0.113.2", &k);
    thread::sleep(window);
    let repeat = knock(&ns, port, "203.0.113.2", &k);
    thread::sleep(window);
    // Two knocks at once: 60 Creates, 20 per host, so paced over two windows per host.
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(|| knock(&ns, port, "203.0.113.3", &k));
        let b = s.spawn(|| knock(&ns, port, "203.0.113.4", &k));
        (
            a.join().expect("knock thread"),
            b.join().expect("knock thread"),
        )
    });
    let state = sim.state();
    assert_eq!(rate_limited(&state), 0, "{}", state["errors"]);
    assert!(!k.log().contains("RequestLimitExceeded"), "{}", k.log());
    for region in REGIONS {
        let calls = &state["calls_by_host"][format!("{}:{sim_port}", sim_host(region))];
        // Ten instances per host: 10 Creates at each host for the first knock and 10 for the
        // new address, none for the repeat (its rules are there: a Describe confirms them),
        // and 10 or 20 for the two at once (a writer may batch them into one Create).
        let creates = calls["CreateFirewallRules"].as_u64().unwrap_or(0);
        assert!((30..=40).contains(&creates), "{region}: {calls}");
    }
    // Three budgets: ten Creates per host go at once. One budget for all thirty would take
    // three windows (2.2 s and more; tests/fleet.rs).
    assert!(new < Duration::from_millis(2000), "{new:?}");
    eprintln!(
        "FIGURES fleet 30x3 regional hosts: first {first:?}, new {new:?}, repeat {repeat:?}, two at once {a:?} {b:?}"
    );
    drop(k);
    drop(sim);
}

#[test]
fn thirty_instances_through_one_named_host_share_its_one_budget() {
    // TENCENT_CLOUD_ACCESS_POINT naming one host (as the international site's does): every
    // call enters one access region, so one budget, which knockd keeps to.
    let Some(ns) = namespace(&["api.sim.localhost".to_string()]) else {
        return;
    };
    let instances = fleet(30);
    let sim = start_sim(&ns, &instances);
    let sim_port = sim.port;
    let access_point = format!("http://api.sim.localhost:{sim_port}");
    let (k, _dir, port) = start_knockd(&ns, &sim, "regional-one-host", &access_point, &instances);
    assert!(
        k.log().contains(&format!("endpoint={access_point}/ ")),
        "{}",
        k.log()
    );
    let first = knock(&ns, port, "203.0.113.1", &k);
    let new = knock(&ns, port, "203.0.113.2", &k);
    let state = sim.state();
    assert_eq!(rate_limited(&state), 0, "{}", state["errors"]);
    let host = format!("api.sim.localhost:{sim_port}");
    assert_eq!(
        state["calls_by_host"][&host]["CreateFirewallRules"], 60,
        "{}",
        state["calls_by_host"]
    );
    // 30 Creates at 10 per 1.1 s: three windows, two full waits.
    assert!(new >= Duration::from_millis(2100), "{new:?}");
    eprintln!("FIGURES fleet 30x3 regions, one named host: first {first:?}, new {new:?}");
    drop(k);
    drop(sim);
}

// Credentials: knockd's own variables, then the SDKs' environment names, then their profile
// file (docs/lighthouse-api.md#credentials). Fake values, each checked absent from the output.

const ENV_ID: &str = "AKIDenvironmentENVenvENVenv0003";
const ENV_KEY: &str = "environmentSecretKey0003XYZ";
const FILE_ID: &str = "AKIDprofilePROFILEprofile0004";
const FILE_KEY: &str = "profileSecretKey0004XYZ";

/// `knockd --check-config` with a config file holding `config` and exactly `env` (plus PATH).
fn check_config(config: &[(&str, &str)], env: &[(&str, &str)]) -> (Output, String) {
    let dir = temp_dir("credentials");
    let mut all = vec![
        ("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", "lhins-kn0ck001"),
        ("KNOCK_REFERER", REFERER),
        ("FW_PERMIT_PORTS_TCP", "22"),
    ];
    all.extend_from_slice(config);
    let pairs: Vec<(String, String)> = all
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let path = write_config(&dir, &pairs);
    let out = Command::new(env!("CARGO_BIN_EXE_knockd"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .stdin(Stdio::null())
        .output()
        .expect("run knockd --check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in [
        SECRET_KEY,
        ENV_KEY,
        FILE_KEY,
        "tokenFromTerraform",
        "tokenFromTccli",
    ] {
        assert!(!text.contains(secret), "a secret in the output:\n{text}");
    }
    (out, text)
}

/// A profile file in the SDKs' INI form, mode 600.
fn profile(dir: &Path, text: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("credentials");
    std::fs::write(&path, text).expect("write profile");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn credentials_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.starts_with("# credentials: "))
        .unwrap_or_else(|| panic!("no credentials line:\n{text}"))
}

#[test]
fn knockds_own_variables_win_over_the_sdks_environment_and_profile() {
    let dir = temp_dir("profile-ignored");
    let file = profile(
        &dir,
        &format!("[default]\nsecret_id={FILE_ID}\nsecret_key={FILE_KEY}\n"),
    );
    let (out, text) = check_config(
        &[
            ("TENCENT_CLOUD_SECRET_ID", SECRET_ID),
            ("TENCENT_CLOUD_SECRET_KEY", SECRET_KEY),
        ],
        &[
            ("TENCENTCLOUD_SECRET_ID", ENV_ID),
            ("TENCENTCLOUD_SECRET_KEY", ENV_KEY),
            (
                "TENCENTCLOUD_CREDENTIALS_FILE",
                file.to_str().expect("utf-8"),
            ),
        ],
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(
        credentials_line(&text),
        "# credentials: SecretId from TENCENT_CLOUD_SECRET_ID (config file); SecretKey from \
         TENCENT_CLOUD_SECRET_KEY (config file); token not set"
    );
    assert!(
        text.contains("TENCENT_CLOUD_SECRET_ID = AKID****001\n"),
        "{text}"
    );
}

#[test]
fn the_sdks_environment_names_are_read_with_terraforms_token_before_tcclis() {
    let env = [
        ("TENCENTCLOUD_SECRET_ID", ENV_ID),
        ("TENCENTCLOUD_SECRET_KEY", ENV_KEY),
        ("TENCENTCLOUD_TOKEN", "tokenFromTccli"),
    ];
    let (out, text) = check_config(&[], &env);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        credentials_line(&text),
        "# credentials: SecretId from TENCENTCLOUD_SECRET_ID (environment); SecretKey from \
         TENCENTCLOUD_SECRET_KEY (environment); token from TENCENTCLOUD_TOKEN (environment)"
    );
    assert!(
        text.contains("TENCENT_CLOUD_SECRET_ID = AKID****003\n"),
        "{text}"
    );
    assert!(
        text.contains("TENCENT_CLOUD_TOKEN = **** (set)\n"),
        "{text}"
    );
    let mut both = env.to_vec();
    both.push(("TENCENTCLOUD_SECURITY_TOKEN", "tokenFromTerraform"));
    let (out, text) = check_config(&[], &both);
    assert!(out.status.success(), "{text}");
    assert!(
        credentials_line(&text).ends_with("token from TENCENTCLOUD_SECURITY_TOKEN (environment)"),
        "{text}"
    );
}

#[test]
fn the_profile_file_is_read_from_the_variable_or_home() {
    let dir = temp_dir("profile");
    let text = format!(
        "# written by tccli configure\n[other]\nsecret_id=AKIDotherOTHERother\n[default]\n\
         secret_id = {FILE_ID}\nsecret_key = {FILE_KEY}\n"
    );
    let file = profile(&dir, &text);
    let (out, report) = check_config(
        &[],
        &[(
            "TENCENTCLOUD_CREDENTIALS_FILE",
            file.to_str().expect("utf-8"),
        )],
    );
    assert!(out.status.success(), "{report}");
    let shown = file.display();
    assert_eq!(
        credentials_line(&report),
        format!(
            "# credentials: SecretId from secret_id in {shown} [default]; SecretKey from \
             secret_key in {shown} [default]; token not set"
        )
    );
    assert!(
        report.contains("TENCENT_CLOUD_SECRET_ID = AKID****004\n"),
        "{report}"
    );

    // ~/.tencentcloud/credentials, with HOME.
    let home = temp_dir("home");
    std::fs::create_dir_all(home.join(".tencentcloud")).expect("mkdir");
    profile(
        &home.join(".tencentcloud"),
        &format!("[default]\nsecret_id={FILE_ID}\nsecret_key={FILE_KEY}\ntoken=tokenFromTccli\n"),
    );
    let (out, report) = check_config(&[], &[("HOME", home.to_str().expect("utf-8"))]);
    assert!(out.status.success(), "{report}");
    assert!(
        credentials_line(&report).contains(&format!(
            "secret_id in {}/.tencentcloud/credentials [default]",
            home.display()
        )),
        "{report}"
    );
    assert!(
        credentials_line(&report).contains("token from token in"),
        "{report}"
    );

    // A file named by the variable must be there.
    let (out, report) = check_config(
        &[],
        &[("TENCENTCLOUD_CREDENTIALS_FILE", "/nonexistent/credentials")],
    );
    assert_eq!(out.status.code(), Some(2), "{report}");
    assert!(
        report.contains(
            "/nonexistent/credentials: the Tencent Cloud credentials file cannot be read"
        ),
        "{report}"
    );
}

#[test]
fn a_key_pair_split_over_two_sources_is_refused_naming_both() {
    let (out, text) = check_config(
        &[("TENCENT_CLOUD_SECRET_ID", SECRET_ID)],
        &[("TENCENTCLOUD_SECRET_KEY", ENV_KEY)],
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "TENCENT_CLOUD_SECRET_ID: TENCENT_CLOUD_SECRET_ID (config file) is set but its other \
             half is not, while TENCENTCLOUD_SECRET_KEY (environment) is"
        ),
        "{text}"
    );
    // The environment's SecretId with the profile's SecretKey.
    let dir = temp_dir("split");
    let file = profile(&dir, &format!("[default]\nsecret_key={FILE_KEY}\n"));
    let (out, text) = check_config(
        &[],
        &[
            ("TENCENTCLOUD_SECRET_ID", ENV_ID),
            (
                "TENCENTCLOUD_CREDENTIALS_FILE",
                file.to_str().expect("utf-8"),
            ),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("TENCENTCLOUD_SECRET_ID (environment) is set"),
        "{text}"
    );
    assert!(
        text.contains(&format!("secret_key in {} [default] is", file.display())),
        "{text}"
    );
    // knockd's token with the SDKs' pair: a token belongs to its own pair.
    let (out, text) = check_config(
        &[("TENCENT_CLOUD_TOKEN", "tokenFromTccli")],
        &[
            ("TENCENTCLOUD_SECRET_ID", ENV_ID),
            ("TENCENTCLOUD_SECRET_KEY", ENV_KEY),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("TENCENT_CLOUD_TOKEN: TENCENT_CLOUD_TOKEN (config file) is set but the key pair comes from TENCENTCLOUD_SECRET_ID (environment)"),
        "{text}"
    );
}
