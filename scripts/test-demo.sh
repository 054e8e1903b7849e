#!/usr/bin/env bash
# make test-demo: `make demo` on a bare Debian machine, the newcomer's first command.
#
# The promise (README, "Development: two commands"): on a Debian machine with rustup and
# nothing else, `make demo` installs what it lacks, by the same scripts/setup.sh as `make test`,
# and runs. This machine has everything already, so the test runs `make demo` in a container
# that has neither curl nor a C compiler:
#   - the minimal Debian bookworm tree of make test-systemd (debootstrap --variant=minbase,
#     built once into target/systemd/bookworm and shared; scripts/lib.sh, debian_tree), run
#     with systemd-nspawn --volatile=overlay: every write goes to a tmpfs over the cached tree,
#     so each run starts again without curl, make or a C compiler and the cache stays clean;
#   - no boot: one command (--pipe) in the container, which shares the host's network (apt
#     reaches the host's Debian mirror; the demo talks to itself on this machine's addresses);
#   - what a newcomer has: the repository as committed (git archive of HEAD, or of the working
#     tree's tracked files when they differ: git stash create; never the host's target/) in
#     /root/knockd, the host's rustup toolchain (RUSTUP_HOME and CARGO_HOME/bin bound read-only,
#     CARGO_HOME/registry under a throwaway overlay so that cargo can write to it), and make,
#     which minbase lacks: the test installs it with apt, alone, and says so;
#   - cargo works offline from the host's registry cache (CARGO_NET_OFFLINE=true), and builds
#     into a CARGO_TARGET_DIR of the container's own (/root/knockd-target), so ring's C code is
#     compiled by the compiler that setup.sh installed there. Offline, the test
#     does not depend on reaching crates.io, so the newcomer's crate download itself is not
#     exercised (that setup.sh installed the CA certificates cargo needs for it is checked);
# In the container it checks that curl, cc, gcc and clang are absent (fails loudly otherwise:
# the test would prove nothing), runs `make demo`, requires exit 0, then checks that curl, a C
# compiler and the CA certificates are now there and that ring was built in the container. On
# the host it checks the demo's own lines: the Referer knock logged and its rule in the
# firewall after the knock, the secure knock granted (when this machine has a non-loopback
# address), and "Done in".
#
# KNOCKD_TEST_DEMO_REV=REV tests the scripts of another revision (e.g. main) instead of the
# working tree. Needs root (debootstrap, systemd-nspawn); skipped with a message otherwise.
# Exit status: 0 when every check passed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
log() { printf 'test-demo: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}
if [ "$(id -u)" -ne 0 ]; then
    log "skipped: must run as root (debootstrap, systemd-nspawn, apt in the container)"
    exit 0
fi
t_start=$SECONDS
scripts/setup.sh systemd

CACHE=$ROOT/target/systemd/bookworm
RUSTUP_DIR=$(rustup show home)
CARGO_DIR=${CARGO_HOME:-$HOME/.cargo}
[ -x "$CARGO_DIR/bin/cargo" ] || die "no cargo in $CARGO_DIR/bin (set CARGO_HOME)"
[ -d "$CARGO_DIR/registry" ] || die "no registry cache in $CARGO_DIR/registry: run a build on the host first (the container builds offline)"

# On disk, not in memory: the repository copy, the container's target directory, the logs.
TMP=$(mktemp -d /var/tmp/knockd-test-demo.XXXXXX)
cleanup() {
    local rc=$?
    set +e
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the cached Debian tree (shared with make test-systemd) ---------------------------------
t0=$SECONDS
debian_tree "$CACHE" "$TMP/debootstrap.log" || die "cannot build the container's Debian tree"
t_tree=$((SECONDS - t0))

# --- the repository as a newcomer clones it ------------------------------------------------
rev=${KNOCKD_TEST_DEMO_REV:-}
if [ -z "$rev" ]; then
    # The working tree's tracked files (uncommitted edits included), or HEAD when clean.
    rev=$(git stash create)
    rev=${rev:-HEAD}
    what="the working tree's tracked files ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ', with uncommitted changes'))"
else
    what="revision $rev ($(git rev-parse --short "$rev"))"
fi
mkdir -p "$TMP/knockd" "$TMP/target" "$TMP/out"
git archive "$rev" | tar -x -C "$TMP/knockd"
log "repository: $what, $(find "$TMP/knockd" -type f | wc -l) files"

# --- what runs in the container -------------------------------------------------------------
cat >"$TMP/out/inner.sh" <<'EOF'
set -uo pipefail
say() { printf 'test-demo[container]: %s\n' "$*" >&2; }
has() { command -v "$1" >/dev/null 2>&1; }
compilers() { # every C compiler on PATH
    local c
    for c in cc gcc clang c89 c99 tcc; do has "$c" && printf '%s ' "$(command -v "$c")"; done
    compgen -c | grep -E '^(gcc|clang)-[0-9]+$' | sort -u | tr '\n' ' '
}
bare() { # fails loudly when curl or a C compiler is there
    local found
    found="$(has curl && command -v curl) $(compilers)"
    if [ -n "${found// /}" ]; then
        say "FAIL: this machine is not bare: $found"
        exit 3
    fi
}
bare
say "bare: no curl, cc, gcc, clang$([ -e /etc/ssl/certs/ca-certificates.crt ] || echo ', no CA certificates') ($(. /etc/os-release && echo "$PRETTY_NAME"), rustup $(rustup --version 2>/dev/null | head -n 1 | cut -d' ' -f2), $(cargo --version))"
if ! has make; then
    say "make is missing (minbase has none): apt-get install make, alone, as a newcomer would"
    t=$SECONDS
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make >/dev/null || {
        say "FAIL: apt-get install make"
        exit 4
    }
    say "make installed in $((SECONDS - t)) s: $(make --version | head -n 1)"
    bare
fi

cd /root/knockd
say "make demo"
t=$SECONDS
make demo 2>&1 | tee /root/test-demo/demo.log
rc=${PIPESTATUS[0]}
echo "$((SECONDS - t))" >/root/test-demo/demo.seconds
echo "$rc" >/root/test-demo/demo.rc
say "make demo exited $rc after $((SECONDS - t)) s"
{
    echo "curl=$(command -v curl)"
    echo "compilers=$(compilers)"
    echo "cc=$(cc --version 2>/dev/null | head -n 1)"
    echo "cacert=$(ls /etc/ssl/certs/ca-certificates.crt 2>/dev/null)"
    echo "ring=$(find "$CARGO_TARGET_DIR" -path '*/build/ring-*/out/*.a' -o -path '*/build/ring-*/out/*.o' 2>/dev/null | head -n 1)"
} >/root/test-demo/after.env
exit 0
EOF

# --- run ------------------------------------------------------------------------------------
log "running make demo in a bare container ($CACHE under --volatile=overlay; rustup $RUSTUP_DIR, cargo $CARGO_DIR, offline)"
t0=$SECONDS
nspawn_rc=0
timeout 2400 systemd-nspawn --quiet --register=no --keep-unit --pipe --volatile=overlay \
    --machine=knockd-demo-$$ -D "$CACHE" \
    --bind="$TMP/knockd:/root/knockd" --bind="$TMP/target:/root/knockd-target" \
    --bind="$TMP/out:/root/test-demo" \
    --bind-ro="$RUSTUP_DIR:/root/.rustup" --bind-ro="$CARGO_DIR/bin:/root/.cargo/bin" \
    --overlay="$CARGO_DIR/registry::/root/.cargo/registry" \
    --setenv=HOME=/root --setenv=LANG=C.UTF-8 \
    --setenv=PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --setenv=RUSTUP_HOME=/root/.rustup --setenv=CARGO_HOME=/root/.cargo \
    --setenv=CARGO_NET_OFFLINE=true --setenv=CARGO_TARGET_DIR=/root/knockd-target \
    /bin/bash /root/test-demo/inner.sh </dev/null 2> >(grep -v '^Attempted to remove disk file system' >&2) ||
    nspawn_rc=$?
t_run=$((SECONDS - t0))
log "the container ran ${t_run} s (exit $nspawn_rc)"

# --- checks ---------------------------------------------------------------------------------
[ "$nspawn_rc" -eq 0 ] || die "the container failed (exit $nspawn_rc; 3: not bare, 4: make could not be installed, 124: timed out)"
[ -f "$TMP/out/demo.rc" ] || die "make demo did not run"
demo_rc=$(cat "$TMP/out/demo.rc")
demo_s=$(cat "$TMP/out/demo.seconds")
out=$TMP/out/demo.log
if [ "$demo_rc" -eq 0 ]; then ok "make demo exited 0 on a machine without curl or a C compiler (${demo_s} s)"; else
    fail "make demo exited $demo_rc on a machine without curl or a C compiler; its last lines:"
    tail -n 25 "$out" | sed 's/^/    /'
fi
# The setup that ran: the one of make test (scripts/setup.sh), with demo's python3 on top.
if line=$(grep -m1 '^setup: installing' "$out"); then ok "setup installed what was missing: ${line#setup: installing }"; else
    fail "no 'setup: installing' line in make demo's output"
fi
after_env() { sed -n "s/^$1=//p" "$TMP/out/after.env"; }
curl=$(after_env curl) compilers=$(after_env compilers) cc=$(after_env cc) ring=$(after_env ring)
cacert=$(after_env cacert)
if [ -n "$curl" ] && [ -n "${compilers// /}" ] && [ -n "$cacert" ]; then ok "now present: $curl, $compilers($cc), $cacert"; else
    fail "after make demo: curl '${curl}', C compilers '${compilers}', CA certificates '${cacert}'"
fi
if [ -n "$ring" ]; then ok "ring's C code was compiled in the container: ${ring#/root/knockd-target/}"; else
    fail "no ring build output in the container's target directory"
fi
# The demo's own lines.
if line=$(grep -m1 'knock addr=203\.0\.113\.7 ' "$out") && grep -q 'result=ok' <<<"$line"; then ok "the Referer knock: ${line#"${line%%knock addr=*}"}"; else
    fail "no 'knock addr=203.0.113.7 ... result=ok' line in the demo's output: $(grep -m1 'knock addr=' "$out" || true)"
fi
after=$(awk '/^== The firewall after the knock/ { p = 1; next } /^== / { p = 0 } p' "$out")
if grep -q '203\.0\.113\.7' <<<"$after"; then ok "the firewall after the knock: $(grep -m1 '203\.0\.113\.7' <<<"$after" | tr -s ' ')"; else
    fail "the firewall after the knock has no rule for 203.0.113.7: $(head -c 600 <<<"$after")"
fi
if grep -q '^== Secure knock: run the printed curl line' "$out"; then
    if grep -q 'no non-loopback address to knock from' "$out"; then
        log "the secure knock was skipped by the demo (no non-loopback address)"
    elif line=$(grep -m1 'label=demo-phone result=' "$out") && grep -q 'result=ok' <<<"$line"; then
        ok "the secure knock: ${line#"${line%%label=*}"}"
    else
        fail "the secure knock was not granted: $(grep -m1 'label=demo-phone' "$out" || echo 'no log line')"
    fi
else
    fail "the demo did not reach the secure knock"
fi
if line=$(grep -m1 '^== Done in' "$out"); then ok "the demo finished: ${line#== }"; else fail "no 'Done in' line: the demo did not finish"; fi

log "timings: Debian tree ${t_tree} s$([ "$t_tree" -gt 0 ] && echo ' (built)' || echo ' (cached)'), container ${t_run} s (make demo ${demo_s} s), total $((SECONDS - t_start)) s"
echo "test-demo: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
