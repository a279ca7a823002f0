//! Which Duo exchange a command needs, before anything is asked: the
//! first half of a Duo command, pure.

use rampart_shared::mfa::{EnrollmentStep, MfaCommand, normalize_passcode};
use rampart_shared::policy::Provider;

use super::types::{DuoCall, DuoPhase, PreauthKind};
use crate::mfa::error::MfaError;
use crate::mfa::machine::{Ctx, Enrollment};

/// The Duo username for `login` under `template` (`{user}` is the login
/// name): `"{user}@acme.example"` → `"jane@acme.example"`.
pub fn username(template: &str, login: &str) -> String {
    template.replace("{user}", login)
}

/// The Duo call `command` needs, or `None` when the machine can answer it
/// alone. Errors are the ones the machine would give without asking Duo.
pub fn plan(
    e: &Enrollment,
    command: &MfaCommand,
    ctx: &Ctx<'_>,
) -> Result<Option<DuoCall>, MfaError> {
    use EnrollmentStep as S;
    let Provider::Duo {
        username: template, ..
    } = &ctx.policy.mfa.provider
    else {
        return Ok(None);
    };
    let fresh_user = || username(template, &e.owner.name);
    let duo = e.duo.as_ref();
    let known_user = || duo.map_or_else(fresh_user, |d| d.username.clone());
    let backing_off = duo
        .and_then(|d| d.retry_at)
        .filter(|at| *at > ctx.now)
        .map(|at| (at - ctx.now).num_milliseconds().max(0) as u64);
    let phase = duo.map(|d| &d.phase);
    let call = match (command, e.step, phase) {
        (MfaCommand::StartEnrollment, S::NotSetUp | S::NotRequired, _) => {
            if !ctx.policy.mfa.required {
                return Err(MfaError::NotRequired);
            }
            Some(DuoCall::Start {
                username: fresh_user(),
            })
        }
        // Duo no longer has a phone for an enrolled user: set up again.
        (MfaCommand::StartEnrollment, S::Enrolled, Some(_))
            if duo.and_then(|d| d.last_preauth).map(|(k, _)| k) == Some(PreauthKind::Enroll) =>
        {
            Some(DuoCall::Start {
                username: fresh_user(),
            })
        }
        (
            MfaCommand::RenewActivation,
            S::Pairing,
            Some(DuoPhase::Activate { .. } | DuoPhase::Portal { .. }),
        ) => Some(DuoCall::Renew {
            username: known_user(),
        }),
        (MfaCommand::CheckProgress, S::Pairing, Some(phase)) => match phase {
            DuoPhase::Activate {
                user_id,
                activation_code,
                expired: false,
                ..
            } => Some(DuoCall::EnrollStatus {
                username: known_user(),
                user_id: user_id.clone(),
                activation_code: activation_code.clone(),
            }),
            DuoPhase::Portal { .. } => Some(DuoCall::Preauth {
                username: known_user(),
            }),
            DuoPhase::Confirm {
                txid: Some(txid), ..
            } => Some(DuoCall::AuthStatus { txid: txid.clone() }),
            _ => None,
        },
        // Nothing to ask: the reply is the current view.
        (MfaCommand::CheckProgress, _, _) => None,
        (MfaCommand::SendPush { device }, S::Pairing, Some(DuoPhase::Confirm { devices, .. })) => {
            let chosen = match device {
                Some(id) => devices.iter().find(|d| d.id == *id),
                None => devices.iter().find(|d| d.push),
            };
            let Some(chosen) = chosen.filter(|d| d.push) else {
                return Err(MfaError::NoPushDevice);
            };
            Some(DuoCall::Push {
                username: known_user(),
                device: chosen.id.clone(),
            })
        }
        (MfaCommand::VerifyCode { code }, S::Pairing, Some(DuoPhase::Confirm { .. })) => {
            e.check_throttle(ctx.now)?;
            let passcode = normalize_passcode(code).ok_or(MfaError::MalformedPasscode)?;
            Some(DuoCall::Passcode {
                username: known_user(),
                passcode,
            })
        }
        (MfaCommand::SendPush { .. } | MfaCommand::RenewActivation, current, _) => {
            return Err(MfaError::WrongStep { current });
        }
        (MfaCommand::VerifyCode { .. }, S::Pairing, _) => {
            return Err(MfaError::WrongStep {
                current: S::Pairing,
            });
        }
        _ => None,
    };
    match (call, backing_off) {
        // A poll while backing off quietly answers with the current view.
        (
            Some(
                DuoCall::EnrollStatus { .. } | DuoCall::Preauth { .. } | DuoCall::AuthStatus { .. },
            ),
            Some(_),
        ) => Ok(None),
        (Some(_), Some(ms)) => Err(MfaError::ProviderBusy {
            retry_after_secs: ms.div_ceil(1000),
        }),
        (call, _) => Ok(call),
    }
}
