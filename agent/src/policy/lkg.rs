//! The last-known-good copy on disk (`policy-lkg.json`): the last accepted
//! document, so that the agent has it when the server cannot be reached, and
//! the highest serial ever accepted, the floor that neither a restart nor a
//! swap of source can lower. Only this file reads and writes it.

use std::path::Path;

use chrono::Utc;
use rampart_shared::policy::MAX_POLICY_BYTES;
use serde::{Deserialize, Serialize};

use super::PolicyStore;
use super::accept::AcceptedRecord;
use crate::fsutil;
use crate::storage::StateKind;

/// The state file's name in `state_dir`.
pub const LKG_FILE: &str = "policy-lkg.json";
const LKG_SCHEMA: u32 = 1;
/// A state file holds one policy and its signature; anything larger is not ours.
const MAX_LKG_BYTES: u64 = 3 * MAX_POLICY_BYTES as u64;

/// What the agent remembers across restarts (`policy-lkg.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedPolicy {
    pub schema: u32,
    /// The highest serial ever accepted: the floor for every source.
    pub highest_serial: u64,
    /// The last accepted document, to use when the server cannot be reached.
    pub last: Option<AcceptedRecord>,
}

impl Default for PersistedPolicy {
    fn default() -> Self {
        Self {
            schema: LKG_SCHEMA,
            highest_serial: 0,
            last: None,
        }
    }
}

impl PersistedPolicy {
    /// Reads the copy at agent start, never failing: a missing file is a
    /// first start; an unreadable, damaged or unknown one is ignored (the
    /// store starts from the next source down) and the reason returned for
    /// the status.
    pub(super) fn read(path: &Path) -> (Self, Option<String>) {
        match fsutil::read_capped(path, MAX_LKG_BYTES) {
            Ok(None) => (Self::default(), None),
            Ok(Some(bytes)) => match serde_json::from_slice::<Self>(&bytes) {
                Ok(p) if p.schema == LKG_SCHEMA => (p, None),
                Ok(p) => (
                    Self::default(),
                    Some(format!(
                        "{}: unknown schema {}, ignored",
                        path.display(),
                        p.schema
                    )),
                ),
                Err(e) => (
                    Self::default(),
                    Some(format!("{} is damaged ({e}), ignored", path.display())),
                ),
            },
            Err(e) => (Self::default(), Some(e.to_string())),
        }
    }
}

impl PolicyStore {
    /// After a failed save: tries again (housekeeping), so that the copy is
    /// on disk once space returns, not only at the next accepted policy.
    pub fn retry_save(&mut self) {
        if self.save_failure.get().is_some() {
            self.save();
        }
    }

    /// The save that loading at start-up put off, once the agent answers.
    /// Until then a crash loses nothing: the next start reads the same
    /// sources again.
    pub fn save_deferred(&mut self) {
        if std::mem::take(&mut self.save_pending) {
            self.save();
        }
    }

    /// Writes `policy-lkg.json`; a failure is logged, kept for the status
    /// (`storage`) and returned in words.
    pub(super) fn save(&mut self) -> Option<String> {
        if self.defer_saves {
            self.save_pending = true;
            return None;
        }
        let bytes = match serde_json::to_vec_pretty(&self.persisted) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!("the policy copy cannot be encoded, so it is not saved: {e}");
                return Some(e.to_string());
            }
        };
        let result = fsutil::ensure_private_dir(&self.state_dir)
            .and_then(|()| fsutil::write_atomic(&self.lkg_path, &bytes));
        self.save_failure
            .record(StateKind::PolicyCopy, &result, Utc::now());
        result.err().map(|e| e.to_string())
    }
}
