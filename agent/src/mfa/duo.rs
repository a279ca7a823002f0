//! The Duo path through the enrollment machine, pure: which Duo call a
//! command needs ([`plan`]), and what Duo's answer does to the enrollment
//! ([`Enrollment::apply_duo`]). The calls themselves are made by
//! [`super::duo_calls::perform`], off the event loop.
//!
//! `not_set_up →(preauth)→ pairing` with a [`DuoPhase`]:
//! - `enroll`: `/enroll` → `Activate` (QR + link) →(enroll_status
//!   `success`)→ `Confirm`; `invalid` marks the activation expired and
//!   `RenewActivation` asks for a new one. A user who exists in Duo
//!   without a phone gets Duo's enrollment portal (`Portal`) instead.
//! - `auth`: `Confirm`: a push (`/auth` async, then `/auth_status`) or a
//!   passcode. An allowed confirmation is what verifying a TOTP code is:
//!   recovery codes are issued and the shared steps follow.
//! - `allow`: noted as a bypass (the status says "not required").
//! - `deny`: noted; the status says "error" and the user is sent to support.

use chrono::{DateTime, Duration, Utc};
use rampart_shared::mfa::{DuoDevice, DuoPrompt, EnrollmentStep, MfaCommand, PushState};
use rampart_shared::policy::{Policy, Provider, ProviderKind};
use serde::{Deserialize, Serialize};

use super::error::MfaError;
use super::machine::{Ctx, Enrollment, Outcome};
use super::recovery::HashCost;
use crate::duo::{Activation, AuthResult, AuthStatus, EnrollStatus, Preauth};

/// Duo's part of one user's enrollment; persisted with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoState {
    /// The Duo username, from the policy's template, fixed when setup began.
    pub username: String,
    pub phase: DuoPhase,
    /// Duo asked us to slow down (HTTP 429): no call before this.
    #[serde(default)]
    pub retry_at: Option<DateTime<Utc>>,
    /// What the last `/preauth` said, and when: the status's source of truth
    /// about whether Duo still has a phone for this user.
    #[serde(default)]
    pub last_preauth: Option<(PreauthKind, DateTime<Utc>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreauthKind {
    Auth,
    Enroll,
    Allow,
    Deny,
}

impl PreauthKind {
    fn of(p: &Preauth) -> Self {
        match p {
            Preauth::Auth { .. } => Self::Auth,
            Preauth::Enroll { .. } => Self::Enroll,
            Preauth::Allow { .. } => Self::Allow,
            Preauth::Deny { .. } => Self::Deny,
        }
    }
}

/// Where a Duo setup stands. The activation code can attach a phone to the
/// user: it is kept only in the 0600 state file and sent only to the owner.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum DuoPhase {
    /// Nothing asked of Duo yet, or after a reset.
    Idle,
    Activate {
        user_id: String,
        activation_code: String,
        activation_url: String,
        expires_at: Option<DateTime<Utc>>,
        expired: bool,
        /// When `/enroll_status` first said `success` while `/preauth`
        /// still said `enroll`: the start of [`ACTIVATION_WAIT`].
        #[serde(default)]
        activated_at: Option<DateTime<Utc>>,
    },
    Portal {
        url: String,
    },
    Confirm {
        devices: Vec<DuoDevice>,
        push: PushState,
        /// The push Duo is waiting on.
        txid: Option<String>,
    },
    /// Duo lets this user in without a second factor.
    Bypass {
        message: String,
    },
    /// Duo denies this user.
    Denied {
        message: String,
    },
}

impl std::fmt::Debug for DuoPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Idle => f.write_str("Idle"),
            Self::Activate {
                user_id, expired, ..
            } => f
                .debug_struct("Activate")
                .field("user_id", user_id)
                .field("expired", expired)
                .finish_non_exhaustive(),
            Self::Portal { .. } => f.write_str("Portal"),
            Self::Confirm { devices, push, .. } => f
                .debug_struct("Confirm")
                .field("devices", &devices.len())
                .field("push", push)
                .finish_non_exhaustive(),
            Self::Bypass { message } => f.debug_struct("Bypass").field("message", message).finish(),
            Self::Denied { message } => f.debug_struct("Denied").field("message", message).finish(),
        }
    }
}

