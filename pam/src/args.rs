//! The module's arguments, as IT writes them after the module's path in a
//! PAM stack line: `socket=PATH`, `not_enrolled=ignore|allow|deny`,
//! `agent_down=deny|ignore`, `timeout=SECS`.

use std::path::PathBuf;
use std::time::Duration;

/// What to do for a user with no finished sign-in code setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEnrolled {
    /// PAM_IGNORE: the rest of the stack decides, as if the line were not
    /// there. The default: switching the module on locks nobody out who has
    /// not set up a code yet.
    Ignore,
    /// PAM_SUCCESS: let them in on this line's account.
    Allow,
    /// PAM_USER_UNKNOWN: only enrolled users may sign in.
    Deny,
}

/// What to do when the agent cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentDown {
    /// PAM_AUTHINFO_UNAVAIL. The default: stopping the agent must not be a
    /// way around the code.
    Deny,
    /// PAM_IGNORE: the rest of the stack decides.
    Ignore,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub socket: PathBuf,
    pub not_enrolled: NotEnrolled,
    pub agent_down: AgentDown,
    /// For connecting and for each answer.
    pub timeout: Duration,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            socket: rampart_shared::platform::LINUX_SYSTEM_SOCKET.into(),
            not_enrolled: NotEnrolled::Ignore,
            agent_down: AgentDown::Deny,
            timeout: Duration::from_secs(10),
        }
    }
}

/// An argument the module does not understand: the line is refused as a
/// whole (PAM_SERVICE_ERR), never half applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadArg(pub String);

impl std::error::Error for BadArg {}

impl std::fmt::Display for BadArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pam_rampart: the PAM line has an argument it does not know, \"{}\": IT must fix the line (arguments: socket=PATH, not_enrolled=ignore|allow|deny, agent_down=deny|ignore, timeout=SECS)",
            self.0
        )
    }
}

pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Args, BadArg> {
    let mut out = Args::default();
    for arg in args {
        let bad = || BadArg(arg.to_owned());
        let (key, value) = arg.split_once('=').ok_or_else(bad)?;
        match (key, value) {
            ("socket", path) if !path.is_empty() => out.socket = path.into(),
            ("not_enrolled", "ignore") => out.not_enrolled = NotEnrolled::Ignore,
            ("not_enrolled", "allow") => out.not_enrolled = NotEnrolled::Allow,
            ("not_enrolled", "deny") => out.not_enrolled = NotEnrolled::Deny,
            ("agent_down", "deny") => out.agent_down = AgentDown::Deny,
            ("agent_down", "ignore") => out.agent_down = AgentDown::Ignore,
            ("timeout", secs) => {
                let secs: u64 = secs.parse().map_err(|_| bad())?;
                if !(1..=120).contains(&secs) {
                    return Err(bad());
                }
                out.timeout = Duration::from_secs(secs);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ignore_the_unenrolled_and_deny_without_the_agent() {
        let args = parse([]).unwrap();
        assert_eq!(args.socket, PathBuf::from("/run/rampart/agent.sock"));
        assert_eq!(args.not_enrolled, NotEnrolled::Ignore);
        assert_eq!(args.agent_down, AgentDown::Deny);
        assert_eq!(args.timeout, Duration::from_secs(10));
    }

    #[test]
    fn every_argument() {
        let args = parse([
            "socket=/tmp/a.sock",
            "not_enrolled=deny",
            "agent_down=ignore",
            "timeout=3",
        ])
        .unwrap();
        assert_eq!(
            args,
            Args {
                socket: "/tmp/a.sock".into(),
                not_enrolled: NotEnrolled::Deny,
                agent_down: AgentDown::Ignore,
                timeout: Duration::from_secs(3),
            }
        );
        assert_eq!(
            parse(["not_enrolled=allow"]).unwrap().not_enrolled,
            NotEnrolled::Allow
        );
    }

    #[test]
    fn an_unknown_or_bad_argument_refuses_the_line() {
        for bad in [
            "debug",
            "not_enrolled=maybe",
            "agent_down=allow",
            "timeout=0",
            "timeout=x",
            "socket=",
        ] {
            let err = parse([bad]).unwrap_err();
            assert_eq!(err.0, bad);
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
    }
}
