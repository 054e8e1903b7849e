#!/usr/bin/env bash
# knockd in one minute, entirely on this machine: a simulated Lighthouse API with two instances,
# knockd in front of it, one Referer knock with curl, one challenge-response knock with the curl
# line `knockd --add-client` prints, and the firewall before and after.
# Nothing leaves this machine; both processes are stopped when the script exits.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
section() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
note() { printf '   %s\n' "$*"; }

# Fake credentials: the simulator accepts exactly these, they exist nowhere else.
SECRET_ID=AKIDknockdDEMOdemoDEMOdemoDEMO0001
SECRET_KEY=knockdDemoSecretKey0001XYZ
REFERER='https://example.com/my-knock-secret'
INST1=lhins-demo0001 REGION1=ap-guangzhou
INST2=lhins-demo0002 REGION2=ap-singapore

# The same setup as `make test` (a C compiler for ring, curl, wget, busybox, the musl targets),
# plus python3 for the firewall table; it returns at once when nothing is missing.
section "Setup (scripts/setup.sh demo: installs only what is missing)"
"$ROOT/scripts/setup.sh" demo

section "Build (release): knockd and lighthouse-sim"
cargo build --release --quiet -p knockd -p lighthouse-sim
# Where cargo put them: target/ here, or CARGO_TARGET_DIR (relative to this directory).
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
KNOCKD=$TARGET_DIR/release/knockd
SIM=$TARGET_DIR/release/lighthouse-sim
note "${KNOCKD#"$ROOT"/}, ${SIM#"$ROOT"/}"
started=$(date +%s)

