//! The agent service: one event loop over every cause of work.
//!
//! [`Core`] is the functional core: it holds the agent's knowledge and derives
//! the status from it, with no I/O. The loop in [`run_loop`] is the imperative
//! shell: it waits for the next [`Event`], lets the core decide, performs the
//! I/O the decision calls for, and publishes the new status snapshot, which
//! the IPC server hands out and pushes to subscribers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rampart_shared::ipc::{ErrorCode, IpcError, LogLevel, Request, Response};
use rampart_shared::mfa::MfaCommand;
use rampart_shared::policy::Policy;
use rampart_shared::status::{
    AgentMode, AgentSection, AgentStatus, ClockSection, ClockState, MfaSection, NetworkSection,
    NetworkState, PolicySection, PolicySource, STATUS_SCHEMA, UpdateSection, UpdateState, assess,
};
use rampart_shared::version::Version;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::fsutil::{self, FsError};
use crate::ipc::server::{IpcCommand, IpcTimeouts, PolicyInForce, ServerContext};
use crate::ipc::{self, Peer, current_uid, user_name};
use crate::mfa::{self, MfaEngine, UserKey};
use crate::paths::AgentPaths;

/// Changes the log filter at run time; the binary and the app each install
/// their own subscriber, so each supplies its own control.
pub type LogControl = Arc<dyn Fn(LogLevel) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
pub struct AgentConfig {
    pub mode: AgentMode,
    pub paths: AgentPaths,
    pub ipc_timeouts: IpcTimeouts,
    pub log_control: Option<LogControl>,
}

