//! Serves the IPC protocol to every local client.
//!
//! Reads (`status`, `subscribe`, `policy_show`) are answered from the latest
//! snapshots the service publishes, without a round trip through the event
//! loop, so a status answer costs one serialization. Requests that ask for
//! work go to the event loop as [`IpcCommand`]s.
//!
//! Hostile clients: a frame over the cap, garbage, or a connection that does
//! not complete a frame in time is answered with an error and closed; it never
//! blocks other connections, each of which has its own task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_shared::ipc::{
    ClientFrame, ErrorCode, Event, FrameSplitter, IpcError, PROTOCOL_VERSION, Request, Response,
    ServerFrame, decode_client_frame, encode_frame,
};
use rampart_shared::policy::Policy;
use rampart_shared::status::{AgentMode, AgentStatus, PolicySource};
use rampart_shared::user::UserId;
use rampart_shared::version::Version;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::{Listener, Peer, may_administer};

/// The policy in force, as `policy_show` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyInForce {
    pub source: PolicySource,
    pub policy: Policy,
}

/// A request that needs the event loop.
#[derive(Debug)]
pub struct IpcCommand {
    pub peer: Peer,
    pub request: Request,
    pub reply: oneshot::Sender<Result<Response, IpcError>>,
}

#[derive(Debug, Clone, Copy)]
pub struct IpcTimeouts {
    /// To send `hello`, and to finish any frame once it has started.
    pub frame: Duration,
    /// Between requests on a connection that has not subscribed.
    pub idle: Duration,
    /// To take one reply or event off our hands.
    pub write: Duration,
}

impl Default for IpcTimeouts {
    fn default() -> Self {
        Self {
            frame: Duration::from_secs(5),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(5),
        }
    }
}

/// The serialized status, shared by all connections: the status changes
/// rarely, but is asked for often (every app window, every CLI call, and a
/// monitoring loop or two), so it is serialized once per change and per
/// uptime second, and each reply only splices in its request id.
#[derive(Default)]
pub struct StatusCache {
    entry: std::sync::Mutex<Option<CachedStatus>>,
}

struct CachedStatus {
    snapshot: Arc<AgentStatus>,
    uptime_secs: u64,
    json: Arc<str>,
}

impl StatusCache {
    fn json(&self, snapshot: &Arc<AgentStatus>, uptime_secs: u64) -> Arc<str> {
        let mut entry = self
            .entry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = entry.as_ref()
            && Arc::ptr_eq(&cached.snapshot, snapshot)
            && cached.uptime_secs == uptime_secs
        {
            return cached.json.clone();
        }
        let mut status = (**snapshot).clone();
        status.agent.uptime_secs = uptime_secs;
        let json: Arc<str> = serde_json::to_string(&status).unwrap_or_default().into();
        *entry = Some(CachedStatus {
            snapshot: snapshot.clone(),
            uptime_secs,
            json: json.clone(),
        });
        json
    }
}

/// A status reply, byte for byte what serializing `ServerFrame::Reply` with
/// `Response::Status` gives (pinned by a test below).
fn status_reply_frame(id: u64, status_json: &str) -> Vec<u8> {
    let mut frame = Vec::with_capacity(status_json.len() + 64);
    frame.extend_from_slice(b"{\"reply\":{\"id\":");
    frame.extend_from_slice(id.to_string().as_bytes());
    frame.extend_from_slice(b",\"response\":{\"type\":\"status\",\"status\":");
    frame.extend_from_slice(status_json.as_bytes());
    frame.extend_from_slice(b"}}}\n");
    frame
}

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 1024;

#[derive(Clone)]
pub struct ServerContext {
    pub status: watch::Receiver<Arc<AgentStatus>>,
    pub policy: watch::Receiver<Arc<PolicyInForce>>,
    pub commands: mpsc::Sender<IpcCommand>,
    /// Who the agent runs as (its own user may administer a dev agent).
    pub agent_user: Option<UserId>,
    pub mode: AgentMode,
    pub started: Instant,
    pub timeouts: IpcTimeouts,
    pub status_cache: Arc<StatusCache>,
}

/// Accepts connections until the listener fails or the task is dropped.
pub async fn serve(listener: Listener, cx: ServerContext) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let cx = cx.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, cx).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accepting an IPC connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

enum Step {
    Continue,
    Close,
}

struct Connection<S> {
    stream: S,
    peer: Peer,
    cx: ServerContext,
    greeted: bool,
    subscribed: bool,
}