TMP=$(mktemp -d -t knockd-demo.XXXXXX)
SIM_PID='' KNOCKD_PID=''
cleanup() {
    local rc=$? pid
    set +e
    for pid in $KNOCKD_PID $SIM_PID; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

section "Start the simulated Lighthouse API (lighthouse-sim)"
"$SIM" --listen 127.0.0.1:0 --credential "$SECRET_ID:$SECRET_KEY" \
    --instance "$REGION1:$INST1" --instance "$REGION2:$INST2" \
    >"$TMP/sim.out" 2>"$TMP/sim.log" &
SIM_PID=$!
wait_for "$TMP/sim.out" 'listening on' 10
SIM_URL=$(sed -n 's/^lighthouse-sim listening on //p' "$TMP/sim.out")
note "API endpoint: $SIM_URL   instances: $REGION1:$INST1, $REGION2:$INST2"

show_firewall() {
    curl -sS "$SIM_URL/__state" | python3 -c '
import json, sys
state = json.load(sys.stdin)
for inst in state["instances"]:
    print("   %s (%s), firewall version %s, %d rules:" % (
        inst["InstanceId"], inst["Region"], inst["FirewallVersion"], len(inst["Rules"])))
    print("     %-6s %-10s %-18s %-7s %s" % ("proto", "port", "source", "action", "description"))
    for r in inst["Rules"]:
        src = r.get("CidrBlock") or r.get("Ipv6CidrBlock") or "?"
        print("     %-6s %-10s %-18s %-7s %s" % (
            r["Protocol"], r["Port"], src, r["Action"], r.get("FirewallRuleDescription", "")))
'
}

section "The firewall before the knock (console defaults)"
show_firewall

section "Write a knockd config"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# knockd never opens the firewall for a loopback address, and the printed client lines send no
# X-Forwarded-For: so knockd listens on this machine's own address (traffic still stays on this
# machine), which is also the address the secure knock opens the firewall for.
OWN=$(python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.connect(("198.51.100.1", 9)); ip = s.getsockname()[0]
except OSError:
    ip = ""
print("" if ip.startswith("127.") or ip == "0.0.0.0" else ip)')
HOST=${OWN:-127.0.0.1}
CONFIG=$TMP/knockd.env
cat >"$CONFIG" <<EOF
# knockd demo config: the Python original's variable names, pointed at the local simulator.
TENCENT_CLOUD_ACCESS_POINT='$SIM_URL'
TENCENT_CLOUD_SECRET_ID='$SECRET_ID'
TENCENT_CLOUD_SECRET_KEY='$SECRET_KEY'
TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS='$REGION1:$INST1,$REGION2:$INST2'
KNOCK_REFERER='$REFERER'
KNOCK_REQUEST_PATH='/favico.ico'
FW_PERMIT_PORTS_TCP='22,443'
FW_PERMIT_PORTS_UDP='51820'
BIND_IP='$HOST'
BIND_PORT='$PORT'
# 2 = trust X-Forwarded-For from the demo's own address (it plays the reverse proxy for the
# Referer knock, which names its client in the header); without the header, the peer counts.
METHOD_TO_GET_CLIENT_IP='2'
TRUSTED_PROXIES='$HOST/32'
PRUNE_INTERVAL='0'
# Secure knocks: per-client keys, and the URL clients reach knockd at (for --add-client).
KNOCK_CLIENTS_FILE='$TMP/knockd.clients'
KNOCK_PUBLIC_URL='http://$HOST:$PORT/favico.ico'
EOF
chmod 600 "$CONFIG"
sed -e "s/^\(TENCENT_CLOUD_SECRET_KEY\)=.*/\1='***'/" -e 's/^/   /' "$CONFIG"

section "Start knockd"
"$KNOCKD" --config "$CONFIG" </dev/null >/dev/null 2>"$TMP/knockd.log" &
KNOCKD_PID=$!
wait_for "$TMP/knockd.log" 'listening on' 10
sed 's/^/   /' "$TMP/knockd.log"

section "Knock once with curl (as a script on the laptop 203.0.113.7 would, via the proxy)"
note "curl -H 'Referer: <secret>' -H 'Location: demo-laptop' -H 'X-Forwarded-For: 203.0.113.7' http://$HOST:$PORT/favico.ico"
body=$(curl -sS --max-time 30 -H "Referer: $REFERER" -H 'Location: demo-laptop' \
    -H 'X-Forwarded-For: 203.0.113.7' -w '\n%{http_code} in %{time_total}s' \
    "http://$HOST:$PORT/favico.ico")
note "response body: '${body%$'\n'*}'   (HTTP status ${body##*$'\n'})"
note "knockd answers every request with status 500; only the body (MESSAGE_SUCCESS,"
note "default '500 Internal Server Error.' with the dot) tells the knocker it worked."
wait_for "$TMP/knockd.log" 'knock addr=' 10
note "knockd's log line for it:"
grep 'knock addr=' "$TMP/knockd.log" | sed 's/^/   /'

section "The firewall after the knock: 203.0.113.7 may reach TCP 22,443 and UDP 51820 on both"
show_firewall

section "Secure knock, step 0: the operator adds a client key (knockd --add-client demo-phone --ttl 12h)"
note "The Referer knock above is replayable: anyone who sees it once can open the firewall for"
note "their own address. A client key never travels: knockd sends a challenge bound to the"
note "client's address, the client answers with SHA-256 over its key and the challenge."
"$KNOCKD" --config "$CONFIG" --add-client demo-phone --ttl 12h </dev/null >"$TMP/add.out" 2>/dev/null
sed 's/^/   /' "$TMP/add.out"
LINE=$(awk '/^Shell with curl/ { getline; sub(/^  /, ""); print; exit }' "$TMP/add.out")

section "Secure knock: run the printed curl line (GET ?c=demo-phone, then GET ?k=demo-phone.T.N.G.H)"
if [ -n "$OWN" ]; then
    sleep 1.2 # knockd looks at the clients file at most once a second
    note "sh -c '<the line above>'"
    sh -c "$LINE" 2>&1 | sed 's/^/   /'
    wait_for "$TMP/knockd.log" 'label=demo-phone result=' 10
    note "knockd's log line for it (never the key or the hash):"
    grep 'label=demo-phone' "$TMP/knockd.log" | sed 's/^/   /'
    section "The firewall after the secure knock: $OWN may now reach the ports too, for 12 h"
    show_firewall
else
    note "this machine has no non-loopback address to knock from: skipped (knockd never opens"
    note "the firewall for loopback, and the printed line cannot add X-Forwarded-For)"
fi

section "knockd --list-clients (label, rule lifetime, expiry, key fingerprint; never the key)"
"$KNOCKD" --list-clients --config "$CONFIG" </dev/null 2>&1 | sed 's/^/   /'

section "knockd --list (what an operator runs)"
"$KNOCKD" --list --config "$CONFIG" </dev/null 2>&1 | sed 's/^/   /'

section "Done in $(($(date +%s) - started)) s after the build; stopping knockd and the simulator"
