//! Local IPC: the only module that touches the agent's socket.
//!
//! `server` accepts connections and speaks the protocol from
//! `rampart_shared::ipc`; `client` is the typed client the CLI and the app use;
//! `platform` hides Unix sockets vs named pipes and how a peer is identified.

pub mod client;
mod platform;
pub mod server;

pub use platform::{BindError, Listener, bind, current_uid, user_name};
#[cfg(windows)]
pub use platform::{DEFAULT_PIPE_NAME, user_pipe_name};

/// Who is on the other end of a connection, as the OS vouches for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// `None` where the platform cannot tell (then only unprivileged requests
    /// are served).
    pub uid: Option<u32>,
    pub pid: Option<i32>,
}

impl Peer {
    pub fn is_root(&self) -> bool {
        self.uid == Some(0)
    }
}

/// Whether `peer` may make a privileged request to an agent running as
/// `agent_uid`: root, or the agent's own user (dev mode).
pub fn may_administer(peer: Peer, agent_uid: Option<u32>) -> bool {
    peer.is_root() || (peer.uid.is_some() && peer.uid == agent_uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_and_the_agents_own_user_administer() {
        let peer = |uid| Peer { uid, pid: None };
        assert!(may_administer(peer(Some(0)), Some(998)));
        assert!(may_administer(peer(Some(1000)), Some(1000)));
        assert!(!may_administer(peer(Some(1001)), Some(1000)));
        assert!(!may_administer(peer(None), Some(1000)));
        assert!(!may_administer(peer(None), None));
    }
}
