//! Every way an MFA command can fail, each with the sentence the user reads
//! and the stable code the app branches on.

use rampart_shared::mfa::{EnrollmentStep, MfaErrorCode, MfaErrorView};
use rampart_shared::policy::ProviderKind;
use rampart_shared::totp::VerifyError;

use crate::fsutil::FsError;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("Your organization does not require MFA, so there is nothing to set up.")]
    NotRequired,
    #[error(
        "{} is not available in this version of Rampart. Ask IT to use the built-in \
         authenticator app provider for now.",
        provider_name(*.0)
    )]
    ProviderUnavailable(ProviderKind),
    #[error("That cannot be done now: the next step is to {}.", .current.next_action())]
    WrongStep { current: EnrollmentStep },
    #[error("{}", capitalized(.0))]
    Code(VerifyError),
    #[error("Enter a recovery code of 10 letters and digits, as it was shown to you.")]
    MalformedRecoveryCode,
    #[error("That recovery code is not right or was already used.")]
    WrongRecoveryCode,
    #[error("There are no recovery codes left. Ask IT to reset your MFA setup.")]
    NoRecoveryCodes,
    #[error("Too many wrong codes. Try again in {}.", wait_words(*.retry_after_secs))]
    Throttled { retry_after_secs: u64 },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error(
        "The offline access guide has changed since it was opened. Open the guide again, \
         read it, then confirm."
    )]
    GuideChanged,
    #[error("The saved MFA setup could not be read ({reason}). Ask IT to reset your MFA setup.")]
    StateCorrupt { reason: String },
    #[error("The MFA setup could not be saved: {0}")]
    Storage(#[from] FsError),
    /// The OS random source or the hash failed: nothing the user can fix.
    #[error("Rampart could not {0}. Try again; if it keeps failing, open a support ticket.")]
    Internal(String),
}

fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Totp => "The authenticator app provider",
        ProviderKind::Duo => "Duo",
    }
}

fn capitalized(e: &VerifyError) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let sentence = first.to_uppercase().chain(chars).collect::<String>();
            if sentence.ends_with('.') {
                sentence
            } else {
                format!("{sentence}.")
            }
        }
        None => text,
    }
}

/// "45 s", "1 min 30 s", "15 min": a wait as the throttling message says it.
pub fn wait_words(secs: u64) -> String {
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

impl MfaError {
    pub fn code(&self) -> MfaErrorCode {
        match self {
            Self::NotRequired => MfaErrorCode::NotRequired,
            Self::ProviderUnavailable(_) => MfaErrorCode::ProviderUnavailable,
            Self::WrongStep { .. } | Self::NoRecoveryCodes => MfaErrorCode::WrongStep,
            Self::Code(VerifyError::Malformed { .. }) | Self::MalformedRecoveryCode => {
                MfaErrorCode::MalformedCode
            }
            Self::Code(VerifyError::Replayed) => MfaErrorCode::ReplayedCode,
            Self::Code(VerifyError::Wrong {
                phone_skew_secs: Some(_),
            }) => MfaErrorCode::PhoneClockSkew,
            Self::Code(VerifyError::Wrong {
                phone_skew_secs: None,
            })
            | Self::WrongRecoveryCode => MfaErrorCode::WrongCode,
            Self::Throttled { .. } => MfaErrorCode::Throttled,
            Self::Forbidden(_) => MfaErrorCode::Forbidden,
            Self::GuideChanged => MfaErrorCode::GuideChanged,
            Self::StateCorrupt { .. } => MfaErrorCode::StateCorrupt,
            Self::Storage(_) => MfaErrorCode::Storage,
            Self::Internal(_) => MfaErrorCode::Internal,
        }
    }

    pub fn view(&self) -> MfaErrorView {
        MfaErrorView {
            code: self.code(),
            message: self.to_string(),
            retry_after_secs: match self {
                Self::Throttled { retry_after_secs } => Some(*retry_after_secs),
                _ => None,
            },
            phone_skew_secs: match self {
                Self::Code(VerifyError::Wrong { phone_skew_secs }) => *phone_skew_secs,
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_in_words() {
        assert_eq!(wait_words(30), "30 s");
        assert_eq!(wait_words(90), "1 min 30 s");
        assert_eq!(wait_words(900), "15 min");
    }

    #[test]
    fn messages_are_sentences_with_what_to_do() {
        assert_eq!(
            MfaError::Throttled {
                retry_after_secs: 90
            }
            .to_string(),
            "Too many wrong codes. Try again in 1 min 30 s."
        );
        assert_eq!(
            MfaError::Code(VerifyError::Replayed).to_string(),
            "This code was already used: wait for the next code in your app."
        );
        let duo = MfaError::ProviderUnavailable(ProviderKind::Duo);
        assert!(
            duo.to_string()
                .starts_with("Duo is not available in this version"),
            "{duo}"
        );
        assert_eq!(duo.view().code, MfaErrorCode::ProviderUnavailable);
        let skew = MfaError::Code(VerifyError::Wrong {
            phone_skew_secs: Some(-90),
        })
        .view();
        assert_eq!(skew.code, MfaErrorCode::PhoneClockSkew);
        assert_eq!(skew.phone_skew_secs, Some(-90));
    }
}
