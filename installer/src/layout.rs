//! Where an install puts things on each OS: the binaries, the service
//! definition, config, state and logs (the plans that put them there are in
//! `install`).

use std::path::{Path, PathBuf};

use crate::plan::Owner;
use crate::render;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetOs {
    Linux,
    Macos,
    Windows,
}

impl TargetOs {
    /// The OS this installer was built for.
    pub fn host() -> Self {
        if cfg!(windows) {
            Self::Windows
        } else if cfg!(target_os = "macos") {
            Self::Macos
        } else {
            Self::Linux
        }
    }
}

/// Every path an install touches. Config, state and log directories are the
/// agent's system paths (`rampart_agent::paths::AgentPaths::system`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub os: TargetOs,
    /// Directories the installer creates for the binaries, outermost first.
    pub bin_dirs: Vec<PathBuf>,
    pub agent_bin: PathBuf,
    pub app_bin: PathBuf,
    /// Where the sign-in PAM module goes (Linux only), named by its full
    /// path in a PAM line.
    pub pam_module: Option<PathBuf>,
    pub config_dir: PathBuf,
    pub config_file: PathBuf,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The systemd unit or the LaunchDaemon plist (none on Windows: the
    /// service lives in the service control manager's registry).
    pub service_file: Option<PathBuf>,
    /// The XDG autostart entry or the LaunchAgent plist (Windows: a Run key).
    pub app_autostart_file: Option<PathBuf>,
    pub owner: Owner,
}

pub(crate) const WINDOWS_RUN_KEY: &str = r"HKLM\Software\Microsoft\Windows\CurrentVersion\Run";

impl Layout {
    pub fn for_os(os: TargetOs) -> Self {
        match os {
            TargetOs::Linux => Self {
                os,
                // /opt, not /usr/bin: the agent replaces its own binary when it
                // updates, and /usr/bin belongs to the package manager.
                bin_dirs: vec!["/opt/rampart".into(), "/opt/rampart/bin".into()],
                agent_bin: "/opt/rampart/bin/rampart-agent".into(),
                app_bin: "/opt/rampart/bin/rampart".into(),
                pam_module: Some("/opt/rampart/lib/pam_rampart.so".into()),
                config_dir: "/etc/rampart".into(),
                config_file: "/etc/rampart/agent.json".into(),
                state_dir: "/var/lib/rampart".into(),
                log_dir: "/var/log/rampart".into(),
                service_file: Some("/etc/systemd/system/rampart-agent.service".into()),
                app_autostart_file: Some("/etc/xdg/autostart/rampart.desktop".into()),
                owner: Owner::ROOT,
            },
            TargetOs::Macos => {
                let base = "/Library/Application Support/Rampart";
                Self {
                    os,
                    bin_dirs: vec![base.into(), format!("{base}/bin").into()],
                    agent_bin: format!("{base}/bin/rampart-agent").into(),
                    app_bin: format!("{base}/bin/rampart").into(),
                    pam_module: None,
                    config_dir: base.into(),
                    config_file: format!("{base}/agent.json").into(),
                    state_dir: format!("{base}/state").into(),
                    log_dir: "/Library/Logs/Rampart".into(),
                    service_file: Some(
                        format!(
                            "/Library/LaunchDaemons/{}.plist",
                            render::LAUNCHD_AGENT_LABEL
                        )
                        .into(),
                    ),
                    app_autostart_file: Some(
                        format!("/Library/LaunchAgents/{}.plist", render::LAUNCHD_APP_LABEL).into(),
                    ),
                    owner: Owner::ROOT_WHEEL,
                }
            }
            TargetOs::Windows => {
                // Written with backslashes whatever the host, so that a plan
                // for Windows prints and tests the same on Linux.
                let pf = r"C:\Program Files\Rampart";
                let pd = r"C:\ProgramData\Rampart";
                Self {
                    os,
                    bin_dirs: vec![pf.into()],
                    agent_bin: format!(r"{pf}\rampart-agent.exe").into(),
                    app_bin: format!(r"{pf}\rampart.exe").into(),
                    pam_module: None,
                    config_dir: pd.into(),
                    config_file: format!(r"{pd}\agent.json").into(),
                    state_dir: format!(r"{pd}\state").into(),
                    log_dir: format!(r"{pd}\logs").into(),
                    service_file: None,
                    app_autostart_file: None,
                    owner: Owner::SYSTEM,
                }
            }
        }
    }

    /// The layout of the machine the installer runs on. Config, state and
    /// logs are taken from the agent itself, so that the installer writes
    /// where the service reads even when Windows' ProgramData is not on C:.
    pub fn host() -> Self {
        let mut layout = Self::for_os(TargetOs::host());
        let agent = rampart_agent::paths::AgentPaths::system();
        layout.config_file = agent.install_config();
        layout.config_dir = agent.config_dir;
        layout.state_dir = agent.state_dir;
        layout.log_dir = agent.log_dir;
        layout
    }

    /// Where the installer writes the Duo secret key; policies name this
    /// path as `mfa.provider.secret_key_file`.
    pub fn duo_key_file(&self) -> PathBuf {
        self.config_dir.join("duo.key")
    }

    /// Where `--extra-ca-file` is copied: the install config names this
    /// absolute path, so the original may move or go.
    pub fn extra_ca_file(&self) -> PathBuf {
        self.config_dir.join("extra-ca.pem")
    }

    /// Where the installer writes the deployment secret for reports; the
    /// install config's `report_secret_file` names it.
    pub fn report_secret_file(&self) -> PathBuf {
        self.config_dir.join("report.secret")
    }

    /// The service's command line.
    pub fn agent_exec(&self) -> Vec<String> {
        let mut argv = vec![s(&self.agent_bin), "run".into()];
        if self.os == TargetOs::Windows {
            argv.push("--windows-service".into());
        }
        argv.push("--config".into());
        argv.push(s(&self.config_file));
        argv
    }
}

pub(crate) fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}
