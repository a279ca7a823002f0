//! The app's side of the agent connection: finding (or starting) an agent,
//! the subscription worker that keeps the status fresh, and one-shot
//! requests.
//!
//! Requests use a fresh connection each: the socket is local and the
//! handshake costs well under a millisecond, and it keeps the subscribed
//! connection free of interleaved replies (the client drops events while it
//! waits for a reply).

use std::path::{Path, PathBuf};
use std::time::Duration;

use iced::futures::channel::mpsc;
use iced::futures::{SinkExt, Stream, StreamExt};
use rampart_agent::ipc::client::{Client, ClientError, KEEPALIVE_INTERVAL};
use rampart_agent::paths::{AgentPaths, default_client_socket};
use rampart_agent::{AgentConfig, RunningAgent};
use rampart_shared::ipc::{Check, Event as AgentEvent, Request, Response};
use rampart_shared::mfa::{EnrollmentView, MfaCommand};
use rampart_shared::platform::{LAUNCHD_AGENT_LABEL, Os, SYSTEMD_UNIT};
use rampart_shared::policy::Links;
use rampart_shared::status::{AgentMode, AgentStatus};
use tracing::{info, warn};

pub const CLIENT_NAME: &str = concat!("rampart-app/", env!("CARGO_PKG_VERSION"));

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Longest pause while an installed service is starting: it usually answers
/// within seconds, and the person is looking at a waiting screen.
const MAX_STARTING_BACKOFF: Duration = Duration::from_secs(2);

/// What the worker tells the app.
#[derive(Debug, Clone)]
pub enum Event {
    /// The worker is running; a message on this sender makes it retry now.
    Ready(mpsc::Sender<()>),
    Connected {
        socket: PathBuf,
        status: Box<AgentStatus>,
    },
    StatusChanged(Box<AgentStatus>),
    /// No agent could be reached (or the connection dropped); the worker
    /// retries by itself with backoff.
    Unreachable(String),
    /// The service is installed but its socket does not answer yet (still
    /// starting at login, or restarting after an update). The worker retries
    /// soon; it never starts an agent of its own meanwhile. `at` is when the
    /// attempt failed, for the waiting screen's clock.
    ServiceStarting {
        why: String,
        at: iced::time::Instant,
    },
}

/// What a connection attempt to the agent's socket found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Answering,
    /// Nothing listens there (no socket, or refused).
    Silent(String),
    /// Something answered but the connection failed otherwise.
    Failed(String),
}

/// What the worker does after a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Connect,
    /// Wait for the installed service: show "Rampart is starting…".
    WaitForService(String),
    /// Start an agent in this process (machines without the service).
    Embed,
    Unreachable(String),
}

/// The one rule for embedding. Where the service is installed the app never
/// starts an agent of its own (it would run with the user's own config and
/// keep the real agent off the socket); nor when `RAMPART_SOCKET` names a
/// specific agent, since a silent substitute would mislead.
pub fn plan(probe: Probe, service_installed: bool, explicit_socket: bool) -> Plan {
    match probe {
        Probe::Answering => Plan::Connect,
        Probe::Silent(why) if service_installed => Plan::WaitForService(why),
        Probe::Silent(why) if explicit_socket => Plan::Unreachable(why),
        Probe::Silent(_) => Plan::Embed,
        Probe::Failed(why) => Plan::Unreachable(why),
    }
}

/// The files whose presence means the service is installed: the systemd
/// unit (the installer's in /etc, the .deb's in /lib or /usr/lib), the
/// LaunchDaemon plist, or on Windows the service binary the MSI puts in
/// Program Files (checkable without elevation, unlike the service's key).
pub fn service_files(os: Os, program_files: &str) -> Vec<PathBuf> {
    match os {
        Os::Linux => [
            "/etc/systemd/system",
            "/lib/systemd/system",
            "/usr/lib/systemd/system",
        ]
        .iter()
        .map(|dir| Path::new(dir).join(SYSTEMD_UNIT))
        .collect(),
        Os::MacOs => vec![format!("/Library/LaunchDaemons/{LAUNCHD_AGENT_LABEL}.plist").into()],
        Os::Windows => vec![format!(r"{program_files}\Rampart\rampart-agent.exe").into()],
        Os::OtherUnix => Vec::new(),
    }
}

