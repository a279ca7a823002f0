//! `rampart-installer status` for detection scripts (a Jamf extension
//! attribute, an Intune detection rule): one verdict and its exit code, from
//! the files in place and whether the agent answered on its socket.

/// Exit codes of `status`, documented in docs/status.md. 1 is the check
/// itself failing, 2 bad arguments (clap's): neither says anything about
/// the install.
pub const EXIT_RUNNING: u8 = 0;
pub const EXIT_NOT_RUNNING: u8 = 3;
pub const EXIT_NOT_INSTALLED: u8 = 4;

/// What `status` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The agent answered on its socket.
    Running {
        version: String,
    },
    /// Installed (or answered before), but nothing answers now.
    NotRunning {
        why: String,
    },
    NotInstalled,
}

impl Verdict {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Running { .. } => EXIT_RUNNING,
            Self::NotRunning { .. } => EXIT_NOT_RUNNING,
            Self::NotInstalled => EXIT_NOT_INSTALLED,
        }
    }

    /// One line, the first word stable for scripts: `running`,
    /// `not-running` or `not-installed`.
    pub fn line(&self, start_hint: &str) -> String {
        match self {
            Self::Running { version } => format!("running: Rampart agent {version} answered"),
            Self::NotRunning { why } => {
                format!(
                    "not-running: installed, but the agent does not answer ({why}); {start_hint}"
                )
            }
            Self::NotInstalled => "not-installed: no Rampart agent in place".to_owned(),
        }
    }
}

/// `agent_installed`: the agent binary and (where the OS has one) the
/// service definition are in place. `answer`: the agent's version, or why
/// it did not answer. An agent that answers is running however it was put
/// in place (a package installs elsewhere than this installer).
pub fn verdict(agent_installed: bool, answer: Result<String, String>) -> Verdict {
    match (answer, agent_installed) {
        (Ok(version), _) => Verdict::Running { version },
        (Err(why), true) => Verdict::NotRunning { why },
        (Err(_), false) => Verdict::NotInstalled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_has_its_own_exit_code() {
        let running = verdict(true, Ok("0.1.0".into()));
        let package = verdict(false, Ok("0.1.0".into()));
        let stopped = verdict(true, Err("no socket".into()));
        let absent = verdict(false, Err("no socket".into()));
        assert_eq!(running.exit_code(), 0);
        assert_eq!(package, running);
        assert_eq!(stopped.exit_code(), 3);
        assert_eq!(absent.exit_code(), 4);
        assert_eq!(
            stopped.line("start it with `systemctl start rampart-agent`"),
            "not-running: installed, but the agent does not answer (no socket); start it with `systemctl start rampart-agent`"
        );
        assert!(absent.line("").starts_with("not-installed"));
        assert!(running.line("").starts_with("running: Rampart agent 0.1.0"));
    }
}
