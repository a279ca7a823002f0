//! Sign-in verification: what a sign-in front end (the PAM module, later a
//! macOS authorization plugin or a Windows credential provider) asks the
//! agent, and what it is told. `verify_signin` carries a user name and the
//! code the person typed; the answer is [`SigninResult`].
//!
//! The figures of [`SigninCounts`] reach IT through `status.mfa.signin` and
//! the report's `mfa.signin`; they are counts, never codes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The prompt every sign-in front end shows, so that a person sees the
/// same words at the login window, `sudo` and ssh.
pub const PROMPT: &str = "Verification code from your authenticator app: ";

/// The code a person typed, as `verify_signin` carries it: the JSON string
/// itself on the wire, never in a `Debug` (so never in a log line or a
/// panic message), wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TypedCode(String);

impl TypedCode {
    pub fn new(code: impl Into<String>) -> Self {
        Self(code.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TypedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypedCode(..)")
    }
}

impl Drop for TypedCode {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// The agent's answer to `verify_signin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SigninResult {
    /// The code proved the person: let them in.
    Accepted {
        method: SigninMethod,
        /// Unused recovery codes after this sign-in.
        recovery_codes_left: u32,
    },
    /// Do not let them in; `message` is for the person at the prompt.
    Refused {
        reason: SigninRefusal,
        /// Plain words and the next step; never the code.
        message: String,
        /// Set when `reason` is `throttled`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
}

impl SigninResult {
    pub fn refused(reason: SigninRefusal, message: impl Into<String>) -> Self {
        Self::Refused {
            reason,
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigninMethod {
    /// The six digits of the authenticator app.
    Totp,
    /// One of the ten recovery codes, now spent.
    RecoveryCode,
}

/// Why a code was refused. A front end maps each to its own result (PAM:
/// `docs/signin.md`); a reason it does not know is a refusal too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigninRefusal {
    /// Not the code of this moment (one 30 s step either way), nor an
    /// unused recovery code. Counts towards the throttle.
    WrongCode,
    /// The code was already accepted for this user (RFC 6238 §5.2): a
    /// code seen over a shoulder or in a recording is spent.
    Replayed,
    /// Too many wrong codes: no code is looked at until the wait is over.
    Throttled,
    /// This user has no finished sign-in factor on this device (never set
    /// up, setup not finished, or Duo, whose own products sign in).
    NotEnrolled,
    /// Neither six digits nor a ten-character recovery code.
    Malformed,
    /// Every recovery code of this user is spent.
    NoRecoveryCodes,
    /// The agent cannot decide: the user's saved setup cannot be read or
    /// written. Never a reason to let anyone in.
    Unavailable,
    /// A reason from a newer agent.
    #[serde(other)]
    Unknown,
}

impl SigninRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WrongCode => "wrong_code",
            Self::Replayed => "replayed",
            Self::Throttled => "throttled",
            Self::NotEnrolled => "not_enrolled",
            Self::Malformed => "malformed",
            Self::NoRecoveryCodes => "no_recovery_codes",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
        }
    }
}

/// What sign-ins did for one user since enrollment, kept in the user's
/// state file. Every field counts refusals or acceptances, never codes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigninCounts {
    #[serde(default)]
    pub accepted: u32,
    /// Wrong codes (TOTP or recovery), each counted by the throttle.
    #[serde(default)]
    pub wrong_code: u32,
    #[serde(default)]
    pub replayed: u32,
    /// Refusals with reason `throttled`: the wrong code that started a
    /// wait, and every code tried during one.
    #[serde(default)]
    pub throttled: u32,
    #[serde(default)]
    pub recovery_codes_used: u32,
    #[serde(default)]
    pub last_accepted_at: Option<DateTime<Utc>>,
}

/// `status.mfa.signin` and the report's `mfa.signin`: the sign-in figures of
/// an enrolled user. Protocol 1, added with issue 19 (absent from older
/// agents, and for users who are not enrolled).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigninSection {
    pub recovery_codes_left: u32,
    /// While a wait is in force after wrong codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub counts: SigninCounts,
}

impl SigninSection {
    /// "9 recovery codes left; 3 sign-ins, 2 wrong codes, 1 replayed, 1 throttled"
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let plural =
            |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{}; {}, {}, {} replayed, {} throttled",
            plural(
                self.recovery_codes_left,
                "recovery code left",
                "recovery codes left"
            ),
            plural(c.accepted, "sign-in", "sign-ins"),
            plural(c.wrong_code, "wrong code", "wrong codes"),
            c.replayed,
            c.throttled,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_are_pinned() {
        let accepted = SigninResult::Accepted {
            method: SigninMethod::RecoveryCode,
            recovery_codes_left: 9,
        };
        let json_accepted =
            json!({"outcome": "accepted", "method": "recovery_code", "recovery_codes_left": 9});
        assert_eq!(serde_json::to_value(&accepted).unwrap(), json_accepted);
        assert_eq!(
            serde_json::from_value::<SigninResult>(json_accepted).unwrap(),
            accepted
        );
        let throttled = json!({"outcome": "refused", "reason": "throttled",
            "message": "Too many wrong codes. Try again in 30 s.", "retry_after_secs": 30});
        assert_eq!(
            serde_json::from_value::<SigninResult>(throttled.clone()).unwrap(),
            SigninResult::Refused {
                reason: SigninRefusal::Throttled,
                message: "Too many wrong codes. Try again in 30 s.".into(),
                retry_after_secs: Some(30)
            }
        );
        let wrong = SigninResult::refused(SigninRefusal::WrongCode, "x");
        assert_eq!(
            serde_json::to_value(&wrong).unwrap(),
            json!({"outcome": "refused", "reason": "wrong_code", "message": "x"})
        );
    }

    #[test]
    fn a_typed_code_is_a_plain_string_on_the_wire_and_hidden_in_debug() {
        let code: TypedCode = serde_json::from_value(json!("492 039")).unwrap();
        assert_eq!(code.as_str(), "492 039");
        assert_eq!(serde_json::to_value(&code).unwrap(), json!("492 039"));
        assert_eq!(format!("{code:?}"), "TypedCode(..)");
    }

    #[test]
    fn a_reason_from_a_newer_agent_is_still_a_refusal() {
        let newer = json!({"outcome": "refused", "reason": "device_wiped", "message": "m"});
        assert_eq!(
            serde_json::from_value::<SigninResult>(newer).unwrap(),
            SigninResult::refused(SigninRefusal::Unknown, "m")
        );
        for reason in [
            SigninRefusal::WrongCode,
            SigninRefusal::Replayed,
            SigninRefusal::Throttled,
            SigninRefusal::NotEnrolled,
            SigninRefusal::Malformed,
            SigninRefusal::NoRecoveryCodes,
            SigninRefusal::Unavailable,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }

    #[test]
    fn the_section_is_flat_and_old_files_decode() {
        let section = SigninSection {
            recovery_codes_left: 9,
            locked_until: None,
            counts: SigninCounts {
                accepted: 3,
                wrong_code: 2,
                replayed: 1,
                throttled: 1,
                recovery_codes_used: 1,
                last_accepted_at: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&section).unwrap(),
            json!({"recovery_codes_left": 9, "accepted": 3, "wrong_code": 2, "replayed": 1,
                "throttled": 1, "recovery_codes_used": 1, "last_accepted_at": null})
        );
        assert_eq!(
            section.summary(),
            "9 recovery codes left; 3 sign-ins, 2 wrong codes, 1 replayed, 1 throttled"
        );
        assert_eq!(
            serde_json::from_value::<SigninCounts>(json!({})).unwrap(),
            SigninCounts::default()
        );
    }
}