impl AgentConfig {
    pub fn new(mode: AgentMode, paths: AgentPaths) -> Self {
        Self {
            mode,
            paths,
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
    /// Stop: a signal, or the embedding app quitting.
    Shutdown,
}

/// A started agent. Dropping it does not stop it; call [`RunningAgent::stop`].
pub struct RunningAgent {
    socket: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningAgent {
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Stops the loop and the IPC server and removes the socket.
    pub async fn stop(mut self) -> Result<(), AgentError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Waits until the agent stops.
    pub async fn wait(self) -> Result<(), AgentError> {
        self.task.await.map_err(|e| AgentError::Task(e.to_string()))
    }
}

/// Prepares the directories, binds the socket and starts the agent on the
/// current tokio runtime. Returns once the socket accepts connections.
pub async fn start(config: AgentConfig) -> Result<RunningAgent, AgentError> {
    fsutil::ensure_private_dir(&config.paths.state_dir)?;
    let listener = ipc::bind(&config.paths.socket, config.mode == AgentMode::System).await?;
    let socket = listener.path().to_owned();

    let mfa = MfaEngine::open(&config.paths.state_dir.join("mfa"))?;
    let core = Core::new(
        config.mode,
        Policy::default(),
        PolicySource::Builtin,
        Utc::now(),
    );
    let agent_user = match config.mode {
        // In dev and embedded mode the agent runs as the person at the
        // screen: theirs is the enrollment. The system service learns its
        // owner from the first user who enrolls.
        AgentMode::Dev | AgentMode::Embedded => current_uid().map(|uid| UserKey {
            uid,
            name: user_name(uid),
        }),
        AgentMode::System => None,
    };
    let mode = config.mode;
    let ipc_timeouts = config.ipc_timeouts;
    let shell = Shell {
        core,
        mfa,
        agent_user,
        config,
    };
    let (status_tx, status_rx) = watch::channel(Arc::new(shell.status()));
    let (policy_tx, policy_rx) = watch::channel(Arc::new(shell.core.policy.clone()));
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let (shutdown_tx, shutdown_rx) = oneshot::channel();

    let server = ServerContext {
        status: status_rx,
        policy: policy_rx,
        commands: commands_tx,
        agent_uid: current_uid(),
        mode,
        started: Instant::now(),
        timeouts: ipc_timeouts,
        status_cache: Default::default(),
    };
    info!(socket = %socket.display(), ?mode, version = %Version::current(), "Rampart agent started");
    let task = tokio::spawn(async move {
        let server_task = tokio::spawn(ipc::server::serve(listener, server));
        let publisher = Publisher {
            status: status_tx,
            policy: policy_tx,
        };
        run_loop(shell, commands_rx, shutdown_rx, publisher).await;
        // Aborting the server drops the listener, which removes the socket.
        server_task.abort();
        let _ = server_task.await;
        info!("Rampart agent stopped");
    });
    Ok(RunningAgent {
        socket,
        shutdown: Some(shutdown_tx),
        task,
    })
}

struct Publisher {
    status: watch::Sender<Arc<AgentStatus>>,
    policy: watch::Sender<Arc<PolicyInForce>>,
}

impl Publisher {
    /// Publishes only real changes, so subscribers are woken only for them.
    fn publish(&self, shell: &Shell) {
        let core = &shell.core;
        let status = shell.status();
        self.status.send_if_modified(|current| {
            let changed = **current != status;
            if changed {
                *current = Arc::new(status);
            }
            changed
        });
        self.policy.send_if_modified(|current| {
            let changed = **current != core.policy;
            if changed {
                *current = Arc::new(core.policy.clone());
            }
            changed
        });
    }
}

/// The imperative shell's state: the pure core plus the parts that own I/O.
struct Shell {
    core: Core,
    mfa: MfaEngine,
    /// The enrollment this agent reports on in dev and embedded mode.
    agent_user: Option<UserKey>,
    config: AgentConfig,
}

impl Shell {
    fn status(&self) -> AgentStatus {
        let policy = &self.core.policy.policy;
        let mfa = match self.mfa_owner(None) {
            Some(owner) => self.mfa.section(&owner, policy),
            None => mfa::section::section(None, policy),
        };
        self.core.status(mfa)
    }

    /// Whose enrollment a request (or, with no peer, the status) is about: the
    /// agent's user in dev mode; in system mode the device's enrolled user,
    /// or the asking user when nobody has enrolled yet.
    fn mfa_owner(&self, peer: Option<&mfa::Peer>) -> Option<UserKey> {
        if let Some(user) = &self.agent_user {
            return Some(user.clone());
        }
        self.mfa
            .users()
            .next()
            .cloned()
            .or_else(|| peer.map(mfa::Peer::key))
    }

    fn handle_request(&mut self, peer: Peer, request: Request) -> Result<Response, IpcError> {
        match request {
            Request::SetLogLevel { level } => {
                let control = self.config.log_control.as_ref().ok_or_else(|| {
                    IpcError::new(
                        ErrorCode::Internal,
                        "this agent's log level cannot be changed at run time",
                    )
                })?;
                control(level).map_err(|e| IpcError::new(ErrorCode::Internal, e))?;
                info!(level = level.as_str(), "log level changed over IPC");
                Ok(Response::Accepted)
            }
            Request::Refresh { check } => {
                warn!(
                    ?check,
                    "refresh asked, but this agent has no checks to re-run yet"
                );
                Err(IpcError::new(
                    ErrorCode::Internal,
                    "this agent does not run clock or network checks yet",
                ))
            }
            Request::Mfa { command } => self.handle_mfa(peer, &command),
            other => Err(IpcError::new(
                ErrorCode::Internal,
                format!(
                    "\"{}\" is answered by the IPC server, not the event loop",
                    other.name()
                ),
            )),
        }
    }

    fn handle_mfa(&mut self, peer: Peer, command: &MfaCommand) -> Result<Response, IpcError> {
        let uid = peer.uid.ok_or_else(|| {
            IpcError::new(
                ErrorCode::PermissionDenied,
                "the agent cannot tell which user is asking, so it will not change MFA state",
            )
        })?;
        let peer = mfa::Peer {
            uid,
            user_name: user_name(uid),
        };
        let Some(owner) = self.mfa_owner(Some(&peer)) else {
            return Err(IpcError::new(
                ErrorCode::Internal,
                "no MFA owner can be determined",
            ));
        };
        let ctx = mfa::Ctx {
            now: Utc::now(),
            policy: &self.core.policy.policy,
            agent_version: Version::current(),
        };
        let view = self.mfa.reply(&peer, &owner, command, &ctx);
        Ok(Response::Enrollment {
            view: Box::new(view),
        })
    }
}

async fn run_loop(
    mut shell: Shell,
    mut commands: mpsc::Receiver<IpcCommand>,
    mut shutdown: oneshot::Receiver<()>,
    publisher: Publisher,
) {
    loop {
        let event = tokio::select! {
            Some(command) = commands.recv() => Event::Ipc(command),
            _ = &mut shutdown => Event::Shutdown,
        };
        match event {
            Event::Shutdown => break,
            Event::Ipc(IpcCommand {
                peer,
                request,
                reply,
            }) => {
                let result = shell.handle_request(peer, request);
                let _ = reply.send(result);
            }
        }
        publisher.publish(&shell);
    }
}

/// What the agent knows, and the status derived from it. No I/O.
#[derive(Debug, Clone)]
pub struct Core {
    mode: AgentMode,
    started_at: DateTime<Utc>,
    pid: u32,
    policy: PolicyInForce,
    policy_fetched_at: Option<DateTime<Utc>>,
    policy_error: Option<String>,
    clock: ClockSection,
    network: NetworkSection,
}

impl Core {
    pub fn new(mode: AgentMode, policy: Policy, source: PolicySource, now: DateTime<Utc>) -> Self {
        let max_skew_ms = policy.clock.max_skew_secs * 1000;
        Self {
            mode,
            started_at: now,
            pid: std::process::id(),
            policy: PolicyInForce { source, policy },
            policy_fetched_at: None,
            policy_error: None,
            clock: ClockSection {
                state: ClockState::Unknown,
                offset_ms: None,
                uncertainty_ms: None,
                max_skew_ms,
                server: None,
                checked_at: None,
                detail: "not checked yet".to_owned(),
            },
            network: NetworkSection {
                state: NetworkState::Unknown,
                checked_at: None,
                detail: "not checked yet".to_owned(),
            },
        }
    }

    /// The full status. `uptime_secs` is left at 0: the IPC server fills it
    /// in at read time so that the snapshot only changes when facts do.
    pub fn policy(&self) -> &Policy {
        &self.policy.policy
    }

    /// The status before anyone has enrolled: what a fresh device reports.
    pub fn status_without_enrollment(&self) -> AgentStatus {
        self.status(mfa::section::section(None, self.policy()))
    }

    pub fn status(&self, mfa: MfaSection) -> AgentStatus {
        let policy = &self.policy.policy;
        let mut status = AgentStatus {
            schema: STATUS_SCHEMA,
            overall: rampart_shared::status::Overall::Healthy,
            agent: AgentSection {
                version: Version::current(),
                mode: self.mode,
                pid: self.pid,
                started_at: self.started_at,
                uptime_secs: 0,
            },
            policy: PolicySection {
                source: self.policy.source,
                serial: policy.serial,
                fetched_at: self.policy_fetched_at,
                error: self.policy_error.clone(),
                mfa_required: policy.mfa.required,
                provider: policy.mfa.provider.kind(),
            },
            clock: self.clock.clone(),
            network: self.network.clone(),
            mfa,
            update: update_section(Version::current(), policy.agent.min_version),
        };
        status.overall = assess(&status).overall;
        status
    }
}

/// Whether this build meets the policy's minimum version, in words.
pub fn update_section(current: Version, min_version: Option<Version>) -> UpdateSection {
    let (state, detail) = match min_version {
        Some(min) if current < min => (
            UpdateState::UpdateRequired,
            format!("Rampart {min} or later is required; this is {current}"),
        ),
        Some(min) => (
            UpdateState::NotChecked,
            format!("Rampart {current} meets the required {min}"),
        ),
        None => (
            UpdateState::NotChecked,
            format!("Rampart {current}; policy sets no minimum version"),
        ),
    };
    UpdateSection {
        state,
        current_version: current,
        min_version,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_shared::status::{MfaState, Overall};

    #[test]
    fn fresh_agent_with_builtin_policy_needs_mfa_setup() {
        let core = Core::new(
            AgentMode::Dev,
            Policy::default(),
            PolicySource::Builtin,
            Utc::now(),
        );
        let status = core.status_without_enrollment();
        assert_eq!(status.schema, STATUS_SCHEMA);
        assert_eq!(status.mfa.state, MfaState::NotSetUp);
        assert_eq!(status.clock.state, ClockState::Unknown);
        assert_eq!(status.clock.max_skew_ms, 30_000);
        assert_eq!(status.policy.source, PolicySource::Builtin);
        assert_eq!(status.overall, Overall::ActionNeeded);
    }

    #[test]
    fn mfa_not_required_by_policy() {
        let mut policy = Policy::default();
        policy.mfa.required = false;
        let core = Core::new(
            AgentMode::Dev,
            policy,
            PolicySource::ManagedFile,
            Utc::now(),
        );
        let status = core.status_without_enrollment();
        assert_eq!(status.mfa.state, MfaState::NotRequired);
        assert_eq!(status.overall, Overall::Healthy);
    }

    #[test]
    fn version_floor_in_words() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        let below = update_section(v("6.0.0"), Some(v("6.0.1")));
        assert_eq!(below.state, UpdateState::UpdateRequired);
        assert_eq!(
            below.detail,
            "Rampart 6.0.1 or later is required; this is 6.0.0"
        );
        assert_eq!(
            update_section(v("6.0.1"), Some(v("6.0.1"))).state,
            UpdateState::NotChecked
        );
        assert_eq!(
            update_section(v("6.0.1"), None).state,
            UpdateState::NotChecked
        );
    }
}
