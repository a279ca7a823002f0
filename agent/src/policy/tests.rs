//! The store's decisions across sources and restarts (no network: outcomes
//! are built by hand; the HTTP side is tested end to end in rampart-tests).

use super::verify::testkeys::TestKey;
use super::*;
use crate::config::InstallConfig;
use crate::fsutil;
use crate::paths::AgentPaths;
use rampart_shared::policy::MAX_POLICY_BYTES;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn doc(serial: u64) -> Vec<u8> {
    format!(r#"{{"schema": 1, "serial": {serial}, "mfa": {{"required": false}}, "poll_interval_secs": 600}}"#)
        .into_bytes()
}

struct Env {
    _dir: tempfile::TempDir,
    paths: AgentPaths,
    key: TestKey,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = AgentPaths {
            config_dir: dir.path().join("etc"),
            state_dir: dir.path().join("state"),
            log_dir: dir.path().join("log"),
            socket: dir.path().join("sock"),
        };
        std::fs::create_dir_all(&paths.config_dir).unwrap();
        Self {
            _dir: dir,
            paths,
            key: TestKey::new(),
        }
    }

    fn config(&self, url: bool, allow_unsigned: bool) -> InstallConfig {
        InstallConfig {
            device_id: "d1".into(),
            policy_url: url.then(|| "http://127.0.0.1:9/policy.json".into()),
            public_keys: vec![self.key.public.clone()],
            allow_unsigned_local_policy: allow_unsigned,
            ..InstallConfig::default()
        }
    }

    /// As the agent starts: load, then (once it answers) the deferred save.
    fn start(&self, config: &InstallConfig) -> PolicyStore {
        let mut store = PolicyStore::load_at_start(&self.paths, Some(config), now());
        store.save_deferred();
        store
    }

    fn fetched(&self, document: Vec<u8>) -> FetchOutcome {
        FetchOutcome::Fetched(Fetched {
            url: "http://127.0.0.1:9/policy.json".into(),
            signature: self.key.sign(&document),
            document,
            etag: Some("\"v1\"".into()),
            last_modified: None,
        })
    }
}

/// Issue 18: the first status answer waited on this fsync. Loading only
/// decides; the copy is written once the agent answers.
#[test]
fn loading_at_start_defers_the_copy_until_asked() {
    let env = Env::new();
    let config = env.config(false, true);
    fsutil::write_atomic(&env.paths.managed_policy(), &doc(7)).unwrap();
    let lkg = env.paths.state_dir.join(LKG_FILE);
    let mut store = PolicyStore::load_at_start(&env.paths, Some(&config), now());
    assert_eq!(store.in_force().0.serial, 7);
    assert!(!lkg.exists(), "nothing written while loading");
    store.save_deferred();
    assert!(lkg.exists(), "written once asked");
}

#[test]
fn nothing_configured_means_the_builtin_policy_without_complaint() {
    let env = Env::new();
    let store = PolicyStore::load_at_start(&env.paths, None, now());
    assert_eq!(store.in_force().1, PolicySource::Builtin);
    assert_eq!(store.in_force().0, &Policy::default());
    assert_eq!(store.section().error, None);
    assert!(store.poll_request().target.is_none());
}

#[test]
fn an_unsigned_managed_file_only_when_allowed() {
    let env = Env::new();
    fsutil::write_atomic(&env.paths.managed_policy(), &doc(4)).unwrap();
    let refused = env.start(&env.config(false, false));
    assert_eq!(refused.in_force().1, PolicySource::Builtin);
    assert!(
        refused
            .section()
            .error
            .unwrap()
            .contains("allow_unsigned_local_policy")
    );

    let allowed = env.start(&env.config(false, true));
    assert_eq!(allowed.in_force().1, PolicySource::ManagedFile);
    assert_eq!(allowed.section().serial, 4);
    assert_eq!(allowed.persisted().highest_serial, 4);
}

#[test]
fn a_signed_managed_file_is_used_until_the_server_speaks() {
    let env = Env::new();
    let managed = doc(2);
    fsutil::write_atomic(&env.paths.managed_policy(), &managed).unwrap();
    let mut sig = env.paths.managed_policy().into_os_string();
    sig.push(".minisig");
    fsutil::write_atomic(
        std::path::Path::new(&sig),
        env.key.sign(&managed).as_bytes(),
    )
    .unwrap();
    let mut store = env.start(&env.config(true, false));
    assert_eq!(store.in_force().1, PolicySource::ManagedFile);

    let applied = store.apply(env.fetched(doc(3)), now());
    assert!(applied.changed);
    assert_eq!(store.in_force().1, PolicySource::Remote);
    // Lower priority now: the managed file is not consulted.
    assert!(!store.reload_managed(now()).changed);
    assert_eq!(store.section().serial, 3);
}

