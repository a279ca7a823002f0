//! Finding 2: `kill -9` at random points of a swap and of a rollback, then
//! the start-up recovery: the installed binary is always a whole, working
//! one (the old or the new after a swap; the old after a rollback), and no
//! temporary file is left. The swap runs in a real child process (this test
//! binary, re-run as `child_process`) that is killed after a random delay
//! within the time an uninterrupted run takes.
//!
//! `RAMPART_KILL_TRIES` sets the tries per kind (default 100).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rampart_agent::update::swap::{self, Journal, Phase};

const CHILD: &str = "RAMPART_KILL_CHILD";

/// A "binary" of about 4 MiB that answers `--version`: big enough that the
/// copies and fsyncs take a while to kill inside.
fn binary(version: &str) -> Vec<u8> {
    let mut text = format!("#!/bin/sh\necho rampart-agent {version}\nexit 0\n");
    let pad = "# padding so that copying this file takes time\n";
    while text.len() < 4 * 1024 * 1024 {
        text.push_str(pad);
    }
    text.into_bytes()
}

struct Setup {
    _dir: tempfile::TempDir,
    state: PathBuf,
    exe: PathBuf,
    journal: Journal,
}

fn setup(old: &[u8]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("rampart-agent");
    fs::write(&exe, old).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let journal = Journal {
        phase: Phase::Swapping,
        exe: exe.clone(),
        to: "2.0.0".into(),
        from: "1.0.0".into(),
    };
    Setup {
        _dir: dir,
        state,
        exe,
        journal,
    }
}

/// Run by the child: one swap or one rollback, as the updater does it.
#[test]
fn child_process() {
    let Ok(kind) = std::env::var(CHILD) else {
        return;
    };
    let state = PathBuf::from(std::env::var("RAMPART_KILL_STATE").unwrap());
    let journal: Journal =
        serde_json::from_str(&std::env::var("RAMPART_KILL_JOURNAL").unwrap()).unwrap();
    let _lock = swap::UpdateLock::acquire(&state).unwrap();
    match kind.as_str() {
        "swap" => {
            let staged = swap::staging_path(&journal.exe);
            swap::swap_in(&state, &staged, &journal, None).unwrap();
        }
        "rollback" => swap::roll_back(&state, &journal).unwrap(),
        other => panic!("unknown child {other}"),
    }
}

fn child(kind: &str, s: &Setup) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_process", "--test-threads=1", "--quiet"])
        .env(CHILD, kind)
        .env("RAMPART_KILL_STATE", &s.state)
        .env(
            "RAMPART_KILL_JOURNAL",
            serde_json::to_string(&s.journal).unwrap(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

fn version_of(exe: &Path) -> String {
    let out = Command::new(exe).arg("--version").output().unwrap();
    assert!(out.status.success(), "{} does not run", exe.display());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A tiny xorshift: the delays need spread, not quality.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn tries() -> u32 {
    std::env::var("RAMPART_KILL_TRIES")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(100)
}

fn no_leftovers(s: &Setup) {
    let beside: Vec<_> = fs::read_dir(s.exe.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(beside, ["rampart-agent"], "left beside the binary");
    let update = swap::update_dir(&s.state);
    if update.exists() {
        for e in fs::read_dir(&update).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            assert!(
                ["rampart-agent.previous", "lock"].contains(&name.as_str()),
                "left in the update dir: {name}"
            );
        }
    }
}

/// Prepares one try of `kind` and returns it ready for the child.
fn prepare(kind: &str, old: &[u8], new: &[u8]) -> Setup {
    let s = setup(old);
    match kind {
        "swap" => {
            let staged = swap::staging_path(&s.exe);
            fs::write(&staged, new).unwrap();
            fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).unwrap();
        }
        _ => {
            // The new binary is in place awaiting its trial.
            let staged = swap::staging_path(&s.exe);
            fs::write(&staged, new).unwrap();
            fs::set_permissions(&staged, fs::Permissions::from_mode(0o755)).unwrap();
            swap::swap_in(&s.state, &staged, &s.journal, Some(Phase::Trial)).unwrap();
        }
    }
    s
}

fn kill_at_random(kind: &str) {
    let (old, new) = (binary("1.0.0"), binary("2.0.0"));
    // How long an uninterrupted run takes, child start included.
    let s = prepare(kind, &old, &new);
    let started = Instant::now();
    assert!(child(kind, &s).status().unwrap().success());
    let whole_run = started.elapsed();
    let mut rng = Rng(u64::from(std::process::id()) | 1 << 40);
    let (mut killed_midway, mut finished, mut ended_new) = (0, 0, 0);
    let tries = tries();
    for _ in 0..tries {
        let s = prepare(kind, &old, &new);
        let mut running = child(kind, &s).spawn().unwrap();
        let delay = rng.below(u64::try_from(whole_run.as_micros()).unwrap() * 11 / 10);
        std::thread::sleep(Duration::from_micros(delay));
        let _ = running.kill();
        let status = running.wait().unwrap();
        if status.success() {
            finished += 1;
        } else {
            killed_midway += 1;
        }
        // Start-up: recovery finishes or undoes what the kill interrupted.
        swap::recover(&s.state, &s.exe).unwrap();
        let installed = fs::read(&s.exe).unwrap();
        let version = version_of(&s.exe);
        match kind {
            // The new one only if the swap had finished (journal cleared);
            // any earlier kill is undone.
            "swap" => {
                assert!(
                    (installed == old && version == "rampart-agent 1.0.0")
                        || (installed == new && version == "rampart-agent 2.0.0"),
                    "after a kill at {delay} µs: {version}, {} bytes",
                    installed.len()
                );
                if installed == new {
                    ended_new += 1;
                }
            }
            _ => assert!(
                installed == old && version == "rampart-agent 1.0.0",
                "after a kill at {delay} µs: {version}"
            ),
        }
        no_leftovers(&s);
        assert_eq!(swap::read_journal(&s.state).unwrap(), None);
    }
    eprintln!(
        "{kind}: {tries} tries, {killed_midway} killed before exiting, {finished} finished, {ended_new} ended with the new binary, 0 broken (a whole run: {} ms)",
        whole_run.as_millis()
    );
    assert!(killed_midway > 0, "no kill landed inside the {kind}");
}

#[test]
fn kill_9_during_a_swap_leaves_a_whole_binary() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    kill_at_random("swap");
}

#[test]
fn kill_9_during_a_rollback_leaves_the_previous_binary() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    kill_at_random("rollback");
}
