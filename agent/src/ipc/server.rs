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
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::admission::{self, Connections, Limits, Refusal, Slot};
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
    /// Between frames (`ping`, typically) on a subscribed connection: past it
    /// a quiet subscriber is closed if its user holds many connections
    /// (`admission::closes_quiet_subscriber`).
    pub subscriber_idle: Duration,
    /// To take one reply or event off our hands.
    pub write: Duration,
}

impl Default for IpcTimeouts {
    fn default() -> Self {
        Self {
            frame: Duration::from_secs(5),
            idle: Duration::from_secs(60),
            subscriber_idle: Duration::from_secs(300),
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

#[derive(Clone)]
pub struct ServerContext {
    pub status: watch::Receiver<Arc<AgentStatus>>,
    pub policy: watch::Receiver<Arc<PolicyInForce>>,
    pub commands: mpsc::Sender<IpcCommand>,
    /// Who the agent runs as (its own user may administer a dev agent).
    pub agent_user: Option<UserId>,
    /// The enrollment owner, once there is one: slots are kept for them.
    pub owner: watch::Receiver<Option<UserId>>,
    pub mode: AgentMode,
    pub started: Instant,
    pub timeouts: IpcTimeouts,
    pub status_cache: Arc<StatusCache>,
}

/// The pause after the `failures`-th accept error in a row: out of file
/// descriptors, accepting again at once fails again at once.
pub fn accept_backoff(failures: u32) -> Duration {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);
    FIRST
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MOST)
}

/// How often summaries of refused requests are due to be logged.
const SUMMARY_TICK: Duration = Duration::from_secs(5);

/// Aborts the task when dropped: the server's helpers end with it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Accepts connections until the task is dropped. Every connection is
/// accepted so that its user is known; one over its user's limit (see
/// `admission`) is told why and closed at once.
pub async fn serve(listener: Listener, cx: ServerContext) {
    serve_with_limits(listener, cx, Limits::for_file_limit(file_limit())).await;
}

/// [`serve`] with explicit limits (tests use small ones).
pub async fn serve_with_limits(listener: Listener, cx: ServerContext, limits: Limits) {
    let connections = Connections::new(limits);
    info!(
        total = limits.total,
        per_user = limits.per_user,
        kept_for_admins = limits.kept_for_admins,
        kept_for_owner = limits.kept_for_owner,
        "IPC connection limits"
    );
    let _summaries = AbortOnDrop(tokio::spawn(crate::logging::summarize(SUMMARY_TICK)));
    let mut failures = 0u32;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                failures = 0;
                let owner = cx.owner.borrow().clone();
                let standing = admission::standing(&peer, owner.as_ref(), cx.agent_user.as_ref());
                match connections.try_admit(peer.user.as_ref(), standing) {
                    Ok(slot) => {
                        let cx = cx.clone();
                        tokio::spawn(serve_connection(stream, peer, cx, slot));
                    }
                    Err(refusal) => refuse(stream, &peer, refusal, &connections, &cx),
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if crate::logging::first_in_minute(crate::logging::Noisy::AcceptFailed) {
                    warn!(error = %e, "accepting an IPC connection failed; backing off (further failures are summarised once a minute)");
                }
                tokio::time::sleep(accept_backoff(failures)).await;
            }
        }
    }
}

/// Tells a refused client why, without waiting on it, and closes.
fn refuse<S>(
    mut stream: S,
    peer: &Peer,
    refusal: Refusal,
    connections: &Connections,
    cx: &ServerContext,
) where
    S: AsyncWrite + Unpin + Send + 'static,
{
    if crate::logging::first_refusal(peer.user.as_ref()) {
        let (total, user_open) = connections.open(peer.user.as_ref());
        warn!(user = ?peer.user, pid = ?peer.pid, ?refusal, total, user_open,
            "refused an IPC connection (further refusals from this user are summarised once a minute)");
    }
    let frame = encode_frame(&ServerFrame::Error {
        id: None,
        error: IpcError::new(
            ErrorCode::Internal,
            admission::refusal_message(refusal, peer.user.as_ref()),
        ),
    });
    // A fresh connection's buffer takes the frame at once; a client that
    // somehow does not gets a short grace, on a task of its own so that the
    // accept loop never waits on a refused client.
    let write = cx.timeouts.frame.min(Duration::from_secs(1));
    tokio::spawn(async move {
        let _ = tokio::time::timeout(write, stream.write_all(&frame)).await;
    });
}

/// The soft limit on open files, which bounds the connections served.
#[cfg(unix)]
fn file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

