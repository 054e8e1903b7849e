#!/usr/bin/env bash
# make test-cross: the cross-built router/ARM/MIPS binaries, run under qemu-user on this machine.
# For each target (aarch64, armv7, mipsel, mips): build the static release binary, then under qemu
#   - `knockd --version` names the target;
#   - `knockd --check-config` accepts a generated .env (and masks its secret);
#   - one real knock end to end: lighthouse-sim runs natively on loopback, knockd emulated in
#     front of it, curl knocks with the Referer secret; the success body, knockd's grant log
#     line, the simulator's firewall (/__state) and `knockd --list` (emulated, a real signed
#     DescribeFirewallRules) must all show the rule;
#   - one client run: `knockd --knock` (emulated) with a key against a native x86_64 knockd
#     serving key knocks from a clients file, through a loopback proxy that names the client in
#     X-Forwarded-For (knockd never opens a loopback address): "knock: ok", exit 0, and the
#     native knockd's grant line for the label;
# and report the binary's size against its target and qemu's RSS with knockd idle.
#
# armv7 is built by whichever route scripts/setup.sh armv7 can prepare (the stable toolchain's
# prebuilt standard library, else nightly -Zbuild-std against Debian's armhf musl; see the
# Makefile). mipsel and mips are built by nightly -Zbuild-std with zig (scripts/setup.sh mips).
# Only when a route cannot be prepared is the target reported as SKIPPED, not failed, unless
# CROSS_STRICT=1. CROSS_TARGETS picks targets
# (default "aarch64 armv7 mipsel mips"). Every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
started=$SECONDS
log() { printf 'test-cross: %s\n' "$*" >&2; }

"$ROOT/scripts/setup.sh" cross
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

read -r -a targets <<<"${CROSS_TARGETS:-aarch64 armv7 mipsel mips}"
declare -A TRIPLE=([x86_64]=x86_64-unknown-linux-musl [aarch64]=aarch64-unknown-linux-musl
    [armv7]=armv7-unknown-linux-musleabihf [mipsel]=mipsel-unknown-linux-musl
    [mips]=mips-unknown-linux-musl)
declare -A QEMU=([aarch64]=qemu-aarch64-static [armv7]=qemu-arm-static [mipsel]=qemu-mipsel-static
    [mips]=qemu-mips-static)
# Size targets, in MiB (the README's "MB").
declare -A SIZE_TARGET=([x86_64]=2.0 [aarch64]=1.7 [armv7]=1.6 [mipsel]=2.0 [mips]=2.0)

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
# The native knockd the emulated clients knock on.
t0=$SECONDS
make --no-print-directory release >"$TMP/build-x86_64.out" 2>&1 || {
    cat "$TMP/build-x86_64.out" >&2
    die "make release failed"
}
NATIVE=$ROOT/target/${TRIPLE[x86_64]}/release/knockd
log "native knockd (x86_64) built in $((SECONDS - t0)) s"

built=() skipped=()
for arch in "${targets[@]}"; do
    [ -n "${QEMU[$arch]:-}" ] || die "unknown target '$arch' (aarch64, armv7, mipsel, mips)"
    if [ "$arch" = armv7 ] && ! "$ROOT/scripts/setup.sh" armv7 >"$TMP/setup-armv7.out" 2>&1; then
        reason=$(grep -v '^setup: rustup could not' "$TMP/setup-armv7.out" | tail -n 1)
        if [ "${CROSS_STRICT:-0}" = 1 ]; then die "armv7: neither the stable nor the nightly route can be prepared: $reason"; fi
        log "SKIPPED armv7: neither the stable nor the nightly route can be prepared for ${TRIPLE[armv7]}: $reason"
        skipped+=(armv7)
        continue
    fi
    if [[ "$arch" == mips* ]] && ! "$ROOT/scripts/setup.sh" mips >"$TMP/setup-mips.out" 2>&1; then
        reason=$(grep -v '^setup: the MIPS route' "$TMP/setup-mips.out" | tail -n 1)
        if [ "${CROSS_STRICT:-0}" = 1 ]; then die "$arch: the MIPS route cannot be prepared: $reason"; fi
        log "SKIPPED $arch: the MIPS route (nightly, rust-src, zig) cannot be prepared: $reason"
        skipped+=("$arch")
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
declare -A R_SIZE R_KNOCK R_RSS R_MS R_CLIENT
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

    client_run "$arch" "$n" "$sim_url" "$qemu" "$bin"
    stop "$sim_pid"
    log "$arch: done in $((SECONDS - t0)) s"
}

# client_run ARCH N SIM_URL QEMU BIN: the emulated `knockd --knock` against a native knockd with
# a clients file, through a loopback proxy adding X-Forwarded-For (what an HTTPS reverse proxy
# in front of knockd does; METHOD_TO_GET_CLIENT_IP=2 believes it from loopback).
client_run() {
    local arch=$1 n=$2 sim_url=$3 qemu=$4 bin=$5 dir=$TMP/$1.client port pport addr label key
    local n_pid p_pid out rc=0 line
    mkdir -p "$dir"
    port=$(free_port)
    addr=203.0.113.$((100 + n))
    label=router-$arch
    key=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))')
    sed -e "s/^BIND_PORT=.*/BIND_PORT='$port'/" "$TMP/$arch.env" >"$dir/knockd.env"
    printf '%s %s ttl=1h\n' "$label" "$key" >"$dir/knockd.clients"
    printf '%s\n' "$key" >"$dir/$label.key"
    chmod 600 "$dir/knockd.env" "$dir/knockd.clients" "$dir/$label.key"
    "$NATIVE" --config "$dir/knockd.env" </dev/null >/dev/null 2>"$dir/knockd.log" &
    n_pid=$!
    PIDS+=("$n_pid")
    wait_for "$dir/knockd.log" 'listening on' 10

    python3 "$ROOT/scripts/xff-proxy.py" "$port" "$addr" >"$dir/proxy.out" 2>"$dir/proxy.log" &
    p_pid=$!
    PIDS+=("$p_pid")
    wait_for "$dir/proxy.out" 'proxy listening on' 10
    pport=$(sed -n 's/^proxy listening on //p' "$dir/proxy.out")

    out=$("$qemu" "$bin" --knock "http://127.0.0.1:$pport/favico.ico" --label "$label" \
        --key-file "$dir/$label.key" --expect "$SUCCESS" 2>"$dir/client.err") || rc=$?
    if [ "$rc" -ne 0 ] || [ "$out" != 'knock: ok' ]; then
        die "$arch: knockd --knock exited $rc, printed '$out': $(cat "$dir/client.err")"
    fi
    wait_for "$dir/knockd.log" "knock addr=$addr " 10
    line=$(grep "knock addr=$addr " "$dir/knockd.log")
    grep -q 'result=ok' <<<"$line" || die "$arch: the native knockd's log line is not a grant: $line"
    grep -q "$label" <<<"$line" || die "$arch: the native knockd's grant does not name $label: $line"
    R_CLIENT[$arch]=$line
    log "$arch: knockd --knock (emulated) against the native knockd: $out"
    stop "$p_pid"
    stop "$n_pid"
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
    echo "$arch: knockd --knock (emulated) granted by the native knockd: ${R_CLIENT[$arch]}"
done
echo "test-cross: ${#built[@]} of $((${#built[@]} + ${#skipped[@]})) targets run under qemu in $((SECONDS - started)) s"
echo "test-cross: ${#built[@]} passed, 0 failed, ${#skipped[@]} skipped"
