//! `rampart-agent doctor`: every check support would do by hand, one line
//! each (`PASS|WARN|FAIL  name  figure  fix`). Exit 0 all pass, 1 a warning,
//! 2 a failure. Gathers facts here; the verdicts are `crate::doctor`'s.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use rampart_shared::ipc::{Request, Response};
use rampart_shared::policy::{Policy, Provider, parse_policy};
use rampart_shared::status::AgentMode;

use crate::config::InstallConfig;
use crate::doctor::{self, AgentFacts, Facts, LogDir, Probe, Report, SocketMeta};
use crate::ipc::client::Client;

/// Each probe stage's time limit.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// Print `{"checks": [{"name","result","figure","fix"}], "exit"}`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub at: super::Installation,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let report = super::block_on(gather_report(&args))??;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        out!("{}", report.render())?;
    }
    Ok(ExitCode::from(report.exit))
}

/// Runs every check; used by `diagnose` too.
pub async fn gather_report(args: &DoctorArgs) -> anyhow::Result<Report> {
    let facts = gather(args).await?;
    Ok(Report::new(doctor::evaluate(&facts)))
}

async fn gather(args: &DoctorArgs) -> anyhow::Result<Facts> {
    let socket = args.at.socket();
    let agent = ask_agent(&socket).await;
    let answering = agent.as_ref().ok().map(|a| a.status.agent.mode);
    let super::Resolved { paths, config_file } = args.at.resolve(answering)?;
    let install = InstallConfig::load_effective(&config_file).ok().flatten();
    // The policy to probe with: the agent's, else the managed file (read only
    // to learn the endpoints, never put in force), else the built-in one.
    let policy = match &agent {
        Ok(AgentFacts {
            policy: Some(p), ..
        }) => p.clone(),
        _ => std::fs::read(paths.managed_policy())
            .ok()
            .and_then(|b| parse_policy(&b).ok())
            .unwrap_or_default(),
    };
    let expect_system = match &agent {
        Ok(a) => a.status.agent.mode == AgentMode::System,
        Err(_) => !args.at.dev,
    };
    let clock_known = matches!(&agent, Ok(a) if a.status.clock.checked_at.is_some());
    let clock_direct = if clock_known {
        None
    } else {
        let report = crate::clock::query_servers(&policy.clock.ntp_servers, PROBE_TIMEOUT).await;
        Some(crate::clock::to_section(
            &report,
            Duration::from_secs(policy.clock.max_skew_secs),
            chrono::Utc::now(),
        ))
    };
    // The agent's trust: the system's roots and IT's extra CA.
    let (extra_roots, extra_ca_error) =
        match install.as_ref().and_then(|i| i.extra_ca_file.as_deref()) {
            None => (Vec::new(), None),
            Some(file) => match crate::network::extra_roots(file) {
                Ok(certs) => (certs, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            },
        };
    let (probes, duo) = tokio::join!(
        probes(&policy, install.as_ref(), extra_roots),
        duo_probe(&policy, install.as_ref())
    );
    let mut sig = paths.managed_policy().into_os_string();
    sig.push(".minisig");
    Ok(Facts {
        now: chrono::Utc::now(),
        socket: socket.clone(),
        agent: agent.map_err(|e| e.to_string()),
        socket_meta: socket_meta(&socket),
        expect_system,
        current_uid: crate::ipc::current_uid(),
        managed: install.is_some(),
        managed_file_signed: Path::new(&sig).exists(),
        clock_direct,
        probes,
        duo,
        free_bytes: free_bytes(&paths.state_dir),
        state_dir: paths.state_dir,
        log_state: log_state(&paths.log_dir),
        log_dir: paths.log_dir,
        extra_ca_error,
    })
}

/// `/ping` and `/check` with this device's Duo keys, when the policy names
/// Duo.
async fn duo_probe(policy: &Policy, install: Option<&InstallConfig>) -> Option<doctor::DuoProbe> {
    let Provider::Duo {
        api_host,
        integration_key,
        secret_key_file,
        ..
    } = &policy.mfa.provider
    else {
        return None;
    };
    let extra_ca = install.and_then(|i| i.extra_ca_file.as_deref());
    let client = match crate::duo::DuoConfig::from_policy(
        api_host,
        integration_key,
        Path::new(secret_key_file),
        extra_ca,
    )
    .and_then(crate::duo::DuoClient::new)
    {
        Ok(client) => client,
        Err(e) => return Some(doctor::DuoProbe::NotConfigured(e.to_string())),
    };
    let probe = async {
        let clock_offset_secs = match crate::mfa::duo::calls::measure_offset(&client).await {
            Ok(offset) => offset,
            Err(e) => return doctor::DuoProbe::Unreachable(e.to_string()),
        };
        let keys = client.check().await.map(|_| ()).map_err(|e| e.to_string());
        doctor::DuoProbe::Checked {
            clock_offset_secs,
            keys,
        }
    };
    Some(
        tokio::time::timeout(PROBE_TIMEOUT * 2, probe)
            .await
            .unwrap_or_else(|_| {
                doctor::DuoProbe::Unreachable(format!(
                    "Duo did not answer within {} s",
                    (PROBE_TIMEOUT * 2).as_secs()
                ))
            }),
    )
}

async fn ask_agent(socket: &Path) -> Result<AgentFacts, crate::ipc::client::ClientError> {
    let mut client = Client::connect(socket, super::CLIENT_NAME).await?;
    let status = client.status().await?;
    let policy = match client.request(Request::PolicyShow).await {
        Ok(Response::Policy { policy, .. }) => Some(*policy),
        _ => None,
    };
    Ok(AgentFacts { status, policy })
}

/// The endpoints of the agent's own network check, each probed over
/// HTTP(S).
async fn probes(
    policy: &Policy,
    install: Option<&InstallConfig>,
    extra_roots: Vec<reqwest::Certificate>,
) -> Vec<Probe> {
    let extra_roots = std::sync::Arc::new(extra_roots);
    let handles: Vec<_> = crate::network::targets(policy, install)
        .into_iter()
        .map(|target| {
            let extra_roots = extra_roots.clone();
            tokio::spawn(async move {
                let result = doctor::probe(&target.url, PROBE_TIMEOUT, &extra_roots).await;
                Probe {
                    endpoint: target.endpoint,
                    url: target.url,
                    result,
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        if let Ok(p) = h.await {
            out.push(p);
        }
    }
    out
}

#[cfg(unix)]
fn socket_meta(socket: &Path) -> Option<SocketMeta> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(socket).ok().map(|m| SocketMeta {
        mode: m.mode(),
        uid: m.uid(),
    })
}

#[cfg(not(unix))]
fn socket_meta(_socket: &Path) -> Option<SocketMeta> {
    None
}

/// Free bytes for unprivileged users in the file system holding `dir` (or
/// its nearest existing ancestor).
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> Result<u64, String> {
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .ok_or_else(|| "no existing directory".to_owned())?;
    let st = rustix::fs::statvfs(existing).map_err(|e| format!("statvfs: {e}"))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> Result<u64, String> {
    Err("not measured on this platform".into())
}

fn log_state(dir: &Path) -> LogDir {
    if !dir.is_dir() {
        return LogDir::Missing;
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            LogDir::Writable
        }
        Err(e) => LogDir::NotWritable(e.to_string()),
    }
}
