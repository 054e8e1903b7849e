//! Embeds the git commit and the target triple for `knockd --version`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Release builds from a tarball (no .git) can still name their commit.
    println!("cargo:rerun-if-env-changed=KNOCKD_COMMIT");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());

    let commit = std::env::var("KNOCKD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());

    // Watch HEAD and the branch it points to so that a new commit refreshes the version, without
    // rebuilding on every run. `--git-path` resolves both inside linked worktrees too. A path
    // that does not exist would make cargo rerun this script every time, so only existing ones.
    let mut watch = Vec::new();
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        watch.push(head);
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(p) = git(&["rev-parse", "--git-path", &reference]) {
                watch.push(p);
            }
        }
        if let Some(p) = git(&["rev-parse", "--git-path", "packed-refs"]) {
            watch.push(p);
        }
    }
    for p in watch {
        let path = if Path::new(&p).is_absolute() {
            PathBuf::from(&p)
        } else {
            manifest.join(&p)
        };
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    link_args(&target);
    println!("cargo:rustc-env=KNOCKD_COMMIT={commit}");
    println!("cargo:rustc-env=KNOCKD_TARGET={target}");
}

/// Link options of the static musl binaries, each for a measured saving (x86_64 bytes):
/// - the static-pie's run-time relocations (ASLR: every absolute pointer in its data, about 2,900
///   24-byte `Elf64_Rela` entries) packed as a DT_RELR bitmap (-44,984), which the start code of
///   Rust's bundled musl (1.2.5; DT_RELR since 1.2.4) applies at startup: same addresses, same
///   ASLR, a smaller file;
/// - lld's identical code folding, `--icf=all` (with lld instead of GNU ld: -14,672; aarch64
///   -18,208): functions whose machine code and relocations are byte-identical (mostly
///   monomorphizations) are kept once. Rust makes no promise that distinct functions have
///   distinct addresses, and nothing in knockd compares function addresses.
///
/// Only for Rust's x86_64/aarch64 musl targets, whose self-contained musl we know; armv7's nightly
/// route links Debian's musl, which may predate DT_RELR. aarch64 links with rust-lld directly;
/// x86_64 links through cc, which is asked to use `ld.lld` (Debian's lld, installed by
/// scripts/setup.sh; LLD 14 spells the packing `--pack-dyn-relocs=relr`), or GNU ld (no ICF)
/// where there is no `ld.lld` on PATH.
fn link_args(target: &str) {
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if target != "x86_64-unknown-linux-musl" && target != "aarch64-unknown-linux-musl" {
        return;
    }
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_default();
    let direct = Path::new(&linker)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("lld"));
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
    };
    let script = no_unwind_script();
    let args: Vec<String> = if direct {
        let mut a = vec!["-zpack-relative-relocs".into(), "--icf=all".into()];
        a.extend(script.map(|s| format!("-T{s}")));
        a
    } else if on_path("ld.lld") {
        let mut a = vec![
            "-fuse-ld=lld".into(),
            "-Wl,--pack-dyn-relocs=relr".into(),
            "-Wl,--icf=all".into(),
        ];
        a.extend(script.map(|s| format!("-Wl,-T,{s}")));
        a
    } else {
        vec!["-Wl,-z,pack-relative-relocs".into()]
    };
    for arg in args {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// A linker script, added to lld's default layout (`INSERT AFTER`), that drops the unwind
/// tables (`.eh_frame`, and the exception tables that index them): about 199 KB on x86_64, most
/// of it std's and musl's, which are precompiled with tables that `force-unwind-tables=no`
/// (.cargo/config.toml) cannot remove. The release build aborts on a panic (Cargo.toml), so
/// nothing unwinds, and there is no C++; the only reader left was the backtrace a panic prints
/// under RUST_BACKTRACE, which already stopped at its first frame without `.eh_frame_hdr`.
/// Written to OUT_DIR so that the path given to the linker is absolute.
fn no_unwind_script() -> Option<String> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR")?);
    let path = out.join("no-unwind.ld");
    let text =
        "SECTIONS { /DISCARD/ : { *(.eh_frame) *(.gcc_except_table) } } INSERT AFTER .text;\n";
    std::fs::write(&path, text).ok()?;
    Some(path.to_str()?.to_string())
}
