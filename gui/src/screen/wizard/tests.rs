//! The wizard's routing, driven through `update` as the app drives it:
//! the agent's answers are fed back as `Message::Enrollment`.

use super::*;
use crate::fixtures::{activate, confirm, duo_view, links, passing, refusal, status_with, view_at};
use rampart_shared::mfa::{DuoPrompt, EnrollmentStep, MfaErrorCode, MfaErrorView};
use rampart_shared::status::{ClockState, NetworkState};

fn reply(state: &mut State, view: EnrollmentView) -> Vec<Action> {
    update(state, Message::Enrollment(Ok(Box::new(view))))
}

#[test]
fn the_whole_happy_path_step_by_step() {
    let (mut s, actions) = State::new(Some(passing()));
    assert_eq!(actions, vec![Action::FetchLinks, Action::FocusPrimary]);
    assert!(matches!(s.step, Step::Before(_)));
    update(&mut s, Message::Links(Ok(links())));

    let a = update(&mut s, Message::Before(before::Message::GetStarted));
    assert_eq!(a, vec![Action::Mfa(MfaCommand::StartEnrollment)]);
    reply(&mut s, view_at(EnrollmentStep::Pairing));
    assert!(matches!(s.step, Step::Pair(_)));

    let a = update(&mut s, Message::Pair(pair::Message::Next));
    assert_eq!(a, vec![Action::FocusCode]);
    update(
        &mut s,
        Message::Verify(verify::Message::CodeChanged("123456".into())),
    );
    let a = update(&mut s, Message::Verify(verify::Message::Submit));
    assert_eq!(
        a,
        vec![Action::Mfa(MfaCommand::VerifyCode {
            code: "123456".into()
        })]
    );

    let mut verified = view_at(EnrollmentStep::Verified);
    verified.recovery_codes = Some(vec!["AAAA-BBBB".into()]);
    reply(&mut s, verified);
    let Step::Recovery(r) = &s.step else {
        panic!("expected recovery codes, got {:?}", s.step)
    };
    assert_eq!(r.codes.as_ref().map(Vec::len), Some(1));
    assert!(update(&mut s, Message::Recovery(recovery::Message::Continue)).is_empty());
    update(&mut s, Message::Recovery(recovery::Message::Confirm(true)));
    assert_eq!(
        update(&mut s, Message::Recovery(recovery::Message::Continue)),
        vec![Action::Mfa(MfaCommand::ConfirmRecoveryCodesSaved)]
    );

    // Arriving at the offline step opens the policy's guide by itself.
    let a = reply(&mut s, view_at(EnrollmentStep::RecoveryCodesSaved));
    assert_eq!(
        a,
        vec![
            Action::OpenLink(links().offline_guide_url),
            Action::FocusPrimary
        ]
    );
    assert!(update(&mut s, Message::Offline(offline::Message::Finish)).is_empty());
    update(&mut s, Message::Offline(offline::Message::Read(true)));
    assert_eq!(
        update(&mut s, Message::Offline(offline::Message::Finish)),
        vec![Action::Mfa(MfaCommand::AcknowledgeOfflineGuide {
            guide_url: links().offline_guide_url
        })]
    );
    reply(&mut s, view_at(EnrollmentStep::Enrolled));
    assert!(matches!(s.step, Step::Done));
    assert_eq!(update(&mut s, Message::Close), vec![Action::Close]);
}

