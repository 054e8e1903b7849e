#!/usr/bin/env bash
# Installs what building and testing knockd needs on a Debian machine that already has rustup:
# the two musl targets, rustfmt/clippy, clang + lld (ring's C code for aarch64), curl, wget and
# busybox (integration tests run the client lines knockd --add-client prints), file (CI's
# static-link check). Idempotent; without anything missing it makes no network or apt call, so
# every make target can run it.
set -euo pipefail

if command -v rustup >/dev/null 2>&1; then
    installed_targets=$(rustup target list --installed)
    for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
        grep -qx "$t" <<<"$installed_targets" || rustup target add "$t"
    done
    installed_components=$(rustup component list --installed)
    for c in rustfmt clippy; do
        grep -q "^$c" <<<"$installed_components" || rustup component add "$c"
    done
else
    echo "setup: rustup not found; assuming the toolchain has the musl targets" >&2
fi

# command -> Debian package
missing=()
for pair in cc:gcc clang:clang ld.lld:lld llvm-ar:llvm curl:curl wget:wget busybox:busybox file:file; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
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
