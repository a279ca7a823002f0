//! The agent service: one event loop over every cause of work.
//!
//! [`Core`] holds what the agent has measured and derives the status from it
//! with no I/O. [`Shell`] owns the parts that do I/O (the policy store, the MFA
//! engine) and the timers. The loop in [`run_loop`] waits for the next
//! [`Event`], lets the shell decide, starts the checks the decision calls for
//! as tasks that report back with another event, and publishes the new status
//! snapshot, which the IPC server hands out and pushes to subscribers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use rampart_shared::ipc::{Check, ErrorCode, IpcError, LogLevel, Request, Response};
use rampart_shared::mfa::MfaCommand;
use rampart_shared::policy::Policy;
use rampart_shared::status::{
    AgentMode, AgentSection, AgentStatus, ClockSection, ClockState, MfaSection, NetworkSection,
    NetworkState, PolicySection, ReportingSection, STATUS_SCHEMA, StorageSection, UpdateSection,
    assess,
};
use rampart_shared::user::UserId;
use rampart_shared::version::Version;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;
use tracing::{info, warn};

use crate::clock::{self, ClockReport, KodBackoff};
use crate::config::InstallConfig;
use crate::fsutil::{self, FsError};
use crate::ipc::server::{IpcCommand, IpcTimeouts, PolicyInForce, ServerContext};
use crate::ipc::{self, Peer, current_user, user_name};
use crate::mfa::{self, MfaEngine, UserKey};
use crate::network;
use crate::paths::AgentPaths;
use crate::policy::{FetchOutcome, PolicyStore};
use crate::report::{self, Reporter};
use crate::retry;
use crate::update::{self, ClockFacts, UpdateOutcome, apply::UpdateRequest};

