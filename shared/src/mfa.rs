//! MFA enrollment as the app and the IPC protocol see it: the commands a
//! client sends and the view the agent answers with.
//!
//! These types are self-contained so that IPC request/response variants can
//! carry them as they are. Compatibility as for the status model: new fields
//! are optional (`#[serde(default)]`) and readers ignore fields they do not
//! know; a new error code decodes as [`MfaErrorCode::Unknown`] in older apps.
//!
//! What may cross this boundary is deliberate: the TOTP secret appears only in
//! [`PairingInfo`], which the agent sends only while the step is
//! [`EnrollmentStep::Pairing`]; recovery codes appear only in the one reply
//! that creates them. `Debug` hides both, so logging a view leaks neither.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::policy::ProviderKind;
use crate::user::UserId;
use crate::version::Version;

/// Where a user's enrollment stands. Enrollment moves strictly forward
/// through these, except that a reset goes back to `NotSetUp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStep {
    /// Policy does not require MFA and the user has not enrolled.
    NotRequired,
    NotSetUp,
    /// A secret was issued; the user must type a code from their app.
    Pairing,
    /// A code was verified; recovery codes were shown and must be saved.
    Verified,
    /// The user confirmed saving the recovery codes; the offline guide is next.
    RecoveryCodesSaved,
    /// The offline guide was acknowledged; the provider completes enrollment.
    OfflineGuideAcknowledged,
    Enrolled,
}

impl EnrollmentStep {
    /// What the user does next, in plain words.
    pub fn next_action(self) -> &'static str {
        match self {
            Self::NotRequired => "nothing: your organization does not require MFA",
            Self::NotSetUp => "start setup",
            Self::Pairing => "verify a code",
            Self::Verified => "save your recovery codes",
            Self::RecoveryCodesSaved => "read the offline access guide",
            Self::OfflineGuideAcknowledged => "finish setup",
            Self::Enrolled => "nothing: MFA is set up",
        }
    }
}

/// v1. What a client asks of the MFA engine. Only the enrollment's owner and
/// root may send these; `ResetEnrollment` is root's alone.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MfaCommand {
    /// Begins pairing, or resumes: an enrollment already under way answers
    /// with its current step (and the same secret while pairing).
    StartEnrollment,
    VerifyCode {
        code: String,
    },
    ConfirmRecoveryCodesSaved,
    /// `guide_url` is the guide the app opened; it must be the policy's.
    AcknowledgeOfflineGuide {
        guide_url: String,
    },
    /// Issues 10 new recovery codes and invalidates every earlier one.
    RegenerateRecoveryCodes,
    ResetEnrollment,
    /// Duo: sends a push to the user's phone to confirm it (`device`: one of
    /// [`DuoDevice::id`]; none: Duo picks the first that takes pushes).
    SendPush {
        #[serde(default)]
        device: Option<String>,
    },
    /// Duo: asks once whether the activation or the push has completed. The
    /// app sends it every 3 s while the user is on a waiting screen; the
    /// agent asks Duo at most once per command, and not while backing off.
    CheckProgress,
    /// Duo: the activation expired (or the portal link went stale); issue a
    /// new one.
    RenewActivation,
}

impl MfaCommand {
    /// A name for logs: commands carry codes, which are never logged.
    pub fn name(&self) -> &'static str {
        match self {
            Self::StartEnrollment => "start_enrollment",
            Self::VerifyCode { .. } => "verify_code",
            Self::ConfirmRecoveryCodesSaved => "confirm_recovery_codes_saved",
            Self::AcknowledgeOfflineGuide { .. } => "acknowledge_offline_guide",
            Self::RegenerateRecoveryCodes => "regenerate_recovery_codes",
            Self::ResetEnrollment => "reset_enrollment",
            Self::SendPush { .. } => "send_push",
            Self::CheckProgress => "check_progress",
            Self::RenewActivation => "renew_activation",
        }
    }
}

impl fmt::Debug for MfaCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AcknowledgeOfflineGuide { guide_url } => f
                .debug_struct("AcknowledgeOfflineGuide")
                .field("guide_url", guide_url)
                .finish(),
            other => f.write_str(other.name()),
        }
    }
}

