//! Signed policy from IT: where it comes from, when it is accepted, and what
//! stays in force when something goes wrong.
//!
//! # Sources, highest first
//! 1. the remote URL from the install config (`policy.json` and
//!    `policy.json.minisig` beside it), or its last-known-good copy when the
//!    server cannot be reached;
//! 2. the managed local file ([`AgentPaths::managed_policy`], plus
//!    `policy.json.minisig` beside it unless the install config sets
//!    `allow_unsigned_local_policy`);
//! 3. the built-in default ([`Policy::default`]).
//!
//! # The rule ([`accept::decide`], pure)
//! parse and validate (`parse_policy`, JSON paths) → verify the minisign
//! signature against any pinned key → serial at least the highest accepted
//! one (equal only for the very same bytes, which is a no-op) → not expired.
//! A rejection keeps the policy in force and records the reason, which
//! [`PolicyStore::section`] reports as `PolicySection.error`.
//!
//! Serials are one series per device whatever the source: the highest
//! accepted serial is persisted, so neither a restart nor a swap of source
//! can roll the device back.
//!
//! # API for the service loop
//! ```ignore
//! let config = InstallConfig::load(&paths.install_config())?;      // Option<InstallConfig>
//! let mut store = PolicyStore::load_at_start(&paths, config.as_ref(), Utc::now());
//! // store.in_force() is usable at once: last-known-good, managed file or built-in.
//! loop {
//!     // at startup and whenever `next_poll` elapses:
//!     let outcome = store.fetch().await;                // I/O only, &self
//!     // or, to poll without borrowing the store:
//!     //   let poll = store.poll_request();  tokio::spawn(poll.run())
//!     let applied = store.apply(outcome, Utc::now());   // decide + persist
//!     if applied.changed { /* re-evaluate MFA etc. with store.in_force() */ }
//!     sleep(applied.next_poll.unwrap_or(FOREVER));      // None: no policy_url
//! }
//! // When the managed file changes on disk: store.reload_managed(Utc::now()).
//! // Once in a while (e.g. each clock check): store.check_expiry(Utc::now()).
//! // Status: store.section(); errors of the last poll: store.fetch_error().
//! ```
//! Files: reads go through [`fsutil::read_capped`], the one state file
//! (`state_dir/policy-lkg.json`) is written with [`fsutil::write_atomic`].
//!
//! # Where each part lives
//! This module holds the store and the one rule that changes it
//! (`take_decision`, `check_expiry`); each way in is its own file:
//! `start` (the order of sources at agent start), `poll` (the remote URL),
//! `managed` (the managed file), `reset` (an administrator's request for the
//! built-in default), and `lkg` (the last-known-good copy and serial floor
//! on disk).

pub mod accept;
pub mod continuity;
pub mod fetch;
mod lkg;
mod managed;
mod poll;
mod reset;
pub mod schedule;
pub mod signing;
mod start;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::policy::Policy;
use rampart_shared::status::{FetchFailure, KeptPolicy, PolicySection, PolicySource};

use crate::storage::LastFailure;
use accept::{AcceptedRecord, Candidate, Decision, Trust};
use continuity::Held;
pub use fetch::{FetchError, FetchOutcome, FetchTimeouts, Fetched, Fetcher};
pub use lkg::{LKG_FILE, PersistedPolicy};
pub use poll::PollRequest;
pub use reset::RESET_REQUEST_FILE;
use verify::PinnedKeys;

/// The result of [`PolicyStore::apply`] and friends.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The policy in force or its source changed: re-evaluate what depends on it.
    pub changed: bool,
    /// Why the candidate was rejected, when it was (also in `section().error`).
    pub rejected: Option<String>,
    /// When to poll again (jittered; backed off after errors). `None` when no
    /// policy URL is configured.
    pub next_poll: Option<Duration>,
    /// The accepted policy could not be saved: it is in force, but a restart
    /// would not know it. Logged as well.
    pub persist_error: Option<String>,
}

impl Applied {
    /// Nothing changed, nothing rejected, no poll scheduled: each way in
    /// starts from this and says what it did.
    fn nothing() -> Self {
        Self {
            changed: false,
            rejected: None,
            next_poll: None,
            persist_error: None,
        }
    }
}

#[derive(Debug, Clone)]
struct InForce {
    policy: Policy,
    /// What the status shows: a kept copy is `LastKnownGood`.
    source: PolicySource,
    /// Where it was accepted from (`Remote`, `ManagedFile`), or `Builtin`:
    /// decides whether the managed file is consulted and what a kept copy
    /// is called.
    origin: PolicySource,
    fetched_at: Option<DateTime<Utc>>,
}

impl InForce {
    fn builtin() -> Self {
        Self {
            policy: Policy::default(),
            source: PolicySource::Builtin,
            origin: PolicySource::Builtin,
            fetched_at: None,
        }
    }

    fn held(&self) -> Held {
        Held {
            serial: self.policy.serial,
            origin: self.origin,
        }
    }
}

