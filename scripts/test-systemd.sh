#!/usr/bin/env bash
# make test-systemd: contrib/systemd under a real systemd as PID 1, in a container.
#
# What it needs it sets up itself on a Debian 12 machine, as root:
#   - scripts/setup.sh systemd: debootstrap and systemd-nspawn (systemd-container), via apt;
#   - a minimal Debian bookworm (debootstrap --variant=minbase, plus systemd, systemd-sysv and
#     dbus), built once into target/systemd/bookworm and reused while it exists
#     (target/systemd/bookworm/.complete marks a finished tree; rm -rf target/systemd to
#     rebuild it, make clean removes it too). The mirror is the host's own Debian mirror (the
#     first deb.../debian URI of its apt sources), or KNOCKD_DEBIAN_MIRROR;
#   - the static x86_64 knockd (make release) and the simulator (lighthouse-sim), built here.
#
# Knocks come from a network namespace of the test's own (a veth pair, 198.51.100.1 on the
# host's side where knockd listens, 198.51.100.2 the client's): knockd never opens the firewall
# for a loopback address, so a knock from the host's loopback could not be granted.
#
# The container boots that tree with
#   systemd-nspawn --boot --keep-unit --register=no --console=passive --link-journal=no
#                  --volatile=overlay
# --volatile=overlay puts a tmpfs overlay over the cached tree, so every run starts from the
# pristine tree and leaves it untouched. The container shares the host's network (no
# --private-network): knockd inside binds the host's loopback, and reaches the simulator the
# host runs there.
#
# Driving it: without registration (--register=no) neither machinectl nor systemd-run
# --machine can reach the container, so every command runs through nsenter into the
# namespaces (mount, UTS, IPC, network, PID, cgroup) and root of the container's PID 1 (the
# child of systemd-nspawn), with a clean environment. systemctl, journalctl and
# systemd-analyze then talk to the container's systemd over its private socket, exactly as
# an operator's shell on the server would.
#
# The files are installed by the commands of README.md's "A server with systemd" section,
# run as they are (after the scp lines' files are put in the container's /tmp), so that the
# README and the test cannot drift apart. Then each check prints one ok/FAIL line:
#   a. systemctl enable --now knockd; a Referer knock is granted; the simulator holds the rule;
#   b. knockd --add-client bob: bob's key knock is granted within a second;
#   c. knockd --remove-client bob: bob's key knock is refused within a second;
#   d. a broken /etc/knockd/knockd.env: systemctl restart knockd fails, the unit does not
#      restart (NRestarts stays 0 over 6 s), the journal names /etc/knockd/knockd.env;
#   e. systemctl start knockd-prune.service exits 0; the enabled timer is listed;
#   f. systemd-analyze security: knockd.service and knockd-prune.service at most 2.0.
# Every step is bounded in time; on exit the container is powered off and the simulator
# stopped. Exit status: 0 when every check passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
[ "$(id -u)" -eq 0 ] || {
    echo "test-systemd: must run as root (debootstrap, systemd-nspawn)" >&2
    exit 1
}
scripts/setup.sh systemd

CACHE=$ROOT/target/systemd/bookworm
KNOCKD=$ROOT/target/x86_64-unknown-linux-musl/release/knockd
SIM=$ROOT/target/release/lighthouse-sim
# The simulator's fake credentials and instance (tests/common/names.rs).
SECRET_ID=AKIDknockdTESTtestTESTtestTEST0001
SECRET_KEY=knockdTestSecretKey0001XYZ
INSTANCE=ap-guangzhou:lhins-kn0ck001
REFERER='https://example.com/systemd-knock-secret'
SUCCESS='systemd knock: ok'

