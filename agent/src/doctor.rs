//! `rampart-agent doctor`: facts gathered by the CLI (`cli::doctor`) in,
//! check results out. [`evaluate`] is pure; [`probe`] is the only I/O here
//! (a staged DNS → TCP → TLS → HTTP probe of one URL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::platform::Os;
use rampart_shared::policy::Policy;
use rampart_shared::status::{
    AgentMode, AgentStatus, ClockSection, ClockState, MfaState, PolicySource, UpdateState,
};
use serde::Serialize;

use crate::network::Endpoint;

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

pub use crate::network::{Failure, Stage};

/// The outcome of probing one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The server answered with this HTTP status.
    Answered { addr: SocketAddr, status: u16 },
    /// The exchange failed; its stage is `Failure::stage`.
    Failed(Failure),
}

/// One of the endpoints the agent's network check reaches
/// ([`crate::network::targets`]), probed over HTTP(S).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub endpoint: Endpoint,
    pub url: String,
    pub result: ProbeResult,
}

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

/// An HTTP status in words: "HTTP 501 (Not Implemented)".
pub fn http_status_words(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("HTTP {status} ({reason})"),
        None => format!("HTTP {status}"),
    }
}

/// Whether an endpoint's HTTP answer is what the device needs from it, and
/// the next step when it is not. Doctor probes with `HEAD` and no
/// credential: a collector that asks for the deployment secret (401, 403)
/// or takes only `POST` (405) is there and working; the agent's own answer
/// from it is the "IT reporting credential" check.
pub fn answer_verdict(endpoint: Endpoint, status: u16) -> (Verdict, &'static str) {
    let success = (200..300).contains(&status) || status == 304;
    match endpoint {
        Endpoint::PolicyServer if success => (Verdict::Pass, ""),
        Endpoint::PolicyServer => (
            Verdict::Fail,
            "the server is reachable but does not serve the policy document: IT must check the policy URL",
        ),
        // Duo answers its API's paths; any answer shows it is there (the
        // "Duo keys" check asks it properly).
        Endpoint::Duo => (Verdict::Pass, ""),
        Endpoint::Reporting if status < 400 || matches!(status, 401 | 403 | 405) => {
            (Verdict::Pass, "")
        }
        Endpoint::Reporting => (
            Verdict::Fail,
            "the report collector is reachable but failing: IT must check the collector (its log, and that it takes POST at this URL); reports wait on this device until then",
        ),
        Endpoint::OfflineGuide if status < 400 => (Verdict::Pass, ""),
        Endpoint::OfflineGuide => (
            Verdict::Fail,
            "the employee cannot open the offline-access guide: IT must check links.offline_guide_url in the policy",
        ),
    }
}

