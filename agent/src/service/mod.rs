//! The agent service: one event loop over every cause of work.
//!
//! - `core`: [`Core`], what the agent has measured and the status derived
//!   from it, with no I/O.
//! - `shell`: the `Shell`, which owns the parts that do I/O (the policy
//!   store, the MFA engine, the reporter) and the timers.
//! - `main_loop`: waits for the next [`Event`], lets the shell decide,
//!   starts the checks the decision calls for as tasks that report back with
//!   another event, and publishes the new status snapshot, which the IPC
//!   server hands out and pushes to subscribers.
//! - `handlers`: the IPC requests the loop answers.
//! - `duo_jobs`: MFA commands waiting on a Duo exchange.
//! - `signin`: `verify_signin`, with a recovery code checked off the loop.
//!
//! This file is the public face: [`start`], the [`RunningAgent`] handle and
//! the [`Event`]s the loop runs on.

mod core;
mod duo_jobs;
mod handlers;
mod main_loop;
mod shell;
mod signin;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_shared::ipc::LogLevel;
use rampart_shared::status::AgentMode;
use rampart_shared::version::Version;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use self::core::Core;
pub use self::duo_jobs::DuoJob;
use self::main_loop::Publisher;
use self::shell::Shell;
use crate::clock::ClockReport;
use crate::config::InstallConfig;
use crate::fsutil::{self, FsError};
use crate::ipc::server::{IpcCommand, IpcTimeouts, ServerContext};
use crate::ipc::{self, current_user};
use crate::mfa;
use crate::network;
use crate::paths::AgentPaths;
use crate::policy::FetchOutcome;
use crate::report;
use crate::update::UpdateOutcome;

/// Changes the log filter at run time; the binary and the app each install
/// their own subscriber, so each supplies its own control.
pub type LogControl = Arc<dyn Fn(LogLevel) -> Result<(), LogControlError> + Send + Sync>;

/// Why a [`LogControl`] could not change the level. The words go back to
/// whoever asked over IPC.
#[derive(Debug, thiserror::Error)]
pub enum LogControlError {
    // tracing-subscriber's words are part of the message, not a `source`:
    // an error chain would say them twice.
    /// The reloadable filter is gone (its subscriber was dropped).
    #[error("cannot change the log level: {0}")]
    Reload(tracing_subscriber::reload::Error),
}

/// How long one SNTP round may take, DNS included.
pub const CLOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long reaching one endpoint may take, DNS included.
pub const NETWORK_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the network is checked when nothing asks sooner.
pub const NETWORK_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How often the release feed is asked (the first time: after the first
/// clock check).
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(6 * 60 * 60);
/// The directories under the state directory that `fsutil::write_atomic`
/// writes (`""` is the state directory itself: the policy copy, the update
/// floor; then MFA state and the report queue), swept at start for the
/// temporary files of writes a crash interrupted.
const STATE_DIRS_WRITTEN: [&str; 3] = ["", "mfa", "reports"];

/// How often the managed policy file and policy expiry are looked at.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct AgentConfig {
    pub mode: AgentMode,
    pub paths: AgentPaths,
    /// The install config (policy URL, pinned keys, device id), if any.
    pub install: Option<InstallConfig>,
    /// Why the install config could not be used, for the status.
    pub install_error: Option<String>,
    pub ipc_timeouts: IpcTimeouts,
    pub log_control: Option<LogControl>,
}

