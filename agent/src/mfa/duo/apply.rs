//! What Duo's answer does to an enrollment: the second half of a Duo
//! command, pure.

use chrono::{DateTime, Duration, Utc};
use rampart_shared::mfa::{DuoDevice, EnrollmentStep, PushState};
use rampart_shared::policy::{Policy, ProviderKind};

use super::types::{
    ACTIVATION_WAIT, DuoCall, DuoFailure, DuoPhase, DuoReply, DuoState, PreauthKind, api_host,
};
use crate::duo::{AuthResult, AuthStatus, EnrollStatus, Preauth};
use crate::mfa::error::MfaError;
use crate::mfa::machine::{Ctx, Enrollment, Outcome};
use crate::mfa::recovery::HashCost;

impl Enrollment {
    /// Applies Duo's answer to the call [`plan`](super::plan::plan) chose for this
    /// enrollment.
    pub fn apply_duo(
        &mut self,
        call: &DuoCall,
        reply: DuoReply,
        ctx: &Ctx<'_>,
        cost: HashCost,
    ) -> Result<Outcome, MfaError> {
        let username = match call {
            DuoCall::Start { username }
            | DuoCall::Renew { username }
            | DuoCall::EnrollStatus { username, .. }
            | DuoCall::Preauth { username }
            | DuoCall::Push { username, .. }
            | DuoCall::Passcode { username, .. } => username.clone(),
            DuoCall::AuthStatus { .. } => self
                .duo
                .as_ref()
                .map(|d| d.username.clone())
                .unwrap_or_default(),
        };
        let state = self.duo.get_or_insert_with(|| DuoState {
            username: username.clone(),
            phase: DuoPhase::Idle,
            retry_at: None,
            last_preauth: None,
        });
        if matches!(call, DuoCall::Start { .. }) {
            state.username = username;
        }
        if !matches!(reply, DuoReply::Failed(DuoFailure::RateLimited { .. })) {
            state.retry_at = None;
        }
        match reply {
            DuoReply::Failed(failure) => {
                if let DuoFailure::RateLimited { retry_after_secs } = failure {
                    state.retry_at = Some(ctx.now + Duration::seconds(retry_after_secs as i64));
                }
                Err(MfaError::from_duo(failure, ctx.policy))
            }
            DuoReply::Preauth(preauth) => {
                state.last_preauth = Some((PreauthKind::of(&preauth), ctx.now));
                if matches!(call, DuoCall::EnrollStatus { .. })
                    && matches!(preauth, Preauth::Enroll { .. })
                {
                    return self.activation_pending(ctx.now);
                }
                self.on_preauth(call, preauth)
            }
            DuoReply::Activation(a) => {
                self.start_pairing(ctx.policy);
                self.set_phase(DuoPhase::Activate {
                    user_id: a.user_id,
                    activation_code: a.activation_code,
                    activation_url: a.activation_url,
                    expires_at: a.expires_at,
                    expired: false,
                    activated_at: None,
                });
                Ok(Outcome::default())
            }
            DuoReply::Portal { url } => {
                let host = api_host(ctx.policy);
                if !host.is_some_and(|host| portal_url_is_duos(&url, host)) {
                    return Err(MfaError::ProviderError(format!(
                        "Duo sent an enrollment link that is not on {}, so Rampart will not \
                         open it. Open a support ticket.",
                        host.unwrap_or("the policy's Duo host")
                    )));
                }
                self.start_pairing(ctx.policy);
                self.set_phase(DuoPhase::Portal { url });
                Ok(Outcome::default())
            }
            DuoReply::EnrollStatus(status) => {
                if let Some(DuoPhase::Activate { expired, .. }) =
                    self.duo.as_mut().map(|d| &mut d.phase)
                    && status == EnrollStatus::Invalid
                {
                    *expired = true;
                }
                Ok(Outcome::default())
            }
            DuoReply::PushSent { txid } => {
                if let Some(DuoPhase::Confirm {
                    push,
                    txid: waiting,
                    ..
                }) = self.duo.as_mut().map(|d| &mut d.phase)
                {
                    *push = PushState::Waiting;
                    *waiting = Some(txid);
                }
                Ok(Outcome::default())
            }
            DuoReply::Auth(status) => self.on_auth(call, &status, ctx.now, cost),
        }
    }

