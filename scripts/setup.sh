#!/usr/bin/env bash
# Installs what building and testing knockd needs on a Debian machine that already has rustup:
# the two musl targets, rustfmt/clippy, gcc (cc: the host target's C code and linker), clang +
# lld (ring's C code for aarch64), curl, wget and busybox (integration tests run the client lines
# --add-client prints), file (CI's static-link check), and Debian's CA certificates (cargo
# verifies crates.io against them; a minimal Debian, such as a container image, has none).
# Idempotent; without anything missing it makes no network or apt call, so every make target
# can run it.
#
# Optional profiles add what one group of targets needs on top:
#   scripts/setup.sh test      cargo-nextest (make test's runner), built from crates.io when
#                              missing: minutes of compiling that make, make demo and the rest
#                              do not need
#   scripts/setup.sh contrib   systemd-analyze, shellcheck, dash, busybox, strace (make test-contrib)
#   scripts/setup.sh cross     qemu-user-static, busybox and python3 (make test-cross)
#   scripts/setup.sh systemd   debootstrap, systemd-nspawn (systemd-container), ip, python3
#                              and shellcheck (make test-systemd: a real systemd in a container)
#   scripts/setup.sh demo      python3 (make demo prints the simulator's firewall with it)
#   scripts/setup.sh armv7     what make armv7 needs: the armv7-unknown-linux-musleabihf rustup
#                              target for the stable toolchain or, when rustup cannot download
#                              it, the nightly route (see prepare_armv7_nightly below)
#   scripts/setup.sh mips      what make mipsel and make mips need: the nightly toolchain with
#                              rust-src, and zig with cargo-zigbuild from PyPI in target/mips-zig
#                              (see prepare_mips below)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARMV7=armv7-unknown-linux-musleabihf
# The nightly route's private files: Debian's armhf musl (start files, libc.a, headers) unpacked
# under sysroot/, and LLVM's libunwind built from the nightly's rust-src under libunwind/.
# Nothing here is installed system-wide. The Makefile's armv7 target reads the same paths.
ARMV7_DIR=$ROOT/target/armv7-nightly
ARMV7_NIGHTLY=${ARMV7_NIGHTLY:-nightly}
# MIPS (make mipsel, make mips): zig (the C compiler and linker, with musl and libunwind for
# the target) and cargo-zigbuild, installed by pip from PyPI into this private directory, at
# these versions (the ones the README's sizes were measured with).
MIPS_ZIG=$ROOT/target/mips-zig
MIPS_NIGHTLY=${MIPS_NIGHTLY:-$ARMV7_NIGHTLY}
MIPS_PYPI=(ziglang==0.17.1 cargo-zigbuild==0.24.1)

# command (or absolute path of a file) -> Debian package
pairs=(cc:gcc clang:clang ld.lld:lld llvm-ar:llvm curl:curl wget:wget busybox:busybox file:file
    /etc/ssl/certs/ca-certificates.crt:ca-certificates)
rust_targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
want_armv7=0 armv7_nightly=0 want_mips=0 want_nextest=0
for profile in "$@"; do
    case "$profile" in
        test) want_nextest=1 ;;
        contrib) pairs+=(systemd-analyze:systemd shellcheck:shellcheck dash:dash busybox:busybox strace:strace python3:python3) ;;
        demo) pairs+=(python3:python3) ;;
        cross) pairs+=(qemu-aarch64-static:qemu-user-static qemu-arm-static:qemu-user-static qemu-mipsel-static:qemu-user-static qemu-mips-static:qemu-user-static busybox:busybox python3:python3) ;;
        systemd) pairs+=(debootstrap:debootstrap systemd-nspawn:systemd-container ip:iproute2 python3:python3 shellcheck:shellcheck) ;;
        armv7) want_armv7=1 ;;
        mips) want_mips=1 pairs+=(python3:python3) ;;
        *)
            echo "setup: unknown profile '$profile' (test, contrib, cross, systemd, demo, armv7, mips)" >&2
            exit 2
            ;;
    esac
done

if command -v rustup >/dev/null 2>&1; then
    installed_targets=$(rustup target list --installed)
    for t in "${rust_targets[@]}"; do
        grep -qx "$t" <<<"$installed_targets" || RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 rustup target add "$t" || {
            echo "setup: rustup could not install the Rust standard library for $t" >&2
            exit 1
        }
    done
    # armv7: the stable toolchain's prebuilt standard library first. Where rustup cannot have it
    # (on our build machines the download of rust-std-1.95.0-armv7-unknown-linux-musleabihf
    # answers HTTP 404), the nightly route below. One request to the rustup server per run.
    if ((want_armv7)) && ! grep -qx "$ARMV7" <<<"$installed_targets"; then
        if out=$(RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 rustup target add "$ARMV7" 2>&1); then
            echo "setup: installed the stable Rust standard library for $ARMV7" >&2
        else
            reason="$(grep -m1 -oE 'rust-std-[^/ ]*\.tar\.xz' <<<"$out" || true): $(grep -m1 -oE 'status code: [0-9]+' <<<"$out" || grep -m1 -oE 'error: .*' <<<"$out" || true)"
            echo "setup: rustup cannot install the stable Rust standard library for $ARMV7 ($reason); using the nightly -Zbuild-std route" >&2
            armv7_nightly=1
        fi
    fi
    installed_components=$(rustup component list --installed)
    for c in rustfmt clippy; do
        grep -q "^$c" <<<"$installed_components" || rustup component add "$c"
    done