/// The policy manager: which policy is in force, and why.
#[derive(Debug)]
pub struct PolicyStore {
    lkg_path: PathBuf,
    state_dir: PathBuf,
    managed_path: PathBuf,
    url: Option<reqwest::Url>,
    keys: PinnedKeys,
    allow_unsigned_local: bool,
    fetcher: Fetcher,
    persisted: PersistedPolicy,
    in_force: InForce,
    /// Set while the policy in force is kept although its source no longer
    /// offers it (see [`continuity`]).
    kept: Option<KeptPolicy>,
    error: Option<String>,
    /// `error` is the rejection of a document a poll brought: a later poll
    /// that brings none clears it (it is no longer what the server serves,
    /// as far as the agent knows). Other errors (install config, managed
    /// file, expiry) stay until their own source changes.
    error_from_poll: bool,
    /// The latest failed write of `policy-lkg.json`, until one succeeds.
    save_failure: LastFailure,
    /// While loading at start-up, saves wait (`save_pending`) until the
    /// agent answers: the first status must not wait on an fsync.
    defer_saves: bool,
    save_pending: bool,
    fetch_error: Option<FetchError>,
    /// When `fetch_error` happened.
    fetch_failed_at: Option<DateTime<Utc>>,
    consecutive_errors: u32,
    rng: fastrand::Rng,
}

impl PolicyStore {
    fn trust(&self) -> Trust<'_> {
        Trust {
            keys: &self.keys,
            allow_unsigned_local_policy: self.allow_unsigned_local,
        }
    }

    /// The policy in force and where it came from.
    pub fn in_force(&self) -> (&Policy, PolicySource) {
        (&self.in_force.policy, self.in_force.source)
    }

    /// The status section for `rampart-agent status` and the app.
    pub fn section(&self) -> PolicySection {
        let policy = &self.in_force.policy;
        PolicySection {
            source: self.in_force.source,
            serial: policy.serial,
            fetched_at: self.in_force.fetched_at,
            error: self.error.clone(),
            kept: self.kept.clone(),
            fetch_error: self
                .fetch_error
                .as_ref()
                .zip(self.fetch_failed_at)
                .map(|(e, at)| FetchFailure {
                    message: e.to_string(),
                    at,
                    problem: e
                        .cause()
                        .map(|cause| rampart_shared::cause::Problem::new(cause, e.to_string())),
                }),
            mfa_required: policy.mfa.required,
            provider: policy.mfa.provider.kind(),
        }
    }

    /// The latest failed save of the policy copy, until one succeeds.
    pub fn storage_failure(&self) -> Option<&rampart_shared::status::StorageFailure> {
        self.save_failure.get()
    }

    /// Why the last poll failed (network, HTTP status, size, timeout), if it
    /// did. Kept apart from `section().error`, which is about documents.
    pub fn fetch_error(&self) -> Option<&FetchError> {
        self.fetch_error.as_ref()
    }

    /// What is remembered across restarts.
    pub fn persisted(&self) -> &PersistedPolicy {
        &self.persisted
    }

    /// Failed polls (and rejected documents) since the last good poll.
    pub fn consecutive_errors(&self) -> u32 {
        self.consecutive_errors
    }

    /// Replaces the random source of the poll jitter (tests: a fixed seed).
    pub fn seed_jitter(&mut self, seed: u64) {
        self.rng = fastrand::Rng::with_seed(seed);
    }

    /// Drops a policy in force whose `expires_at` has passed, falling back to
    /// the managed file or the built-in default. Returns whether it did.
    pub fn check_expiry(&mut self, now: DateTime<Utc>) -> bool {
        let Some(expires_at) = self.in_force.policy.expires_at else {
            return false;
        };
        if expires_at > now {
            return false;
        }
        let why = format!(
            "the policy in force (serial {}) expired at {}",
            self.in_force.policy.serial,
            expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        tracing::warn!("policy: {why}");
        self.in_force = InForce::builtin();
        self.kept = None;
        self.reload_managed(now);
        self.error = Some(why);
        self.error_from_poll = false;
        true
    }

    fn take_decision(
        &mut self,
        candidate: Candidate<'_>,
        mut record: AcceptedRecord,
        now: DateTime<Utc>,
        applied: &mut Applied,
    ) {
        let last = self.persisted.last.as_ref();
        match accept::decide(
            candidate,
            self.trust(),
            last,
            self.persisted.highest_serial,
            now,
        ) {
            Decision::Reject(why) => {
                tracing::warn!("policy: {why}");
                self.error = Some(why.clone());
                self.error_from_poll = false;
                applied.rejected = Some(why);
            }
            Decision::Accept { policy, signed_by } => {
                tracing::info!(
                    serial = policy.serial,
                    source = candidate.source.label(),
                    key = signed_by
                        .map(|k| k.to_string())
                        .unwrap_or_else(|| "unsigned".into()),
                    "policy accepted"
                );
                record.serial = policy.serial;
                self.persisted.highest_serial = policy.serial;
                self.persisted.last = Some(record);
                self.in_force = InForce {
                    policy: *policy,
                    source: candidate.source,
                    origin: candidate.source,
                    fetched_at: Some(now),
                };
                self.kept = None;
                self.error = None;
                applied.changed = true;
                applied.persist_error = self.save();
            }
            Decision::Unchanged { policy } => {
                // The same document, seen again: note where (a remote copy
                // outranks a managed one) and its fresh validators.
                record.serial = policy.serial;
                let source_changed = self.in_force.source != candidate.source;
                let validators_changed = self.persisted.last.as_ref().is_none_or(|l| {
                    l.etag != record.etag
                        || l.last_modified != record.last_modified
                        || l.source != record.source
                });
                self.in_force = InForce {
                    policy: *policy,
                    source: candidate.source,
                    origin: candidate.source,
                    fetched_at: Some(now),
                };
                self.kept = None;
                self.error = None;
                applied.changed = source_changed;
                if validators_changed {
                    self.persisted.last = Some(record);
                    applied.persist_error = self.save();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