    /// The phone's activation succeeded but `/preauth` still says `enroll`:
    /// Duo has not caught up. The app keeps polling; once
    /// [`ACTIVATION_WAIT`] has passed since the first such answer, each
    /// poll says so (with the wait) instead of spinning without a word.
    fn activation_pending(&mut self, now: DateTime<Utc>) -> Result<Outcome, MfaError> {
        let Some(DuoPhase::Activate { activated_at, .. }) = self.duo.as_mut().map(|d| &mut d.phase)
        else {
            return Ok(Outcome::default());
        };
        let since = *activated_at.get_or_insert(now);
        let waited_ms = u64::try_from((now - since).num_milliseconds()).unwrap_or(0);
        if waited_ms >= ACTIVATION_WAIT.as_millis() as u64 {
            Err(MfaError::ActivationPending { waited_ms })
        } else {
            Ok(Outcome::default())
        }
    }

    fn on_preauth(&mut self, call: &DuoCall, preauth: Preauth) -> Result<Outcome, MfaError> {
        match preauth {
            Preauth::Auth { devices } => {
                let devices = devices
                    .into_iter()
                    .map(|d| DuoDevice {
                        push: d.takes_push(),
                        id: d.id,
                        name: d.display_name,
                    })
                    .collect();
                if matches!(call, DuoCall::Preauth { .. }) {
                    let confirming = matches!(
                        self.duo.as_ref().map(|d| &d.phase),
                        Some(DuoPhase::Confirm { .. })
                    );
                    // A status refresh of a finished setup changes nothing
                    // else, and one during confirmation keeps the push.
                    if self.step != EnrollmentStep::Pairing || confirming {
                        if let Some(DuoPhase::Confirm { devices: known, .. }) =
                            self.duo.as_mut().map(|d| &mut d.phase)
                        {
                            *known = devices;
                        }
                        return Ok(Outcome::default());
                    }
                }
                self.step = EnrollmentStep::Pairing;
                self.provider = ProviderKind::Duo;
                self.set_phase(DuoPhase::Confirm {
                    devices,
                    push: PushState::NotSent,
                    txid: None,
                });
                Ok(Outcome::default())
            }
            // Still waiting for the user to finish Duo's portal, or (on a
            // refresh) the status now says Duo has no phone for them.
            Preauth::Enroll { .. } => Ok(Outcome::default()),
            Preauth::Allow { status_msg } => {
                if self.step != EnrollmentStep::Enrolled {
                    self.step = EnrollmentStep::NotSetUp;
                    self.set_phase(DuoPhase::Bypass {
                        message: status_msg,
                    });
                }
                Ok(Outcome::default())
            }
            Preauth::Deny { status_msg } => {
                if self.step != EnrollmentStep::Enrolled {
                    self.step = EnrollmentStep::NotSetUp;
                }
                self.set_phase(DuoPhase::Denied {
                    message: status_msg.clone(),
                });
                Err(MfaError::AccessDenied(status_msg))
            }
        }
    }

    fn on_auth(
        &mut self,
        call: &DuoCall,
        status: &AuthStatus,
        now: DateTime<Utc>,
        cost: HashCost,
    ) -> Result<Outcome, MfaError> {
        let passcode = matches!(call, DuoCall::Passcode { .. });
        match status.result {
            AuthResult::Waiting => Ok(Outcome::default()),
            AuthResult::Allow => {
                let outcome = self.verified(now, cost)?;
                if let Some(DuoPhase::Confirm { push, txid, .. }) =
                    self.duo.as_mut().map(|d| &mut d.phase)
                {
                    *push = PushState::NotSent;
                    *txid = None;
                }
                Ok(outcome)
            }
            AuthResult::Deny if passcode => {
                let error = MfaError::WrongPasscode(status.status_msg.clone());
                Err(self.fail(now, error))
            }
            AuthResult::Deny => {
                if let Some(DuoPhase::Confirm { push, txid, .. }) =
                    self.duo.as_mut().map(|d| &mut d.phase)
                {
                    *push = match status.status.as_str() {
                        "fraud" => PushState::Fraud,
                        "timeout" => PushState::TimedOut,
                        _ => PushState::Denied,
                    };
                    *txid = None;
                }
                Ok(Outcome::default())
            }
        }
    }

    /// Pairing starts over: what an earlier setup left is cleared, except
    /// recovery codes, which only a new verification replaces.
    fn start_pairing(&mut self, policy: &Policy) {
        self.step = EnrollmentStep::Pairing;
        self.provider = ProviderKind::Duo;
        self.issuer = policy.organization.clone();
        self.secret = None;
    }

    fn set_phase(&mut self, phase: DuoPhase) {
        if let Some(d) = self.duo.as_mut() {
            d.phase = phase;
        }
    }
}

/// The portal link is opened in the browser: only https on the policy's
/// own Duo host (the signed policy names it) is accepted.
pub fn portal_url_is_duos(url: &str, api_host: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    rampart_shared::links::check_https_link(url).is_ok()
        && !api_host.is_empty()
        && authority.eq_ignore_ascii_case(api_host)
}
