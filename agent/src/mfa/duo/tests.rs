//! The Duo path through the machine: plans, Duo's answers, and what the
//! wizard shows, with Duo's replies as the client parses them.

use rampart_shared::mfa::{DuoPrompt, EnrollmentStep, MfaCommand, PushState};
use rampart_shared::policy::{Policy, ProviderKind};

use super::*;
use crate::duo::{Activation, AuthResult, AuthStatus, Device, EnrollStatus, Preauth};
use crate::mfa::error::MfaError;
use crate::mfa::machine::{Enrollment, Outcome};
use crate::mfa::recovery::HashCost;
use crate::mfa::test_support::{
    DUO_HOST as HOST, T0, at, ctx, duo_policy as policy, new_enrollment,
};
use rampart_shared::mfa::MfaErrorCode;

fn jane() -> Enrollment {
    new_enrollment(ProviderKind::Duo)
}

fn phone() -> Device {
    Device {
        id: "DPFZRS9FB0D46QFTM891".into(),
        display_name: "iOS (XXX-XXX-0100)".into(),
        capabilities: vec!["push".into(), "mobile_otp".into()],
    }
}

fn activation() -> Activation {
    Activation {
        user_id: "DU94SWSN4ADHHJHF2HXT".into(),
        username: "jane@acme.example".into(),
        activation_code: "duo://8LIRa5danrICkhHtkLxi-cKLu2DWzDYCmBwBHY2YzW5ZYnYaRxA".into(),
        activation_url: format!("https://{HOST}/frame/portal/v4/enroll?code=abc"),
        expires_at: Some(at(T0 + 86_400)),
    }
}

/// Plans `command`, checks it asks Duo `want`, and applies `reply`.
fn exchange(
    e: &mut Enrollment,
    p: &Policy,
    now: i64,
    command: MfaCommand,
    reply: DuoReply,
) -> Result<Outcome, MfaError> {
    let call = plan(e, &command, &ctx(p, now))
        .expect("plan")
        .expect("a Duo call");
    e.apply_duo(&call, reply, &ctx(p, now), HashCost::TEST)
}

/// Duo's `/preauth` for a user whose phone takes pushes.
fn phone_ready() -> DuoReply {
    DuoReply::Preauth(Preauth::Auth {
        devices: vec![phone()],
    })
}

/// `StartEnrollment` at `T0`, Duo answering `reply`.
fn start(e: &mut Enrollment, p: &Policy, reply: DuoReply) -> Result<Outcome, MfaError> {
    exchange(e, p, T0, MfaCommand::StartEnrollment, reply)
}

/// Jane after `StartEnrollment`, Duo having answered `reply`.
fn started(p: &Policy, reply: DuoReply) -> Enrollment {
    let mut e = jane();
    start(&mut e, p, reply).unwrap();
    e
}

fn phase(e: &Enrollment) -> &DuoPhase {
    &e.duo.as_ref().unwrap().phase
}

#[test]
fn a_new_user_activates_then_confirms_with_a_push() {
    let p = policy();
    let mut e = jane();
    let call = plan(&e, &MfaCommand::StartEnrollment, &ctx(&p, T0)).unwrap();
    assert_eq!(
        call,
        Some(DuoCall::Start {
            username: "jane@acme.example".into()
        }),
        "the username comes from the policy's template"
    );
    start(&mut e, &p, DuoReply::Activation(activation())).unwrap();
    assert_eq!(e.step, EnrollmentStep::Pairing);
    let view = e.view(&p, None);
    let Some(DuoPrompt::Activate {
        activation_code,
        expired: false,
        ..
    }) = view.duo
    else {
        panic!("{view:?}")
    };
    assert!(activation_code.starts_with("duo://"));
    assert_eq!(view.pairing, None, "no TOTP secret for Duo");

    // Polls: waiting changes nothing; success brings the devices.
    let poll = plan(&e, &MfaCommand::CheckProgress, &ctx(&p, T0 + 3)).unwrap();
    assert!(
        matches!(poll, Some(DuoCall::EnrollStatus { ref user_id, .. }) if user_id == "DU94SWSN4ADHHJHF2HXT")
    );
    let before = e.clone();
    exchange(
        &mut e,
        &p,
        T0 + 3,
        MfaCommand::CheckProgress,
        DuoReply::EnrollStatus(EnrollStatus::Waiting),
    )
    .unwrap();
    assert_eq!(e, before);
    exchange(&mut e, &p, T0 + 6, MfaCommand::CheckProgress, phone_ready()).unwrap();
    assert!(matches!(
        phase(&e),
        DuoPhase::Confirm {
            push: PushState::NotSent,
            ..
        }
    ));

    // The push: sent, waiting, then allowed → verified with codes.
    let push = plan(
        &e,
        &MfaCommand::SendPush { device: None },
        &ctx(&p, T0 + 10),
    )
    .unwrap();
    assert_eq!(
        push,
        Some(DuoCall::Push {
            username: "jane@acme.example".into(),
            device: "DPFZRS9FB0D46QFTM891".into()
        })
    );
    exchange(
        &mut e,
        &p,
        T0 + 10,
        MfaCommand::SendPush { device: None },
        DuoReply::PushSent {
            txid: "tx-1".into(),
        },
    )
    .unwrap();
    assert!(matches!(
        phase(&e),
        DuoPhase::Confirm {
            push: PushState::Waiting,
            ..
        }
    ));
    assert_eq!(
        plan(&e, &MfaCommand::CheckProgress, &ctx(&p, T0 + 13)).unwrap(),
        Some(DuoCall::AuthStatus {
            txid: "tx-1".into()
        })
    );
    let allowed = AuthStatus {
        result: AuthResult::Allow,
        status: "allow".into(),
        status_msg: "Success. Logging you in...".into(),
    };
    let out = exchange(
        &mut e,
        &p,
        T0 + 13,
        MfaCommand::CheckProgress,
        DuoReply::Auth(allowed),
    )
    .unwrap();
    assert_eq!(out.recovery_codes.map(|c| c.len()), Some(10));
    assert_eq!(e.step, EnrollmentStep::Verified);
    assert_eq!(
        e.view(&p, None).duo,
        None,
        "nothing of Duo's is shown after pairing"
    );
}

