//! Engine tests: persistence, authorization and secrecy through the public API.

use std::fs;

use rampart_shared::mfa::{MfaErrorCode, PairingInfo};
use rampart_shared::status::MfaState;
use rampart_shared::totp::{self, Params, Secret};

use super::*;
use crate::mfa::test_support::{DUO_HOST, T0, ctx, duo_policy, jane, matching_code, policy, root};

fn open(dir: &Path) -> MfaEngine {
    MfaEngine::open_with_cost(dir, HashCost::TEST).unwrap()
}

fn secret_of(pairing: &PairingInfo) -> Secret {
    Secret::from_base32(&pairing.secret_grouped).unwrap()
}

fn code(pairing: &PairingInfo, now: i64) -> String {
    totp::totp(&secret_of(pairing), now, Params::PRODUCT)
}

fn cmd(
    engine: &mut MfaEngine,
    peer: &Peer,
    p: &Policy,
    now: i64,
    c: MfaCommand,
) -> Result<EnrollmentView, MfaError> {
    engine.handle(peer, &jane().key(), &c, &ctx(p, now))
}

fn verify(code: String) -> MfaCommand {
    MfaCommand::VerifyCode { code }
}

#[test]
fn resume_after_reload_at_every_step() {
    let tmp = tempfile::tempdir().unwrap();
    let p = policy();
    let mut engine = open(tmp.path());
    assert_eq!(engine.section(&jane().key(), &p).state, MfaState::NotSetUp);

    let pairing = cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment)
        .unwrap()
        .pairing
        .unwrap();
    drop(engine);

    // The window was closed and the agent restarted: same secret, same step.
    let mut engine = open(tmp.path());
    let resumed = cmd(
        &mut engine,
        &jane(),
        &p,
        T0 + 40,
        MfaCommand::StartEnrollment,
    )
    .unwrap();
    assert_eq!(resumed.step, EnrollmentStep::Pairing);
    assert_eq!(resumed.pairing.as_ref(), Some(&pairing));
    assert_eq!(
        section::summary(&engine.section(&jane().key(), &p)),
        "Setup in progress: verify a code"
    );

    let verified = cmd(
        &mut engine,
        &jane(),
        &p,
        T0 + 40,
        verify(code(&pairing, T0 + 40)),
    )
    .unwrap();
    assert_eq!(verified.recovery_codes.as_ref().map(Vec::len), Some(10));
    drop(engine);

    let mut engine = open(tmp.path());
    let resumed = cmd(
        &mut engine,
        &jane(),
        &p,
        T0 + 50,
        MfaCommand::StartEnrollment,
    )
    .unwrap();
    assert_eq!(resumed.step, EnrollmentStep::Verified);
    assert_eq!(
        resumed.recovery_codes, None,
        "codes are not shown again after a reload"
    );
    assert_eq!(resumed.recovery_codes_left, Some(10));
    cmd(
        &mut engine,
        &jane(),
        &p,
        T0 + 60,
        MfaCommand::ConfirmRecoveryCodesSaved,
    )
    .unwrap();
    let ack = MfaCommand::AcknowledgeOfflineGuide {
        guide_url: p.links.offline_guide_url.clone(),
    };
    let enrolled = cmd(&mut engine, &jane(), &p, T0 + 70, ack).unwrap();
    assert_eq!(enrolled.step, EnrollmentStep::Enrolled);
    drop(engine);

    let engine = open(tmp.path());
    let section = engine.section(&jane().key(), &p);
    assert_eq!(section.state, MfaState::Enrolled);
    assert_eq!(section::summary(&section), "Enrolled since 2026-11-18");
    assert_eq!(engine.users().collect::<Vec<_>>(), [&jane().key()]);
}

