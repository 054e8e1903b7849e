#!/usr/bin/env bash
# Tests of contrib/ (make test-contrib):
#   1. shellcheck on the scripts (contrib/ and scripts/);
#   2. systemd-analyze verify on the units (the client template as an instance,
#      knockd-knock@office.service), in a scratch root holding a stand-in /usr/local/bin/knockd
#      (verify refuses a missing ExecStart binary); any message fails, and two deliberately
#      broken copies must fail;
#   3. the unit's resource limits against knockd's defaults (TasksMax, LimitNOFILE) and the
#      settings the units must have (and the one they must not: SocketBindDeny), the client
#      unit's command line and key credential;
#   4. systemd-analyze security --offline=yes: the exposure level must be OK or better;
#   5. the OpenWrt procd init scripts' start_service (knockd.init, knock-client.init), sourced
#      by dash and by busybox sh against stubs of OpenWrt's config_* and procd_* functions: the
#      exact command lines, respawn, file triggers, log and stop settings they record, for
#      several UCI files;
#   6. the CAM policy examples in README.md;
#   7. the sandbox against reality: the static x86_64 binary (make release) under strace,
#      serving a knock from lighthouse-sim, pruning and resolving a host name, may use only
#      system calls inside the unit's SystemCallFilter and only AF_INET/AF_INET6 sockets; the
#      same for `knockd --knock` (the client unit's filter is the same) knocking with a key
#      (CONTRIB_SKIP_STRACE=1 skips this part and its two builds).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
"$ROOT/scripts/setup.sh" contrib

