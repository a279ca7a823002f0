//! Durable, private files: the only way the agent writes state.
//!
//! A write goes to a temporary file in the same directory, is fsynced, renamed
//! over the target and the directory is fsynced, so a crash or a full disk at
//! any moment leaves either the old file or the new one, never a torn one.
//! Files are 0600 and their directories 0700 on Unix.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot create directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is {size} bytes, more than the {max} this file may have")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
}

impl FsError {
    /// The file or directory concerned.
    pub fn path(&self) -> &Path {
        match self {
            Self::CreateDir { path, .. }
            | Self::Write { path, .. }
            | Self::Read { path, .. }
            | Self::TooLarge { path, .. } => path,
        }
    }

    /// The OS error behind it, if there was one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Self::CreateDir { source, .. }
            | Self::Write { source, .. }
            | Self::Read { source, .. } => Some(source),
            Self::TooLarge { .. } => None,
        }
    }
}

/// Creates `dir` (and parents) and makes `dir` itself private (0700).
pub fn ensure_private_dir(dir: &Path) -> Result<(), FsError> {
    let err = |source| FsError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    set_mode(dir, 0o700).map_err(err)
}

/// Creates the log directory (and parents), mode 0750 as the systemd unit's
/// `LogsDirectoryMode` and the installer make it: the files in it are 0600,
/// the directory lets the service's group (adm-style log readers) list them.
/// Making it 0700 here undid what the unit set at every start.
pub fn ensure_log_dir(dir: &Path) -> Result<(), FsError> {
    let err = |source| FsError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    set_mode(dir, 0o750).map_err(err)
}

/// Atomically replaces `path` with `bytes`, mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    let tmp = dir.join(temp_name(file_name, std::process::id()));

    let result = (|| {
        let mut file = create_private(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the temporary file is ours and useless now.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Where [`write_atomic`] writes `file_name` first, in process `pid`:
/// `.NAME.tmp-PID`. [`stale_temp_pid`] must recognise exactly these.
fn temp_name(file_name: &OsStr, pid: u32) -> OsString {
    let mut name = OsString::from(".");
    name.push(file_name);
    name.push(format!("{TEMP_MARK}{pid}"));
    name
}

const TEMP_MARK: &str = ".tmp-";

/// The writer's pid if `name` is one of [`write_atomic`]'s temporary names
/// (`.NAME.tmp-PID`, NAME not empty), `None` for any other file.
pub fn temp_file_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (target, pid) = rest.rsplit_once(TEMP_MARK)?;
    if target.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether a temporary file found at start was left by an interrupted write:
/// only [`write_atomic`]'s names, never this process's own, only files last
/// written before `started` (a writer that began after it is alive), and
/// only if the writer is gone (`writer_alive`, where the OS can tell).
pub fn is_stale_temp(
    name: &str,
    modified: SystemTime,
    started: SystemTime,
    own_pid: u32,
    writer_alive: impl FnOnce(u32) -> bool,
) -> bool {
    match temp_file_pid(name) {
        Some(pid) => pid != own_pid && modified < started && !writer_alive(pid),
        None => false,
    }
}

/// Removes the temporary files that interrupted writes (a crash, a kill, a
/// power cut between create and rename) left in `dir`, which must be a
/// directory only the agent writes. Returns the files removed; a file that
/// cannot be removed is logged and left. Not recursive.
pub fn remove_stale_temps(dir: &Path, started: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let own_pid = std::process::id();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // symlink_metadata: a planted link is judged, and removed, as itself.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let Ok(modified) = meta.modified() else {
            continue;
        };
        if !meta.is_file() || !is_stale_temp(name, modified, started, own_pid, process_alive) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted write");
                removed.push(path);
            }
            Err(error) => tracing::warn!(
                path = %path.display(),
                %error,
                "cannot remove a temporary file left by an interrupted write"
            ),
        }
    }
    removed
}

/// Whether process `pid` exists. On Unix signal 0 asks without sending
/// anything; EPERM means it exists under another user.
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Windows: no cheap, race-free check here; the file's age (older than the
/// agent's start) and a pid that is not ours decide alone. A write takes
/// milliseconds, so a live writer's file is younger than the start.
#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    false
}

