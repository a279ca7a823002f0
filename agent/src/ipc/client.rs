//! The typed IPC client used by the CLI and the app.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_shared::ipc::{
    ClientFrame, ErrorCode, Event, FrameSplitter, IpcError, PROTOCOL_VERSION, Request, Response,
    ServerFrame, decode_server_frame, encode_frame,
};
use rampart_shared::platform::Os;
use rampart_shared::status::{AgentMode, AgentStatus};
use rampart_shared::version::Version;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::platform::{self, Stream};

/// How long a request may take before the client gives up on the agent.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// An MFA command may wait on Duo, which the agent gives up on after
/// `mfa::duo::calls::CALL_DEADLINE` (30 s).
pub const MFA_REQUEST_TIMEOUT: Duration = Duration::from_secs(40);
/// How often a subscriber pings: well within the agent's subscriber idle
/// limit (`IpcTimeouts::subscriber_idle`, 300 s).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the Rampart agent is not running (nothing is listening on {}). Start it with {} (installed service) or `rampart-agent run --dev` (as yourself), or open the Rampart app",
        .path.display(),
        Os::current().start_service()
    )]
    NotRunning { path: PathBuf },
    #[error("cannot connect to the Rampart agent at {}: {source}", .path.display())]
    Connect { path: PathBuf, source: io::Error },
    #[error("the agent refused the request: {0}")]
    Refused(IpcError),
    #[error("lost the connection to the agent: {0}")]
    Io(#[from] io::Error),
    #[error("the agent sent something this client cannot read: {0}")]
    Protocol(String),
    #[error("the agent did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl ClientError {
    /// The agent could not be reached at all (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::NotRunning { .. } | Self::Connect { .. })
    }
}

/// What the agent said about itself in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHello {
    pub agent_version: Version,
    pub mode: AgentMode,
}

pub struct Client {
    stream: Stream,
    splitter: FrameSplitter,
    buf: Vec<u8>,
    next_id: u64,
    hello: AgentHello,
    /// The id of the last `ping` sent: an agent older than `ping` answers it
    /// with `unknown_request`, which is no reason to drop a subscription.
    last_ping: Option<u64>,
}

impl Client {
    /// Connects and completes the handshake.
    pub async fn connect(path: &Path, client_name: &str) -> Result<Self, ClientError> {
        let stream = platform::connect(path)
            .await
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning {
                        path: path.to_owned(),
                    }
                }
                _ => ClientError::Connect {
                    path: path.to_owned(),
                    source,
                },
            })?;
        let mut client = Self {
            stream,
            splitter: FrameSplitter::default(),
            buf: vec![0; 16 * 1024],
            next_id: 1,
            last_ping: None,
            hello: AgentHello {
                agent_version: Version::new(0, 0, 0),
                mode: AgentMode::System,
            },
        };
        let hello = Request::Hello {
            protocol: PROTOCOL_VERSION,
            client: client_name.to_owned(),
        };
        match client.request(hello).await? {
            Response::Hello {
                agent_version,
                mode,
                ..
            } => {
                client.hello = AgentHello {
                    agent_version,
                    mode,
                }
            }
            other => return Err(unexpected(&other)),
        }
        Ok(client)
    }

    pub fn agent(&self) -> &AgentHello {
        &self.hello
    }

    /// Sends one request and waits for its reply. Events that arrive in
    /// between (on a subscribed connection) are dropped; use a dedicated
    /// connection for subscriptions.
    pub async fn request(&mut self, request: Request) -> Result<Response, ClientError> {
        let timeout = match request {
            Request::Mfa { .. } | Request::VerifySignin { .. } => MFA_REQUEST_TIMEOUT,
            _ => REQUEST_TIMEOUT,
        };
        let id = self.next_id;
        self.next_id += 1;
        if let Err(write_error) = self
            .stream
            .write_all(&encode_frame(&ClientFrame { id, request }))
            .await
        {
            return Err(self.why_closed(write_error).await);
        }
        let wait = async {
            loop {
                match self.read_frame().await? {
                    ServerFrame::Reply { id: got, response } if got == id => return Ok(response),
                    ServerFrame::Error { id: got, error } if got == Some(id) || got.is_none() => {
                        return Err(ClientError::Refused(error));
                    }
                    _ => continue,
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    pub async fn status(&mut self) -> Result<AgentStatus, ClientError> {
        match self.request(Request::Status).await? {
            Response::Status { status } => Ok(*status),
            other => Err(unexpected(&other)),
        }
    }

    /// Subscribes; returns the current status. Call [`Client::next_event`] for
    /// the changes that follow.
    pub async fn subscribe(&mut self) -> Result<AgentStatus, ClientError> {
        match self.request(Request::Subscribe).await? {
            Response::Subscribed { status } => Ok(*status),
            other => Err(unexpected(&other)),
        }
    }

    /// Waits, without a time limit, for the next pushed event. Cancel-safe:
    /// it may be raced against a timer that sends [`Client::send_ping`].
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        loop {
            match self.read_frame().await? {
                ServerFrame::Event { event } => return Ok(event),
                ServerFrame::Error { id, error }
                    if ends_subscription(id, error.code, self.last_ping) =>
                {
                    return Err(ClientError::Refused(error));
                }
                ServerFrame::Error { .. } | ServerFrame::Reply { .. } => continue,
            }
        }
    }

    /// Sends a `ping` without waiting for its `pong` (which
    /// [`Client::next_event`] skips): the keepalive of a subscription, due
    /// well within the agent's subscriber idle limit ([`KEEPALIVE_INTERVAL`]).
    pub async fn send_ping(&mut self) -> Result<(), ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.last_ping = Some(id);
        self.stream
            .write_all(&encode_frame(&ClientFrame {
                id,
                request: Request::Ping,
            }))
            .await?;
        Ok(())
    }

    /// A write failed: the agent may have refused the connection (too many
    /// from this user) with an error frame and closed it before we wrote.
    /// Its reason, if it sent one, says more than "broken pipe".
    async fn why_closed(&mut self, write_error: io::Error) -> ClientError {
        match tokio::time::timeout(Duration::from_millis(500), self.read_frame()).await {
            Ok(Ok(ServerFrame::Error { error, .. })) => ClientError::Refused(error),
            _ => ClientError::Io(write_error),
        }
    }

    async fn read_frame(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            if let Some(frame) = self.splitter.next_frame() {
                let line = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
                return decode_server_frame(&line)
                    .map_err(|e| ClientError::Protocol(e.to_string()));
            }
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the agent closed the connection",
                )));
            }
            self.splitter.push(&self.buf[..n]);
        }
    }
}

/// Whether an error frame on a subscribed connection ends it: every error
/// but an older agent's `unknown_request` for our `ping`.
fn ends_subscription(id: Option<u64>, code: ErrorCode, last_ping: Option<u64>) -> bool {
    !(id.is_some() && id == last_ping && code == ErrorCode::UnknownRequest)
}

fn unexpected(response: &Response) -> ClientError {
    ClientError::Protocol(format!("unexpected reply {response:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_agent_not_knowing_ping_keeps_the_subscription() {
        assert!(!ends_subscription(
            Some(4),
            ErrorCode::UnknownRequest,
            Some(4)
        ));
        assert!(ends_subscription(Some(4), ErrorCode::Timeout, Some(4)));
        assert!(ends_subscription(None, ErrorCode::Timeout, Some(4)));
        assert!(ends_subscription(None, ErrorCode::UnknownRequest, None));
        assert!(ends_subscription(
            Some(3),
            ErrorCode::UnknownRequest,
            Some(4)
        ));
    }
}
