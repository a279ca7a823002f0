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