#[test]
fn the_duo_path_activates_polls_and_confirms_with_a_push() {
    use rampart_shared::mfa::PushState;
    let (mut s, _) = State::new(Some(passing()));
    update(&mut s, Message::Links(Ok(links())));
    update(&mut s, Message::Before(before::Message::GetStarted));
    assert!(
        update(&mut s, Message::Poll).is_empty(),
        "nothing to poll yet"
    );
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, activate("duo://a", false)),
    );
    assert!(matches!(s.step, Step::DuoActivate(_)));
    assert_eq!(s.place(), Some((2, 5)));
    assert!(s.polling());
    let poll = vec![Action::Mfa(MfaCommand::CheckProgress)];
    assert_eq!(update(&mut s, Message::Poll), poll);
    assert!(
        update(&mut s, Message::Poll).is_empty(),
        "no second poll while the first is unanswered"
    );
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, activate("duo://a", false)),
    );
    assert_eq!(update(&mut s, Message::Poll), poll);

    // The phone is activated: confirm it.
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, confirm(PushState::NotSent)),
    );
    assert!(matches!(s.step, Step::DuoConfirm(_)));
    assert!(!s.polling(), "nothing to wait for before the push");
    assert_eq!(
        update(&mut s, Message::DuoConfirm(duo_confirm::Message::SendPush)),
        vec![Action::Mfa(MfaCommand::SendPush {
            device: Some("DP1".into())
        })]
    );
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, confirm(PushState::Waiting)),
    );
    assert!(s.polling());
    assert_eq!(update(&mut s, Message::Poll), poll);
    let mut verified = duo_view(EnrollmentStep::Verified, None);
    verified.recovery_codes = Some(vec!["AAAA-BBBB".into()]);
    reply(&mut s, verified);
    assert!(matches!(s.step, Step::Recovery(_)), "{:?}", s.step);
    assert!(!s.polling());
}

#[test]
fn an_expired_activation_stops_polling_and_offers_a_new_one() {
    let (mut s, _) = State::new(Some(passing()));
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, activate("duo://a", true)),
    );
    assert!(!s.polling());
    assert_eq!(
        update(&mut s, Message::DuoActivate(duo_activate::Message::Renew)),
        vec![Action::Mfa(MfaCommand::RenewActivation)]
    );
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, activate("duo://b", false)),
    );
    assert!(s.polling());
}

#[test]
fn an_activation_duo_does_not_confirm_is_said_with_try_again() {
    use rampart_shared::cause::{Cause, Problem};
    let (mut s, _) = State::new(Some(passing()));
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, activate("duo://a", false)),
    );
    assert!(s.polling());
    let cause = Cause::DuoActivationPending { waited_ms: 125_000 };
    let words = format!("{} {}", cause.words(), cause.next_step());
    let mut pending = duo_view(EnrollmentStep::Pairing, activate("duo://a", false));
    pending.error = Some(MfaErrorView {
        problem: Some(Problem::new(cause, "")),
        ..refusal(MfaErrorCode::ProviderError, words.clone())
    });
    reply(&mut s, pending);
    let Step::DuoActivate(duo_activate::State::Activate { pending, .. }) = &s.step else {
        panic!("{:?}", s.step)
    };
    assert_eq!(pending.as_deref(), Some(words.as_str()));
    assert_eq!(s.notice, None, "said once, on the screen");
    assert!(!s.polling(), "no spinning once the agent says why");
    assert_eq!(
        update(
            &mut s,
            Message::DuoActivate(duo_activate::Message::TryAgain)
        ),
        vec![Action::Mfa(MfaCommand::CheckProgress)]
    );
    // Duo caught up: the phone to confirm with.
    reply(
        &mut s,
        duo_view(
            EnrollmentStep::Pairing,
            confirm(rampart_shared::mfa::PushState::NotSent),
        ),
    );
    assert!(matches!(s.step, Step::DuoConfirm(_)));
}

#[test]
fn a_denied_account_goes_to_support_and_nowhere_else() {
    let (mut s, _) = State::new(Some(passing()));
    update(&mut s, Message::Links(Ok(links())));
    let mut denied = duo_view(EnrollmentStep::NotSetUp, None);
    denied.error = Some(refusal(
        MfaErrorCode::AccessDenied,
        "Duo does not allow MFA setup for your account.",
    ));
    reply(&mut s, denied);
    assert!(matches!(s.step, Step::Denied(_)));
    assert_eq!(s.place(), None);
    assert_eq!(
        update(&mut s, Message::OpenSupport),
        vec![Action::OpenLink(links().support_url)]
    );
}