/// Changes the log filter at run time; the binary and the app each install
/// their own subscriber, so each supplies its own control.
pub type LogControl = Arc<dyn Fn(LogLevel) -> Result<(), String> + Send + Sync>;

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
        let (install, install_error) = match InstallConfig::load(&paths.install_config()) {
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

/// Where an IPC request's answer goes.
type ReplyTo = oneshot::Sender<Result<Response, IpcError>>;
/// An answer ready to send.
type ReadyReply = (ReplyTo, Result<Response, IpcError>);

/// An MFA command waiting on Duo: what the loop needs to finish it.
pub struct DuoJob {
    peer: mfa::Peer,
    owner: UserKey,
    /// `None`: a status refresh.
    command: Option<MfaCommand>,
    call: mfa::duo::DuoCall,
    reply: Option<ReplyTo>,
}

impl std::fmt::Debug for DuoJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoJob")
            .field("owner", &self.owner.id)
            .field("command", &self.command)
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

/// Why the agent stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Someone asked: a signal, or the embedding app quitting.
    Requested,
    /// It replaced its own binary and stopped so that the service manager
    /// starts the new one (systemd `Restart=always`, launchd `KeepAlive`).
    Updated { to: Version },
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
        if let Some(reason) = self.finished {
            return Ok(reason);
        }
        let reason = (&mut self.task)
            .await
            .map_err(|e| AgentError::Task(e.to_string()))?;
        self.finished = Some(reason);
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

    let now = Utc::now();
    let policy = PolicyStore::load_at_start(&config.paths, config.install.as_ref(), now);
    let mfa = MfaEngine::open(&config.paths.state_dir.join("mfa"))?;
    let agent_user = match config.mode {
        // In dev and embedded mode the agent runs as the person at the
        // screen: theirs is the enrollment. The system service learns its
        // owner from the first user who enrolls.
        AgentMode::Dev | AgentMode::Embedded => current_user().map(|id| UserKey {
            name: user_name(&id),
            id,
        }),
        AgentMode::System => None,
    };
    let start = TokioInstant::now();
    let device_id = config
        .install
        .as_ref()
        .map_or_else(report::hostname, |i| i.device_id.clone());
    let secret_file = config
        .install
        .as_ref()
        .and_then(|i| i.report_secret_file.clone());
    let mut reporter = Reporter::open(&config.paths.state_dir, device_id, secret_file);
    reporter.configure(policy.in_force().0.reporting.as_ref());
    let shell = Shell {
        reporter,
        core: Core::new(config.mode, policy.in_force().0.clock.max_skew_secs, now),
        policy,
        mfa,
        agent_user,
        kod: KodBackoff::default(),
        managed_mtime: None,
        update: None,
        due: Due {
            clock: Some(start),
            network: Some(start),
            policy: Some(start),
            housekeeping: Some(start + HOUSEKEEPING_INTERVAL),
            // Set after the first clock check, whose result may pause updates.
            update: None,
        },
        in_flight: InFlight::default(),
        failures: Failures::default(),
        clock_ntp: None,
        date_samples: Vec::new(),
        clock_checked_at: None,
        duo_client: None,
        config,
    };
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
        let reason = run_loop(shell, commands_rx, shutdown_rx, publisher).await;
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

struct Publisher {
    status: watch::Sender<Arc<AgentStatus>>,
    policy: watch::Sender<Arc<PolicyInForce>>,
    /// The enrollment owner, for whom the IPC server keeps slots.
    owner: watch::Sender<Option<UserId>>,
}

impl Publisher {
    /// Publishes only real changes, so subscribers are woken only for them.
    fn publish(&self, shell: &Shell) {
        let status = shell.status();
        self.status.send_if_modified(|current| {
            let changed = **current != status;
            if changed {
                *current = Arc::new(status);
            }
            changed
        });
        let policy = shell.policy_in_force();
        self.policy.send_if_modified(|current| {
            let changed = **current != policy;
            if changed {
                *current = Arc::new(policy);
            }
            changed
        });
        let owner = shell.mfa_owner(None).map(|o| o.id);
        self.owner.send_if_modified(|current| {
            let changed = *current != owner;
            if changed {
                *current = owner;
            }
            changed
        });
    }
}

/// What the machine is told about this computer's clock: the last check's
/// offset, and how far the wall clock moved since that check.
fn computer_clock(
    section: &ClockSection,
    checked_at: Option<(chrono::DateTime<Utc>, std::time::Instant)>,
) -> mfa::ComputerClock {
    mfa::ComputerClock {
        offset_ms: section.offset_ms,
        moved_ms: checked_at
            .map(|then| clock::moved_ms(then, (Utc::now(), std::time::Instant::now()))),
    }
}

/// When each kind of work is next due (`None`: not scheduled).
#[derive(Debug)]
struct Due {
    clock: Option<TokioInstant>,
    network: Option<TokioInstant>,
    policy: Option<TokioInstant>,
    housekeeping: Option<TokioInstant>,
    update: Option<TokioInstant>,
}

/// Checks under way, so that a burst of "Check again" starts one, not ten.
#[derive(Debug, Default)]
struct InFlight {
    clock: bool,
    network: bool,
    policy: bool,
    update: bool,
    /// One Duo exchange at a time: Duo's own clients do the same per user.
    duo: bool,
}

/// Checks that failed in a row (`retry::next_check_in`): a clock check
/// that measured nothing, a network check that did not reach every endpoint.
#[derive(Debug, Default)]
struct Failures {
    clock: u32,
    network: u32,
}

impl Failures {
    fn count(count: &mut u32, failed: bool) -> u32 {
        *count = if failed { count.saturating_add(1) } else { 0 };
        *count
    }
}

/// The imperative shell's state: the pure core plus the parts that own I/O.
struct Shell {
    reporter: Reporter,
    core: Core,
    policy: PolicyStore,
    mfa: MfaEngine,
    /// The enrollment this agent reports on in dev and embedded mode.
    agent_user: Option<UserKey>,
    kod: KodBackoff,
    managed_mtime: Option<SystemTime>,
    /// The last self-update check's outcome (`None`: none has run).
    update: Option<UpdateOutcome>,
    due: Due,
    in_flight: InFlight,
    failures: Failures,
    /// The last clock round's own verdict, and whether no time server
    /// answered at all: the `Date` headers of the next network check may
    /// measure the clock instead (`clock::http_date::fallback`).
    clock_ntp: Option<(ClockSection, bool)>,
    /// The `Date` headers of the last network check.
    date_samples: Vec<clock::http_date::DateSample>,
    /// The wall and monotonic clocks when the last clock check finished:
    /// how far the wall clock moved since is measured against them.
    clock_checked_at: Option<(chrono::DateTime<Utc>, std::time::Instant)>,
    /// Built on first use from the policy's Duo provider; cleared when the
    /// policy changes. A failure is not kept: IT may fix the key file.
    duo_client: Option<crate::duo::DuoClient>,
    config: AgentConfig,
}

impl Shell {
    fn policy_in_force(&self) -> PolicyInForce {
        let (policy, source) = self.policy.in_force();
        PolicyInForce {
            source,
            policy: policy.clone(),
        }
    }

    fn status(&self) -> AgentStatus {
        let (policy, _) = self.policy.in_force();
        let mfa = match self.mfa_owner(None) {
            Some(owner) => self.mfa.section(&owner, policy),
            None => mfa::section::section(None, policy),
        };
        let mut policy_section = self.policy.section();
        if let Some(error) = &self.config.install_error {
            policy_section.error = Some(match policy_section.error {
                Some(e) => format!("{error}; {e}"),
                None => error.clone(),
            });
        }
        let update = update::section(
            Version::current(),
            policy.agent.min_version,
            self.update.as_ref(),
            || matches!(self.update_request(), Some(Ok(_))),
        );
        let storage = StorageSection {
            failures: [
                self.mfa.storage_failure(),
                self.policy.storage_failure(),
                self.reporter.storage_failure(),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
            reports_not_queued: self.reporter.not_queued(),
        };
        let reporting = ReportingSection {
            credential_error: self.reporter.credential_error().cloned(),
        };
        self.core
            .status(policy_section, mfa, update, storage, reporting)
    }

    /// The self-update request, when this agent updates itself at all: the
    /// installed service with a release feed and keys in its install config.
    /// A dev or embedded agent is a build tree's binary and never replaces
    /// itself; a package-managed one has no `update_source`.
    fn update_request(&self) -> Option<Result<UpdateRequest, String>> {
        if self.config.mode != AgentMode::System {
            return None;
        }
        let install = self.config.install.as_ref()?;
        let source = install.update_source.clone()?;
        let policy = self.policy.in_force().0;
        Some((|| {
            Ok(UpdateRequest {
                source,
                keys: install.update_keys()?,
                channel: policy.agent.update_channel,
                min_version: policy.agent.min_version,
                clock: ClockFacts {
                    state: self.core.clock.state,
                    offset_ms: self.core.clock.offset_ms,
                },
                state_dir: self.config.paths.state_dir.clone(),
                exe: std::env::current_exe()
                    .map_err(|e| format!("cannot find this binary's path: {e}"))?,
                current: Version::current(),
                apply: true,
            })
        })())
    }

    fn on_update_checked(&mut self, outcome: UpdateOutcome) {
        self.in_flight.update = false;
        info!(%outcome, "self-update check finished");
        self.update = Some(outcome);
        self.due.update = Some(TokioInstant::now() + UPDATE_INTERVAL);
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

    fn handle_request(
        &mut self,
        _peer: Peer,
        request: Request,
        events: &mpsc::Sender<Event>,
    ) -> Result<Response, IpcError> {
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
                let now = TokioInstant::now();
                if matches!(check, Check::All | Check::Clock) {
                    self.due.clock = Some(now);
                }
                if matches!(check, Check::All | Check::Network) {
                    self.due.network = Some(now);
                }
                if matches!(check, Check::All | Check::Policy) {
                    self.due.policy = Some(now);
                    self.due.housekeeping = Some(now);
                }
                if matches!(check, Check::All | Check::Network) {
                    self.reporter.kick();
                }
                if check == Check::All {
                    // A state file IT mended (or removed) counts now, not
                    // at the next start.
                    self.mfa.reload_broken();
                    self.refresh_duo_status(events);
                }
                Ok(Response::Accepted)
            }
            Request::Mfa { .. } => Err(IpcError::new(
                ErrorCode::Internal,
                "MFA commands are answered by handle_mfa",
            )),
            other => Err(IpcError::new(
                ErrorCode::Internal,
                format!(
                    "\"{}\" is answered by the IPC server, not the event loop",
                    other.name()
                ),
            )),
        }
    }

    /// Answers an MFA command now, or starts the Duo exchange it needs and
    /// answers when Duo has (`None`: the reply is on its way).
    fn handle_mfa(
        &mut self,
        peer: Peer,
        command: MfaCommand,
        to: ReplyTo,
        events: &mpsc::Sender<Event>,
    ) -> Option<ReadyReply> {
        let Some(id) = peer.user else {
            return Some((
                to,
                Err(IpcError::new(
                    ErrorCode::PermissionDenied,
                    "the agent cannot tell which user is asking, so it will not change MFA state",
                )),
            ));
        };
        let peer = mfa::Peer {
            user_name: user_name(&id),
            id,
            admin: peer.admin,
        };
        let Some(owner) = self.mfa_owner(Some(&peer)) else {
            return Some((
                to,
                Err(IpcError::new(
                    ErrorCode::Internal,
                    "no MFA owner can be determined",
                )),
            ));
        };
        let policy = self.policy.in_force().0;
        let ctx = mfa::Ctx {
            now: Utc::now(),
            policy,
            agent_version: Version::current(),
            clock: computer_clock(&self.core.clock, self.clock_checked_at),
        };
        let view = match self.mfa.plan(&peer, &owner, &command, &ctx) {
            mfa::Plan::Reply(view) => view,
            mfa::Plan::Duo(call) => {
                if self.in_flight.duo {
                    // A poll just gets the current view; anything else waits.
                    let view = if command == MfaCommand::CheckProgress {
                        self.mfa.reply(&peer, &owner, &command, &ctx)
                    } else {
                        let mut view =
                            self.mfa
                                .reply(&peer, &owner, &MfaCommand::CheckProgress, &ctx);
                        view.error = Some(mfa::MfaError::ProviderInFlight.view());
                        view
                    };
                    Box::new(view)
                } else {
                    let job = DuoJob {
                        peer,
                        owner,
                        command: Some(command),
                        call,
                        reply: Some(to),
                    };
                    return match self.start_duo(job, events) {
                        Ok(()) => None,
                        Err((to, view)) => Some((to, Ok(Response::Enrollment { view }))),
                    };
                }
            }
        };
        if view
            .error
            .as_ref()
            .and_then(|e| e.problem.as_ref())
            .is_some_and(|p| {
                matches!(
                    p.cause,
                    rampart_shared::cause::Cause::ComputerClockMoved { .. }
                )
            })
            && !self.in_flight.clock
        {
            // The clock was set since it was checked: check it again now,
            // so the status (and the wizard's clock line) says so too.
            self.due.clock = Some(TokioInstant::now());
        }
        Some((to, Ok(Response::Enrollment { view })))
    }

    /// The Duo client for the policy in force.
    fn duo_client(&mut self) -> Result<crate::duo::DuoClient, mfa::MfaError> {
        if let Some(client) = &self.duo_client {
            return Ok(client.clone());
        }
        let rampart_shared::policy::Provider::Duo {
            api_host,
            integration_key,
            secret_key_file,
            ..
        } = &self.policy.in_force().0.mfa.provider
        else {
            return Err(mfa::MfaError::ProviderError(
                "The policy no longer names Duo. Close the setup window and open it again.".into(),
            ));
        };
        let extra_ca = self
            .config
            .install
            .as_ref()
            .and_then(|i| i.extra_ca_file.as_deref());
        let built = crate::duo::DuoConfig::from_policy(
            api_host,
            integration_key,
            std::path::Path::new(secret_key_file),
            extra_ca,
        )
        .and_then(crate::duo::DuoClient::new);
        match built {
            Ok(client) => {
                self.duo_client = Some(client.clone());
                Ok(client)
            }
            Err(e) => {
                warn!(error = %e, "Duo client cannot be built");
                let mfa::duo::DuoFailure::Other(sentence) = mfa::duo_calls::describe(&e) else {
                    return Err(mfa::MfaError::ProviderError(e.to_string()));
                };
                Err(mfa::MfaError::ProviderError(sentence))
            }
        }
    }

    /// Starts the Duo exchange for `job` as a task that reports back with
    /// [`Event::DuoAnswered`]. When no client can be built, hands back the
    /// reply channel and the view that says why.
    fn start_duo(
        &mut self,
        mut job: DuoJob,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), (ReplyTo, Box<rampart_shared::mfa::EnrollmentView>)> {
        let client = match self.duo_client() {
            Ok(client) => client,
            Err(error) => {
                let policy = self.policy.in_force().0;
                let ctx = mfa::Ctx {
                    now: Utc::now(),
                    policy,
                    agent_version: Version::current(),
                    clock: mfa::ComputerClock::default(),
                };
                let mut view =
                    self.mfa
                        .reply(&job.peer, &job.owner, &MfaCommand::CheckProgress, &ctx);
                view.error = Some(error.view());
                return match job.reply.take() {
                    Some(to) => Err((to, Box::new(view))),
                    None => Ok(()),
                };
            }
        };
        self.in_flight.duo = true;
        let events = events.clone();
        tokio::spawn(async move {
            let reply = mfa::duo_calls::perform(&client, &job.call).await;
            let _ = events.send(Event::DuoAnswered(Box::new(job), reply)).await;
        });
        Ok(())
    }

    fn on_duo_answered(
        &mut self,
        mut job: DuoJob,
        reply: mfa::duo::DuoReply,
    ) -> Option<ReadyReply> {
        self.in_flight.duo = false;
        let policy = self.policy.in_force().0;
        let ctx = mfa::Ctx {
            now: Utc::now(),
            policy,
            agent_version: Version::current(),
            clock: mfa::ComputerClock::default(),
        };
        let view = self.mfa.finish_duo(
            &job.peer,
            &job.owner,
            job.command.as_ref(),
            &job.call,
            reply,
            &ctx,
        );
        job.reply.take().map(|to| {
            (
                to,
                Ok(Response::Enrollment {
                    view: Box::new(view),
                }),
            )
        })
    }

    /// The refresh button, for a Duo user: ask Duo whether it still has
    /// their phone (`/preauth`).
    fn refresh_duo_status(&mut self, events: &mpsc::Sender<Event>) {
        if self.in_flight.duo {
            return;
        }
        let Some(owner) = self.mfa_owner(None) else {
            return;
        };
        let Some(call) = self.mfa.status_refresh(&owner, self.policy.in_force().0) else {
            return;
        };
        let job = DuoJob {
            // The agent asks on the owner's behalf; no command runs.
            peer: mfa::Peer {
                id: owner.id.clone(),
                admin: false,
                user_name: owner.name.clone(),
            },
            owner,
            command: None,
            call,
            reply: None,
        };
        let _ = self.start_duo(job, events);
    }

    /// Starts the checks that are due and not already running.
    fn start_due_work(&mut self, timer: Timer, events: &mpsc::Sender<Event>) {
        let now = TokioInstant::now();
        match timer {
            Timer::Clock => {
                self.due.clock = None;
                if self.in_flight.clock {
                    return;
                }
                let configured = self.policy.in_force().0.clock.ntp_servers.clone();
                let servers = self.kod.allowed(&configured, now.into_std());
                let skipped = self.kod.skipped(&configured, now.into_std());
                self.in_flight.clock = true;
                let events = events.clone();
                tokio::spawn(async move {
                    let report = clock::query_servers(&servers, CLOCK_TIMEOUT)
                        .await
                        .with_skipped(skipped, &configured);
                    let _ = events.send(Event::ClockChecked(report)).await;
                });
            }
            Timer::Network => {
                self.due.network = None;
                if self.in_flight.network {
                    return;
                }
                let targets =
                    network::targets(self.policy.in_force().0, self.config.install.as_ref());
                let extra_ca = self
                    .config
                    .install
                    .as_ref()
                    .and_then(|i| i.extra_ca_file.clone());
                self.in_flight.network = true;
                let events = events.clone();
                tokio::spawn(async move {
                    // Unusable: the Date headers are asked for with the
                    // system's roots only (doctor says why it is unusable).
                    let roots = extra_ca
                        .and_then(|f| network::extra_roots(&f).ok())
                        .unwrap_or_default();
                    let results = network::check(targets, NETWORK_TIMEOUT, roots).await;
                    let _ = events.send(Event::NetworkChecked(results)).await;
                });
            }
            Timer::Policy => {
                self.due.policy = None;
                if self.in_flight.policy {
                    return;
                }
                self.in_flight.policy = true;
                let poll = self.policy.poll_request();
                let events = events.clone();
                tokio::spawn(async move {
                    let outcome = poll.run().await;
                    let _ = events.send(Event::PolicyFetched(outcome)).await;
                });
            }
            Timer::Housekeeping => {
                self.due.housekeeping = Some(now + HOUSEKEEPING_INTERVAL);
                let now_utc = Utc::now();
                let mut changed = self.policy.check_expiry(now_utc);
                if let Some(applied) = self.policy.take_reset_request(now_utc) {
                    changed |= applied.changed;
                }
                self.policy.retry_save();
                if self.reporting().is_some() {
                    let status = self.status();
                    let owner = self.mfa_owner(None);
                    let enrollment = owner.as_ref().and_then(|o| self.mfa.enrollment(o));
                    self.reporter.retry_lost(&status, enrollment);
                }
                let mtime = std::fs::metadata(self.config.paths.managed_policy())
                    .and_then(|m| m.modified())
                    .ok();
                if mtime != self.managed_mtime {
                    self.managed_mtime = mtime;
                    changed |= self.policy.reload_managed(now_utc).changed;
                }
                if changed {
                    self.policy_changed();
                }
            }
            Timer::Update => {
                self.due.update = None;
                if self.in_flight.update {
                    return;
                }
                match self.update_request() {
                    None => {}
                    Some(Err(why)) => {
                        self.update = Some(UpdateOutcome::Failed(why));
                        self.due.update = Some(now + UPDATE_INTERVAL);
                    }
                    Some(Ok(request)) => {
                        self.in_flight.update = true;
                        let events = events.clone();
                        tokio::spawn(async move {
                            let outcome = update::apply::check_and_apply(request).await;
                            let _ = events.send(Event::UpdateChecked(outcome)).await;
                        });
                    }
                }
            }
            Timer::ReportSend => {
                let Some(url) = self.reporting().map(|r| r.url.clone()) else {
                    self.reporter.send_due = None;
                    return;
                };
                if let Some(delivery) = self.reporter.next_delivery() {
                    let events = events.clone();
                    tokio::spawn(async move {
                        let outcome = report::send(delivery, url).await;
                        let _ = events.send(Event::ReportSent(outcome)).await;
                    });
                }
            }
            Timer::ReportInterval => {
                self.make_report("interval");
                self.reporter
                    .configure(self.policy.in_force().0.reporting.as_ref());
            }
        }
    }

    fn reporting(&self) -> Option<&rampart_shared::policy::Reporting> {
        self.policy.in_force().0.reporting.as_ref()
    }

    /// Queues a report of the current status, if the policy asks for them.
    fn make_report(&mut self, reason: &str) {
        if self.reporting().is_none() {
            return;
        }
        let status = self.status();
        let owner = self.mfa_owner(None);
        let enrollment = owner.as_ref().and_then(|o| self.mfa.enrollment(o));
        self.reporter.enqueue(&status, enrollment, reason);
    }

    /// A report on start and whenever what IT sees changes.
    fn report_if_changed(&mut self) {
        if self.reporting().is_none() {
            return;
        }
        let status = self.status();
        if self.reporter.changed(&status) {
            let reason = if self.reporter.has_reported() {
                "status_change"
            } else {
                "start"
            };
            self.make_report(reason);
        }
    }

    fn on_clock_checked(&mut self, report: ClockReport) {
        self.in_flight.clock = false;
        let now = TokioInstant::now();
        self.kod.observe(&report, now.into_std());
        let clock_policy = &self.policy.in_force().0.clock;
        let max_skew = Duration::from_secs(clock_policy.max_skew_secs);
        let ntp = clock::to_section(&report, max_skew, Utc::now());
        let no_answer = matches!(
            clock::estimate(&report.results, max_skew),
            Err(clock::NoEstimate::NoAnswer)
        );
        // A failure for the retry: no time server measured the clock, even
        // when a Date header did.
        let failed = ntp.state == ClockState::Unknown;
        self.core.clock = clock::http_date::fallback(ntp.clone(), no_answer, &self.date_samples);
        self.clock_ntp = Some((ntp, no_answer));
        self.clock_checked_at = Some((Utc::now(), std::time::Instant::now()));
        let failures = Failures::count(&mut self.failures.clock, failed);
        let next = retry::next_check_in(
            failures,
            Duration::from_secs(clock_policy.check_interval_secs),
        );
        self.due.clock = Some(now + next);
        info!(state = ?self.core.clock.state, detail = %self.core.clock.detail, next_in_secs = next.as_secs(), "clock checked");
        if self.update.is_none() && self.due.update.is_none() && !self.in_flight.update {
            self.due.update = Some(now);
        }
    }

    fn on_network_checked(&mut self, results: &[network::Reached]) {
        self.in_flight.network = false;
        self.core.network = network::to_section(results, Utc::now());
        self.date_samples = network::date_samples(results);
        if let Some((ntp, no_answer)) = &self.clock_ntp {
            self.core.clock =
                clock::http_date::fallback(ntp.clone(), *no_answer, &self.date_samples);
        }
        let failed = self.core.network.state != NetworkState::Online;
        let failures = Failures::count(&mut self.failures.network, failed);
        let next = retry::next_check_in(failures, NETWORK_INTERVAL);
        self.due.network = Some(TokioInstant::now() + next);
        info!(state = ?self.core.network.state, detail = %self.core.network.detail, next_in_secs = next.as_secs(), "network checked");
    }

    fn on_policy_fetched(&mut self, outcome: FetchOutcome) {
        self.in_flight.policy = false;
        let applied = self.policy.apply(outcome, Utc::now());
        if let Some(why) = &applied.rejected {
            warn!(%why, "policy rejected; the policy in force stays");
        }
        self.due.policy = applied.next_poll.map(|d| TokioInstant::now() + d);
        if applied.changed {
            self.policy_changed();
        }
    }

    /// New NTP servers, endpoints or skew take effect at once.
    fn policy_changed(&mut self) {
        let (policy, source) = self.policy.in_force();
        info!(?source, serial = policy.serial, "policy in force changed");
        self.duo_client = None;
        self.core.clock.max_skew_ms = policy.clock.max_skew_secs * 1000;
        let reporting = policy.reporting.clone();
        self.reporter.configure(reporting.as_ref());
        self.reporter.kick();
        let now = TokioInstant::now();
        self.due.clock = Some(now);
        self.due.network = Some(now);
        // A new minimum version or channel is acted on at once.
        if self.update.is_some() {
            self.due.update = Some(now);
        }
    }
}

async fn run_loop(
    mut shell: Shell,
    mut commands: mpsc::Receiver<IpcCommand>,
    mut shutdown: oneshot::Receiver<()>,
    publisher: Publisher,
) -> StopReason {
    let (events_tx, mut events_rx) = mpsc::channel(16);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => Event::Shutdown,
            Some(command) = commands.recv() => Event::Ipc(command),
            Some(event) = events_rx.recv() => event,
            () = sleep_until(shell.due.clock) => Event::Due(Timer::Clock),
            () = sleep_until(shell.due.network) => Event::Due(Timer::Network),
            () = sleep_until(shell.due.policy) => Event::Due(Timer::Policy),
            () = sleep_until(shell.due.housekeeping) => Event::Due(Timer::Housekeeping),
            () = sleep_until(shell.reporter.send_due) => Event::Due(Timer::ReportSend),
            () = sleep_until(shell.reporter.interval_due) => Event::Due(Timer::ReportInterval),
            () = sleep_until(shell.due.update) => Event::Due(Timer::Update),
        };
        let mut reply = None;
        match event {
            Event::Shutdown => return StopReason::Requested,
            Event::Ipc(IpcCommand {
                peer,
                request: Request::Mfa { command },
                reply: to,
            }) => reply = shell.handle_mfa(peer, command, to, &events_tx),
            Event::Ipc(IpcCommand {
                peer,
                request,
                reply: to,
            }) => reply = Some((to, shell.handle_request(peer, request, &events_tx))),
            Event::DuoAnswered(job, answer) => reply = shell.on_duo_answered(*job, answer),
            Event::Due(timer) => shell.start_due_work(timer, &events_tx),
            Event::ClockChecked(report) => shell.on_clock_checked(report),
            Event::NetworkChecked(results) => shell.on_network_checked(&results),
            Event::PolicyFetched(outcome) => shell.on_policy_fetched(outcome),
            Event::ReportSent(outcome) => shell.reporter.on_sent(outcome),
            Event::UpdateChecked(outcome) => shell.on_update_checked(outcome),
        }
        shell.report_if_changed();
        // Publish before replying: a client that reads the status right
        // after its own request must see the request's effect.
        publisher.publish(&shell);
        if let Some((to, result)) = reply {
            let _ = to.send(result);
        }
        if let Some(UpdateOutcome::Updated { to, .. }) = shell.update
            && shell.config.mode == AgentMode::System
        {
            info!(%to, "updated; stopping so that the service manager starts the new binary");
            return StopReason::Updated { to };
        }
    }
}

