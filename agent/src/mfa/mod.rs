//! MFA enrollment: the engine the service loop calls for every MFA command.
//!
//! # API
//!
//! ```text
//! MfaEngine::open(state_dir: &Path) -> Result<MfaEngine, FsError>
//! MfaEngine::open_with_cost(state_dir: &Path, cost: HashCost) -> Result<MfaEngine, FsError>
//! MfaEngine::handle(&mut self, peer: &Peer, owner: &UserKey, command: &MfaCommand, ctx: &Ctx)
//!     -> Result<EnrollmentView, MfaError>
//! MfaEngine::reply(&mut self, peer: &Peer, owner: &UserKey, command: &MfaCommand, ctx: &Ctx)
//!     -> EnrollmentView                       // handle, with any error inside the view
//! MfaEngine::section(&self, owner: &UserKey, policy: &Policy) -> MfaSection
//! MfaEngine::users(&self) -> impl Iterator<Item = &UserKey>
//! section::summary(&MfaSection) -> String     // "Setup in progress: verify a code"
//! MfaEngine::signin_owner(&self, user: &str, id: Option<&UserId>) -> Option<UserKey>
//! MfaEngine::signin_totp(&mut self, owner: &UserKey, code: &str, now) -> SigninResult
//! MfaEngine::recovery_candidates(&mut self, owner, now) -> Result<Vec<(usize, RecoveryHash)>, SigninResult>
//! recovery::find(&candidates, code) -> Result<Option<usize>, MfaError>   // off the loop
//! MfaEngine::finish_recovery(&mut self, owner, found, now) -> SigninResult
//! machine::authorize(&peer_id, peer_admin, &owner_id, &MfaCommand) -> Result<(), MfaError>
//! ```
//!
//! `owner` names whose enrollment the command is for: for a user's own window
//! it is `peer.key()`; root (support, IT) may name anyone. `Ctx` carries `now`,
//! the policy in force and the agent version, so the engine reads no clock.
//! The wire types (`MfaCommand`, `EnrollmentView`, …) live in
//! `rampart_shared::mfa` so the IPC protocol can carry them.
//!
//! Every command that changes an enrollment is written to its state file
//! before the reply is built; if that write fails the change is dropped in
//! memory too, so what the user sees is always what is on disk. A state file
//! that cannot be read makes that one user's MFA section an error (and only
//! root's `ResetEnrollment` can clear it); every other user carries on.
//!
//! Secrets: the TOTP secret leaves the agent only in `PairingInfo`, only
//! while the step is `pairing`; recovery codes only in the reply that creates
//! them; neither is ever logged (commands are logged by name).

pub mod duo;
pub mod error;
pub mod machine;
pub mod provider;
pub mod recovery;
pub mod section;
pub mod signin;
pub mod store;
#[cfg(test)]
pub(crate) mod test_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::Utc;
use rampart_shared::mfa::{EnrollmentStep, EnrollmentView, MfaCommand};
use rampart_shared::policy::Policy;
use rampart_shared::status::MfaSection;
use rampart_shared::user::UserId;

pub use error::MfaError;
use machine::Outcome;
pub use machine::{ComputerClock, Ctx, Enrollment, UserKey};
pub use recovery::HashCost;
pub use store::LoadError;

use crate::fsutil::{self, FsError};

/// Who is asking, as the socket's peer credentials and the OS say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: UserId,
    /// See [`crate::ipc::Peer::admin`].
    pub admin: bool,
    pub user_name: String,
}

impl Peer {
    /// The enrollment this peer drives from its own window.
    pub fn key(&self) -> UserKey {
        UserKey {
            id: self.id.clone(),
            name: self.user_name.clone(),
        }
    }
}

/// What [`MfaEngine::plan`] decided.
#[derive(Debug)]
pub enum Plan {
    Reply(Box<EnrollmentView>),
    Duo(duo::DuoCall),
}