#[test]
fn last_known_good_survives_a_restart_and_so_does_the_serial_floor() {
    let env = Env::new();
    let config = env.config(true, false);
    let mut store = env.start(&config);
    let applied = store.apply(env.fetched(doc(7)), now());
    assert_eq!(
        (applied.changed, applied.rejected, applied.persist_error),
        (true, None, None)
    );
    let section = store.section();
    assert_eq!(
        (section.source, section.serial, section.fetched_at),
        (PolicySource::Remote, 7, Some(now()))
    );
    assert!(!section.mfa_required);

    let mut restarted = env.start(&config);
    assert_eq!(restarted.in_force().1, PolicySource::LastKnownGood);
    assert_eq!(restarted.section().serial, 7);
    assert_eq!(
        restarted.poll_request().target.unwrap().2.as_deref(),
        Some("\"v1\"")
    );

    let applied = restarted.apply(env.fetched(doc(6)), now());
    assert!(
        applied
            .rejected
            .unwrap()
            .contains("serial 6 is lower than serial 7")
    );
    assert_eq!(restarted.section().serial, 7);
    assert_eq!(restarted.in_force().1, PolicySource::LastKnownGood);

    let applied = restarted.apply(FetchOutcome::NotModified, now());
    assert!(applied.changed);
    assert_eq!(restarted.in_force().1, PolicySource::Remote);
    assert_eq!(restarted.section().error, None);
}

#[test]
fn a_key_removed_from_the_install_config_stops_trusting_the_saved_copy() {
    let env = Env::new();
    let mut store = env.start(&env.config(true, false));
    store.apply(env.fetched(doc(7)), now());
    let mut rotated = env.config(true, false);
    rotated.public_keys = vec![TestKey::new().public];
    let restarted = env.start(&rotated);
    assert_eq!(restarted.in_force().1, PolicySource::Builtin);
    let error = restarted.section().error.unwrap();
    assert!(
        error.starts_with("last known good copy not used: "),
        "{error}"
    );
    assert!(error.contains("which is not a pinned key"), "{error}");
}

#[test]
fn errors_back_off_and_success_resets() {
    let env = Env::new();
    let mut store = env.start(&env.config(true, false));
    store.apply(env.fetched(doc(1)), now());
    let fail = || {
        FetchOutcome::Failed(FetchError::Status {
            url: "u".into(),
            status: 500,
        })
    };
    let delays: Vec<Duration> = (0..3)
        .map(|_| store.apply(fail(), now()).next_poll.unwrap())
        .collect();
    for (delay, base) in delays.iter().zip([30.0, 60.0, 120.0]) {
        let s = delay.as_secs_f64();
        assert!((base * 0.9..base * 1.1).contains(&s), "{s} vs {base}");
    }
    assert_eq!(store.consecutive_errors(), 3);
    assert_eq!(store.section().serial, 1);
    assert!(
        store
            .fetch_error()
            .unwrap()
            .to_string()
            .contains("HTTP 500")
    );
    let ok = store
        .apply(FetchOutcome::NotModified, now())
        .next_poll
        .unwrap()
        .as_secs_f64();
    assert!((540.0..660.0).contains(&ok), "{ok}");
    assert_eq!(store.consecutive_errors(), 0);
    assert!(store.fetch_error().is_none());
}

#[test]
fn an_expired_policy_in_force_is_dropped() {
    let env = Env::new();
    let mut store = env.start(&env.config(true, false));
    let expiring = br#"{"schema": 1, "serial": 3, "mfa": {"required": false}, "expires_at": "2026-11-24T00:00:00Z"}"#;
    store.apply(env.fetched(expiring.to_vec()), now());
    assert_eq!(store.section().serial, 3);
    assert!(!store.check_expiry(now()));
    let later = now() + chrono::Duration::days(1);
    assert!(store.check_expiry(later));
    assert_eq!(store.in_force().1, PolicySource::Builtin);
    assert!(
        store
            .section()
            .error
            .unwrap()
            .contains("expired at 2026-11-24T00:00:00Z")
    );
    assert_eq!(store.persisted().highest_serial, 3);
}