#[test]
fn an_activation_duo_does_not_confirm_is_said_after_the_wait() {
    let p = policy();
    let mut e = started(&p, DuoReply::Activation(activation()));
    let still_enroll = || {
        DuoReply::Preauth(Preauth::Enroll {
            enroll_portal_url: None,
        })
    };
    // The phone says done; Duo's preauth has not caught up: wait quietly.
    exchange(
        &mut e,
        &p,
        T0 + 10,
        MfaCommand::CheckProgress,
        still_enroll(),
    )
    .unwrap();
    let wait = ACTIVATION_WAIT.as_secs() as i64;
    exchange(
        &mut e,
        &p,
        T0 + 10 + wait - 1,
        MfaCommand::CheckProgress,
        still_enroll(),
    )
    .unwrap();
    // Past the wait, counted from the first "done": said, with the wait.
    let err = exchange(
        &mut e,
        &p,
        T0 + 10 + wait + 5,
        MfaCommand::CheckProgress,
        still_enroll(),
    )
    .unwrap_err();
    let view = err.view();
    assert_eq!(
        view.problem.map(|p| p.cause),
        Some(rampart_shared::cause::Cause::DuoActivationPending {
            waited_ms: (wait as u64 + 5) * 1000
        })
    );
    assert_eq!(
        view.message,
        "Duo has not confirmed your phone's activation after 2 min 5 s. Check that Duo \
         Mobile shows your account, then click Try again. If it still waits, tell IT."
    );
    assert!(
        matches!(phase(&e), DuoPhase::Activate { expired: false, .. }),
        "the activation stays; polling may still succeed"
    );
    // Duo catches up: the devices to confirm with.
    exchange(
        &mut e,
        &p,
        T0 + 10 + wait + 8,
        MfaCommand::CheckProgress,
        phone_ready(),
    )
    .unwrap();
    assert!(matches!(phase(&e), DuoPhase::Confirm { .. }));
}

#[test]
fn a_denied_or_fraudulent_push_can_be_sent_again() {
    let p = policy();
    for (status, want) in [
        ("deny", PushState::Denied),
        ("fraud", PushState::Fraud),
        ("timeout", PushState::TimedOut),
    ] {
        let mut e = jane();
        exchange(&mut e, &p, T0, MfaCommand::StartEnrollment, phone_ready()).unwrap();
        exchange(
            &mut e,
            &p,
            T0,
            MfaCommand::SendPush {
                device: Some(phone().id),
            },
            DuoReply::PushSent { txid: "t".into() },
        )
        .unwrap();
        let denied = AuthStatus {
            result: AuthResult::Deny,
            status: status.into(),
            status_msg: "Login request denied.".into(),
        };
        exchange(
            &mut e,
            &p,
            T0 + 3,
            MfaCommand::CheckProgress,
            DuoReply::Auth(denied),
        )
        .unwrap();
        let Some(DuoPrompt::Confirm { push, .. }) = e.view(&p, None).duo else {
            panic!("not confirming")
        };
        assert_eq!(push, want, "{status}");
        assert_eq!(e.step, EnrollmentStep::Pairing);
        assert_eq!(
            plan(&e, &MfaCommand::CheckProgress, &ctx(&p, T0 + 6)).unwrap(),
            None,
            "nothing left to poll"
        );
        assert!(
            plan(&e, &MfaCommand::SendPush { device: None }, &ctx(&p, T0 + 6))
                .unwrap()
                .is_some()
        );
    }
}