#[test]
fn state_file_is_private_and_versioned() {
    let tmp = tempfile::tempdir().unwrap();
    let p = policy();
    let mut engine = open(tmp.path());
    cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment).unwrap();
    let path = tmp.path().join("mfa-1000-jane.json");
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["step"], "pairing");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn throttling_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let p = policy();
    let mut engine = open(tmp.path());
    let pairing = cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment)
        .unwrap()
        .pairing
        .unwrap();
    let wrong = code(&pairing, T0 + 3600);
    for _ in 0..4 {
        cmd(&mut engine, &jane(), &p, T0, verify(wrong.clone())).unwrap_err();
    }
    let err = cmd(&mut engine, &jane(), &p, T0, verify(wrong.clone())).unwrap_err();
    assert_eq!(err.view().retry_after_secs, Some(30));
    drop(engine);

    let mut engine = open(tmp.path());
    let right = code(&pairing, T0 + 10);
    let view = engine.reply(&jane(), &jane().key(), &verify(right), &ctx(&p, T0 + 10));
    let error = view.error.unwrap();
    assert_eq!(error.code, MfaErrorCode::Throttled);
    assert_eq!(error.message, "Too many wrong codes. Try again in 20 s.");
    assert_eq!(error.retry_after_secs, Some(20));
    assert_eq!(
        view.step,
        EnrollmentStep::Pairing,
        "a failure keeps the step"
    );
    assert!(
        view.pairing.is_some(),
        "the owner still sees the QR code to retry"
    );
}

#[test]
fn corrupt_state_is_an_error_for_that_user_only_and_root_can_reset_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = policy();
    fs::write(
        tmp.path().join("mfa-1000-jane.json"),
        b"{\"version\": 1, \"uid\": ",
    )
    .unwrap();
    fs::write(tmp.path().join("mfa-1001-bob.json"), b"{\"version\": 99}").unwrap();
    fs::write(tmp.path().join("unrelated.json"), b"garbage").unwrap();

    let mut engine = open(tmp.path());
    let section = engine.section(&jane().key(), &p);
    assert_eq!(section.state, MfaState::Error);
    let summary = section::summary(&section);
    assert!(
        summary.starts_with("Error: the saved MFA setup cannot be read ("),
        "{summary}"
    );
    let bob = UserKey {
        id: UserId::Uid(1001),
        name: "bob".into(),
    };
    let bob_section = engine.section(&bob, &p);
    assert_eq!(bob_section.state, MfaState::Error);
    assert!(bob_section.detail.unwrap().contains("state version 99"));

    let err = cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment).unwrap_err();
    assert_eq!(err.code(), MfaErrorCode::StateCorrupt);
    assert!(err.to_string().contains("Ask IT to reset"), "{err}");
    let err = cmd(&mut engine, &jane(), &p, T0, MfaCommand::ResetEnrollment).unwrap_err();
    assert_eq!(err.code(), MfaErrorCode::Forbidden);

    let view = cmd(&mut engine, &root(), &p, T0, MfaCommand::ResetEnrollment).unwrap();
    assert_eq!(view.step, EnrollmentStep::NotSetUp);
    assert_eq!(engine.section(&jane().key(), &p).state, MfaState::NotSetUp);
    cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment).unwrap();
    drop(engine);
    let engine = open(tmp.path());
    assert_eq!(
        engine.section(&jane().key(), &p).state,
        MfaState::InProgress
    );
}

#[test]
fn another_uid_is_refused_and_sees_no_pairing() {
    let tmp = tempfile::tempdir().unwrap();
    let p = policy();
    let mut engine = open(tmp.path());
    cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment).unwrap();
    let mallory = Peer {
        id: UserId::Uid(1002),
        admin: false,
        user_name: "mallory".into(),
    };
    for c in [
        MfaCommand::StartEnrollment,
        verify("123456".into()),
        MfaCommand::RegenerateRecoveryCodes,
        MfaCommand::ResetEnrollment,
    ] {
        let view = engine.reply(&mallory, &jane().key(), &c, &ctx(&p, T0));
        assert_eq!(view.error.unwrap().code, MfaErrorCode::Forbidden, "{c:?}");
        assert_eq!(view.pairing, None);
        assert_eq!(view.step, EnrollmentStep::Pairing);
    }
    // Root may drive it, and is the only one who may reset it.
    let view = cmd(&mut engine, &root(), &p, T0, MfaCommand::StartEnrollment).unwrap();
    assert_eq!(view.step, EnrollmentStep::Pairing);
    cmd(&mut engine, &jane(), &p, T0, MfaCommand::ResetEnrollment).unwrap_err();
    assert_eq!(
        engine.section(&jane().key(), &p).state,
        MfaState::InProgress
    );
    cmd(&mut engine, &root(), &p, T0, MfaCommand::ResetEnrollment).unwrap();
    assert_eq!(engine.section(&jane().key(), &p).state, MfaState::NotSetUp);
}