/// Issue 15, finding 6: a 404 or an oversized body after a rejection left
/// the rejection's reason in `status.policy.error`, and the failure itself
/// nowhere in the status.
#[test]
fn a_failed_poll_is_kept_apart_from_rejections() {
    let env = Env::new();
    let mut store = env.start(&env.config(true, false));
    store.apply(env.fetched(doc(5)), now());
    let rejected = store.apply(env.fetched(doc(4)), now()).rejected.unwrap();
    assert_eq!(store.section().error.as_deref(), Some(rejected.as_str()));
    assert_eq!(store.section().fetch_error, None);

    let later = now() + chrono::Duration::minutes(10);
    for failure in [
        FetchError::Status {
            url: "http://127.0.0.1:9/policy.json".into(),
            status: 404,
        },
        FetchError::TooLarge {
            url: "http://127.0.0.1:9/policy.json".into(),
            max: MAX_POLICY_BYTES,
        },
    ] {
        let message = failure.to_string();
        // A 404 has a cause in the vocabulary; a body too large does not.
        let problem = failure
            .cause()
            .map(|cause| rampart_shared::cause::Problem::new(cause, message.clone()));
        let has_cause = matches!(failure, FetchError::Status { .. });
        assert_eq!(problem.is_some(), has_cause);
        store.apply(FetchOutcome::Failed(failure), later);
        let section = store.section();
        assert_eq!(section.error, None, "the old rejection is gone");
        assert_eq!(
            section.fetch_error,
            Some(FetchFailure {
                message,
                at: later,
                problem
            })
        );
        assert_eq!(section.serial, 5, "the policy in force stays");
    }

    // A document again: the failure is over, the new rejection is shown.
    store.apply(env.fetched(doc(3)), later);
    assert_eq!(store.section().fetch_error, None);
    assert!(store.section().error.unwrap().contains("serial 3 is lower"));
}

#[test]
fn a_failed_poll_does_not_hide_what_is_not_about_the_poll() {
    let env = Env::new();
    let mut store = env.start(&env.config(true, false));
    let expiring = br#"{"schema": 1, "serial": 3, "mfa": {"required": false}, "expires_at": "2026-11-24T00:00:00Z"}"#;
    store.apply(env.fetched(expiring.to_vec()), now());
    let later = now() + chrono::Duration::days(1);
    assert!(store.check_expiry(later));
    let expired = store.section().error.unwrap();
    store.apply(
        FetchOutcome::Failed(FetchError::Status {
            url: "u".into(),
            status: 404,
        }),
        later,
    );
    assert_eq!(store.section().error, Some(expired));
    assert!(store.section().fetch_error.is_some());
}

impl Env {
    /// Writes a signed managed file (`policy.json` + `.minisig`).
    fn write_managed(&self, document: &[u8]) {
        fsutil::write_atomic(&self.paths.managed_policy(), document).unwrap();
        fsutil::write_atomic(&self.managed_sig(), self.key.sign(document).as_bytes()).unwrap();
    }

    fn managed_sig(&self) -> PathBuf {
        let mut sig = self.paths.managed_policy().into_os_string();
        sig.push(".minisig");
        PathBuf::from(sig)
    }
}

fn kept_message(store: &PolicyStore) -> String {
    store.section().kept.expect("a kept policy").message
}

/// Issue 15, finding 3: a deleted managed file put serial 0 back after a
/// restart.
#[test]
fn a_deleted_managed_file_keeps_its_serial_across_a_restart() {
    let env = Env::new();
    let config = env.config(false, false);
    env.write_managed(&doc(5));
    let mut store = env.start(&config);
    assert_eq!(store.in_force().1, PolicySource::ManagedFile);
    assert_eq!(store.section().kept, None);

    // While running: deleting it changes nothing but the words.
    std::fs::remove_file(env.paths.managed_policy()).unwrap();
    let applied = store.reload_managed(now());
    assert_eq!(applied.rejected, None);
    assert_eq!(store.section().serial, 5);
    assert_eq!(store.in_force().1, PolicySource::LastKnownGood);
    assert!(kept_message(&store).starts_with("managed file missing: keeping serial 5"));

    let restarted = env.start(&config);
    let section = restarted.section();
    assert_eq!(
        (section.source, section.serial, section.error),
        (PolicySource::LastKnownGood, 5, None)
    );
    assert_eq!(section.kept.as_ref().unwrap().serial, 5);
    assert!(kept_message(&restarted).starts_with("managed file missing: keeping serial 5"));
    assert!(
        !section.mfa_required,
        "the kept policy's settings, not the default's"
    );
}