#[test]
fn a_wrong_passcode_counts_towards_throttling() {
    let p = policy();
    let mut e = started(&p, phone_ready());
    let bad = |code: &str| MfaCommand::VerifyCode { code: code.into() };
    // Not a passcode by the shared rule (6 to 9 digits): refused before
    // Duo, and not counted.
    for typo in ["12a456", "12345", "1234567890"] {
        let err = plan(&e, &bad(typo), &ctx(&p, T0)).unwrap_err();
        assert_eq!(err.code(), MfaErrorCode::MalformedCode, "{typo}");
        assert_eq!(
            err.to_string(),
            "Type the passcode from Duo Mobile: 6 to 9 digits."
        );
    }
    let wrong = AuthStatus {
        result: AuthResult::Deny,
        status: "deny".into(),
        status_msg: "Incorrect passcode. Please try again.".into(),
    };
    for i in 0..4 {
        let err = exchange(
            &mut e,
            &p,
            T0 + i,
            bad("123 456"),
            DuoReply::Auth(wrong.clone()),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Incorrect passcode. Please try again.");
    }
    let err = exchange(&mut e, &p, T0 + 4, bad("123456"), DuoReply::Auth(wrong)).unwrap_err();
    assert_eq!(err.code(), MfaErrorCode::Throttled);
    assert_eq!(
        plan(&e, &bad("123456"), &ctx(&p, T0 + 6))
            .unwrap_err()
            .code(),
        MfaErrorCode::Throttled,
        "Duo is not asked while locked"
    );
}

#[test]
fn an_expired_activation_is_renewed() {
    let p = policy();
    let mut e = started(&p, DuoReply::Activation(activation()));
    exchange(
        &mut e,
        &p,
        T0 + 3,
        MfaCommand::CheckProgress,
        DuoReply::EnrollStatus(EnrollStatus::Invalid),
    )
    .unwrap();
    assert!(matches!(
        e.view(&p, None).duo,
        Some(DuoPrompt::Activate { expired: true, .. })
    ));
    assert_eq!(
        plan(&e, &MfaCommand::CheckProgress, &ctx(&p, T0 + 6)).unwrap(),
        None
    );
    let mut fresh = activation();
    fresh.activation_code = "duo://second".into();
    exchange(
        &mut e,
        &p,
        T0 + 9,
        MfaCommand::RenewActivation,
        DuoReply::Activation(fresh),
    )
    .unwrap();
    assert!(matches!(
        e.view(&p, None).duo,
        Some(DuoPrompt::Activate { expired: false, ref activation_code, .. }) if activation_code == "duo://second"
    ));
}

#[test]
fn bypass_and_deny_are_noted() {
    let p = policy();
    let e = started(
        &p,
        DuoReply::Preauth(Preauth::Allow {
            status_msg: "Allowing unknown user".into(),
        }),
    );
    let view = e.view(&p, None);
    assert_eq!(view.step, EnrollmentStep::NotRequired);
    assert_eq!(
        view.duo,
        Some(DuoPrompt::Bypass {
            message: "Allowing unknown user".into()
        })
    );

    let mut e = jane();
    let err = start(
        &mut e,
        &p,
        DuoReply::Preauth(Preauth::Deny {
            status_msg: "Access denied.".into(),
        }),
    )
    .unwrap_err();
    assert_eq!(err.code(), MfaErrorCode::AccessDenied);
    assert_eq!(
        err.to_string(),
        "Duo does not allow MFA setup for your account. Contact your IT support team: only \
         they can allow it."
    );
    let problem = err.view().problem.unwrap();
    assert_eq!(problem.cause, rampart_shared::cause::Cause::DuoDenied);
    assert_eq!(problem.details, "Access denied.", "Duo's words as details");
    assert_eq!(e.step, EnrollmentStep::NotSetUp);
    assert!(matches!(phase(&e), DuoPhase::Denied { .. }));
}

#[test]
fn rate_limits_and_bad_signatures_in_plain_words() {
    let p = policy();
    let mut e = jane();
    let err = start(
        &mut e,
        &p,
        DuoReply::Failed(DuoFailure::RateLimited {
            retry_after_secs: 20,
        }),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Duo asked Rampart to wait a moment. Try again in 20 s."
    );
    assert_eq!(err.view().retry_after_secs, Some(20));
    let again = plan(&e, &MfaCommand::StartEnrollment, &ctx(&p, T0 + 5)).unwrap_err();
    assert_eq!(
        again.view().retry_after_secs,
        Some(15),
        "Duo is not asked before its wait is over"
    );
    assert!(
        plan(&e, &MfaCommand::StartEnrollment, &ctx(&p, T0 + 20))
            .unwrap()
            .is_some()
    );

    let details = "Duo refused the request: Bad request timestamp (code 40105, HTTP 401)";
    let skewed = MfaError::from_duo(
        DuoFailure::Clock {
            offset_ms: -312_000,
            details: details.into(),
        },
        &p,
    );
    assert_eq!(
        skewed.to_string(),
        "Duo refused the request because this computer's clock is 5 min 12 s slow by Duo's \
         time. Turn on \"Set time automatically\" in your computer's date and time settings, \
         then try again."
    );
    let view = skewed.view();
    assert_eq!(view.code, MfaErrorCode::ProviderError);
    let problem = view.problem.unwrap();
    assert_eq!(
        problem.cause,
        rampart_shared::cause::Cause::DuoClock {
            offset_ms: -312_000
        }
    );
    assert_eq!(problem.details, details, "Duo's text only in the details");
    let keys = MfaError::from_duo(
        DuoFailure::Credentials {
            details: "code 40103".into(),
        },
        &p,
    );
    assert_eq!(
        keys.to_string(),
        "Duo refused Rampart's credentials (the integration key or secret key). Tell IT; \
         nothing on this computer needs to change."
    );
    assert_eq!(
        keys.view().problem.map(|p| p.cause),
        Some(rampart_shared::cause::Cause::DuoCredentials)
    );
    let unknown = MfaError::from_duo(
        DuoFailure::Unmeasured {
            timestamp: false,
            details: String::new(),
        },
        &p,
    );
    assert!(
        unknown
            .to_string()
            .contains("for api-1234abcd.duosecurity.com"),
        "{unknown}"
    );
    assert_eq!(unknown.view().problem, None, "no cause without a figure");
}

#[test]
fn a_portal_link_must_be_on_the_policys_duo_host() {
    let p = policy();
    let mut e = jane();
    let evil = DuoReply::Portal {
        url: "https://evil.example/portal".into(),
    };
    let err = exchange(&mut e, &p, T0, MfaCommand::StartEnrollment, evil).unwrap_err();
    assert_eq!(err.code(), MfaErrorCode::ProviderError);
    assert_eq!(e.step, EnrollmentStep::NotSetUp);
    let good = DuoReply::Portal {
        url: format!("https://{HOST}/portal?code=x"),
    };
    exchange(&mut e, &p, T0, MfaCommand::StartEnrollment, good).unwrap();
    assert!(matches!(
        e.view(&p, None).duo,
        Some(DuoPrompt::Portal { .. })
    ));
    assert!(matches!(
        plan(&e, &MfaCommand::CheckProgress, &ctx(&p, T0 + 3)).unwrap(),
        Some(DuoCall::Preauth { .. })
    ));
    assert!(!portal_url_is_duos(&format!("http://{HOST}/portal"), HOST));
    assert!(!portal_url_is_duos(
        &format!("https://{HOST}.evil.example/"),
        HOST
    ));
}

#[test]
fn an_enrolled_user_whose_phone_duo_dropped_sets_up_again() {
    let p = policy();
    let mut e = jane();
    e.step = EnrollmentStep::Enrolled;
    e.duo = Some(DuoState {
        username: "jane@acme.example".into(),
        phase: DuoPhase::Confirm {
            devices: vec![],
            push: PushState::NotSent,
            txid: None,
        },
        retry_at: None,
        last_preauth: Some((PreauthKind::Auth, at(T0))),
    });
    assert_eq!(
        plan(&e, &MfaCommand::StartEnrollment, &ctx(&p, T0)).unwrap(),
        None,
        "resume"
    );
    let refresh = DuoCall::Preauth {
        username: "jane@acme.example".into(),
    };
    e.apply_duo(
        &refresh,
        DuoReply::Preauth(Preauth::Enroll {
            enroll_portal_url: None,
        }),
        &ctx(&p, T0),
        HashCost::TEST,
    )
    .unwrap();
    assert_eq!(e.step, EnrollmentStep::Enrolled);
    let section = crate::mfa::section::section(Some(&e), &p);
    assert_eq!(section.state, rampart_shared::status::MfaState::Error);
    assert!(matches!(
        plan(&e, &MfaCommand::StartEnrollment, &ctx(&p, T0)).unwrap(),
        Some(DuoCall::Start { .. })
    ));
}

#[test]
fn totp_policies_never_ask_duo() {
    let p = crate::mfa::test_support::policy();
    let e = new_enrollment(ProviderKind::Totp);
    for command in [MfaCommand::StartEnrollment, MfaCommand::CheckProgress] {
        assert_eq!(plan(&e, &command, &ctx(&p, T0)).unwrap(), None);
    }
}
