#!/usr/bin/env bash
# Installs what building and testing knockd needs on a Debian machine that already has rustup:
# the two musl targets, rustfmt/clippy, clang + lld (ring's C code for aarch64), curl, wget and busybox
# (integration tests run the client lines --add-client prints), file (CI's static-link check). Idempotent; without anything missing it
# makes no network or apt call, so every make target can run it.
#
# Optional profiles add what one group of targets needs on top:
#   scripts/setup.sh contrib   systemd-analyze, shellcheck, dash, busybox, strace (make test-contrib)
#   scripts/setup.sh cross     qemu-user-static, busybox and python3 (make test-cross)
#   scripts/setup.sh armv7     the armv7-unknown-linux-musleabihf rustup target (make armv7);
#                              fails if rustup cannot install it
set -euo pipefail

# command -> Debian package
pairs=(cc:gcc clang:clang ld.lld:lld llvm-ar:llvm curl:curl wget:wget busybox:busybox file:file)
rust_targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
for profile in "$@"; do
    case "$profile" in
        contrib) pairs+=(systemd-analyze:systemd shellcheck:shellcheck dash:dash busybox:busybox strace:strace python3:python3) ;;
        cross) pairs+=(qemu-aarch64-static:qemu-user-static qemu-arm-static:qemu-user-static busybox:busybox python3:python3) ;;
        armv7) rust_targets+=(armv7-unknown-linux-musleabihf) ;;
        *)
            echo "setup: unknown profile '$profile' (contrib, cross, armv7)" >&2
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
    installed_components=$(rustup component list --installed)
    for c in rustfmt clippy; do
        grep -q "^$c" <<<"$installed_components" || rustup component add "$c"
    done
else
    echo "setup: rustup not found; assuming the toolchain has the musl targets" >&2
fi

missing=()
for pair in "${pairs[@]}"; do
    pkg=${pair#*:}
    command -v "${pair%%:*}" >/dev/null 2>&1 || [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "setup: need root to install: ${missing[*]}" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    echo "setup: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
