//! The store at agent start: the install config's key and URL, then the
//! sources in the order that keeps the serial from going down (the last
//! accepted copy, the managed file, an administrator's pending reset).

use chrono::{DateTime, Utc};
use rampart_shared::status::PolicySource;

use super::accept::{self, Candidate, Decision};
use super::fetch::{self, FetchTimeouts, Fetcher};
use super::verify::PinnedKeys;
use super::{InForce, LKG_FILE, PersistedPolicy, PolicyStore};
use crate::config::InstallConfig;
use crate::paths::AgentPaths;
use crate::storage::LastFailure;

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
        let (persisted, unread) = PersistedPolicy::read(&lkg_path);
        errors.extend(unread);
        let mut store = Self {
            lkg_path,
            state_dir: paths.state_dir.clone(),
            managed_path: paths.managed_policy(),
            url,
            keys,
            allow_unsigned_local: config.is_some_and(|c| c.allow_unsigned_local_policy),
            fetcher: Fetcher::new(timeouts, config.and_then(|c| c.extra_ca_file.clone())),
            persisted,
            in_force: InForce::builtin(),
            kept: None,
            error: None,
            error_from_poll: false,
            save_failure: LastFailure::default(),
            defer_saves: true,
            save_pending: false,
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
        store.defer_saves = false;
        store
    }
}
