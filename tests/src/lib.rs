//! Harness for end-to-end tests: real binaries, real peers, loopback only.
//!
//! A test that needs a real peer (chronyd, minisign, ...) calls [`real_peer`].
//! With `RAMPART_REQUIRE_REAL_SERVERS=1` (set by `.ci/run`) a missing peer is a
//! failure; elsewhere the test is skipped with a loud message on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod chrony;
pub mod duo;
pub mod http;
pub mod ipc;
pub mod pam;
pub mod tls;
pub mod wine;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn real_servers_required() -> bool {
    std::env::var("RAMPART_REQUIRE_REAL_SERVERS").is_ok_and(|v| v == "1")
}

/// Finds `program` on PATH or in the sbin directories (chronyd lives there).
/// `None` means the calling test must return early: it has been reported as
/// skipped. Panics instead when real servers are required.
pub fn real_peer(program: &str, debian_package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let msg = format!(
            "`{program}` not found: install the Debian package `{debian_package}` (bash .ci/run does)"
        );
        assert!(
            !real_servers_required(),
            "RAMPART_REQUIRE_REAL_SERVERS=1 and {msg}"
        );
        eprintln!("\n!!!! SKIPPED: {msg} !!!!\n");
    }
    found
}

/// A binary of this workspace (`rampart-agent`, `rampart-installer`; not the
/// app, whose build is slow and needs no test here), built on first use so that a test never runs
/// against a stale copy (`cargo test -p rampart-tests` does not rebuild other
/// packages' binaries on its own).
pub fn workspace_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let target_dir = target_dir();
    BUILT.get_or_init(|| {
        cargo_build(&["-p", "rampart-agent", "-p", "rampart-installer", "--bins"]);
    });
    let bin = target_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// `cargo build --quiet ARGS` into this test binary's target directory and
/// profile; panics when the build fails.
pub fn cargo_build(args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--quiet").args(args);
    // Cargo gives this test process the variables of *its* package
    // (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ...). Build scripts that watch
    // them (ring's does) would see a change and rebuild, here and again in
    // the developer's next plain `cargo build`: hand the nested cargo the
    // environment a shell would.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&name.as_ref())
        {
            cmd.env_remove(name.as_ref());
        }
    }
    if target_dir().ends_with("release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// `target/debug` (or `target/release`) of the test binary running now.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/debug/deps/test-binary -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

/// A short private temporary directory: Unix socket paths are limited to about
/// 100 bytes, so `/tmp/rampart-XXXX` rather than a deep target path.
pub fn short_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rampart-")
        .tempdir_in("/tmp")
        .expect("create a temporary directory")
}
