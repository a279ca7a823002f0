//! The managed local file (MDM): read when the agent starts, when the file
//! changes and after a reset; a remote policy in force outranks it.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rampart_shared::policy::MAX_POLICY_BYTES;
use rampart_shared::status::PolicySource;

use super::accept::{AcceptedRecord, Candidate};
use super::continuity::{self, ManagedOffer};
use super::{Applied, PolicyStore, fetch};
use crate::fsutil;

impl PolicyStore {
    /// Re-reads the managed file (at start, and when it changes on disk). A
    /// remote policy in force outranks it: then this only reports problems.
    /// A file that is gone or rejected keeps the policy in force (see
    /// [`continuity`]).
    pub fn reload_managed(&mut self, now: DateTime<Utc>) -> Applied {
        let mut applied = Applied::nothing();
        if self.in_force.origin == PolicySource::Remote && self.url.is_some() {
            return applied;
        }
        let document = match fsutil::read_capped(&self.managed_path, MAX_POLICY_BYTES as u64) {
            Ok(Some(d)) => d,
            Ok(None) => {
                // Withdrawn, or deleted by someone else: either way not a
                // reason to lower the serial. `policy reset` is.
                self.keep(ManagedOffer::Missing, &mut applied);
                return applied;
            }
            Err(e) => {
                self.reject_managed(format!("managed policy file rejected: {e}"), &mut applied);
                return applied;
            }
        };
        let mut sig_path = self.managed_path.clone().into_os_string();
        sig_path.push(".minisig");
        let signature = match fsutil::read_capped(
            &PathBuf::from(sig_path),
            fetch::MAX_SIGNATURE_BYTES as u64,
        ) {
            Ok(Some(s)) => Some(String::from_utf8_lossy(&s).into_owned()),
            Ok(None) => None,
            Err(e) => {
                self.reject_managed(format!("managed policy file rejected: {e}"), &mut applied);
                return applied;
            }
        };
        let record = AcceptedRecord {
            document: String::from_utf8_lossy(&document).into_owned(),
            signature: signature.clone(),
            serial: 0,
            source: PolicySource::ManagedFile,
            url: None,
            fetched_at: now,
            etag: None,
            last_modified: None,
        };
        let candidate = Candidate {
            document: &document,
            signature: signature.as_deref(),
            source: PolicySource::ManagedFile,
        };
        self.take_decision(candidate, record, now, &mut applied);
        if applied.rejected.is_some() {
            self.keep(ManagedOffer::Rejected, &mut applied);
        }
        applied
    }

    fn reject_managed(&mut self, why: String, applied: &mut Applied) {
        tracing::warn!("policy: {why}");
        self.error = Some(why.clone());
        self.error_from_poll = false;
        applied.rejected = Some(why);
        self.keep(ManagedOffer::Rejected, applied);
    }

    /// The managed file offers nothing usable: keep what is in force, and
    /// say so.
    fn keep(&mut self, offer: ManagedOffer, applied: &mut Applied) {
        let kept = continuity::kept_after_managed(self.in_force.held(), offer);
        if let Some(kept) = &kept {
            if self.kept.as_ref() != Some(kept) {
                tracing::warn!("policy: {}", kept.message);
            }
            if self.in_force.source != PolicySource::LastKnownGood {
                self.in_force.source = PolicySource::LastKnownGood;
                applied.changed = true;
            }
        }
        self.kept = kept;
    }
}