/// Serves one client until it leaves, misbehaves or times out.
pub async fn serve_connection<S>(stream: S, peer: Peer, cx: ServerContext)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    debug!(user = ?peer.user, admin = peer.admin, pid = ?peer.pid, "IPC client connected");
    let mut conn = Connection {
        stream,
        peer,
        cx,
        greeted: false,
        subscribed: false,
    };
    let mut splitter = FrameSplitter::default();
    let mut buf = vec![0u8; 8192];
    let mut status_rx = conn.cx.status.clone();
    // The deadline for the frame being received, or for the next one to start.
    let mut deadline = Some(tokio::time::Instant::now() + conn.cx.timeouts.frame);

    loop {
        let expiry = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = expiry => {
                let why = if conn.greeted { "no complete request in time" } else { "no hello in time" };
                let _ = conn.send_error(None, IpcError::new(ErrorCode::Timeout, why)).await;
                break;
            }
            read = conn.stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let frame_was_under_way = splitter.pending() > 0;
                let mut completed_a_frame = false;
                splitter.push(&buf[..n]);
                let mut close = false;
                while let Some(frame) = splitter.next_frame() {
                    completed_a_frame |= frame.is_ok();
                    let step = match frame {
                        Ok(line) => conn.handle_line(&line, &mut status_rx).await,
                        Err(too_large) => {
                            let _ = conn
                                .send_error(None, IpcError::new(ErrorCode::FrameTooLarge, too_large.to_string()))
                                .await;
                            Step::Close
                        }
                    };
                    if matches!(step, Step::Close) {
                        close = true;
                        break;
                    }
                }
                if close {
                    break;
                }
                let now = tokio::time::Instant::now();
                deadline = if splitter.pending() > 0 {
                    if frame_was_under_way && !completed_a_frame {
                        // The same frame is still under way: keep its deadline,
                        // so a client dribbling one byte at a time cannot hold
                        // the connection forever.
                        deadline
                    } else {
                        Some(now + conn.cx.timeouts.frame)
                    }
                } else if conn.subscribed {
                    None
                } else {
                    Some(now + conn.cx.timeouts.idle)
                };
            }
            changed = status_rx.changed(), if conn.subscribed => {
                if changed.is_err() {
                    break; // the agent is shutting down
                }
                let status = status_rx.borrow_and_update().clone();
                let event = ServerFrame::Event { event: Event::StatusChanged { status: Box::new(conn.with_uptime(&status)) } };
                if conn.send(&event).await.is_err() {
                    break;
                }
            }
        }
    }
    debug!(user = ?conn.peer.user, "IPC client disconnected");
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    async fn handle_line(
        &mut self,
        line: &[u8],
        status_rx: &mut watch::Receiver<Arc<AgentStatus>>,
    ) -> Step {
        let ClientFrame { id, request } = match decode_client_frame(line) {
            Ok(frame) => frame,
            Err(e) => {
                let fatal = e.error.code.is_fatal();
                if self.send_error(e.id, e.error).await.is_err() || fatal {
                    return Step::Close;
                }
                return Step::Continue;
            }
        };
        if request == Request::Status && self.greeted {
            let snapshot = self.cx.status.borrow().clone();
            let json = self
                .cx
                .status_cache
                .json(&snapshot, self.cx.started.elapsed().as_secs());
            let sent = self.send_bytes(&status_reply_frame(id, &json)).await;
            return if sent.is_err() {
                Step::Close
            } else {
                Step::Continue
            };
        }
        let result = self.respond(request, status_rx).await;
        let sent = match result {
            Ok(response) => self.send(&ServerFrame::Reply { id, response }).await,
            Err(error) => {
                let fatal = error.code.is_fatal();
                let sent = self.send_error(Some(id), error).await;
                if fatal {
                    return Step::Close;
                }
                sent
            }
        };
        if sent.is_err() {
            Step::Close
        } else {
            Step::Continue
        }
    }

    async fn respond(
        &mut self,
        request: Request,
        status_rx: &mut watch::Receiver<Arc<AgentStatus>>,
    ) -> Result<Response, IpcError> {
        if let Request::Hello { protocol, client } = &request {
            if *protocol != PROTOCOL_VERSION {
                info!(%client, protocol, "refused a client speaking another protocol version");
                return Err(IpcError::new(
                    ErrorCode::ProtocolMismatch,
                    format!(
                        "this agent (Rampart {}) speaks IPC protocol {PROTOCOL_VERSION}, the client ({client}) speaks {protocol}: use a client from the same Rampart release",
                        Version::current()
                    ),
                ));
            }
            self.greeted = true;
            return Ok(Response::Hello {
                protocol: PROTOCOL_VERSION,
                agent_version: Version::current(),
                mode: self.cx.mode,
            });
        }
        if !self.greeted {
            return Err(IpcError::new(
                ErrorCode::HandshakeRequired,
                format!(
                    "send hello with protocol {PROTOCOL_VERSION} before \"{}\"",
                    request.name()
                ),
            ));
        }
        if request.is_privileged() && !may_administer(&self.peer, self.cx.agent_user.as_ref()) {
            warn!(user = ?self.peer.user, request = request.name(), "refused a privileged request");
            return Err(IpcError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "\"{}\" may only be asked by an administrator or the agent's own user{}",
                    request.name(),
                    self.peer
                        .user
                        .as_ref()
                        .map(|u| format!(", not {u}"))
                        .unwrap_or_default()
                ),
            ));
        }
        match request {
            Request::Status => Ok(Response::Status {
                status: Box::new(self.with_uptime(&self.cx.status.borrow())),
            }),
            Request::Subscribe => {
                self.subscribed = true;
                let status = status_rx.borrow_and_update().clone();
                Ok(Response::Subscribed {
                    status: Box::new(self.with_uptime(&status)),
                })
            }
            Request::PolicyShow => {
                let in_force = self.cx.policy.borrow().clone();
                Ok(Response::Policy {
                    source: in_force.source,
                    policy: Box::new(in_force.policy.clone()),
                })
            }
            Request::Hello { .. } => unreachable_hello(),
            request @ (Request::Refresh { .. }
            | Request::SetLogLevel { .. }
            | Request::Mfa { .. }) => self.ask_event_loop(request).await,
        }
    }

    async fn ask_event_loop(&self, request: Request) -> Result<Response, IpcError> {
        let (reply, answer) = oneshot::channel();
        let stopping = || IpcError::new(ErrorCode::Internal, "the agent is shutting down");
        self.cx
            .commands
            .send(IpcCommand {
                peer: self.peer.clone(),
                request,
                reply,
            })
            .await
            .map_err(|_| stopping())?;
        answer.await.map_err(|_| stopping())?
    }

    fn with_uptime(&self, status: &AgentStatus) -> AgentStatus {
        let mut status = status.clone();
        status.agent.uptime_secs = self.cx.started.elapsed().as_secs();
        status
    }

    async fn send(&mut self, frame: &ServerFrame) -> std::io::Result<()> {
        self.send_bytes(&encode_frame(frame)).await
    }

    async fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match tokio::time::timeout(self.cx.timeouts.write, self.stream.write_all(bytes)).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading",
            )),
        }
    }

    async fn send_error(&mut self, id: Option<u64>, error: IpcError) -> std::io::Result<()> {
        debug!(code = %error.code, message = %error.message, "IPC error reply");
        self.send(&ServerFrame::Error { id, error }).await
    }
}

