#!/bin/sh
# Mutation testing of the pure core with cargo-mutants, unit tests only (`cargo test --lib`):
# each mutant changes one operator or return value, and a test must fail for it to count as
# caught. Not part of CI (it takes minutes); the score is recorded in the README.
#   scripts/mutants.sh [GLOB...]     default: the rules, the knock decision, lockout, client address,
#                                    the key-knock decision
# Environment: MUTANTS_JOBS (default 1: the machine is usually shared), MUTANTS_TIMEOUT (seconds
# per test run, default 30), MUTANTS_ARGS (more cargo-mutants arguments, e.g. --iterate to
# retest only what the last run missed). Exclusions of equivalent mutants: .cargo/mutants.toml.
# Results go to mutants.out/ (gitignored); mutants.out/summary.txt counts them per file.
# Exit status is cargo-mutants' own: 0 all caught, 2 some missed, 3 some timed out.
set -eu
cd "$(dirname "$0")/.."

# Installed here, not by scripts/setup.sh: only this target needs it, and CI must not pay for it.
command -v cargo-mutants >/dev/null 2>&1 || cargo install cargo-mutants --locked

if [ $# -eq 0 ]; then
    set -- 'src/rules/**/*.rs' \
        'src/knock/decide.rs' 'src/knock/decide/**/*.rs' \
        'src/knock/lockout.rs' 'src/knock/lockout/**/*.rs' \
        'src/knock/client_ip.rs' 'src/knock/client_ip/**/*.rs' \
        'src/knock/key_knock.rs' 'src/knock/key_knock/**/*.rs'
fi
files=""
for g in "$@"; do
    files="$files --file $g"
done

start=$(date +%s)
status=0
# The glob arguments must reach cargo-mutants unexpanded.
set -f
# shellcheck disable=SC2086
cargo mutants $files --jobs "${MUTANTS_JOBS:-1}" --timeout "${MUTANTS_TIMEOUT:-30}" \
    --build-timeout 600 --copy-target=true ${MUTANTS_ARGS:-} || status=$?
set +f
elapsed=$(($(date +%s) - start))

out=mutants.out
[ -d "$out" ] || exit "$status"
{
    echo "cargo-mutants on $(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), ${elapsed}s, --jobs ${MUTANTS_JOBS:-1}"
    for kind in caught missed timeout unviable; do
        [ -f "$out/$kind.txt" ] && sed "s/:.*//; s/\$/ $kind/" "$out/$kind.txt"
    done | awk '
        { n[$1, $2]++; t[$2]++; seen[$1] = 1 }
        function line(name, c, m, to, u,   v) {
            v = c + m + to
            printf "%-28s %7d %7d %8d %9d   %s\n", name, c, m, to, u,
                v ? sprintf("%.1f%%", 100 * c / v) : "-"
        }
        END {
            printf "%-28s %7s %7s %8s %9s   %s\n", "file", "caught", "missed", "timeout", "unviable", "score"
            k = 0
            for (f in seen) names[++k] = f
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
                if (names[j] < names[i]) { s = names[i]; names[i] = names[j]; names[j] = s }
            for (i = 1; i <= k; i++) {
                f = names[i]
                line(f, n[f, "caught"], n[f, "missed"], n[f, "timeout"], n[f, "unviable"])
            }
            line("total", t["caught"], t["missed"], t["timeout"], t["unviable"])
            print "score = caught / (caught + missed + timeout)"
        }'
    if [ -s "$out/missed.txt" ]; then
        echo
        echo "missed:"
        sed 's/^/  /' "$out/missed.txt"
    fi
    if [ -s "$out/timeout.txt" ]; then
        echo
        echo "timeout:"
        sed 's/^/  /' "$out/timeout.txt"
    fi
} >"$out/summary.txt"
cat "$out/summary.txt"
exit "$status"
