//! The agent's answer, or its absence, as a PAM result and the words the
//! person at the prompt sees. Pure: `hooks` carries it out.

use rampart_shared::signin::{SigninMethod, SigninRefusal, SigninResult};

use crate::agent::AskError;
use crate::args::{AgentDown, Args, NotEnrolled};

/// The PAM results this module returns (`hooks` maps them to libpam's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pam {
    Success,
    /// A wrong, replayed or malformed code.
    AuthErr,
    /// Too many wrong codes: a wait is in force.
    MaxTries,
    /// The agent cannot decide (not running, or the user's setup unreadable).
    AuthinfoUnavail,
    /// Not enrolled, under `not_enrolled=deny`.
    UserUnknown,
    /// The rest of the stack decides.
    Ignore,
    /// The PAM line itself is wrong.
    ServiceErr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Say {
    /// PAM_TEXT_INFO.
    Info(String),
    /// PAM_ERROR_MSG.
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub pam: Pam,
    pub say: Option<Say>,
}

fn verdict(pam: Pam, say: Option<Say>) -> Verdict {
    Verdict { pam, say }
}

/// The answer to the question asked before prompting (an empty code: is
/// this user enrolled, is a wait in force, is the agent there?). `None`:
/// prompt for the code.
pub fn before_prompt(answer: &Result<SigninResult, AskError>, args: &Args) -> Option<Verdict> {
    match answer {
        Ok(SigninResult::Refused {
            reason: SigninRefusal::Malformed,
            ..
        }) => None,
        Ok(SigninResult::Refused {
            reason:
                SigninRefusal::NotEnrolled | SigninRefusal::Throttled | SigninRefusal::Unavailable,
            ..
        })
        | Err(_) => Some(after_prompt(answer, args)),
        // An agent that says more than "malformed" to an empty code is
        // not one this module knows: ask for the code and let it decide.
        Ok(_) => None,
    }
}

/// The answer to the code the person typed.
pub fn after_prompt(answer: &Result<SigninResult, AskError>, args: &Args) -> Verdict {
    match answer {
        Ok(SigninResult::Accepted {
            method: SigninMethod::Totp,
            ..
        }) => verdict(Pam::Success, None),
        Ok(SigninResult::Accepted {
            method: SigninMethod::RecoveryCode,
            recovery_codes_left,
        }) => verdict(
            Pam::Success,
            Some(Say::Info(format!(
                "Recovery code accepted; it cannot be used again. {recovery_codes_left} left: set up your authenticator app again, or make new codes in Rampart."
            ))),
        ),
        Ok(SigninResult::Refused {
            reason, message, ..
        }) => {
            let error = Some(Say::Error(message.clone()));
            match reason {
                SigninRefusal::Throttled => verdict(Pam::MaxTries, error),
                SigninRefusal::Unavailable => verdict(Pam::AuthinfoUnavail, error),
                SigninRefusal::NotEnrolled => not_enrolled(message, args.not_enrolled),
                SigninRefusal::WrongCode
                | SigninRefusal::Replayed
                | SigninRefusal::Malformed
                | SigninRefusal::NoRecoveryCodes
                | SigninRefusal::Unknown => verdict(Pam::AuthErr, error),
            }
        }
        Err(AskError::Refused(e)) => verdict(
            Pam::AuthErr,
            Some(Say::Error(format!(
                "Rampart will not check a code for this account: {}",
                e.message
            ))),
        ),
        Err(e) => agent_down(e, args.agent_down),
    }
}

fn not_enrolled(message: &str, rule: NotEnrolled) -> Verdict {
    match rule {
        NotEnrolled::Ignore => verdict(Pam::Ignore, None),
        NotEnrolled::Allow => verdict(Pam::Success, None),
        NotEnrolled::Deny => verdict(
            Pam::UserUnknown,
            Some(Say::Error(format!(
                "{message} This computer signs in only people with a verification code."
            ))),
        ),
    }
}

