//! The support CLI. Each subcommand is a module with its clap `Args` and a
//! `run` returning the process exit code; `main.rs` only dispatches.

/// `println!` that returns a failed write as a [`StdoutError`] instead of
/// panicking: a reader that went away (`| head -1`) must end the command
/// quietly, which `main` does (see [`is_broken_pipe`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::cli::StdoutError)
    }};
}

/// `print!` that returns a failed write as a [`StdoutError`]; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*).map_err($crate::cli::StdoutError)
    }};
}

pub mod check_clock;
pub mod diagnose;
pub mod doctor;
pub mod log_level;
pub mod man;
pub mod policy;
pub mod run;
pub mod status;
pub mod update;
#[cfg(windows)]
pub mod windows_service;

/// How the CLI introduces itself in the IPC handshake.
pub const CLIENT_NAME: &str = concat!("rampart-agent-cli/", env!("CARGO_PKG_VERSION"));

/// Exit code for "the command itself failed" (bad arguments are clap's 2).
pub const EXIT_FAILURE: u8 = 3;

/// A write to the command's standard output failed. Its own type so that
/// only a closed stdout ends a command quietly, never a broken pipe to the
/// agent's socket.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output")]
pub struct StdoutError(#[source] pub std::io::Error);

/// Whether a command failed only because whoever reads its output went away
/// (`rampart-agent policy lint FILE | head -1`). Rust ignores SIGPIPE, so the
/// write fails with `BrokenPipe` instead; like ripgrep, the CLI then exits 0
/// without a message: the reader took what it wanted. SIGPIPE is not reset
/// to its default because `run` is the service in the same binary, and a
/// client hanging up on its socket must never kill it.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<StdoutError>()
            .is_some_and(|e| e.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A small current-thread runtime for commands that do a little async I/O.
pub fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let output = runtime.block_on(future);
    // A DNS lookup runs on a blocking thread that a timeout cannot cancel;
    // dropping the runtime normally would wait for it and outlast the
    // command's own timeout.
    runtime.shutdown_background();
    Ok(output)
}

/// Which installation a support command looks at: the flags `run` was
/// started with, so doctor and diagnose find the same files it uses.
#[derive(Debug, Clone, clap::Args)]
pub struct Installation {
    /// The agent's socket (default: $RAMPART_SOCKET, your dev agent, or the service).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// A per-user (`run --dev`) installation rather than the service.
    #[arg(long)]
    pub dev: bool,
    /// The install config the agent was started with (`run --config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// The agent's state directory (`run --state-dir`); logs are under it.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<std::path::PathBuf>,
}

/// Where an installation's files are, as `run` with the same flags uses them.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub paths: crate::paths::AgentPaths,
    /// The install config: `--config`, else the one beside the managed policy.
    pub config_file: std::path::PathBuf,
}

impl Installation {
    /// The socket to ask: `--socket`, else the default client socket.
    pub fn socket(&self) -> std::path::PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(crate::paths::default_client_socket)
    }

    /// Resolves the paths. `answering` is the mode of the agent that answered
    /// on the socket, if one did: a per-user agent answering without `--dev`
    /// means its files are per-user too.
    pub fn resolve(
        &self,
        answering: Option<rampart_shared::status::AgentMode>,
    ) -> anyhow::Result<Resolved> {
        use rampart_shared::status::AgentMode;
        let dev = self.dev
            || (self.state_dir.is_none() && answering.is_some_and(|m| m != AgentMode::System));
        let mode = if dev {
            AgentMode::Dev
        } else {
            AgentMode::System
        };
        let socket = self.socket();
        let paths = crate::paths::AgentPaths::with_overrides(
            mode,
            self.config.as_deref(),
            self.state_dir.as_deref(),
            Some(&socket),
        )?;
        let config_file = self
            .config
            .clone()
            .unwrap_or_else(|| paths.install_config());
        Ok(Resolved { paths, config_file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn only_a_closed_stdout_is_a_quiet_end() {
        let closed = anyhow::Error::from(StdoutError(Error::from(ErrorKind::BrokenPipe)));
        assert!(is_broken_pipe(&closed));
        assert!(is_broken_pipe(&closed.context("printing the report")));
        // A full disk behind a redirect is a real failure, said out loud.
        let full = anyhow::Error::from(StdoutError(Error::from(ErrorKind::StorageFull)));
        assert!(!is_broken_pipe(&full));
        assert_eq!(
            format!("{full:#}"),
            format!(
                "cannot write to standard output: {}",
                Error::from(ErrorKind::StorageFull)
            )
        );
        // The agent hanging up on the CLI's socket is not the reader going away.
        let socket = anyhow::Error::from(Error::from(ErrorKind::BrokenPipe));
        assert!(!is_broken_pipe(&socket));
    }
}
