//! A Duo Auth API v2 client: what the MFA engine needs from Duo, signed the
//! way Duo's official clients sign.
//!
//! - [`sign`]: the canonical request and its HMAC-SHA512 (pure, tested with
//!   the vectors published in duo_client_python and duo_api_golang);
//! - [`client`]: [`DuoClient`] over reqwest, with an extra trusted CA from
//!   the install config, `http://` only to loopback, and 429 backoff that
//!   honours `Retry-After`.
//!
//! The types below are what the rest of the agent sees; none of them carries
//! the secret key, and `Debug` hides activation codes and links.

pub mod client;
pub mod sign;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use client::{DuoClient, DuoConfig};

/// `/preauth`'s answer for one user. `Debug` hides the portal link.
#[derive(Clone, PartialEq, Eq)]
pub enum Preauth {
    /// Enrolled: these devices can confirm.
    Auth { devices: Vec<Device> },
    /// Not enrolled. `enroll_portal_url` is Duo's self-service portal for
    /// a user who exists in Duo (valid about 5 minutes).
    Enroll { enroll_portal_url: Option<String> },
    /// IT set this user to bypass: no second factor is asked.
    Allow { status_msg: String },
    /// IT (or Duo policy) denies this user.
    Deny { status_msg: String },
}

impl fmt::Debug for Preauth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auth { devices } => f.debug_struct("Auth").field("devices", devices).finish(),
            Self::Enroll { enroll_portal_url } => f
                .debug_struct("Enroll")
                .field(
                    "enroll_portal_url",
                    &enroll_portal_url.as_ref().map(|_| "***"),
                )
                .finish(),
            Self::Allow { status_msg } => f
                .debug_struct("Allow")
                .field("status_msg", status_msg)
                .finish(),
            Self::Deny { status_msg } => f
                .debug_struct("Deny")
                .field("status_msg", status_msg)
                .finish(),
        }
    }
}

/// A device from `/preauth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Duo's `device` id, as `/auth` takes it.
    pub id: String,
    /// `display_name`, or `name`, or the id.
    pub display_name: String,
    /// `push`, `sms`, `phone`, `mobile_otp`, …
    pub capabilities: Vec<String>,
}

impl Device {
    pub fn takes_push(&self) -> bool {
        self.capabilities.iter().any(|c| c == "push")
    }
}

/// `/enroll`'s answer: a new Duo user and the activation for their phone.
#[derive(Clone, PartialEq, Eq)]
pub struct Activation {
    pub user_id: String,
    pub username: String,
    /// `duo://…`: what the activation QR code encodes.
    pub activation_code: String,
    /// The same activation as an https link to open on the phone.
    pub activation_url: String,
    pub expires_at: Option<DateTime<Utc>>,
}

impl fmt::Debug for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Activation")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("activation_code", &"***")
            .field("activation_url", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `/enroll_status`'s bare-string answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrollStatus {
    Success,
    Waiting,
    /// Expired or already used: a new activation is needed.
    Invalid,
}

/// `/auth` (synchronous passcode) or `/auth_status` (after an async push).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthStatus {
    pub result: AuthResult,
    /// Duo's `status`: `pushed`, `allow`, `deny`, `fraud`, `timeout`, …
    pub status: String,
    pub status_msg: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    Allow,
    Deny,
    Waiting,
}

#[derive(Debug, thiserror::Error)]
pub enum DuoError {
    /// The configuration cannot work: a base URL that is not https (or http
    /// to loopback), an unreadable or world-readable secret key file, a CA
    /// file that is not PEM.
    #[error("{0}")]
    Config(String),
    /// DNS, connect, TLS or timeout, in plain words.
    #[error("Duo could not be reached: {0}")]
    Unreachable(String),
    /// Duo asked us to slow down, and waiting here would take too long.
    #[error("Duo asked Rampart to slow down; it will try again in {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// `{"stat": "FAIL", …}`.
    #[error("Duo refused the request: {message}{} (code {}, HTTP {http_status})",
        detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
        code.map_or_else(|| "none".to_owned(), |c| c.to_string()))]
    Fail {
        http_status: u16,
        /// Lenient: Duo has been seen sending `""`.
        code: Option<u32>,
        message: String,
        detail: Option<String>,
    },
    /// A reply that is not the documented envelope.
    #[error("Duo sent a reply Rampart does not understand: {0}")]
    BadResponse(String),
}

/// Duo's code for a signature it did not accept: a wrong secret or
/// integration key, or a clock far enough off that the Date is refused.
pub const INVALID_SIGNATURE: u32 = 40103;

/// Duo's code for a request whose `Date` is too far from its own clock
/// ("Bad request timestamp").
pub const BAD_TIMESTAMP: u32 = 40105;

impl DuoError {
    pub fn is_invalid_signature(&self) -> bool {
        matches!(
            self,
            Self::Fail {
                code: Some(INVALID_SIGNATURE),
                ..
            }
        )
    }

    pub fn is_bad_timestamp(&self) -> bool {
        matches!(
            self,
            Self::Fail {
                code: Some(BAD_TIMESTAMP),
                ..
            }
        )
    }
}