#[test]
fn a_tampered_managed_file_keeps_its_serial_across_a_restart() {
    let env = Env::new();
    let config = env.config(false, false);
    env.write_managed(&doc(5));
    env.start(&config);
    // Same signature, one byte changed.
    let mut tampered = doc(5);
    *tampered.last_mut().unwrap() = b' ';
    tampered.push(b'}');
    fsutil::write_atomic(&env.paths.managed_policy(), &tampered).unwrap();

    let restarted = env.start(&config);
    let section = restarted.section();
    assert_eq!(
        (section.source, section.serial),
        (PolicySource::LastKnownGood, 5)
    );
    assert!(kept_message(&restarted).starts_with("managed file rejected: keeping serial 5"));
    let error = section.error.unwrap();
    assert!(error.contains("managed policy file"), "{error}");
    assert!(error.contains("does not match the document"), "{error}");

    // A lower serial, properly signed, is refused the same way.
    env.write_managed(&doc(3));
    let restarted = env.start(&config);
    assert_eq!(restarted.section().serial, 5);
    assert!(
        restarted
            .section()
            .error
            .unwrap()
            .contains("serial 3 is lower than serial 5")
    );

    // The file back as it was: in force from the file, nothing kept.
    env.write_managed(&doc(5));
    let restarted = env.start(&config);
    assert_eq!(restarted.in_force().1, PolicySource::ManagedFile);
    assert_eq!(restarted.section().kept, None);
    assert_eq!(restarted.section().error, None);
}

#[test]
fn a_newer_managed_file_replaces_the_kept_copy() {
    let env = Env::new();
    let config = env.config(false, false);
    env.write_managed(&doc(5));
    let mut store = env.start(&config);
    std::fs::remove_file(env.paths.managed_policy()).unwrap();
    store.reload_managed(now());
    env.write_managed(&doc(6));
    let applied = store.reload_managed(now());
    assert!(applied.changed);
    assert_eq!(store.section().serial, 6);
    assert_eq!(store.section().kept, None);
    assert_eq!(store.persisted().highest_serial, 6);
}

#[test]
fn a_server_copy_is_kept_when_the_url_is_removed_from_the_install_config() {
    let env = Env::new();
    let mut store = env.start(&env.config(true, false));
    store.apply(env.fetched(doc(9)), now());
    let restarted = env.start(&env.config(false, false));
    assert_eq!(restarted.section().serial, 9);
    assert!(kept_message(&restarted).starts_with("no policy URL is configured: keeping serial 9"));
}

#[test]
fn reset_puts_the_default_back_and_keeps_the_floor() {
    let env = Env::new();
    let config = env.config(false, false);
    env.write_managed(&doc(5));
    let mut store = env.start(&config);
    std::fs::remove_file(env.paths.managed_policy()).unwrap();
    store.reload_managed(now());

    fsutil::write_atomic(&env.paths.state_dir.join(RESET_REQUEST_FILE), b"x").unwrap();
    let applied = store.take_reset_request(now()).expect("a request");
    assert!(applied.changed);
    assert_eq!(applied.persist_error, None);
    assert!(!env.paths.state_dir.join(RESET_REQUEST_FILE).exists());
    assert!(store.take_reset_request(now()).is_none());
    let section = store.section();
    assert_eq!(
        (section.source, section.serial, section.kept, section.error),
        (PolicySource::Builtin, 0, None, None)
    );
    assert_eq!(store.persisted().highest_serial, 5);

    // It lasts across a restart...
    let restarted = env.start(&config);
    assert_eq!(restarted.in_force().1, PolicySource::Builtin);
    assert_eq!(restarted.section().kept, None);
    // ... and the withdrawn document cannot be replayed.
    env.write_managed(&doc(5));
    let replayed = env.start(&config);
    assert_eq!(replayed.in_force().1, PolicySource::Builtin);
    assert!(
        replayed
            .section()
            .error
            .unwrap()
            .contains("serial 5 was already accepted before")
    );
    env.write_managed(&doc(6));
    assert_eq!(env.start(&config).section().serial, 6);
}

#[test]
fn a_reset_asked_for_while_the_agent_was_stopped_is_done_at_start() {
    let env = Env::new();
    let config = env.config(false, false);
    env.write_managed(&doc(5));
    env.start(&config);
    std::fs::remove_file(env.paths.managed_policy()).unwrap();
    fsutil::write_atomic(&env.paths.state_dir.join(RESET_REQUEST_FILE), b"x").unwrap();
    let store = env.start(&config);
    assert_eq!(store.in_force().1, PolicySource::Builtin);
    assert_eq!(store.section().error, None);
    assert!(!env.paths.state_dir.join(RESET_REQUEST_FILE).exists());
}
