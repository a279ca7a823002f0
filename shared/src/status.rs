//! The agent's status: what `rampart-agent status --json`, the app and (later)
//! reports to IT all read. Documented field by field in `docs/status.md`.
//!
//! Compatibility: adding a field is not a schema change (readers ignore what
//! they do not know, and new fields carry `#[serde(default)]`); renaming or
//! removing one, or changing its meaning, bumps [`STATUS_SCHEMA`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::cause::{Cause, Problem};
use crate::policy::ProviderKind;
use crate::version::Version;

pub const STATUS_SCHEMA: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub schema: u32,
    /// Derived from the sections by [`assess`]; stored so that JSON readers need
    /// not re-implement the rule.
    pub overall: Overall,
    pub agent: AgentSection,
    pub policy: PolicySection,
    pub clock: ClockSection,
    pub network: NetworkSection,
    pub mfa: MfaSection,
    pub update: UpdateSection,
    /// Protocol 1, added with issue 15 (older agents leave it out: read as
    /// empty). State the agent could not write.
    #[serde(default)]
    pub storage: StorageSection,
    /// Protocol 1, added with issue 15 (older agents leave it out: read as
    /// nothing to say). Delivery of reports to IT, when it needs IT's hand.
    #[serde(default)]
    pub reporting: ReportingSection,
    /// Protocol 1, added with issue 19 (absent from older agents, from dev
    /// and embedded agents, and while nobody has started MFA setup): the
    /// system service's every user with an MFA setup, for IT. A client is
    /// served `mfa` as its own user's entry ([`AgentStatus::as_seen_by`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mfa_users: Vec<UserMfa>,
}

/// One user's MFA section in `mfa_users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMfa {
    /// The login name.
    pub user: String,
    /// `"uid": 1000`, or on Windows `"sid": "S-1-5-21-…"`.
    #[serde(flatten)]
    pub id: crate::user::UserId,
    #[serde(flatten)]
    pub mfa: MfaSection,
}

impl AgentStatus {
    /// The status as the user `id` sees it: with their own entry of
    /// `mfa_users` as `mfa` (and the verdict assessed again with it), so
    /// that on a shared machine each person's app shows their own setup.
    /// `None` when that is the status as it is (no entry, or the same).
    pub fn as_seen_by(&self, id: &crate::user::UserId) -> Option<AgentStatus> {
        let own = self.mfa_users.iter().find(|u| &u.id == id)?;
        if own.mfa == self.mfa {
            return None;
        }
        let mut status = self.clone();
        status.mfa = own.mfa.clone();
        status.overall = assess(&status).overall;
        Some(status)
    }
}

/// What the agent knows about delivering reports to IT's collector that
/// someone must act on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportingSection {
    /// Set while the deployment secret cannot be read or the collector
    /// refuses it (HTTP 401 or 403); the reports stay queued meanwhile.
    #[serde(default)]
    pub credential_error: Option<CredentialError>,
    /// Added with issue 17 (protocol 1; absent from older agents and until
    /// a report is delivered): when the collector last took a report, since
    /// the agent started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// Why reports wait for IT: the device's credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialError {
    /// Plain words and the next step: "the report collector refused this
    /// device's credential (HTTP 401): ask IT to check the deployment
    /// secret; reports wait on this device until then".
    pub message: String,
    /// The collector's answer, or `None` when the secret file could not be
    /// read.
    pub http_status: Option<u16>,
    pub at: DateTime<Utc>,
}

/// Failed writes of the agent's state: each kind of state shows its latest
/// failure until a write of that kind succeeds again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageSection {
    #[serde(default)]
    pub failures: Vec<StorageFailure>,
    /// Reports to IT that could not be queued since the last one that was;
    /// the next queued report carries the count in `dropped_reports`.
    #[serde(default)]
    pub reports_not_queued: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageFailure {
    /// What could not be saved: `mfa_state`, `policy_copy` or `report_queue`
    /// (readers must accept others).
    pub state: String,
    /// The file the agent was writing.
    pub path: String,
    /// Plain words: what was lost, why, and the next step.
    pub message: String,
    /// The OS error as the OS reported it.
    pub details: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Healthy,
    ActionNeeded,
    Error,
}