TMP=$(mktemp -d -t knockd-systemd.XXXXXX)
NSPAWN_PID='' CT_PID='' SIM_PID='' NETNS=''
# The knock client's own network: the host's end of the veth pair and the client's end.
SERVER_IP=198.51.100.1 CLIENT_IP=198.51.100.2
log() { printf 'test-systemd: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

cleanup() {
    local rc=$? i
    set +e
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        [ -n "$CT_PID" ] && timeout 10 nsenter --target "$CT_PID" --mount --pid --root -- \
            /usr/bin/systemctl poweroff --no-block >/dev/null 2>&1
        for ((i = 0; i < 200; i++)); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
        # systemd-nspawn answers TERM by asking the container's init to power off; KILL last.
        kill -0 "$NSPAWN_PID" 2>/dev/null && kill "$NSPAWN_PID" && sleep 3
        kill -0 "$NSPAWN_PID" 2>/dev/null && kill -9 "$NSPAWN_PID"
        wait "$NSPAWN_PID" 2>/dev/null
    fi
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
    # Deleting the namespace deletes the veth pair (both ends) with it.
    [ -n "$NETNS" ] && ip netns delete "$NETNS" 2>/dev/null
    if [ "$rc" -ne 0 ] && [ -s "$TMP/nspawn.log" ]; then
        log "the container's console (last lines):"
        tail -n 15 "$TMP/nspawn.log" >&2
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the cached Debian tree (shared with make test-demo; scripts/lib.sh) -----------------------
debian_tree "$CACHE" "$TMP/debootstrap.log" || die "cannot build the container's Debian tree"

# --- the binaries ---------------------------------------------------------------------------
log "building knockd (make release) and lighthouse-sim"
make --no-print-directory release >"$TMP/build.log" 2>&1 || {
    tail -n 30 "$TMP/build.log" >&2
    die "make release failed"
}
cargo build --release --quiet -p lighthouse-sim >>"$TMP/build.log" 2>&1 || {
    tail -n 30 "$TMP/build.log" >&2
    die "building lighthouse-sim failed"
}

# --- the simulator on the host's loopback, and the configuration pointing at it ----------------
"$SIM" --listen 127.0.0.1:0 --no-default-rules --credential "$SECRET_ID:$SECRET_KEY" --instance "$INSTANCE" \
    >"$TMP/sim.out" 2>"$TMP/sim.log" &
SIM_PID=$!
for ((i = 0; i < 100; i++)); do grep -q 'listening on' "$TMP/sim.out" && break; sleep 0.1; done
SIM_URL=$(sed -n 's/^lighthouse-sim listening on //p' "$TMP/sim.out")
[ -n "$SIM_URL" ] || die "lighthouse-sim did not start: $(cat "$TMP/sim.log")"
# The client's network namespace and the veth pair.
NETNS=knockd-test-$$
veth=knt$$
ip netns add "$NETNS"
ip link add "${veth}a" type veth peer name "${veth}b" netns "$NETNS"
ip addr add "$SERVER_IP/30" dev "${veth}a"
ip link set "${veth}a" up
ip -n "$NETNS" addr add "$CLIENT_IP/30" dev "${veth}b"
ip -n "$NETNS" link set "${veth}b" up
client() { timeout 10 ip netns exec "$NETNS" "$@"; }
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("'$SERVER_IP'", 0)); print(s.getsockname()[1])')
KNOCK_URL=http://$SERVER_IP:$PORT/favico.ico
cat >"$TMP/knockd.env" <<EOF
TENCENT_CLOUD_ACCESS_POINT='$SIM_URL'
TENCENT_CLOUD_SECRET_ID='$SECRET_ID'
TENCENT_CLOUD_SECRET_KEY='$SECRET_KEY'
TENCENT_CLOUD_REGION='ap-guangzhou'
TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS='$INSTANCE'
KNOCK_REFERER='$REFERER'
KNOCK_PUBLIC_URL='$KNOCK_URL'
MESSAGE_SUCCESS='$SUCCESS'
FW_PERMIT_PORTS_TCP='22'
BIND_IP='$SERVER_IP'
BIND_PORT='$PORT'
METHOD_TO_GET_CLIENT_IP='1'
LOCKOUT_FAILURES='10000'
EOF

# --- boot ---------------------------------------------------------------------------------
log "booting $CACHE (systemd-nspawn --boot --volatile=overlay)"
systemd-nspawn --boot --keep-unit --register=no --console=passive --link-journal=no \
    --volatile=overlay --machine=knockd-test -D "$CACHE" >"$TMP/nspawn.log" 2>&1 &
NSPAWN_PID=$!
for ((i = 0; i < 100; i++)); do
    CT_PID=$(pgrep -P "$NSPAWN_PID" | head -n 1 || true)
    [ -n "$CT_PID" ] && [ "$(readlink "/proc/$CT_PID/exe" 2>/dev/null)" != "$(readlink "/proc/$NSPAWN_PID/exe")" ] && break
    CT_PID=''
    kill -0 "$NSPAWN_PID" 2>/dev/null || die "systemd-nspawn exited: $(cat "$TMP/nspawn.log")"
    sleep 0.1
done
[ -n "$CT_PID" ] || die "no init process under systemd-nspawn ($NSPAWN_PID)"

# ct CMD...: runs CMD in the container as root, bounded by CT_TIMEOUT seconds (default 30).
ct() {
    timeout "${CT_TIMEOUT:-30}" nsenter --target "$CT_PID" --mount --uts --ipc --net --pid --cgroup \
        --root --wd -- /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 SYSTEMD_PAGER='' SYSTEMD_COLORS=0 "$@"
}
# ct_put FILE DEST MODE: copies a host file into the container (as scp would).
ct_put() { ct sh -c "cat >'$2' && chmod $3 '$2'" <"$1"; }

state=''
for ((i = 0; i < 60; i++)); do
    state=$(CT_TIMEOUT=5 ct systemctl is-system-running 2>/dev/null || true)
    case "$state" in running | degraded) break ;; esac
    sleep 1
