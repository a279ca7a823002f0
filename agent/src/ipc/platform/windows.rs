//! Named pipes. Every instance carries an explicit security descriptor
//! (`winsec::pipe_sddl`) and rejects remote clients; the first is created
//! with FILE_FLAG_FIRST_PIPE_INSTANCE so that a pipe someone else made first
//! is never joined. The peer is identified by the client's process token
//! (GetNamedPipeClientProcessId, then OpenProcess / OpenProcessToken).
//!
//! Why not impersonation (ImpersonateNamedPipeClient / OpenThreadToken),
//! which names the token that actually opened the pipe and has no pid to
//! reuse? It only works after the server has read from the pipe
//! (ERROR_CANNOT_IMPERSONATE before), so the peer would be known only after
//! `hello`, not at accept as on Unix; and it switches a tokio worker thread's
//! identity, which a missed RevertToSelf would leave in place. The pid route
//! answers at accept from what the pipe file system recorded at connect.
//! Its gap: a client that hands its connection to another process and exits
//! before the agent looks could be judged by whichever process reuses the
//! pid; the agent looks at once, and an admin's process must take that pid
//! in that window to gain anything; identifying by impersonation after
//! `hello` would close it.
use std::io;
use std::path::{Path, PathBuf};

use rampart_shared::user::UserId;
use tokio::net::windows::named_pipe::{NamedPipeClient, NamedPipeServer, ServerOptions};
use tokio::sync::Mutex;

use super::super::Peer;
use crate::winsec::{self, ffi};

pub const DEFAULT_PIPE_NAME: &str = r"\\.\pipe\rampart-agent";

pub fn user_pipe_name() -> String {
    let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".to_owned());
    format!(r"\\.\pipe\rampart-agent-{user}")
}

pub struct Listener {
    next: Mutex<NamedPipeServer>,
    path: PathBuf,
    sd: ffi::SecurityDescriptor,
}

pub enum Stream {
    Server(NamedPipeServer),
    Client(NamedPipeClient),
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another Rampart agent is already listening on {0}")]
    InUse(PathBuf),
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: io::Error },
    #[error("cannot build the pipe's security descriptor: {0}")]
    Security(#[from] ffi::Win32Error),
}

fn instance_options(first: bool) -> ServerOptions {
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(first)
        .reject_remote_clients(true);
    options
}

/// Binds the agent's pipe. `world_connectable`: every authenticated local
/// user may connect (the system agent; authorization is per request);
/// otherwise only the agent's own user (dev and embedded mode).
pub async fn bind(path: &Path, world_connectable: bool) -> Result<Listener, BindError> {
    let own = ffi::current_identity()?;
    let sd =
        ffi::SecurityDescriptor::from_sddl(&winsec::pipe_sddl(world_connectable, &own.user_sid))?;
    let first =
        ffi::create_pipe(&instance_options(true), path, &sd).map_err(|source| {
            match source.kind() {
                io::ErrorKind::PermissionDenied => BindError::InUse(path.to_owned()),
                _ => BindError::Listen {
                    path: path.to_owned(),
                    source,
                },
            }
        })?;
    Ok(Listener {
        next: Mutex::new(first),
        path: path.to_owned(),
        sd,
    })
}

/// The user behind a connected client. Unidentified (only unprivileged
/// requests) when the OS will not say.
fn identify(pipe: ffi::PipeHandle) -> Peer {
    let pid = match ffi::pipe_client_pid(pipe) {
        Ok(pid) => pid,
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell which process connected");
            return Peer::UNKNOWN;
        }
    };
    match ffi::process_identity(pid) {
        Ok(token) => Peer {
            admin: winsec::token_is_admin(&token.user_sid, &token.groups),
            user: Some(UserId::Sid(token.user_sid)),
            pid: Some(pid),
        },
        Err(e) => {
            tracing::warn!(pid, error = %e, "cannot tell which user connected");
            Peer {
                pid: Some(pid),
                ..Peer::UNKNOWN
            }
        }
    }
}

/// How long accepting waits for the OS to name a client.
const IDENTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// [`identify`] on a blocking thread, given [`IDENTIFY_WAIT`]: the lookups
/// are synchronous system calls, and one that does not return must not
/// hold up the next client. A client not named in time is served as
/// unidentified: status only.
async fn identify_bounded(pipe: &NamedPipeServer) -> Peer {
    let handle = ffi::PipeHandle::of(pipe);
    let lookup = tokio::task::spawn_blocking(move || identify(handle));
    match tokio::time::timeout(IDENTIFY_WAIT, lookup).await {
        Ok(Ok(peer)) => peer,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the client lookup failed");
            Peer::UNKNOWN
        }
        Err(_) => {
            tracing::warn!(
                wait_secs = IDENTIFY_WAIT.as_secs(),
                "the OS did not name the connecting client in time; serving it as unidentified"
            );
            Peer::UNKNOWN
        }
    }
}

