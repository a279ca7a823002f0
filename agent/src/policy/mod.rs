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

pub mod accept;
pub mod continuity;
pub mod fetch;
pub mod schedule;
pub mod verify;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::policy::{MAX_POLICY_BYTES, Policy};
use rampart_shared::status::{FetchFailure, KeptPolicy, PolicySection, PolicySource};
use serde::{Deserialize, Serialize};

use crate::config::InstallConfig;
use crate::fsutil;
use crate::paths::AgentPaths;
use crate::storage::{LastFailure, StateKind};
use accept::{AcceptedRecord, Candidate, Decision, Trust};
use continuity::{Held, ManagedOffer};
pub use fetch::{FetchError, FetchOutcome, FetchTimeouts, Fetched, Fetcher};
use verify::PinnedKeys;

/// The state file's name in `state_dir`.
pub const LKG_FILE: &str = "policy-lkg.json";
/// An administrator's request to go back to the built-in default, in
/// `state_dir` (written by `rampart-agent policy reset`). The state directory
/// is writable only by root (the agent's own user in dev mode), so the file
/// system is what makes this an administrator's act.
pub const RESET_REQUEST_FILE: &str = "policy-reset-request";
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

/// One poll, owned, so it can run on another task while the store is used.
#[derive(Debug, Clone)]
pub struct PollRequest {
    target: Option<(Fetcher, reqwest::Url, Option<String>, Option<String>)>,
    setup_error: Option<FetchError>,
}