/// The agent's answer to every [`MfaCommand`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentView {
    pub step: EnrollmentStep,
    pub provider: ProviderKind,
    /// Only while `step` is `pairing`.
    #[serde(default)]
    pub pairing: Option<PairingInfo>,
    /// Only in the reply that created them: they are never shown again.
    #[serde(default)]
    pub recovery_codes: Option<Vec<String>>,
    /// Unused recovery codes, once any were issued.
    #[serde(default)]
    pub recovery_codes_left: Option<u32>,
    #[serde(default)]
    pub enrolled_at: Option<DateTime<Utc>>,
    /// The offline-guide acknowledgement, once recorded.
    #[serde(default)]
    pub evidence: Option<Evidence>,
    /// Set when the command failed; `step` is then where the user still is.
    #[serde(default)]
    pub error: Option<MfaErrorView>,
    /// Duo only: what the user does with Duo now. Sent while `step` is
    /// `pairing`, and with `not_required` when Duo lets the user bypass.
    #[serde(default)]
    pub duo: Option<DuoPrompt>,
}

impl fmt::Debug for EnrollmentView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentView")
            .field("step", &self.step)
            .field("provider", &self.provider)
            .field("pairing", &self.pairing)
            .field(
                "recovery_codes",
                &self
                    .recovery_codes
                    .as_ref()
                    .map(|c| format!("<{} codes>", c.len())),
            )
            .field("recovery_codes_left", &self.recovery_codes_left)
            .field("enrolled_at", &self.enrolled_at)
            .field("evidence", &self.evidence)
            .field("error", &self.error)
            .field("duo", &self.duo)
            .finish()
    }
}

/// What a Duo user does next, as the agent learned it from Duo.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DuoPrompt {
    /// A new Duo user: scan the activation QR code with Duo Mobile, or open
    /// the activation link on the phone. Whoever holds `activation_code` can
    /// attach a phone to this user, so `Debug` hides it.
    Activate {
        /// `duo://…`: the QR code's content.
        activation_code: String,
        /// `https://…`: the same activation as a link to open on the phone.
        activation_url: String,
        #[serde(default)]
        expires_at: Option<DateTime<Utc>>,
        /// Duo said the activation is no longer valid: offer a new one.
        #[serde(default)]
        expired: bool,
    },
    /// A Duo user who has no phone yet and whom the agent cannot enroll
    /// itself: Duo's enrollment portal, valid for a few minutes.
    Portal { url: String },
    /// Paired with Duo: confirm the phone works, with a push or a passcode.
    Confirm {
        devices: Vec<DuoDevice>,
        #[serde(default)]
        push: PushState,
    },
    /// Duo lets this user sign in without a second factor (IT's choice).
    Bypass { message: String },
}

impl fmt::Debug for DuoPrompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Activate {
                expires_at,
                expired,
                ..
            } => f
                .debug_struct("Activate")
                .field("activation_code", &"***")
                .field("activation_url", &"***")
                .field("expires_at", expires_at)
                .field("expired", expired)
                .finish(),
            Self::Portal { .. } => f.debug_struct("Portal").field("url", &"***").finish(),
            Self::Confirm { devices, push } => f
                .debug_struct("Confirm")
                .field("devices", devices)
                .field("push", push)
                .finish(),
            Self::Bypass { message } => f.debug_struct("Bypass").field("message", message).finish(),
        }
    }
}

/// A phone or token Duo knows for the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuoDevice {
    /// Duo's device id, for [`MfaCommand::SendPush`].
    pub id: String,
    /// "iOS (XXX-XXX-1234)": Duo's display name.
    pub name: String,
    /// Whether the device takes Duo Push.
    pub push: bool,
}

/// Where the confirmation push stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushState {
    #[default]
    NotSent,
    /// Sent; the phone has not answered yet.
    Waiting,
    /// The user tapped Deny.
    Denied,
    /// The user reported the push as fraudulent.
    Fraud,
    /// Nobody answered in time.
    TimedOut,
    /// A newer agent's state.
    #[serde(other)]
    Unknown,
}

/// What the app needs to pair an authenticator app: the QR code's content
/// and the same secret for typing by hand.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairingInfo {
    /// `otpauth://totp/…`: the QR code's content.
    pub otpauth_uri: String,
    /// The base32 secret in groups of four: `ABCD EFGH …`.
    pub secret_grouped: String,
    pub issuer: String,
    pub account: String,
}

impl fmt::Debug for PairingInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingInfo")
            .field("otpauth_uri", &"***")
            .field("secret_grouped", &"***")
            .field("issuer", &self.issuer)
            .field("account", &self.account)
            .finish()
    }
}