#[test]
fn duo_unreachable_offers_try_again_with_the_same_command() {
    let (mut s, _) = State::new(Some(passing()));
    update(&mut s, Message::Before(before::Message::GetStarted));
    let mut failed = duo_view(EnrollmentStep::NotSetUp, None);
    failed.error = Some(refusal(
        MfaErrorCode::ProviderError,
        "Rampart could not reach Duo (connection refused).",
    ));
    reply(&mut s, failed);
    assert!(
        s.notice
            .as_deref()
            .is_some_and(|n| n.contains("could not reach Duo"))
    );
    assert!(matches!(s.step, Step::Before(_)));
    assert_eq!(
        update(&mut s, Message::Retry),
        vec![Action::Mfa(MfaCommand::StartEnrollment)]
    );
    assert!(s.notice.is_none());
    assert!(
        update(&mut s, Message::Retry).is_empty(),
        "not while in flight"
    );
}

#[test]
fn a_bypassed_user_is_told_there_is_nothing_to_do() {
    let (mut s, _) = State::new(Some(passing()));
    let bypass = Some(DuoPrompt::Bypass {
        message: "Allowing unknown user".into(),
    });
    reply(&mut s, duo_view(EnrollmentStep::NotRequired, bypass));
    assert!(matches!(&s.step, Step::Bypass(m) if m == "Allowing unknown user"));
}

#[test]
fn a_wrong_duo_passcode_stays_on_the_confirm_step() {
    use rampart_shared::mfa::PushState;
    let (mut s, _) = State::new(Some(passing()));
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, confirm(PushState::NotSent)),
    );
    update(
        &mut s,
        Message::DuoConfirm(duo_confirm::Message::PasscodeChanged("123456".into())),
    );
    let a = update(
        &mut s,
        Message::DuoConfirm(duo_confirm::Message::SubmitPasscode),
    );
    assert_eq!(
        a,
        vec![Action::Mfa(MfaCommand::VerifyCode {
            code: "123456".into()
        })]
    );
    let mut wrong = duo_view(EnrollmentStep::Pairing, confirm(PushState::NotSent));
    wrong.error = Some(refusal(
        MfaErrorCode::WrongCode,
        "Incorrect passcode. Please try again.",
    ));
    reply(&mut s, wrong);
    let Step::DuoConfirm(c) = &s.step else {
        panic!("left the confirm step")
    };
    assert_eq!(
        c.error.as_ref().map(|e| e.message.as_str()),
        Some("Incorrect passcode. Please try again.")
    );
    assert!(s.notice.is_none());
}

#[test]
fn get_started_does_nothing_while_the_clock_is_skewed() {
    let skewed = Box::new(status_with(
        NetworkState::Online,
        ClockState::Skewed,
        Some(-252_000),
    ));
    let (mut s, _) = State::new(Some(skewed));
    assert!(update(&mut s, Message::Before(before::Message::GetStarted)).is_empty());
    // The clock gets fixed; the status event enables it.
    update(&mut s, Message::Status(passing()));
    assert_eq!(
        update(&mut s, Message::Before(before::Message::GetStarted)),
        vec![Action::Mfa(MfaCommand::StartEnrollment)]
    );
}

#[test]
fn check_again_refreshes_everything_and_shows_the_agents_refusal() {
    let (mut s, _) = State::new(Some(passing()));
    assert_eq!(
        update(&mut s, Message::Before(before::Message::CheckAgain)),
        vec![Action::Refresh(Check::All)]
    );
    update(&mut s, Message::Refreshed(Err("no checks yet".into())));
    let Step::Before(b) = &s.step else {
        panic!("left step 1")
    };
    assert!(!b.is_checking());
    assert_eq!(b.refresh_error.as_deref(), Some("no checks yet"));
}

