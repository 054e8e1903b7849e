# shellcheck shell=bash
# Shell helpers shared by demo.sh, bench.sh, test-cross.sh, test-systemd.sh and test-demo.sh
# (sourced, not run).

# wait_for FILE PATTERN SECONDS: until PATTERN appears in FILE (a process's log); on time-out
# print the file and fail.
wait_for() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "${0##*/}: timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    return 1
}

# track_processes NAME: makes the temporary folder $TMP and the list $PIDS; every process whose
# pid is added to PIDS is killed on exit, the folder removed, and on failure the last lines of
# each $TMP/*.log are shown. The caller defines log().
track_processes() {
    TMP=$(mktemp -d -t "knockd-$1.XXXXXX")
    PIDS=()
    trap _stop_tracked EXIT
    trap 'exit 130' INT TERM
}

_stop_tracked() {
    local rc=$? pid f
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if [ "$rc" -ne 0 ]; then
        log "failed (status $rc); the last lines of each log:"
        for f in "$TMP"/*.log; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -n 8 "$f" >&2; }
        done
    fi
    rm -rf "$TMP"
    exit "$rc"
}

# debian_mirror: the host's own Debian mirror (the first .../debian URI of its apt sources), or
# KNOCKD_DEBIAN_MIRROR; fails when there is none.
debian_mirror() {
    [ -n "${KNOCKD_DEBIAN_MIRROR:-}" ] && { echo "$KNOCKD_DEBIAN_MIRROR"; return; }
    # deb822 sources (URIs: ...) first, then one-line sources (deb URI suite ...).
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\([^ ]*\/debian\)\/*$/\1/p' | head -n 1 | grep . && return
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\/debian\)\/* .*/\2/p' | head -n 1 | grep . && return
    echo "${0##*/}: no Debian mirror in the apt sources: set KNOCKD_DEBIAN_MIRROR" >&2
    return 1
}

# debian_tree DIR LOGFILE: a minimal Debian bookworm (debootstrap --variant=minbase, plus
# systemd, systemd-sysv and dbus) in DIR, built once from debian_mirror and reused while
# DIR/.complete exists (rm -rf DIR to rebuild it). make test-systemd and make test-demo share
# it (target/systemd/bookworm) and only ever run it under systemd-nspawn --volatile=overlay,
# so nothing is ever installed into it: it stays without curl, make or a C compiler.
# debootstrap's output goes to LOGFILE (its last lines to stderr when it fails). Needs root
# and debootstrap (scripts/setup.sh systemd). The caller defines log().
debian_tree() {
    local dir=$1 logfile=$2 mirror t0=$SECONDS
    [ -f "$dir/.complete" ] && return 0
    mirror=$(debian_mirror) || return 1
    log "building the container's Debian tree in $dir from $mirror (once; reused after)"
    rm -rf "$dir.tmp"
    mkdir -p "$(dirname "$dir")"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$dir.tmp" "$mirror" \
        >"$logfile" 2>&1 || {
        tail -n 20 "$logfile" >&2
        log "debootstrap failed"
        return 1
    }
    # No getty on the container's console: --console=passive gives it none anyway.
    rm -f "$dir.tmp/etc/systemd/system/getty.target.wants/"*
    echo knockd-test >"$dir.tmp/etc/hostname"
    date -u +%FT%TZ >"$dir.tmp/.complete"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    log "Debian tree ready in $((SECONDS - t0)) s"
}

# ok / fail TEXT: one check's result line, counted in passed / failed for the script's summary
# (test-contrib.sh, test-systemd.sh, test-demo.sh). Sourcing again keeps the counts.
: "${passed:=0}" "${failed:=0}"
ok() {
    passed=$((passed + 1))
    printf 'ok   %s\n' "$*"
}
fail() {
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$*"
}
