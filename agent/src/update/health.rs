//! The health gate after a swap. The service that installed a release stops
//! serving, then (before it exits for its service manager) runs the new
//! binary with its own command line as a trial: the new binary must reach
//! "serving" (its socket answers a status request) within
//! [`SERVING_DEADLINE`]. If it does, the trial is stopped, the floor rises to
//! the new version and the process exits so that the service manager starts
//! it for real. If it does not (it exits, or stays silent), the previous
//! binary is put back, the version is marked bad in the floor file (never
//! offered here again) and a record is left for the next start to show in
//! the status and report to IT.
//!
//! The old process holds the update lock for the whole trial, so the new
//! binary's own start-up recovery ([`at_start`]) leaves the journal alone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use semver::Version as Semver;
use serde::{Deserialize, Serialize};

use super::swap::{self, Phase, Recovered, UpdateLock};
use super::{UpdateOutcome, floor};
use crate::fsutil;

/// How long a new binary has to answer on its socket.
pub const SERVING_DEADLINE: Duration = Duration::from_secs(60);

/// What the trial came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOutcome {
    /// No swap awaits a trial.
    NoTrial,
    Passed {
        to: String,
    },
    RolledBack {
        to: String,
        why: String,
    },
    /// The trial could not be run or finished; recovery at the next start
    /// puts the previous binary back.
    Error(String),
}

/// `state/update/rolled-back.json`: the last rollback, shown and reported
/// until a newer release is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RollbackRecord {
    version: String,
    why: String,
}

fn record_path(state_dir: &Path) -> PathBuf {
    swap::update_dir(state_dir).join("rolled-back.json")
}

/// The last rollback on this device, as an outcome for the status; `None`
/// once a newer release was installed, or when none happened.
pub fn last_rollback(state_dir: &Path) -> Option<UpdateOutcome> {
    let bytes = fsutil::read_capped(&record_path(state_dir), 64 * 1024).ok()??;
    let record: RollbackRecord = serde_json::from_slice(&bytes).ok()?;
    Some(UpdateOutcome::RolledBack {
        to: super::release::parse_tag(&record.version).ok()?,
        why: record.why,
    })
}

/// A newer release is in: the last rollback is history.
pub fn forget_rollback(state_dir: &Path) {
    let _ = std::fs::remove_file(record_path(state_dir));
}

/// The outcome the status shows: the last check's, except that a rollback
/// stays in view (a failure IT must hear of) until something newer happened
/// than "nothing to install".
pub fn shown<'a>(
    last: Option<&'a UpdateOutcome>,
    rolled_back: Option<&'a UpdateOutcome>,
) -> Option<&'a UpdateOutcome> {
    match (last, rolled_back) {
        (Some(o @ (UpdateOutcome::Updated { .. } | UpdateOutcome::Failed { .. })), _) => Some(o),
        (_, Some(rb)) => Some(rb),
        (o, None) => o,
    }
}

/// The trial's command line: this process's own arguments, as the service
/// manager gave them, run in the foreground (not under the Windows SCM).
pub fn trial_args() -> Vec<OsString> {
    std::env::args_os()
        .skip(1)
        .filter(|a| a != "--windows-service")
        .collect()
}

/// Runs the trial if the journal awaits one. `socket`: where the new binary
/// must answer.
pub fn run_trial(
    state_dir: &Path,
    socket: &Path,
    args: &[OsString],
    deadline: Duration,
) -> TrialOutcome {
    let journal = match swap::read_journal(state_dir) {
        Ok(Some(j)) if j.phase == Phase::Trial => j,
        Ok(_) => return TrialOutcome::NoTrial,
        Err(e) => return TrialOutcome::Error(e.to_string()),
    };
    let _lock = match UpdateLock::acquire(state_dir) {
        Ok(l) => l,
        Err(e) => return TrialOutcome::Error(e.to_string()),
    };
    tracing::info!(to = %journal.to, "trying the new binary before handing over to it");
    let verdict = match Command::new(&journal.exe)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(child) => watch(child, socket, deadline),
        Err(e) => Err(format!("it could not be started: {e}")),
    };
    match verdict {
        Ok(()) => {
            if let Ok(to) = super::release::parse_tag(&journal.to)
                && let Err(e) = floor::raise(state_dir, &to)
            {
                tracing::error!("the new version serves, but the floor cannot be recorded: {e}");
            }
            forget_rollback(state_dir);
            match swap::clear_journal(state_dir) {
                Ok(()) => TrialOutcome::Passed { to: journal.to },
                Err(e) => TrialOutcome::Error(e.to_string()),
            }
        }
        Err(why) => {
            tracing::error!(to = %journal.to, "the new binary did not reach serving ({why}); putting the previous one back");
            if let Err(e) = swap::roll_back(state_dir, &journal) {
                return TrialOutcome::Error(format!(
                    "{why}; and the previous binary could not be put back: {e}"
                ));
            }
            if let Ok(to) = super::release::parse_tag(&journal.to)
                && let Err(e) = floor::mark_bad(state_dir, &to)
            {
                tracing::error!("cannot mark {to} bad: {e}");
            }
            let record = RollbackRecord {
                version: journal.to.clone(),
                why: why.clone(),
            };
            if let Ok(bytes) = serde_json::to_vec(&record)
                && let Err(e) = fsutil::write_atomic(&record_path(state_dir), &bytes)
            {
                tracing::error!("cannot record the rollback: {e}");
            }
            TrialOutcome::RolledBack {
                to: journal.to,
                why,
            }
        }
    }
}