#[cfg(not(unix))]
fn file_limit() -> Option<u64> {
    None
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

/// Serves one client until it leaves, misbehaves or times out; `slot` is
/// its place in the per-user count, given back when it ends.
pub async fn serve_connection<S>(stream: S, peer: Peer, cx: ServerContext, slot: Slot)
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
                let quiet_subscriber = conn.subscribed && splitter.pending() == 0;
                if quiet_subscriber && !admission::closes_quiet_subscriber(slot.user_open()) {
                    // One app's subscription (old apps never ping) is kept.
                    deadline = Some(tokio::time::Instant::now() + conn.cx.timeouts.subscriber_idle);
                    continue;
                }
                let why = if quiet_subscriber {
                    format!(
                        "no ping within {} s while this user holds {} connections to the agent",
                        conn.cx.timeouts.subscriber_idle.as_secs(),
                        slot.user_open()
                    )
                } else if conn.greeted {
                    "no complete request in time".to_owned()
                } else {
                    "no hello in time".to_owned()
                };
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
                    Some(now + conn.cx.timeouts.subscriber_idle)
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
    drop(slot);
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
        let shared_view = || {
            let snapshot = self.cx.status.borrow();
            self.peer
                .user
                .as_ref()
                .is_none_or(|id| snapshot.as_seen_by(id).is_none())
        };
        if request == Request::Status && self.greeted && shared_view() {
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
            if crate::logging::first_refusal(self.peer.user.as_ref()) {
                warn!(user = ?self.peer.user, pid = ?self.peer.pid, request = request.name(),
                    "refused a privileged request (further refusals from this user are summarised once a minute)");
            }
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
            Request::Ping => Ok(Response::Pong),
            Request::Hello { .. } => unreachable_hello(),
            request @ (Request::Refresh { .. }
            | Request::SetLogLevel { .. }
            | Request::Mfa { .. }
            | Request::VerifySignin { .. }) => self.ask_event_loop(request).await,
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

    /// The status as this connection's user sees it (their own MFA
    /// section on a shared machine), with the uptime of now.
    fn with_uptime(&self, status: &AgentStatus) -> AgentStatus {
        let mut status = self
            .peer
            .user
            .as_ref()
            .and_then(|id| status.as_seen_by(id))
            .unwrap_or_else(|| status.clone());
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
    fn accept_errors_back_off_up_to_a_second() {
        let delays: Vec<Duration> = (1..=12).map(accept_backoff).collect();
        assert_eq!(delays[0], Duration::from_millis(10));
        assert_eq!(delays[1], Duration::from_millis(20));
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert_eq!(accept_backoff(12), Duration::from_secs(1));
        assert_eq!(accept_backoff(u32::MAX), Duration::from_secs(1));
        // At 9 failures a second (the figure in issue 15) the loop now sleeps
        // a second between tries once the failures persist.
    }

    fn context(subscriber_idle: Duration) -> (ServerContext, watch::Sender<Arc<AgentStatus>>) {
        let (status_tx, status) = watch::channel(snapshot());
        let policy = rampart_shared::policy::Policy::default();
        let (_, policy) = watch::channel(Arc::new(PolicyInForce {
            source: PolicySource::Builtin,
            policy,
        }));
        let (commands, _) = mpsc::channel(1);
        let (_, owner) = watch::channel(None);
        let cx = ServerContext {
            status,
            policy,
            commands,
            agent_user: None,
            owner,
            mode: AgentMode::System,
            started: Instant::now(),
            timeouts: IpcTimeouts {
                subscriber_idle,
                ..IpcTimeouts::default()
            },
            status_cache: Arc::default(),
        };
        (cx, status_tx)
    }

    /// A subscriber that sends hello and subscribe, then, after `quiet`,
    /// a ping; returns what came back for the ping (`None`: closed).
    async fn subscriber_after(quiet: Duration, other_connections: usize) -> Vec<ServerFrame> {
        let (cx, _status) = context(Duration::from_millis(100));
        let connections = Connections::new(Limits::for_file_limit(None));
        let jane = UserId::Uid(1000);
        let admit = || {
            connections
                .try_admit(Some(&jane), admission::Standing::Other)
                .unwrap()
        };
        let _others: Vec<Slot> = (0..other_connections).map(|_| admit()).collect();
        let peer = Peer {
            user: Some(jane.clone()),
            admin: false,
            pid: None,
        };
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(serve_connection(server, peer, cx, admit()));
        client
            .write_all(b"{\"id\":1,\"request\":{\"type\":\"hello\",\"protocol\":1,\"client\":\"t\"}}\n{\"id\":2,\"request\":{\"type\":\"subscribe\"}}\n")
            .await
            .unwrap();
        tokio::time::sleep(quiet).await;
        // A closed connection may refuse the ping; what it sent first counts.
        let _ = client
            .write_all(b"{\"id\":3,\"request\":{\"type\":\"ping\"}}\n")
            .await;
        let mut frames = Vec::new();
        let mut splitter = FrameSplitter::default();
        let mut buf = vec![0u8; 16 * 1024];
        // Reads until the pong, or until the agent closes.
        loop {
            let n = client.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            splitter.push(&buf[..n]);
            while let Some(Ok(line)) = splitter.next_frame() {
                frames.push(rampart_shared::ipc::decode_server_frame(&line).unwrap());
            }
            if frames
                .iter()
                .any(|f| matches!(f, ServerFrame::Reply { id: 3, .. }))
            {
                break;
            }
        }
        drop(client);
        let _ = task.await;
        frames
    }

    #[tokio::test]
    async fn a_quiet_subscriber_is_closed_only_while_its_user_holds_many_connections() {
        // An app: one quiet subscription, kept past several idle limits.
        let frames = subscriber_after(Duration::from_millis(450), 0).await;
        assert!(
            matches!(
                frames.last(),
                Some(ServerFrame::Reply {
                    id: 3,
                    response: Response::Pong
                })
            ),
            "{frames:?}"
        );
        // A user holding many: the quiet one is closed with a reason.
        let frames = subscriber_after(Duration::from_millis(450), 10).await;
        let Some(ServerFrame::Error { error, .. }) = frames.last() else {
            panic!("no timeout error: {frames:?}");
        };
        assert_eq!(error.code, ErrorCode::Timeout);
        assert!(
            error.message.contains("no ping within"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("holds 11 connections"),
            "{}",
            error.message
        );
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
