#!/usr/bin/env bash
# make test-cross: the cross-built router/ARM binaries, run under qemu-user on this machine.
# For each target (aarch64, armv7): build the static release binary, then under qemu
#   - `knockd --version` names the target;
#   - `knockd --check-config` accepts a generated .env (and masks its secret);
#   - one real knock end to end: lighthouse-sim runs natively on loopback, knockd emulated in
#     front of it, curl knocks with the Referer secret; the success body, knockd's grant log
#     line, the simulator's firewall (/__state) and `knockd --list` (emulated, a real signed
#     DescribeFirewallRules) must all show the rule;
# and report the binary's size against its target and qemu's RSS with knockd idle.
#
# armv7 is built by whichever route scripts/setup.sh armv7 can prepare (the stable toolchain's
# prebuilt standard library, else nightly -Zbuild-std against Debian's armhf musl; see the
# Makefile). Only when neither can be prepared is it reported as SKIPPED, not failed, unless
# CROSS_STRICT=1. CROSS_TARGETS picks targets
# (default "aarch64 armv7"). Every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
started=$SECONDS
log() { printf 'test-cross: %s\n' "$*" >&2; }

"$ROOT/scripts/setup.sh" cross
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

read -r -a targets <<<"${CROSS_TARGETS:-aarch64 armv7}"
declare -A TRIPLE=([x86_64]=x86_64-unknown-linux-musl [aarch64]=aarch64-unknown-linux-musl
    [armv7]=armv7-unknown-linux-musleabihf)
declare -A QEMU=([aarch64]=qemu-aarch64-static [armv7]=qemu-arm-static)
# Size targets, in MiB (the README's "MB").
declare -A SIZE_TARGET=([x86_64]=2.0 [aarch64]=1.7 [armv7]=1.6)

SECRET_ID=AKIDknockdCROSScrossCROSScross0001
SECRET_KEY=knockdCrossSecretKey0001XYZ
REFERER='https://example.com/cross-knock-secret'
SUCCESS='cross knock: ok'
FAILURE='cross knock: failed'
INSTANCES='ap-guangzhou:lhins-cross001,ap-singapore:lhins-cross002'
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

track_processes cross

