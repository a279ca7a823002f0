//! Test fixtures shared by every screen's tests and the simulator: one
//! agent status, one enrollment view (TOTP and Duo), one pairing, so a
//! change to the shared types is made here once.

use chrono::Utc;
use rampart_shared::mfa::{
    DuoPrompt, EnrollmentStep, EnrollmentView, MfaErrorCode, MfaErrorView, PairingInfo,
};
use rampart_shared::policy::{Links, Policy, ProviderKind};
use rampart_shared::status::{
    AgentMode, AgentSection, AgentStatus, ClockSection, ClockState, MfaSection, MfaState,
    NetworkSection, NetworkState, Overall, PolicySection, PolicySource, UpdateSection, UpdateState,
};
use rampart_shared::version::Version;

/// A status with the given checks; MFA not set up, TOTP required.
pub(crate) fn status_with(
    network: NetworkState,
    clock: ClockState,
    offset_ms: Option<i64>,
) -> AgentStatus {
    AgentStatus {
        schema: 1,
        overall: Overall::ActionNeeded,
        agent: AgentSection {
            version: Version::new(0, 1, 0),
            mode: AgentMode::Dev,
            pid: 1,
            started_at: Utc::now(),
            uptime_secs: 5,
        },
        policy: PolicySection {
            source: PolicySource::Builtin,
            serial: 0,
            fetched_at: None,
            error: None,
            fetch_error: None,
            kept: None,
            mfa_required: true,
            provider: ProviderKind::Totp,
        },
        clock: ClockSection {
            state: clock,
            offset_ms,
            uncertainty_ms: Some(10),
            max_skew_ms: 30_000,
            server: Some("127.0.0.1:123".into()),
            checked_at: Some(Utc::now()),
            detail: "checked against 127.0.0.1:123".into(),
            source: Some(rampart_shared::status::ClockSource::Ntp),
            problem: None,
        },
        network: NetworkSection {
            state: network,
            checked_at: Some(Utc::now()),
            detail: "policy server answered in 12 ms".into(),
            problems: Vec::new(),
        },
        mfa: MfaSection {
            state: MfaState::NotSetUp,
            provider: ProviderKind::Totp,
            detail: None,
            signin: None,
        },
        update: UpdateSection {
            state: UpdateState::NotChecked,
            current_version: Version::new(0, 1, 0),
            min_version: None,
            detail: "Rampart 0.1.0; policy sets no minimum version".into(),
            problem: None,
            offered_version: None,
        },
        storage: Default::default(),
        reporting: Default::default(),
        mfa_users: Vec::new(),
    }
}

/// A status whose checks all pass: "Get started" is enabled.
pub(crate) fn passing() -> Box<AgentStatus> {
    Box::new(status_with(
        NetworkState::Online,
        ClockState::Synced,
        Some(40),
    ))
}

/// The agent's answer at `step` for TOTP (with the pairing at `Pairing`).
pub(crate) fn view_at(step: EnrollmentStep) -> EnrollmentView {
    EnrollmentView {
        step,
        provider: ProviderKind::Totp,
        pairing: (step == EnrollmentStep::Pairing).then(|| {
            pairing(
                "otpauth://totp/ACME:jane?secret=JBSWY3DPEHPK3PXP",
                "JBSW Y3DP EHPK 3PXP",
            )
        }),
        recovery_codes: None,
        recovery_codes_left: None,
        enrolled_at: None,
        evidence: None,
        error: None,
        duo: None,
    }
}

/// The default policy's links (https, so they open).
pub(crate) fn links() -> Links {
    Policy::default().links
}

/// The agent's answer at `step` for Duo, with its prompt.
pub(crate) fn duo_view(step: EnrollmentStep, duo: Option<DuoPrompt>) -> EnrollmentView {
    EnrollmentView {
        provider: ProviderKind::Duo,
        pairing: None,
        duo,
        ..view_at(step)
    }
}

/// Duo's activation prompt.
pub(crate) fn activate(code: &str, expired: bool) -> Option<DuoPrompt> {
    Some(DuoPrompt::Activate {
        activation_code: code.into(),
        activation_url: "https://127.0.0.1:1/iphone/abc".into(),
        expires_at: None,
        expired,
    })
}

/// Duo's confirm prompt with one phone that takes pushes ("DP1").
pub(crate) fn confirm(push: rampart_shared::mfa::PushState) -> Option<DuoPrompt> {
    Some(DuoPrompt::Confirm {
        devices: vec![rampart_shared::mfa::DuoDevice {
            id: "DP1".into(),
            name: "iOS (XXX-XXX-0100)".into(),
            push: true,
        }],
        push,
    })
}

/// A TOTP pairing for `otpauth_uri`, its secret grouped for typing.
pub(crate) fn pairing(otpauth_uri: &str, secret_grouped: &str) -> PairingInfo {
    PairingInfo {
        otpauth_uri: otpauth_uri.into(),
        secret_grouped: secret_grouped.into(),
        issuer: "ACME".into(),
        account: "jane".into(),
    }
}

/// The agent's refusal with `code` in its words, nothing more: a test adds
/// the wait, the phone's skew or the cause it is about.
pub(crate) fn refusal(code: MfaErrorCode, message: impl Into<String>) -> MfaErrorView {
    MfaErrorView {
        code,
        message: message.into(),
        retry_after_secs: None,
        phone_skew_secs: None,
        problem: None,
    }
}
