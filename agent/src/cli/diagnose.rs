//! `rampart-agent diagnose`: one `.tar.gz` for support with the status,
//! doctor's checks, the policy in force, the install config, recent logs,
//! versions and OS facts. Never a secret: see `crate::diagnose`.

use rampart_shared::platform::Os;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use rampart_shared::ipc::{Request, Response};
use rampart_shared::policy::{Policy, Provider};
use serde_json::{Value, json};

use super::doctor::{DoctorArgs, gather_report};
use crate::config::InstallConfig;
use crate::diagnose::{Entry, Needle, build_archive, tail, text_needles, totp_needles};
use crate::ipc::client::Client;
use crate::paths::AgentPaths;

/// How much of each log file goes in.
pub const LOG_TAIL_BYTES: usize = 256 * 1024;
/// Largest log file read at all.
const MAX_LOG_READ: u64 = 64 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct DiagnoseArgs {
    /// Where to write the bundle (default: rampart-diagnose-HOST-TIME.tar.gz here).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print the files the bundle would contain, and write nothing.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub at: super::Installation,
}

/// What goes in, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub name: String,
    pub source: String,
    what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Status,
    Doctor,
    Policy,
    InstallConfig,
    Versions,
    Os,
    Log(PathBuf),
}

pub fn plan(paths: &AgentPaths, socket: &Path, config_file: &Path) -> Vec<Planned> {
    let p = |name: &str, source: String, what| Planned {
        name: name.to_owned(),
        source,
        what,
    };
    let mut out = vec![
        p(
            "status.json",
            format!("the agent's status ({})", socket.display()),
            What::Status,
        ),
        p(
            "doctor.json",
            "rampart-agent doctor --json".into(),
            What::Doctor,
        ),
        p(
            "policy.json",
            "the policy in force, its serial and source".into(),
            What::Policy,
        ),
        p(
            "install-config.json",
            format!(
                "{} (public keys and settings; URL queries removed)",
                config_file.display()
            ),
            What::InstallConfig,
        ),
        p(
            "versions.json",
            "agent and protocol versions".into(),
            What::Versions,
        ),
        p("os.txt", "uname and /etc/os-release".into(), What::Os),
    ];
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&paths.log_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    logs.sort();
    for log in logs {
        let Some(file) = log.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        out.push(p(
            &format!("logs/{file}"),
            format!("last {} KiB of {}", LOG_TAIL_BYTES / 1024, log.display()),
            What::Log(log),
        ));
    }
    out
}

