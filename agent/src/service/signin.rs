//! `verify_signin` on the loop: who may ask, the TOTP check at once, and a
//! recovery code's Argon2id check on a blocking thread that reports back
//! with [`Event::RecoveryChecked`]. The rules are in `mfa::signin`.

use chrono::Utc;
use rampart_shared::ipc::{ErrorCode, IpcError, Response};
use rampart_shared::signin::{SigninRefusal, SigninResult, TypedCode};
use rampart_shared::user::UserId;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Event;
use super::handlers::{ReadyReply, ReplyTo};
use super::main_loop::spawn_job;
use super::shell::Shell;
use crate::ipc::{Peer, may_verify_signin, user_id_by_name, user_name};
use crate::mfa::signin::{self, Found, Typed};
use crate::mfa::{UserKey, recovery};

/// Recovery codes hashed at once at most (each check is up to ten 19 MiB
/// Argon2id hashes, about 0.6 s on a 2-core build machine): a burst of
/// them from many connections must not take the memory of the machine.
/// Further ones are refused as `throttled` for a second, uncounted.
const MAX_RECOVERY_CHECKS: usize = 2;

/// A recovery code checked off the loop, on its way back. `Debug` is safe:
/// it holds no code.
#[derive(Debug)]
pub struct RecoveryCheck {
    peer: UserId,
    user: String,
    owner: UserKey,
    /// The spent code's index and hash, or why it could not be checked.
    found: Result<Found, String>,
    reply: ReplyTo,
}

impl Shell {
    /// The answer now, or `None` when a recovery code is being hashed (the
    /// answer then comes with [`Event::RecoveryChecked`]).
    pub(super) fn handle_signin(
        &mut self,
        peer: Peer,
        user: String,
        code: TypedCode,
        to: ReplyTo,
        events: &mpsc::Sender<Event>,
    ) -> Option<ReadyReply> {
        let Some(peer_id) = peer.user.clone() else {
            return Some((
                to,
                Err(IpcError::new(
                    ErrorCode::PermissionDenied,
                    "the agent cannot tell which user is asking, so it checks no sign-in code",
                )),
            ));
        };
        let resolved = user_id_by_name(&user);
        let owner = self.mfa.signin_owner(&user, resolved.as_ref());
        let target = resolved.or_else(|| owner.as_ref().map(|o| o.id.clone()));
        if !may_verify_signin(&peer, target.as_ref(), &user_name(&peer_id), &user) {
            if crate::logging::first_refusal(Some(&peer_id)) {
                warn!(peer = %peer_id, user = %user, "sign-in check for another user refused");
            }
            return Some((
                to,
                Err(IpcError::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "{peer_id} may check sign-in codes only for its own account, not for {user}: sign-in services that check other users run as root"
                    ),
                )),
            ));
        }
        let now = Utc::now();
        let result = match (owner, signin::classify(code.as_str())) {
            (None, _) => signin::not_enrolled(&user),
            (Some(owner), None) => self.mfa.signin_shapeless(&owner, now),
            (Some(owner), Some(Typed::Totp(code))) => self.mfa.signin_totp(&owner, &code, now),
            (Some(_), Some(Typed::Recovery(_)))
                if self.in_flight.recovery_checks >= MAX_RECOVERY_CHECKS =>
            {
                SigninResult::Refused {
                    reason: SigninRefusal::Throttled,
                    message:
                        "Other recovery codes are being checked right now: try again in a moment."
                            .into(),
                    retry_after_secs: Some(1),
                }
            }
            (Some(owner), Some(Typed::Recovery(code))) => {
                match self.mfa.recovery_candidates(&owner, now) {
                    Err(refused) => refused,
                    Ok(candidates) => {
                        self.in_flight.recovery_checks += 1;
                        spawn_job(None, events, async move {
                            let found = tokio::task::spawn_blocking(move || {
                                let index = recovery::find(&candidates, &code)?;
                                Ok(index.and_then(|i| {
                                    candidates
                                        .iter()
                                        .find(|(j, _)| *j == i)
                                        .map(|(_, h)| (i, h.hash.clone()))
                                }))
                            })
                            .await;
                            let found = match found {
                                Ok(Ok(found)) => Ok(found),
                                Ok(Err(e)) => Err(crate::mfa::MfaError::to_string(&e)),
                                Err(e) => Err(format!("the check stopped: {e}")),
                            };
                            Event::RecoveryChecked(Box::new(RecoveryCheck {
                                peer: peer_id,
                                user,
                                owner,
                                found,
                                reply: to,
                            }))
                        });
                        return None;
                    }
                }
            }
        };
        log_signin(&peer_id, &user, &result);
        Some((to, Ok(Response::Signin { result })))
    }

    pub(super) fn on_recovery_checked(&mut self, check: RecoveryCheck) -> Option<ReadyReply> {
        let RecoveryCheck {
            peer,
            user,
            owner,
            found,
            reply,
        } = check;
        self.in_flight.recovery_checks = self.in_flight.recovery_checks.saturating_sub(1);
        let result = match found {
            Ok(found) => self.mfa.finish_recovery(&owner, found, Utc::now()),
            Err(why) => {
                warn!(user = %user, error = %why, "recovery code could not be checked");
                SigninResult::refused(
                    SigninRefusal::Unavailable,
                    format!("The recovery code could not be checked: ask IT (details: {why})."),
                )
            }
        };
        log_signin(&peer, &user, &result);
        Some((reply, Ok(Response::Signin { result })))
    }
}

/// One line per sign-in; refusals at most once a minute per asking user.
/// The code is never in it.
fn log_signin(peer: &UserId, user: &str, result: &SigninResult) {
    match result {
        SigninResult::Accepted {
            method,
            recovery_codes_left,
        } => info!(peer = %peer, user, ?method, recovery_codes_left, "sign-in code accepted"),
        SigninResult::Refused { reason, .. } => {
            if crate::logging::first_refusal(Some(peer)) {
                warn!(peer = %peer, user, reason = reason.as_str(),
                    "sign-in code refused (further refusals from this user are summarised once a minute)");
            }
        }
    }
}