/// `hello` is answered before the match that calls this; kept as a function so
/// the match stays exhaustive without a panic path.
fn unreachable_hello() -> Result<Response, IpcError> {
    Err(IpcError::new(
        ErrorCode::BadFrame,
        "hello was already handled",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Arc<AgentStatus> {
        Arc::new(crate::service::Core::fresh_status(
            AgentMode::Dev,
            chrono::Utc::now(),
        ))
    }

    #[test]
    fn spliced_status_reply_is_exactly_the_serialized_frame() {
        let snapshot = snapshot();
        let cache = StatusCache::default();
        let json = cache.json(&snapshot, 42);
        let mut expected_status = (*snapshot).clone();
        expected_status.agent.uptime_secs = 42;
        let expected = encode_frame(&ServerFrame::Reply {
            id: 17,
            response: Response::Status {
                status: Box::new(expected_status),
            },
        });
        assert_eq!(
            String::from_utf8(status_reply_frame(17, &json)).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn cache_is_renewed_when_the_snapshot_or_the_second_changes() {
        let cache = StatusCache::default();
        let first = snapshot();
        let a = cache.json(&first, 1);
        assert!(
            Arc::ptr_eq(&a, &cache.json(&first, 1)),
            "same snapshot and second: cached"
        );
        assert!(cache.json(&first, 2).contains("\"uptime_secs\":2"));
        let mut changed = (*first).clone();
        changed.policy.serial = 99;
        assert!(cache.json(&Arc::new(changed), 2).contains("\"serial\":99"));
    }
}
