# Shell helpers shared by demo.sh and bench.sh (sourced, not run).

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