#[derive(Debug)]
enum Slot {
    Loaded(Box<Enrollment>),
    /// The state file exists but cannot be read; the reason, for status.
    Broken(String),
}

#[derive(Debug)]
pub struct MfaEngine {
    dir: PathBuf,
    cost: HashCost,
    users: BTreeMap<UserKey, Slot>,
    /// The latest failed save of any user's state, until one succeeds.
    save_failure: crate::storage::LastFailure,
}

impl MfaEngine {
    pub fn open(state_dir: &Path) -> Result<Self, FsError> {
        Self::open_with_cost(state_dir, HashCost::PRODUCTION)
    }

    /// Creates the directory if needed and loads every user's state file.
    /// Only a directory that cannot be created or listed is an error.
    pub fn open_with_cost(state_dir: &Path, cost: HashCost) -> Result<Self, FsError> {
        fsutil::ensure_private_dir(state_dir)?;
        let entries = std::fs::read_dir(state_dir).map_err(|source| FsError::Read {
            path: state_dir.to_owned(),
            source,
        })?;
        let mut users = BTreeMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(owner) = name.to_str().and_then(store::owner_from_file_name) else {
                continue;
            };
            let slot = match store::load(state_dir, &owner) {
                Ok(Some(enrollment)) => Slot::Loaded(Box::new(enrollment)),
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(user = %owner.id, error = %e, "MFA state file unreadable");
                    Slot::Broken(match e {
                        LoadError::Corrupt { reason, .. } => reason,
                        other => other.to_string(),
                    })
                }
            };
            users.insert(owner, slot);
        }
        Ok(Self {
            dir: state_dir.to_owned(),
            cost,
            users,
            save_failure: Default::default(),
        })
    }

    /// Reads again the state files that could not be read (a "Refresh"):
    /// a file IT mended is loaded, one IT removed leaves the user not set
    /// up. Users whose state was read are left as they are (memory and
    /// disk agree: every change is saved). Returns how many changed.
    pub fn reload_broken(&mut self) -> usize {
        let broken: Vec<UserKey> = self
            .users
            .iter()
            .filter(|(_, slot)| matches!(slot, Slot::Broken(_)))
            .map(|(owner, _)| owner.clone())
            .collect();
        let mut changed = 0;
        for owner in broken {
            match store::load(&self.dir, &owner) {
                Ok(Some(enrollment)) => {
                    tracing::info!(user = %owner.id, "MFA state file readable again");
                    self.users.insert(owner, Slot::Loaded(Box::new(enrollment)));
                    changed += 1;
                }
                Ok(None) => {
                    tracing::info!(user = %owner.id, "unreadable MFA state file removed");
                    self.users.remove(&owner);
                    changed += 1;
                }
                Err(LoadError::Corrupt { reason, .. }) => {
                    self.users.insert(owner, Slot::Broken(reason));
                }
                Err(other) => {
                    self.users.insert(owner, Slot::Broken(other.to_string()));
                }
            }
        }
        changed
    }

    /// Saves one user's state; a failure is logged and kept for the status
    /// (`storage`) until a save succeeds.
    fn save(&mut self, enrollment: &Enrollment) -> Result<(), FsError> {
        let result = store::save(&self.dir, enrollment);
        self.save_failure
            .record(crate::storage::StateKind::MfaState, &result, Utc::now());
        result
    }

    /// The latest failed save, until one succeeds.
    pub fn storage_failure(&self) -> Option<&rampart_shared::status::StorageFailure> {
        self.save_failure.get()
    }

    /// Users with a state file (readable or not).
    pub fn users(&self) -> impl Iterator<Item = &UserKey> {
        self.users.keys()
    }

    pub fn handle(
        &mut self,
        peer: &Peer,
        owner: &UserKey,
        command: &MfaCommand,
        ctx: &Ctx<'_>,
    ) -> Result<EnrollmentView, MfaError> {
        machine::authorize(&peer.id, peer.admin, &owner.id, command)?;
        let action = Action {
            peer,
            command: command.name(),
            call: None,
            resets: *command == MfaCommand::ResetEnrollment,
        };
        self.transact(owner, action, ctx, |e, cost| e.apply(command, ctx, cost))
    }

    /// One change to `owner`'s enrollment, the only way one is made: applied
    /// to a copy, written to the state file when it changed (or replaces a
    /// file that could not be read), kept in memory only once written, then
    /// logged. A failed write drops the change, with any recovery codes it
    /// created, which were never shown: what the user sees is on disk.
    fn transact(
        &mut self,
        owner: &UserKey,
        action: Action<'_>,
        ctx: &Ctx<'_>,
        change: impl FnOnce(&mut Enrollment, HashCost) -> Result<Outcome, MfaError>,
    ) -> Result<EnrollmentView, MfaError> {
        let (current, was_broken) = match self.users.get(owner) {
            // Only a reset may replace a state file that cannot be read.
            Some(Slot::Broken(_)) if action.resets => (None, true),
            Some(Slot::Broken(reason)) => {
                return Err(MfaError::StateCorrupt {
                    reason: reason.clone(),
                });
            }
            Some(Slot::Loaded(e)) => (Some((**e).clone()), false),
            None => (None, false),
        };
        let before = current
            .unwrap_or_else(|| Enrollment::new(owner.clone(), ctx.policy.mfa.provider.kind()));
        let mut next = before.clone();
        let result = change(&mut next, self.cost);
        if next != before || was_broken {
            self.save(&next)?;
            self.users
                .insert(owner.clone(), Slot::Loaded(Box::new(next.clone())));
        }
        action.log(owner, &next, &result);
        result.map(|outcome| next.view(ctx.policy, outcome.recovery_codes))
    }

    /// [`Self::handle`] for a client that wants the screen to draw either
    /// way: on failure, the user's current step with the error in it. A peer
    /// refused access gets the step only, never pairing data.
    pub fn reply(
        &mut self,
        peer: &Peer,
        owner: &UserKey,
        command: &MfaCommand,
        ctx: &Ctx<'_>,
    ) -> EnrollmentView {
        match self.handle(peer, owner, command, ctx) {
            Ok(view) => view,
            Err(error) => self.error_view(owner, &error, ctx),
        }
    }

    fn error_view(&self, owner: &UserKey, error: &MfaError, ctx: &Ctx<'_>) -> EnrollmentView {
        let mut view = match (error, self.users.get(owner)) {
            (MfaError::Forbidden(_), slot) | (_, slot @ (None | Some(Slot::Broken(_)))) => {
                let step = match slot {
                    Some(Slot::Loaded(e)) => e.visible_step(ctx.policy),
                    _ => Enrollment::new(owner.clone(), ctx.policy.mfa.provider.kind())
                        .visible_step(ctx.policy),
                };
                bare_view(step, ctx.policy)
            }
            (_, Some(Slot::Loaded(e))) => e.view(ctx.policy, None),
        };
        view.error = Some(error.view());
        view
    }

    /// The first half of a command: the Duo exchange it needs, if any; any
    /// other command is answered at once, as [`Self::reply`] does. The
    /// caller makes the exchange off the loop and hands Duo's answer to
    /// [`Self::finish_duo`].
    pub fn plan(
        &mut self,
        peer: &Peer,
        owner: &UserKey,
        command: &MfaCommand,
        ctx: &Ctx<'_>,
    ) -> Plan {
        match self.duo_call(peer, owner, command, ctx) {
            Ok(Some(call)) => Plan::Duo(call),
            Ok(None) => Plan::Reply(Box::new(self.reply(peer, owner, command, ctx))),
            Err(error) => {
                log_refusal(peer, owner, command.name(), &error);
                Plan::Reply(Box::new(self.error_view(owner, &error, ctx)))
            }
        }
    }

    fn duo_call(
        &self,
        peer: &Peer,
        owner: &UserKey,
        command: &MfaCommand,
        ctx: &Ctx<'_>,
    ) -> Result<Option<duo::DuoCall>, MfaError> {
        machine::authorize(&peer.id, peer.admin, &owner.id, command)?;
        match self.users.get(owner) {
            Some(Slot::Broken(_)) => Ok(None),
            Some(Slot::Loaded(e)) => duo::plan(e, command, ctx),
            None => duo::plan(
                &Enrollment::new(owner.clone(), ctx.policy.mfa.provider.kind()),
                command,
                ctx,
            ),
        }
    }

    /// The second half: applies Duo's answer to `call`, persists, and builds
    /// the reply. If the enrollment moved on while Duo was being asked (a
    /// reset, another window), the answer no longer applies and is dropped.
    /// `command` is `None` for a status refresh ([`Self::status_refresh`]).
    pub fn finish_duo(
        &mut self,
        peer: &Peer,
        owner: &UserKey,
        command: Option<&MfaCommand>,
        call: &duo::DuoCall,
        reply: duo::DuoReply,
        ctx: &Ctx<'_>,
    ) -> EnrollmentView {
        let result = self.apply_duo(peer, owner, command, call, reply, ctx);
        match result {
            Ok(view) => view,
            Err(error) => self.error_view(owner, &error, ctx),
        }
    }

    fn apply_duo(
        &mut self,
        peer: &Peer,
        owner: &UserKey,
        command: Option<&MfaCommand>,
        call: &duo::DuoCall,
        reply: duo::DuoReply,
        ctx: &Ctx<'_>,
    ) -> Result<EnrollmentView, MfaError> {
        let action = Action {
            peer,
            command: command.map_or("status_refresh", MfaCommand::name),
            call: Some(call.name()),
            resets: false,
        };
        self.transact(owner, action, ctx, |e, cost| {
            // A status refresh applies to whatever step the user is at.
            let still_applies =
                command.is_none_or(|c| duo::plan(e, c, ctx).ok().flatten().as_ref() == Some(call));
            if !still_applies {
                tracing::info!(
                    user = %owner.id,
                    call = call.name(),
                    "Duo answer dropped: the setup moved on"
                );
                return Err(MfaError::WrongStep {
                    current: e.visible_step(ctx.policy),
                });
            }
            e.apply_duo(call, reply, ctx, cost)
        })
    }

    /// The Duo call that refreshes `owner`'s status (the refresh button):
    /// `/preauth` for a user who has started a Duo setup.
    pub fn status_refresh(&self, owner: &UserKey, policy: &Policy) -> Option<duo::DuoCall> {
        if policy.mfa.provider.kind() != rampart_shared::policy::ProviderKind::Duo {
            return None;
        }
        let Some(Slot::Loaded(e)) = self.users.get(owner) else {
            return None;
        };
        let username = e.duo.as_ref()?.username.clone();
        Some(duo::DuoCall::Preauth { username })
    }

    /// A user's enrollment, when its state file could be read.
    pub fn enrollment(&self, owner: &UserKey) -> Option<&Enrollment> {
        match self.users.get(owner) {
            Some(Slot::Loaded(e)) => Some(e),
            _ => None,
        }
    }

    pub fn section(&self, owner: &UserKey, policy: &Policy) -> MfaSection {
        match self.users.get(owner) {
            Some(Slot::Loaded(e)) => section::section(Some(e), policy),
            Some(Slot::Broken(reason)) => section::broken_section(reason, policy),
            None => section::section(None, policy),
        }
    }
}