/// Waits for `child` to serve on `socket`, then stops it; `Err(why)` when it
/// exits first or stays silent past `deadline`.
fn watch(mut child: Child, socket: &Path, deadline: Duration) -> Result<(), String> {
    let start = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the trial's runtime: {e}"))?;
    let result = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Err(stopped_words(status)),
            Ok(None) => {}
            Err(e) => break Err(format!("it could not be watched: {e}")),
        }
        if runtime.block_on(serving(socket)) {
            break Ok(());
        }
        if start.elapsed() > deadline {
            break Err(format!("it was not serving after {} s", deadline.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stop(&mut child, result.is_ok());
    result
}

/// "it exited with code 1 before it was serving".
fn stopped_words(status: std::process::ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("it exited with code {code} before it was serving"),
        None => "it was killed before it was serving".to_owned(),
    }
}

async fn serving(socket: &Path) -> bool {
    let ask = async {
        let mut client = crate::ipc::client::Client::connect(socket, "rampart-agent update trial")
            .await
            .ok()?;
        client.status().await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), ask).await,
        Ok(Some(_))
    )
}

/// A trial that served is asked to stop (it saves its state); one that did
/// not is killed.
fn stop(child: &mut Child, gently: bool) {
    #[cfg(unix)]
    if gently
        && let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        && rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
    {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    #[cfg(not(unix))]
    let _ = gently;
    let _ = child.kill();
    let _ = child.wait();
}

/// At the start of the service binary: finish or undo an interrupted swap
/// or rollback. `true` when the previous binary was put back over the one
/// running now, which must then exit for the service manager to start it.
/// A trial in progress (its process holds the lock) is left alone.
pub fn at_start(state_dir: &Path, exe: &Path) -> bool {
    // Never updated here: nothing to recover, and no directory to make.
    if !swap::update_dir(state_dir).is_dir() {
        return false;
    }
    let _lock = match UpdateLock::acquire(state_dir) {
        Ok(l) => l,
        Err(e) => {
            tracing::info!("update recovery skipped: {e}");
            return false;
        }
    };
    match swap::recover(state_dir, exe) {
        Ok(Recovered::Nothing) => false,
        Ok(Recovered::PreviousRestored(journal)) => {
            tracing::warn!(to = %journal.to, from = %journal.from, "an interrupted update was undone");
            let running = super::release::running();
            Semver::parse(&journal.from).map_or(true, |from| from != running)
        }
        Err(e) => {
            tracing::error!("cannot recover an interrupted update: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rollback_stays_in_view_until_something_newer_happens() {
        let v = |s: &str| Semver::parse(s).unwrap();
        let rb = UpdateOutcome::RolledBack {
            to: v("2.0.0"),
            why: "it stopped".into(),
        };
        let up_to_date = UpdateOutcome::Decided(
            super::super::UpdateDecision::UpToDate {
                current: v("1.0.0"),
            },
            Vec::new(),
        );
        assert_eq!(shown(Some(&up_to_date), Some(&rb)), Some(&rb));
        assert_eq!(shown(None, Some(&rb)), Some(&rb));
        let updated = UpdateOutcome::Updated {
            from: v("1.0.0"),
            to: v("2.0.1"),
        };
        assert_eq!(shown(Some(&updated), Some(&rb)), Some(&updated));
        assert_eq!(shown(Some(&up_to_date), None), Some(&up_to_date));
    }
}