/// Proof for IT that the user read the offline access guide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub acknowledged_at: DateTime<Utc>,
    /// `"uid": 1000` or, on Windows, `"sid": "S-1-5-21-…"`.
    #[serde(flatten)]
    pub user_id: UserId,
    pub user: String,
    pub guide_url: String,
    pub policy_serial: u64,
    pub agent_version: Version,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaErrorView {
    pub code: MfaErrorCode,
    /// A complete sentence for the user, with what to do.
    pub message: String,
    /// Set with `throttled`: seconds until another code is checked.
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Set with `phone_clock_skew`: the phone's clock minus the agent's
    /// (negative: the phone is behind).
    #[serde(default)]
    pub phone_skew_secs: Option<i64>,
    /// Protocol 1, added with issue 14: the cause in the shared vocabulary
    /// (`crate::cause`) when the error has one the app shows with a figure
    /// (a clock, Duo's answer, a full disk), with the raw text as details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<crate::cause::Problem>,
}

/// Stable, machine-readable causes; the app branches on these, never on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaErrorCode {
    /// The policy does not require MFA, so there is nothing to set up.
    NotRequired,
    /// The policy's provider cannot be used by this version (Duo, for now).
    ProviderUnavailable,
    /// The command does not apply at the current step.
    WrongStep,
    MalformedCode,
    WrongCode,
    /// The code is wrong now but matches the phone's clock being off.
    PhoneClockSkew,
    ReplayedCode,
    Throttled,
    /// The peer may not change this user's enrollment.
    Forbidden,
    /// The guide the app opened is not the one the policy names.
    GuideChanged,
    /// The saved enrollment could not be read; IT can reset it.
    StateCorrupt,
    /// The MFA provider (Duo) could not be reached or refused the request;
    /// the message says why in plain words.
    ProviderError,
    /// The provider denies this user: only IT can change that.
    AccessDenied,
    /// The enrollment could not be saved.
    Storage,
    Internal,
    /// A code added by a newer agent.
    #[serde(other)]
    Unknown,
}

/// How many digits a Duo passcode has, the one rule the agent and the app
/// share: Duo Mobile shows 6, a hardware token 6 (some OATH tokens 8), a text
/// message brings 7, and a bypass code from IT has 9. Shorter or longer is a
/// typo, refused before it reaches Duo (so it costs no throttled attempt).
pub const PASSCODE_DIGITS: std::ops::RangeInclusive<usize> = 6..=9;