#[test]
fn recovery_codes_through_the_engine_survive_reload_and_regeneration() {
    let tmp = tempfile::tempdir().unwrap();
    let p = policy();
    let mut engine = open(tmp.path());
    let pairing = cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment)
        .unwrap()
        .pairing
        .unwrap();
    let old = cmd(&mut engine, &jane(), &p, T0, verify(code(&pairing, T0)))
        .unwrap()
        .recovery_codes
        .unwrap();
    drop(engine);

    let mut engine = open(tmp.path());
    let stored = |engine: &MfaEngine| engine.enrollment(&jane().key()).unwrap().recovery.clone();
    assert_eq!(matching_code(&stored(&engine), &old[0]), Some(0));
    let new = cmd(
        &mut engine,
        &jane(),
        &p,
        T0,
        MfaCommand::RegenerateRecoveryCodes,
    )
    .unwrap()
    .recovery_codes
    .unwrap();
    drop(engine);

    let engine = open(tmp.path());
    assert_eq!(matching_code(&stored(&engine), &old[1]), None);
    assert_eq!(matching_code(&stored(&engine), &new[1]), Some(1));
    assert_eq!(
        engine
            .enrollment(&jane().key())
            .unwrap()
            .view(&p, None)
            .recovery_codes_left,
        Some(10)
    );
}

#[test]
fn the_secret_never_leaves_after_pairing() {
    let tmp = tempfile::tempdir().unwrap();
    let p = policy();
    let mut engine = open(tmp.path());
    let pairing = cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment)
        .unwrap()
        .pairing
        .unwrap();
    let secret = secret_of(&pairing);
    let forms = [
        secret.to_base32(),
        secret.to_grouped(),
        secret.to_base32().to_lowercase(),
        data_encoding::HEXLOWER.encode(secret.expose()),
        format!("{:?}", secret.expose()),
    ];
    let leaks = |text: &str| forms.iter().any(|f| text.contains(f.as_str()));

    // While pairing the engine's own Debug is already clean.
    assert!(!leaks(&format!("{engine:?}")));
    let state_file = fs::read_to_string(tmp.path().join("mfa-1000-jane.json")).unwrap();
    assert!(
        leaks(&state_file),
        "the state file must keep the secret to verify later"
    );

    let mut outputs = Vec::new();
    let mut record = |view: &EnrollmentView, engine: &MfaEngine| {
        outputs.push(serde_json::to_string(view).unwrap());
        outputs.push(format!("{view:?}"));
        outputs.push(format!("{engine:?}"));
        let section = engine.section(&jane().key(), &p);
        outputs.push(serde_json::to_string(&section).unwrap());
        outputs.push(section::summary(&section));
    };
    let verified = cmd(&mut engine, &jane(), &p, T0, verify(code(&pairing, T0))).unwrap();
    record(&verified, &engine);
    for c in [
        MfaCommand::StartEnrollment,
        MfaCommand::ConfirmRecoveryCodesSaved,
        MfaCommand::RegenerateRecoveryCodes,
        MfaCommand::AcknowledgeOfflineGuide {
            guide_url: p.links.offline_guide_url.clone(),
        },
        verify(code(&pairing, T0 + 30)),
    ] {
        let view = engine.reply(&jane(), &jane().key(), &c, &ctx(&p, T0 + 30));
        record(&view, &engine);
    }
    let reopened = open(tmp.path());
    outputs.push(format!("{reopened:?}"));
    assert_eq!(outputs.len(), 5 * 6 + 1);
    for (i, out) in outputs.iter().enumerate() {
        assert!(!leaks(out), "output {i} leaks the secret: {out}");
    }
    // The codes were in the replies that created them, and nowhere in Debug.
    let codes = verified.recovery_codes.as_ref().unwrap();
    assert!(outputs[0].contains(&codes[0]));
    assert!(!outputs[1].contains(&codes[0]));
}

