//! The app's side of the agent connection: finding (or starting) an agent,
//! the subscription worker that keeps the status fresh, and one-shot
//! requests.
//!
//! Requests use a fresh connection each: the socket is local and the
//! handshake costs well under a millisecond, and it keeps the subscribed
//! connection free of interleaved replies (the client drops events while it
//! waits for a reply).

use std::path::PathBuf;
use std::time::Duration;

use iced::futures::channel::mpsc;
use iced::futures::{SinkExt, Stream, StreamExt};
use rampart_agent::ipc::client::{Client, ClientError, KEEPALIVE_INTERVAL};
use rampart_agent::paths::{AgentPaths, default_client_socket};
use rampart_agent::{AgentConfig, RunningAgent};
use rampart_shared::ipc::{Check, Event as AgentEvent, Request, Response};
use rampart_shared::mfa::{EnrollmentView, MfaCommand};
use rampart_shared::policy::Links;
use rampart_shared::status::{AgentMode, AgentStatus};
use tracing::{info, warn};

pub const CLIENT_NAME: &str = concat!("rampart-app/", env!("CARGO_PKG_VERSION"));

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

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
}

/// The connection worker, to run as a subscription for the app's lifetime.
pub fn worker() -> impl Stream<Item = Event> {
    iced::stream::channel(16, async move |mut output: mpsc::Sender<Event>| {
        let (retry_tx, mut retry_rx) = mpsc::channel::<()>(1);
        let _ = output.send(Event::Ready(retry_tx)).await;
        // Kept for the life of the worker: the embedded agent serves this
        // process (dropping the handle would not stop it either).
        let mut embedded: Option<RunningAgent> = None;
        let mut backoff = Duration::from_millis(250);
        loop {
            match session(&mut embedded, &mut output).await {
                Ok(()) => backoff = Duration::from_millis(250),
                Err(why) => {
                    warn!(%why, "agent unreachable");
                    let _ = output.send(Event::Unreachable(why)).await;
                }
            }
            // Wait for the backoff or for "Try again", whichever is first.
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            tokio::select! {
                _ = &mut sleep => {}
                _ = retry_rx.next() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

/// One connected session: locate, subscribe, forward changes until the
/// connection drops.
async fn session(
    embedded: &mut Option<RunningAgent>,
    output: &mut mpsc::Sender<Event>,
) -> Result<(), String> {
    let socket = locate(embedded).await?;
    let mut client = Client::connect(&socket, CLIENT_NAME)
        .await
        .map_err(|e| e.to_string())?;
    let status = client.subscribe().await.map_err(|e| e.to_string())?;
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
                Err(e) => return Err(format!("lost the connection to the agent: {e}")),
            },
            _ = keepalive.tick() => {
                client
                    .send_ping()
                    .await
                    .map_err(|e| format!("lost the connection to the agent: {e}"))?;
            }
        }
    }
}

/// The socket of a reachable agent. On a fresh machine nothing answers, so
/// the app starts an agent of its own in this process (embedded mode), unless
/// `RAMPART_SOCKET` names a specific agent: then that one is wanted and a
/// silent substitute would mislead.
async fn locate(embedded: &mut Option<RunningAgent>) -> Result<PathBuf, String> {
    if let Some(agent) = embedded {
        return Ok(agent.socket().to_owned());
    }
    let socket = default_client_socket();
    match Client::connect(&socket, CLIENT_NAME).await {
        Ok(_) => return Ok(socket),
        Err(e) if e.is_unreachable() && std::env::var_os("RAMPART_SOCKET").is_none() => {}
        Err(e) => return Err(e.to_string()),
    }
    let paths = AgentPaths::per_user().map_err(|e| e.to_string())?;
    let agent = rampart_agent::start(AgentConfig::new(AgentMode::Embedded, paths))
        .await
        .map_err(|e| format!("could not start the built-in agent: {e}"))?;
    info!(socket = %agent.socket().display(), "started the embedded agent");
    let socket = agent.socket().to_owned();
    *embedded = Some(agent);
    Ok(socket)
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
    match request(socket, Request::Mfa { command }).await? {
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
