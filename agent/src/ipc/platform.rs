//! Sockets and peer identity per OS.

#[cfg(unix)]
pub use unix::*;
#[cfg(windows)]
pub use windows::*;

#[cfg(unix)]
mod unix {
    use std::io;
    use std::os::unix::fs::FileTypeExt;
    use std::path::{Path, PathBuf};

    use tokio::net::{UnixListener, UnixStream};

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
            fsutil::set_mode(parent, if world_connectable { 0o755 } else { 0o700 })
                .map_err(dir_err)?;
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
        fsutil::set_mode(path, if world_connectable { 0o666 } else { 0o600 })
            .map_err(listen_err)?;
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
                    uid: Some(cred.uid()),
                    pid: cred.pid(),
                },
                Err(_) => Peer {
                    uid: None,
                    pid: None,
                },
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

    /// The login name of `uid` through the system's user database (NSS, so
    /// directory-backed accounts resolve too); `uid N` when it has none.
    pub fn user_name(uid: u32) -> String {
        match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            Ok(Some(user)) => user.name,
            _ => format!("uid {uid}"),
        }
    }
}

#[cfg(windows)]
mod windows {
    //! Named pipes. Peer identity needs Win32 calls (GetNamedPipeClientProcessId
    //! and a token query) that this module does not make yet: every peer is
    //! treated as unidentified, so privileged requests are refused on Windows.
    use std::io;
    use std::path::{Path, PathBuf};

    use tokio::net::windows::named_pipe::{
        ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions,
    };
    use tokio::sync::Mutex;

    use super::super::Peer;

    pub const DEFAULT_PIPE_NAME: &str = r"\\.\pipe\rampart-agent";

    pub fn user_pipe_name() -> String {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".to_owned());
        format!(r"\\.\pipe\rampart-agent-{user}")
    }

    pub struct Listener {
        next: Mutex<NamedPipeServer>,
        path: PathBuf,
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
    }

    pub async fn bind(path: &Path, _world_connectable: bool) -> Result<Listener, BindError> {
        let first = ServerOptions::new()
            .first_pipe_instance(true)
            .create(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::PermissionDenied => BindError::InUse(path.to_owned()),
                _ => BindError::Listen {
                    path: path.to_owned(),
                    source,
                },
            })?;
        Ok(Listener {
            next: Mutex::new(first),
            path: path.to_owned(),
        })
    }

    impl Listener {
        pub async fn accept(&self) -> io::Result<(Stream, Peer)> {
            let mut next = self.next.lock().await;
            next.connect().await?;
            let fresh = ServerOptions::new().create(&self.path)?;
            let connected = std::mem::replace(&mut *next, fresh);
            Ok((
                Stream::Server(connected),
                Peer {
                    uid: None,
                    pid: None,
                },
            ))
        }

        pub fn path(&self) -> &Path {
            &self.path
        }
    }

    pub async fn connect(path: &Path) -> io::Result<Stream> {
        Ok(Stream::Client(ClientOptions::new().open(path)?))
    }

    pub fn current_uid() -> Option<u32> {
        None
    }

    pub fn user_name(_uid: u32) -> String {
        std::env::var("USERNAME").unwrap_or_else(|_| "user".to_owned())
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
}