#[test]
fn wrong_code_stays_on_the_code_step_with_the_agents_words() {
    let (mut s, _) = State::new(Some(passing()));
    reply(&mut s, view_at(EnrollmentStep::Pairing));
    update(&mut s, Message::Pair(pair::Message::Next));
    update(
        &mut s,
        Message::Verify(verify::Message::CodeChanged("000000".into())),
    );
    update(&mut s, Message::Verify(verify::Message::Submit));
    let mut refused = view_at(EnrollmentStep::Pairing);
    refused.error = Some(MfaErrorView {
        phone_skew_secs: Some(120),
        ..refusal(
            MfaErrorCode::PhoneClockSkew,
            "That code would be right if your phone's clock were 2 min ahead.",
        )
    });
    reply(&mut s, refused);
    let Step::Verify(v) = &s.step else {
        panic!("left the code step")
    };
    assert_eq!(
        v.error.as_ref().map(|e| e.message.as_str()),
        Some("That code would be right if your phone's clock were 2 min ahead.")
    );
    assert!(!v.submitting);
    assert!(s.notice.is_none());
}

#[test]
fn throttle_starts_a_countdown() {
    let (mut s, _) = State::new(Some(passing()));
    reply(&mut s, view_at(EnrollmentStep::Pairing));
    update(&mut s, Message::Pair(pair::Message::Next));
    let mut throttled = view_at(EnrollmentStep::Pairing);
    throttled.error = Some(MfaErrorView {
        retry_after_secs: Some(90),
        ..refusal(
            MfaErrorCode::Throttled,
            "Too many wrong codes. Try again in 1 min 30 s.",
        )
    });
    reply(&mut s, throttled);
    assert!(s.counting_down());
    update(&mut s, Message::Tick(Instant::now()));
    let Step::Verify(v) = &s.step else {
        panic!("left the code step")
    };
    assert_eq!(v.wait_left, 89);
}

#[test]
fn reopening_resumes_at_the_agents_step() {
    let mut status = passing();
    status.mfa.state = MfaState::InProgress;
    let (mut s, actions) = State::new(Some(status));
    assert!(matches!(s.step, Step::Resuming));
    assert_eq!(
        actions,
        vec![Action::FetchLinks, Action::Mfa(MfaCommand::StartEnrollment)]
    );
    // At `verified` the codes are gone: offer new ones.
    reply(&mut s, view_at(EnrollmentStep::Verified));
    let Step::Recovery(r) = &s.step else {
        panic!("expected the recovery step")
    };
    assert!(r.codes.is_none());
    assert_eq!(
        update(&mut s, Message::Recovery(recovery::Message::Regenerate)),
        vec![Action::Mfa(MfaCommand::RegenerateRecoveryCodes)]
    );
    let mut fresh = view_at(EnrollmentStep::Verified);
    fresh.recovery_codes = Some(vec!["NEW1-CODE".into(), "NEW2-CODE".into()]);
    reply(&mut s, fresh);
    let Step::Recovery(r) = &s.step else {
        panic!("expected the recovery step")
    };
    assert_eq!(r.codes.as_ref().map(Vec::len), Some(2));
    assert!(!r.busy);
}

#[test]
fn offline_step_before_links_opens_the_guide_when_they_arrive() {
    let mut status = passing();
    status.mfa.state = MfaState::InProgress;
    let (mut s, _) = State::new(Some(status));
    assert_eq!(
        reply(&mut s, view_at(EnrollmentStep::RecoveryCodesSaved)),
        vec![Action::FocusPrimary]
    );
    assert_eq!(
        update(&mut s, Message::Links(Ok(links()))),
        vec![Action::OpenLink(links().offline_guide_url)]
    );
    // Only once by itself.
    assert!(update(&mut s, Message::Links(Ok(links()))).is_empty());
    // No browser: the user is told where to go instead.
    update(
        &mut s,
        Message::LinkOpened(links().offline_guide_url, Err("no browser found".into())),
    );
    assert!(
        s.notice.as_deref().is_some_and(
            |n| n.contains("no browser found") && n.contains(&links().offline_guide_url)
        )
    );
}