impl Overall {
    pub fn label(self) -> &'static str {
        match self {
            Self::Healthy => "Healthy",
            Self::ActionNeeded => "Action needed",
            Self::Error => "Error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSection {
    pub version: Version,
    pub mode: AgentMode,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub uptime_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    /// The installed service, system paths.
    System,
    /// `run --dev`: the current user, per-user paths.
    Dev,
    /// Started inside the app because no agent was running.
    Embedded,
}

impl AgentMode {
    /// "service", "dev", "embedded": the one name the CLI, doctor and the
    /// app give the mode (the same word as its JSON value, but the service's).
    pub fn label(self) -> &'static str {
        match self {
            Self::System => "service",
            Self::Dev => "dev",
            Self::Embedded => "embedded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySection {
    pub source: PolicySource,
    pub serial: u64,
    /// When the policy in force was obtained (`None` for the built-in one).
    pub fetched_at: Option<DateTime<Utc>>,
    /// Why the newest candidate was rejected; the policy in force stays.
    /// A later poll that gets no document at all clears a rejection it made
    /// (the server no longer serves that document, as far as the agent
    /// knows) and says why in `fetch_error` instead.
    pub error: Option<String>,
    /// Protocol 1, added with issue 15 (older agents leave it out: read as
    /// `None`). Why the latest poll of the policy URL got no document
    /// (network, HTTP status, size, timeout), and when; `None` once a poll
    /// succeeds. Kept apart from `error`, which is about documents. Does not
    /// move `overall`: the policy in force stays, and a network that is the
    /// cause shows in the network section.
    #[serde(default)]
    pub fetch_error: Option<FetchFailure>,
    /// Protocol 1, added with issue 15 (older agents leave it out: read as
    /// `None`). Set when the policy in force is a kept copy because its
    /// source no longer offers a usable document (the managed file was
    /// deleted or rejected): the serial never goes down on its own.
    #[serde(default)]
    pub kept: Option<KeptPolicy>,
    pub mfa_required: bool,
    pub provider: ProviderKind,
}

/// Why a policy stays in force that its source no longer offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPolicy {
    /// The serial kept in force.
    pub serial: u64,
    /// Plain words: "managed file rejected: keeping serial 5".
    pub message: String,
}

/// A poll of the policy URL that got no document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchFailure {
    /// Plain words: "the server answered HTTP 404 for https://…".
    pub message: String,
    /// When the poll failed.
    pub at: DateTime<Utc>,
    /// Protocol 1, added with issue 14: the cause, when the vocabulary has
    /// one (refused, silent, untrusted, an HTTP error); `message` is then
    /// its details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

impl FetchFailure {
    /// "last policy poll failed at 2026-11-23 12:00 UTC: …": the words
    /// `status`, `doctor` and the app all use.
    pub fn summary(&self) -> String {
        format!(
            "last policy poll failed at {}: {}",
            self.at.format("%Y-%m-%d %H:%M UTC"),
            self.problem
                .as_ref()
                .map_or_else(|| self.message.clone(), Problem::words)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicySource {
    Builtin,
    ManagedFile,
    Remote,
    LastKnownGood,
}

impl PolicySource {
    pub fn label(self) -> &'static str {
        match self {
            Self::Builtin => "built-in default",
            Self::ManagedFile => "managed file",
            Self::Remote => "policy server",
            Self::LastKnownGood => "last known good copy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockSection {
    pub state: ClockState,
    /// Local clock minus true time: positive means the clock is fast.
    pub offset_ms: Option<i64>,
    pub uncertainty_ms: Option<u64>,
    pub max_skew_ms: u64,
    /// The server whose answer was used.
    pub server: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    /// Plain words: "clock is 4 min 12 s fast", or why it is unknown.
    pub detail: String,
    /// Protocol 1, added with issue 14 (older agents leave it out: read as
    /// `None`, which with an offset means a time server). What the offset
    /// was measured against.
    #[serde(default)]
    pub source: Option<ClockSource>,
    /// Protocol 1, added with issue 14: why the clock is skewed or unknown,
    /// by cause (`crate::cause`). `None` when in sync or not yet checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
}

/// What the clock was measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSource {
    /// A time server's SNTP answer.
    Ntp,
    /// The `Date` header of an HTTP(S) answer (whole seconds), used when no
    /// time server answered.
    HttpDate,
    /// Duo's time from its Auth API's `/ping` (whole seconds, so measured
    /// as a `Date` header is), used like `http_date` when the policy's
    /// provider is Duo. Protocol 1, added with issue 14.
    DuoPing,
    /// A source a newer agent knows.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    Unknown,
    Synced,
    Skewed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSection {
    pub state: NetworkState,
    pub checked_at: Option<DateTime<Utc>>,
    pub detail: String,
    /// Protocol 1, added with issue 14: each endpoint that failed, by cause
    /// and with the endpoint's role, so that a reader can tell what matters
    /// to it (TOTP setup needs no network; Duo setup needs Duo).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkState {
    Unknown,
    Online,
    Offline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MfaSection {
    pub state: MfaState,
    pub provider: ProviderKind,
    /// Plain words on the state: the step to do next, or the error's cause.
    pub detail: Option<String>,
    /// Protocol 1, added with issue 19 (absent from older agents and for a
    /// user who is not enrolled): recovery codes left and what sign-ins did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signin: Option<crate::signin::SigninSection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaState {
    NotRequired,
    NotSetUp,
    InProgress,
    Enrolled,
    Error,
}

impl MfaSection {
    /// "Not set up", "Setup in progress: verify a code", "Enrolled since
    /// 2026-11-23", "Error: …".
    pub fn summary(&self) -> String {
        let label = self.state.label();
        match (&self.detail, self.state) {
            (None, _) => label.to_owned(),
            (Some(since), MfaState::Enrolled) => format!("{label} {since}"),
            (Some(detail), _) => format!("{label}: {detail}"),
        }
    }
}

impl MfaState {
    pub fn label(self) -> &'static str {
        match self {
            Self::NotRequired => "Not required",
            Self::NotSetUp => "Not set up",
            Self::InProgress => "Setup in progress",
            Self::Enrolled => "Enrolled",
            Self::Error => "Error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateSection {
    pub state: UpdateState,
    pub current_version: Version,
    pub min_version: Option<Version>,
    pub detail: String,
    /// Protocol 1, added with issue 14: set below the policy's minimum
    /// (`version_too_old`, saying whether this agent updates itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// Protocol 1, added with issue 20: the version the release feed
    /// offered at the last check (semver, may be a prerelease), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// No update source has been asked yet; the version meets the policy.
    NotChecked,
    UpToDate,
    Available,
    Updating,
    /// Below the policy's `agent.min_version`.
    UpdateRequired,
    Failed,
}

/// The verdict and the reasons behind it, worst first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub overall: Overall,
    pub reasons: Vec<(Overall, String)>,
}

/// The one rule for `overall`. `Error`: something is broken that the employee
/// cannot fix alone. `ActionNeeded`: something the employee (or the next check)
/// can fix. A check that has not run yet does not count against the device; one
/// that ran and found nothing usable does.
pub fn assess(status: &AgentStatus) -> Assessment {
    let mut reasons = Vec::new();
    let mut add = |level, why: String| reasons.push((level, why));

    match status.mfa.state {
        MfaState::NotRequired | MfaState::Enrolled => {}
        MfaState::NotSetUp => add(Overall::ActionNeeded, "MFA is not set up".into()),
        MfaState::InProgress => add(Overall::ActionNeeded, "MFA setup is not finished".into()),
        MfaState::Error => add(
            Overall::Error,
            format!(
                "MFA error: {}",
                status.mfa.detail.as_deref().unwrap_or("unknown cause")
            ),
        ),
    }
    // A problem's words and next step; an older agent's detail otherwise.
    let said = |problem: Option<&Problem>, detail: &str| match problem {
        Some(p) => p.sentence(),
        None => detail.to_owned(),
    };
    match status.clock.state {
        ClockState::Synced => {}
        ClockState::Skewed => add(
            Overall::ActionNeeded,
            said(status.clock.problem.as_ref(), &status.clock.detail),
        ),
        ClockState::Unknown if status.clock.checked_at.is_some() => add(
            Overall::ActionNeeded,
            said(status.clock.problem.as_ref(), &status.clock.detail),
        ),
        ClockState::Unknown => {}
    }
    if status.network.state == NetworkState::Offline {
        if status.network.problems.is_empty() {
            add(Overall::ActionNeeded, status.network.detail.clone());
        }
        for problem in &status.network.problems {
            add(Overall::ActionNeeded, said(Some(problem), ""));
        }
    }
    // What IT's validator said is for IT: under Details, not the reason.
    if status.policy.error.is_some() {
        add(Overall::ActionNeeded, Cause::PolicyRejected.sentence());
    }
    // A failed install or a rollback is broken until IT ships a fix; a feed
    // that could not be read, or offers only an older release, is a
    // warning (every device at once, and the next check may mend it).
    match status.update.state {
        UpdateState::UpdateRequired => add(
            Overall::ActionNeeded,
            said(status.update.problem.as_ref(), &status.update.detail),
        ),
        UpdateState::Failed => add(
            Overall::Error,
            said(status.update.problem.as_ref(), &status.update.detail),
        ),
        _ => {
            if let Some(problem) = &status.update.problem {
                add(Overall::ActionNeeded, problem.sentence());
            }
        }
    }
    // State that is not saved is lost at the next restart: broken until the
    // disk (or whoever fills it) is dealt with.
    for failure in &status.storage.failures {
        add(Overall::Error, failure.message.clone());
    }
    // IT no longer hears from this device, and only IT can mend it.
    if let Some(error) = &status.reporting.credential_error {
        add(Overall::Error, error.message.clone());
    }

    reasons.sort_by_key(|r| std::cmp::Reverse(r.0));
    let overall = reasons.first().map_or(Overall::Healthy, |r| r.0);
    Assessment { overall, reasons }
}

/// One line per section in plain words, in the order people read them: what
/// `rampart-agent status` prints and what the app's status window shows.
pub fn section_lines(status: &AgentStatus) -> Vec<(&'static str, String)> {
    let mfa = status.mfa.summary();
    let clock = match status.clock.state {
        ClockState::Synced => format!("In sync: {}", status.clock.detail),
        ClockState::Skewed => format!("Out of sync: {}", status.clock.detail),
        ClockState::Unknown => format!("Unknown: {}", status.clock.detail),
    };
    let network = match status.network.state {
        NetworkState::Online => format!("Online: {}", status.network.detail),
        NetworkState::Offline => format!("Offline: {}", network_words(&status.network)),
        NetworkState::Unknown => format!("Unknown: {}", status.network.detail),
    };
    let mut policy = format!(
        "{}, serial {}, MFA {} ({})",
        status.policy.source.label(),
        status.policy.serial,
        if status.policy.mfa_required {
            "required"
        } else {
            "not required"
        },
        status.policy.provider.label(),
    );
    if let Some(error) = &status.policy.error {
        policy.push_str(&format!("; latest policy rejected: {error}"));
    }
    if let Some(kept) = &status.policy.kept {
        policy.push_str(&format!("; {}", kept.message));
    }
    if let Some(failure) = &status.policy.fetch_error {
        policy.push_str(&format!("; {}", failure.summary()));
    }
    let agent = format!(
        "Rampart {} ({} mode), up {}, pid {}",
        status.agent.version,
        status.agent.mode.label(),
        human_duration(status.agent.uptime_secs.saturating_mul(1000)),
        status.agent.pid,
    );
    let mut lines = vec![
        ("MFA", mfa),
        ("Clock", clock),
        ("Network", network),
        ("Policy", policy),
        ("Agent", agent),
        ("Update", status.update.detail.clone()),
    ];
    // Only when something failed: a healthy disk is not news.
    let storage = &status.storage;
    if !storage.failures.is_empty() || storage.reports_not_queued > 0 {
        let mut words: Vec<String> = storage
            .failures
            .iter()
            .map(|f| format!("{} (details: {})", f.message, f.details))
            .collect();
        if storage.reports_not_queued > 0 {
            words.push(format!(
                "{} report(s) to IT could not be queued; the next one that is tells IT how many",
                storage.reports_not_queued
            ));
        }
        lines.push(("Storage", words.join("; ")));
    }
    if let Some(error) = &status.reporting.credential_error {
        lines.push(("Reports", error.message.clone()));
    }
    if let Some(signin) = &status.mfa.signin {
        lines.insert(1, ("Sign-in", signin.summary()));
    }
    lines
}

/// The network section's failures in the vocabulary's words, or an older
/// agent's detail.
pub fn network_words(network: &NetworkSection) -> String {
    if network.problems.is_empty() {
        return network.detail.clone();
    }
    network
        .problems
        .iter()
        .map(Problem::words)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The raw text behind every problem in the status, by section: what
/// "Details" shows (never the headline).
pub fn problem_details(status: &AgentStatus) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(error) = &status.policy.error {
        out.push(("Policy", error.clone()));
    }
    if let Some(failure) = &status.policy.fetch_error
        && failure.problem.is_some()
    {
        out.push(("Policy", failure.message.clone()));
    }
    for p in &status.network.problems {
        out.push(("Network", p.details.clone()));
    }
    out.extend(
        status
            .clock
            .problem
            .iter()
            .map(|p| ("Clock", p.details.clone())),
    );
    out.extend(
        status
            .update
            .problem
            .iter()
            .map(|p| ("Update", p.details.clone())),
    );
    out.retain(|(_, d)| !d.is_empty());
    out
}

/// "4 min 12 s", "90 s", "2 h 5 min": a duration as a person says it.
pub fn human_duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms} ms"),
        1..=119 => format!("{secs} s"),
        120..=3599 => match secs % 60 {
            0 => format!("{} min", secs / 60),
            s => format!("{} min {s} s", secs / 60),
        },
        _ => match (secs % 3600) / 60 {
            0 => format!("{} h", secs / 3600),
            m => format!("{} h {m} min", secs / 3600),
        },
    }
}

/// "clock is 4 min 12 s fast" / "clock is 90 s slow" from a signed offset.
pub fn describe_offset(offset_ms: i64) -> String {
    let size = human_duration(offset_ms.unsigned_abs());
    match offset_ms {
        0 => "clock is exact".to_owned(),
        o if o > 0 => format!("clock is {size} fast"),
        _ => format!("clock is {size} slow"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> AgentStatus {
        AgentStatus {
            schema: STATUS_SCHEMA,
            overall: Overall::Healthy,
            agent: AgentSection {
                version: Version::new(0, 1, 0),
                mode: AgentMode::Dev,
                pid: 42,
                started_at: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
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
                state: ClockState::Synced,
                offset_ms: Some(12),
                uncertainty_ms: Some(1),
                max_skew_ms: 30_000,
                server: Some("127.0.0.1:123".into()),
                checked_at: DateTime::from_timestamp(1_795_000_001, 0),
                detail: "clock is 12 ms fast".into(),
                source: Some(ClockSource::Ntp),
                problem: None,
            },
            network: NetworkSection {
                state: NetworkState::Online,
                checked_at: None,
                detail: "online".into(),
                problems: Vec::new(),
            },
            mfa: MfaSection {
                state: MfaState::Enrolled,
                provider: ProviderKind::Totp,
                detail: None,
                signin: None,
            },
            update: UpdateSection {
                state: UpdateState::NotChecked,
                current_version: Version::new(0, 1, 0),
                min_version: None,
                detail: "meets the policy".into(),
                problem: None,
                offered_version: None,
            },
            storage: StorageSection::default(),
            reporting: ReportingSection::default(),
            mfa_users: Vec::new(),
        }
    }

    #[test]
    fn each_user_sees_their_own_mfa_and_its_verdict() {
        use crate::user::UserId;
        let mut s = sample();
        let ada = UserMfa {
            user: "ada".into(),
            id: UserId::Uid(1000),
            mfa: s.mfa.clone(),
        };
        let bob = UserMfa {
            user: "bob".into(),
            id: UserId::Uid(1001),
            mfa: MfaSection {
                state: MfaState::NotSetUp,
                provider: ProviderKind::Totp,
                detail: None,
                signin: None,
            },
        };
        s.mfa_users = vec![ada, bob];
        assert_eq!(
            s.as_seen_by(&UserId::Uid(1000)),
            None,
            "ada's is the status"
        );
        assert_eq!(s.as_seen_by(&UserId::Uid(0)), None, "root has no entry");
        let for_bob = s.as_seen_by(&UserId::Uid(1001)).unwrap();
        assert_eq!(for_bob.mfa.state, MfaState::NotSetUp);
        assert_eq!(for_bob.overall, Overall::ActionNeeded);
        assert_eq!(
            serde_json::to_value(&s.mfa_users[1]).unwrap(),
            serde_json::json!({"user": "bob", "uid": 1001, "state": "not_set_up", "provider": "totp", "detail": null})
        );
    }

    #[test]
    fn healthy_when_everything_is_fine() {
        let a = assess(&sample());
        assert_eq!(a.overall, Overall::Healthy);
        assert!(a.reasons.is_empty());
    }

    #[test]
    fn each_section_moves_the_verdict() {
        type Change = fn(&mut AgentStatus);
        let cases: Vec<(Change, Overall)> = vec![
            (|s| s.mfa.state = MfaState::NotSetUp, Overall::ActionNeeded),
            (
                |s| s.mfa.state = MfaState::InProgress,
                Overall::ActionNeeded,
            ),
            (|s| s.mfa.state = MfaState::Error, Overall::Error),
            (|s| s.mfa.state = MfaState::NotRequired, Overall::Healthy),
            (
                |s| s.clock.state = ClockState::Skewed,
                Overall::ActionNeeded,
            ),
            (
                |s| s.clock.state = ClockState::Unknown,
                Overall::ActionNeeded,
            ),
            (
                |s| {
                    s.clock.state = ClockState::Unknown;
                    s.clock.checked_at = None;
                },
                Overall::Healthy,
            ),
            (
                |s| s.network.state = NetworkState::Offline,
                Overall::ActionNeeded,
            ),
            (
                |s| s.network.state = NetworkState::Unknown,
                Overall::Healthy,
            ),
            (
                |s| s.policy.error = Some("bad signature".into()),
                Overall::ActionNeeded,
            ),
            (
                |s| {
                    s.policy.fetch_error = Some(FetchFailure {
                        message: "the server answered HTTP 404".into(),
                        at: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
                        problem: None,
                    })
                },
                Overall::Healthy,
            ),
            (
                |s| s.update.state = UpdateState::UpdateRequired,
                Overall::ActionNeeded,
            ),
            (|s| s.update.state = UpdateState::Failed, Overall::Error),
        ];
        for (i, (change, want)) in cases.into_iter().enumerate() {
            let mut s = sample();
            change(&mut s);
            assert_eq!(assess(&s).overall, want, "case {i}");
        }
    }

    #[test]
    fn worst_reason_first() {
        let mut s = sample();
        s.clock.state = ClockState::Skewed;
        s.mfa.state = MfaState::Error;
        s.mfa.detail = Some("state file unreadable".into());
        let a = assess(&s);
        assert_eq!(a.overall, Overall::Error);
        assert_eq!(a.reasons[0].1, "MFA error: state file unreadable");
        assert_eq!(a.reasons[1].0, Overall::ActionNeeded);
    }

    #[test]
    fn section_lines_say_state_and_figure() {
        let mut s = sample();
        s.mfa.state = MfaState::NotSetUp;
        s.mfa.detail = Some("open the Rampart app to set it up".into());
        s.policy.error = Some("signature does not match".into());
        let lines = section_lines(&s);
        let names: Vec<_> = lines.iter().map(|l| l.0).collect();
        assert_eq!(
            names,
            ["MFA", "Clock", "Network", "Policy", "Agent", "Update"]
        );
        assert_eq!(lines[0].1, "Not set up: open the Rampart app to set it up");
        assert_eq!(lines[1].1, "In sync: clock is 12 ms fast");
        assert_eq!(
            lines[3].1,
            "built-in default, serial 0, MFA required (authenticator app (TOTP)); latest policy rejected: signature does not match"
        );
        assert_eq!(lines[4].1, "Rampart 0.1.0 (dev mode), up 5 s, pid 42");

        s.policy.error = None;
        s.policy.fetch_error = Some(FetchFailure {
            message: "the server answered HTTP 404 for https://it.example/policy.json".into(),
            at: DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            problem: None,
        });
        assert_eq!(
            section_lines(&s)[3].1,
            "built-in default, serial 0, MFA required (authenticator app (TOTP)); \
             last policy poll failed at 2026-11-18 11:06 UTC: \
             the server answered HTTP 404 for https://it.example/policy.json"
        );
    }

    /// Status JSON from an agent before `clock.source` decodes (as `None`);
    /// the new field has a fixed shape; a source from a newer agent is
    /// `Other`, not an error.
    #[test]
    fn clock_section_with_and_without_source() {
        let old: ClockSection = serde_json::from_str(
            r#"{"state": "synced", "offset_ms": 12, "uncertainty_ms": 1, "max_skew_ms": 30000,
                "server": "127.0.0.1:123", "checked_at": "2026-11-18T11:06:40Z",
                "detail": "clock is 12 ms fast"}"#,
        )
        .unwrap();
        assert_eq!(old.source, None);
        assert_eq!(old.offset_ms, Some(12));

        let new: ClockSection = serde_json::from_str(
            r#"{"state": "skewed", "offset_ms": 600000, "uncertainty_ms": 1004,
                "max_skew_ms": 30000, "server": "policy.example.com",
                "checked_at": null, "detail": "clock is 10 min fast", "source": "http_date"}"#,
        )
        .unwrap();
        assert_eq!(new.source, Some(ClockSource::HttpDate));
        assert_eq!(
            serde_json::to_value(ClockSource::Ntp).unwrap(),
            serde_json::json!("ntp")
        );
        let future: ClockSection = serde_json::from_str(
            r#"{"state": "unknown", "offset_ms": null, "uncertainty_ms": null,
                "max_skew_ms": 30000, "server": null, "checked_at": null,
                "detail": "x", "source": "gps"}"#,
        )
        .unwrap();
        assert_eq!(future.source, Some(ClockSource::Other));
    }

    /// Status JSON is a protocol: what an agent from before `fetch_error`
    /// sent still decodes, and the new field has a fixed shape.
    #[test]
    fn policy_section_without_fetch_error_still_decodes() {
        let old: PolicySection = serde_json::from_str(
            r#"{"source": "remote", "serial": 14, "fetched_at": "2026-11-18T11:06:40Z",
                "error": null, "mfa_required": true, "provider": "totp"}"#,
        )
        .unwrap();
        assert_eq!(old.fetch_error, None);
        assert_eq!(old.kept, None);
        assert_eq!((old.source, old.serial), (PolicySource::Remote, 14));

        let new: PolicySection = serde_json::from_str(
            r#"{"source": "remote", "serial": 14, "fetched_at": null, "error": null,
                "fetch_error": {"message": "the server answered HTTP 404", "at": "2026-11-18T11:06:40Z"},
                "mfa_required": true, "provider": "totp"}"#,
        )
        .unwrap();
        let failure = new.fetch_error.unwrap();
        assert_eq!(failure.message, "the server answered HTTP 404");
        assert_eq!(
            failure.at,
            DateTime::from_timestamp(1_795_000_000, 0).unwrap()
        );
    }

