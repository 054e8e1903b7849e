#!/usr/bin/env bash
# Release artefacts from already built binaries (make dist builds them first):
#   dist/knockd-VERSION-TRIPLE.tar.gz   knockd-VERSION-TRIPLE/{knockd, contrib/, .env.sample, README.md, LICENSE}
#   dist/knockd-ARCH-linux-musl...      the bare binary (the name earlier releases used)
#   dist/SHA256SUMS                     over all of them
# Usage: scripts/dist.sh TRIPLE...   (e.g. x86_64-unknown-linux-musl mipsel-unknown-linux-musl)
# Every binary must be statically linked and stripped. Tarballs are reproducible: sorted
# entries, owner root, mtime of the last commit, gzip without a timestamp.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
(($#)) || {
    echo "usage: $0 TRIPLE..." >&2
    exit 2
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || {
    echo "dist: no version in Cargo.toml" >&2
    exit 1
}
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)

mkdir -p dist
rm -rf dist/stage
rm -f dist/knockd-* dist/SHA256SUMS
files=()
for triple in "$@"; do
    bin=target/$triple/release/knockd
    [ -x "$bin" ] || {
        echo "dist: $bin is missing (build it first: make dist does)" >&2
        exit 1
    }
    info=$(file -b "$bin")
    echo "$bin: $info"
    case "$info" in *"not stripped"*)
        echo "dist: $bin is not stripped" >&2
        exit 1
        ;;
    esac
    case "$info" in
        *"statically linked"* | *"static-pie linked"*) ;;
        *)
            echo "dist: $bin is not statically linked" >&2
            exit 1
            ;;
    esac

    bare=knockd-${triple/-unknown/}
    cp "$bin" "dist/$bare"

    name=knockd-$version-$triple
    stage=dist/stage/$name
    mkdir -p "$stage"
    cp "$bin" "$stage/knockd"
    cp -R contrib "$stage/contrib"
    cp .env.sample README.md LICENSE "$stage/"
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
        -C dist/stage -cf - "$name" | gzip -n -9 >"dist/$name.tar.gz"

    # What went in is what was meant to: the binary (byte for byte), contrib/, .env.sample, README,
    # LICENSE (the MIT terms must travel with every copy of the binary).
    listing=$(tar -tzf "dist/$name.tar.gz")
    for want in "$name/knockd" "$name/.env.sample" "$name/README.md" "$name/LICENSE" \
        "$name/contrib/systemd/knockd.service" "$name/contrib/openwrt/knockd.init" \
        "$name/contrib/systemd/knockd-knock@.service" "$name/contrib/openwrt/knock-client.init"; do
        grep -qxF "$want" <<<"$listing" || {
            echo "dist: $name.tar.gz lacks $want" >&2
            exit 1
        }
    done
    tar -xzOf "dist/$name.tar.gz" "$name/knockd" | cmp -s - "$bin" || {
        echo "dist: the binary in $name.tar.gz differs from $bin" >&2
        exit 1
    }
    files+=("$name.tar.gz" "$bare")
done
rm -rf dist/stage

(cd dist && sha256sum "${files[@]}" >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
ls -l dist
cat dist/SHA256SUMS