#[test]
fn links_that_are_not_https_are_never_opened() {
    let mut status = passing();
    status.mfa.state = MfaState::InProgress;
    let (mut s, _) = State::new(Some(status));
    let bad = Links {
        offline_guide_url: "http://guide.example/offline".into(),
        support_url: "file:///etc/passwd".into(),
    };
    update(&mut s, Message::Links(Ok(bad)));
    assert_eq!(
        reply(&mut s, view_at(EnrollmentStep::RecoveryCodesSaved)),
        vec![Action::FocusPrimary]
    );
    let Step::Offline(o) = &s.step else {
        panic!("expected the offline step")
    };
    assert!(!o.opened);
    assert!(o.link_error.is_some());
    assert!(update(&mut s, Message::OpenSupport).is_empty());
    assert!(
        s.notice
            .as_deref()
            .is_some_and(|n| n.contains("not opened"))
    );
}

#[test]
fn agent_unreachable_mid_step_lets_the_user_retry() {
    let (mut s, _) = State::new(Some(passing()));
    reply(&mut s, view_at(EnrollmentStep::Pairing));
    update(&mut s, Message::Pair(pair::Message::Next));
    update(
        &mut s,
        Message::Verify(verify::Message::CodeChanged("123456".into())),
    );
    update(&mut s, Message::Verify(verify::Message::Submit));
    update(
        &mut s,
        Message::Enrollment(Err("connection refused".into())),
    );
    assert!(
        s.notice
            .as_deref()
            .is_some_and(|n| n.contains("connection refused"))
    );
    assert_eq!(
        update(&mut s, Message::Verify(verify::Message::Submit)).len(),
        1
    );
}

/// Enter that no widget took does what each step's primary button does,
/// and nothing while that button is disabled.
#[test]
fn enter_does_each_steps_primary_action() {
    use rampart_shared::mfa::PushState;
    let enter = |s: &mut State| update(s, Message::Enter);
    let (mut s, _) = State::new(Some(passing()));
    update(&mut s, Message::Links(Ok(links())));
    assert_eq!(
        enter(&mut s),
        vec![Action::Mfa(MfaCommand::StartEnrollment)]
    );
    let a = reply(&mut s, view_at(EnrollmentStep::Pairing));
    assert!(matches!(s.step, Step::Pair(_)));
    assert_eq!(a, vec![Action::FocusPrimary], "Next takes the focus");
    assert_eq!(enter(&mut s), vec![Action::FocusCode]);
    assert!(matches!(s.step, Step::Verify(_)));
    assert!(enter(&mut s).is_empty(), "no code yet");
    update(
        &mut s,
        Message::Verify(verify::Message::CodeChanged("123456".into())),
    );
    assert_eq!(
        enter(&mut s),
        vec![Action::Mfa(MfaCommand::VerifyCode {
            code: "123456".into()
        })]
    );
    let mut verified = view_at(EnrollmentStep::Verified);
    verified.recovery_codes = Some(vec!["AAAA-BBBB".into()]);
    assert_eq!(reply(&mut s, verified), vec![Action::FocusPrimary]);
    assert!(enter(&mut s).is_empty(), "Continue needs the checkbox");
    update(&mut s, Message::Recovery(recovery::Message::Confirm(true)));
    assert_eq!(
        enter(&mut s),
        vec![Action::Mfa(MfaCommand::ConfirmRecoveryCodesSaved)]
    );
    reply(&mut s, view_at(EnrollmentStep::RecoveryCodesSaved));
    assert!(enter(&mut s).is_empty(), "Finish needs the checkbox");
    update(&mut s, Message::Offline(offline::Message::Read(true)));
    assert_eq!(
        enter(&mut s),
        vec![Action::Mfa(MfaCommand::AcknowledgeOfflineGuide {
            guide_url: links().offline_guide_url
        })]
    );
    reply(&mut s, view_at(EnrollmentStep::Enrolled));
    assert_eq!(enter(&mut s), vec![Action::Close]);

    // Duo: an expired activation renews; a live one waits on the phone.
    let (mut s, _) = State::new(Some(passing()));
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, activate("duo://a", false)),
    );
    assert!(enter(&mut s).is_empty());
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, activate("duo://a", true)),
    );
    assert_eq!(
        enter(&mut s),
        vec![Action::Mfa(MfaCommand::RenewActivation)]
    );
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, confirm(PushState::NotSent)),
    );
    assert_eq!(
        enter(&mut s),
        vec![Action::Mfa(MfaCommand::SendPush {
            device: Some("DP1".into())
        })]
    );

    // Still resuming: nothing to press yet.
    let mut status = passing();
    status.mfa.state = MfaState::InProgress;
    let (mut s, _) = State::new(Some(status));
    assert!(enter(&mut s).is_empty());
}