async fn sleep_until(at: Option<TokioInstant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the agent has measured, and the status derived from it. No I/O.
#[derive(Debug, Clone)]
pub struct Core {
    mode: AgentMode,
    started_at: DateTime<Utc>,
    pid: u32,
    pub clock: ClockSection,
    pub network: NetworkSection,
}

impl Core {
    pub fn new(mode: AgentMode, max_skew_secs: u64, now: DateTime<Utc>) -> Self {
        Self {
            mode,
            started_at: now,
            pid: std::process::id(),
            clock: ClockSection {
                state: ClockState::Unknown,
                offset_ms: None,
                uncertainty_ms: None,
                max_skew_ms: max_skew_secs * 1000,
                server: None,
                checked_at: None,
                detail: "not checked yet".to_owned(),
                source: None,
                problem: None,
            },
            network: NetworkSection {
                state: NetworkState::Unknown,
                checked_at: None,
                detail: "not checked yet".to_owned(),
                problems: Vec::new(),
            },
        }
    }

    /// The full status. `uptime_secs` is left at 0: the IPC server fills it
    /// in at read time so that the snapshot only changes when facts do.
    pub fn status(
        &self,
        policy_section: PolicySection,
        mfa: MfaSection,
        update: UpdateSection,
        storage: StorageSection,
        reporting: ReportingSection,
    ) -> AgentStatus {
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
            policy: policy_section,
            clock: self.clock.clone(),
            network: self.network.clone(),
            mfa,
            update,
            storage,
            reporting,
        };
        status.overall = assess(&status).overall;
        status
    }

    /// The status of a fresh device on the built-in policy, before any check
    /// or enrollment: what tests and benchmarks start from.
    pub fn fresh_status(mode: AgentMode, now: DateTime<Utc>) -> AgentStatus {
        let policy = Policy::default();
        let section = PolicySection {
            source: rampart_shared::status::PolicySource::Builtin,
            serial: policy.serial,
            fetched_at: None,
            error: None,
            fetch_error: None,
            kept: None,
            mfa_required: policy.mfa.required,
            provider: policy.mfa.provider.kind(),
        };
        let mfa = mfa::section::section(None, &policy);
        let update = update::section(Version::current(), policy.agent.min_version, None, || false);
        Self::new(mode, policy.clock.max_skew_secs, now).status(
            section,
            mfa,
            update,
            StorageSection::default(),
            ReportingSection::default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_shared::status::{MfaState, Overall, PolicySource};

    #[test]
    fn fresh_agent_with_builtin_policy_needs_mfa_setup() {
        let status = Core::fresh_status(AgentMode::Dev, Utc::now());
        assert_eq!(status.schema, STATUS_SCHEMA);
        assert_eq!(status.mfa.state, MfaState::NotSetUp);
        assert_eq!(status.clock.state, ClockState::Unknown);
        assert_eq!(status.clock.max_skew_ms, 30_000);
        assert_eq!(status.policy.source, PolicySource::Builtin);
        assert_eq!(status.overall, Overall::ActionNeeded);
    }
}