pub fn run(args: DiagnoseArgs) -> anyhow::Result<ExitCode> {
    let socket = args.at.socket();
    let answering = super::block_on(async {
        Client::connect(&socket, super::CLIENT_NAME)
            .await
            .ok()
            .map(|c| c.agent().mode)
    })?;
    let super::Resolved { paths, config_file } = args.at.resolve(answering)?;
    let planned = plan(&paths, &socket, &config_file);
    let host = crate::report::hostname();
    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "rampart-diagnose-{}-{}.tar.gz",
            if host.is_empty() { "device" } else { &host },
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    });
    outln!("The bundle {} contains:", output.display())?;
    for p in &planned {
        outln!("  {:<24} {}", p.name, p.source)?;
    }
    if args.list {
        return Ok(ExitCode::SUCCESS);
    }

    // doctor resolves the installation the same way from the same agent.
    let doctor_args = DoctorArgs {
        json: true,
        at: args.at.clone(),
    };
    let (agent, doctor) = super::block_on(async {
        let agent = ask_agent(&socket).await;
        let doctor = gather_report(&doctor_args).await;
        (agent, doctor)
    })?;
    let (status, policy) = match agent {
        Ok((status, policy)) => (status, policy),
        Err(e) => {
            let error = json!({"error": e});
            (error.clone(), error)
        }
    };
    let doctor = match doctor {
        Ok(report) => serde_json::to_value(report)?,
        Err(e) => json!({"error": format!("{e:#}")}),
    };

    let mut entries = Vec::new();
    for p in &planned {
        let bytes = match &p.what {
            What::Status => pretty(&status)?,
            What::Doctor => pretty(&doctor)?,
            What::Policy => pretty(&policy)?,
            What::InstallConfig => pretty(&install_config(&config_file))?,
            What::Versions => pretty(&versions(&status))?,
            What::Os => os_facts().into_bytes(),
            What::Log(path) => match crate::fsutil::read_capped(path, MAX_LOG_READ) {
                Ok(Some(b)) => tail(&b, LOG_TAIL_BYTES).to_vec(),
                Ok(None) => continue,
                Err(e) => format!("(not included: {e})\n").into_bytes(),
            },
        };
        entries.push(Entry {
            name: format!("rampart-diagnose/{}", p.name),
            bytes,
        });
    }

    let policy_doc: Option<Policy> = serde_json::from_value(policy["policy"].clone()).ok();
    let install = InstallConfig::load_effective(&config_file).ok().flatten();
    let needles = known_secrets(&paths, policy_doc.as_ref(), install.as_ref())?;
    let mtime = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let archive = build_archive(&entries, &needles, mtime)?;
    crate::fsutil::write_atomic(&output, &archive)
        .with_context(|| format!("cannot write {}", output.display()))?;
    outln!(
        "Wrote {} ({} bytes; scanned for {} secret form(s), none found). Send it to IT support.",
        output.display(),
        archive.len(),
        needles.len()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn pretty(value: &Value) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

async fn ask_agent(socket: &Path) -> Result<(Value, Value), String> {
    let mut client = Client::connect(socket, super::CLIENT_NAME)
        .await
        .map_err(|e| e.to_string())?;
    let status = client.status().await.map_err(|e| e.to_string())?;
    let policy = match client.request(Request::PolicyShow).await {
        Ok(Response::Policy { source, policy }) => json!({
            "source": source,
            "serial": policy.serial,
            "policy": policy,
        }),
        Ok(other) => json!({"error": format!("unexpected reply {other:?}")}),
        Err(e) => json!({"error": e.to_string()}),
    };
    Ok((
        serde_json::to_value(status).map_err(|e| e.to_string())?,
        policy,
    ))
}

/// The install config with URL query strings removed (a token could hide
/// there); the rest is public keys and switches.
fn install_config(path: &Path) -> Value {
    match crate::mdm::load_effective(path) {
        Ok(Some(merged)) => {
            let mut config = merged.config;
            if let Some(url) = &mut config.policy_url
                && let Some(q) = url.find(['?', '#'])
            {
                url.truncate(q);
                url.push_str("?(removed)");
            }
            let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
            // Where each key came from, when MDM set any (docs/policy.md).
            let from_mdm: serde_json::Map<String, Value> = merged
                .origins
                .iter()
                .filter(|(_, o)| **o != crate::mdm::Origin::File)
                .map(|(k, o)| (k.clone(), Value::from(o.label())))
                .collect();
            if let (false, Some(object)) = (from_mdm.is_empty(), value.as_object_mut()) {
                object.insert("_set_by_mdm".into(), Value::Object(from_mdm));
            }
            value
        }
        Ok(None) => json!({"note": format!("no install config at {}", path.display())}),
        Err(e) => json!({"error": e.to_string()}),
    }
}

fn versions(status: &Value) -> Value {
    json!({
        "cli": env!("CARGO_PKG_VERSION"),
        "agent": status["agent"]["version"],
        "agent_mode": status["agent"]["mode"],
        "ipc_protocol": rampart_shared::ipc::PROTOCOL_VERSION,
        "status_schema": rampart_shared::status::STATUS_SCHEMA,
        "report_schema": rampart_shared::report::REPORT_SCHEMA,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

fn os_facts() -> String {
    let mut out = String::new();
    #[cfg(unix)]
    {
        let u = rustix::system::uname();
        out.push_str(&format!(
            "uname: {} {} {} {} {}\n",
            u.sysname().to_string_lossy(),
            u.nodename().to_string_lossy(),
            u.release().to_string_lossy(),
            u.version().to_string_lossy(),
            u.machine().to_string_lossy(),
        ));
    }
    out.push_str(&format!(
        "os: {} {}\n",
        std::env::consts::OS,
        std::env::consts::ARCH
    ));
    if let Ok(Some(release)) = crate::fsutil::read_capped(Path::new("/etc/os-release"), 64 * 1024) {
        out.push_str("\n/etc/os-release:\n");
        out.push_str(&String::from_utf8_lossy(&release));
    }
    out
}

/// Every secret this device holds, in every form, for the final scan.
fn known_secrets(
    paths: &AgentPaths,
    policy: Option<&Policy>,
    install: Option<&InstallConfig>,
) -> anyhow::Result<Vec<Needle>> {
    let mut needles = Vec::new();
    let mfa_dir = paths.state_dir.join("mfa");
    let secrets = crate::mfa::stored_secrets(&mfa_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the MFA state to check the bundle for secrets ({e}); run diagnose as the agent's user: for the service, {}. Nothing was written",
            Os::current().elevated("rampart-agent diagnose")
        )
    })?;
    for (label, secret) in &secrets {
        needles.extend(match secret {
            crate::mfa::StoredSecret::Totp(secret) => totp_needles(label, secret),
            crate::mfa::StoredSecret::Text(text) => text_needles(label, text.as_bytes()),
        });
    }
    if let Some(Provider::Duo {
        secret_key_file, ..
    }) = policy.map(|p| &p.mfa.provider)
    {
        match crate::fsutil::read_capped(Path::new(secret_key_file), 64 * 1024) {
            Ok(Some(key)) => needles.extend(text_needles("the Duo secret key", &key)),
            Ok(None) => {}
            Err(e) => bail!(
                "cannot read the Duo secret key file to check the bundle for it ({e}); run diagnose as the agent's user. Nothing was written"
            ),
        }
    }
    if let Some(file) = install.and_then(|c| c.report_secret_file.as_deref()) {
        needles.extend(report_secret_needles(file)?);
    }
    Ok(needles)
}

/// The deployment secret, as the agent sends it.
fn report_secret_needles(file: &Path) -> anyhow::Result<Vec<Needle>> {
    let label = "the deployment secret for reports";
    match crate::fsutil::read_capped(file, 64 * 1024) {
        // Trimmed, as the agent sends it: the header holds it whole.
        Ok(Some(text)) => Ok(text_needles(label, &zeroize::Zeroizing::new(text))),
        // Nothing to find: the agent has no secret to leak either.
        Ok(None) => Ok(Vec::new()),
        Err(e) => bail!(
            "cannot read the deployment secret file to check the bundle for it ({e}); run diagnose as the agent's user: for the service, {}. Nothing was written",
            Os::current().elevated("rampart-agent diagnose")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::BundleError;

    /// A bundle whose log caught the deployment secret (in the header, as a
    /// careless debug line would show it) is refused, and the refusal does
    /// not quote the secret.
    #[test]
    fn a_planted_deployment_secret_is_found_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.secret");
        std::fs::write(&file, "  PLANTEDdeploymentSECRET0123456789\n").unwrap();
        let needles = report_secret_needles(&file).unwrap();
        assert_eq!(needles.len(), 1);
        let entries = [Entry {
            name: "rampart-diagnose/logs/agent.log".into(),
            bytes: b"DEBUG authorization: Bearer PLANTEDdeploymentSECRET0123456789 sent".to_vec(),
        }];
        let err = build_archive(&entries, &needles, 0).unwrap_err();
        assert!(matches!(err, BundleError::SecretFound(_)), "{err}");
        assert!(!err.to_string().contains("PLANTED"), "{err}");
        let clean = [Entry {
            name: "rampart-diagnose/logs/agent.log".into(),
            bytes: b"INFO report delivered".to_vec(),
        }];
        assert!(build_archive(&clean, &needles, 0).is_ok());
        assert!(
            report_secret_needles(&dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );
    }
}
