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
    pack_relocations(&target);
    println!("cargo:rustc-env=KNOCKD_COMMIT={commit}");
    println!("cargo:rustc-env=KNOCKD_TARGET={target}");
}

/// The musl binaries are static-pie (ASLR): every absolute pointer in their data needs a run-time
/// relocation, and classic `Elf64_Rela` entries take 24 bytes each (about 2,900 of them, 70 KB).
/// `-z pack-relative-relocs` stores the same relocations as a DT_RELR bitmap instead, which the
/// start code of Rust's bundled musl (1.2.5; DT_RELR since 1.2.4) applies at startup: same
/// addresses, same ASLR, a smaller file. Only for Rust's x86_64/aarch64 musl targets, whose
/// self-contained musl we know; armv7's nightly route links Debian's musl, which may predate
/// DT_RELR. GNU ld (x86_64, through cc) takes it as `-Wl,`; rust-lld (aarch64) directly.
fn pack_relocations(target: &str) {
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if target != "x86_64-unknown-linux-musl" && target != "aarch64-unknown-linux-musl" {
        return;
    }
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_default();
    let direct = Path::new(&linker)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("lld"));
    let arg = if direct {
        "-zpack-relative-relocs"
    } else {
        "-Wl,-z,pack-relative-relocs"
    };
    println!("cargo:rustc-link-arg-bins={arg}");
}