TMP=$(mktemp -d -t knockd-contrib.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

UNITS=(knockd.service knockd-prune.service knockd-prune.timer knockd-knock@office.service)
SYSTEMD_DIR=$ROOT/contrib/systemd
INIT=$ROOT/contrib/openwrt/knockd.init
UCI=$ROOT/contrib/openwrt/knockd.config
CLIENT_INIT=$ROOT/contrib/openwrt/knock-client.init
CLIENT_UCI=$ROOT/contrib/openwrt/knock-client.config
CLIENT_UNIT=$SYSTEMD_DIR/knockd-knock@.service

# --- 1. shellcheck -----------------------------------------------------------------------
mapfile -t scripts < <(
    find contrib -type f \( -name '*.sh' -o -name '*.init' \) | sort
    printf '%s\n' scripts/setup.sh scripts/test-contrib.sh scripts/test-cross.sh scripts/test-systemd.sh scripts/dist.sh \
        scripts/demo.sh scripts/test-demo.sh
)
for s in "${scripts[@]}"; do
    [ -f "$s" ] || continue
    if out=$(shellcheck -x "$s" 2>&1); then ok "shellcheck $s"; else
        fail "shellcheck $s"
        printf '%s\n' "$out"
    fi
done

# --- 2. systemd-analyze verify ------------------------------------------------------------
# verify_units DIR: the units of DIR, checked in a scratch root (the host's targets and slices
# for the dependencies, a stand-in executable at the ExecStart path). Prints what verify says;
# fails on a non-zero status or on any message at all (unknown keys are only warnings).
verify_units() {
    local root out rc=0
    root=$(mktemp -d "$TMP/root.XXXXXX")
    mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd/system"
    find /usr/lib/systemd/system /lib/systemd/system -maxdepth 1 -type f \
        \( -name '*.target' -o -name '*.slice' \) -exec cp -n {} "$root/usr/lib/systemd/system/" \; 2>/dev/null || true
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/knockd"
    chmod 0755 "$root/usr/local/bin/knockd"
    cp "$1"/* "$root/etc/systemd/system/"
    out=$(systemd-analyze verify --man=no --root="$root" "${UNITS[@]}" 2>&1) || rc=$?
    [ -n "$out" ] && printf '%s\n' "$out"
    [ "$rc" -eq 0 ] && [ -z "$out" ]
}
if verify_units "$SYSTEMD_DIR"; then ok "systemd-analyze verify ${UNITS[*]}"; else
    fail "systemd-analyze verify ${UNITS[*]}"
fi
# The check itself must be able to fail: a misspelt key and a wrong binary path are caught.
mkdir -p "$TMP/broken1" "$TMP/broken2"
cp "$SYSTEMD_DIR"/* "$TMP/broken1/"
sed -i 's/^ProtectHome=yes$/ProtectHomes=yes/' "$TMP/broken1/knockd.service"
cp "$SYSTEMD_DIR"/* "$TMP/broken2/"
sed -i 's|^ExecStart=/usr/local/bin/knockd|ExecStart=/usr/bin/knockd|' "$TMP/broken2/knockd.service"
mkdir -p "$TMP/broken3"
cp "$SYSTEMD_DIR"/* "$TMP/broken3/"
sed -i 's/^LoadCredential=%i.key/LoadCredentials=%i.key/' "$TMP/broken3/knockd-knock@.service"
for b in broken1 broken2 broken3; do
    if verify_units "$TMP/$b" >/dev/null 2>&1; then fail "verify did not notice the $b unit"; else
        ok "verify notices a broken unit ($b)"
    fi
done

# --- 3. what knockd.service must have, and the limits against knockd's defaults -----
svc=$SYSTEMD_DIR/knockd.service
value() { sed -n "s/^$1=//p" "$2" | tail -n 1; }
expect_line() { # FILE LINE
    if grep -qxF -- "$2" "$1"; then ok "${1##*/}: $2"; else fail "${1##*/}: no line '$2'"; fi
}
for line in 'ExecStartPre=+/usr/local/bin/knockd --check-config --config /etc/knockd/knockd.env' \
    'ExecStart=/usr/local/bin/knockd --config /etc/knockd/knockd.env' \
    'LoadCredential=knockd.env:/etc/knockd/knockd.env' \
    'BindReadOnlyPaths=%d/knockd.env:/etc/knockd/knockd.env' 'SupplementaryGroups=knockd-clients' \
    'DynamicUser=yes' 'CapabilityBoundingSet=' 'RestrictAddressFamilies=AF_INET AF_INET6' \
    'SystemCallFilter=@system-service' 'ProtectProc=invisible' 'Restart=on-abnormal' \
    'RestartForceExitStatus=1' 'RestartPreventExitStatus=2' \
    'Wants=network-online.target' 'After=network-online.target'; do
    expect_line "$svc" "$line"
done
expect_line "$SYSTEMD_DIR/knockd-prune.service" 'ExecStart=/usr/local/bin/knockd --prune --config /etc/knockd/knockd.env'
for line in 'OnCalendar=hourly' 'Persistent=true'; do expect_line "$SYSTEMD_DIR/knockd-prune.timer" "$line"; done
if grep -q '^RandomizedDelaySec=' "$SYSTEMD_DIR/knockd-prune.timer"; then ok "knockd-prune.timer: RandomizedDelaySec"; else fail "knockd-prune.timer: no RandomizedDelaySec"; fi
# The clients file is read in place (a copy would hide --add-client/--remove-client until a
# restart): no credential may stand for it.
if grep -q '^[A-Za-z]*Credential=knockd.clients' "$svc"; then fail "knockd.service copies knockd.clients"; else ok "knockd.service: knockd.clients read in place"; fi
if grep -q '^SocketBindDeny' "$svc"; then fail "knockd.service sets SocketBindDeny (breaks musl's DNS)"; else ok "knockd.service: no SocketBindDeny"; fi

# The client unit: the command line, the key as a credential (readable only by the service's
# dynamic user) mounted where the command names it, the URL from the environment file, the
# same sandbox as knockd.service, and the default success text knockd itself expects.
# shellcheck disable=SC2016 # ${KNOCK_URL} and the rest are systemd's, not the shell's
for line in 'ExecStart=/usr/local/bin/knockd --knock ${KNOCK_URL} --label %i --key-file /etc/knockd/%i.key --every ${KNOCK_EVERY} --expect=${KNOCK_EXPECT}' \
    'EnvironmentFile=/etc/knockd/knock-%i.env' 'Environment=KNOCK_EVERY=10m' \
    'LoadCredential=%i.key:/etc/knockd/%i.key' 'BindReadOnlyPaths=%d/%i.key:/etc/knockd/%i.key' \
    'DynamicUser=yes' 'CapabilityBoundingSet=' 'RestrictAddressFamilies=AF_INET AF_INET6' \
    'SystemCallFilter=@system-service' 'SystemCallFilter=~@privileged @resources' \
    'ProtectSystem=strict' 'ProtectProc=invisible' 'PrivateUsers=yes' 'Restart=on-abnormal' \
    'RestartForceExitStatus=1' 'RestartPreventExitStatus=2' \
    'Wants=network-online.target' 'After=network-online.target'; do
    expect_line "$CLIENT_UNIT" "$line"
done
default_success=$(grep -rhoE 'DEFAULT_MESSAGE_SUCCESS: &str = "[^"]*"' src | sed 's/.*= "\(.*\)"/\1/' | head -n 1 || true)
expect_line "$CLIENT_UNIT" "Environment=\"KNOCK_EXPECT=$default_success\""
if grep -q '^SocketBindDeny' "$CLIENT_UNIT"; then fail "knockd-knock@.service sets SocketBindDeny"; else ok "knockd-knock@.service: no SocketBindDeny"; fi
# Every sandbox setting of knockd.service is in the client unit too (but the server's own:
# its configuration credential, the clients group, its limits).
missing_sandbox=()
while IFS= read -r line; do
    grep -qxF -- "$line" "$CLIENT_UNIT" || missing_sandbox+=("$line")
done < <(sed -n '/^# --- Identity/,/^# --- Resources/p' "$svc" | grep -E '^[A-Za-z]+=' | grep -v '^SupplementaryGroups=')
if ((${#missing_sandbox[@]} == 0)); then ok "knockd-knock@.service: every sandbox setting of knockd.service"; else
    fail "knockd-knock@.service lacks knockd.service's ${missing_sandbox[*]}"
fi

# knockd's default MAX_CONNECTIONS, wherever the configuration code lives.
max_conn=$(grep -rhoE 'var\("MAX_CONNECTIONS", Some\("[0-9]+"\)\)' src | grep -oE '[0-9]+' | head -n 1 || true)
if [ -z "$max_conn" ]; then
    fail "cannot find the default of MAX_CONNECTIONS under src/"
else
    tasks=$(value TasksMax "$svc") nofile=$(value LimitNOFILE "$svc")
    # Threads: the poll loop, the notifier, up to 64 writers, and room for knocks waiting on
    # the firewall (connections have no thread of their own).
    if [ "$tasks" -ge 130 ]; then
        ok "TasksMax=$tasks fits the loop, the notifier, 64 writers and waiting knocks"
    else fail "TasksMax=$tasks leaves no room for waiting knocks beside 64 writers"; fi
    # Descriptors: one per connection, plus the writers' API connections and a margin.
    if [ "$nofile" -ge $((max_conn + 128)) ]; then ok "LimitNOFILE=$nofile >= $max_conn + 128"; else
        fail "LimitNOFILE=$nofile < MAX_CONNECTIONS + 128"
    fi
fi

# --- 4. systemd-analyze security --------------------------------------------------------
for u in knockd.service knockd-prune.service knockd-knock@.service; do
    line=$(systemd-analyze security --offline=yes --man=no "$SYSTEMD_DIR/$u" 2>&1 | grep 'Overall exposure level' || true)
    score=$(sed -n 's/.*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' <<<"$line")
    case "${score#* }" in
        PERFECT | SAFE | OK) ok "systemd-analyze security $u: exposure $score" ;;
        *) fail "systemd-analyze security $u: exposure '${score:-$line}', worse than OK" ;;
    esac
done

# --- 5. OpenWrt procd init script under dash and busybox sh -----------------------------
# The stubs stand in for /lib/functions.sh (config_load, config_get, config_get_bool, reading
# one UCI file the way uci does for `option NAME 'value'`) and /lib/functions/procd.sh
# (recording every call, one bracket per argument, so quoting mistakes show).
cat >"$TMP/procd-harness.sh" <<'EOF'
# usage: sh procd-harness.sh INIT UCI_FILE RECORD
INIT=$1 UCI_FILE=$2 RECORD=$3
: >"$RECORD"
uci_value() {
    awk -v sec="$1" -v opt="$2" '
        function unq(s) { gsub(/^["\047]|["\047]$/, "", s); return s }
        $1 == "config" { n++; cur = NF > 2 ? unq($3) : "cfg" n }
        $1 == "option" && cur == sec && $2 == opt {
            v = $0; sub(/^[ \t]*option[ \t]+[^ \t]+[ \t]+/, "", v); print unq(v); exit
        }' "$UCI_FILE"
}
config_load() { echo "config_load $*" >>"$RECORD"; }
# config_foreach FUNCTION TYPE: FUNCTION SECTION for each section of TYPE, in file order
# (an anonymous section is cfgN, N its place in the file, as uci_value names it).
config_foreach() {
    for _s in $(awk -v type="$2" '
        function unq(s) { gsub(/^["\047]|["\047]$/, "", s); return s }
        $1 == "config" { n++; if (unq($2) == type) print (NF > 2 ? unq($3) : "cfg" n) }' "$UCI_FILE"); do
        "$1" "$_s"
    done
}
config_get() {
    _v=$(uci_value "$2" "$3")
    [ -n "$_v" ] || _v=${4-}
    eval "$1=\$_v"
}
config_get_bool() {
    _v=$(uci_value "$2" "$3")
    case "$_v" in
        1 | on | true | yes | enabled) _v=1 ;;
        0 | off | false | no | disabled) _v=0 ;;
        *) _v=${4-0} ;;
    esac
    eval "$1=\$_v"
}
record() {
    _line=$1
    shift
    for _a in "$@"; do _line="$_line [$_a]"; done
    echo "$_line" >>"$RECORD"
}
procd_open_instance() { record open_instance "$@"; }
procd_set_param() { record set_param "$@"; }
procd_close_instance() { record close_instance "$@"; }
procd_add_reload_trigger() { record reload_trigger "$@"; }
. "$INIT"
[ "$USE_PROCD" = 1 ] || echo "USE_PROCD is '$USE_PROCD'" >>"$RECORD"
start_service
service_triggers
EOF

