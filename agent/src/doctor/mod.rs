//! `rampart-agent doctor`: facts gathered by the CLI (`cli::doctor`) in,
//! check results out. [`evaluate`] is pure; [`probe`] is the only I/O here
//! (a staged DNS → TCP → TLS → HTTP probe of one URL).

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use rampart_shared::platform::Os;
use rampart_shared::policy::Policy;
use rampart_shared::status::{
    AgentMode, AgentStatus, ClockSection, ClockState, MfaState, PolicySource, UpdateState,
};
use serde::Serialize;

/// Free space below this is a warning, below [`DISK_FAIL_BYTES`] a failure.
pub const DISK_WARN_BYTES: u64 = 100 * 1024 * 1024;
pub const DISK_FAIL_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub result: Verdict,
    /// What was measured, in a few words.
    pub figure: String,
    /// What to do about it; empty when nothing is needed.
    pub fix: String,
}

/// `{"checks": [...], "exit": N}`: the `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<CheckResult>,
    pub exit: u8,
}

impl Report {
    pub fn new(checks: Vec<CheckResult>) -> Self {
        let exit = exit_code(&checks);
        Self { checks, exit }
    }

    /// One line per check: `PASS  name  figure  fix`.
    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let line = format!(
                "{}  {:<width$}  {}  {}",
                c.result.label(),
                c.name,
                c.figure,
                c.fix
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// 0 all pass, 1 any warning, 2 any failure.
pub fn exit_code(checks: &[CheckResult]) -> u8 {
    match checks.iter().map(|c| c.result).max() {
        Some(Verdict::Fail) => 2,
        Some(Verdict::Warn) => 1,
        _ => 0,
    }
}

mod probe;
use probe::probe_check;
pub use probe::{Failure, Probe, ProbeResult, Stage, answer_verdict, http_status_words, probe};

/// The log directory as doctor found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDir {
    Writable,
    /// Not there: the agent creates it when it first logs to files.
    Missing,
    /// There, but a file could not be created in it (the OS error).
    NotWritable(String),
}

/// A Unix socket's mode and owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketMeta {
    pub mode: u32,
    pub uid: u32,
}

/// What the agent said, when it could be reached.
#[derive(Debug, Clone)]
pub struct AgentFacts {
    pub status: AgentStatus,
    pub policy: Option<Policy>,
}

/// What Duo said to this device's keys (the policy names Duo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuoProbe {
    /// The client could not be set up (the key file, most often).
    NotConfigured(String),
    /// `/ping` did not answer.
    Unreachable(String),
    /// `/ping` answered; `keys` is `/check`'s verdict.
    Checked {
        /// This computer's clock minus Duo's.
        clock_offset_secs: i64,
        keys: Result<(), String>,
    },
}

/// Everything [`evaluate`] looks at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub now: DateTime<Utc>,
    pub socket: PathBuf,
    /// The status and policy, or why the agent could not be asked.
    pub agent: Result<AgentFacts, String>,
    /// `None`: no socket file (or not a Unix platform).
    pub socket_meta: Option<SocketMeta>,
    /// Whether the socket is expected to be the system service's.
    pub expect_system: bool,
    /// Whose socket a dev agent's should be.
    pub current_uid: Option<u32>,
    /// An install config exists: IT manages this machine.
    pub managed: bool,
    /// A `.minisig` sits beside the managed policy file.
    pub managed_file_signed: bool,
    /// The clock measured directly (when the agent could not be asked).
    pub clock_direct: Option<ClockSection>,
    /// `None`: nothing to probe was known.
    pub probes: Vec<Probe>,
    /// `None`: the policy does not name Duo.
    pub duo: Option<DuoProbe>,
    pub state_dir: PathBuf,
    /// Free bytes in the state dir's file system, or why unknown.
    pub free_bytes: Result<u64, String>,
    pub log_dir: PathBuf,
    pub log_state: LogDir,
    /// Why the install config's `extra_ca_file` could not be used (the
    /// probes then trust the system's roots only).
    pub extra_ca_error: Option<String>,
}