/// One exchange with Duo that a command needs.
#[derive(Clone, PartialEq, Eq)]
pub enum DuoCall {
    /// `/ping` (the clock figure), `/check` (the credentials), `/preauth`,
    /// then `/enroll` when Duo does not know the user.
    Start {
        username: String,
    },
    /// `/preauth` then `/enroll`: a new activation for an expired one.
    Renew {
        username: String,
    },
    /// `/enroll_status`, then `/preauth` for the devices once it succeeds.
    EnrollStatus {
        username: String,
        user_id: String,
        activation_code: String,
    },
    /// `/preauth`: whether the user finished Duo's portal, or the status.
    Preauth {
        username: String,
    },
    Push {
        username: String,
        device: String,
    },
    AuthStatus {
        txid: String,
    },
    Passcode {
        username: String,
        passcode: String,
    },
}

impl DuoCall {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start { .. } => "start",
            Self::Renew { .. } => "renew",
            Self::EnrollStatus { .. } => "enroll_status",
            Self::Preauth { .. } => "preauth",
            Self::Push { .. } => "push",
            Self::AuthStatus { .. } => "auth_status",
            Self::Passcode { .. } => "passcode",
        }
    }
}

impl std::fmt::Debug for DuoCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What Duo answered to a [`DuoCall`]. `Debug` hides the portal link (it
/// signs the user up) as [`Activation`]'s hides the activation.
#[derive(Clone, PartialEq, Eq)]
pub enum DuoReply {
    Preauth(Preauth),
    Activation(Activation),
    /// `/enroll` refused a user Duo already has; its portal link instead.
    Portal {
        url: String,
    },
    EnrollStatus(EnrollStatus),
    PushSent {
        txid: String,
    },
    Auth(AuthStatus),
    Failed(DuoFailure),
}

impl std::fmt::Debug for DuoReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Preauth(p) => f.debug_tuple("Preauth").field(p).finish(),
            Self::Activation(a) => f.debug_tuple("Activation").field(a).finish(),
            Self::Portal { .. } => f.write_str("Portal { url: *** }"),
            Self::EnrollStatus(s) => f.debug_tuple("EnrollStatus").field(s).finish(),
            Self::PushSent { txid } => f.debug_struct("PushSent").field("txid", txid).finish(),
            Self::Auth(a) => f.debug_tuple("Auth").field(a).finish(),
            Self::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

/// A call that failed, with what the user needs to hear about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuoFailure {
    /// Wait this long before asking Duo again.
    RateLimited { retry_after_secs: u64 },
    /// 40105, or 40103 with a `Date` beyond Duo's tolerance: this
    /// computer's clock minus Duo's, as `/ping` measured it. `details`:
    /// Duo's own text and code.
    Clock { offset_ms: i64, details: String },
    /// 40103 with the clock right: the integration key or secret key.
    Credentials { details: String },
    /// 40103 or 40105 (`timestamp`) when Duo's clock could not be read.
    Unmeasured { timestamp: bool, details: String },
    /// Anything else, as a sentence.
    Other(String),
}

/// How long after the phone's activation succeeded the wizard waits for
/// Duo's `/preauth` to stop saying `enroll` before it says so. Duo normally
/// catches up within seconds; two minutes of polling every 3 s is enough.
pub const ACTIVATION_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

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
            let passcode: String = code.chars().filter(|c| !c.is_whitespace()).collect();
            if passcode.is_empty()
                || passcode.len() > 16
                || !passcode.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(MfaError::MalformedPasscode);
            }
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

