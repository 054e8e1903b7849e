# `make demo`: knockd against lighthouse-sim on loopback, one knock, the firewall before/after.
# `make bench`: the benchmark suite; writes bench/results.md (copied into the README by hand).
# Both scripts build what they need themselves (release; the benchmark measures the static
# x86_64 musl binary). On a shared machine: make bench CARGO_BUILD_JOBS=1

.PHONY: demo bench

# Like every other target, `demo` runs the setup first (demo.sh adds python3 on top).
demo: setup
	scripts/demo.sh

bench:
	scripts/bench.sh