/// Where the worker looks, gathered from the environment at the edge:
/// `RAMPART_SOCKET` names the agent; `RAMPART_SERVICE_FILE` replaces the
/// service files looked for (tests, and support trying a layout out).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Locator {
    pub explicit_socket: Option<PathBuf>,
    pub service_files: Vec<PathBuf>,
}

impl Locator {
    pub fn from_env() -> Self {
        let service_files = match std::env::var_os("RAMPART_SERVICE_FILE") {
            Some(file) => vec![file.into()],
            None => {
                let program_files = std::env::var("ProgramFiles")
                    .unwrap_or_else(|_| r"C:\Program Files".to_owned());
                service_files(Os::current(), &program_files)
            }
        };
        Self {
            explicit_socket: std::env::var_os("RAMPART_SOCKET").map(PathBuf::from),
            service_files,
        }
    }

    fn socket(&self) -> PathBuf {
        self.explicit_socket
            .clone()
            .unwrap_or_else(default_client_socket)
    }

    fn service_installed(&self) -> bool {
        self.service_files.iter().any(|f| f.exists())
    }
}

/// Why a session ended.
enum Stop {
    Unreachable(String),
    Starting(String),
}

/// The connection worker, to run as a subscription for the app's lifetime.
pub fn worker() -> impl Stream<Item = Event> {
    worker_with(Locator::from_env())
}

/// The worker, looking where `locator` says.
pub fn worker_with(locator: Locator) -> impl Stream<Item = Event> {
    iced::stream::channel(16, async move |mut output: mpsc::Sender<Event>| {
        let (retry_tx, mut retry_rx) = mpsc::channel::<()>(1);
        let _ = output.send(Event::Ready(retry_tx)).await;
        // Kept for the life of the worker: the embedded agent serves this
        // process (dropping the handle would not stop it either).
        let mut embedded: Option<RunningAgent> = None;
        let mut backoff = Duration::from_millis(250);
        loop {
            let mut max_backoff = MAX_BACKOFF;
            match session(&locator, &mut embedded, &mut output).await {
                Ok(()) => backoff = Duration::from_millis(250),
                Err(Stop::Unreachable(why)) => {
                    warn!(%why, "agent unreachable");
                    let _ = output.send(Event::Unreachable(why)).await;
                }
                Err(Stop::Starting(why)) => {
                    info!(%why, "waiting for the Rampart service");
                    max_backoff = MAX_STARTING_BACKOFF;
                    let at = iced::time::Instant::now();
                    let _ = output.send(Event::ServiceStarting { why, at }).await;
                }
            }
            // Wait for the backoff or for "Try again", whichever is first.
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            tokio::select! {
                _ = &mut sleep => {}
                _ = retry_rx.next() => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    })
}

/// One connected session: locate, subscribe, forward changes until the
/// connection drops.
async fn session(
    locator: &Locator,
    embedded: &mut Option<RunningAgent>,
    output: &mut mpsc::Sender<Event>,
) -> Result<(), Stop> {
    let socket = locate(locator, embedded).await?;
    let mut client = Client::connect(&socket, CLIENT_NAME)
        .await
        .map_err(|e| Stop::Unreachable(e.to_string()))?;
    let status = client
        .subscribe()
        .await
        .map_err(|e| Stop::Unreachable(e.to_string()))?;
    let _ = output
        .send(Event::Connected {
            socket,
            status: Box::new(status),
        })
        .await;
    // The agent may close a subscription that stays quiet past its idle
    // limit; a ping now and then says this one is alive.
    let mut keepalive = tokio::time::interval(KEEPALIVE_INTERVAL);
    keepalive.tick().await;
    loop {
        tokio::select! {
            event = client.next_event() => match event {
                Ok(AgentEvent::StatusChanged { status }) => {
                    let _ = output.send(Event::StatusChanged(status)).await;
                }
                Err(e) => return Err(lost(locator, &e)),
            },
            _ = keepalive.tick() => {
                client
                    .send_ping()
                    .await
                    .map_err(|e| lost(locator, &e))?;
            }
        }
    }
}

/// A dropped connection: where the service is installed it is most likely
/// restarting (after an update, say), so the app says "starting" rather than
/// "not running" while it reconnects.
fn lost(locator: &Locator, e: &ClientError) -> Stop {
    let why = format!("lost the connection to the agent: {e}");
    if locator.service_installed() {
        Stop::Starting(why)
    } else {
        Stop::Unreachable(why)
    }
}

/// The socket of a reachable agent. On a fresh machine nothing answers, so
/// the app starts an agent of its own in this process (embedded mode); where
/// the service is installed it waits for the service instead (`plan`).
async fn locate(locator: &Locator, embedded: &mut Option<RunningAgent>) -> Result<PathBuf, Stop> {
    if let Some(agent) = embedded {
        return Ok(agent.socket().to_owned());
    }
    let socket = locator.socket();
    let probe = match Client::connect(&socket, CLIENT_NAME).await {
        Ok(_) => Probe::Answering,
        Err(e) if e.is_unreachable() => Probe::Silent(e.to_string()),
        Err(e) => Probe::Failed(e.to_string()),
    };
    let installed = locator.service_installed();
    match plan(probe, installed, locator.explicit_socket.is_some()) {
        Plan::Connect => Ok(socket),
        Plan::WaitForService(why) => Err(Stop::Starting(why)),
        Plan::Unreachable(why) => Err(Stop::Unreachable(why)),
        Plan::Embed => {
            let paths = AgentPaths::per_user().map_err(|e| Stop::Unreachable(e.to_string()))?;
            let agent = rampart_agent::start(AgentConfig::new(AgentMode::Embedded, paths))
                .await
                .map_err(|e| {
                    Stop::Unreachable(format!("could not start the built-in agent: {e}"))
                })?;
            info!(socket = %agent.socket().display(), "started the embedded agent");
            let socket = agent.socket().to_owned();
            *embedded = Some(agent);
            Ok(socket)
        }
    }
}

/// Sends one request on a fresh connection.
pub async fn request(socket: PathBuf, request: Request) -> Result<Response, String> {
    let mut client = Client::connect(&socket, CLIENT_NAME)
        .await
        .map_err(|e| describe(&e))?;
    client.request(request).await.map_err(|e| describe(&e))
}

fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Refused(error) => error.message.clone(),
        other => other.to_string(),
    }
}

