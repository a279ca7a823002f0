//! An administrator's way back to the built-in default (`rampart-agent
//! policy reset`): a request file in the state directory, carried out by
//! the agent, at start or on the next housekeeping tick.

use chrono::{DateTime, Utc};

use super::{Applied, InForce, PolicyStore};

/// An administrator's request to go back to the built-in default, in
/// `state_dir` (written by `rampart-agent policy reset`). The state directory
/// is writable only by root (the agent's own user in dev mode), so the file
/// system is what makes this an administrator's act.
pub const RESET_REQUEST_FILE: &str = "policy-reset-request";

impl PolicyStore {
    /// Whether an administrator has asked for the built-in default (a
    /// [`RESET_REQUEST_FILE`] in the state directory); if so, does it.
    /// `None` when nothing was asked.
    pub fn take_reset_request(&mut self, now: DateTime<Utc>) -> Option<Applied> {
        let request = self.state_dir.join(RESET_REQUEST_FILE);
        if std::fs::symlink_metadata(&request).is_err() {
            return None;
        }
        tracing::warn!(
            serial = self.in_force.policy.serial,
            source = self.in_force.source.label(),
            "an administrator asked for the built-in default policy"
        );
        let applied = self.reset_to_builtin(now);
        // Only once the reset is on disk: a request that could not be
        // carried out durably is tried again (next minute, next start).
        if applied.persist_error.is_none()
            && let Err(e) = std::fs::remove_file(&request)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(
                "the policy reset is done, but its request {} could not be removed ({e}); it will be carried out again",
                request.display()
            );
        }
        Some(applied)
    }

    /// Puts the built-in default in force and forgets the last accepted
    /// document, keeping the serial floor (an old signed policy must not be
    /// replayable afterwards). Then reads the managed file again, as a
    /// restart would: a newer one there is accepted at once.
    pub fn reset_to_builtin(&mut self, now: DateTime<Utc>) -> Applied {
        self.in_force = InForce::builtin();
        self.persisted.last = None;
        self.kept = None;
        self.error = None;
        self.error_from_poll = false;
        let persist_error = self.save();
        let mut applied = self.reload_managed(now);
        applied.changed = true;
        applied.persist_error = applied.persist_error.or(persist_error);
        tracing::info!(
            serial = self.in_force.policy.serial,
            floor = self.persisted.highest_serial,
            source = self.in_force.source.label(),
            "policy reset by an administrator"
        );
        applied
    }
}