/// A Duo passcode as typed, without spaces (`123 456` reads as `123456`),
/// or `None` when it is not [`PASSCODE_DIGITS`] ASCII digits.
pub fn normalize_passcode(input: &str) -> Option<String> {
    let passcode: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (PASSCODE_DIGITS.contains(&passcode.len()) && passcode.bytes().all(|b| b.is_ascii_digit()))
        .then_some(passcode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_passcode_is_6_to_9_digits_spaces_aside() {
        assert_eq!(normalize_passcode("123456").as_deref(), Some("123456"));
        assert_eq!(normalize_passcode(" 123 456\t").as_deref(), Some("123456"));
        // A text message's 7, an 8-digit token, a 9-digit bypass code.
        assert_eq!(normalize_passcode("1234567").as_deref(), Some("1234567"));
        assert_eq!(normalize_passcode("1234 5678").as_deref(), Some("12345678"));
        assert_eq!(
            normalize_passcode("123 456 789").as_deref(),
            Some("123456789")
        );
        for typo in [
            "",
            "12345",
            "1234567890",
            "12a456",
            "123-456",
            "１２３４５６",
        ] {
            assert_eq!(normalize_passcode(typo), None, "{typo}");
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn commands_json_is_pinned() {
        let cases = [
            (
                MfaCommand::StartEnrollment,
                json!({"type": "start_enrollment"}),
            ),
            (
                MfaCommand::VerifyCode {
                    code: "123 456".into(),
                },
                json!({"type": "verify_code", "code": "123 456"}),
            ),
            (
                MfaCommand::ConfirmRecoveryCodesSaved,
                json!({"type": "confirm_recovery_codes_saved"}),
            ),
            (
                MfaCommand::AcknowledgeOfflineGuide {
                    guide_url: "https://g.example/x".into(),
                },
                json!({"type": "acknowledge_offline_guide", "guide_url": "https://g.example/x"}),
            ),
            (
                MfaCommand::RegenerateRecoveryCodes,
                json!({"type": "regenerate_recovery_codes"}),
            ),
            (
                MfaCommand::ResetEnrollment,
                json!({"type": "reset_enrollment"}),
            ),
            (
                MfaCommand::SendPush {
                    device: Some("DPFZRS9FB0D46QFTM891".into()),
                },
                json!({"type": "send_push", "device": "DPFZRS9FB0D46QFTM891"}),
            ),
            (MfaCommand::CheckProgress, json!({"type": "check_progress"})),
            (
                MfaCommand::RenewActivation,
                json!({"type": "renew_activation"}),
            ),
        ];
        for (command, want) in cases {
            assert_eq!(serde_json::to_value(&command).unwrap(), want);
            assert_eq!(serde_json::from_value::<MfaCommand>(want).unwrap(), command);
        }
    }

    #[test]
    fn pairing_view_json_is_pinned() {
        let view = EnrollmentView {
            step: EnrollmentStep::Pairing,
            provider: ProviderKind::Totp,
            pairing: Some(PairingInfo {
                otpauth_uri: "otpauth://totp/ACME:jane?secret=AAAA".into(),
                secret_grouped: "AAAA".into(),
                issuer: "ACME".into(),
                account: "jane".into(),
            }),
            recovery_codes: None,
            recovery_codes_left: None,
            enrolled_at: None,
            evidence: None,
            error: Some(MfaErrorView {
                code: MfaErrorCode::Throttled,
                message: "Too many wrong codes. Try again in 1 min 30 s.".into(),
                retry_after_secs: Some(90),
                phone_skew_secs: None,
                problem: None,
            }),
            duo: None,
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json,
            json!({
                "step": "pairing",
                "provider": "totp",
                "pairing": {"otpauth_uri": "otpauth://totp/ACME:jane?secret=AAAA",
                            "secret_grouped": "AAAA", "issuer": "ACME", "account": "jane"},
                "recovery_codes": null,
                "recovery_codes_left": null,
                "enrolled_at": null,
                "evidence": null,
                "error": {"code": "throttled",
                          "message": "Too many wrong codes. Try again in 1 min 30 s.",
                          "retry_after_secs": 90, "phone_skew_secs": null},
                "duo": null
            })
        );
        assert_eq!(
            serde_json::from_value::<EnrollmentView>(json).unwrap(),
            view
        );
    }

    #[test]
    fn enrolled_view_json_is_pinned_and_old_minimal_replies_decode() {
        let view = EnrollmentView {
            step: EnrollmentStep::Enrolled,
            provider: ProviderKind::Totp,
            pairing: None,
            recovery_codes: None,
            recovery_codes_left: Some(9),
            enrolled_at: Some(at(1_795_000_000)),
            evidence: Some(Evidence {
                acknowledged_at: at(1_795_000_000),
                user_id: UserId::Uid(1000),
                user: "jane".into(),
                guide_url: "https://g.example/offline".into(),
                policy_serial: 7,
                agent_version: Version::new(0, 1, 0),
            }),
            error: None,
            duo: None,
        };
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            json!({
                "step": "enrolled", "provider": "totp", "pairing": null, "recovery_codes": null,
                "recovery_codes_left": 9, "enrolled_at": "2026-11-18T11:06:40Z",
                "evidence": {"acknowledged_at": "2026-11-18T11:06:40Z", "uid": 1000,
                             "user": "jane", "guide_url": "https://g.example/offline",
                             "policy_serial": 7, "agent_version": "0.1.0"},
                "error": null, "duo": null
            })
        );
        let back: EnrollmentView =
            serde_json::from_value(serde_json::to_value(&view).unwrap()).unwrap();
        assert_eq!(back, view);
        let mut windows = view.evidence.clone().unwrap();
        windows.user_id = UserId::Sid("S-1-5-21-1-2-3-1001".into());
        let text = serde_json::to_value(&windows).unwrap();
        assert_eq!(text["sid"], "S-1-5-21-1-2-3-1001");
        assert!(text.get("uid").is_none());
        assert_eq!(serde_json::from_value::<Evidence>(text).unwrap(), windows);
        let minimal: EnrollmentView =
            serde_json::from_value(json!({"step": "not_set_up", "provider": "duo"})).unwrap();
        assert_eq!(minimal.step, EnrollmentStep::NotSetUp);
        assert_eq!(minimal.error, None);
    }

    #[test]
    fn duo_prompts_json_is_pinned_and_debug_hides_the_activation() {
        let activate = DuoPrompt::Activate {
            activation_code: "duo://PLANTEDACTIVATION-YXBpLWZvby5kdW8uY29t".into(),
            activation_url:
                "https://api-foo.duosecurity.com/frame/portal/v4/enroll?code=PLANTEDURL".into(),
            expires_at: Some(at(1_795_000_000)),
            expired: false,
        };
        assert_eq!(
            serde_json::to_value(&activate).unwrap(),
            json!({"type": "activate",
                   "activation_code": "duo://PLANTEDACTIVATION-YXBpLWZvby5kdW8uY29t",
                   "activation_url": "https://api-foo.duosecurity.com/frame/portal/v4/enroll?code=PLANTEDURL",
                   "expires_at": "2026-11-18T11:06:40Z", "expired": false})
        );
        let debug = format!("{activate:?}");
        assert!(!debug.contains("PLANTED"), "{debug}");
        let confirm = DuoPrompt::Confirm {
            devices: vec![DuoDevice {
                id: "DPFZRS9FB0D46QFTM891".into(),
                name: "iOS (XXX-XXX-0100)".into(),
                push: true,
            }],
            push: PushState::Waiting,
        };
        let json = serde_json::to_value(&confirm).unwrap();
        assert_eq!(
            json,
            json!({"type": "confirm",
                   "devices": [{"id": "DPFZRS9FB0D46QFTM891", "name": "iOS (XXX-XXX-0100)", "push": true}],
                   "push": "waiting"})
        );
        assert_eq!(serde_json::from_value::<DuoPrompt>(json).unwrap(), confirm);
        let newer: DuoPrompt = serde_json::from_value(
            json!({"type": "confirm", "devices": [], "push": "pending_biometric"}),
        )
        .unwrap();
        assert_eq!(
            newer,
            DuoPrompt::Confirm {
                devices: vec![],
                push: PushState::Unknown
            }
        );
    }

    #[test]
    fn every_step_name_is_pinned() {
        let names: Vec<String> = [
            EnrollmentStep::NotRequired,
            EnrollmentStep::NotSetUp,
            EnrollmentStep::Pairing,
            EnrollmentStep::Verified,
            EnrollmentStep::RecoveryCodesSaved,
            EnrollmentStep::OfflineGuideAcknowledged,
            EnrollmentStep::Enrolled,
        ]
        .iter()
        .map(|s| {
            serde_json::to_value(s)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
        assert_eq!(
            names,
            [
                "not_required",
                "not_set_up",
                "pairing",
                "verified",
                "recovery_codes_saved",
                "offline_guide_acknowledged",
                "enrolled"
            ]
        );
    }

    #[test]
    fn unknown_error_codes_from_newer_agents_still_decode() {
        let e: MfaErrorView =
            serde_json::from_value(json!({"code": "quantum_flux", "message": "x"})).unwrap();
        assert_eq!(e.code, MfaErrorCode::Unknown);
        assert_eq!(
            serde_json::to_value(MfaErrorCode::PhoneClockSkew).unwrap(),
            "phone_clock_skew"
        );
    }

    #[test]
    fn debug_hides_pairing_secret_and_recovery_codes() {
        let view = EnrollmentView {
            step: EnrollmentStep::Pairing,
            provider: ProviderKind::Totp,
            pairing: Some(PairingInfo {
                otpauth_uri: "otpauth://totp/A:b?secret=PLANTEDSECRET".into(),
                secret_grouped: "PLAN TEDS ECRE T".into(),
                issuer: "A".into(),
                account: "b".into(),
            }),
            recovery_codes: Some(vec!["PLANTEDCODE".into()]),
            recovery_codes_left: Some(1),
            enrolled_at: None,
            evidence: None,
            error: None,
            duo: None,
        };
        let debug = format!("{view:?}");
        for planted in ["PLANTEDSECRET", "PLAN TEDS", "PLANTEDCODE"] {
            assert!(!debug.contains(planted), "{debug}");
        }
        assert!(debug.contains("<1 codes>"), "{debug}");
        let command = format!(
            "{:?}",
            MfaCommand::VerifyCode {
                code: "246810".into()
            }
        );
        assert_eq!(command, "verify_code");
    }
}