stop() { # PID
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
die() {
    log "FAIL: $*"
    exit 1
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }

# --- builds ------------------------------------------------------------------------------
# The simulator runs natively. It is moving into its own workspace package (sim/); until then
# it is a bin target of the knockd package. Either way it lands in target/release/.
t0=$SECONDS
if cargo pkgid lighthouse-sim >/dev/null 2>&1; then
    cargo build --release --quiet -p lighthouse-sim
else
    cargo build --release --quiet --bin lighthouse-sim
fi
SIM=$ROOT/target/release/lighthouse-sim
[ -x "$SIM" ] || die "no $SIM after the build"
log "lighthouse-sim built in $((SECONDS - t0)) s"

built=() skipped=()
for arch in "${targets[@]}"; do
    [ -n "${QEMU[$arch]:-}" ] || die "unknown target '$arch' (aarch64, armv7)"
    if [ "$arch" = armv7 ] && ! "$ROOT/scripts/setup.sh" armv7 >"$TMP/setup-armv7.out" 2>&1; then
        reason=$(grep -v '^setup: rustup could not' "$TMP/setup-armv7.out" | tail -n 1)
        if [ "${CROSS_STRICT:-0}" = 1 ]; then die "armv7: neither the stable nor the nightly route can be prepared: $reason"; fi
        log "SKIPPED armv7: neither the stable nor the nightly route can be prepared for ${TRIPLE[armv7]}: $reason"
        skipped+=(armv7)
        continue
    fi
    t0=$SECONDS
    make --no-print-directory "$arch" >"$TMP/build-$arch.out" 2>&1 || {
        cat "$TMP/build-$arch.out" >&2
        die "make $arch failed"
    }
    log "knockd for $arch built in $((SECONDS - t0)) s$(sed -n 's/^armv7: \([a-z0-9.-]*\) toolchain.*/ (\1 route)/p' "$TMP/build-$arch.out")"
    built+=("$arch")
done
((${#built[@]})) || die "no target built"

# --- one target under emulation -------------------------------------------------------------
declare -A R_SIZE R_KNOCK R_RSS R_MS
run_arch() {
    local arch=$1 n=$2 triple=${TRIPLE[$1]} qemu=${QEMU[$1]}
    local bin=$ROOT/target/$triple/release/knockd out info addr port conf sim_pid k_pid sim_url body line
    local t0=$SECONDS
    command -v "$qemu" >/dev/null || die "$qemu is not installed"
    info=$(file -b "$bin")
    case "$info" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *) die "$arch: $bin is not static: $info" ;;
    esac
    R_SIZE[$arch]=$(stat -c %s "$bin")

    # --version names the target triple.
    out=$("$qemu" "$bin" --version)
    [[ "$out" == "knockd $version (commit "*", $triple)" ]] || die "$arch: --version printed '$out'"
    log "$arch: $out"

    # The simulator, native.
    "$SIM" --listen 127.0.0.1:0 --credential "$SECRET_ID:$SECRET_KEY" \
        --instance ap-guangzhou:lhins-cross001 --instance ap-singapore:lhins-cross002 \
        >"$TMP/$arch.sim.out" 2>"$TMP/$arch.sim.log" &
    sim_pid=$!
    PIDS+=("$sim_pid")
    wait_for "$TMP/$arch.sim.out" 'listening on' 10
    sim_url=$(sed -n 's/^lighthouse-sim listening on //p' "$TMP/$arch.sim.out")

    port=$(free_port)
    conf=$TMP/$arch.env
    cat >"$conf" <<EOF
TENCENT_CLOUD_ACCESS_POINT='$sim_url'
TENCENT_CLOUD_SECRET_ID='$SECRET_ID'
TENCENT_CLOUD_SECRET_KEY='$SECRET_KEY'
TENCENT_CLOUD_LIGHTHOUSE_INSTANCE_IDS='$INSTANCES'
KNOCK_REFERER='$REFERER'
FW_PERMIT_PORTS_TCP='22,443'
FW_PERMIT_PORTS_UDP='51820'
MESSAGE_SUCCESS='$SUCCESS'
MESSAGE_FAILURE='$FAILURE'
BIND_IP='127.0.0.1'
BIND_PORT='$port'
METHOD_TO_GET_CLIENT_IP='2'
PRUNE_INTERVAL='0'
EOF
    chmod 600 "$conf"

    # --check-config: accepted, understood, secret masked.
    out=$("$qemu" "$bin" --check-config --config "$conf" 2>&1) || die "$arch: --check-config failed: $out"
    grep -q 'lhins-cross002' <<<"$out" || die "$arch: --check-config does not show the instances: $out"
    grep -q "BIND_PORT = $port" <<<"$out" || die "$arch: --check-config does not show BIND_PORT: $out"
    if grep -qF "$SECRET_KEY" <<<"$out"; then die "$arch: --check-config printed the secret key"; fi
    log "$arch: --check-config ok ($(grep -c . <<<"$out") lines, secret masked)"

    # knockd, emulated. $! is the qemu process itself (qemu-user runs the guest in-process).
    "$qemu" "$bin" --config "$conf" </dev/null >/dev/null 2>"$TMP/$arch.knockd.log" &
    k_pid=$!
    PIDS+=("$k_pid")
    wait_for "$TMP/$arch.knockd.log" 'listening on' 30
    sleep 1
    kill -0 "$k_pid" 2>/dev/null || die "$arch: knockd exited"
    R_RSS[$arch]=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$k_pid/status")

    # One knock from a documentation address, via the loopback "proxy".
    addr=203.0.113.$((10 + n))
    body=$(curl -sS --max-time 30 -H "Referer: $REFERER" -H "Location: cross-$arch" \
        -H "X-Forwarded-For: $addr" "http://127.0.0.1:$port/favico.ico") || die "$arch: curl failed"
    [ "$body" = "$SUCCESS" ] || die "$arch: knock answered '$body', not '$SUCCESS'"
    wait_for "$TMP/$arch.knockd.log" "knock addr=$addr " 10
    line=$(grep "knock addr=$addr " "$TMP/$arch.knockd.log")
    grep -q 'result=ok' <<<"$line" || die "$arch: knock log line is not a grant: $line"
    for id in lhins-cross001 lhins-cross002; do
        grep -q "$id=" <<<"$line" || die "$arch: knock log line does not name $id: $line"
    done
    R_KNOCK[$arch]=$line
    R_MS[$arch]=$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<<"$line")

    # The simulator's firewall: on both instances, TCP 22 and 443 and UDP 51820 for $addr only,
    # described with knockd's prefix and the label.
    curl -sS --max-time 10 "$sim_url/__state" >"$TMP/$arch.state.json"
    log "$arch: the simulator's firewall after the knock, rules for $addr:"
    python3 - "$TMP/$arch.state.json" "$addr" "cross-$arch" <<'EOF' || die "$arch: the simulator's firewall lacks the rule"
import json, sys
state, addr, label = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
want = {("TCP", "22"), ("TCP", "443"), ("UDP", "51820")}
for inst in state["instances"]:
    got = set()
    for r in inst["Rules"]:
        if r.get("CidrBlock", "").split("/")[0] != addr:
            continue
        desc = r.get("FirewallRuleDescription", "")
        assert desc.startswith("Knockd-" + label + " until "), desc
        for port in r["Port"].split(","):
            got.add((r["Protocol"], port))
    if not want <= got:
        print("%s: rules for %s: %s, want %s" % (inst["InstanceId"], addr, sorted(got), sorted(want)), file=sys.stderr)
        sys.exit(1)
    print("  %s (%s): %s" % (inst["InstanceId"], inst["Region"], ", ".join("%s %s" % p for p in sorted(got))))
EOF

    # knockd --list, emulated: a signed DescribeFirewallRules per instance, through the same API.
    out=$("$qemu" "$bin" --list --config "$conf" 2>&1) || die "$arch: --list failed: $out"
    [ "$(grep -c -- "$addr" <<<"$out")" -ge 2 ] || die "$arch: --list does not show $addr on both instances: $out"

    stop "$k_pid"
    stop "$sim_pid"
    log "$arch: done in $((SECONDS - t0)) s"
}

n=0
for arch in "${built[@]}"; do
    n=$((n + 1))
    run_arch "$arch" "$n"
done

# --- report ------------------------------------------------------------------------------
echo
echo "== knockd under qemu-user (lighthouse-sim native, loopback) =="
printf '%-8s %-34s %12s %8s %8s %s\n' target triple bytes MiB "target" verdict
size_row() { # ARCH BYTES
    local verdict=within
    awk -v b="$2" -v t="${SIZE_TARGET[$1]}" 'BEGIN { exit !(b / 1048576 > t) }' && verdict="OVER TARGET"
    printf '%-8s %-34s %12s %8s %8s %s\n' "$1" "${TRIPLE[$1]}" "$2" "$(mib "$2")" "≤ ${SIZE_TARGET[$1]}" "$verdict"
}
x86=target/${TRIPLE[x86_64]}/release/knockd
[ -x "$x86" ] && size_row x86_64 "$(stat -c %s "$x86")"
for arch in "${built[@]}"; do size_row "$arch" "${R_SIZE[$arch]}"; done
for arch in "${skipped[@]}"; do printf '%-8s %-34s %12s\n' "$arch" "${TRIPLE[$arch]}" SKIPPED; done
echo
for arch in "${built[@]}"; do
    echo "$arch: idle RSS of the qemu-user process running knockd (qemu's RSS, not knockd's alone): ${R_RSS[$arch]} kB"
    echo "$arch: knock (${R_MS[$arch]} ms under emulation): ${R_KNOCK[$arch]}"
done
echo "test-cross: ${#built[@]} of $((${#built[@]} + ${#skipped[@]})) targets run under qemu in $((SECONDS - started)) s"
echo "test-cross: ${#built[@]} passed, 0 failed, ${#skipped[@]} skipped"
