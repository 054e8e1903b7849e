# `make demo`: knockd against lighthouse-sim on loopback, one knock, the firewall before/after.
# `make test-demo`: `make demo` in a bare Debian container (no curl, no C compiler), as a
#   newcomer runs it; needs root (scripts/test-demo.sh says what and how).
# `make bench`: the benchmark suite; writes bench/results.md (copied into the README by hand).
# Both scripts build what they need themselves (release; the benchmark measures the static
# x86_64 musl binary). On a shared machine: make bench CARGO_BUILD_JOBS=1

.PHONY: demo test-demo bench

# Like every other target, `demo` runs the setup first (demo.sh adds python3 on top).
demo: setup
	scripts/demo.sh

test-demo:
	scripts/test-demo.sh

bench:
	scripts/bench.sh
