//! The version floor: the highest version ever installed on this device,
//! kept in the state directory, and the versions this device marked bad (a
//! release that did not reach "serving" after its swap and was rolled
//! back). Nothing below the floor is installed, whatever the feed says and
//! whoever signed it; a bad version is never offered here again.

use std::path::{Path, PathBuf};

use semver::Version as Semver;
use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};

const MAX_FLOOR_BYTES: u64 = 64 * 1024;

/// `update-floor.json`. Versions as text: a beta floor (`0.3.0-beta.2`) is
/// a version too. Files written before `bad` existed read as none bad.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FloorFile {
    floor: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    bad: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path} is damaged: {message}")]
    Damaged { path: PathBuf, message: String },
}

/// What the file holds, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Floor {
    pub floor: Semver,
    pub bad: Vec<Semver>,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("update-floor.json")
}

fn read(state_dir: &Path) -> Result<FloorFile, FloorError> {
    let file = path(state_dir);
    let Some(bytes) = fsutil::read_capped(&file, MAX_FLOOR_BYTES)? else {
        return Ok(FloorFile::default());
    };
    serde_json::from_slice(&bytes).map_err(|e| FloorError::Damaged {
        path: file,
        message: e.to_string(),
    })
}

fn parse(state_dir: &Path, text: &str) -> Result<Semver, FloorError> {
    super::release::parse_tag(text).map_err(|e| FloorError::Damaged {
        path: path(state_dir),
        message: e.to_string(),
    })
}

/// The floor (the stored one or `current`, whichever is higher) and the
/// bad versions. A damaged file is an error, not a reset: resetting would
/// reopen downgrades.
pub fn load(state_dir: &Path, current: &Semver) -> Result<Floor, FloorError> {
    let file = read(state_dir)?;
    let stored = file
        .floor
        .as_deref()
        .map(|f| parse(state_dir, f))
        .transpose()?;
    let bad = file
        .bad
        .iter()
        .map(|b| parse(state_dir, b))
        .collect::<Result<Vec<_>, _>>()?;
    let floor = stored.map_or(current.clone(), |s| s.max(current.clone()));
    Ok(Floor { floor, bad })
}

fn write(state_dir: &Path, file: &FloorFile) -> Result<(), FloorError> {
    fsutil::ensure_private_dir(state_dir)?;
    let bytes = serde_json::to_vec(file).map_err(|e| FloorError::Damaged {
        path: path(state_dir),
        message: e.to_string(),
    })?;
    fsutil::write_atomic(&path(state_dir), &bytes)?;
    Ok(())
}

/// Raises the floor to `version` (never lowers it).
pub fn raise(state_dir: &Path, version: &Semver) -> Result<Semver, FloorError> {
    let mut file = read(state_dir)?;
    let floor = load(state_dir, version)?.floor;
    file.floor = Some(floor.to_string());
    write(state_dir, &file)?;
    Ok(floor)
}

/// Marks `version` bad on this device: never offered here again.
pub fn mark_bad(state_dir: &Path, version: &Semver) -> Result<(), FloorError> {
    let mut file = read(state_dir)?;
    let text = version.to_string();
    if !file.bad.contains(&text) {
        file.bad.push(text);
    }
    write(state_dir, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Semver {
        Semver::parse(s).unwrap()
    }

    #[test]
    fn the_floor_only_goes_up_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), &v("1.0.0")).unwrap().floor, v("1.0.0"));
        assert_eq!(raise(dir.path(), &v("1.2.0")).unwrap(), v("1.2.0"));
        assert_eq!(raise(dir.path(), &v("1.1.0")).unwrap(), v("1.2.0"));
        assert_eq!(load(dir.path(), &v("1.0.0")).unwrap().floor, v("1.2.0"));
        // A beta above it raises it; its release is above the beta.
        assert_eq!(
            raise(dir.path(), &v("1.3.0-beta.1")).unwrap(),
            v("1.3.0-beta.1")
        );
        assert!(load(dir.path(), &v("1.0.0")).unwrap().floor < v("1.3.0"));
        std::fs::write(path(dir.path()), b"{").unwrap();
        assert!(matches!(
            load(dir.path(), &v("1.0.0")),
            Err(FloorError::Damaged { .. })
        ));
    }

    #[test]
    fn bad_versions_are_kept_beside_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        // A floor file from before bad versions existed.
        std::fs::write(path(dir.path()), br#"{"floor": "1.2.0"}"#).unwrap();
        mark_bad(dir.path(), &v("1.3.0")).unwrap();
        mark_bad(dir.path(), &v("1.3.0")).unwrap();
        raise(dir.path(), &v("1.2.5")).unwrap();
        let floor = load(dir.path(), &v("1.0.0")).unwrap();
        assert_eq!(
            floor,
            Floor {
                floor: v("1.2.5"),
                bad: vec![v("1.3.0")]
            }
        );
    }
}