fn probe_check(p: &Probe) -> CheckResult {
    let name = format!("network: {}", p.endpoint.label());
    match &p.result {
        ProbeResult::Answered { addr, status } => {
            let (verdict, fix) = answer_verdict(p.endpoint, *status);
            let figure = if verdict == Verdict::Pass {
                format!("{} ({addr}): {}", p.url, http_status_words(*status))
            } else {
                format!("{} ({addr}) answered {}", p.url, http_status_words(*status))
            };
            check(&name, verdict, figure, fix)
        }
        ProbeResult::Failed(failure) => {
            // The vocabulary's words and next step; the stage and the raw
            // text after them, for whoever reads a support bundle.
            let host = crate::network::url_host_port(&p.url)
                .map(|(host, port)| crate::network::display_host(&host, port))
                .unwrap_or_else(|| p.url.clone());
            let cause = failure.cause_at(p.endpoint, host);
            check(
                &name,
                Verdict::Fail,
                format!(
                    "{} ({}: {} stage: {failure})",
                    cause.words(),
                    p.url,
                    failure.stage().label()
                ),
                cause.next_step(),
            )
        }
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

/// Probes `url` stage by stage: DNS, TCP, then TLS and HTTP with a HEAD
/// request (reqwest, rustls/ring), trusting the system's roots and
/// `extra_roots` ([`crate::network::extra_roots`]). Each stage within
/// `timeout`.
pub async fn probe(
    url: &str,
    timeout: Duration,
    extra_roots: &[reqwest::Certificate],
) -> ProbeResult {
    let failed = ProbeResult::Failed;
    let Some((host, port)) = crate::network::url_host_port(url) else {
        return failed(Failure::Dns(format!("\"{url}\" is not an http(s) URL")));
    };
    let lookup =
        tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => return failed(Failure::Dns(e.to_string())),
        Err(_) => {
            return failed(Failure::Dns(format!(
                "no answer within {} s",
                timeout.as_secs()
            )));
        }
    };
    let Some(&first) = addrs.first() else {
        return failed(Failure::Dns(format!("{host} has no addresses")));
    };
    let mut reached = None;
    let mut last = Failure::Tcp(first.to_string());
    for addr in &addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {
                reached = Some(*addr);
                break;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Failure::Refused(format!("{addr}: {e}"));
            }
            Ok(Err(e)) => last = Failure::Tcp(format!("{addr}: {e}")),
            Err(_) => last = Failure::Timeout(timeout),
        }
    }
    let Some(addr) = reached else {
        return failed(last);
    };
    let client = match crate::network::client_at(
        &host,
        addr,
        crate::network::Timeouts {
            connect: timeout,
            total: timeout * 2,
        },
        extra_roots,
        concat!("rampart-agent-doctor/", env!("CARGO_PKG_VERSION")),
    ) {
        Ok(c) => c,
        Err(e) => return failed(Failure::Tls(format!("cannot set up TLS: {e}"))),
    };
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    match client.head(url).send().await {
        Ok(response) => ProbeResult::Answered {
            addr,
            status: response.status().as_u16(),
        },
        Err(e) => {
            let detail = crate::error_chain(&e);
            match crate::network::certificate_refusal(&e) {
                Some(dates) => failed(
                    crate::network::with_issuer(
                        Failure::Certificate {
                            dates,
                            detail,
                            issuer: None,
                        },
                        &host,
                        addr,
                        timeout,
                    )
                    .await,
                ),
                // TCP worked a moment ago: a failure while connecting is
                // the handshake.
                None if e.is_connect() && https => failed(Failure::Tls(detail)),
                None => failed(Failure::Http(detail)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Core;

    fn facts() -> Facts {
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let mut status = Core::fresh_status(AgentMode::Dev, now);
        status.mfa.state = MfaState::Enrolled;
        status.clock.state = ClockState::Synced;
        status.clock.checked_at = Some(now);
        status.clock.detail = "clock is 12 ms fast".into();
        Facts {
            now,
            socket: "/run/user/1000/agent.sock".into(),
            agent: Ok(AgentFacts {
                status,
                policy: Some(Policy::default()),
            }),
            socket_meta: Some(SocketMeta {
                mode: 0o140600,
                uid: 1000,
            }),
            expect_system: false,
            current_uid: Some(1000),
            managed: false,
            managed_file_signed: false,
            clock_direct: None,
            probes: vec![],
            duo: None,
            state_dir: "/var/lib/rampart".into(),
            free_bytes: Ok(5 * 1024 * 1024 * 1024),
            log_dir: "/var/log/rampart".into(),
            log_state: LogDir::Writable,
            extra_ca_error: None,
        }
    }

    #[test]
    fn duo_keys_name_the_clock_or_the_keys() {
        let mut f = facts();
        f.duo = Some(DuoProbe::Checked {
            clock_offset_secs: 2,
            keys: Ok(()),
        });
        let c = get(&evaluate(&f), "Duo keys").clone();
        assert_eq!(c.result, Verdict::Pass);
        assert_eq!(
            c.figure,
            "accepted; this clock is 2 s fast compared with Duo's"
        );

        let refused =
            || Err("Duo refused the request: Invalid signature (code 40103, HTTP 401)".into());
        f.duo = Some(DuoProbe::Checked {
            clock_offset_secs: -400,
            keys: refused(),
        });
        let c = get(&evaluate(&f), "Duo keys").clone();
        assert_eq!(c.result, Verdict::Fail);
        assert!(
            c.figure
                .ends_with("clock is 6 min 40 s slow compared with Duo's"),
            "{}",
            c.figure
        );
        assert!(c.fix.starts_with("set the clock right"), "{}", c.fix);

        f.duo = Some(DuoProbe::Checked {
            clock_offset_secs: 0,
            keys: refused(),
        });
        let c = get(&evaluate(&f), "Duo keys").clone();
        assert!(
            c.figure.ends_with("so the clock is not the cause"),
            "{}",
            c.figure
        );
        assert!(c.fix.contains("integration_key"), "{}", c.fix);
        assert_eq!(exit_code(&evaluate(&f)), 2);
    }

    fn get<'a>(checks: &'a [CheckResult], name: &str) -> &'a CheckResult {
        checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_healthy_device_passes_everything_and_exits_0() {
        let checks = evaluate(&facts());
        for c in &checks {
            assert_eq!(c.result, Verdict::Pass, "{c:?}");
        }
        assert!(
            get(&checks, "network: MFA provider")
                .figure
                .starts_with("TOTP: codes are checked on this device")
        );
        assert_eq!(exit_code(&checks), 0);
        let text = Report::new(checks).render();
        assert!(text.starts_with("PASS  agent reachable"), "{text}");
    }

    #[test]
    fn no_agent_fails_reachability_and_says_what_was_not_checked() {
        let mut f = facts();
        f.agent = Err("the Rampart agent is not running".into());
        f.socket_meta = None;
        f.clock_direct = Some(ClockSection {
            state: ClockState::Unknown,
            detail: "127.0.0.1:9: no answer".into(),
            ..Core::fresh_status(AgentMode::Dev, f.now).clock
        });
        let checks = evaluate(&f);
        assert_eq!(get(&checks, "agent reachable").result, Verdict::Fail);
        assert_eq!(
            get(&checks, "MFA").figure,
            "not checked: the agent could not be asked"
        );
        let clock = get(&checks, "clock");
        assert_eq!(clock.result, Verdict::Warn);
        assert!(clock.figure.contains("measured now"), "{clock:?}");
        assert_eq!(exit_code(&checks), 2);
    }

    #[test]
    fn builtin_policy_on_a_managed_machine_warns() {
        let mut f = facts();
        f.managed = true;
        let c = evaluate(&f);
        let p = get(&c, "policy");
        assert_eq!(p.result, Verdict::Warn);
        assert!(
            p.figure.starts_with("built-in default, serial 0, built in"),
            "{p:?}"
        );
        assert_eq!(exit_code(&c), 1);
    }

    #[test]
    fn a_kept_policy_is_its_own_warning_in_the_words_of_status() {
        let mut f = facts();
        let kept = rampart_shared::status::KeptPolicy {
            serial: 5,
            message: "managed file missing: keeping serial 5".into(),
        };
        if let Ok(a) = &mut f.agent {
            a.status.policy.source = PolicySource::LastKnownGood;
            a.status.policy.serial = 5;
            a.status.policy.kept = Some(kept);
        }
        let checks = evaluate(&f);
        assert_eq!(get(&checks, "policy").result, Verdict::Pass, "no rejection");
        let source = get(&checks, "policy source");
        assert_eq!(source.result, Verdict::Warn);
        assert_eq!(source.figure, "managed file missing: keeping serial 5");
        assert!(
            source.fix.contains("rampart-agent policy reset"),
            "{source:?}"
        );
    }

    #[test]
    fn a_refused_credential_fails_in_the_words_of_status() {
        let mut f = facts();
        assert!(
            !evaluate(&f)
                .iter()
                .any(|c| c.name == "IT reporting credential")
        );
        let at = f.now;
        if let Ok(a) = &mut f.agent {
            a.status.reporting.credential_error = Some(
                crate::report::credential::credential_error(Some(401), true, None, at),
            );
        }
        let checks = evaluate(&f);
        let c = get(&checks, "IT reporting credential");
        assert_eq!(c.result, Verdict::Fail);
        assert!(
            c.figure.contains("ask IT to check the deployment secret"),
            "{c:?}"
        );
        assert_ne!(exit_code(&checks), 0);
    }

    #[test]
    fn a_failed_poll_is_its_own_warning_in_the_words_of_status() {
        let mut f = facts();
        let failure = rampart_shared::status::FetchFailure {
            message: "the server answered HTTP 404 for https://it.example/policy.json".into(),
            at: f.now,
            problem: None,
        };
        if let Ok(a) = &mut f.agent {
            a.status.policy.fetch_error = Some(failure.clone());
        }
        let checks = evaluate(&f);
        assert_eq!(get(&checks, "policy").result, Verdict::Pass, "no rejection");
        let poll = get(&checks, "policy poll");
        assert_eq!(poll.result, Verdict::Warn);
        assert_eq!(
            poll.figure,
            "last policy poll failed at 2026-11-18 11:06 UTC: \
             the server answered HTTP 404 for https://it.example/policy.json"
        );
        let Ok(a) = &f.agent else { unreachable!() };
        let status_line = rampart_shared::status::section_lines(&a.status)[3]
            .1
            .clone();
        assert!(status_line.ends_with(&poll.figure), "{status_line}");
        assert_eq!(exit_code(&checks), 1);
    }

    #[test]
    fn an_unknown_clock_gets_advice_for_its_cause() {
        let mut f = facts();
        let mut fix_for = |detail: &str| {
            if let Ok(a) = &mut f.agent {
                a.status.clock.state = ClockState::Unknown;
                a.status.clock.detail = detail.to_owned();
            }
            get(&evaluate(&f), "clock").fix.clone()
        };
        assert!(
            fix_for("no time server gave a usable answer: 127.0.0.1:9 timed out after 2 s")
                .contains("UDP port 123")
        );
        assert!(
            fix_for("time servers disagree by more than the 30 s allowed (…)")
                .starts_with("IT: fix or remove the wrong NTP server")
        );
        assert!(fix_for(
            "no time server gave a usable answer: 127.0.0.1:123 asked Rampart to back off (kiss-of-death RATE)"
        )
        .starts_with("wait until the server may be asked again"));
    }

    #[test]
    fn socket_modes_differ_for_system_and_dev() {
        let mut f = facts();
        assert_eq!(socket_check(&f).result, Verdict::Pass);
        f.socket_meta = Some(SocketMeta {
            mode: 0o666,
            uid: 1000,
        });
        assert_eq!(socket_check(&f).result, Verdict::Fail);
        f.expect_system = true;
        assert_eq!(
            socket_check(&f).result,
            Verdict::Fail,
            "service socket must be root's"
        );
        f.socket_meta = Some(SocketMeta {
            mode: 0o666,
            uid: 0,
        });
        assert_eq!(socket_check(&f).result, Verdict::Pass);
    }

    #[test]
    fn probe_failures_name_the_stage() {
        let mut f = facts();
        f.probes = vec![
            Probe {
                endpoint: Endpoint::PolicyServer,
                url: "https://policy.example.com/p.json".into(),
                result: ProbeResult::Failed(Failure::Refused(
                    "192.0.2.1:443: Connection refused (os error 111)".into(),
                )),
            },
            Probe {
                endpoint: Endpoint::Duo,
                url: "https://api-1.duosecurity.com/".into(),
                result: ProbeResult::Answered {
                    addr: "192.0.2.1:443".parse().unwrap(),
                    status: 404,
                },
            },
        ];
        let c = evaluate(&f);
        let policy = get(&c, "network: policy server");
        assert_eq!(policy.result, Verdict::Fail);
        assert_eq!(
            policy.figure,
            "policy.example.com (policy server) refused the connection. \
             (https://policy.example.com/p.json: TCP stage: connection refused: \
             192.0.2.1:443: Connection refused (os error 111))"
        );
        assert_eq!(
            policy.fix,
            "Tell IT that policy.example.com is not answering Rampart; nothing on this \
             computer needs to change."
        );
        assert_eq!(get(&c, "network: Duo").result, Verdict::Pass);
    }

    #[test]
    fn answers_are_judged_by_what_the_endpoint_is_for() {
        use Endpoint::*;
        let v = |e, s| answer_verdict(e, s).0;
        // The collector: any 4xx/5xx fails, except asking for the
        // credential doctor does not send, or for POST.
        assert_eq!(v(Reporting, 501), Verdict::Fail);
        assert_eq!(v(Reporting, 500), Verdict::Fail);
        assert_eq!(v(Reporting, 404), Verdict::Fail);
        assert_eq!(v(Reporting, 400), Verdict::Fail);
        assert_eq!(v(Reporting, 204), Verdict::Pass);
        assert_eq!(v(Reporting, 401), Verdict::Pass);
        assert_eq!(v(Reporting, 403), Verdict::Pass);
        assert_eq!(v(Reporting, 405), Verdict::Pass);
        assert_eq!(v(PolicyServer, 200), Verdict::Pass);
        assert_eq!(v(PolicyServer, 304), Verdict::Pass);
        assert_eq!(v(PolicyServer, 302), Verdict::Fail);
        assert_eq!(v(PolicyServer, 404), Verdict::Fail);
        assert_eq!(v(Duo, 404), Verdict::Pass);
        assert_eq!(v(OfflineGuide, 301), Verdict::Pass);
        assert_eq!(v(OfflineGuide, 404), Verdict::Fail);
    }

    #[test]
    fn a_failing_collector_is_a_failure_in_plain_words() {
        let mut f = facts();
        f.probes = vec![Probe {
            endpoint: Endpoint::Reporting,
            url: "https://reports.example.com/rampart".into(),
            result: ProbeResult::Answered {
                addr: "192.0.2.1:443".parse().unwrap(),
                status: 501,
            },
        }];
        let checks = evaluate(&f);
        let c = get(&checks, "network: IT reporting");
        assert_eq!(c.result, Verdict::Fail);
        assert_eq!(
            c.figure,
            "https://reports.example.com/rampart (192.0.2.1:443) answered HTTP 501 (Not Implemented)"
        );
        assert!(
            c.fix
                .starts_with("the report collector is reachable but failing")
        );
        assert_eq!(exit_code(&checks), 2);
        assert_eq!(http_status_words(599), "HTTP 599");
    }

    #[test]
    fn a_missing_log_dir_is_expected_of_a_dev_or_built_in_agent_only() {
        let mut f = facts();
        f.log_state = LogDir::Missing;
        for mode in [AgentMode::Dev, AgentMode::Embedded] {
            let c = log_check(&f, Some(mode));
            assert_eq!(c.result, Verdict::Pass, "{mode:?}");
            assert!(c.figure.contains("does not exist yet"), "{c:?}");
        }
        assert_eq!(exit_code(&evaluate(&f)), 0);
        assert_eq!(log_check(&f, Some(AgentMode::System)).result, Verdict::Warn);
        // No agent to ask: what doctor expects decides.
        assert_eq!(log_check(&f, None).result, Verdict::Pass);
        f.expect_system = true;
        assert_eq!(log_check(&f, None).result, Verdict::Warn);
        f.log_state = LogDir::NotWritable("Permission denied (os error 13)".into());
        let c = log_check(&f, Some(AgentMode::Dev));
        assert_eq!(c.result, Verdict::Warn);
        assert!(
            c.figure.ends_with("(Permission denied (os error 13))"),
            "{c:?}"
        );
    }

    #[test]
    fn an_unusable_extra_ca_is_its_own_failure() {
        let mut f = facts();
        f.extra_ca_error = Some("the CA file /etc/rampart/proxy.pem holds no certificate".into());
        let checks = evaluate(&f);
        let c = get(&checks, "extra CA");
        assert_eq!(c.result, Verdict::Fail);
        assert!(c.figure.ends_with("holds no certificate"), "{c:?}");
    }

    #[test]
    fn disk_thresholds() {
        let mut f = facts();
        f.free_bytes = Ok(DISK_WARN_BYTES - 1);
        assert_eq!(disk_check(&f).result, Verdict::Warn);
        f.free_bytes = Ok(DISK_FAIL_BYTES - 1);
        assert_eq!(disk_check(&f).result, Verdict::Fail);
        f.free_bytes = Ok(DISK_WARN_BYTES);
        assert_eq!(disk_check(&f).result, Verdict::Pass);
    }

    #[test]
    fn below_minimum_version_fails() {
        let mut f = facts();
        if let Ok(a) = &mut f.agent {
            a.status.update.state = UpdateState::UpdateRequired;
        }
        assert_eq!(get(&evaluate(&f), "version").result, Verdict::Fail);
    }

    #[tokio::test]
    async fn probe_names_tcp_for_a_closed_port_and_http_for_an_answer() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = probe(
            &format!("http://127.0.0.1:{closed}/p.json"),
            Duration::from_secs(2),
            &[],
        )
        .await;
        assert!(
            matches!(r, ProbeResult::Failed(Failure::Refused(_))),
            "{r:?}"
        );

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            }
        });
        let r = probe(
            &format!("http://127.0.0.1:{port}/p.json"),
            Duration::from_secs(2),
            &[],
        )
        .await;
        assert!(
            matches!(r, ProbeResult::Answered { status: 404, .. }),
            "{r:?}"
        );
        // Plain HTTP spoken to a TLS client: the handshake stage fails.
        let r = probe(
            &format!("https://127.0.0.1:{port}/p.json"),
            Duration::from_secs(2),
            &[],
        )
        .await;
        assert!(matches!(r, ProbeResult::Failed(Failure::Tls(_))), "{r:?}");
    }
}
