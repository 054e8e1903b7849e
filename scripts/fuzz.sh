#!/bin/sh
# Runs every cargo-fuzz (libFuzzer) target for SECONDS (default 60) each, one after another.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Seeds live in fuzz/corpus/<target>/ (committed, read only here); what libFuzzer learns goes to
# fuzz/target/corpus/<target>/ and crashes to fuzz/artifacts/<target>/. A summary line per
# target gives its execution count. Exit status 1 if any target crashed.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-"head_reader config rule_desc client_ip"}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi
# cargo-fuzz passes -Z flags: a nightly toolchain if there is one, else stable in bootstrap mode.
if rustup run nightly rustc --version >/dev/null 2>&1; then
    FUZZ="cargo +nightly fuzz"
else
    export RUSTC_BOOTSTRAP=1
    FUZZ="cargo fuzz"
fi

mkdir -p fuzz/target/logs
status=0
summary=""
for t in $TARGETS; do
    mkdir -p "fuzz/target/corpus/$t" "fuzz/artifacts/$t"
    max_len=4096
    [ "$t" = head_reader ] && max_len=20000
    log="fuzz/target/logs/$t.log"
    echo "== fuzz $t for ${SECONDS_EACH}s (log: $log)"
    if $FUZZ run --fuzz-dir fuzz "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len="$max_len" -timeout=10 -rss_limit_mb=1024 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
        tail -n 40 "$log"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    line="fuzz $t: $result, ${runs:-?} executions in ${SECONDS_EACH}s"
    echo "$line"
    summary="$summary$line
"
done
printf '\n%s' "$summary"
exit $status