impl Listener {
    pub async fn accept(&self) -> io::Result<(Stream, Peer)> {
        let mut next = self.next.lock().await;
        let connected = next.connect().await;
        // Replace the instance whatever happened: one whose client left
        // before the connect completed (ERROR_NO_DATA) never connects
        // again, and keeping it would refuse every later client: a local
        // user could end the agent's service with one open-and-close.
        let fresh = ffi::create_pipe(&instance_options(false), &self.path, &self.sd)?;
        let used = std::mem::replace(&mut *next, fresh);
        connected?;
        let connected = used;
        let peer = identify_bounded(&connected).await;
        Ok((Stream::Server(connected), peer))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `ERROR_PIPE_BUSY`: every instance is taken; the server makes the next one
/// as soon as it has accepted (a probe such as `Path::exists` takes one too).
const ERROR_PIPE_BUSY: i32 = 231;
/// How long a client waits for a free instance before giving up: the
/// server makes the next one right after an accept, but a loaded machine
/// (or Wine, where every pipe call is a round trip to wineserver) may take
/// seconds to schedule it.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn connect(path: &Path) -> io::Result<Stream> {
    let deadline = tokio::time::Instant::now() + BUSY_WAIT;
    loop {
        match ffi::open_pipe_client(path) {
            Ok(client) => return Ok(Stream::Client(client)),
            Err(e)
                if e.raw_os_error() == Some(ERROR_PIPE_BUSY)
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Windows has no uid; file ownership checks that want one are skipped.
pub fn current_uid() -> Option<u32> {
    None
}

pub fn current_user() -> Option<UserId> {
    match ffi::current_identity() {
        Ok(token) => Some(UserId::Sid(token.user_sid)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read this process's own SID");
            None
        }
    }
}

/// The SID of an account name: not looked up yet (no sign-in front end on
/// Windows, `docs/signin.md`); the sign-in request falls back to the name
/// the state file records and to the peer's own name.
pub fn user_id_by_name(_name: &str) -> Option<UserId> {
    None
}

/// The account name of `user` (without its domain: the authenticator label
/// and the name Duo knows); the SID itself when it has none.
pub fn user_name(user: &UserId) -> String {
    match user {
        UserId::Sid(sid) => ffi::account_name(sid).unwrap_or_else(|_| sid.clone()),
        other => other.to_string(),
    }
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Server(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Client(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Server(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Client(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Server(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Client(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Server(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Client(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Windows only (run under Wine in this project's checks).
#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn pipe_name(tag: &str) -> PathBuf {
        PathBuf::from(format!(
            r"\\.\pipe\rampart-test-{tag}-{}",
            std::process::id()
        ))
    }

    async fn identify_over(world_connectable: bool) {
        let path = pipe_name(if world_connectable { "system" } else { "dev" });
        let listener = bind(&path, world_connectable).await.unwrap();
        // FILE_FLAG_FIRST_PIPE_INSTANCE: a second agent cannot join.
        let second = bind(&path, world_connectable).await;
        if ffi::running_under_wine() {
            // Wine 8 creates the second instance anyway: it does not honour
            // the flag. Say so rather than fail; Windows must refuse.
            eprintln!(
                "Wine: a second first-instance bind gave {:?}",
                second.as_ref().err()
            );
        } else {
            assert!(
                matches!(second, Err(BindError::InUse(_))),
                "{:?}",
                second.err()
            );
        }
        drop(second);
        let server = tokio::spawn(async move {
            let (mut stream, peer) = listener.accept().await.unwrap();
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            stream.write_all(&byte).await.unwrap();
            (peer, listener)
        });
        let mut client = connect(&path).await.unwrap();
        client.write_all(b"x").await.unwrap();
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).await.unwrap();
        let (peer, listener) = server.await.unwrap();
        let me = current_user().unwrap();
        eprintln!("world_connectable={world_connectable}: peer {peer:?}, this process {me:?}");
        assert_eq!(peer.user.as_ref(), Some(&me));
        assert_eq!(peer.pid, Some(std::process::id()));
        let token = ffi::current_identity().unwrap();
        assert_eq!(
            peer.admin,
            winsec::token_is_admin(&token.user_sid, &token.groups)
        );
        assert!(!user_name(&me).is_empty());
        eprintln!("user name of {me}: {}", user_name(&me));
        // The next instance got the same descriptor and still serves.
        let next = tokio::spawn(async move { listener.accept().await.map(|(_, p)| p) });
        let _again = connect(&path).await.unwrap();
        assert_eq!(next.await.unwrap().unwrap().user, Some(me));
    }

    /// Whether the OS checks a pipe's DACL at all: one that admits nobody.
    #[tokio::test]
    async fn a_pipe_that_admits_nobody_refuses_a_client() {
        let path = pipe_name("nobody");
        let sd = ffi::SecurityDescriptor::from_sddl("D:P").unwrap();
        let _server = ffi::create_pipe(&instance_options(true), &path, &sd).unwrap();
        let client = connect(&path).await;
        if ffi::running_under_wine() {
            eprintln!(
                "Wine: connecting through an empty DACL gave {:?}",
                client.as_ref().err()
            );
        } else {
            let err = client.err().expect("an empty DACL admits nobody");
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        }
    }

    #[tokio::test]
    async fn the_dev_pipe_identifies_its_client() {
        identify_over(false).await;
    }

    #[tokio::test]
    async fn the_system_pipe_identifies_its_client() {
        identify_over(true).await;
    }
}
