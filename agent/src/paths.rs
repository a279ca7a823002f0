//! Where the agent keeps its files, per OS and per mode.
//!
//! System paths are decided here because `directories` only knows per-user
//! ones (as root it would answer /root/.config). `--dev` and the app's embedded
//! agent use per-user paths so that nothing needs root.

use std::path::{Path, PathBuf};

use rampart_shared::status::AgentMode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPaths {
    /// The install config and the managed policy file (written by IT's tooling).
    pub config_dir: PathBuf,
    /// The agent's own state: last-known-good policy, MFA enrollment, queue.
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub socket: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot find a home directory for the current user: set $HOME, or run the installed service"
)]
pub struct NoHomeDir;

impl AgentPaths {
    pub fn for_mode(mode: AgentMode) -> Result<Self, NoHomeDir> {
        match mode {
            AgentMode::System => Ok(Self::system()),
            AgentMode::Dev | AgentMode::Embedded => Self::per_user(),
        }
    }

    #[cfg(target_os = "linux")]
    pub fn system() -> Self {
        Self {
            config_dir: "/etc/rampart".into(),
            state_dir: "/var/lib/rampart".into(),
            log_dir: "/var/log/rampart".into(),
            socket: rampart_shared::platform::LINUX_SYSTEM_SOCKET.into(),
        }
    }

    #[cfg(target_os = "macos")]
    pub fn system() -> Self {
        let base = PathBuf::from("/Library/Application Support/Rampart");
        Self {
            config_dir: base.clone(),
            state_dir: base.join("state"),
            log_dir: "/Library/Logs/Rampart".into(),
            socket: "/var/run/rampart/agent.sock".into(),
        }
    }

    #[cfg(windows)]
    pub fn system() -> Self {
        let base = program_data().join("Rampart");
        Self {
            config_dir: base.clone(),
            state_dir: base.join("state"),
            log_dir: base.join("logs"),
            socket: PathBuf::from(crate::ipc::DEFAULT_PIPE_NAME),
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
    pub fn system() -> Self {
        Self {
            config_dir: "/usr/local/etc/rampart".into(),
            state_dir: "/var/db/rampart".into(),
            log_dir: "/var/log/rampart".into(),
            socket: "/var/run/rampart/agent.sock".into(),
        }
    }

    pub fn per_user() -> Result<Self, NoHomeDir> {
        let dirs = directories::ProjectDirs::from("dev", "Rampart", "rampart").ok_or(NoHomeDir)?;
        let state_dir = dirs
            .state_dir()
            .unwrap_or_else(|| dirs.data_local_dir())
            .to_owned();
        Ok(Self {
            config_dir: dirs.config_dir().to_owned(),
            log_dir: state_dir.join("logs"),
            socket: per_user_socket(&dirs, &state_dir),
            state_dir,
        })
    }

    /// The paths of `mode`, with `run`'s `--config FILE` (the managed policy
    /// is read beside it), `--state-dir DIR` (logs under it) and `--socket`
    /// applied. `run`, `doctor` and `diagnose` all resolve through here, so
    /// the support commands look where the agent writes.
    pub fn with_overrides(
        mode: AgentMode,
        config: Option<&Path>,
        state_dir: Option<&Path>,
        socket: Option<&Path>,
    ) -> Result<Self, NoHomeDir> {
        let mut paths = Self::for_mode(mode)?;
        if let Some(file) = config {
            paths.config_dir = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned();
        }
        if let Some(dir) = state_dir {
            paths.log_dir = dir.join("logs");
            paths.state_dir = dir.to_owned();
        }
        if let Some(socket) = socket {
            paths.socket = socket.to_owned();
        }
        Ok(paths)
    }

    /// The file an MDM profile or GPO drops.
    pub fn managed_policy(&self) -> PathBuf {
        self.config_dir.join("policy.json")
    }

    /// Written by the installer or MDM: policy URL, pinned keys, device id.
    pub fn install_config(&self) -> PathBuf {
        self.config_dir.join("agent.json")
    }
}

/// The machine's ProgramData folder as the shell resolves it
/// (FOLDERID_ProgramData), the folder the MSI's `CommonAppDataFolder` and the
/// installer write to. The `ProgramData` variable is only what the parent
/// process passed down: Wine 8's service manager, for one, gives services
/// `C:\users\Public`, so the service and its installer disagreed.
#[cfg(windows)]
fn program_data() -> PathBuf {
    dirs_sys::known_folder(windows_sys::Win32::UI::Shell::FOLDERID_ProgramData)
        .or_else(|| std::env::var_os("ProgramData").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
}

#[cfg(unix)]
fn per_user_socket(dirs: &directories::ProjectDirs, state_dir: &Path) -> PathBuf {
    // $XDG_RUNTIME_DIR is per-user, private and cleaned at logout: the right
    // home for a socket. Elsewhere (macOS, or no session), the state dir.
    dirs.runtime_dir()
        .map(|d| d.join("agent.sock"))
        .unwrap_or_else(|| state_dir.join("agent.sock"))
}

#[cfg(windows)]
fn per_user_socket(_dirs: &directories::ProjectDirs, _state_dir: &Path) -> PathBuf {
    PathBuf::from(crate::ipc::user_pipe_name())
}

/// The socket path the CLI and the app use when none is given:
/// `$RAMPART_SOCKET`, else the per-user agent if one is listening, else the
/// system agent.
pub fn default_client_socket() -> PathBuf {
    if let Some(explicit) = std::env::var_os("RAMPART_SOCKET") {
        return explicit.into();
    }
    let system = AgentPaths::system().socket;
    match AgentPaths::per_user() {
        Ok(user) if socket_exists(&user.socket) => user.socket,
        _ => system,
    }
}

#[cfg(unix)]
fn socket_exists(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Asked without connecting: a probe that connects takes the agent's
/// listening instance from the client that follows it.
#[cfg(windows)]
fn socket_exists(path: &Path) -> bool {
    crate::winsec::ffi::pipe_exists(path)
}
