//! Unix sockets; the peer is who the kernel says (SO_PEERCRED / getpeereid).

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use rampart_shared::user::UserId;

use super::super::Peer;
use crate::fsutil;

pub struct Listener {
    inner: UnixListener,
    path: PathBuf,
}

pub type Stream = UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another Rampart agent is already listening on {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("cannot prepare the socket directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: io::Error },
}

/// Binds the agent's socket. `world_connectable`: any local user may
/// connect (the system agent; authorization is by peer uid); otherwise
/// only the agent's own user (dev and embedded mode).
pub async fn bind(path: &Path, world_connectable: bool) -> Result<Listener, BindError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir_err = |source| BindError::Dir {
        path: parent.to_owned(),
        source,
    };
    if !parent.exists() {
        std::fs::create_dir_all(parent).map_err(dir_err)?;
        fsutil::set_mode(parent, if world_connectable { 0o755 } else { 0o700 }).map_err(dir_err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(BindError::InUse(path.to_owned()));
            }
            // A socket nobody listens on is left over from a crash.
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_owned())),
        Err(_) => {}
    }
    let listen_err = |source| BindError::Listen {
        path: path.to_owned(),
        source,
    };
    let inner = UnixListener::bind(path).map_err(listen_err)?;
    fsutil::set_mode(path, if world_connectable { 0o666 } else { 0o600 }).map_err(listen_err)?;
    Ok(Listener {
        inner,
        path: path.to_owned(),
    })
}

impl Listener {
    pub async fn accept(&self) -> io::Result<(Stream, Peer)> {
        let (stream, _) = self.inner.accept().await?;
        let peer = match stream.peer_cred() {
            Ok(cred) => Peer {
                user: Some(UserId::Uid(cred.uid())),
                admin: cred.uid() == 0,
                pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
            },
            Err(_) => Peer::UNKNOWN,
        };
        Ok((stream, peer))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub async fn connect(path: &Path) -> io::Result<Stream> {
    UnixStream::connect(path).await
}

pub fn current_uid() -> Option<u32> {
    Some(rustix::process::geteuid().as_raw())
}

pub fn current_user() -> Option<UserId> {
    current_uid().map(UserId::Uid)
}

/// The login name of `user` through the system's user database (NSS, so
/// directory-backed accounts resolve too); `uid N` when it has none.
pub fn user_name(user: &UserId) -> String {
    let UserId::Uid(uid) = user else {
        return user.to_string();
    };
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(*uid)) {
        Ok(Some(user)) => user.name,
        _ => user.to_string(),
    }
}

/// The user id of a login name through NSS (`None`: no such user). What a
/// sign-in request names is checked against the peer by id, not by name.
pub fn user_id_by_name(name: &str) -> Option<UserId> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Some(UserId::Uid(user.uid.as_raw())),
        _ => None,
    }
}
