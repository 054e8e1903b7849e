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
# ring's C code without unwind tables either (nothing unwinds; see .cargo/config.toml, which
# also sets the linker and link flags of this target).
X86_ENV := \
	CC_x86_64_unknown_linux_musl=clang \
	AR_x86_64_unknown_linux_musl=llvm-ar \
	CFLAGS_x86_64_unknown_linux_musl="--target=x86_64-unknown-linux-musl -fno-asynchronous-unwind-tables"
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

# armv7 (most routers): tier 2. Two routes, the first that `scripts/setup.sh armv7` can prepare:
# 1. stable: the same recipe as aarch64, with rustup's prebuilt standard library for the target;
# 2. nightly, where rustup cannot download that library (our build machines: HTTP 404 for
#    rust-std-1.95.0-armv7-unknown-linux-musleabihf): the nightly toolchain compiles std for
#    the target from rust-src (-Zbuild-std; the release profile's panic = "abort" needs
#    panic_abort; llvm-libunwind makes std link our libunwind.a). rust-lld links, with
#    link-self-contained=no, against Debian's armhf musl unpacked by setup.sh into
#    target/armv7-nightly/sysroot (crt1.o, crti.o before everything, crtn.o last; libc.a) and
#    target/armv7-nightly/libunwind/libunwind.a (built by setup.sh from rust-src's LLVM sources).
# The binary lands in target/armv7-unknown-linux-musleabihf/release/knockd either way.
ARMV7 := armv7-unknown-linux-musleabihf
BIN_ARMV7 := target/$(ARMV7)/release/knockd
ARMV7_ENV := \
	CC_armv7_unknown_linux_musleabihf=clang \
	AR_armv7_unknown_linux_musleabihf=llvm-ar \
	CFLAGS_armv7_unknown_linux_musleabihf=--target=armv7-unknown-linux-musleabihf \
	CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_LINKER=rust-lld
ARMV7_NIGHTLY ?= nightly
ARMV7_LIB := $(CURDIR)/target/armv7-nightly/sysroot/usr/lib/arm-linux-musleabihf
ARMV7_UNWIND := $(CURDIR)/target/armv7-nightly/libunwind
ARMV7_NIGHTLY_ENV := $(ARMV7_ENV) \
	CARGO_TARGET_ARMV7_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS="-C link-self-contained=no \
		-L native=$(ARMV7_LIB) -L native=$(ARMV7_UNWIND) \
		-Z pre-link-args=$(ARMV7_LIB)/crt1.o -Z pre-link-args=$(ARMV7_LIB)/crti.o \
		-C link-arg=$(ARMV7_LIB)/crtn.o"
ARMV7_NIGHTLY_FLAGS := -Zbuild-std=std,panic_abort -Zbuild-std-features=llvm-libunwind

.PHONY: armv7
armv7: setup
	@ARMV7_NIGHTLY=$(ARMV7_NIGHTLY) scripts/setup.sh armv7
	@if rustup target list --installed 2>/dev/null | grep -qx '$(ARMV7)'; then \
		echo "armv7: stable toolchain, rustup's standard library for $(ARMV7)"; \
		set -x; $(ARMV7_ENV) $(CARGO) build --release --target $(ARMV7) --bin knockd; \
	else \
		echo "armv7: $(ARMV7_NIGHTLY) toolchain, -Zbuild-std against target/armv7-nightly (Debian's armhf musl, libunwind)"; \
		set -x; $(ARMV7_NIGHTLY_ENV) $(CARGO) +$(ARMV7_NIGHTLY) build $(ARMV7_NIGHTLY_FLAGS) \
			--release --target $(ARMV7) --bin knockd; \
	fi

