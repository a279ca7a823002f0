//! The Duo path's vocabulary: what is kept of Duo per user ([`DuoState`],
//! [`DuoPhase`]), the exchanges a command needs ([`DuoCall`]) and what Duo
//! answered ([`DuoReply`], [`DuoFailure`]). Data only: the machine, the
//! errors and the store depend on these, while Duo's `plan` and `apply`
//! depend on the machine, never the other way round.

use chrono::{DateTime, Utc};
use rampart_shared::mfa::{DuoDevice, DuoPrompt, EnrollmentStep, PushState};
use rampart_shared::policy::{Policy, Provider};
use serde::{Deserialize, Serialize};

use crate::duo::{Activation, AuthStatus, EnrollStatus, Preauth};

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
    pub(super) fn of(p: &Preauth) -> Self {
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

impl DuoPhase {
    /// What the wizard shows for Duo at the visible step.
    pub fn prompt(&self, visible: EnrollmentStep) -> Option<DuoPrompt> {
        match (visible, self) {
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

/// The policy's Duo API host; `None` when the policy's provider is not Duo.
pub fn api_host(policy: &Policy) -> Option<&str> {
    match &policy.mfa.provider {
        Provider::Duo { api_host, .. } => Some(api_host),
        Provider::Totp => None,
    }
}
