//! Builds `kiln-init` as a static binary for the final phase to place at
//! `/.kiln/init` (SPEC §9), and leaves it in `OUT_DIR` for `include_bytes!`:
//! kiln carries its init, so a fresh machine needs nothing but `cargo build`.
//!
//! The init is built by a nested `cargo rustc` in a target dir of its own
//! (the outer build holds the lock on the usual one), in release, with
//! `+crt-static` on the gnu target (no musl std is installed here): the flag
//! goes to that one binary, so kiln itself links as usual. The nested cargo
//! shares the outer jobserver, so `-j` still holds.
//!
//! `KILN_INIT_BINARY=PATH` embeds a binary built elsewhere instead (e.g. by
//! `scripts/build-init`). On a target that is not Linux there is no init to
//! build: an empty file is embedded, and a build with `services:` says so.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.join("../..");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let dest = out.join("kiln-init");
    for watched in [
        "../kiln-init/src",
        "../kiln-init/Cargo.toml",
        "../../Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={watched}");
    }
    println!("cargo:rerun-if-env-changed=KILN_INIT_BINARY");

    if let Some(prebuilt) = env::var_os("KILN_INIT_BINARY") {
        copy(Path::new(&prebuilt), &dest);
        return;
    }
    let target = env::var("TARGET").expect("cargo sets it");
    if !target.ends_with("-linux-gnu") {
        println!(
            "cargo:warning=kiln-init is built for *-linux-gnu targets only; this kiln ({target}) cannot build images with `services:`"
        );
        std::fs::write(&dest, b"").expect("OUT_DIR is writable");
        return;
    }
    let init_target = out.join("init-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("rustc")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["-p", "kiln-init", "--bin", "kiln-init", "--release"])
        .args(["--target", &target])
        .arg("--target-dir")
        .arg(&init_target)
        .args(["--", "-C", "target-feature=+crt-static"])
        .args(["-C", "strip=symbols", "-C", "debuginfo=0"]);
    // What the outer build sets for its own crates is not for this one: a
    // clippy run or a wrapper would wrap the init too, and these flags would
    // go to every crate of it, proc macros included.
    for var in [
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    // Paths of the registry sources end up in panic messages: keep them
    // machine-independent, so one source builds one init wherever it is
    // built. In RUSTFLAGS, to reach the dependencies; with `--target` given,
    // cargo gives them to no build script or proc macro.
    if let Some(home) = cargo_home() {
        cmd.env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--remap-path-prefix={}=/cargo", home.display()),
        );
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build kiln-init (set KILN_INIT_BINARY to a prebuilt one)");
    assert!(status.success(), "building kiln-init failed: {status}");
    copy(
        &init_target.join(&target).join("release").join("kiln-init"),
        &dest,
    );
}

fn copy(from: &Path, to: &Path) {
    if let Err(err) = std::fs::copy(from, to) {
        panic!(
            "cannot copy `{}` to `{}`: {err}",
            from.display(),
            to.display()
        );
    }
}

fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}
