//! The MFA section of the agent's status, in plain words.
//!
//! `detail` follows the status model's rule (the step to do next, or the
//! error's cause), so `assess` can say "MFA error: {detail}"; [`summary`]
//! joins it to the state's label the way the window and the CLI print it.

use rampart_shared::mfa::EnrollmentStep;
use rampart_shared::policy::Policy;
use rampart_shared::status::{MfaSection, MfaState};

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
        };
    };
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
    }
}

/// "Not set up", "Setup in progress: verify a code", "Enrolled since
/// 2026-11-23", "Error: …" (kept in `shared` so every reader says the same).
pub fn summary(section: &MfaSection) -> String {
    section.summary()
}