fn check(
    name: &str,
    result: Verdict,
    figure: impl Into<String>,
    fix: impl Into<String>,
) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        result,
        figure: figure.into(),
        fix: fix.into(),
    }
}

/// Every check, in a fixed order. No I/O.
pub fn evaluate(f: &Facts) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let agent = f.agent.as_ref().ok();
    let socket = f.socket.display();
    out.push(match &f.agent {
        Ok(a) => check(
            "agent reachable",
            Verdict::Pass,
            format!(
                "{socket}: Rampart {} ({} mode)",
                a.status.agent.version,
                a.status.agent.mode.label()
            ),
            "",
        ),
        Err(why) => check(
            "agent reachable",
            Verdict::Fail,
            format!("{socket}: {why}"),
            format!(
                "start it: {} (service) or `rampart-agent run --dev`",
                Os::current().start_service()
            ),
        ),
    });
    out.push(socket_check(f));
    out.extend(policy_check(f, agent));
    out.push(clock_check(f, agent));
    if let Some(why) = &f.extra_ca_error {
        out.push(check(
            "extra CA",
            Verdict::Fail,
            format!("the install config's extra_ca_file is not usable: {why}"),
            "IT: point extra_ca_file at the PEM certificate of the network's TLS proxy or private CA",
        ));
    }
    for p in &f.probes {
        out.push(probe_check(p));
    }
    // Reachable is not enough: a collector that refuses the credential
    // answers every probe and takes no report.
    if let Some(error) = agent.and_then(|a| a.status.reporting.credential_error.as_ref()) {
        out.push(check(
            "IT reporting credential",
            Verdict::Fail,
            error.message.clone(),
            "IT: install the deployment secret the collector expects (`report_secret_file` in the install config, docs/reporting.md); queued reports go out once it is taken",
        ));
    }
    let totp = agent
        .and_then(|a| a.policy.as_ref())
        .is_some_and(|p| matches!(p.mfa.provider, rampart_shared::policy::Provider::Totp));
    if totp {
        out.push(check(
            "network: MFA provider",
            Verdict::Pass,
            "TOTP: codes are checked on this device, no MFA server to reach",
            "",
        ));
    }
    if let Some(duo) = &f.duo {
        out.push(duo_check(duo));
    }
    out.push(match agent {
        Some(a) => {
            let mfa = &a.status.mfa;
            let (verdict, fix) = match mfa.state {
                MfaState::Enrolled | MfaState::NotRequired => (Verdict::Pass, ""),
                MfaState::NotSetUp | MfaState::InProgress => {
                    (Verdict::Warn, "open the Rampart app and finish MFA setup")
                }
                MfaState::Error => (
                    Verdict::Fail,
                    "collect `rampart-agent diagnose` and send it to IT",
                ),
            };
            check("MFA", verdict, mfa.summary(), fix)
        }
        None => not_checked("MFA"),
    });
    out.push(match agent {
        Some(a) => {
            let u = &a.status.update;
            match u.state {
                UpdateState::UpdateRequired => check(
                    "version",
                    Verdict::Fail,
                    &u.detail,
                    "install the current Rampart release",
                ),
                UpdateState::Failed => {
                    check("version", Verdict::Fail, &u.detail, "retry the update")
                }
                _ => check("version", Verdict::Pass, &u.detail, ""),
            }
        }
        None => check(
            "version",
            Verdict::Warn,
            format!(
                "Rampart {}; the policy minimum is unknown without the agent",
                rampart_shared::version::Version::current()
            ),
            "start the agent",
        ),
    });
    out.push(disk_check(f));
    out.push(log_check(f, agent.map(|a| a.status.agent.mode)));
    out
}