fn agent_down(e: &AskError, rule: AgentDown) -> Verdict {
    let why = match e {
        AskError::Garbled(_) => {
            "the Rampart agent on this computer does not answer sign-in checks (it may need an update)"
        }
        _ => "the Rampart agent is not running on this computer",
    };
    match rule {
        AgentDown::Deny => verdict(
            Pam::AuthinfoUnavail,
            Some(Say::Error(format!(
                "Your verification code cannot be checked: {why}. Ask IT; an administrator can start it with `systemctl start rampart-agent.service` (details: {e})."
            ))),
        ),
        AgentDown::Ignore => verdict(
            Pam::Ignore,
            Some(Say::Info(format!(
                "No verification code asked: {why} (details: {e})."
            ))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_shared::ipc::{ErrorCode, IpcError};

    fn refused(reason: SigninRefusal) -> Result<SigninResult, AskError> {
        Ok(SigninResult::refused(reason, "words"))
    }

    fn down() -> Result<SigninResult, AskError> {
        Err(AskError::Unreachable(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory",
        )))
    }

    #[test]
    fn each_answer_has_its_pam_result() {
        let args = Args::default();
        let pam = |answer| after_prompt(&answer, &args).pam;
        assert_eq!(
            pam(Ok(SigninResult::Accepted {
                method: SigninMethod::Totp,
                recovery_codes_left: 10
            })),
            Pam::Success
        );
        assert_eq!(pam(refused(SigninRefusal::WrongCode)), Pam::AuthErr);
        assert_eq!(pam(refused(SigninRefusal::Replayed)), Pam::AuthErr);
        assert_eq!(pam(refused(SigninRefusal::Malformed)), Pam::AuthErr);
        assert_eq!(pam(refused(SigninRefusal::Unknown)), Pam::AuthErr);
        assert_eq!(pam(refused(SigninRefusal::Throttled)), Pam::MaxTries);
        assert_eq!(
            pam(refused(SigninRefusal::Unavailable)),
            Pam::AuthinfoUnavail
        );
        assert_eq!(pam(refused(SigninRefusal::NotEnrolled)), Pam::Ignore);
        assert_eq!(pam(down()), Pam::AuthinfoUnavail);
        let denied = Err(AskError::Refused(IpcError::new(
            ErrorCode::PermissionDenied,
            "not yours",
        )));
        assert_eq!(pam(denied), Pam::AuthErr);
    }

    #[test]
    fn a_recovery_code_says_how_many_are_left() {
        let v = after_prompt(
            &Ok(SigninResult::Accepted {
                method: SigninMethod::RecoveryCode,
                recovery_codes_left: 9,
            }),
            &Args::default(),
        );
        assert_eq!(v.pam, Pam::Success);
        assert!(
            matches!(v.say, Some(Say::Info(ref s)) if s.contains("9 left")),
            "{v:?}"
        );
    }

    #[test]
    fn the_arguments_decide_the_unenrolled_and_the_agent_down() {
        let args = |not_enrolled, agent_down| Args {
            not_enrolled,
            agent_down,
            ..Args::default()
        };
        let strict = args(NotEnrolled::Deny, AgentDown::Deny);
        let lax = args(NotEnrolled::Allow, AgentDown::Ignore);
        let unenrolled = refused(SigninRefusal::NotEnrolled);
        assert_eq!(after_prompt(&unenrolled, &strict).pam, Pam::UserUnknown);
        assert_eq!(after_prompt(&unenrolled, &lax).pam, Pam::Success);
        let v = after_prompt(&down(), &strict);
        assert!(
            matches!(v.say, Some(Say::Error(ref s)) if s.starts_with("Your verification code cannot be checked: the Rampart agent is not running")),
            "{v:?}"
        );
        assert_eq!(after_prompt(&down(), &lax).pam, Pam::Ignore);
    }

    #[test]
    fn only_a_malformed_answer_to_the_empty_code_prompts() {
        let args = Args::default();
        assert_eq!(
            before_prompt(&refused(SigninRefusal::Malformed), &args),
            None
        );
        assert_eq!(
            before_prompt(&refused(SigninRefusal::NotEnrolled), &args).map(|v| v.pam),
            Some(Pam::Ignore)
        );
        assert_eq!(
            before_prompt(&refused(SigninRefusal::Throttled), &args).map(|v| v.pam),
            Some(Pam::MaxTries)
        );
        assert_eq!(
            before_prompt(&down(), &args).map(|v| v.pam),
            Some(Pam::AuthinfoUnavail)
        );
    }
}