impl PollRequest {
    pub async fn run(self) -> FetchOutcome {
        if let Some(e) = self.setup_error {
            return FetchOutcome::Failed(e);
        }
        match self.target {
            Some((fetcher, url, etag, last_modified)) => {
                fetcher
                    .fetch(&url, etag.as_deref(), last_modified.as_deref())
                    .await
            }
            None => FetchOutcome::NotConfigured,
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
    fetcher: Result<Fetcher, FetchError>,
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
    fetch_error: Option<FetchError>,
    /// When `fetch_error` happened.
    fetch_failed_at: Option<DateTime<Utc>>,
    consecutive_errors: u32,
    rng: fastrand::Rng,
}

impl PolicyStore {
    /// Builds the store at agent start, never failing: whatever cannot be
    /// read is reported in [`section`](Self::section)`.error` and the next
    /// source down is used. Reads the state file and the managed file; may
    /// write the state file (a newly accepted managed file).
    pub fn load_at_start(
        paths: &AgentPaths,
        config: Option<&InstallConfig>,
        now: DateTime<Utc>,
    ) -> Self {
        Self::load_with_timeouts(paths, config, now, FetchTimeouts::default())
    }

    /// [`load_at_start`](Self::load_at_start) with other HTTP timeouts (tests).
    pub fn load_with_timeouts(
        paths: &AgentPaths,
        config: Option<&InstallConfig>,
        now: DateTime<Utc>,
        timeouts: FetchTimeouts,
    ) -> Self {
        let mut errors = Vec::new();
        let keys = match config.map(InstallConfig::pinned_keys).transpose() {
            Ok(keys) => keys.unwrap_or_default(),
            Err(e) => {
                errors.push(format!("install config: {e}"));
                PinnedKeys::default()
            }
        };
        let url = match config
            .and_then(|c| c.policy_url.as_deref())
            .map(fetch::check_policy_url)
        {
            Some(Ok(url)) => Some(url),
            Some(Err(e)) => {
                errors.push(format!("install config: policy_url: {e}"));
                None
            }
            None => None,
        };
        let lkg_path = paths.state_dir.join(LKG_FILE);
        let persisted = match fsutil::read_capped(&lkg_path, MAX_LKG_BYTES) {
            Ok(None) => PersistedPolicy::default(),
            Ok(Some(bytes)) => match serde_json::from_slice::<PersistedPolicy>(&bytes) {
                Ok(p) if p.schema == LKG_SCHEMA => p,
                Ok(p) => {
                    errors.push(format!(
                        "{}: unknown schema {}, ignored",
                        lkg_path.display(),
                        p.schema
                    ));
                    PersistedPolicy::default()
                }
                Err(e) => {
                    errors.push(format!("{} is damaged ({e}), ignored", lkg_path.display()));
                    PersistedPolicy::default()
                }
            },
            Err(e) => {
                errors.push(e.to_string());
                PersistedPolicy::default()
            }
        };
        let mut store = Self {
            lkg_path,
            state_dir: paths.state_dir.clone(),
            managed_path: paths.managed_policy(),
            url,
            keys,
            allow_unsigned_local: config.is_some_and(|c| c.allow_unsigned_local_policy),
            fetcher: Fetcher::new(timeouts),
            persisted,
            in_force: InForce::builtin(),
            kept: None,
            error: None,
            error_from_poll: false,
            save_failure: LastFailure::default(),
            fetch_error: None,
            fetch_failed_at: None,
            consecutive_errors: 0,
            rng: fastrand::Rng::new(),
        };

        // 1. The last accepted document, whatever its source: a restart never
        //    puts an older policy (or the built-in default) back in force.
        //    A copy from the server stays until the server speaks; one from
        //    the managed file is checked against the file below.
        let mut remote_in_force = false;
        if let Some(last) = store.persisted.last.clone() {
            let candidate = Candidate {
                document: last.document.as_bytes(),
                signature: last.signature.as_deref(),
                source: last.source,
            };
            match accept::decide(
                candidate,
                store.trust(),
                Some(&last),
                store.persisted.highest_serial,
                now,
            ) {
                Decision::Accept { policy, .. } | Decision::Unchanged { policy } => {
                    store.in_force = InForce {
                        policy: *policy,
                        source: PolicySource::LastKnownGood,
                        origin: last.source,
                        fetched_at: Some(last.fetched_at),
                    };
                    remote_in_force = last.source == PolicySource::Remote && store.url.is_some();
                }
                Decision::Reject(why) => {
                    errors.push(format!("last known good copy not used: {why}"))
                }
            }
        }
        // 2. The managed file.
        if !remote_in_force {
            let applied = store.reload_managed(now);
            errors.extend(applied.rejected);
        }
        // 3. An administrator's reset, asked for while the agent was stopped.
        if let Some(applied) = store.take_reset_request(now) {
            errors.extend(applied.rejected);
        }
        if !errors.is_empty() {
            for e in &errors {
                tracing::warn!("policy: {e}");
            }
            store.error = Some(errors.join("; "));
        }
        tracing::info!(
            source = store.in_force.source.label(),
            serial = store.in_force.policy.serial,
            "policy in force at start"
        );
        store
    }

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

    /// An owned poll of the policy URL with the accepted copy's validators.
    pub fn poll_request(&self) -> PollRequest {
        let Some(url) = self.url.clone() else {
            return PollRequest {
                target: None,
                setup_error: None,
            };
        };
        let fetcher = match &self.fetcher {
            Ok(f) => f.clone(),
            Err(e) => {
                return PollRequest {
                    target: None,
                    setup_error: Some(e.clone()),
                };
            }
        };
        // Validators only for the URL they came from, and only while that
        // copy is the one in force (or the server would answer 304 to a
        // document the agent does not use).
        let (etag, last_modified) = match &self.persisted.last {
            Some(last)
                if last.url.as_deref() == Some(url.as_str())
                    && matches!(
                        self.in_force.source,
                        PolicySource::Remote | PolicySource::LastKnownGood
                    ) =>
            {
                (last.etag.clone(), last.last_modified.clone())
            }
            _ => (None, None),
        };
        PollRequest {
            target: Some((fetcher, url, etag, last_modified)),
            setup_error: None,
        }
    }

    /// Polls the policy URL once. I/O only: the store is not changed.
    pub async fn fetch(&self) -> FetchOutcome {
        self.poll_request().run().await
    }

    /// Takes a poll's outcome into account: decides, persists an accepted
    /// document, and says when to poll next.
    pub fn apply(&mut self, outcome: FetchOutcome, now: DateTime<Utc>) -> Applied {
        let mut applied = Applied {
            changed: false,
            rejected: None,
            next_poll: None,
            persist_error: None,
        };
        match outcome {
            FetchOutcome::NotConfigured => return applied,
            FetchOutcome::NotModified => {
                self.fetch_error = None;
                self.fetch_failed_at = None;
                self.consecutive_errors = 0;
                self.error = None;
                self.error_from_poll = false;
                if self.in_force.source == PolicySource::LastKnownGood {
                    self.in_force.source = PolicySource::Remote;
                    self.kept = None;
                    applied.changed = true;
                }
            }
            FetchOutcome::Failed(e) => {
                tracing::warn!("policy poll failed: {e}");
                self.fetch_error = Some(e);
                self.fetch_failed_at = Some(now);
                if self.error_from_poll {
                    self.error = None;
                    self.error_from_poll = false;
                }
                self.consecutive_errors = self.consecutive_errors.saturating_add(1);
            }
            FetchOutcome::Fetched(fetched) => {
                self.fetch_error = None;
                self.fetch_failed_at = None;
                let record = AcceptedRecord {
                    document: String::from_utf8_lossy(&fetched.document).into_owned(),
                    signature: Some(fetched.signature.clone()),
                    serial: 0,
                    source: PolicySource::Remote,
                    url: Some(fetched.url.clone()),
                    fetched_at: now,
                    etag: fetched.etag.clone(),
                    last_modified: fetched.last_modified.clone(),
                };
                let candidate = Candidate {
                    document: &fetched.document,
                    signature: Some(&fetched.signature),
                    source: PolicySource::Remote,
                };
                self.take_decision(candidate, record, now, &mut applied);
                self.error_from_poll = applied.rejected.is_some();
                if applied.rejected.is_some() {
                    self.consecutive_errors = self.consecutive_errors.saturating_add(1);
                } else {
                    self.consecutive_errors = 0;
                }
            }
        }
        if self.url.is_some() {
            let interval = Duration::from_secs(self.in_force.policy.poll_interval_secs);
            applied.next_poll = Some(schedule::next_poll_delay(
                interval,
                self.consecutive_errors,
                self.rng.f64(),
            ));
        }
        applied
    }

    /// Re-reads the managed file (at start, and when it changes on disk). A
    /// remote policy in force outranks it: then this only reports problems.
    /// A file that is gone or rejected keeps the policy in force (see
    /// [`continuity`]).
    pub fn reload_managed(&mut self, now: DateTime<Utc>) -> Applied {
        let mut applied = Applied {
            changed: false,
            rejected: None,
            next_poll: None,
            persist_error: None,
        };
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

    /// After a failed save: tries again (housekeeping), so that the copy is
    /// on disk once space returns, not only at the next accepted policy.
    pub fn retry_save(&mut self) {
        if self.save_failure.get().is_some() {
            self.save();
        }
    }

    /// Writes `policy-lkg.json`; a failure is logged, kept for the status
    /// (`storage`) and returned in words.
    fn save(&mut self) -> Option<String> {
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

#[cfg(test)]
mod tests;