/// Reads a whole file, refusing files larger than `max` bytes so that a
/// planted huge file cannot exhaust memory. `Ok(None)` when it does not exist.
pub fn read_capped(path: &Path, max: u64) -> Result<Option<Vec<u8>>, FsError> {
    let err = |source| FsError::Read {
        path: path.to_owned(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let size = file.metadata().map_err(err)?.len();
    if size > max {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
            size,
            max,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    io::Read::read_to_end(&mut io::Read::take(file, max + 1), &mut bytes).map_err(err)?;
    if bytes.len() as u64 > max {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(Some(bytes))
}

/// Write access to a new or existing file, created 0600 on Unix. On Windows
/// the state directory's ACL (set by the installer) is what keeps files
/// private; new files inherit it.
fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

fn create_private(path: &Path) -> io::Result<File> {
    private_options().truncate(true).open(path)
}

/// Opens `path` to write in place (created 0600 if missing): for a journal
/// appended to, such as the report queue, where a whole-file replace per
/// record would cost too much. Everything else writes with [`write_atomic`].
pub fn open_private(path: &Path) -> io::Result<File> {
    private_options().truncate(false).open(path)
}

#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
pub fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows has no directory fsync; MoveFileEx with REPLACE_EXISTING (what
    // std's rename uses) is the durable primitive there.
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[allow(clippy::unwrap_used)] // a helper, so allow-unwrap-in-tests does not reach it
    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_private_files_in_private_dirs_and_replaces_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let logs = tmp.path().join("var/log/rampart");
        ensure_log_dir(&logs).unwrap();
        assert_eq!(mode(&logs), 0o750);
        let file = dir.join("mfa.json");
        write_atomic(&file, b"first version, rather long").unwrap();
        write_atomic(&file, b"second").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"second");
        assert_eq!(mode(&file), 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["mfa.json"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("policy.json");
        write_atomic(&file, b"good").unwrap();
        // Make the directory unwritable: the temporary file cannot be created.
        // (Root ignores directory modes, so only assert where it matters.)
        set_mode(tmp.path(), 0o500).unwrap();
        let result = write_atomic(&file, b"bad");
        set_mode(tmp.path(), 0o700).unwrap();
        if rustix::process::geteuid().is_root() {
            result.unwrap();
        } else {
            let err = result.unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("cannot write {}", file.display())),
                "{err}"
            );
            assert_eq!(fs::read(&file).unwrap(), b"good");
        }
    }

    #[test]
    fn an_impossible_target_is_an_error_that_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let not_a_dir = tmp.path().join("file");
        fs::write(&not_a_dir, b"x").unwrap();
        let err = write_atomic(&not_a_dir.join("state.json"), b"y").unwrap_err();
        assert!(matches!(err, FsError::Write { .. }), "{err}");
        assert_eq!(fs::read(&not_a_dir).unwrap(), b"x");
    }

    #[test]
    fn stale_temporary_files_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        let plant = |name: &str| {
            let path = dir.join(name);
            let file = File::create(&path).unwrap();
            file.set_modified(past).unwrap();
            path
        };
        // A writer that has exited, as after a kill -9 between create and rename.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let stale = plant(&format!(".policy-lkg.json.tmp-{}", gone.id()));
        // A writer that is still running (pid 1 always is), and this process.
        let live = plant(".update-floor.json.tmp-1");
        let own = plant(&format!(".mfa.json.tmp-{}", std::process::id()));
        let unrelated = plant("policy-lkg.json");
        let lookalike = plant(&format!("notes.tmp-{}", gone.id()));
        fs::create_dir(dir.join(format!(".d.tmp-{}", gone.id()))).unwrap();
        let young = dir.join(format!(".queue.tmp-{}", gone.id()));
        let started = SystemTime::now();
        File::create(&young)
            .unwrap()
            .set_modified(started + std::time::Duration::from_secs(1))
            .unwrap();

        assert_eq!(
            remove_stale_temps(dir, started),
            std::slice::from_ref(&stale)
        );
        assert!(!stale.exists());
        for kept in [&live, &own, &unrelated, &lookalike, &young] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        assert!(dir.join(format!(".d.tmp-{}", gone.id())).is_dir());
        assert!(remove_stale_temps(&dir.join("absent"), started).is_empty());
    }

    #[test]
    fn read_capped_refuses_large_files_and_tolerates_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("big");
        fs::write(&file, vec![0u8; 100]).unwrap();
        assert!(matches!(
            read_capped(&file, 99),
            Err(FsError::TooLarge { size: 100, .. })
        ));
        assert_eq!(read_capped(&file, 100).unwrap().unwrap().len(), 100);
        assert_eq!(read_capped(&tmp.path().join("absent"), 10).unwrap(), None);
    }
}

#[cfg(test)]
mod temp_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_write_atomic_names_are_temporary_files() {
        let ours = temp_name(OsStr::new("policy-lkg.json"), 4242);
        assert_eq!(ours, ".policy-lkg.json.tmp-4242");
        assert_eq!(temp_file_pid(ours.to_str().unwrap()), Some(4242));
        assert_eq!(temp_file_pid(".a.tmp-b.tmp-7"), Some(7));
        for other in [
            "policy-lkg.json",
            "policy-lkg.json.tmp-4242", // no leading dot: not ours
            ".tmp-4242",                // no target name
            ".policy-lkg.json.tmp-",
            ".policy-lkg.json.tmp-42x",
            ".policy-lkg.json.tmp--1",
            ".policy-lkg.json.tmp-99999999999",
            ".policy-lkg.json.swp",
        ] {
            assert_eq!(temp_file_pid(other), None, "{other}");
        }
    }

    #[test]
    fn stale_means_another_dead_writer_before_the_start() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let before = start - Duration::from_secs(1);
        let name = ".mfa-1000.json.tmp-77";
        let dead = |_| false;
        assert!(is_stale_temp(name, before, start, 1, dead));
        assert!(!is_stale_temp(name, before, start, 77, dead), "our own");
        assert!(
            !is_stale_temp(name, start, start, 1, dead),
            "not older than the start"
        );
        assert!(
            !is_stale_temp(name, before, start, 1, |pid| pid == 77),
            "its writer is alive"
        );
        assert!(!is_stale_temp("mfa-1000.json", before, start, 1, dead));
    }
}
