//! Words that fit the OS Rampart runs on. Every message that names a command
//! or a place (start the service, run as an administrator) takes it from
//! here, so that a Windows user is never told to type `sudo systemctl`.
//! The OS is a parameter: tests pin the words of all three on any host.

/// The systemd unit the installer and the .deb install.
pub const SYSTEMD_UNIT: &str = "rampart-agent.service";
/// launchd labels of the agent's LaunchDaemon and the app's LaunchAgent.
pub const LAUNCHD_AGENT_LABEL: &str = "dev.rampart.agent";
pub const LAUNCHD_APP_LABEL: &str = "dev.rampart.app";
/// The system agent's socket on Linux: the agent binds it, the CLI and the
/// PAM module (`pam_rampart.so`) connect to it.
pub const LINUX_SYSTEM_SOCKET: &str = "/run/rampart/agent.sock";
/// The Windows service's name (`sc.exe`, the MSI and the agent's dispatcher).
pub const WINDOWS_SERVICE: &str = "RampartAgent";
/// What Services (services.msc) lists.
pub const WINDOWS_SERVICE_DISPLAY_NAME: &str = "Rampart Agent";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Linux,
    MacOs,
    Windows,
    /// BSDs and the like: the agent builds there, the installer does not.
    OtherUnix,
}

impl Os {
    /// The OS this build is for.
    pub const fn current() -> Self {
        if cfg!(windows) {
            Self::Windows
        } else if cfg!(target_os = "macos") {
            Self::MacOs
        } else if cfg!(target_os = "linux") {
            Self::Linux
        } else {
            Self::OtherUnix
        }
    }

    /// How a person starts the installed service, as one instruction.
    pub fn start_service(self) -> String {
        match self {
            Self::Linux => "`sudo systemctl start rampart-agent`".to_owned(),
            Self::MacOs => format!("`sudo launchctl kickstart -k system/{LAUNCHD_AGENT_LABEL}`"),
            Self::Windows => format!(
                "`sc.exe start {WINDOWS_SERVICE}` in an administrator Command Prompt \
                 (or Services > {WINDOWS_SERVICE_DISPLAY_NAME} > Start)"
            ),
            Self::OtherUnix => "`sudo service rampart-agent start`".to_owned(),
        }
    }

    /// `command` (a Rampart command line) as run with administrator rights.
    pub fn elevated(self, command: &str) -> String {
        match self {
            Self::Windows => {
                format!("`{command}` in a Command Prompt opened with \"Run as administrator\"")
            }
            Self::Linux | Self::MacOs | Self::OtherUnix => format!("`sudo {command}`"),
        }
    }

    /// Who owns the service's files: the account support must act as.
    pub fn administrator(self) -> &'static str {
        match self {
            Self::Windows => "an administrator",
            Self::Linux | Self::MacOs | Self::OtherUnix => "root",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_the_service_names_each_os_own_tool() {
        assert_eq!(
            Os::Linux.start_service(),
            "`sudo systemctl start rampart-agent`"
        );
        assert_eq!(
            Os::MacOs.start_service(),
            "`sudo launchctl kickstart -k system/dev.rampart.agent`"
        );
        assert_eq!(
            Os::Windows.start_service(),
            "`sc.exe start RampartAgent` in an administrator Command Prompt \
             (or Services > Rampart Agent > Start)"
        );
    }

    #[test]
    fn elevation_is_sudo_on_unix_and_run_as_administrator_on_windows() {
        assert_eq!(
            Os::Linux.elevated("rampart-agent doctor"),
            "`sudo rampart-agent doctor`"
        );
        assert_eq!(
            Os::MacOs.elevated("rampart-agent doctor"),
            "`sudo rampart-agent doctor`"
        );
        assert_eq!(
            Os::Windows.elevated("rampart-agent doctor"),
            "`rampart-agent doctor` in a Command Prompt opened with \"Run as administrator\""
        );
        assert_eq!(Os::Windows.administrator(), "an administrator");
        assert_eq!(Os::Linux.administrator(), "root");
    }

    #[test]
    fn no_unix_word_reaches_windows() {
        let windows = [
            Os::Windows.start_service(),
            Os::Windows.elevated("rampart-agent status"),
            Os::Windows.administrator().to_owned(),
        ]
        .join(" ");
        for unix_word in ["sudo", "systemctl", "launchctl", "root"] {
            assert!(!windows.contains(unix_word), "{unix_word} in {windows}");
        }
    }
}