expected_instance() { # CONFIG_PATH CLIENTS_PATH
    cat <<EOF
config_load knockd
open_instance
set_param [command] [/usr/bin/knockd] [--config] [$1]
set_param [respawn] [3600] [5] [5]
set_param [file] [$1] [$2]
set_param [stdout] [1]
set_param [stderr] [1]
set_param [term_timeout] [10]
close_instance
reload_trigger [knockd]
EOF
}
expected_disabled() {
    printf '%s\n' 'config_load knockd' 'reload_trigger [knockd]'
}

# The UCI file as shipped (disabled), then enabled with its default path, then a path with a
# space, then with the config option removed (the init script's default).
cp "$UCI" "$TMP/uci.shipped"
sed "s/option enabled '0'/option enabled '1'/" "$UCI" >"$TMP/uci.enabled"
sed -e "s/option enabled '0'/option enabled 'yes'/" \
    -e "s|option config '/etc/knockd/knockd.env'|option config '/srv/my knock/router.env'|" "$UCI" >"$TMP/uci.spaced"
sed -e "s/option enabled '0'/option enabled '1'/" -e '/option config /d' "$UCI" >"$TMP/uci.noconfig"
expected_disabled >"$TMP/want.shipped"
expected_instance /etc/knockd/knockd.env /etc/knockd/knockd.clients >"$TMP/want.enabled"
expected_instance '/srv/my knock/router.env' '/srv/my knock/knockd.clients' >"$TMP/want.spaced"
expected_instance /etc/knockd/knockd.env /etc/knockd/knockd.clients >"$TMP/want.noconfig"