#[test]
fn a_duo_answer_is_persisted_and_a_stale_one_is_dropped() {
    use crate::duo::Activation;
    use crate::mfa::duo::{DuoCall, DuoReply};
    use rampart_shared::mfa::DuoPrompt;

    let tmp = tempfile::tempdir().unwrap();
    let p = duo_policy();
    let mut engine = open(tmp.path());
    let start = MfaCommand::StartEnrollment;
    let crate::mfa::Plan::Duo(call) = engine.plan(&jane(), &jane().key(), &start, &ctx(&p, T0))
    else {
        panic!("Duo was not asked")
    };
    assert_eq!(
        call,
        DuoCall::Start {
            username: "jane@acme.example".into()
        }
    );
    let activation = Activation {
        user_id: "DU1".into(),
        username: "jane@acme.example".into(),
        activation_code: "duo://PLANTED-activation".into(),
        activation_url: format!("https://{DUO_HOST}/activate/x"),
        expires_at: None,
    };
    let reply = DuoReply::Activation(activation.clone());
    let view = engine.finish_duo(
        &jane(),
        &jane().key(),
        Some(&start),
        &call,
        reply,
        &ctx(&p, T0),
    );
    assert_eq!(view.step, EnrollmentStep::Pairing);
    assert!(
        matches!(view.duo, Some(DuoPrompt::Activate { .. })),
        "{view:?}"
    );

    // On disk: a restarted agent resumes the same activation.
    let mut reopened = open(tmp.path());
    let view = reopened.reply(&jane(), &jane().key(), &start, &ctx(&p, T0 + 5));
    let Some(DuoPrompt::Activate {
        activation_code, ..
    }) = view.duo
    else {
        panic!("{view:?}")
    };
    assert_eq!(activation_code, "duo://PLANTED-activation");

    // A Start answer that arrives after the setup moved on is dropped.
    let late = DuoReply::Activation(Activation {
        activation_code: "duo://late".into(),
        ..activation
    });
    let view = reopened.finish_duo(
        &jane(),
        &jane().key(),
        Some(&start),
        &call,
        late,
        &ctx(&p, T0 + 6),
    );
    assert_eq!(view.error.map(|e| e.code), Some(MfaErrorCode::WrongStep));
    let view = reopened.reply(&jane(), &jane().key(), &start, &ctx(&p, T0 + 7));
    assert!(
        matches!(view.duo, Some(DuoPrompt::Activate { ref activation_code, .. }) if activation_code == "duo://PLANTED-activation")
    );
}

#[test]
fn a_failed_write_drops_the_change() {
    let tmp = tempfile::tempdir().unwrap();
    let p = policy();
    let dir = tmp.path().join("state");
    let mut engine = open(&dir);
    // A directory where the state file should go makes the rename fail,
    // whoever runs the test (root ignores permission bits).
    fs::create_dir(dir.join("mfa-1000-jane.json")).unwrap();
    let err = cmd(&mut engine, &jane(), &p, T0, MfaCommand::StartEnrollment).unwrap_err();
    assert_eq!(err.code(), MfaErrorCode::Storage);
    // The employee reads what was lost and what to do, not the OS's text.
    let message = err.to_string();
    assert!(
        message.starts_with("Rampart could not save the MFA setup (the change was not made)"),
        "{message}"
    );
    assert!(message.ends_with("Then try again."), "{message}");
    assert!(!message.contains("os error"), "{message}");
    assert_eq!(engine.section(&jane().key(), &p).state, MfaState::NotSetUp);
}

/// Issue 14: an MFA error cleared only with a restart. "Refresh" reads a
/// state file that could not be read again: mended, it counts; removed,
/// the user is not set up; still broken, still an error.
#[test]
fn a_refresh_rereads_a_state_file_that_could_not_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tempfile::tempdir().unwrap();
    let p = policy();
    let file = "mfa-1000-jane.json";
    {
        let mut other = open(good.path());
        cmd(&mut other, &jane(), &p, T0, MfaCommand::StartEnrollment).unwrap();
    }
    fs::write(tmp.path().join(file), b"{\"version\": 1, \"uid\": ").unwrap();
    let mut engine = open(tmp.path());
    assert_eq!(engine.section(&jane().key(), &p).state, MfaState::Error);
    assert_eq!(engine.reload_broken(), 0, "still broken");
    assert_eq!(engine.section(&jane().key(), &p).state, MfaState::Error);

    fs::copy(good.path().join(file), tmp.path().join(file)).unwrap();
    assert_eq!(engine.reload_broken(), 1);
    assert_eq!(
        engine.section(&jane().key(), &p).state,
        MfaState::InProgress
    );

    fs::write(tmp.path().join(file), b"garbage").unwrap();
    let mut engine = open(tmp.path());
    assert_eq!(engine.section(&jane().key(), &p).state, MfaState::Error);
    fs::remove_file(tmp.path().join(file)).unwrap();
    assert_eq!(engine.reload_broken(), 1);
    assert_eq!(engine.section(&jane().key(), &p).state, MfaState::NotSetUp);
}