/// An MFA command; the agent answers every one with the enrollment view.
pub async fn mfa(socket: PathBuf, command: MfaCommand) -> Result<Box<EnrollmentView>, String> {
    match request(
        socket,
        Request::Mfa {
            command,
            user: None,
        },
    )
    .await?
    {
        Response::Enrollment { view } => Ok(view),
        other => Err(format!("the agent answered unexpectedly: {other:?}")),
    }
}

/// The links of the policy in force (guide and support).
pub async fn links(socket: PathBuf) -> Result<Links, String> {
    match request(socket, Request::PolicyShow).await? {
        Response::Policy { policy, .. } => Ok(policy.links),
        other => Err(format!("the agent answered unexpectedly: {other:?}")),
    }
}

/// Asks the agent to re-run checks; the results arrive as status changes.
pub async fn refresh(socket: PathBuf, check: Check) -> Result<(), String> {
    request(socket, Request::Refresh { check })
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_service_that_is_silent_means_waiting_never_embedding() {
        let silent = || Probe::Silent("connection refused".into());
        for explicit in [false, true] {
            assert_eq!(
                plan(silent(), true, explicit),
                Plan::WaitForService("connection refused".into())
            );
        }
    }

    #[test]
    fn no_service_and_a_silent_socket_means_the_embedded_agent() {
        assert_eq!(
            plan(Probe::Silent("no such file".into()), false, false),
            Plan::Embed
        );
        // Unless a specific agent was named: no silent substitute.
        assert_eq!(
            plan(Probe::Silent("no such file".into()), false, true),
            Plan::Unreachable("no such file".into())
        );
    }

    #[test]
    fn an_answering_socket_is_used_whatever_else_is_true() {
        for (installed, explicit) in [(false, false), (true, false), (false, true), (true, true)] {
            assert_eq!(plan(Probe::Answering, installed, explicit), Plan::Connect);
        }
    }

    #[test]
    fn a_socket_that_fails_otherwise_is_reported_not_replaced() {
        for installed in [false, true] {
            assert_eq!(
                plan(Probe::Failed("refused: too many".into()), installed, false),
                Plan::Unreachable("refused: too many".into())
            );
        }
    }

    #[test]
    fn service_files_are_the_ones_the_installers_write() {
        assert_eq!(
            service_files(Os::Linux, ""),
            [
                PathBuf::from("/etc/systemd/system/rampart-agent.service"),
                PathBuf::from("/lib/systemd/system/rampart-agent.service"),
                PathBuf::from("/usr/lib/systemd/system/rampart-agent.service"),
            ]
        );
        assert_eq!(
            service_files(Os::MacOs, ""),
            [PathBuf::from(
                "/Library/LaunchDaemons/dev.rampart.agent.plist"
            )]
        );
        assert_eq!(
            service_files(Os::Windows, r"C:\Program Files"),
            [PathBuf::from(r"C:\Program Files\Rampart\rampart-agent.exe")]
        );
        assert!(service_files(Os::OtherUnix, "").is_empty());
    }

    /// Waits through "starting" events for a connection to `socket`.
    async fn connects(events: &mut (impl Stream<Item = Event> + Unpin), socket: &Path) {
        loop {
            match events.next().await {
                Some(Event::ServiceStarting { .. }) => {}
                Some(Event::Connected {
                    socket: got,
                    status,
                }) => {
                    assert_eq!(got, socket);
                    assert_eq!(status.agent.mode, AgentMode::Dev, "the service's agent");
                    return;
                }
                other => panic!("expected a connection: {other:?}"),
            }
        }
    }

    /// "Service installed but not yet listening": the worker waits (no
    /// agent of its own), then connects to the agent that comes up on the
    /// service's socket.
    #[test]
    #[cfg_attr(
        windows,
        ignore = "under Wine 8 an in-process agent stops answering in about one run in three (ARCHITECTURE.md, Platforms)"
    )]
    fn worker_waits_for_an_installed_service_then_connects_to_it() {
        use rampart_agent::paths::AgentPaths;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::Builder::new()
            .prefix("rw")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        let unit = dir.path().join("rampart-agent.service");
        std::fs::write(&unit, "[Unit]\n").unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("agent.json"),
            r#"{"device_id": "worker-test", "allow_unsigned_local_policy": true}"#,
        )
        .unwrap();
        std::fs::write(etc.join("policy.json"), crate::simulated::loopback_policy()).unwrap();
        let socket = crate::simulated::agent_socket(dir.path());
        let locator = Locator {
            explicit_socket: Some(socket.clone()),
            service_files: vec![unit],
        };
        rt.block_on(async {
            let mut events = Box::pin(worker_with(locator));
            let Some(Event::Ready(mut retry)) = events.next().await else {
                panic!("the worker did not start");
            };
            // Several attempts, each one "starting", never an agent of its own.
            for _ in 0..3 {
                match events.next().await {
                    Some(Event::ServiceStarting { .. }) => {}
                    other => panic!("expected the service to be starting: {other:?}"),
                }
                let _ = retry.try_send(());
            }
            let paths = AgentPaths {
                config_dir: etc,
                state_dir: dir.path().join("state"),
                log_dir: dir.path().join("log"),
                socket: socket.clone(),
            };
            let start = || rampart_agent::start(AgentConfig::new(AgentMode::Dev, paths.clone()));
            let agent = start().await.unwrap();
            let _ = retry.try_send(());
            connects(&mut events, &socket).await;

            // The service restarts (as after a self-update): "starting"
            // again, not "not running", then connected to the new one.
            agent.stop().await.unwrap();
            loop {
                match events.next().await {
                    // A status the agent sent just before it stopped.
                    Some(Event::StatusChanged(_)) => continue,
                    Some(Event::ServiceStarting { why, .. }) => {
                        assert!(why.starts_with("lost the connection"), "{why}");
                        break;
                    }
                    other => panic!("expected the service to be restarting: {other:?}"),
                }
            }
            let agent = start().await.unwrap();
            let _ = retry.try_send(());
            connects(&mut events, &socket).await;
            drop(events);
            let _ = agent.stop().await;
        });
    }
}
