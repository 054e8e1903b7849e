//! The configuration as an operator meets it: the real binary, a real file, a clean environment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The example `.env` of the Python original's README, verbatim (full-width comma, `KEY ='v'`,
/// trailing comma and all): it must keep working unchanged.
const SEED_ENV: &str = r#"# 敲门成功的返回信息
MESSAGE_SUCCESS='500 Internal Server Error.'
# 敲门失败的返回信息
MESSAGE_FAILURE='500 Internal Server Error'

# 防火墙要开通的端口，逗号分隔
# FW_PERMIT_PORTS='22,80,443'
# FW_PERMIT_PORTS='22,'
FW_PERMIT_PORTS_TCP='80，443,3389'
# FW_PERMIT_PORTS_UDP='514,'
FW_PERMIT_PORTS_UDP=''
# 防火墙规则前缀
FW_RULE_NAME_PREFIX='Knockd-'

# 轻量级主机的示例ID，逗号分割
TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS ='lhins-a0ogy7ty,'

# 客户端敲门时HTTP头部自定义的Referer，相当于密钥
KNOCK_REFERER = 'https://www.baidu..com/'

# 敲门请求的URL路径
KNOCK_REQUEST_PATH='/favico.ico'

# 腾讯云API Secret Id和Secret Key
TENCENT_CLOUD_SECRET_ID='AKID*************oSs'
TENCENT_CLOUD_SECRET_KEY='rZ3J*************aP'

# 获取客户端IP地址的方法，默认：1
# 1)实际连接服务器的的IP
# 2)代理服务器给的“真实”IP
# 3)客户端自己声明的IP（不安全）
METHOD_TO_GET_CLIENT_IP="1"

# 防火墙规则有效期
DAYS_RULE_EXPIRES="30"

# 服务监听端口，默认：8080
BIND_PORT="8080"
# 服务绑定IP地址，默认：0.0.0.0
BIND_IP="0.0.0.0"
"#;

const SEED_SECRET_KEY: &str = "rZ3J*************aP";

/// A private scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "knockd-config-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write file");
        set_mode(&p, 0o600);
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

fn knockd_at(exe: &Path, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(cwd)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A binary copied by a concurrent test may still be open for writing in a child that forked
    // meanwhile (ETXTBSY until that child execs); that clears within moments.
    let mut tries = 0;
    let out = loop {
        match cmd.output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.expect("run knockd"),
        }
    };
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn knockd(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    knockd_at(Path::new(env!("CARGO_BIN_EXE_knockd")), cwd, args, env)
}

/// `--check-config --config FILE` on `text`.
fn check(text: &str, env: &[(&str, &str)]) -> Out {
    let dir = TempDir::new();
    let file = dir.write("knockd.env", text);
    let file = file.to_str().expect("utf-8 path").to_string();
    knockd(dir.path(), &["--check-config", "--config", &file], env)
}

/// A valid configuration in the seed's style; variants append lines (later keys win).
const VALID: &str = "\
FW_PERMIT_PORTS_TCP='22,443'
TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS='lhins-a0ogy7ty'
TENCENT_CLOUD_SECRET_ID='AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE'
TENCENT_CLOUD_SECRET_KEY='Gu5t9xGARNpq86cd98joQYCN3EXAMPLE'
KNOCK_REFERER='https://example.com/a-long-shared-secret'
";