/// What a transaction's log line names: who asked, the command, and for
/// Duo's answer, the call. Commands are logged by name only (they carry
/// codes).
struct Action<'a> {
    peer: &'a Peer,
    command: &'static str,
    call: Option<&'static str>,
    /// A reset, the one command that may replace an unreadable state file.
    resets: bool,
}

impl Action<'_> {
    fn log(&self, owner: &UserKey, next: &Enrollment, result: &Result<Outcome, MfaError>) {
        let (peer, command) = (&self.peer.id, self.command);
        match (result, self.call) {
            (Ok(_), None) => tracing::info!(user = %owner.id, peer = %peer, command,
                step = ?next.step, "MFA command applied"),
            (Ok(_), Some(call)) => tracing::info!(user = %owner.id, peer = %peer, command,
                call, step = ?next.step, "Duo answer applied"),
            (Err(e), None) => log_refusal(self.peer, owner, command, e),
            (Err(e), Some(call)) => tracing::warn!(user = %owner.id, peer = %peer, command,
                call, code = ?e.code(), "Duo answer refused the command"),
        }
    }
}

/// A refused command, logged once a minute per user at most: a user (or a
/// script) retrying a wrong code must not flood the log.
fn log_refusal(peer: &Peer, owner: &UserKey, command: &str, error: &MfaError) {
    if crate::logging::first_refusal(Some(&peer.id)) {
        tracing::warn!(
            user = %owner.id,
            peer = %peer.id,
            command,
            code = ?error.code(),
            "MFA command refused (further refusals from this user are summarised once a minute)"
        );
    }
}