shells=(dash)
if command -v busybox >/dev/null 2>&1; then shells+=("busybox sh"); else fail "busybox not installed"; fi
for sh in "${shells[@]}"; do
    for case in shipped enabled spaced noconfig; do
        rec=$TMP/rec.$case
        # shellcheck disable=SC2086 # "busybox sh" is two words on purpose
        if ! $sh "$TMP/procd-harness.sh" "$INIT" "$TMP/uci.$case" "$rec" 2>"$TMP/err"; then
            fail "procd ($sh, $case): the init script failed: $(cat "$TMP/err")"
        elif [ -s "$TMP/err" ]; then
            fail "procd ($sh, $case): stderr: $(cat "$TMP/err")"
        elif diff -u "$TMP/want.$case" "$rec" >"$TMP/diff"; then
            ok "procd ($sh, $case): $(grep -c . "$rec") calls as expected"
        else
            fail "procd ($sh, $case): recorded calls differ"
            cat "$TMP/diff"
        fi
    done
done
echo "procd calls recorded for the enabled UCI file:"
sed 's/^/    /' "$TMP/rec.enabled"

# knock-client.init: one procd instance per enabled `config client` section. The UCI file as
# shipped (disabled), enabled as shipped, and a file of four sections: a label with '-' and
# the default key file, a success text with spaces, an anonymous section, one disabled and
# one without a url (skipped with a message on stderr).
client_instance() { # NAME URL LABEL KEY_FILE INTERVAL [EXPECT]
    echo "open_instance [$1]"
    if [ $# -gt 5 ]; then
        echo "set_param [command] [/usr/bin/knockd] [--knock] [$2] [--label] [$3] [--key-file] [$4] [--every] [$5] [--expect] [$6]"
    else
        echo "set_param [command] [/usr/bin/knockd] [--knock] [$2] [--label] [$3] [--key-file] [$4] [--every] [$5]"
    fi
    printf '%s\n' 'set_param [respawn] [3600] [5] [5]' 'set_param [stdout] [1]' 'set_param [stderr] [1]' \
        'set_param [term_timeout] [5]' close_instance
}
cp "$CLIENT_UCI" "$TMP/cuci.shipped"
sed "s/option enabled '0'/option enabled '1'/" "$CLIENT_UCI" >"$TMP/cuci.enabled"
cat >"$TMP/cuci.many" <<'EOF'
config client 'home_nas'
	option enabled '1'
	option url 'http://198.51.100.7:8080/favico.ico'
	option label 'home-nas'
	option interval '5m'

config client 'office'
	option enabled 'yes'
	option url 'https://knock.example.com/k'
	option key_file '/etc/knockd/my office.key'
	option expect 'door open'

config client
	option enabled '1'
	option url 'https://knock.example.com/k'
	option label 'anon'

config client 'old'
	option enabled '0'
	option url 'https://knock.example.com/k'

config client 'nourl'
	option enabled '1'
EOF
printf '%s\n' 'config_load knock-client' 'reload_trigger [knock-client]' >"$TMP/cwant.shipped"
{
    echo 'config_load knock-client'
    client_instance main https://knock.example.com/favico.ico router /etc/knockd/router.key 10m
    echo 'reload_trigger [knock-client]'
} >"$TMP/cwant.enabled"
{
    echo 'config_load knock-client'
    client_instance home_nas http://198.51.100.7:8080/favico.ico home-nas /etc/knockd/home-nas.key 5m
    client_instance office https://knock.example.com/k office '/etc/knockd/my office.key' 10m 'door open'
    client_instance cfg3 https://knock.example.com/k anon /etc/knockd/anon.key 10m
    echo 'reload_trigger [knock-client]'
} >"$TMP/cwant.many"
: >"$TMP/cerr.shipped"
: >"$TMP/cerr.enabled"
echo "knock-client: section 'nourl' has no url; not started" >"$TMP/cerr.many"
for sh in "${shells[@]}"; do
    for case in shipped enabled many; do
        rec=$TMP/crec.$case
        # shellcheck disable=SC2086 # "busybox sh" is two words on purpose
        if ! $sh "$TMP/procd-harness.sh" "$CLIENT_INIT" "$TMP/cuci.$case" "$rec" 2>"$TMP/err"; then
            fail "procd knock-client ($sh, $case): the init script failed: $(cat "$TMP/err")"
        elif ! cmp -s "$TMP/cerr.$case" "$TMP/err"; then
            fail "procd knock-client ($sh, $case): stderr: '$(cat "$TMP/err")', want '$(cat "$TMP/cerr.$case")'"
        elif diff -u "$TMP/cwant.$case" "$rec" >"$TMP/diff"; then
            ok "procd knock-client ($sh, $case): $(grep -c . "$rec") calls as expected"
        else
            fail "procd knock-client ($sh, $case): recorded calls differ"
            cat "$TMP/diff"
        fi
    done
done
echo "procd calls recorded for knock-client with four sections:"
sed 's/^/    /' "$TMP/crec.many"

# --- 6. the CAM policy examples of the README section: valid JSON, least privilege ----------
cat >"$TMP/policy.py" <<'EOF'
import json, re, sys
text = open(sys.argv[1], encoding="utf-8").read()
want = {"lighthouse:DescribeFirewallRules", "lighthouse:CreateFirewallRules",
        "lighthouse:DeleteFirewallRules", "lighthouse:ModifyFirewallRuleDescription"}
policies = [json.loads(b) for b in re.findall(r"```json\n(\{.*?)\n```", text, re.S)]
assert len(policies) >= 2, "expected the English and the Chinese policy"
for p in policies:
    assert p["version"] == "2.0", p
    (st, *optional) = p["statement"]
    assert st["effect"] == "allow" and set(st["action"]) == want, st["action"]
    for r in st["resource"]:
        assert re.fullmatch(r"qcs::lighthouse:ap-[a-z]+:uin/<ACCOUNT>:instance/lhins-[a-z0-9]{8}", r), r
    # --print-cam-policy's optional second statement: only what --check reads, on "*".
    for o in optional:
        assert set(o["action"]) == {"lighthouse:DescribeRegions", "lighthouse:DescribeInstances"}, o
        assert o["resource"] == ["*"], o
print(len(policies))
EOF
if out=$(python3 "$TMP/policy.py" README.md 2>&1); then
    ok "README section: $out CAM policies parse, exactly the 4 actions on one instance (and the optional read-only statement)"
else
    fail "README section: CAM policy examples: $out"
fi

# --- 7. the sandbox against what knockd really does ----------------------------------------
# The static x86_64 binary under strace: serving, one knock, a --prune, and a --list that has
# to resolve a host name (musl's resolver). Every system call must be inside the unit's
# SystemCallFilter (@system-service minus @privileged and @resources), every socket AF_INET
# or AF_INET6 (RestrictAddressFamilies).
if [ "${CONTRIB_SKIP_STRACE:-0}" = 1 ]; then
    echo "skip syscall check (CONTRIB_SKIP_STRACE=1)"
else
    make --no-print-directory release >"$TMP/build.out" 2>&1 || {
        cat "$TMP/build.out"
        fail "make release"
    }
    if cargo pkgid lighthouse-sim >/dev/null 2>&1; then
        cargo build --release --quiet -p lighthouse-sim
    else
        cargo build --release --quiet --bin lighthouse-sim
    fi
    # shellcheck source=scripts/lib.sh
    . "$ROOT/scripts/lib.sh"
    KNOCKD=$ROOT/target/x86_64-unknown-linux-musl/release/knockd
    "$ROOT/target/release/lighthouse-sim" --listen 127.0.0.1:0 --credential AKIDcontribSTRACE0001:contribStraceKey01 \
        --instance ap-guangzhou:lhins-strace01 >"$TMP/sim.out" 2>"$TMP/sim.log" &
    PIDS+=($!)
    wait_for "$TMP/sim.out" 'listening on' 10
    sim_url=$(sed -n 's/^lighthouse-sim listening on //p' "$TMP/sim.out")
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$TMP/k.env" <<EOF
TENCENT_CLOUD_ACCESS_POINT='$sim_url'
TENCENT_CLOUD_SECRET_ID='AKIDcontribSTRACE0001'
TENCENT_CLOUD_SECRET_KEY='contribStraceKey01'
TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS='ap-guangzhou:lhins-strace01'
KNOCK_REFERER='https://example.com/contrib-strace-secret'
MESSAGE_SUCCESS='strace ok'
FW_PERMIT_PORTS_TCP='22'
BIND_IP='127.0.0.1'
BIND_PORT='$port'
METHOD_TO_GET_CLIENT_IP='2'
PRUNE_INTERVAL='1s'
EOF
    chmod 600 "$TMP/k.env"
    # A client key, for the knockd --knock run below (knockd.clients beside k.env).
    ckey=contribSTRACEkeyContribStraceKeyContribStrace1
    printf 'contrib %s\n' "$ckey" >"$TMP/knockd.clients"
    printf '%s\n' "$ckey" >"$TMP/contrib.key"
    chmod 600 "$TMP/knockd.clients" "$TMP/contrib.key"
    strace -f -qq -o "$TMP/trace.serve" "$KNOCKD" --config "$TMP/k.env" </dev/null >/dev/null 2>"$TMP/knockd.log" &
    strace_pid=$!
    wait_for "$TMP/knockd.log" 'listening on' 20
    # A TERM to strace leaves its tracee running: stop knockd itself first, then strace.
    PIDS+=("$(pgrep -P "$strace_pid" -x knockd)" "$strace_pid")
    body=$(curl -sS --max-time 20 -H 'Referer: https://example.com/contrib-strace-secret' \
        -H 'X-Forwarded-For: 203.0.113.5' "http://127.0.0.1:$port/favico.ico" || true)
    [ "$body" = 'strace ok' ] || fail "knock under strace answered '$body'"
    # The client (knockd-knock@.service has the same filter): both steps of a key knock, through
    # a loopback proxy naming the client in X-Forwarded-For.
    python3 "$ROOT/scripts/xff-proxy.py" "$port" 203.0.113.6 >"$TMP/proxy.out" 2>"$TMP/proxy.log" &
    PIDS+=($!)
    wait_for "$TMP/proxy.out" 'proxy listening on' 10
    pport=$(sed -n 's/^proxy listening on //p' "$TMP/proxy.out")
    if out=$(strace -f -qq -o "$TMP/trace.client" "$KNOCKD" --knock "http://localhost:$pport/favico.ico" \
        --label contrib --key-file "$TMP/contrib.key" --expect 'strace ok' 2>&1) && [ "$out" = 'knock: ok' ]; then
        ok "knockd --knock under strace: $out"
    else
        fail "knockd --knock under strace: $out"
    fi
    sleep 1.5 # one PRUNE_INTERVAL tick
    strace -f -qq -o "$TMP/trace.prune" "$KNOCKD" --prune --config "$TMP/k.env" </dev/null >/dev/null 2>&1 ||
        fail "knockd --prune under strace"
    sed -i "s|^TENCENT_CLOUD_ACCESS_POINT=.*|TENCENT_CLOUD_ACCESS_POINT='knockd-test.invalid'|" "$TMP/k.env"
    timeout 30 strace -f -qq -o "$TMP/trace.dns" "$KNOCKD" --list --config "$TMP/k.env" </dev/null >/dev/null 2>&1 || true
    grep -q 'sin_port=htons(53)' "$TMP/trace.dns" || fail "the --list with a host name made no DNS query"

    expand_set() { # @GROUP -> its system calls, nested groups expanded
        systemd-analyze syscall-filter "$1" 2>/dev/null | awk '/^    [a-z_0-9@]/ { print $1 }' |
            while read -r s; do case "$s" in @*) expand_set "$s" ;; *) echo "$s" ;; esac; done
    }
    expand_set @system-service | sort -u >"$TMP/allow"
    { expand_set @privileged; expand_set @resources; } | sort -u >"$TMP/deny"
    cat "$TMP"/trace.* | awk '{ l = $0; sub(/^[0-9]+ +/, "", l); if (match(l, /^[a-z_0-9]+\(/)) print substr(l, 1, RLENGTH - 1) }' |
        sort -u >"$TMP/used"
    outside=$(comm -23 "$TMP/used" "$TMP/allow" | tr '\n' ' ')
    denied=$(comm -12 "$TMP/used" "$TMP/deny" | tr '\n' ' ')
    if [ "$(grep -c . "$TMP/used")" -ge 20 ] && [ -z "$outside" ] && [ -z "$denied" ]; then
        ok "all $(grep -c . "$TMP/used") system calls knockd made are inside SystemCallFilter"
    else
        fail "system calls outside the filter: '${outside}', denied: '${denied}'"
    fi
    mapfile -t families < <(grep -ohE 'socket\(AF_[A-Z0-9]+' "$TMP"/trace.* | sed 's/socket(//' | sort -u)
    others=()
    for f in "${families[@]}"; do [ "$f" = AF_INET ] || [ "$f" = AF_INET6 ] || others+=("$f"); done
    if ((${#families[@]})) && ((${#others[@]} == 0)); then
        ok "socket families used: ${families[*]} (RestrictAddressFamilies=AF_INET AF_INET6)"
    else
        fail "socket families outside RestrictAddressFamilies: ${others[*]:-none seen}"
    fi
fi

echo "test-contrib: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
