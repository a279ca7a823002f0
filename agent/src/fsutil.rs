//! Durable, private files: the only way the agent writes state.
//!
//! A write goes to a temporary file in the same directory, is fsynced, renamed
//! over the target and the directory is fsynced, so a crash or a full disk at
//! any moment leaves either the old file or the new one, never a torn one.
//! Files are 0600 and their directories 0700 on Unix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

/// Creates `dir` (and parents) and makes `dir` itself private (0700).
pub fn ensure_private_dir(dir: &Path) -> Result<(), FsError> {
    let err = |source| FsError::CreateDir {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    set_mode(dir, 0o700).map_err(err)
}

/// Atomically replaces `path` with `bytes`, mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| err(io::Error::new(io::ErrorKind::InvalidInput, "no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);

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

#[cfg(unix)]
fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> io::Result<File> {
    // On Windows the state directory's ACL (set by the installer) is what
    // keeps files private; new files inherit it.
    OpenOptions::new().write(true).create(true).truncate(true).open(path)
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

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)] // clippy does not see `all(test, unix)` as test code
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_private_files_in_private_dirs_and_replaces_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("mfa.json");
        write_atomic(&file, b"first version, rather long").unwrap();
        write_atomic(&file, b"second").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"second");
        assert_eq!(mode(&file), 0o600);
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
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
            assert!(err.starts_with(&format!("cannot write {}", file.display())), "{err}");
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
    fn read_capped_refuses_large_files_and_tolerates_missing_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("big");
        fs::write(&file, vec![0u8; 100]).unwrap();
        assert!(matches!(read_capped(&file, 99), Err(FsError::TooLarge { size: 100, .. })));
        assert_eq!(read_capped(&file, 100).unwrap().unwrap().len(), 100);
        assert_eq!(read_capped(&tmp.path().join("absent"), 10).unwrap(), None);
    }
}
