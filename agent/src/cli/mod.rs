//! The support CLI. Each subcommand is a module with its clap `Args` and a
//! `run` returning the process exit code; `main.rs` only dispatches.

pub mod check_clock;
pub mod diagnose;
pub mod doctor;
pub mod log_level;
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
