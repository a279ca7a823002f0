//! The version floor: the highest version ever installed on this device,
//! kept in the state directory. Nothing below it is installed, whatever the
//! feed says and whoever signed it.

use std::path::{Path, PathBuf};

use rampart_shared::version::Version;
use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};

const MAX_FLOOR_BYTES: u64 = 4096;

#[derive(Debug, Serialize, Deserialize)]
struct FloorFile {
    floor: Version,
}

#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path} is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("update-floor.json")
}

/// The floor: the stored one or `current`, whichever is higher. A damaged
/// file is an error, not a reset: resetting would reopen downgrades.
pub fn load(state_dir: &Path, current: Version) -> Result<Version, FloorError> {
    let file = path(state_dir);
    let Some(bytes) = fsutil::read_capped(&file, MAX_FLOOR_BYTES)? else {
        return Ok(current);
    };
    let stored: FloorFile = serde_json::from_slice(&bytes).map_err(|e| FloorError::Damaged {
        path: file,
        message: e.to_string(),
    })?;
    Ok(stored.floor.max(current))
}

/// Raises the floor to `version` (never lowers it).
pub fn raise(state_dir: &Path, version: Version) -> Result<Version, FloorError> {
    let floor = load(state_dir, version)?;
    fsutil::ensure_private_dir(state_dir)?;
    let bytes = serde_json::to_vec(&FloorFile { floor }).map_err(|e| FloorError::Damaged {
        path: path(state_dir),
        message: e.to_string(),
    })?;
    fsutil::write_atomic(&path(state_dir), &bytes)?;
    Ok(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_only_goes_up_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert_eq!(load(dir.path(), v("1.0.0")).unwrap(), v("1.0.0"));
        assert_eq!(raise(dir.path(), v("1.2.0")).unwrap(), v("1.2.0"));
        assert_eq!(raise(dir.path(), v("1.1.0")).unwrap(), v("1.2.0"));
        assert_eq!(load(dir.path(), v("1.0.0")).unwrap(), v("1.2.0"));
        std::fs::write(path(dir.path()), b"{").unwrap();
        assert!(matches!(
            load(dir.path(), v("1.0.0")),
            Err(FloorError::Damaged { .. })
        ));
    }
}