#[test]
fn seed_example_env_works_unchanged() {
    // Its KNOCK_REFERER is public (the original's README): refused, and the only problem.
    let out = check(SEED_ENV, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(error_lines(&out), ["KNOCK_REFERER"], "{}", out.all());
    assert!(out.stderr.contains("public on GitHub"), "{}", out.stderr);
    // Everything else is read as it always was.
    let out = check(
        SEED_ENV,
        &[("KNOCK_REFERER", "a-private-long-knock-secret")],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("FW_PERMIT_PORTS_TCP = 80,443,3389\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("FW_PERMIT_PORTS_UDP = (off)\n"));
    assert!(
        out.stdout
            .contains("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS = ap-shanghai:lhins-a0ogy7ty\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("TENCENT_CLOUD_REGION = ap-shanghai\n"));
    assert!(out
        .stdout
        .contains("TENCENT_CLOUD_SECRET_ID = AKID****oSs\n"));
    assert!(out.stdout.contains("RULE_TTL = 30d\n"));
    assert!(!out.all().contains(SEED_SECRET_KEY), "{}", out.all());
    assert!(!out.all().contains("www.baidu..com"), "{}", out.all());
}

#[test]
fn valid_base_has_no_warnings() {
    let out = check(VALID, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    // The one warning of a valid base: its Referer knock is replayable (issue 12).
    let all = out.all();
    let warnings: Vec<&str> = all.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{}", out.all());
    assert!(
        warnings[0].starts_with(
            "warning: KNOCK_REFERER is set, so the Referer knock is on: it is replayable"
        ),
        "{}",
        out.all()
    );
}

#[test]
fn malformed_configurations_exit_2_naming_the_variable() {
    let cases: &[(&str, &str)] = &[
        ("FW_PERMIT_PORTS_TCP='70000'", "FW_PERMIT_PORTS_TCP"),
        ("FW_PERMIT_PORTS_TCP='22,ssh'", "FW_PERMIT_PORTS_TCP"),
        ("FW_PERMIT_PORTS_UDP='9000-8000'", "FW_PERMIT_PORTS_UDP"),
        ("TENCENT_CLOUD_SECRET_KEY=''", "TENCENT_CLOUD_SECRET_KEY"),
        (
            "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS='lhins-xyz'",
            "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
        ),
        ("TENCENT_CLOUD_REGION='Shanghai'", "TENCENT_CLOUD_REGION"),
        ("RULE_TTL='-5d'", "RULE_TTL"),
        ("RULE_TTL='12'", "RULE_TTL"),
        (
            "TRUSTED_PROXIES='127.0.0.0/8,10.0.0.0/33'",
            "TRUSTED_PROXIES",
        ),
        ("BIND_PORT='0'", "BIND_PORT"),
        ("BIND_IP='not-an-address'", "BIND_IP"),
        ("METHOD_TO_GET_CLIENT_IP='4'", "METHOD_TO_GET_CLIENT_IP"),
        (
            "TENCENT_CLOUD_ACCESS_POINT='http://lighthouse.tencentcloudapi.com'",
            "TENCENT_CLOUD_ACCESS_POINT",
        ),
        (
            "FW_PERMIT_PORTS_TCP=''\nFW_PERMIT_PORTS_UDP=''",
            "FW_PERMIT_PORTS_TCP",
        ),
        ("KNOCK_REQUEST_PATH='favico.ico'", "KNOCK_REQUEST_PATH"),
        ("DAYS_RULE_EXPIRES='thirty'", "DAYS_RULE_EXPIRES"),
        ("QUOTA_RESERVE='100'", "QUOTA_RESERVE"),
        ("MAX_CONNECTIONS='0'", "MAX_CONNECTIONS"),
        (
            "FW_RULE_NAME_PREFIX='Knockd-far-too-long-prefix-'",
            "FW_RULE_NAME_PREFIX",
        ),
        (
            "TENCENT_CLOUD_CA_FILE='/nonexistent/ca.pem'",
            "TENCENT_CLOUD_CA_FILE",
        ),
        ("KNOCK_REFERER=''", "KNOCK_REFERER"),
        ("LOCKOUT_WINDOW='0'", "LOCKOUT_WINDOW"),
        ("CONNECTION_TIMEOUT='soon'", "CONNECTION_TIMEOUT"),
        ("PRUNE_INTERVAL='-1h'", "PRUNE_INTERVAL"),
    ];
    assert!(cases.len() >= 15);
    for (extra, var) in cases {
        let out = check(&format!("{VALID}{extra}\n"), &[]);
        assert_eq!(out.code, 2, "{extra}: {}", out.all());
        assert!(
            out.stderr.starts_with("knockd: configuration error\n"),
            "{extra}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("{var}: ")),
            "{extra}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "{extra}: {}", out.stdout);
    }
}

#[test]
fn unreadable_config_file_is_named() {
    let dir = TempDir::new();
    let missing = dir.path().join("missing.env");
    let missing = missing.to_str().expect("utf-8");
    let out = knockd(dir.path(), &["--check-config", "--config", missing], &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains(&format!("{missing}: ")),
        "{}",
        out.stderr
    );

    let out = knockd(
        dir.path(),
        &[
            "--check-config",
            "--config",
            dir.path().to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(out.code, 2, "a directory: {}", out.all());

    let out = knockd(
        dir.path(),
        &["--check-config"],
        &[("KNOCKD_CONFIG", missing)],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains(missing), "{}", out.stderr);
}

#[test]
fn syntax_errors_name_file_and_line_not_value() {
    let text = format!("{VALID}TENCENT_CLOUD_SECRET_KEY='S3cretWithNoEnd\n");
    let out = check(&text, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("knockd.env: line 6: "),
        "{}",
        out.stderr
    );
    assert!(!out.all().contains("S3cretWithNoEnd"), "{}", out.all());
}

#[test]
fn several_problems_are_all_named() {
    let text = "\
FW_PERMIT_PORTS_TCP='80,70000'
TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS='lhins-BAD'
TENCENT_CLOUD_REGION='Shanghai'
BIND_PORT='99999'
METHOD_TO_GET_CLIENT_IP='9'
RULE_TTL='7'
";
    let out = check(text, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    for var in [
        "FW_PERMIT_PORTS_TCP",
        "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
        "TENCENT_CLOUD_REGION",
        "BIND_PORT",
        "METHOD_TO_GET_CLIENT_IP",
        "RULE_TTL",
        "TENCENT_CLOUD_SECRET_ID",
        "TENCENT_CLOUD_SECRET_KEY",
        "KNOCK_REFERER",
    ] {
        assert!(
            out.stderr.contains(&format!("{var}: ")),
            "{var} missing:\n{}",
            out.stderr
        );
    }
}

#[test]
fn secret_values_never_appear_in_errors() {
    let key = "Zq8SecretKeyValue";
    let token = "Tk9SecretTokenValue";
    let referer = "Rf7SecretRefererValue";
    let text = format!(
        "{VALID}TENCENT_CLOUD_SECRET_KEY='{key} x'\nTENCENT_CLOUD_TOKEN='{token} y'\nBIND_PORT=0\n"
    );
    let out = check(&text, &[("KNOCK_REFERER", &format!("{referer}\u{1}"))]);
    assert_eq!(out.code, 2, "{}", out.all());
    for var in [
        "TENCENT_CLOUD_SECRET_KEY",
        "TENCENT_CLOUD_TOKEN",
        "KNOCK_REFERER",
    ] {
        assert!(out.stderr.contains(&format!("{var}: ")), "{}", out.stderr);
    }
    for s in [key, token, referer] {
        assert!(!out.all().contains(s), "{s} leaked:\n{}", out.all());
    }
}

#[test]
fn environment_overrides_the_file() {
    let out = check(
        &format!("{VALID}BIND_PORT=8080\nFW_PERMIT_PORTS_UDP=514\n"),
        &[("BIND_PORT", "9999"), ("FW_PERMIT_PORTS_UDP", "")],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("BIND_PORT = 9999\n"), "{}", out.stdout);
    assert!(
        out.stdout.contains("FW_PERMIT_PORTS_UDP = (off)\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn dollar_signs_survive_single_quotes_and_expand_elsewhere() {
    let text = format!(
        "{VALID}TENCENT_CLOUD_SECRET_KEY='ab$cd${{HOME}}ef'\nMESSAGE_SUCCESS='a$b${{HOME}}'\nMESSAGE_FAILURE=\"x${{HOME}}y\"\nFW_RULE_NAME_PREFIX=K$-${{NOPE:-d}}-\n"
    );
    let out = check(&text, &[("HOME", "/h")]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("TENCENT_CLOUD_SECRET_KEY = **** (set)\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("MESSAGE_SUCCESS = \"a$b${HOME}\"\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("MESSAGE_FAILURE = \"x/hy\"\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("FW_RULE_NAME_PREFIX = K$-d-\n"),
        "{}",
        out.stdout
    );
}

fn port_of(out: &Out) -> &str {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("BIND_PORT = "))
        .unwrap_or("none")
}

#[test]
fn discovery_order() {
    let dir = TempDir::new();
    dir.write(".env", &format!("{VALID}BIND_PORT=1111\n"));
    let named = dir.write("named.env", &format!("{VALID}BIND_PORT=2222\n"));
    let explicit = dir.write("explicit.env", &format!("{VALID}BIND_PORT=3333\n"));
    let (named, explicit) = (
        named.to_str().expect("utf-8"),
        explicit.to_str().expect("utf-8"),
    );

    let out = knockd(dir.path(), &["--check-config"], &[]);
    assert_eq!(port_of(&out), "1111", "./.env: {}", out.all());
    let out = knockd(dir.path(), &["--check-config"], &[("KNOCKD_CONFIG", named)]);
    assert_eq!(port_of(&out), "2222", "KNOCKD_CONFIG: {}", out.all());
    let out = knockd(
        dir.path(),
        &["--check-config", "--config", explicit],
        &[("KNOCKD_CONFIG", named)],
    );
    assert_eq!(port_of(&out), "3333", "--config: {}", out.all());

    // Beside the executable, when there is no ./.env.
    let bin = dir.path().join("bin");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&bin).expect("mkdir");
    std::fs::create_dir_all(&work).expect("mkdir");
    let exe = bin.join("knockd");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_knockd"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_knockd"), &exe).expect("copy binary");
    }
    std::fs::write(bin.join(".env"), format!("{VALID}BIND_PORT=4444\n")).expect("write");
    let out = knockd_at(&exe, &work, &["--check-config"], &[]);
    assert_eq!(port_of(&out), "4444", "beside the binary: {}", out.all());
    let out = knockd_at(&exe, dir.path(), &["--check-config"], &[]);
    assert_eq!(port_of(&out), "1111", "./.env first: {}", out.all());
}

#[test]
fn environment_only_without_any_file() {
    let dir = TempDir::new();
    let env = [
        ("FW_PERMIT_PORTS_TCP", "22"),
        (
            "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS",
            "ap-guangzhou:lhins-a0ogy7ty",
        ),
        (
            "TENCENT_CLOUD_SECRET_ID",
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        ),
        (
            "TENCENT_CLOUD_SECRET_KEY",
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        ),
        ("KNOCK_REFERER", "https://example.com/a-long-shared-secret"),
    ];
    let out = knockd(dir.path(), &["--check-config"], &env);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("environment only"), "{}", out.stdout);
    assert!(out
        .stdout
        .contains("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS = ap-guangzhou:lhins-a0ogy7ty\n"));
}

#[test]
fn world_readable_file_with_secret_key_warns() {
    let dir = TempDir::new();
    let file = dir.write("k.env", VALID);
    let f = file.to_str().expect("utf-8");
    let out = knockd(dir.path(), &["--check-config", "--config", f], &[]);
    assert!(!out.stdout.contains("chmod 600"), "{}", out.stdout);
    set_mode(&file, 0o644);
    let out = knockd(dir.path(), &["--check-config", "--config", f], &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("warning: "), "{}", out.stdout);
    assert!(out.stdout.contains("chmod 600"), "{}", out.stdout);
}

#[test]
fn version_and_usage_errors() {
    let dir = TempDir::new();
    let out = knockd(dir.path(), &["--version"], &[]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .starts_with(&format!("knockd {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{}",
        out.stdout
    );
    let out = knockd(dir.path(), &["--help"], &[]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("--prune"));
    for args in [
        &["--bogus"][..],
        &["--prune", "--list"][..],
        &["--dry-run"][..],
    ] {
        let out = knockd(dir.path(), args, &[]);
        assert_eq!(out.code, 2, "{args:?}: {}", out.all());
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.starts_with("knockd: "), "{}", out.stderr);
    }
}

#[test]
fn env_sample_is_valid_and_documents_every_variable() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.env.sample");
    let sample = std::fs::read_to_string(path).expect(".env.sample");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    for var in knockd::config::variables() {
        assert!(
            sample.contains(&format!("\n{var}=")),
            ".env.sample lacks {var}"
        );
        assert!(
            readme.contains(&format!("`{var}`")),
            "README.md lacks {var}"
        );
    }
    // Its two published example values are refused, naming each and what to do; filled in,
    // it is valid.
    let out = check(&sample, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(
        error_lines(&out),
        ["KNOCK_REFERER", "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS"],
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("is the example value of .env.sample"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("'lhins-xxxxxxxx' is the placeholder of .env.sample, not an instance"),
        "{}",
        out.stderr
    );
    let filled = [
        ("KNOCK_REFERER", "a-private-long-knock-secret"),
        ("TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS", "lhins-a0ogy7ty"),
    ];
    let out = check(&sample, &filled);
    assert_eq!(out.code, 0, "{}", out.all());
}

/// The variables named by the error lines of a failed load (`  VARIABLE: message`).
fn error_lines(out: &Out) -> Vec<String> {
    out.stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter_map(|l| l.split_once(": ").map(|(v, _)| v.to_string()))
        .collect()
}

#[test]
fn a_public_url_whose_path_is_not_the_knock_path_is_refused_naming_both() {
    let out = check(
        &format!("{VALID}KNOCK_PUBLIC_URL='http://203.0.113.10:8080/knock'\n"),
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(error_lines(&out), ["KNOCK_PUBLIC_URL"], "{}", out.all());
    assert!(
        out.stderr
            .contains("its path '/knock' is not KNOCK_REQUEST_PATH '/favico.ico'"),
        "{}",
        out.stderr
    );
    let out = check(
        &format!("{VALID}KNOCK_PUBLIC_URL='http://203.0.113.10:8080/knock'\nKNOCK_REQUEST_PATH='/knock'\n"),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn rule_lifetimes_under_two_minutes_are_refused() {
    for ttl in ["45s", "1m", "119s"] {
        let out = check(&format!("{VALID}RULE_TTL='{ttl}'\n"), &[]);
        assert_eq!(out.code, 2, "{ttl}: {}", out.all());
        assert_eq!(error_lines(&out), ["RULE_TTL"], "{}", out.all());
        assert!(
            out.stderr
                .contains("is shorter than 2m, the shortest rule lifetime"),
            "{}",
            out.stderr
        );
    }
    let out = check(&format!("{VALID}RULE_TTL='2m'\n"), &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    // A client's own ttl= has the same floor.
    let dir = TempDir::new();
    let clients = dir.write(
        "knockd.clients",
        "alice q3Zx0123456789abcdefghijklmnopqrstuvwxyzABCD ttl=30s\n",
    );
    let file = dir.write(
        "k.env",
        &format!("{VALID}KNOCK_CLIENTS_FILE='{}'\n", clients.display()),
    );
    let out = knockd(
        dir.path(),
        &["--check-config", "--config", file.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("shorter than 2m"), "{}", out.stderr);
}

#[test]
fn a_loopback_access_point_without_a_scheme_is_refused_with_the_http_form() {
    let out = check(
        &format!("{VALID}TENCENT_CLOUD_ACCESS_POINT='127.0.0.1:9077'\n"),
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(
        error_lines(&out),
        ["TENCENT_CLOUD_ACCESS_POINT"],
        "{}",
        out.all()
    );
    assert!(
        out.stderr.contains("write http://127.0.0.1:9077"),
        "{}",
        out.stderr
    );
    for ok in ["http://127.0.0.1:9077", "https://127.0.0.1:9077"] {
        let out = check(&format!("{VALID}TENCENT_CLOUD_ACCESS_POINT='{ok}'\n"), &[]);
        assert_eq!(out.code, 0, "{ok}: {}", out.all());
    }
}

#[test]
fn without_any_config_file_knockd_says_so_first() {
    let dir = TempDir::new();
    let out = knockd(dir.path(), &["--check-config"], &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    let lines: Vec<&str> = out.stderr.lines().collect();
    let cwd_env = dir.path().join(".env");
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(
        lines[1].starts_with(&format!(
            "  no configuration file found (looked for: {}, ",
            cwd_env.display()
        )),
        "{}",
        out.stderr
    );
    assert!(lines[1].contains("--config FILE"), "{}", out.stderr);
    // Some of knockd's variables in the environment: the file line first, then what is missing.
    let out = knockd(dir.path(), &["--check-config"], &[("BIND_PORT", "9000")]);
    assert_eq!(out.code, 2, "{}", out.all());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[1].starts_with("  no configuration file found"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("  TENCENT_CLOUD_SECRET_ID: required"));
}

#[test]
fn a_misspelt_name_is_shown_beside_the_error_it_causes_with_the_nearest_name() {
    let text = VALID.replace(
        "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS=",
        "TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_ID=",
    );
    let out = check(&text, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[1].starts_with("  TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS: required"),
        "{}",
        out.stderr
    );
    assert_eq!(
        lines[2],
        "  TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_ID: not a knockd variable, so ignored: did you \
         mean TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS?",
        "{}",
        out.stderr
    );
    // A valid file: the warning names the nearest known name too, and only when one is close.
    let out = check(
        &format!("{VALID}KNOCK_REFERRER='x'\nFAVOURITE_COLOUR='blue'\n"),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(
            "warning: KNOCK_REFERRER in the config file is not a knockd variable and is \
             ignored; did you mean KNOCK_REFERER?\n"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "warning: FAVOURITE_COLOUR in the config file is not a knockd variable and is \
             ignored\n"
        ),
        "{}",
        out.stdout
    );
}
