//! The MFA section of the agent's status, in plain words.
//!
//! `detail` follows the status model's rule (the step to do next, or the
//! error's cause), so `assess` can say "MFA error: {detail}"; [`summary`]
//! joins it to the state's label the way the window and the CLI print it.

use rampart_shared::mfa::{EnrollmentStep, PushState};
use rampart_shared::policy::{Policy, ProviderKind};
use rampart_shared::status::{MfaSection, MfaState};

use super::duo::types::{DuoPhase, PreauthKind};
use super::machine::Enrollment;

/// The section for a user with this enrollment (`None`: never started).
pub fn section(enrollment: Option<&Enrollment>, policy: &Policy) -> MfaSection {
    let provider = policy.mfa.provider.kind();
    let Some(e) = enrollment else {
        return MfaSection {
            state: if policy.mfa.required {
                MfaState::NotSetUp
            } else {
                MfaState::NotRequired
            },
            provider,
            detail: None,
            signin: None,
        };
    };
    if let Some(found) = duo_section(e, policy) {
        return found;
    }
    let (state, detail) = match e.visible_step(policy) {
        EnrollmentStep::NotRequired => (MfaState::NotRequired, None),
        EnrollmentStep::NotSetUp => (MfaState::NotSetUp, None),
        EnrollmentStep::Enrolled => (
            MfaState::Enrolled,
            e.enrolled_at
                .map(|t| format!("since {}", t.format("%Y-%m-%d"))),
        ),
        step => (MfaState::InProgress, Some(step.next_action().to_owned())),
    };
    MfaSection {
        state,
        provider: match e.step {
            EnrollmentStep::NotSetUp => provider,
            _ => e.provider,
        },
        detail,
        signin: (state == MfaState::Enrolled && e.provider == ProviderKind::Totp)
            .then(|| e.signin_section()),
    }
}

/// What Duo says overrides the local steps: a denied user is an error, a
/// bypassed one needs nothing, and an enrolled user whose phone Duo no
/// longer has must set up again. While pairing, the detail names the Duo
/// step.
fn duo_section(e: &Enrollment, policy: &Policy) -> Option<MfaSection> {
    let duo = e.duo.as_ref()?;
    let section = |state, detail: String| MfaSection {
        state,
        provider: ProviderKind::Duo,
        detail: Some(detail),
        signin: None,
    };
    if let DuoPhase::Denied { message } = &duo.phase {
        let says = if message.is_empty() {
            String::new()
        } else {
            format!(" ({})", message.trim_end_matches('.'))
        };
        return Some(section(
            MfaState::Error,
            format!("Duo denies MFA for this account{says}; contact IT"),
        ));
    }
    let last = duo.last_preauth.map(|(kind, _)| kind);
    match (e.visible_step(policy), &duo.phase) {
        (EnrollmentStep::NotRequired, DuoPhase::Bypass { .. }) => Some(section(
            MfaState::NotRequired,
            "Duo lets this account sign in without a second factor (bypass set by IT)".into(),
        )),
        (EnrollmentStep::Enrolled, _) if last == Some(PreauthKind::Enroll) => Some(section(
            MfaState::Error,
            "Duo no longer has a phone for this account; run MFA setup again".into(),
        )),
        (EnrollmentStep::Pairing, phase) => {
            let next = match phase {
                DuoPhase::Activate { expired: false, .. } => "activate Duo Mobile with the QR code",
                DuoPhase::Activate { expired: true, .. } => "get a new Duo activation",
                DuoPhase::Portal { .. } => "add your phone on Duo's enrollment page",
                DuoPhase::Confirm {
                    push: PushState::Waiting,
                    ..
                } => "approve the Duo Push on your phone",
                _ => "confirm your phone with Duo",
            };
            Some(section(MfaState::InProgress, next.into()))
        }
        _ => None,
    }
}

/// The section of a user whose state file cannot be read.
pub fn broken_section(reason: &str, policy: &Policy) -> MfaSection {
    MfaSection {
        state: MfaState::Error,
        provider: policy.mfa.provider.kind(),
        detail: Some(format!(
            "the saved MFA setup cannot be read ({reason}); IT can reset it"
        )),
        signin: None,
    }
}

/// "Not set up", "Setup in progress: verify a code", "Enrolled since
/// 2026-11-23", "Error: …" (kept in `shared` so every reader says the same).
pub fn summary(section: &MfaSection) -> String {
    section.summary()
}