else
    echo "setup: rustup not found; assuming the toolchain has the musl targets" >&2
fi

sudo=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo=(sudo); fi

have() { case $1 in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }
missing=()
for pair in "${pairs[@]}"; do
    pkg=${pair#*:}
    have "${pair%%:*}" || [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ] && ! ((${#sudo[@]})); then
        echo "setup: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The armv7 nightly route (make armv7 when the stable route is unavailable): the nightly
# toolchain compiles the standard library for the target itself (-Zbuild-std), which needs
#   - rust-src for the nightly toolchain;
#   - the target's C runtime, which rustup's prebuilt standard library would otherwise bring:
#     crt1.o, crti.o, crtn.o, libc.a from Debian's musl-dev:armhf (and musl:armhf), fetched with
#     `apt-get download` (checked against the signed archive index) and unpacked with `dpkg -x`
#     into target/armv7-nightly/sysroot; no armhf package is installed on the machine (only the
#     architecture is added to dpkg, so that apt knows the armhf indices);
#   - libunwind.a (the unwind crate links it; ARM EHABI's __aeabi_unwind_cpp_pr0 and
#     _Unwind_Backtrace live there), built by clang from LLVM's libunwind sources that rust-src
#     ships, against the musl headers above, into target/armv7-nightly/libunwind.
# Each step is skipped when its result is there: with everything in place, no network call.
prepare_armv7_nightly() {
    local sysroot=$ARMV7_DIR/sysroot lib=$ARMV7_DIR/sysroot/usr/lib/arm-linux-musleabihf
    local unw=$ARMV7_DIR/libunwind rustc_v src tmp f
    command -v rustup >/dev/null 2>&1 || {
        echo "setup: the armv7 nightly route needs rustup" >&2
        return 1
    }
    if ! rustup run "$ARMV7_NIGHTLY" rustc -V >/dev/null 2>&1; then
        echo "setup: installing the $ARMV7_NIGHTLY toolchain (minimal profile)" >&2
        rustup toolchain install "$ARMV7_NIGHTLY" --profile minimal
    fi
    rustup component list --installed --toolchain "$ARMV7_NIGHTLY" | grep -q '^rust-src' ||
        rustup component add rust-src --toolchain "$ARMV7_NIGHTLY"

    if [ ! -f "$sysroot/.complete" ]; then
        dpkg --print-foreign-architectures | grep -qx armhf || {
            echo "setup: adding the armhf architecture to dpkg (for apt-get download musl-dev:armhf)" >&2
            "${sudo[@]}" dpkg --add-architecture armhf
            "${sudo[@]}" apt-get update -qq || true
        }
        # A partial index update (a mirror in sync) is fine as long as musl-dev:armhf is known.
        apt-cache show musl-dev:armhf >/dev/null 2>&1 || "${sudo[@]}" apt-get update -qq || true
        tmp=$(mktemp -d)
        (cd "$tmp" && apt-get download -q musl-dev:armhf musl:armhf) || {
            rm -rf "$tmp"
            echo "setup: apt-get download musl-dev:armhf musl:armhf failed" >&2
            return 1
        }
        rm -rf "$sysroot"
        mkdir -p "$sysroot"
        for f in "$tmp"/*.deb; do dpkg -x "$f" "$sysroot"; done
        for f in crt1.o crti.o crtn.o libc.a; do
            [ -f "$lib/$f" ] || {
                rm -rf "$tmp"
                echo "setup: $lib/$f is missing after unpacking musl-dev:armhf" >&2
                return 1
            }
        done
        (cd "$tmp" && ls ./*.deb) >"$sysroot/.complete"
        rm -rf "$tmp"
        echo "setup: armhf musl unpacked into $sysroot: $(tr '\n' ' ' <"$sysroot/.complete")" >&2
    fi

    rustc_v=$(rustup run "$ARMV7_NIGHTLY" rustc -V)
    if [ ! -f "$unw/libunwind.a" ] || [ "$(cat "$unw/.rustc" 2>/dev/null)" != "$rustc_v" ]; then
        src=$(rustup run "$ARMV7_NIGHTLY" rustc --print sysroot)/lib/rustlib/src/rust/src/llvm-project/libunwind
        [ -d "$src/src" ] || {
            echo "setup: no libunwind sources at $src (rust-src of $ARMV7_NIGHTLY)" >&2
            return 1
        }
        rm -rf "$unw"
        mkdir -p "$unw"
        # The flags of Rust's own build of libunwind (bootstrap), for this target and musl.
        local cflags=(--target="$ARMV7" -nostdinc -isystem "$(clang -print-resource-dir)/include"
            -isystem "$sysroot/usr/include/arm-linux-musleabihf" -I"$src/include" -O2 -fPIC
            -fstrict-aliasing -funwind-tables -fvisibility=hidden -DNDEBUG
            -D_LIBUNWIND_DISABLE_VISIBILITY_ANNOTATIONS -D_LIBUNWIND_IS_NATIVE_ONLY)
        for f in UnwindLevel1.c UnwindLevel1-gcc-ext.c Unwind-sjlj.c; do
            clang "${cflags[@]}" -std=c99 -c "$src/src/$f" -o "$unw/${f%.*}.o"
        done
        for f in Unwind-EHABI.cpp libunwind.cpp; do
            clang++ "${cflags[@]}" -std=c++17 -nostdinc++ -fno-exceptions -fno-rtti -c "$src/src/$f" -o "$unw/${f%.*}.o"
        done
        for f in UnwindRegistersSave.S UnwindRegistersRestore.S; do
            clang "${cflags[@]}" -c "$src/src/$f" -o "$unw/${f%.*}.o"
        done
        llvm-ar rcs "$unw/libunwind.a" "$unw"/*.o
        echo "$rustc_v" >"$unw/.rustc"
        echo "setup: built $unw/libunwind.a for $ARMV7 from $rustc_v's rust-src" >&2
    fi
}

# cargo-nextest runs make test's suite (.config/nextest.toml). Built from crates.io, only when
# `cargo nextest` is missing, and only for the test profile: on a fresh machine it is several
# minutes of compiling, which `make demo` (the newcomer's first command) has no use for.
if ((want_nextest)) && ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest" >&2
    cargo install cargo-nextest --locked
fi

if ((armv7_nightly)); then
    # Called plainly (not under ||) so that set -e stops at the first failing step.
    trap 'echo "setup: rustup could not install the Rust standard library for $ARMV7, and the nightly route could not be prepared" >&2' EXIT
    prepare_armv7_nightly
    trap - EXIT
fi

# The MIPS route (make mipsel, make mips; tier 3 targets, so always nightly -Zbuild-std):
#   - the nightly toolchain (minimal profile) and its rust-src, as for the armv7 nightly route;
#   - zig and cargo-zigbuild: `python3 -m pip install --target target/mips-zig/py` of the
#     pinned MIPS_PYPI versions (the ziglang wheel carries the zig compiler with its musl and
#     libunwind sources; the cargo-zigbuild wheel carries its static binary); nothing goes into
#     the machine's Python. target/mips-zig/py/.complete names what is there; zig's and
#     cargo-zigbuild's caches go beside it (the Makefile sets them).
# With everything in place it returns at once, without a network call.
prepare_mips() {
    command -v rustup >/dev/null 2>&1 || {
        echo "setup: the MIPS route needs rustup (nightly with rust-src)" >&2
        return 1
    }
    if ! rustup run "$MIPS_NIGHTLY" rustc -V >/dev/null 2>&1; then
        echo "setup: installing the $MIPS_NIGHTLY toolchain (minimal profile)" >&2
        rustup toolchain install "$MIPS_NIGHTLY" --profile minimal
    fi
    rustup component list --installed --toolchain "$MIPS_NIGHTLY" | grep -q '^rust-src' ||
        rustup component add rust-src --toolchain "$MIPS_NIGHTLY"

    local py=$MIPS_ZIG/py
    if [ "$(cat "$py/.complete" 2>/dev/null)" != "${MIPS_PYPI[*]}" ]; then
        echo "setup: installing ${MIPS_PYPI[*]} from PyPI into $py" >&2
        rm -rf "${py:?}"
        python3 -m pip --version >/dev/null 2>&1 || {
            echo "setup: python3 has no pip; installing python3-pip" >&2
            "${sudo[@]}" apt-get update -qq
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-pip
        }
        python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
            --target "$py" "${MIPS_PYPI[@]}"
        if [ ! -x "$py/ziglang/zig" ] || [ ! -x "$py/bin/cargo-zigbuild" ]; then
            echo "setup: no $py/ziglang/zig or $py/bin/cargo-zigbuild after pip install" >&2
            return 1
        fi
        echo "${MIPS_PYPI[*]}" >"$py/.complete"
        echo "setup: zig $("$py/ziglang/zig" version), $("$py/bin/cargo-zigbuild" --version) in $py" >&2
    fi
}

if ((want_mips)); then
    trap 'echo "setup: the MIPS route (nightly with rust-src, zig and cargo-zigbuild) could not be prepared" >&2' EXIT
    prepare_mips
    trap - EXIT
fi