/// The log dir: a missing one is expected of a dev or built-in agent (a
/// built-in one never writes files; a dev one creates it when it starts),
/// and of a service that has not started yet only a warning.
fn log_check(f: &Facts, mode: Option<AgentMode>) -> CheckResult {
    const NAME: &str = "log dir";
    let dir = f.log_dir.display();
    let service = mode.map_or(f.expect_system, |m| m == AgentMode::System);
    let fix_owner = || {
        format!(
            "run doctor as the agent's user ({} for the service), or fix the directory's owner",
            Os::current().administrator()
        )
    };
    match &f.log_state {
        LogDir::Writable => check(NAME, Verdict::Pass, format!("{dir} is writable"), ""),
        LogDir::Missing if !service => check(
            NAME,
            Verdict::Pass,
            format!(
                "{dir} does not exist yet: a dev agent creates it when it starts, a built-in one needs none"
            ),
            "",
        ),
        LogDir::Missing => check(
            NAME,
            Verdict::Warn,
            format!("{dir} does not exist yet (the service creates it when it starts)"),
            fix_owner(),
        ),
        LogDir::NotWritable(why) => check(
            NAME,
            Verdict::Warn,
            format!("{dir}: no file can be created there ({why})"),
            fix_owner(),
        ),
    }
}

/// Whether Duo takes this device's keys, and which of the two usual causes
/// it is when it does not: the clock, or the keys.
fn duo_check(probe: &DuoProbe) -> CheckResult {
    const NAME: &str = "Duo keys";
    match probe {
        DuoProbe::NotConfigured(why) => check(
            NAME,
            Verdict::Fail,
            why.clone(),
            format!(
                "run doctor as {admin} (the key file is {admin}'s only), or reinstall with `rampart-installer install --duo-secret-key FILE`",
                admin = Os::current().administrator()
            ),
        ),
        DuoProbe::Unreachable(why) => check(
            NAME,
            Verdict::Fail,
            why.clone(),
            "see the network checks above",
        ),
        DuoProbe::Checked {
            clock_offset_secs,
            keys,
        } => {
            let clock = format!(
                "this {} compared with Duo's",
                rampart_shared::status::describe_offset(clock_offset_secs.saturating_mul(1000))
            );
            let skewed =
                clock_offset_secs.unsigned_abs() > crate::mfa::error::DUO_CLOCK_TOLERANCE_SECS;
            match keys {
                Ok(()) => check(NAME, Verdict::Pass, format!("accepted; {clock}"), ""),
                Err(why) if skewed => check(
                    NAME,
                    Verdict::Fail,
                    format!("{why}; {clock}"),
                    "set the clock right (see the clock check), then run doctor again",
                ),
                Err(why) => check(
                    NAME,
                    Verdict::Fail,
                    format!("{why}; {clock}, so the clock is not the cause"),
                    "IT: check the policy's integration_key and the secret key file against the Duo Admin Panel",
                ),
            }
        }
    }
}

fn not_checked(name: &str) -> CheckResult {
    check(
        name,
        Verdict::Warn,
        "not checked: the agent could not be asked",
        "start the agent, then run doctor again",
    )
}

fn socket_check(f: &Facts) -> CheckResult {
    let Some(meta) = f.socket_meta else {
        return check(
            "socket permissions",
            if f.agent.is_ok() {
                Verdict::Pass
            } else {
                Verdict::Warn
            },
            format!("{}: no socket file to inspect", f.socket.display()),
            if f.agent.is_ok() {
                ""
            } else {
                "start the agent"
            },
        );
    };
    let mode = meta.mode & 0o777;
    let (want_mode, want_uid) = if f.expect_system {
        (0o666, Some(0))
    } else {
        (0o600, f.current_uid)
    };
    let figure = format!("mode {mode:o}, owner uid {}", meta.uid);
    if mode == want_mode && want_uid.is_none_or(|u| u == meta.uid) {
        check("socket permissions", Verdict::Pass, figure, "")
    } else {
        let owner = want_uid.map_or("the agent's user".to_owned(), |u| format!("uid {u}"));
        check(
            "socket permissions",
            Verdict::Fail,
            figure,
            format!(
                "expected mode {want_mode:o} owned by {owner}; restart the agent so it recreates the socket"
            ),
        )
    }
}

