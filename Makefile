# knockd build entry points. `make` builds the static x86_64 binary; `make test` runs everything.
# Every target first runs scripts/setup.sh, which installs what a fresh Debian machine lacks and
# returns at once when nothing is missing.

CARGO ?= cargo
X86   := x86_64-unknown-linux-musl
ARM   := aarch64-unknown-linux-musl
BIN_X86 := target/$(X86)/release/knockd
BIN_ARM := target/$(ARM)/release/knockd

# ring compiles C and assembly for the target, and cc-rs looks for `<arch>-linux-musl-gcc`,
# which Debian does not ship. clang targets any architecture, and llvm-ar indexes archives of
# any architecture (GNU ar here cannot for aarch64). For aarch64, rust-lld (shipped with rustup)
# links against the target's self-contained musl objects, so no cross binutils or sysroot is
# needed.
X86_ENV := \
	CC_x86_64_unknown_linux_musl=clang \
	AR_x86_64_unknown_linux_musl=llvm-ar \
	CFLAGS_x86_64_unknown_linux_musl=--target=x86_64-unknown-linux-musl
AARCH64_ENV := \
	CC_aarch64_unknown_linux_musl=clang \
	AR_aarch64_unknown_linux_musl=llvm-ar \
	CFLAGS_aarch64_unknown_linux_musl=--target=aarch64-unknown-linux-musl \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld

.PHONY: all release aarch64 dist test lint setup clean

all: release

setup:
	@scripts/setup.sh

release: setup
	$(X86_ENV) $(CARGO) build --release --target $(X86) --bin knockd

aarch64: setup
	$(AARCH64_ENV) $(CARGO) build --release --target $(ARM) --bin knockd

# The release profile already strips (Cargo.toml: strip = true); `file` proves it.
dist: release aarch64
	mkdir -p dist
	cp $(BIN_X86) dist/knockd-x86_64-linux-musl
	cp $(BIN_ARM) dist/knockd-aarch64-linux-musl
	@for f in dist/knockd-x86_64-linux-musl dist/knockd-aarch64-linux-musl; do \
		out=$$(file -b $$f); echo "$$f: $$out"; \
		case "$$out" in *"not stripped"*) echo "$$f is not stripped" >&2; exit 1;; esac; \
		case "$$out" in *"statically linked"*|*"static-pie linked"*) ;; \
			*) echo "$$f is not statically linked" >&2; exit 1;; esac; \
	done
	cd dist && sha256sum knockd-x86_64-linux-musl knockd-aarch64-linux-musl > SHA256SUMS
	@cat dist/SHA256SUMS

# The whole suite of both workspace members (knockd and sim/, the Lighthouse simulator): unit,
# integration (these spawn curl, wget and busybox), examples, benches, doc tests.
# KNOCKD_TEST_REQUIRE_TOOLS makes the tests that run the printed client lines fail, not skip,
# when a tool is missing (setup installs them all).
test: setup
	KNOCKD_TEST_REQUIRE_TOOLS=1 $(CARGO) test --workspace --all-targets
	KNOCKD_TEST_REQUIRE_TOOLS=1 $(CARGO) test --workspace --doc

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf dist

# More targets (demo, bench, fuzz) live in fragments, one per concern.
-include mk/*.mk