impl AgentConfig {
    /// A config that reads the install config from `paths`, as the service does.
    pub fn new(mode: AgentMode, paths: AgentPaths) -> Self {
        let (install, install_error) = match InstallConfig::load_effective(&paths.install_config())
        {
            Ok(install) => (install, None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self {
            mode,
            paths,
            install,
            install_error,
            ipc_timeouts: IpcTimeouts::default(),
            log_control: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Bind(#[from] ipc::BindError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("the agent task failed: {0}")]
    Task(String),
}

/// Every cause of work the agent has.
#[derive(Debug)]
pub enum Event {
    /// A client asked for something that needs the loop.
    Ipc(IpcCommand),
    /// A timer fired.
    Due(Timer),
    ClockChecked(ClockReport),
    NetworkChecked(Vec<network::Reached>),
    PolicyFetched(FetchOutcome),
    /// A report delivery finished (delivered, refused, or to be retried).
    ReportSent(report::SendOutcome),
    /// A self-update check (and maybe update) finished.
    UpdateChecked(UpdateOutcome),
    /// Duo answered an exchange an MFA command (or a refresh) needed.
    DuoAnswered(Box<DuoJob>, mfa::duo::DuoReply),
    /// A recovery code typed at a sign-in was hashed off the loop.
    RecoveryChecked(Box<signin::RecoveryCheck>),
    /// Stop: a signal, or the embedding app quitting.
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Clock,
    Network,
    Policy,
    Housekeeping,
    /// Deliver the oldest queued report.
    ReportSend,
    /// Make the periodic report.
    ReportInterval,
    /// Ask the release feed for a newer signed release.
    Update,
}

/// Why the agent stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Someone asked: a signal, or the embedding app quitting.
    Requested,
    /// It replaced its own binary and stopped so that the service manager
    /// starts the new one (systemd `Restart=always`, launchd `KeepAlive`).
    Updated { to: String },
}

/// A started agent. Dropping it does not stop it; call [`RunningAgent::stop`].
pub struct RunningAgent {
    socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<StopReason>,
    /// Set once the task has been awaited to completion.
    finished: Option<StopReason>,
}

impl RunningAgent {
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Stops the loop and the IPC server and removes the socket.
    pub async fn stop(mut self) -> Result<StopReason, AgentError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.stopped().await
    }

    /// Waits until the agent stops, by request or on its own.
    pub async fn stopped(&mut self) -> Result<StopReason, AgentError> {
        if let Some(reason) = &self.finished {
            return Ok(reason.clone());
        }
        let reason = (&mut self.task)
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?;
        self.finished = Some(reason.clone());
        Ok(reason)
    }
}

/// Prepares the directories, binds the socket and starts the agent on the
/// current tokio runtime. Returns once the socket accepts connections.
pub async fn start(config: AgentConfig) -> Result<RunningAgent, AgentError> {
    fsutil::ensure_private_dir(&config.paths.state_dir)?;
    #[cfg(windows)]
    if config.mode == AgentMode::System {
        let secret_files: Vec<std::path::PathBuf> = config
            .install
            .as_ref()
            .and_then(|i| i.report_secret_file.clone())
            .into_iter()
            .collect();
        crate::winsec::enforce(
            &config.paths.config_dir,
            &secret_files,
            &config.paths.state_dir,
            &config.paths.log_dir,
        );
    }
    let started = std::time::SystemTime::now();
    let listener = ipc::bind(&config.paths.socket, config.mode == AgentMode::System).await?;
    let socket = listener.path().to_owned();
    // Only once the socket is ours: another agent on the same state
    // directory would have refused the bind, so no writer of these files is
    // running but this one.
    for dir in STATE_DIRS_WRITTEN {
        fsutil::remove_stale_temps(&config.paths.state_dir.join(dir), started);
    }
    if let Some(error) = &config.install_error {
        warn!(%error, "install config ignored");
    }

    let shell = Shell::open(config)?;
    let mode = shell.config.mode;
    let (status_tx, status_rx) = watch::channel(Arc::new(shell.status()));
    let (policy_tx, policy_rx) = watch::channel(Arc::new(shell.policy_in_force()));
    let (owner_tx, owner_rx) = watch::channel(shell.mfa_owner(None).map(|o| o.id));
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let (shutdown_tx, shutdown_rx) = oneshot::channel();

    let server = ServerContext {
        status: status_rx,
        policy: policy_rx,
        commands: commands_tx,
        agent_user: current_user(),
        owner: owner_rx,
        mode,
        started: Instant::now(),
        timeouts: shell.config.ipc_timeouts,
        status_cache: Default::default(),
    };
    info!(socket = %socket.display(), ?mode, version = %Version::current(), "Rampart agent started");
    let task = tokio::spawn(async move {
        let server_task = tokio::spawn(ipc::server::serve(listener, server));
        let publisher = Publisher {
            status: status_tx,
            policy: policy_tx,
            owner: owner_tx,
        };
        let reason = main_loop::run(shell, commands_rx, shutdown_rx, publisher).await;
        // Aborting the server drops the listener, which removes the socket.
        server_task.abort();
        let _ = server_task.await;
        info!(?reason, "Rampart agent stopped");
        reason
    });
    Ok(RunningAgent {
        socket,
        shutdown: Some(shutdown_tx),
        task,
        finished: None,
    })
}