fn policy_check(f: &Facts, agent: Option<&AgentFacts>) -> Vec<CheckResult> {
    let Some(a) = agent else {
        return vec![not_checked("policy")];
    };
    let p = &a.status.policy;
    let signature = match p.source {
        PolicySource::Builtin => "built in",
        PolicySource::Remote | PolicySource::LastKnownGood => "signature verified",
        PolicySource::ManagedFile if f.managed_file_signed => "signature verified",
        PolicySource::ManagedFile => "unsigned (allowed by the install config)",
    };
    let age = match p.fetched_at {
        Some(at) => format!(
            ", obtained {} ago",
            rampart_shared::status::human_duration(
                u64::try_from((f.now - at).num_milliseconds()).unwrap_or(0)
            )
        ),
        None => String::new(),
    };
    let figure = format!(
        "{}, serial {}, {signature}{age}",
        p.source.label(),
        p.serial
    );
    let mut out = Vec::new();
    out.push(if let Some(error) = &p.error {
        check(
            "policy",
            Verdict::Warn,
            format!("{figure}; latest rejected: {error}"),
            "IT: fix and re-sign the policy; the one in force stays",
        )
    } else if p.source == PolicySource::Builtin && f.managed {
        check(
            "policy",
            Verdict::Warn,
            figure,
            "this machine is managed but runs the built-in policy: check the policy URL and keys in the install config",
        )
    } else {
        check("policy", Verdict::Pass, figure, "")
    });
    if let Some(kept) = &p.kept {
        out.push(check(
            "policy source",
            Verdict::Warn,
            kept.message.clone(),
            "IT: put a signed policy.json with a serial of at least this one back in place; to withdraw the policy on purpose, run `rampart-agent policy reset` as an administrator",
        ));
    }
    if let Some(failure) = &p.fetch_error {
        out.push(check(
            "policy poll",
            Verdict::Warn,
            failure.summary(),
            "IT: make the policy URL in the install config serve the signed policy; the one in force stays",
        ));
    }
    out
}

fn clock_check(f: &Facts, agent: Option<&AgentFacts>) -> CheckResult {
    let (section, via) = match (agent, &f.clock_direct) {
        (Some(a), _) if a.status.clock.checked_at.is_some() => (&a.status.clock, "agent"),
        (_, Some(direct)) => (direct, "measured now"),
        (Some(a), None) => (&a.status.clock, "agent"),
        (None, None) => return not_checked("clock"),
    };
    let figure = format!("{} ({via})", section.detail);
    match section.state {
        ClockState::Synced => check("clock", Verdict::Pass, figure, ""),
        ClockState::Skewed => check(
            "clock",
            Verdict::Fail,
            figure,
            "turn on automatic time (NTP) in the system settings; codes fail when the clock is off",
        ),
        ClockState::Unknown => check(
            "clock",
            Verdict::Warn,
            figure,
            if section.detail.starts_with(crate::clock::DISAGREE) {
                "IT: fix or remove the wrong NTP server in the policy"
            } else if section.detail.contains(crate::clock::BACK_OFF) {
                "wait until the server may be asked again, or ask IT to add another NTP server to the policy"
            } else {
                "no time server answered: check UDP port 123 to the policy's NTP servers"
            },
        ),
    }
}

fn disk_check(f: &Facts) -> CheckResult {
    let dir = f.state_dir.display();
    match f.free_bytes {
        Ok(free) => {
            let figure = format!("{} free in {dir}", human_bytes(free));
            if free < DISK_FAIL_BYTES {
                check(
                    "disk space",
                    Verdict::Fail,
                    figure,
                    "free disk space: the agent cannot save state",
                )
            } else if free < DISK_WARN_BYTES {
                check("disk space", Verdict::Warn, figure, "free some disk space")
            } else {
                check("disk space", Verdict::Pass, figure, "")
            }
        }
        Err(ref why) => check(
            "disk space",
            Verdict::Warn,
            format!("{dir}: {why}"),
            "run doctor as the agent's user",
        ),
    }
}

pub fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= 1024 * MIB {
        format!("{:.1} GiB", n as f64 / (1024 * MIB) as f64)
    } else {
        format!("{} MiB", n / MIB)
    }
}

#[cfg(test)]
mod tests;