# MIPS routers: mipsel (MT7621, MT76x8: OpenWrt's mipsel_24kc) and mips (ath79, big-endian;
# OpenWrt's mips_24kc). Both tier 3: rustup ships no standard library for them, so the nightly
# toolchain compiles std from rust-src (-Zbuild-std; panic_abort for the release profile's
# panic = "abort"), and zig is the C compiler (ring) and the linker: cargo-zigbuild runs cargo
# with zig cc wrappers, and zig brings the target's musl start files, libc.a and libunwind,
# built from its own sources for mips32r2 soft-float (big-endian mips is not a Debian
# architecture, so Debian's musl could not serve it). `scripts/setup.sh mips` installs the
# nightly toolchain with rust-src, and ziglang and cargo-zigbuild from PyPI (pinned) into
# target/mips-zig; nothing system-wide. 32-bit MIPS has no 64-bit atomics: portable-atomic's
# fallback (Cargo.toml). The binaries land in target/<triple>/release/knockd.
# MIPS_RUSTFLAGS: a static executable, not a static PIE (-C relocation-model=static): the
# static-pie that zig links for MIPS crashes under qemu soon after start (SIGSEGV writing to its
# own first page, which looks like a relocation left unapplied), and MIPS position-
# independent code, which loads every call and global through the GOT, is 13% larger.
# -Zlocation-detail=none drops file:line:column from panic messages (see README, Router builds).
MIPSEL := mipsel-unknown-linux-musl
MIPSEB := mips-unknown-linux-musl
BIN_MIPSEL := target/$(MIPSEL)/release/knockd
BIN_MIPSEB := target/$(MIPSEB)/release/knockd
MIPS_NIGHTLY ?= $(ARMV7_NIGHTLY)
MIPS_ZIG := $(CURDIR)/target/mips-zig
MIPS_RUSTFLAGS ?= -C relocation-model=static -Zlocation-detail=none
MIPS_ENV = PATH="$(MIPS_ZIG)/py/bin:$$PATH" \
	CARGO_ZIGBUILD_ZIG_PATH=$(MIPS_ZIG)/py/ziglang/zig \
	CARGO_ZIGBUILD_CACHE_DIR=$(MIPS_ZIG)/cache \
	ZIG_GLOBAL_CACHE_DIR=$(MIPS_ZIG)/zig-cache \
	ZIG_LOCAL_CACHE_DIR=$(MIPS_ZIG)/zig-cache
MIPS_FLAGS := -Zbuild-std=std,panic_abort

# LLVM's MIPS back end writes a .pdr section (procedure descriptors, for old debuggers) of
# 12 bytes per function, 179 KB here, which nothing loads and strip keeps: llvm-objcopy drops it.
.PHONY: mipsel mips
mipsel mips: setup
	@MIPS_NIGHTLY=$(MIPS_NIGHTLY) scripts/setup.sh mips
	$(MIPS_ENV) CARGO_TARGET_$(call MIPS_UPPER,$@)_RUSTFLAGS="$(MIPS_RUSTFLAGS)" \
		$(CARGO) +$(MIPS_NIGHTLY) zigbuild $(MIPS_FLAGS) --release --target $(call MIPS_TRIPLE,$@) --bin knockd
	llvm-objcopy --remove-section=.pdr target/$(call MIPS_TRIPLE,$@)/release/knockd
MIPS_TRIPLE = $(if $(filter mips,$(1)),$(MIPSEB),$(MIPSEL))
MIPS_UPPER = $(shell echo '$(call MIPS_TRIPLE,$(1))' | tr 'a-z-' 'A-Z_')

# `make dist`: per target a tarball dist/knockd-VERSION-TRIPLE.tar.gz (the binary, contrib/, LICENSE,
# .env.sample, README.md), the bare binaries, and dist/SHA256SUMS over all of them.
# scripts/dist.sh checks that every binary is static and stripped (the release profile strips:
# Cargo.toml, strip = true). DIST_TARGETS picks the targets, e.g. DIST_TARGETS="x86_64 aarch64".
DIST_TARGETS ?= x86_64 aarch64 armv7 mipsel mips
DIST_MAKE_x86_64 := release
DIST_MAKE_aarch64 := aarch64
DIST_MAKE_armv7 := armv7
DIST_MAKE_mipsel := mipsel
DIST_MAKE_mips := mips
DIST_TRIPLE_x86_64 := $(X86)
DIST_TRIPLE_aarch64 := $(ARM)
DIST_TRIPLE_armv7 := $(ARMV7)
DIST_TRIPLE_mipsel := $(MIPSEL)
DIST_TRIPLE_mips := $(MIPSEB)
dist: $(foreach t,$(DIST_TARGETS),$(DIST_MAKE_$(t)))
	scripts/dist.sh $(foreach t,$(DIST_TARGETS),$(DIST_TRIPLE_$(t)))

# The whole suite of both workspace members (knockd and sim/, the Lighthouse simulator): unit,
# integration (these spawn curl, wget and busybox), examples, benches, doc tests.
# cargo-nextest runs every test in a process of its own, 8 at a time (.config/nextest.toml: the
# integration tests mostly wait on the processes they start; the hostile-client cases one at a
# time; no retries). nextest does not run doc tests, so `cargo test --doc` follows: there are
# none today (it runs 0 tests in ~2 s), and it is kept so that a doc example added later runs.
# KNOCKD_TEST_REQUIRE_TOOLS makes the tests that run the printed client lines fail, not skip,
# when a tool is missing (setup installs them all). `scripts/setup.sh test` adds cargo-nextest
# (built from crates.io when missing; no other target needs it).
test: setup
	@scripts/setup.sh test
	KNOCKD_TEST_REQUIRE_TOOLS=1 $(CARGO) nextest run --workspace --all-targets
	KNOCKD_TEST_REQUIRE_TOOLS=1 $(CARGO) test --workspace --doc

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf dist

# More targets (demo, bench, fuzz) live in fragments, one per concern.
-include mk/*.mk
