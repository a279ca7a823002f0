//! Crash-safe binary swaps. Every step that changes the installed binary is
//! announced first in a journal (`state/update/journal.json`, written with
//! `fsutil::write_atomic`), and every step is a rename of a whole, fsynced
//! file followed by an fsync of its directory, so at any instant the
//! installed binary is a whole one, and [`recover`] (at every start, and
//! before any update) finishes or undoes whatever a kill or a power cut
//! interrupted. One updater at a time: [`UpdateLock`].
//!
//! The order, for a swap:
//! 1. the new binary is staged beside the installed one (whole, fsynced,
//!    executable, its `--version` checked);
//! 2. the installed binary is copied to `update/rampart-agent.previous`
//!    (through a temporary file, fsynced, renamed);
//! 3. journal `swapping`; 4. rename staged -> installed; fsync the directory;
//! 5. journal `trial` (the service: the new binary must reach "serving") or
//!    no journal (the CLI: done).
//!
//! A rollback: journal `rolling_back`, copy `.previous` to a staged file,
//! rename it over the installed one, fsync, remove the journal.
//! [`recover`] undoes `swapping` and `trial` (the new binary was never shown
//! healthy) and finishes `rolling_back`; both end with the previous binary.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};

/// Where an update keeps its journal, the previous binary, its lock and its
/// temporary files: `state/update/`.
pub fn update_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("update")
}

/// Downloads and extraction: removed whole at every start and update.
pub fn tmp_dir(state_dir: &Path) -> PathBuf {
    update_dir(state_dir).join("tmp")
}

pub fn previous_path(state_dir: &Path) -> PathBuf {
    update_dir(state_dir).join(format!("{}.previous", super::apply::BIN_NAME))
}

fn journal_path(state_dir: &Path) -> PathBuf {
    update_dir(state_dir).join("journal.json")
}

/// `<dir>/.rampart-agent.update`: beside the binary, so that the rename
/// that puts it in place stays on one filesystem.
pub fn staging_path(exe: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(exe.file_name().unwrap_or_default());
    name.push(".update");
    exe.with_file_name(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The staged binary may or may not be in place yet.
    Swapping,
    /// In place; the service has not yet seen it serve.
    Trial,
    /// The previous binary is being put back.
    RollingBack,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub phase: Phase,
    /// The installed binary.
    pub exe: PathBuf,
    /// The version being installed.
    pub to: String,
    /// The version it replaces.
    pub from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("{0}")]
    Fs(#[from] FsError),
    #[error("cannot keep a copy of {path}: {error}")]
    Keep { path: PathBuf, error: io::Error },
    #[error("cannot put the new binary in place at {path}: {error}")]
    Replace { path: PathBuf, error: io::Error },
    #[error("cannot put the previous binary back at {path}: {error}")]
    Restore { path: PathBuf, error: io::Error },
    #[error("the update journal {path} is damaged: {message}")]
    Journal { path: PathBuf, message: String },
}

pub fn read_journal(state_dir: &Path) -> Result<Option<Journal>, SwapError> {
    let path = journal_path(state_dir);
    let Some(bytes) = fsutil::read_capped(&path, 64 * 1024)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SwapError::Journal {
            path,
            message: e.to_string(),
        })
}

pub fn write_journal(state_dir: &Path, journal: &Journal) -> Result<(), SwapError> {
    fsutil::ensure_private_dir(&update_dir(state_dir))?;
    let bytes = serde_json::to_vec(journal).map_err(|e| SwapError::Journal {
        path: journal_path(state_dir),
        message: e.to_string(),
    })?;
    fsutil::write_atomic(&journal_path(state_dir), &bytes)?;
    Ok(())
}

pub fn clear_journal(state_dir: &Path) -> Result<(), SwapError> {
    let path = journal_path(state_dir);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(FsError::Write { path, source }.into()),
    }
    sync_dir(&update_dir(state_dir));
    Ok(())
}