impl Enrollment {
    /// Applies Duo's answer to the call [`plan`] chose for this enrollment.
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
                let api_host = duo_host(ctx.policy);
                if !portal_url_is_duos(&url, api_host) {
                    return Err(MfaError::ProviderError(format!(
                        "Duo sent an enrollment link that is not on {api_host}, so Rampart will not \
                         open it. Open a support ticket."
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

    /// What the wizard shows for Duo at the visible step.
    pub fn duo_prompt(&self, visible: EnrollmentStep) -> Option<DuoPrompt> {
        let phase = &self.duo.as_ref()?.phase;
        match (visible, phase) {
            (
                EnrollmentStep::Pairing,
                DuoPhase::Activate {
                    activation_code,
                    activation_url,
                    expires_at,
                    expired,
                    ..
                },
            ) => Some(DuoPrompt::Activate {
                activation_code: activation_code.clone(),
                activation_url: activation_url.clone(),
                expires_at: *expires_at,
                expired: *expired,
            }),
            (EnrollmentStep::Pairing, DuoPhase::Portal { url }) => {
                Some(DuoPrompt::Portal { url: url.clone() })
            }
            (EnrollmentStep::Pairing, DuoPhase::Confirm { devices, push, .. }) => {
                Some(DuoPrompt::Confirm {
                    devices: devices.clone(),
                    push: *push,
                })
            }
            (EnrollmentStep::NotRequired, DuoPhase::Bypass { message }) => {
                Some(DuoPrompt::Bypass {
                    message: message.clone(),
                })
            }
            _ => None,
        }
    }

    /// Duo lets this user in without a second factor.
    pub fn duo_bypass(&self) -> bool {
        self.step == EnrollmentStep::NotSetUp
            && matches!(
                self.duo.as_ref().map(|d| &d.phase),
                Some(DuoPhase::Bypass { .. })
            )
    }
}

fn duo_host(policy: &Policy) -> &str {
    match &policy.mfa.provider {
        Provider::Duo { api_host, .. } => api_host,
        Provider::Totp => "",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duo::Device;
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
        exchange(
            &mut e,
            &p,
            T0,
            MfaCommand::StartEnrollment,
            DuoReply::Activation(activation()),
        )
        .unwrap();
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
        exchange(
            &mut e,
            &p,
            T0 + 6,
            MfaCommand::CheckProgress,
            DuoReply::Preauth(Preauth::Auth {
                devices: vec![phone()],
            }),
        )
        .unwrap();
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
        let mut e = jane();
        exchange(
            &mut e,
            &p,
            T0,
            MfaCommand::StartEnrollment,
            DuoReply::Activation(activation()),
        )
        .unwrap();
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
            DuoReply::Preauth(Preauth::Auth {
                devices: vec![phone()],
            }),
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
            exchange(
                &mut e,
                &p,
                T0,
                MfaCommand::StartEnrollment,
                DuoReply::Preauth(Preauth::Auth {
                    devices: vec![phone()],
                }),
            )
            .unwrap();
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
        let mut e = jane();
        exchange(
            &mut e,
            &p,
            T0,
            MfaCommand::StartEnrollment,
            DuoReply::Preauth(Preauth::Auth {
                devices: vec![phone()],
            }),
        )
        .unwrap();
        let bad = |code: &str| MfaCommand::VerifyCode { code: code.into() };
        assert_eq!(
            plan(&e, &bad("12a456"), &ctx(&p, T0)).unwrap_err().code(),
            MfaErrorCode::MalformedCode
        );
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
        let mut e = jane();
        exchange(
            &mut e,
            &p,
            T0,
            MfaCommand::StartEnrollment,
            DuoReply::Activation(activation()),
        )
        .unwrap();
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
        let mut e = jane();
        exchange(
            &mut e,
            &p,
            T0,
            MfaCommand::StartEnrollment,
            DuoReply::Preauth(Preauth::Allow {
                status_msg: "Allowing unknown user".into(),
            }),
        )
        .unwrap();
        let view = e.view(&p, None);
        assert_eq!(view.step, EnrollmentStep::NotRequired);
        assert_eq!(
            view.duo,
            Some(DuoPrompt::Bypass {
                message: "Allowing unknown user".into()
            })
        );

        let mut e = jane();
        let err = exchange(
            &mut e,
            &p,
            T0,
            MfaCommand::StartEnrollment,
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
        let err = exchange(
            &mut e,
            &p,
            T0,
            MfaCommand::StartEnrollment,
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
}