done
case "$state" in
    running) log "container booted: $(ct systemctl --version | head -n 1)" ;;
    degraded) log "container booted (degraded: $(ct systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' '))" ;;
    *) die "the container did not finish booting (state '$state')" ;;
esac

# --- install, as README.md says --------------------------------------------------------------
# The scp lines: the files land in the container's /tmp.
ct_put "$KNOCKD" /tmp/knockd 0755
ct_put "$TMP/knockd.env" /tmp/knockd.env 0644
for f in contrib/systemd/*; do ct_put "$f" "/tmp/${f##*/}" 0644; done
# The server's lines: from '# on the server, as root' to the end of that code block, without
# the journal follow (it never returns).
awk '/^### A server with systemd/ { s = 1 } s && /^# on the server, as root/ { p = 1; next }
     p && /^```/ { exit } p' README.md | grep -v 'journalctl .*-f' >"$TMP/install.sh"
[ -s "$TMP/install.sh" ] || die "no install steps found in README.md"
log "README install steps:"
sed 's/^/    /' "$TMP/install.sh" >&2
if out=$(CT_TIMEOUT=60 ct sh -ex <"$TMP/install.sh" 2>&1); then
    ok "README.md install steps ran in the container ($(grep -c . "$TMP/install.sh") lines)"
else
    printf '%s\n' "$out"
    fail "README.md install steps"
    die "cannot go on without an installed knockd"
fi
mode=$(ct stat -c '%a %U' /etc/knockd/knockd.env)
if [ "$mode" = "600 root" ]; then ok "/etc/knockd/knockd.env is 0600 root"; else fail "/etc/knockd/knockd.env is '$mode'"; fi

# journal_since TS: knockd.service's journal since the container's clock read TS.
journal_since() { ct journalctl -u knockd.service --since "@$1" -o cat --no-pager 2>/dev/null || true; }
ct_now() { ct date +%s; }
wait_listening() { # SINCE: until knockd logs 'listening on' after SINCE; 20 s at most
    local i
    for ((i = 0; i < 100; i++)); do
        journal_since "$1" | grep -q 'listening on' && return 0
        sleep 0.2
    done
    return 1
}
sim_rules_for() { # ADDR: how many rules for ADDR the simulator holds
    curl -sS --max-time 5 "${SIM_URL%/}/__state" >"$TMP/state.json" || true
    python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(sum(1 for i in s["instances"] for r in i["Rules"] if r.get("CidrBlock") == sys.argv[2]))' "$TMP/state.json" "$1" 2>/dev/null || echo 0
}
# key_knock: bob's key knock from the client's namespace; 0 when granted.
key_knock() { client "$KNOCKD" --knock "$KNOCK_URL" --label bob --key-file "$TMP/bob.key" --expect "$SUCCESS" >>"$TMP/knocks.log" 2>&1; }
# A serving knockd looks at the clients file at most once a second, when a knock comes: the
# promise is that every knock that starts more than 1000 ms after the file changed is judged
# by the new file. Knocks are tried one after another (each ~20-100 ms); the offsets are
# each attempt's start, in ms after the change was seen.
PROMISE_MS=1000

# --- a. enable --now; a Referer knock ----------------------------------------------------------
if [ "$(ct systemctl is-enabled knockd 2>&1)" = enabled ] && [ "$(ct systemctl is-active knockd 2>&1)" = active ] &&
    wait_listening 0; then
    ok "a. knockd.service enabled and active: $(journal_since 0 | grep -m1 'listening on')"
else
    fail "a. knockd.service is not running: $(ct systemctl status knockd --no-pager 2>&1 | tail -n 15)"
fi
body=$(client curl -sS --max-time 10 -H "Referer: $REFERER" "$KNOCK_URL" 2>&1 || true)
for ((i = 0; i < 50; i++)); do
    rules=$(sim_rules_for "$CLIENT_IP")
    [ "$rules" -ge 1 ] && break
    sleep 0.1
done
if [ "$body" = "$SUCCESS" ] && [ "$rules" -ge 1 ]; then
    ok "a. Referer knock granted; the simulator holds $rules rule(s) for $CLIENT_IP"
else
    fail "a. Referer knock answered '$body'; the simulator holds $rules rule(s) for $CLIENT_IP: $(head -c 800 "$TMP/state.json")"
fi

# --- b. --add-client: bob's key knock within a second ---------------------------------------
if ! ct knockd --add-client bob --config /etc/knockd/knockd.env >"$TMP/add.out" 2>&1; then
    cat "$TMP/add.out"
    fail "b. knockd --add-client bob failed"
fi
t_added=$(now_ms) # after --add-client returned: the file is written
sed -n '1p' "$TMP/add.out"
# The key as the recipe for knockd --knock presents it: printf '%s\n' 'KEY' > bob.key
key=$(sed -nE "s/.*printf '%s\\\\n' '?([A-Za-z0-9_-]+)'? > bob\.key.*/\1/p" "$TMP/add.out" | head -n 1)
[ -n "$key" ] || die "no key for bob in the --add-client output"
(umask 077 && printf '%s\n' "$key" >"$TMP/bob.key")
log "clients file: $(ct ls -l /etc/knockd/knockd.clients)"
granted='' tries=0 late_refusals=0
while [ $(($(now_ms) - t_added)) -lt 3000 ]; do
    tries=$((tries + 1))
    t=$(($(now_ms) - t_added))
    if key_knock; then
        granted=$t
        break
    fi
    [ "$t" -gt "$PROMISE_MS" ] && late_refusals=$((late_refusals + 1))
    sleep 0.05
done
if [ -n "$granted" ] && [ "$late_refusals" -eq 0 ]; then
    ok "b. bob's key knock granted: attempt $tries, started ${granted} ms after --add-client returned"
else
    fail "b. added client bob: ${granted:+granted only at attempt $tries, started ${granted} ms after --add-client returned; }$late_refusals knock(s) started over ${PROMISE_MS} ms after it were refused: $(tail -n 1 "$TMP/knocks.log")"
    if [ -z "$granted" ]; then
        log "restarting knockd so that c tests the removal on its own"
        since=$(ct_now)
        ct systemctl restart knockd || true
        wait_listening "$since" || true
        key_knock || log "bob's key knock is refused even after a restart: $(tail -n 1 "$TMP/knocks.log")"
    fi
fi

# --- c. --remove-client: bob refused within a second ----------------------------------------
# --remove-client edits the file at once and says so, then waits for a running knockd to
# notice before it revokes bob's rules; bob knocks all the while.
rules_before=$(sim_rules_for "$CLIENT_IP")
t_start=$(now_ms)
ct knockd --remove-client bob --config /etc/knockd/knockd.env >"$TMP/remove.out" 2>&1 &
remove_pid=$!
t_removed='' last_granted='' first_refused='' late_grants=0 tries=0
while [ $(($(now_ms) - t_start)) -lt 4000 ]; do
    [ -z "$t_removed" ] && grep -q '^Removed client bob' "$TMP/remove.out" && t_removed=$(now_ms)
    [ -z "$t_removed" ] && { sleep 0.01; continue; }
    tries=$((tries + 1))
    t=$(($(now_ms) - t_removed))
    if key_knock; then
        last_granted=$t
        [ "$t" -gt "$PROMISE_MS" ] && late_grants=$((late_grants + 1))
    else
        first_refused=${first_refused:-$t}
        [ "$t" -gt $((PROMISE_MS + 300)) ] && break
    fi
    sleep 0.05
done
remove_rc=0
wait "$remove_pid" || remove_rc=$?
sed -n '1p' "$TMP/remove.out"
after=granted
key_knock || after=refused
rules_after=$(sim_rules_for "$CLIENT_IP")
if [ "$remove_rc" -ne 0 ] || [ -z "$t_removed" ]; then
    cat "$TMP/remove.out"
    fail "c. knockd --remove-client bob exited $remove_rc"
elif [ "$late_grants" -eq 0 ] && [ -n "$first_refused" ] && [ "$after" = refused ]; then
    ok "c. bob's key knock refused from ${first_refused} ms after the removal (last granted: ${last_granted:-none}); refused after --remove-client returned; rules for $CLIENT_IP: $rules_before -> $rules_after"
else
    fail "c. removed client bob: $late_grants knock(s) started over ${PROMISE_MS} ms after the removal were granted (the last at ${last_granted:-?} ms); a knock after --remove-client returned was $after; rules for $CLIENT_IP: $rules_before -> $rules_after"
fi

# --- d. a broken configuration --------------------------------------------------------------
# A bad value and a line that is not KEY=VALUE: the second error names the file.
ct sh -c "cp -p /etc/knockd/knockd.env /root/knockd.env.good && printf '%s\n' \"BIND_PORT='not-a-port'\" 'this line is broken' >>/etc/knockd/knockd.env"
since=$(ct_now)
restart_rc=0
ct systemctl restart knockd >"$TMP/restart.out" 2>&1 || restart_rc=$?
if [ "$restart_rc" -ne 0 ]; then
    ok "d. systemctl restart knockd on a broken knockd.env exits $restart_rc: $(head -n 1 "$TMP/restart.out")"
else
    fail "d. systemctl restart knockd on a broken knockd.env exits 0"
fi
sleep 6
nrestarts=$(ct systemctl show -p NRestarts --value knockd)
active=$(ct systemctl is-active knockd || true)
if [ "$nrestarts" = 0 ] && [ "$active" != active ] && [ "$active" != activating ]; then
    ok "d. no restart loop: NRestarts=$nrestarts after 6 s, the unit is $active"
else
    fail "d. NRestarts=$nrestarts after 6 s, the unit is $active"
fi
journal_since "$since" >"$TMP/broken.journal"
if grep -q '/etc/knockd/knockd.env: line' "$TMP/broken.journal" && ! grep -q '/run/credentials' "$TMP/broken.journal"; then
    ok "d. the journal names /etc/knockd/knockd.env: $(grep -m1 '/etc/knockd/knockd.env: line' "$TMP/broken.journal")"
else
    fail "d. the journal does not name /etc/knockd/knockd.env (only): $(grep -m3 -E 'knockd\.env|not-a-port' "$TMP/broken.journal" | tr '\n' '|')"
fi
ct sh -c 'cp -p /root/knockd.env.good /etc/knockd/knockd.env'
since=$(ct_now)
if ct systemctl restart knockd && wait_listening "$since"; then ok "d. fixed knockd.env: knockd serves again"; else
    fail "d. knockd does not come back after the fix"
fi

# --- e. the prune service and timer ---------------------------------------------------------
if out=$(CT_TIMEOUT=60 ct systemctl start knockd-prune.service 2>&1); then
    ok "e. systemctl start knockd-prune.service: $(ct systemctl show -p Result,ExecMainStatus --value knockd-prune.service | tr '\n' ' ')"
else
    fail "e. systemctl start knockd-prune.service: $out $(ct journalctl -u knockd-prune.service -o cat --no-pager | tail -n 5)"
fi
ct systemctl enable --now knockd-prune.timer >/dev/null 2>&1 || true
if line=$(ct systemctl list-timers --no-pager --no-legend | grep knockd-prune.timer); then
    ok "e. systemctl list-timers: $(tr -s ' ' <<<"$line")"
else
    fail "e. knockd-prune.timer is not listed by systemctl list-timers"
fi

# --- f. systemd-analyze security, in the container ----------------------------------------
for u in knockd.service knockd-prune.service; do
    line=$(ct systemd-analyze security --no-pager "$u" 2>&1 | grep 'Overall exposure level' || true)
    score=$(sed -n 's/.*: \([0-9.]*\) .*/\1/p' <<<"$line")
    if [ -n "$score" ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 2.0 else 1)" "$score"; then
        ok "f. systemd-analyze security $u: ${line##*: }"
    else
        fail "f. systemd-analyze security $u: '${line:-no score}' (must be at most 2.0)"
    fi
done

[ -n "${KNOCKD_TEST_SYSTEMD_JOURNAL:-}" ] && ct journalctl -u knockd -o cat --no-pager | tail -n 40 && ct journalctl -u knockd-prune -o cat --no-pager | tail -n 5
echo "test-systemd: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
