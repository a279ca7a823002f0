//! What the agent has measured, and the status derived from it.
//!
//! Architecture Invariant: `Core` does no I/O and reads no clock; the shell
//! measures, stores the facts here, and asks for the status. Tests and
//! benchmarks build statuses from it without an agent.

use chrono::{DateTime, Utc};
use rampart_shared::policy::Policy;
use rampart_shared::status::{
    AgentMode, AgentSection, AgentStatus, ClockSection, ClockState, MfaSection, NetworkSection,
    NetworkState, PolicySection, ReportingSection, STATUS_SCHEMA, StorageSection, UpdateSection,
    assess,
};
use rampart_shared::version::Version;

use crate::{mfa, update};

/// What the agent has measured, and the status derived from it. No I/O.
#[derive(Debug, Clone)]
pub struct Core {
    mode: AgentMode,
    started_at: DateTime<Utc>,
    pid: u32,
    pub clock: ClockSection,
    pub network: NetworkSection,
}

impl Core {
    pub fn new(mode: AgentMode, max_skew_secs: u64, now: DateTime<Utc>) -> Self {
        Self {
            mode,
            started_at: now,
            pid: std::process::id(),
            clock: ClockSection {
                state: ClockState::Unknown,
                offset_ms: None,
                uncertainty_ms: None,
                max_skew_ms: max_skew_secs * 1000,
                server: None,
                checked_at: None,
                detail: "not checked yet".to_owned(),
                source: None,
                problem: None,
            },
            network: NetworkSection {
                state: NetworkState::Unknown,
                checked_at: None,
                detail: "not checked yet".to_owned(),
                problems: Vec::new(),
            },
        }
    }

    /// The full status. `uptime_secs` is left at 0: the IPC server fills it
    /// in at read time so that the snapshot only changes when facts do.
    pub fn status(
        &self,
        policy_section: PolicySection,
        mfa: MfaSection,
        update: UpdateSection,
        storage: StorageSection,
        reporting: ReportingSection,
    ) -> AgentStatus {
        let mut status = AgentStatus {
            schema: STATUS_SCHEMA,
            overall: rampart_shared::status::Overall::Healthy,
            agent: AgentSection {
                version: Version::current(),
                mode: self.mode,
                pid: self.pid,
                started_at: self.started_at,
                uptime_secs: 0,
            },
            policy: policy_section,
            clock: self.clock.clone(),
            network: self.network.clone(),
            mfa,
            update,
            storage,
            reporting,
            mfa_users: Vec::new(),
        };
        status.overall = assess(&status).overall;
        status
    }

    /// The status of a fresh device on the built-in policy, before any check
    /// or enrollment: what tests and benchmarks start from.
    pub fn fresh_status(mode: AgentMode, now: DateTime<Utc>) -> AgentStatus {
        let policy = Policy::default();
        let section = PolicySection {
            source: rampart_shared::status::PolicySource::Builtin,
            serial: policy.serial,
            fetched_at: None,
            error: None,
            fetch_error: None,
            kept: None,
            mfa_required: policy.mfa.required,
            provider: policy.mfa.provider.kind(),
        };
        let mfa = mfa::section::section(None, &policy);
        let update = update::section(Version::current(), policy.agent.min_version, None, || false);
        Self::new(mode, policy.clock.max_skew_secs, now).status(
            section,
            mfa,
            update,
            StorageSection::default(),
            ReportingSection::default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_shared::status::{MfaState, Overall, PolicySource};

    #[test]
    fn fresh_agent_with_builtin_policy_needs_mfa_setup() {
        let status = Core::fresh_status(AgentMode::Dev, Utc::now());
        assert_eq!(status.schema, STATUS_SCHEMA);
        assert_eq!(status.mfa.state, MfaState::NotSetUp);
        assert_eq!(status.clock.state, ClockState::Unknown);
        assert_eq!(status.clock.max_skew_ms, 30_000);
        assert_eq!(status.policy.source, PolicySource::Builtin);
        assert_eq!(status.overall, Overall::ActionNeeded);
    }
}
