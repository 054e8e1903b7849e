# shellcheck shell=bash
# Shell helpers shared by demo.sh, bench.sh and test-cross.sh (sourced, not run).

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