    /// Status JSON from an agent before `kept` decodes (as `None`), and the
    /// field has a fixed shape and its own words in the Policy line.
    #[test]
    fn policy_section_with_and_without_kept() {
        let old: PolicySection = serde_json::from_str(
            r#"{"source": "managed_file", "serial": 5, "fetched_at": null, "error": null,
                "fetch_error": null, "mfa_required": true, "provider": "totp"}"#,
        )
        .unwrap();
        assert_eq!(old.kept, None);

        let new: PolicySection = serde_json::from_str(
            r#"{"source": "last_known_good", "serial": 5, "fetched_at": null, "error": null,
                "fetch_error": null,
                "kept": {"serial": 5, "message": "managed file rejected: keeping serial 5"},
                "mfa_required": true, "provider": "totp"}"#,
        )
        .unwrap();
        let kept = new.kept.clone().unwrap();
        assert_eq!(kept.serial, 5);
        let mut s = sample();
        s.policy = new;
        assert_eq!(
            section_lines(&s)[3].1,
            "last known good copy, serial 5, MFA required (authenticator app (TOTP)); \
             managed file rejected: keeping serial 5"
        );
    }

    /// Status JSON from an agent before `storage` decodes (as empty); a
    /// failed write makes the verdict `error` and has its own line.
    #[test]
    fn storage_failures_decode_move_the_verdict_and_have_a_line() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json.as_object_mut().unwrap().remove("storage");
        let old: AgentStatus = serde_json::from_value(json).unwrap();
        assert_eq!(old.storage, StorageSection::default());
        assert_eq!(
            section_lines(&old).len(),
            6,
            "no Storage line when all is well"
        );

        let new: StorageSection = serde_json::from_str(
            r#"{"failures": [{"state": "mfa_state", "path": "/var/lib/rampart/mfa/u1000.json",
                "message": "Rampart could not save the MFA setup: the disk is full.",
                "details": "No space left on device (os error 28)",
                "at": "2026-11-18T11:06:40Z"}],
                "reports_not_queued": 2}"#,
        )
        .unwrap();
        let mut s = sample();
        s.storage = new;
        let a = assess(&s);
        assert_eq!(a.overall, Overall::Error);
        assert_eq!(
            a.reasons[0].1,
            "Rampart could not save the MFA setup: the disk is full."
        );
        let lines = section_lines(&s);
        assert_eq!(lines[6].0, "Storage");
        assert_eq!(
            lines[6].1,
            "Rampart could not save the MFA setup: the disk is full. \
             (details: No space left on device (os error 28)); \
             2 report(s) to IT could not be queued; the next one that is tells IT how many"
        );
    }

    /// Status JSON from an agent before `reporting` decodes (nothing to
    /// say); a refused credential makes the verdict `error`, in its words.
    #[test]
    fn a_refused_credential_decodes_moves_the_verdict_and_has_a_line() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json.as_object_mut().unwrap().remove("reporting");
        let old: AgentStatus = serde_json::from_value(json).unwrap();
        assert_eq!(old.reporting, ReportingSection::default());
        assert_eq!(assess(&old).overall, Overall::Healthy);

        let new: ReportingSection = serde_json::from_str(
            r#"{"credential_error": {"message": "the report collector refused this device's credential (HTTP 401): ask IT to check the deployment secret; reports wait on this device until then",
                "http_status": 401, "at": "2026-11-18T11:06:40Z"}}"#,
        )
        .unwrap();
        let mut s = sample();
        s.reporting = new;
        let a = assess(&s);
        assert_eq!(a.overall, Overall::Error);
        assert!(a.reasons[0].1.starts_with("the report collector refused"));
        let lines = section_lines(&s);
        assert_eq!(lines.last().unwrap().0, "Reports");
        assert!(
            lines
                .last()
                .unwrap()
                .1
                .contains("ask IT to check the deployment secret")
        );
    }

    /// Issue 17: `reporting.last_delivered_at`; older agents' JSON (and
    /// this agent's before a delivery) leaves it out.
    #[test]
    fn last_delivered_at_is_optional_both_ways() {
        let old: ReportingSection = serde_json::from_str(r#"{"credential_error": null}"#).unwrap();
        assert_eq!(old.last_delivered_at, None);
        let new: ReportingSection = serde_json::from_str(
            r#"{"credential_error": null, "last_delivered_at": "2026-11-18T11:06:40Z"}"#,
        )
        .unwrap();
        assert_eq!(
            new.last_delivered_at.map(|t| t.to_rfc3339()),
            Some("2026-11-18T11:06:40+00:00".to_owned())
        );
        assert_eq!(
            serde_json::to_value(&new).unwrap()["last_delivered_at"],
            "2026-11-18T11:06:40Z"
        );
    }

    #[test]
    fn offsets_in_words() {
        assert_eq!(describe_offset(252_000), "clock is 4 min 12 s fast");
        assert_eq!(describe_offset(-90_400), "clock is 90 s slow");
        assert_eq!(describe_offset(-300_000), "clock is 5 min slow");
        assert_eq!(describe_offset(7_500_000), "clock is 2 h 5 min fast");
        assert_eq!(describe_offset(12), "clock is 12 ms fast");
        assert_eq!(describe_offset(0), "clock is exact");
    }

    #[test]
    fn json_shape_is_pinned() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "schema": 1,
                "overall": "healthy",
                "agent": {"version": "0.1.0", "mode": "dev", "pid": 42,
                          "started_at": "2026-11-18T11:06:40Z", "uptime_secs": 5},
                "policy": {"source": "builtin", "serial": 0, "fetched_at": null, "error": null,
                           "fetch_error": null, "kept": null, "mfa_required": true, "provider": "totp"},
                "clock": {"state": "synced", "offset_ms": 12, "uncertainty_ms": 1, "max_skew_ms": 30000,
                          "server": "127.0.0.1:123", "checked_at": "2026-11-18T11:06:41Z",
                          "detail": "clock is 12 ms fast", "source": "ntp"},
                "network": {"state": "online", "checked_at": null, "detail": "online"},
                "mfa": {"state": "enrolled", "provider": "totp", "detail": null},
                "update": {"state": "not_checked", "current_version": "0.1.0", "min_version": null,
                           "detail": "meets the policy"},
                "storage": {"failures": [], "reports_not_queued": 0},
                "reporting": {"credential_error": null}
            })
        );
    }

    #[test]
    fn problems_read_in_the_vocabulary_with_raw_text_only_under_details() {
        use crate::cause::{Cause, Endpoint};
        let mut s = sample();
        s.network.state = NetworkState::Offline;
        s.network.detail = "cannot reach policy server (p.example): connection refused: \
                            127.0.0.1:443: Connection refused (os error 111)"
            .into();
        s.network.problems = vec![Problem::new(
            Cause::Refused {
                endpoint: Endpoint::PolicyServer,
                host: "p.example".into(),
            },
            "connection refused: 127.0.0.1:443: Connection refused (os error 111)",
        )];
        let a = assess(&s);
        assert_eq!(
            a.reasons,
            [(
                Overall::ActionNeeded,
                "p.example (policy server) refused the connection. Tell IT that p.example is \
                 not answering Rampart; nothing on this computer needs to change."
                    .to_owned()
            )]
        );
        let network = section_lines(&s)
            .into_iter()
            .find(|(name, _)| *name == "Network")
            .unwrap()
            .1;
        assert_eq!(
            network,
            "Offline: p.example (policy server) refused the connection."
        );
        assert_eq!(
            problem_details(&s),
            [(
                "Network",
                "connection refused: 127.0.0.1:443: Connection refused (os error 111)".to_owned()
            )]
        );
    }
}
