//! A downloaded release archive: its zipsign signature, checked against the
//! pinned keys with the archive's file name as the context (what `zipsign
//! sign tar` signs under), and the binary at its root, extracted whole.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

/// The binary's name at the archive's root.
pub fn binary_name() -> String {
    format!("{}{}", super::apply::BIN_NAME, std::env::consts::EXE_SUFFIX)
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the release is not signed by a key this device trusts")]
    Signature { details: String },
    #[error("cannot read the downloaded release: {0}")]
    Read(io::Error),
    #[error("the release archive has no {0} at its root")]
    NoBinary(String),
    #[error("the release archive is damaged")]
    Damaged { details: String },
    #[error("cannot write the new binary to {path}: {error}")]
    Write { path: String, error: io::Error },
}

impl ArchiveError {
    /// The raw text behind the words, for "Details".
    pub fn details(&self) -> String {
        match self {
            Self::Signature { details } | Self::Damaged { details } => details.clone(),
            other => other.to_string(),
        }
    }
}

/// Checks the signature of `archive`, published as `name`.
pub fn verify(archive: &Path, name: &str, keys: &[[u8; 32]]) -> Result<(), ArchiveError> {
    let keys = zipsign_api::verify::collect_keys(keys.iter().copied().map(Ok)).map_err(|e| {
        ArchiveError::Signature {
            details: format!("the pinned keys: {e}"),
        }
    })?;
    let mut file = File::open(archive).map_err(ArchiveError::Read)?;
    zipsign_api::verify::verify_tar(&mut file, &keys, Some(name.as_bytes()))
        .map(|_| ())
        .map_err(|e| ArchiveError::Signature { details: chain(&e) })
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Extracts the binary at the archive's root to `dest` (created, fsynced,
/// executable). At most `max` bytes are written.
pub fn extract_binary(archive: &Path, dest: &Path, max: u64) -> Result<(), ArchiveError> {
    let wanted = binary_name();
    let damaged = |e: io::Error| ArchiveError::Damaged {
        details: e.to_string(),
    };
    let file = File::open(archive).map_err(ArchiveError::Read)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().map_err(damaged)? {
        let entry = entry.map_err(damaged)?;
        let path = entry.path().map_err(damaged)?.into_owned();
        let at_root = path.strip_prefix(".").unwrap_or(&path);
        if at_root != Path::new(&wanted) || !entry.header().entry_type().is_file() {
            continue;
        }
        let write = |error| ArchiveError::Write {
            path: dest.display().to_string(),
            error,
        };
        let mut out = File::create(dest).map_err(write)?;
        let copied = io::copy(&mut entry.take(max + 1), &mut out).map_err(damaged)?;
        if copied > max {
            return Err(ArchiveError::Damaged {
                details: format!("{wanted} is larger than {max} bytes"),
            });
        }
        out.flush().and_then(|()| out.sync_all()).map_err(write)?;
        drop(out);
        crate::fsutil::set_mode(dest, 0o755).map_err(write)?;
        return Ok(());
    }
    Err(ArchiveError::NoBinary(wanted))
}
