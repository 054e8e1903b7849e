# Fuzzing with cargo-fuzz (libFuzzer): `make fuzz` runs each target for FUZZ_SECONDS (default 60).
# The fuzz crate (fuzz/) has its own workspace, so `make test` / `cargo test` never build it.
FUZZ_SECONDS ?= 60

.PHONY: fuzz
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)