/// fsync a directory so a rename in it survives a power cut. Windows has no
/// directory handles to sync; NTFS journals renames itself.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(error) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), %error, "cannot fsync directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Copies `from` to `to` through `to`'s temporary sibling: `to` is either
/// its old self or a whole, fsynced copy, never a part.
pub fn copy_whole(from: &Path, to: &Path, mode: u32) -> io::Result<()> {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(to.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = to.with_file_name(tmp_name);
    let result = (|| {
        let mut src = File::open(from)?;
        let mut dst = File::create(&tmp)?;
        io::copy(&mut src, &mut dst)?;
        dst.flush()?;
        dst.sync_all()?;
        drop(dst);
        fsutil::set_mode(&tmp, mode)?;
        fs::rename(&tmp, to)?;
        if let Some(dir) = to.parent() {
            sync_dir(dir);
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Steps 2 to 4 above: `staged` (whole, fsynced, executable) goes in place
/// of `journal.exe`, the installed binary kept as `.previous` first.
/// Leaves the journal at `then` (`Trial`), or none when `then` is `None`.
pub fn swap_in(
    state_dir: &Path,
    staged: &Path,
    journal: &Journal,
    then: Option<Phase>,
) -> Result<(), SwapError> {
    fsutil::ensure_private_dir(&update_dir(state_dir))?;
    let previous = previous_path(state_dir);
    copy_whole(&journal.exe, &previous, 0o700).map_err(|error| SwapError::Keep {
        path: journal.exe.clone(),
        error,
    })?;
    write_journal(
        state_dir,
        &Journal {
            phase: Phase::Swapping,
            ..journal.clone()
        },
    )?;
    fs::rename(staged, &journal.exe).map_err(|error| SwapError::Replace {
        path: journal.exe.clone(),
        error,
    })?;
    if let Some(dir) = journal.exe.parent() {
        sync_dir(dir);
    }
    match then {
        Some(phase) => write_journal(
            state_dir,
            &Journal {
                phase,
                ..journal.clone()
            },
        ),
        None => clear_journal(state_dir),
    }
}

/// Puts `.previous` back over `exe`, journaled so that a kill midway is
/// finished by [`recover`].
pub fn roll_back(state_dir: &Path, journal: &Journal) -> Result<(), SwapError> {
    write_journal(
        state_dir,
        &Journal {
            phase: Phase::RollingBack,
            ..journal.clone()
        },
    )?;
    restore_previous(state_dir, &journal.exe)?;
    clear_journal(state_dir)
}

fn restore_previous(state_dir: &Path, exe: &Path) -> Result<(), SwapError> {
    let staged = staging_path(exe);
    copy_whole(&previous_path(state_dir), &staged, 0o755)
        .and_then(|()| fs::rename(&staged, exe))
        .map_err(|error| SwapError::Restore {
            path: exe.to_owned(),
            error,
        })?;
    if let Some(dir) = exe.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// No interrupted swap.
    Nothing,
    /// An interrupted swap or trial was undone, or an interrupted rollback
    /// finished: the previous binary is in place again.
    PreviousRestored(Journal),
}

/// At start and before any update: finishes or undoes an interrupted swap
/// or rollback (see the module's order), removes a stale staged binary and
/// the temporary directory. The caller holds the [`UpdateLock`].
pub fn recover(state_dir: &Path, exe: &Path) -> Result<Recovered, SwapError> {
    let _ = fs::remove_dir_all(tmp_dir(state_dir));
    // The journal's and the floor's own interrupted writes.
    fsutil::remove_stale_temps(&update_dir(state_dir), std::time::SystemTime::now());
    let outcome = match read_journal(state_dir)? {
        None => Recovered::Nothing,
        Some(journal) => {
            tracing::warn!(
                phase = ?journal.phase,
                to = %journal.to,
                "an update was interrupted; putting the previous binary back"
            );
            restore_previous(state_dir, &journal.exe)?;
            clear_journal(state_dir)?;
            Recovered::PreviousRestored(journal)
        }
    };
    // A staged binary, and the temporary copies of an interrupted
    // copy_whole, beside the binary and in the update directory.
    let staged = staging_path(exe);
    remove_prefixed(exe.parent(), staged.file_name());
    let mut staged_tmp = std::ffi::OsString::from(".");
    staged_tmp.push(staged.file_name().unwrap_or_default());
    remove_prefixed(exe.parent(), Some(&staged_tmp));
    let previous = previous_path(state_dir);
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(previous.file_name().unwrap_or_default());
    remove_prefixed(previous.parent(), Some(&prefix));
    Ok(outcome)
}

fn remove_prefixed(dir: Option<&Path>, prefix: Option<&std::ffi::OsStr>) {
    let (Some(dir), Some(prefix)) = (dir, prefix.and_then(|p| p.to_str())) else {
        return;
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// One updater at a time: an exclusive lock on `state/update/lock`, held
/// until dropped (the OS lets go when the process dies, so a kill leaves no
/// stale lock).
#[derive(Debug)]
pub struct UpdateLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another update is already running (it holds {0})")]
    Busy(PathBuf),
    #[error("cannot open the update lock {path}: {error}")]
    Open { path: PathBuf, error: io::Error },
    #[error("{0}")]
    Dir(#[from] FsError),
}

impl UpdateLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, LockError> {
        fsutil::ensure_private_dir(&update_dir(state_dir))?;
        let path = update_dir(state_dir).join("lock");
        let file = open_locked(&path)?;
        Ok(Self { _file: file })
    }
}

#[cfg(unix)]
fn open_locked(path: &Path) -> Result<File, LockError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|error| LockError::Open {
            path: path.to_owned(),
            error,
        })?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(LockError::Busy(path.to_owned())),
        Err(e) => Err(LockError::Open {
            path: path.to_owned(),
            error: e.into(),
        }),
    }
}

/// Windows: a file opened with no sharing cannot be opened again until its
/// handle closes, which the OS does when the process ends.
#[cfg(windows)]
fn open_locked(path: &Path) -> Result<File, LockError> {
    use std::os::windows::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .share_mode(0)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            // ERROR_SHARING_VIOLATION
            Some(32) => LockError::Busy(path.to_owned()),
            _ => LockError::Open {
                path: path.to_owned(),
                error,
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let exe = dir.path().join("rampart-agent");
        fs::write(&exe, b"old").unwrap();
        let journal = Journal {
            phase: Phase::Swapping,
            exe: exe.clone(),
            to: "2.0.0".into(),
            from: "1.0.0".into(),
        };
        (dir, state, exe, journal)
    }

    #[test]
    fn a_swap_keeps_the_previous_binary_and_a_rollback_puts_it_back() {
        let (_dir, state, exe, journal) = setup();
        let staged = staging_path(&exe);
        fs::write(&staged, b"new").unwrap();
        swap_in(&state, &staged, &journal, Some(Phase::Trial)).unwrap();
        assert_eq!(fs::read(&exe).unwrap(), b"new");
        assert_eq!(fs::read(previous_path(&state)).unwrap(), b"old");
        assert_eq!(read_journal(&state).unwrap().unwrap().phase, Phase::Trial);
        roll_back(&state, &journal).unwrap();
        assert_eq!(fs::read(&exe).unwrap(), b"old");
        assert_eq!(read_journal(&state).unwrap(), None);
    }

    #[test]
    fn recovery_undoes_a_swap_or_trial_and_finishes_a_rollback() {
        for phase in [Phase::Swapping, Phase::Trial, Phase::RollingBack] {
            let (_dir, state, exe, journal) = setup();
            let staged = staging_path(&exe);
            fs::write(&staged, b"new").unwrap();
            swap_in(&state, &staged, &journal, Some(phase)).unwrap();
            fs::create_dir_all(tmp_dir(&state)).unwrap();
            fs::write(tmp_dir(&state).join("download"), b"x").unwrap();
            fs::write(&staged, b"half").unwrap();
            let done = recover(&state, &exe).unwrap();
            assert!(matches!(done, Recovered::PreviousRestored(_)), "{phase:?}");
            assert_eq!(fs::read(&exe).unwrap(), b"old", "{phase:?}");
            assert!(!staged.exists() && !tmp_dir(&state).exists());
            assert_eq!(recover(&state, &exe).unwrap(), Recovered::Nothing);
        }
    }

    #[test]
    fn one_updater_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = UpdateLock::acquire(dir.path()).unwrap();
        // flock is per open file description: a second open conflicts even
        // within one process, as another process's would.
        let err = UpdateLock::acquire(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("another update is already running"),
            "{err}"
        );
        drop(held);
        UpdateLock::acquire(dir.path()).unwrap();
    }
}