/// "Get started" is disabled until the checks pass, so it cannot take
/// the focus when the step opens: it takes it when they first pass.
#[test]
fn get_started_takes_the_focus_when_the_checks_first_pass() {
    // The first clock check has not run: Get started waits for it.
    let mut unchecked = status_with(NetworkState::Unknown, ClockState::Unknown, None);
    unchecked.clock.checked_at = None;
    let (mut s, _) = State::new(Some(Box::new(unchecked.clone())));
    assert_eq!(
        update(&mut s, Message::Status(passing())),
        vec![Action::FocusPrimary]
    );
    assert!(update(&mut s, Message::Status(passing())).is_empty());
    assert!(update(&mut s, Message::Status(Box::new(unchecked))).is_empty());
}

/// The app's one-second tick goes to the step on screen, whichever counts.
#[test]
fn a_tick_reaches_the_step_that_counts() {
    let (mut s, _) = State::new(Some(passing()));
    update(&mut s, Message::Before(before::Message::CheckAgain));
    assert!(s.counting_down());
    let t0 = Instant::now();
    update(&mut s, Message::Tick(t0));
    update(&mut s, Message::Tick(t0 + before::CHECK_BOUND));
    assert!(!s.counting_down(), "\"Checking…\" ended at its bound");

    use rampart_shared::mfa::PushState;
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, confirm(PushState::NotSent)),
    );
    let mut throttled = duo_view(EnrollmentStep::Pairing, confirm(PushState::NotSent));
    throttled.error = Some(MfaErrorView {
        retry_after_secs: Some(2),
        ..refusal(MfaErrorCode::Throttled, "Too many attempts.")
    });
    reply(&mut s, throttled);
    update(&mut s, Message::Tick(t0));
    update(&mut s, Message::Tick(t0));
    assert!(!s.counting_down(), "the throttle's two seconds ran out");
}

/// "Step n of m" is the step's place in its provider's list of steps.
#[test]
fn each_step_is_numbered_in_its_providers_list() {
    let mut status = passing();
    let (mut s, _) = State::new(Some(status.clone()));
    assert_eq!(s.place(), Some((1, 5)));
    reply(&mut s, view_at(EnrollmentStep::Pairing));
    assert_eq!(s.place(), Some((2, 5)));
    update(&mut s, Message::Pair(pair::Message::Next));
    assert_eq!(s.place(), Some((3, 5)));
    reply(&mut s, view_at(EnrollmentStep::Verified));
    assert_eq!(s.place(), Some((4, 5)));
    reply(&mut s, view_at(EnrollmentStep::RecoveryCodesSaved));
    assert_eq!(s.place(), Some((5, 5)));
    reply(&mut s, view_at(EnrollmentStep::Enrolled));
    assert_eq!(s.place(), None);

    status.policy.provider = rampart_shared::policy::ProviderKind::Duo;
    let (mut s, _) = State::new(Some(status));
    reply(
        &mut s,
        duo_view(EnrollmentStep::Pairing, activate("duo://a", false)),
    );
    assert_eq!(s.place(), Some((2, 5)));
    reply(
        &mut s,
        duo_view(
            EnrollmentStep::Pairing,
            confirm(rampart_shared::mfa::PushState::NotSent),
        ),
    );
    assert_eq!(s.place(), Some((3, 5)));
}
