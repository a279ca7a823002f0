//! The report the agent sends to IT's collector (`policy.reporting.url`).
//! Documented for collector authors in docs/reporting.md; a test pins the
//! JSON shape. Additive changes only; a rename or removal bumps
//! [`REPORT_SCHEMA`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::mfa::Evidence;
use crate::policy::ProviderKind;
use crate::status::{ClockState, MfaState, Overall, UpdateState};
use crate::version::Version;

pub const REPORT_SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: u32,
    /// Random, 32 hex digits; also the `Idempotency-Key` header. A collector
    /// that sees one twice (a retry after a lost answer) keeps one.
    pub report_id: String,
    /// When the report was made (it may be delivered later).
    pub sent_at: DateTime<Utc>,
    pub device_id: String,
    pub hostname: String,
    /// The device's MFA owner's login name, when known.
    pub user: Option<String>,
    pub mfa: ReportMfa,
    pub clock: ReportClock,
    pub policy_serial: u64,
    pub agent_version: Version,
    pub overall: Overall,
    /// Why this report was made: `start`, `status_change`, `interval`.
    pub reason: String,
    /// Reports dropped because the queue was full (or refused by the
    /// collector) since the previous report that carried this field.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_reports: u64,
    /// Added with issue 20 (schema 1, additive): self-update's state, the
    /// version the feed offered and why, when it is a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<ReportUpdate>,
    /// Added with issue 19: every user with an MFA setup on a shared
    /// machine (`status.mfa_users`); `mfa` and `user` stay the first one's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mfa_users: Vec<crate::status::UserMfa>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportUpdate {
    pub state: UpdateState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_version: Option<String>,
    /// The cause's name (`update_rolled_back`, `update_check_failed`, …;
    /// docs/troubleshooting.md), when the state comes with a problem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The status words: what the device shows under "Update".
    pub reason: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportMfa {
    pub state: MfaState,
    pub provider: ProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolled_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// Added with issue 19: recovery codes left and sign-in counts, for an
    /// enrolled TOTP user (as `status.mfa.signin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signin: Option<crate::signin::SigninSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportClock {
    pub state: ClockState,
    pub offset_ms: Option<i64>,
    pub checked_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_shape_is_pinned() {
        let at = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let report = Report {
            schema: REPORT_SCHEMA,
            report_id: "00112233445566778899aabbccddeeff".into(),
            sent_at: at,
            device_id: "LAPTOP-0042".into(),
            hostname: "laptop-0042".into(),
            user: Some("ada".into()),
            mfa: ReportMfa {
                state: MfaState::Enrolled,
                provider: ProviderKind::Totp,
                enrolled_at: Some(at),
                evidence: None,
                signin: None,
            },
            clock: ReportClock {
                state: ClockState::Synced,
                offset_ms: Some(-12),
                checked_at: Some(at),
            },
            policy_serial: 14,
            agent_version: Version::new(0, 1, 0),
            overall: Overall::Healthy,
            reason: "interval".into(),
            dropped_reports: 0,
            update: None,
            mfa_users: Vec::new(),
        };
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(
            value,
            json!({
                "schema": 1,
                "report_id": "00112233445566778899aabbccddeeff",
                "sent_at": "2026-11-18T11:06:40Z",
                "device_id": "LAPTOP-0042",
                "hostname": "laptop-0042",
                "user": "ada",
                "mfa": {"state": "enrolled", "provider": "totp", "enrolled_at": "2026-11-18T11:06:40Z"},
                "clock": {"state": "synced", "offset_ms": -12, "checked_at": "2026-11-18T11:06:40Z"},
                "policy_serial": 14,
                "agent_version": "0.1.0",
                "overall": "healthy",
                "reason": "interval"
            })
        );
        let back: Report = serde_json::from_value(value).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn the_update_part_is_pinned() {
        let update = ReportUpdate {
            state: UpdateState::Failed,
            offered_version: Some("0.3.0".into()),
            cause: Some("update_rolled_back".into()),
            reason: "Rampart 0.3.0 did not start properly".into(),
        };
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({"state": "failed", "offered_version": "0.3.0",
                   "cause": "update_rolled_back", "reason": "Rampart 0.3.0 did not start properly"})
        );
    }
}