/// Why the diagnose bundle's secret scan cannot see every stored secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretScanError {
    // The OS's words are part of the message, not a `source`: an error
    // chain would say them twice.
    #[error("cannot list {dir}: {error}")]
    List { dir: PathBuf, error: std::io::Error },
    /// A state file exists but cannot be read (permissions, most often).
    #[error("{0}")]
    Unreadable(FsError),
}

/// Every secret stored under `state_dir` (the MFA state directory),
/// labelled by owner, for the diagnose bundle's secret scan. An error when a
/// state file exists but cannot be read: the scan would be blind.
pub fn stored_secrets(state_dir: &Path) -> Result<Vec<(String, StoredSecret)>, SecretScanError> {
    let entries = match std::fs::read_dir(state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(SecretScanError::List {
                dir: state_dir.to_owned(),
                error,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(store::owner_from_file_name) else {
            continue;
        };
        match store::load(state_dir, &owner) {
            Ok(Some(e)) => {
                if let Some(secret) = e.secret {
                    out.push((
                        format!("TOTP secret of {}", owner.id),
                        StoredSecret::Totp(secret),
                    ));
                }
                if let Some(duo::DuoPhase::Activate {
                    activation_code,
                    activation_url,
                    ..
                }) = e.duo.map(|d| d.phase)
                {
                    let label = format!("Duo activation of {}", owner.id);
                    out.push((label.clone(), StoredSecret::Text(activation_code)));
                    out.push((label, StoredSecret::Text(activation_url)));
                }
            }
            Ok(None) => {}
            // Unreadable (permissions): the scan would be blind.
            Err(LoadError::Io(e)) => return Err(SecretScanError::Unreadable(e)),
            // A corrupt or future file yields no secret to scan for; the
            // bundle never includes state files, so nothing of it can leak.
            Err(_) => {}
        }
    }
    Ok(out)
}

/// A secret as the bundle scan looks for it.
pub enum StoredSecret {
    /// In every encoding a TOTP secret may take.
    Totp(rampart_shared::totp::Secret),
    /// As it is (a Duo activation code or link).
    Text(String),
}

fn bare_view(step: EnrollmentStep, policy: &Policy) -> EnrollmentView {
    EnrollmentView {
        step,
        provider: policy.mfa.provider.kind(),
        pairing: None,
        recovery_codes: None,
        recovery_codes_left: None,
        enrolled_at: None,
        evidence: None,
        error: None,
        duo: None,
    }
}

#[cfg(test)]
mod tests;
