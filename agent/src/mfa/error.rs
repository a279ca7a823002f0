//! Every way an MFA command can fail, each with the sentence the user reads
//! and the stable code the app branches on.

use rampart_shared::cause::{Cause, Problem};
use rampart_shared::mfa::{EnrollmentStep, MfaErrorCode, MfaErrorView};
use rampart_shared::policy::ProviderKind;
use rampart_shared::totp::VerifyError;

use rampart_shared::policy::Policy;

use super::duo::types::{self, DuoFailure};
use crate::fsutil::FsError;

/// Duo refuses requests whose Date is more than about this far from its own.
pub const DUO_CLOCK_TOLERANCE_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("Your organization does not require MFA, so there is nothing to set up.")]
    NotRequired,
    /// A provider asked to do what only the other one does (a TOTP step
    /// under a Duo policy): the policy changed under an open window.
    #[error(
        "{} cannot do that step. Close the setup window and open it again.",
        provider_name(*.0)
    )]
    ProviderUnavailable(ProviderKind),
    #[error("That cannot be done now: the next step is to {}.", .current.next_action())]
    WrongStep { current: EnrollmentStep },
    #[error("{}", capitalized(.0))]
    Code(VerifyError),
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
    /// Plain words from `storage::words` (the OS's text is logged and
    /// shown under the status's storage details, not here).
    #[error("{} Then try again.", crate::storage::words(
        crate::storage::StateKind::MfaState,
        .0.path(),
        .0.io_error().map(std::io::Error::kind),
    ))]
    Storage(#[from] FsError),
    /// Duo could not be reached or refused the request; a whole sentence.
    #[error("{0}")]
    ProviderError(String),
    /// Duo asked Rampart to slow down (HTTP 429).
    #[error("Duo asked Rampart to wait a moment. Try again in {}.", wait_words(*.retry_after_secs))]
    ProviderBusy { retry_after_secs: u64 },
    /// Duo's `deny` for this user; Duo's own words are the details.
    #[error("{}", Cause::DuoDenied.sentence())]
    AccessDenied(String),
    /// Duo refused the request's time (40105, or 40103 with the clock
    /// measured beyond Duo's tolerance): this computer's clock minus Duo's.
    #[error("{}", Cause::DuoClock { offset_ms: *.offset_ms }.sentence())]
    DuoClock { offset_ms: i64, details: String },
    /// Duo refused the keys (40103 with the clock right).
    #[error("{}", Cause::DuoCredentials.sentence())]
    DuoCredentials { details: String },
    /// A TOTP code that matches the phone's clock off by about as much as
    /// this computer's clock moved since it was measured (the other way):
    /// this computer's clock is the one that is off.
    #[error("{}", Cause::ComputerClockMoved { moved_ms: *.moved_ms }.sentence())]
    ComputerClockMoved { moved_ms: i64 },
    /// As above, explained by the skew the last clock check measured.
    #[error("{}", Cause::ClockSkew { offset_ms: *.offset_ms, allowed_ms: *.allowed_ms }.sentence())]
    ComputerClockSkew { offset_ms: i64, allowed_ms: u64 },
    /// Duo has still not confirmed the phone's activation this long after
    /// the phone reported it done.
    #[error("{}", Cause::DuoActivationPending { waited_ms: *.waited_ms }.sentence())]
    ActivationPending { waited_ms: u64 },
    #[error(
        "Rampart is still waiting for Duo's answer to your last request. Try again in a moment."
    )]
    ProviderInFlight,
    #[error("None of your Duo devices can take a push. Type a passcode from Duo Mobile instead.")]
    NoPushDevice,
    #[error("Type the passcode from Duo Mobile: 6 to 9 digits.")]
    MalformedPasscode,
    /// Duo refused a passcode, in Duo's words.
    #[error("{}", if .0.is_empty() { "That passcode is not right. Try again.".to_owned() } else { .0.clone() })]
    WrongPasscode(String),
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
    /// A failed Duo call in plain words: a refused time or key by its
    /// cause (Duo's text kept as details).
    pub fn from_duo(failure: DuoFailure, policy: &Policy) -> Self {
        match failure {
            DuoFailure::RateLimited { retry_after_secs } => Self::ProviderBusy { retry_after_secs },
            DuoFailure::Clock { offset_ms, details } => Self::DuoClock { offset_ms, details },
            DuoFailure::Credentials { details } => Self::DuoCredentials { details },
            DuoFailure::Unmeasured { timestamp, .. } => Self::ProviderError(if timestamp {
                "Duo refused this computer's time, and Duo's clock could not be read for the \
                 figure. Turn on \"Set time automatically\" in your computer's date and time \
                 settings, then try again."
                    .to_owned()
            } else {
                format!(
                    "Duo did not accept Rampart's credentials for {}: this computer's clock or \
                     the integration key is wrong, and Duo's clock could not be read to tell \
                     which. Check that the date and time are set automatically, then try again; \
                     if it keeps failing, tell IT.",
                    types::api_host(policy).unwrap_or("Duo")
                )
            }),
            DuoFailure::Other(sentence) => Self::ProviderError(sentence),
        }
    }

    /// The cause in the shared vocabulary, when this error has one, with
    /// the raw text (Duo's message and code, the OS error) as details.
    pub fn problem(&self) -> Option<Problem> {
        match self {
            Self::DuoClock { offset_ms, details } => Some(Problem::new(
                Cause::DuoClock {
                    offset_ms: *offset_ms,
                },
                details.clone(),
            )),
            Self::DuoCredentials { details } => {
                Some(Problem::new(Cause::DuoCredentials, details.clone()))
            }
            Self::AccessDenied(message) => Some(Problem::new(Cause::DuoDenied, message.clone())),
            Self::ComputerClockMoved { moved_ms } => Some(Problem::new(
                Cause::ComputerClockMoved {
                    moved_ms: *moved_ms,
                },
                "",
            )),
            Self::ComputerClockSkew {
                offset_ms,
                allowed_ms,
            } => Some(Problem::new(
                Cause::ClockSkew {
                    offset_ms: *offset_ms,
                    allowed_ms: *allowed_ms,
                },
                "",
            )),
            Self::ActivationPending { waited_ms } => Some(Problem::new(
                Cause::DuoActivationPending {
                    waited_ms: *waited_ms,
                },
                "",
            )),
            Self::Code(VerifyError::Wrong {
                phone_skew_secs: Some(secs),
            }) => Some(Problem::new(
                Cause::PhoneClockSkew {
                    offset_ms: secs.saturating_mul(1000),
                },
                "",
            )),
            Self::Storage(e)
                if matches!(
                    e.io_error().map(std::io::Error::kind),
                    Some(std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
                ) =>
            {
                Some(Problem::new(
                    Cause::StorageFull {
                        what: "your MFA setup".into(),
                    },
                    e.to_string(),
                ))
            }
            _ => None,
        }
    }

    pub fn code(&self) -> MfaErrorCode {
        match self {
            Self::NotRequired => MfaErrorCode::NotRequired,
            Self::ProviderUnavailable(_) => MfaErrorCode::ProviderUnavailable,
            Self::WrongStep { .. } => MfaErrorCode::WrongStep,
            Self::Code(VerifyError::Malformed { .. }) | Self::MalformedPasscode => {
                MfaErrorCode::MalformedCode
            }
            Self::WrongPasscode(_) => MfaErrorCode::WrongCode,
            Self::ProviderError(_)
            | Self::DuoClock { .. }
            | Self::DuoCredentials { .. }
            | Self::ActivationPending { .. }
            | Self::NoPushDevice
            | Self::ProviderInFlight => MfaErrorCode::ProviderError,
            // A wrong code, explained by this computer's clock.
            Self::ComputerClockMoved { .. } | Self::ComputerClockSkew { .. } => {
                MfaErrorCode::WrongCode
            }
            Self::ProviderBusy { .. } => MfaErrorCode::Throttled,
            Self::AccessDenied(_) => MfaErrorCode::AccessDenied,
            Self::Code(VerifyError::Replayed) => MfaErrorCode::ReplayedCode,
            Self::Code(VerifyError::Wrong {
                phone_skew_secs: Some(_),
            }) => MfaErrorCode::PhoneClockSkew,
            Self::Code(VerifyError::Wrong {
                phone_skew_secs: None,
            }) => MfaErrorCode::WrongCode,
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
                Self::Throttled { retry_after_secs } | Self::ProviderBusy { retry_after_secs } => {
                    Some(*retry_after_secs)
                }
                _ => None,
            },
            phone_skew_secs: match self {
                Self::Code(VerifyError::Wrong { phone_skew_secs }) => *phone_skew_secs,
                _ => None,
            },
            problem: self.problem(),
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
        assert_eq!(
            duo.to_string(),
            "Duo cannot do that step. Close the setup window and open it again."
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
